// Batched top-k selection with exclusion, fused with blocked scoring.
//
// Two entry points:
//   topk_scores: rows of a dense score block (n x m) -> k best (index, score) per row.
//   topk_dot:    queries (n x f) . items (m x f)^T scored tile by tile with a BLAS sgemm
//                (query block x item block, so n x m is never materialised) and reduced
//                into per-query bounded heaps as each tile is produced.
//
// Order: best first; equal scores are broken by the lower item index. Items excluded for a
// row (CSR of sorted indices), items not allowed by the global mask, and items whose score
// is -inf or NaN are never returned. Rows with fewer than k candidates are padded with
// index -1 and score -inf.
//
// The kernels take raw pointers and assume validated input (bindings.cpp checks).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <mutex>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace tastebud {

// Fortran BLAS sgemm, as exported by scipy.linalg.cython_blas (column-major).
using sgemm_fn = void (*)(const char *transa, const char *transb, const int *m, const int *n,
                          const int *k, const float *alpha, const float *a, const int *lda,
                          const float *b, const int *ldb, const float *beta, float *c,
                          const int *ldc);

inline int resolve_threads(int num_threads) {
#ifdef _OPENMP
    return num_threads > 0 ? num_threads : omp_get_max_threads();
#else
    (void)num_threads;
    return 1;
#endif
}

// Runs body(i) for i in [0, n) over threads; the first exception thrown is rethrown after the join.
template <class Body>
void parallel_for(int64_t n, int num_threads, Body body) {
    std::exception_ptr error = nullptr;
    std::mutex error_mutex;
    int threads = resolve_threads(num_threads);
    if (n <= 1) threads = 1;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
    for (int64_t i = 0; i < n; ++i) {
        try {
            body(i);
        } catch (...) {
            std::lock_guard<std::mutex> lock(error_mutex);
            if (!error) error = std::current_exception();
        }
    }
    if (error) std::rethrow_exception(error);
}

// A 64-bit hash of a row's (sorted) item indices (SplitMix64 finaliser steps): the fold-in
// kernels (BPR, hybrid) seed a new row's random stream from what the row holds, not from its
// position in the batch.
inline uint64_t row_content_hash(const int32_t *indices, int64_t n) {
    auto mix = [](uint64_t z) {
        z += 0x9E3779B97F4A7C15ULL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    };
    uint64_t h = mix(0x726F77ULL ^ static_cast<uint64_t>(n));
    for (int64_t k = 0; k < n; ++k) h = mix(h ^ static_cast<uint32_t>(indices[k]));
    return h;
}

// The entries of a CSR (rows x cols, indices < cols) as a dense row-major bitmap, so a
// membership test is one load instead of a binary search; empty when it would take more than
// max_bytes. Shared by the samplers that reject seen items (BPR, the hybrid model).
inline std::vector<uint64_t> membership_bitmap(const int64_t *indptr, const int32_t *indices,
                                               int64_t rows, int64_t cols,
                                               int64_t max_bytes = int64_t(8) << 20) {
    const uint64_t n_bits = static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols);
    if (cols <= 0 || n_bits / 8 > static_cast<uint64_t>(max_bytes)) return {};
    std::vector<uint64_t> bits((n_bits + 63) / 64, 0);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = indptr[r]; j < indptr[r + 1]; ++j) {
            const uint64_t b = static_cast<uint64_t>(r) * static_cast<uint64_t>(cols) +
                               static_cast<uint64_t>(indices[j]);
            bits[b >> 6] |= uint64_t(1) << (b & 63);
        }
    return bits;
}

namespace vec {
// GCC vector extension: 16 floats at any alignment (may alias float arrays). In the default
// clone it is lowered to SSE registers, in x86-64-v3 to AVX2 pairs, in x86-64-v4 to one zmm.
typedef float f16 __attribute__((vector_size(64), aligned(4), may_alias));

// Horizontal sum of a 16-float vector as a shuffle tree (16 -> 8 -> 4 -> scalar).
inline float hsum16(f16 a) {
    typedef float f8 __attribute__((vector_size(32)));
    typedef float f4 __attribute__((vector_size(16)));
    const f8 b = __builtin_shufflevector(a, a, 0, 1, 2, 3, 4, 5, 6, 7) +
                 __builtin_shufflevector(a, a, 8, 9, 10, 11, 12, 13, 14, 15);
    const f4 c = __builtin_shufflevector(b, b, 0, 1, 2, 3) +
                 __builtin_shufflevector(b, b, 4, 5, 6, 7);
    return (c[0] + c[2]) + (c[1] + c[3]);
}
}  // namespace vec

// A bounded heap holding the k best (score, index) pairs seen so far. The root is the worst
// kept pair: lowest score, and among equal scores the highest index. Because candidates are
// offered in increasing index order, a candidate equal to the root's score is never better,
// so the hot loop only needs `score > threshold()`.
struct TopKHeap {
    float *score;
    int64_t *index;
    int k;
    int size = 0;

    TopKHeap(float *s, int64_t *i, int k_) : score(s), index(i), k(k_) {}

    static bool worse(float sa, int64_t ia, float sb, int64_t ib) {
        return sa < sb || (sa == sb && ia > ib);
    }

    float threshold() const {
        return size < k ? -std::numeric_limits<float>::infinity() : score[0];
    }

    void push(float s, int64_t i) {
        if (size < k) {
            int pos = size++;
            while (pos > 0) {  // sift up
                int parent = (pos - 1) / 2;
                if (!worse(s, i, score[parent], index[parent])) break;
                score[pos] = score[parent];
                index[pos] = index[parent];
                pos = parent;
            }
            score[pos] = s;
            index[pos] = i;
            return;
        }
        if (!worse(score[0], index[0], s, i)) return;
        int pos = 0;  // replace root, sift down
        for (;;) {
            int child = 2 * pos + 1;
            if (child >= k) break;
            if (child + 1 < k && worse(score[child + 1], index[child + 1], score[child], index[child]))
                ++child;
            if (!worse(score[child], index[child], s, i)) break;
            score[pos] = score[child];
            index[pos] = index[child];
            pos = child;
        }
        score[pos] = s;
        index[pos] = i;
    }

    // Sorts best first and pads with (-1, -inf).
    void finish() {
        std::vector<std::pair<float, int64_t>> items(size);
        for (int j = 0; j < size; ++j) items[j] = {score[j], index[j]};
        std::sort(items.begin(), items.end(), [](const auto &a, const auto &b) {
            return a.first > b.first || (a.first == b.first && a.second < b.second);
        });
        for (int j = 0; j < size; ++j) {
            score[j] = items[j].first;
            index[j] = items[j].second;
        }
        for (int j = size; j < k; ++j) {
            score[j] = -std::numeric_limits<float>::infinity();
            index[j] = -1;
        }
    }
};

// Offers row scores[0..len) (item indices offset..offset+len) to the heap. Excluded items must
// already be set to -inf. Chunks whose every score is <= the threshold are skipped with one
// vectorisable compare-and-count, which is what keeps selection cheap next to the GEMM.
inline void offer_row(TopKHeap &heap, const float *scores, int64_t len, int64_t offset) {
    constexpr int64_t chunk = 32;
    int64_t j = 0;
    for (; j + chunk <= len; j += chunk) {
        const float thr = heap.threshold();
        const float *s = scores + j;
        int above = 0;
        for (int64_t t = 0; t < chunk; ++t) above += s[t] > thr;
        if (above == 0) continue;
        for (int64_t t = 0; t < chunk; ++t)
            if (s[t] > heap.threshold()) heap.push(s[t], offset + j + t);
    }
    for (; j < len; ++j)
        if (scores[j] > heap.threshold()) heap.push(scores[j], offset + j);
}

struct Exclusions {
    const int64_t *indptr = nullptr;   // n_rows + 1, or null for none
    const int32_t *indices = nullptr;  // sorted within each row
    const uint8_t *allowed = nullptr;  // m, 1 = candidate; null = all
};

// Sets to -inf the scores of row r's excluded items that fall inside [begin, end).
// `cursor` remembers how far into the row's sorted exclusion list earlier blocks got.
inline void mask_block(float *tile_row, int64_t begin, int64_t end, const Exclusions &ex,
                       int64_t row, int64_t &cursor) {
    const float ninf = -std::numeric_limits<float>::infinity();
    if (ex.indptr) {
        const int64_t stop = ex.indptr[row + 1];
        while (cursor < stop && ex.indices[cursor] < end) {
            const int64_t item = ex.indices[cursor];
            if (item >= begin) tile_row[item - begin] = ninf;
            ++cursor;
        }
    }
    if (ex.allowed) {
        for (int64_t j = begin; j < end; ++j)
            if (!ex.allowed[j]) tile_row[j - begin] = ninf;
    }
    // NaN never wins: `s > thr` is false for NaN, so nothing to do here.
}

// Top-k of each row of a dense score block (n x m, row-major).
inline void topk_scores(const float *scores, int64_t n, int64_t m, int k, const Exclusions &ex,
                        int64_t *out_index, float *out_score, int num_threads) {
    const int64_t rows_per_task = 64;
    const int64_t tasks = (n + rows_per_task - 1) / rows_per_task;
    parallel_for(tasks, n <= 4 * rows_per_task ? 1 : num_threads, [&](int64_t task) {
        std::vector<float> row(m);
        const int64_t r_end = std::min(n, (task + 1) * rows_per_task);
        for (int64_t r = task * rows_per_task; r < r_end; ++r) {
            std::copy(scores + r * m, scores + (r + 1) * m, row.begin());
            int64_t cursor = ex.indptr ? ex.indptr[r] : 0;
            mask_block(row.data(), 0, m, ex, r, cursor);
            TopKHeap heap(out_score + r * k, out_index + r * k, k);
            offer_row(heap, row.data(), m, 0);
            heap.finish();
        }
    });
}

// Scores queries [q0, q1) against items [i_begin, i_end) tile by tile and offers each tile to the
// given heaps (one per query, already holding earlier candidates of the same queries).
inline void score_range(const float *queries, int64_t q0, int64_t q1, const float *items,
                        int64_t i_begin, int64_t i_end, int f, const float *item_bias,
                        const Exclusions &ex, std::vector<TopKHeap> &heaps, sgemm_fn sgemm,
                        int64_t ib, std::vector<float> &tile) {
    const int nq = static_cast<int>(q1 - q0);
    std::vector<int64_t> cursor(nq);
    for (int q = 0; q < nq; ++q) {
        cursor[q] = 0;
        if (ex.indptr) {  // first exclusion >= i_begin
            const int32_t *lo = ex.indices + ex.indptr[q0 + q];
            const int32_t *hi = ex.indices + ex.indptr[q0 + q + 1];
            cursor[q] = std::lower_bound(lo, hi, static_cast<int32_t>(i_begin)) - ex.indices;
        }
    }
    tile.resize(static_cast<size_t>(ib) * nq);
    for (int64_t i0 = i_begin; i0 < i_end; i0 += ib) {
        const int64_t i1 = std::min(i_end, i0 + ib);
        const int ni = static_cast<int>(i1 - i0);
        // Column-major view: tile (ni x nq, ld = ni) = items_blk (ni x f) * queries_blk^T.
        // Read row-major, tile[q * ni + j] = score of query q0+q against item i0+j.
        const float one = 1.0f, zero = 0.0f;
        const char trans = 'T', notrans = 'N';
        if (f > 0) {
            sgemm(&trans, &notrans, &ni, &nq, &f, &one, items + i0 * f, &f, queries + q0 * f, &f,
                  &zero, tile.data(), &ni);
        } else {
            std::fill(tile.begin(), tile.begin() + static_cast<int64_t>(ni) * nq, 0.0f);
        }
        for (int q = 0; q < nq; ++q) {
            float *row = tile.data() + static_cast<int64_t>(q) * ni;
            if (item_bias)
                for (int j = 0; j < ni; ++j) row[j] += item_bias[i0 + j];
            mask_block(row, i0, i1, ex, q0 + q, cursor[q]);
            offer_row(heaps[q], row, ni, i0);
        }
    }
}

// Top-k of queries . items^T (queries n x f, items m x f, both row-major float32), optionally
// plus a per-item bias added to every score (for models with item biases).
//
// Work is split into query blocks; when there are too few query blocks to keep every thread
// busy (e.g. one user against a million items), the item range is split as well, each piece
// keeps its own partial heaps, and the pieces are merged per query at the end.
inline void topk_dot(const float *queries, int64_t n, const float *items, int64_t m, int f,
                     const float *item_bias, int k, const Exclusions &ex, int64_t *out_index,
                     float *out_score, int num_threads, sgemm_fn sgemm, int query_block,
                     int item_block) {
    const int64_t qb = std::max(1, query_block);
    const int64_t ib = std::max<int64_t>(1, std::min<int64_t>(item_block, m));
    const int64_t q_tasks = (n + qb - 1) / qb;
    const int threads = resolve_threads(num_threads);
    const int64_t item_tiles = (m + ib - 1) / ib;
    int64_t splits = 1;
    if (q_tasks < 2 * threads && item_tiles > 1)
        splits = std::min<int64_t>(item_tiles, (2 * threads + q_tasks - 1) / q_tasks);
    if (splits == 1) {
        parallel_for(q_tasks, threads, [&](int64_t task) {
            const int64_t q0 = task * qb, q1 = std::min(n, q0 + qb);
            std::vector<TopKHeap> heaps;
            heaps.reserve(q1 - q0);
            for (int64_t q = q0; q < q1; ++q) heaps.emplace_back(out_score + q * k, out_index + q * k, k);
            std::vector<float> tile;
            score_range(queries, q0, q1, items, 0, m, f, item_bias, ex, heaps, sgemm, ib, tile);
            for (auto &h : heaps) h.finish();
        });
        return;
    }
    // Partial results: [split][query][k].
    const int64_t tiles_per_split = (item_tiles + splits - 1) / splits;
    std::vector<float> part_score(static_cast<size_t>(splits) * n * k);
    std::vector<int64_t> part_index(static_cast<size_t>(splits) * n * k);
    std::vector<int> part_size(static_cast<size_t>(splits) * n, 0);
    parallel_for(q_tasks * splits, threads, [&](int64_t task) {
        const int64_t s = task % splits, qt = task / splits;
        const int64_t q0 = qt * qb, q1 = std::min(n, q0 + qb);
        const int64_t i_begin = std::min(m, s * tiles_per_split * ib);
        const int64_t i_end = std::min(m, (s + 1) * tiles_per_split * ib);
        std::vector<TopKHeap> heaps;
        heaps.reserve(q1 - q0);
        for (int64_t q = q0; q < q1; ++q)
            heaps.emplace_back(part_score.data() + (s * n + q) * k,
                               part_index.data() + (s * n + q) * k, k);
        std::vector<float> tile;
        if (i_begin < i_end)
            score_range(queries, q0, q1, items, i_begin, i_end, f, item_bias, ex, heaps, sgemm, ib,
                        tile);
        for (int64_t q = q0; q < q1; ++q) part_size[s * n + q] = heaps[q - q0].size;
    });
    parallel_for(n, threads, [&](int64_t q) {
        TopKHeap heap(out_score + q * k, out_index + q * k, k);
        for (int64_t s = 0; s < splits; ++s) {
            const float *ps = part_score.data() + (s * n + q) * k;
            const int64_t *pi = part_index.data() + (s * n + q) * k;
            for (int j = 0; j < part_size[s * n + q]; ++j) heap.push(ps[j], pi[j]);
        }
        heap.finish();
    });
}

}  // namespace tastebud
