// Similarity kernels.
//
// This header holds the similarity families of tastebud; each lives in its own section.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "topk.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace tastebud {

// ============================================================================================
// Sparse kNN similarity (neighbourhood collaborative filtering)
// ============================================================================================
//
// Similarity between the rows of a sparse query matrix Q (nq x d) and the rows of a sparse
// target matrix T (nt x d), keeping only the k best targets per query row. The product is
// computed row by row as Q[i] . T^T with T^T given in CSR (d x nt): every stored (i, u, a) of
// Q walks row u of T^T and accumulates into a dense per-thread accumulator of length nt,
// remembering which targets it touched (Gustavson's row-by-row SpGEMM, the algorithm of
// implicit's all_pairs_knn). The similarity of every touched target is then formed from the
// accumulated sums and offered to a bounded top-k selection, so the nq x nt product never
// exists; memory is O(threads * nt + nq * k).
//
// Selection (detail::KeyBuffer): each candidate is one uint64 key (order-preserving score
// bits, complemented index), so the "k best, ties to the lower index" order is a plain integer
// order and independent of the offer order. Keys above a threshold go to a 4k buffer cut back
// to k by nth_element when full. A row with many candidates first guesses its threshold
// from a 256-point sample (about the 2k-th best) and verifies it afterwards (at least k
// accepted means the guess was not above the k-th best; otherwise the row is selected again
// without it): the exact result at far fewer accepted candidates than a one-pass heap or
// buffer, whose threshold rises only as k ln(n / k) candidates are accepted. Rows whose
// product covers much of [0, nt) scan the accumulator densely; others record touched targets
// branch-free. Cosine without shrinkage multiplies by precomputed inverse norms.
//
// Two families of accumulators:
//  * "global norms" (dot, cosine, asymmetric cosine, Jaccard/Tanimoto): only the dot product
//    and the support count are accumulated (float, like implicit, so neighbour lists match
//    its up to ties); norms are the precomputed sums of squares of whole rows.
//  * "common support" (Pearson, cosine over co-rated entries): also the sums and sums of
//    squares of both sides over the entries the two rows share (double, because Pearson's
//    n*sum(ab) - sum(a)sum(b) cancels), as Surprise computes pearson / pearson_baseline.
//
// Shrinkage: global-norm similarities divide by (norm product + shrink) (Dacrema et al. 2019);
// common-support ones multiply by (n - 1) / (n - 1 + shrink), n the support (Koren 2010,
// Surprise's pearson_baseline). Targets whose support is below min_support, whose similarity
// is 0 or not finite, and (optionally) the query itself are never kept (self_offset: query row i
// is target i + self_offset, so blocks of a self-similarity can be computed separately).
//
// Output: per query row, up to k (target, similarity) pairs, best first (or, with
// sort_by_index, the same selection in target order), ties broken by the lower target index,
// padded with (-1, 0); out_count[i] says how many are real.

enum SimilarityKind : int {
    sim_dot = 0,
    sim_cosine = 1,
    sim_asymmetric = 2,  // dot / (|q|^(2 alpha) |t|^(2 (1 - alpha)) + shrink), Aiolli 2013
    sim_jaccard = 3,     // dot / (|q|^2 + |t|^2 - dot + shrink): Jaccard on binary data
    sim_pearson = 4,     // common-support Pearson correlation
    sim_common_cosine = 5,  // common-support cosine (on centred data: adjusted cosine,
                            // pearson_baseline)
    sim_msd = 6,            // 1 / (mean squared difference over the common support + 1)
};

struct CsrF {
    const int64_t *indptr;
    const int32_t *indices;
    const float *data;
};

struct SparseKnnOptions {
    int kind = sim_cosine;
    double alpha = 0.5;
    double shrink = 0.0;
    int min_support = 1;
    int64_t self_offset = -1;  // >= 0: skip target j == i + self_offset (self-similarity)
    int k = 100;
    bool sort_by_index = false;  // output each row by target index instead of best first
    bool positive_only = false;  // keep only similarities > 0 (rating neighbourhoods)
};

namespace detail {

// Runs body(thread_id, task) over tasks [0, n) on `threads` OpenMP threads, dynamic
// schedule; per-thread scratch is indexed by thread_id. The first exception is rethrown.
template <class Body>
void parallel_tasks(int64_t n, int threads, Body body) {
    std::exception_ptr error = nullptr;
    std::mutex error_mutex;
    if (n <= 1) threads = 1;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < n; ++t) {
            try {
                body(tid, t);
            } catch (...) {
                std::lock_guard<std::mutex> lock(error_mutex);
                if (!error) error = std::current_exception();
            }
        }
    }
    if (error) std::rethrow_exception(error);
}

// Keeps the k best (score, index) pairs; when all candidates fit, sorts them instead.
struct Selector {
    std::vector<float> score;
    std::vector<int64_t> index;
    std::vector<std::pair<float, int64_t>> all;
    int k;

    explicit Selector(int k_) : score(k_), index(k_), k(k_) { all.reserve(64); }

    static bool better(const std::pair<float, int64_t> &a, const std::pair<float, int64_t> &b) {
        return a.first > b.first || (a.first == b.first && a.second < b.second);
    }

    // Writes the best min(k, n) of all[0..n) to out (best first, or by index when by_index
    // and all fit: the caller then needs no reordering); returns how many.
    int select_into(int32_t *out_index, float *out_score, bool by_index = false) {
        const int64_t n = static_cast<int64_t>(all.size());
        int count;
        if (n <= k) {
            if (by_index)
                std::sort(all.begin(), all.end(),
                          [](const auto &a, const auto &b) { return a.second < b.second; });
            else
                std::sort(all.begin(), all.end(), better);
            count = static_cast<int>(n);
            for (int j = 0; j < count; ++j) {
                out_index[j] = static_cast<int32_t>(all[j].second);
                out_score[j] = all[j].first;
            }
        } else {
            TopKHeap heap(score.data(), index.data(), k);
            for (const auto &c : all) heap.push(c.first, c.second);
            heap.finish();
            count = k;
            for (int j = 0; j < k; ++j) {
                out_index[j] = static_cast<int32_t>(index[j]);
                out_score[j] = score[j];
            }
        }
        for (int j = count; j < k; ++j) {
            out_index[j] = -1;
            out_score[j] = 0.0f;
        }
        all.clear();
        return count;
    }
};

// Per-row terms of the global-norm similarities, precomputed once per row (no pow/sqrt in
// the per-pair loop): cosine sqrt(|x|^2); asymmetric |q|^(2 alpha), |t|^(2 (1 - alpha));
// Jaccard |x|^2.
inline double norm_term(int kind, double sq, double alpha, bool query) {
    switch (kind) {
        case sim_cosine:
            return std::sqrt(sq);
        case sim_asymmetric:
            return std::pow(sq, query ? alpha : 1.0 - alpha);
        default:
            return sq;
    }
}

inline float finish_global(int kind, float dot, double q_term, double t_term, double shrink) {
    switch (kind) {
        case sim_dot:
            return dot;
        case sim_cosine:
        case sim_asymmetric:
            return static_cast<float>(dot / (q_term * t_term + shrink));
        default:  // sim_jaccard
            return static_cast<float>(dot / (q_term + t_term - static_cast<double>(dot) + shrink));
    }
}

}  // namespace detail

// Reorders the first c entries of an output row by target index (canonical CSR order).
inline void sort_row_by_index(int32_t *index, float *score, int c,
                              std::vector<std::pair<float, int64_t>> &tmp) {
    tmp.clear();
    for (int j = 0; j < c; ++j) tmp.emplace_back(score[j], index[j]);
    std::sort(tmp.begin(), tmp.end(),
              [](const auto &l, const auto &r) { return l.second < r.second; });
    for (int j = 0; j < c; ++j) {
        score[j] = tmp[j].first;
        index[j] = static_cast<int32_t>(tmp[j].second);
    }
    tmp.clear();
}

namespace detail {

// Candidates are packed into one uint64 key: the order-preserving bits of the float score in
// the high half, the complement of the target index in the low half. A larger key is a better
// candidate (higher score; among equal scores the lower index), so every comparison of the
// selection is one integer compare, keys are unique, and the result does not depend on the
// order in which candidates are offered.
inline uint32_t ordered_bits(float v) {
    uint32_t b;
    std::memcpy(&b, &v, sizeof b);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

inline float from_ordered_bits(uint32_t o) {
    const uint32_t b = (o & 0x80000000u) ? (o & 0x7FFFFFFFu) : ~o;
    float v;
    std::memcpy(&v, &b, sizeof v);
    return v;
}

inline uint64_t cand_key(float score, int64_t index) {
    return (static_cast<uint64_t>(ordered_bits(score)) << 32) |
           (0xFFFFFFFFu - static_cast<uint32_t>(index));
}

// Keeps the k best keys offered: keys above the threshold are appended; a full buffer
// (cap > k entries) is cut to its k best with nth_element and the threshold raised to the
// k-th key. Each rejected key was worse than k kept ones, so the buffer always holds the k
// best offered. Amortised O(1) per accepted key; most offers cost one compare. Key 0 (an
// invalid candidate) is never accepted.
struct KeyBuffer {
    std::vector<uint64_t> buf;
    int k = 0;
    int cap = 0;
    int n = 0;
    uint64_t thr = 0;
    float thr_score = -std::numeric_limits<float>::infinity();  // score part of thr

    void init(int k_, int64_t max_candidates) {
        k = k_;
        const int64_t c = std::min<int64_t>(4 * static_cast<int64_t>(k_), max_candidates + 1);
        cap = static_cast<int>(std::max<int64_t>(c, k_ + 1));
        buf.assign(cap, 0);
    }
    void reset() {
        n = 0;
        thr = 0;
        thr_score = -std::numeric_limits<float>::infinity();
    }
    // Guess-and-verify threshold for a row of n candidates (many more than k): the score of
    // about the 2k-th best, estimated from an evenly spaced sample of the candidates
    // (value(t), t in [0, n)), becomes the initial threshold score. If at least k candidates
    // are then accepted, every one of the k best was (it scores at least as high as the k-th
    // accepted); otherwise the caller selects again after reset(). Returns whether it guessed.
    template <class Value>
    bool guess(int64_t n_cand, Value value) {
        constexpr int S = 256;
        if (n_cand < 16 * static_cast<int64_t>(k) || n_cand < 4 * S) return false;
        float sample[S];
        for (int t = 0; t < S; ++t) {
            const float v = value((static_cast<int64_t>(t) * n_cand) / S + (n_cand / S) / 2);
            sample[t] = (v != 0.0f && std::isfinite(v)) ? v : -std::numeric_limits<float>::infinity();
        }
        const int64_t q64 = (2 * static_cast<int64_t>(k) * S + n_cand - 1) / n_cand;
        const int q = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(q64, S)));
        std::nth_element(sample, sample + (q - 1), sample + S, std::greater<float>());
        const float g = sample[q - 1];
        if (!(g > -std::numeric_limits<float>::infinity())) return false;
        thr_score = g;
        return true;
    }
    void offer(uint64_t key) {
        if (key > thr) {
            buf[n++] = key;
            if (n == cap) cut();
        }
    }
    void cut() {
        std::nth_element(buf.begin(), buf.begin() + (k - 1), buf.begin() + n,
                         std::greater<uint64_t>());
        thr = buf[k - 1];
        thr_score = from_ordered_bits(static_cast<uint32_t>(thr >> 32));
        n = k;
    }
    // Writes the k best (best first, or by target index) to out; pads with (-1, 0).
    // offered_in_order: every key was offered in increasing target index and none was cut
    // away (k >= candidates), so the buffer already is in target order.
    int write(int32_t *out_index, float *out_score, bool by_index, bool offered_in_order = false) {
        if (n > k) cut();
        const int c = n;
        uint64_t *b = buf.data();
        if (by_index && offered_in_order) {
            for (int t = 0; t < c; ++t) {
                out_index[t] = static_cast<int32_t>(0xFFFFFFFFu - static_cast<uint32_t>(b[t]));
                out_score[t] = from_ordered_bits(static_cast<uint32_t>(b[t] >> 32));
            }
        } else if (by_index) {
            for (int t = 0; t < c; ++t) {  // re-key: index high, score low
                const uint64_t idx = 0xFFFFFFFFu - static_cast<uint32_t>(b[t]);
                b[t] = (idx << 32) | (b[t] >> 32);
            }
            std::sort(b, b + c);
            for (int t = 0; t < c; ++t) {
                out_index[t] = static_cast<int32_t>(b[t] >> 32);
                out_score[t] = from_ordered_bits(static_cast<uint32_t>(b[t]));
            }
        } else {
            std::sort(b, b + c, std::greater<uint64_t>());
            for (int t = 0; t < c; ++t) {
                out_index[t] = static_cast<int32_t>(0xFFFFFFFFu - static_cast<uint32_t>(b[t]));
                out_score[t] = from_ordered_bits(static_cast<uint32_t>(b[t] >> 32));
            }
        }
        for (int t = c; t < k; ++t) {
            out_index[t] = -1;
            out_score[t] = 0.0f;
        }
        reset();
        return c;
    }
};

// The similarity of a global-norm kind from the accumulated dot product.
template <int KIND>
inline float global_sim(float dot, double q_term, double t_term, double q_inv, double t_inv,
                        double shrink, bool use_inv) {
    if (KIND == sim_dot) return dot;
    if (KIND == sim_jaccard)
        return static_cast<float>(dot / (q_term + t_term - static_cast<double>(dot) + shrink));
    if (use_inv) return static_cast<float>(static_cast<double>(dot) * (q_inv * t_inv));
    return static_cast<float>(dot / (q_term * t_term + shrink));
}

// One query row of a global-norm kind: accumulate Q[i] . T^T (float, in column order, as
// implicit does), then offer every touched target. A row whose product covers a large part
// of the targets scans the dense accumulator (no touched list); otherwise the touched
// targets are recorded branch-free. A candidate below the buffer's threshold score is
// rejected with one float compare before any other test.
template <int KIND, bool SUPPORT>
void global_row(const CsrF &q, const CsrF &tt, int64_t nt, int64_t i, double q_term, double q_inv,
                const double *t_term, const double *t_inv, const SparseKnnOptions &opt,
                bool use_inv, int64_t self_j, bool positive_only, float *__restrict dot,
                int32_t *__restrict cnt, int32_t *__restrict touched, KeyBuffer &sel) {
    int64_t work = 0;
    for (int64_t p = q.indptr[i]; p < q.indptr[i + 1]; ++p)
        work += tt.indptr[q.indices[p] + 1] - tt.indptr[q.indices[p]];
    const double shrink = opt.shrink;
    const int min_support = opt.min_support;
    auto sim_of = [&](int64_t j, float d) {
        return global_sim<KIND>(d, q_term, KIND == sim_dot ? 0.0 : t_term[j], q_inv,
                                use_inv ? t_inv[j] : 0.0, shrink, use_inv);
    };
    // the remaining tests of a target whose similarity v reached the threshold score
    auto keep = [&](int64_t j, float v) {
        if (v == 0.0f || !std::isfinite(v)) return;
        if (SUPPORT && cnt[j] < min_support) return;
        if (j == self_j) return;
        if (positive_only && !(v > 0.0f)) return;
        sel.offer(cand_key(v, j));
    };
    if (work * 2 >= nt) {
        for (int64_t p = q.indptr[i]; p < q.indptr[i + 1]; ++p) {
            const int32_t u = q.indices[p];
            const float a = q.data[p];
            for (int64_t r = tt.indptr[u]; r < tt.indptr[u + 1]; ++r) {
                const int32_t j = tt.indices[r];
                dot[j] += tt.data[r] * a;
                if (SUPPORT) ++cnt[j];
            }
        }
        // Untouched targets have dot 0 and similarity 0 (never kept), so every target is
        // simply considered; the threshold rejects them once the buffer has filled.
        const bool guessed = sel.guess(nt, [&](int64_t t) {
            return sim_of(t, dot[t]);
        });
        // In blocks of W targets: the similarities are computed in a straight (vectorisable)
        // loop, the targets reaching the threshold score compacted branch-free, and only
        // those go through the remaining tests.
        auto scan = [&]() {
            constexpr int64_t W = 64;
            float vb[W];
            int32_t pass[W];
            for (int64_t j0 = 0; j0 < nt; j0 += W) {
                const int64_t w = std::min(W, nt - j0);
                if (KIND == sim_dot) {
                    for (int64_t t = 0; t < w; ++t) vb[t] = dot[j0 + t];
                } else if (KIND == sim_cosine && use_inv) {
                    for (int64_t t = 0; t < w; ++t)
                        vb[t] = static_cast<float>(static_cast<double>(dot[j0 + t]) *
                                                   (q_inv * t_inv[j0 + t]));
                } else {
                    for (int64_t t = 0; t < w; ++t) vb[t] = sim_of(j0 + t, dot[j0 + t]);
                }
                const float thr = sel.thr_score;  // NaN similarities never pass
                int m = 0;
                for (int64_t t = 0; t < w; ++t) {
                    pass[m] = static_cast<int32_t>(t);
                    m += vb[t] >= thr;
                }
                for (int p = 0; p < m; ++p) keep(j0 + pass[p], vb[pass[p]]);
            }
        };
        scan();
        if (guessed && sel.n < sel.k) {  // the guess was too high: select again, exactly
            sel.reset();
            scan();
        }
        std::fill(dot, dot + nt, 0.0f);
        if (SUPPORT) std::fill(cnt, cnt + nt, 0);
        return;
    }
    int64_t m = 0;
    for (int64_t p = q.indptr[i]; p < q.indptr[i + 1]; ++p) {
        const int32_t u = q.indices[p];
        const float a = q.data[p];
        for (int64_t r = tt.indptr[u]; r < tt.indptr[u + 1]; ++r) {
            const int32_t j = tt.indices[r];
            touched[m] = j;
            m += cnt[j] == 0;
            ++cnt[j];
            dot[j] += tt.data[r] * a;
        }
    }
    const bool guessed = sel.guess(m, [&](int64_t t) { return sim_of(touched[t], dot[touched[t]]); });
    // as the dense scan: blocks of similarities, branch-free compaction of those reaching
    // the threshold score
    auto scan = [&]() {
        constexpr int64_t W = 64;
        float vb[W];
        int32_t pass[W];
        for (int64_t t0 = 0; t0 < m; t0 += W) {
            const int64_t w = std::min(W, m - t0);
            const int32_t *js = touched + t0;
            for (int64_t t = 0; t < w; ++t) vb[t] = sim_of(js[t], dot[js[t]]);
            const float thr = sel.thr_score;
            int np = 0;
            for (int64_t t = 0; t < w; ++t) {
                pass[np] = static_cast<int32_t>(t);
                np += vb[t] >= thr;
            }
            for (int p = 0; p < np; ++p) keep(js[pass[p]], vb[pass[p]]);
        }
    };
    scan();
    if (guessed && sel.n < sel.k) {  // the guess was too high: select again, exactly
        sel.reset();
        scan();
    }
    for (int64_t t = 0; t < m; ++t) {
        dot[touched[t]] = 0.0f;
        cnt[touched[t]] = 0;
    }
}

// Common-support accumulators of one target (array of structs: one cache line per update).
struct CommonAcc {
    double dd = 0.0, qq = 0.0, tq = 0.0, sq = 0.0, st = 0.0;
};

// Accumulates row i of Q against T^T into acc/cnt, recording first touches (branch-free).
template <bool PEARSON>
inline int64_t accumulate_common(const CsrF &q, const CsrF &tt, int64_t i,
                                 CommonAcc *__restrict acc, int32_t *__restrict cnt,
                                 int32_t *__restrict touched) {
    int64_t m = 0;
    for (int64_t p = q.indptr[i]; p < q.indptr[i + 1]; ++p) {
        const int32_t u = q.indices[p];
        const double a = q.data[p];
        const double aa = a * a;
        for (int64_t r = tt.indptr[u]; r < tt.indptr[u + 1]; ++r) {
            const int32_t j = tt.indices[r];
            const double b = tt.data[r];
            touched[m] = j;
            m += cnt[j] == 0;
            ++cnt[j];
            CommonAcc &c = acc[j];
            c.dd += a * b;
            c.qq += aa;
            c.tq += b * b;
            if (PEARSON) {
                c.sq += a;
                c.st += b;
            }
        }
    }
    return m;
}

}  // namespace detail

// Q (nq x d) CSR, TT = T^T (d x nt) CSR; q_sq (nq) and t_sq (nt) are the row sums of squares
// of Q and T (only read by the global-norm kinds). Outputs are nq x k.
//
// Rows are independent: each thread owns a dense accumulator of length nt and a candidate
// buffer of 2k keys, and takes chunks of rows from a dynamic schedule. Cosine and asymmetric
// cosine without shrinkage multiply by precomputed inverse norm terms instead of dividing.
inline void sparse_knn(const CsrF &q, int64_t nq, const CsrF &tt, int64_t nt, const double *q_sq,
                       const double *t_sq, const SparseKnnOptions &opt, int32_t *out_index,
                       float *out_score, int32_t *out_count, int num_threads) {
    const int k = opt.k;
    const int kind = opt.kind;
    const bool common = kind == sim_pearson || kind == sim_common_cosine || kind == sim_msd;
    int threads = resolve_threads(num_threads);
    const int64_t rows_per_task = 8;
    const int64_t tasks = (nq + rows_per_task - 1) / rows_per_task;
    if (nq <= 4 * threads) threads = 1;
    if (threads > tasks) threads = static_cast<int>(std::max<int64_t>(1, tasks));
    const bool use_inv =
        (kind == sim_cosine || kind == sim_asymmetric) && opt.shrink == 0.0;
    // k >= nt and output by index: the buffer never cuts and keeps every candidate
    const bool keep_all = opt.sort_by_index && static_cast<int64_t>(k) >= nt;

    std::vector<double> t_term, t_inv;
    if (!common && kind != sim_dot) {
        t_term.resize(nt);
        for (int64_t j = 0; j < nt; ++j)
            t_term[j] = detail::norm_term(kind, t_sq[j], opt.alpha, false);
        if (use_inv) {
            t_inv.resize(nt);
            for (int64_t j = 0; j < nt; ++j) t_inv[j] = 1.0 / t_term[j];
        }
    }
    struct Scratch {
        std::vector<float> dot;
        std::vector<int32_t> cnt;
        std::vector<detail::CommonAcc> acc;
        std::vector<int32_t> touched;
        detail::KeyBuffer sel;
    };
    std::vector<Scratch> scratch(threads);

    detail::parallel_tasks(tasks, threads, [&](int tid, int64_t task) {
        Scratch &s = scratch[tid];
        if (s.touched.empty()) {
            s.cnt.assign(nt, 0);
            s.touched.assign(nt + 1, 0);
            if (common)
                s.acc.assign(nt, detail::CommonAcc{});
            else
                s.dot.assign(nt, 0.0f);
            s.sel.init(k, nt);
        }
        const int64_t r_end = std::min(nq, (task + 1) * rows_per_task);
        for (int64_t i = task * rows_per_task; i < r_end; ++i) {
            const int64_t self_j = opt.self_offset >= 0 ? i + opt.self_offset : -1;
            if (!common) {
                const double q_term =
                    kind != sim_dot ? detail::norm_term(kind, q_sq[i], opt.alpha, true) : 0.0;
                const double q_inv = use_inv ? 1.0 / q_term : 0.0;
                const bool sup = opt.min_support > 1;
#define TB_ROW(K, S)                                                                       \
    detail::global_row<K, S>(q, tt, nt, i, q_term, q_inv, t_term.data(), t_inv.data(), opt, \
                             use_inv, self_j, opt.positive_only, s.dot.data(), s.cnt.data(), \
                             s.touched.data(), s.sel)
                if (kind == sim_dot)
                    sup ? TB_ROW(sim_dot, true) : TB_ROW(sim_dot, false);
                else if (kind == sim_jaccard)
                    sup ? TB_ROW(sim_jaccard, true) : TB_ROW(sim_jaccard, false);
                else
                    sup ? TB_ROW(sim_cosine, true) : TB_ROW(sim_cosine, false);
#undef TB_ROW
            } else {
                int32_t *cnt = s.cnt.data();
                const int64_t m =
                    kind == sim_pearson
                        ? detail::accumulate_common<true>(q, tt, i, s.acc.data(), cnt,
                                                          s.touched.data())
                        : detail::accumulate_common<false>(q, tt, i, s.acc.data(), cnt,
                                                           s.touched.data());
                if (keep_all) {
                    // every candidate is kept: offer them in target order, so the output
                    // needs no sort (touched rewritten in order by a branch-free scan of
                    // the support counts, or sorted when short)
                    int32_t *tc = s.touched.data();
                    if (m * 8 >= nt) {
                        int64_t m2 = 0;
                        for (int64_t j = 0; j < nt; ++j) {
                            tc[m2] = static_cast<int32_t>(j);
                            m2 += cnt[j] != 0;
                        }
                    } else {
                        std::sort(tc, tc + m);
                    }
                }
                for (int64_t t = 0; t < m; ++t) {
                    const int32_t j = s.touched[t];
                    const int32_t n = cnt[j];
                    cnt[j] = 0;
                    detail::CommonAcc &ac = s.acc[j];
                    const double dd = ac.dd, qq = ac.qq, tq = ac.tq, sq = ac.sq, st = ac.st;
                    ac = detail::CommonAcc{};
                    if (n < opt.min_support || j == self_j) continue;
                    double v;
                    if (kind == sim_pearson) {
                        const double num = n * dd - sq * st;
                        const double den = (n * qq - sq * sq) * (n * tq - st * st);
                        v = den > 0.0 ? num / std::sqrt(den) : 0.0;
                    } else if (kind == sim_msd) {
                        v = 1.0 / (std::max(0.0, qq + tq - 2.0 * dd) / n + 1.0);
                    } else {
                        const double den = qq * tq;
                        v = den > 0.0 ? dd / std::sqrt(den) : 0.0;
                    }
                    if (opt.shrink > 0.0) v *= (n - 1.0) / (n - 1.0 + opt.shrink);
                    const float sim = static_cast<float>(v);
                    if (sim == 0.0f || !std::isfinite(sim)) continue;
                    if (opt.positive_only && !(sim > 0.0f)) continue;
                    s.sel.offer(detail::cand_key(sim, j));
                }
            }
            out_count[i] = s.sel.write(out_index + i * k, out_score + i * k, opt.sort_by_index,
                                       common && keep_all);
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Symmetric self-similarity (ItemKNN's case): Q == T, so sim(i, j) == sim(j, i) for the
// global-norm kinds whose norm terms are symmetric (dot, cosine, Jaccard, asymmetric cosine
// with alpha = 0.5). Each unordered pair is computed once: row i accumulates only targets
// j > i (each X-row u of i's columns is entered past i by a binary search, so the sparse
// product does half the multiply-adds of sparse_knn), and the pair is offered to both row i's
// and row j's bounded heap. The dot product of (i, j) sums the same products in the same
// (column) order as sparse_knn's row i or row j would, so the similarities are bitwise those of
// sparse_knn.
//
// Heaps written from several rows would race, so every thread owns a heap per row (scores,
// int32 indices, and a compact array of heap thresholds: a candidate is pushed only when it
// reaches its heap's threshold, which rejects most offers with one read of an L1/L2-resident
// float). Each heap keeps the k best of the candidates its thread saw; the k best of the
// union of the threads' heaps of a row are that row's k best, selected in a final parallel
// merge. Memory: O(threads * n * k), like the padded output itself times the threads.
//
// Rows are handed out in chunks from an atomic counter in increasing order (rows near 0 carry
// the most work, so the expensive ones are scheduled first and the cheap tail balances the
// threads). A row whose half-product covers a large part of [i, n) skips the touched list and
// scans the dense accumulator instead.
//
// x: the matrix (n x d) CSR; xt: its transpose (d x n) CSR with sorted indices; sq: row sums of
// squares of x. Output as sparse_knn with self_offset 0 (include_self keeps the diagonal).
namespace detail {

struct Cand {
    float score;
    int32_t index;
};

inline bool cand_better(const Cand &a, const Cand &b) {
    return a.score > b.score || (a.score == b.score && a.index < b.index);
}

// One bounded candidate buffer per row: offers at or above the row's threshold are appended;
// a full buffer (2k) is cut to its k best with nth_element and the threshold raised to the
// k-th score. Every offer rejected was strictly worse than k kept ones, so a buffer always
// holds its row's k best (ties by lower index) among what it was offered. Amortised O(1) per
// accepted offer and branch-predictable, unlike a binary heap's sift per accepted offer.
struct RowBuffers {
    Cand *buf;      // n x cap
    int32_t *size;  // n
    float *thr;     // n: -inf until the first cut, then the k-th best score
    int k;
    int cap;

    void push(int64_t r, float s, int32_t j) {
        Cand *b = buf + r * cap;
        int n = size[r];
        if (n == cap) {
            std::nth_element(b, b + (k - 1), b + cap, cand_better);
            thr[r] = b[k - 1].score;
            n = k;
            if (!(s > thr[r])) {
                size[r] = n;
                return;
            }
        }
        b[n] = Cand{s, j};
        size[r] = n + 1;
    }

    void offer(int64_t r, float s, int32_t j) {
        if (s > thr[r]) push(r, s, j);
    }
};

// One row block [a, b) of the symmetric kernel against every column block at or past it.
// KIND and SUPPORT (min_support > 1) are template parameters so that the per-candidate code
// has no switch and every constant lives in a register.
constexpr int64_t kSymmetricBlock = 128;

template <int KIND, bool SUPPORT>
void symmetric_block(const CsrF x, const int64_t n, const CsrF xt, const double *tm,
                     const double shrink, const int min_support, const bool include_self,
                     const int64_t B, const int64_t a, const int64_t b, RowBuffers heaps,
                     float *__restrict dot, int32_t *__restrict cnt, std::vector<int64_t> &cur) {
    const int64_t base = x.indptr[a];
    cur.resize(x.indptr[b] - base);
    int64_t *cp = cur.data();
    int64_t next_col = n;
    for (int64_t i = a; i < b; ++i) {
        const int32_t lo = static_cast<int32_t>(include_self ? i : i + 1);
        for (int64_t p = x.indptr[i]; p < x.indptr[i + 1]; ++p) {
            const int32_t u = x.indices[p];
            const int32_t *bg = xt.indices + xt.indptr[u];
            const int32_t *en = xt.indices + xt.indptr[u + 1];
            const int32_t *q = std::lower_bound(bg, en, lo);
            cp[p - base] = q - xt.indices;
            if (q != en && *q < next_col) next_col = *q;
        }
    }
    while (next_col < n) {
        const int64_t c = (next_col / B) * B, e = std::min(n, c + B);
        next_col = n;
        for (int64_t i = a; i < b; ++i) {
            int64_t work = 0;
            for (int64_t p = x.indptr[i]; p < x.indptr[i + 1]; ++p) {
                const int32_t u = x.indices[p];
                const float av = x.data[p];
                int64_t r = cp[p - base];
                const int64_t rend = xt.indptr[u + 1];
                const int64_t r0 = r;
                for (; r < rend && xt.indices[r] < e; ++r) {
                    const int64_t j = xt.indices[r] - c;
                    dot[j] += xt.data[r] * av;
                    if (SUPPORT) ++cnt[j];
                }
                work += r - r0;
                cp[p - base] = r;
                if (r < rend && xt.indices[r] < next_col) next_col = xt.indices[r];
            }
            if (work == 0) continue;
            const int64_t j0 = std::max<int64_t>(c, include_self ? i : i + 1);
            const double ti = KIND == sim_dot ? 0.0 : tm[i];
            const int32_t ii = static_cast<int32_t>(i);
            // Branch-free compaction of the touched columns (about half of a tile's entries
            // are zero: a branch per entry would mispredict), then zero the tile.
            int32_t nz[kSymmetricBlock];
            int m = 0;
            for (int64_t j = j0; j < e; ++j) {
                nz[m] = static_cast<int32_t>(j);
                m += SUPPORT ? (cnt[j - c] != 0) : (dot[j - c] != 0.0f);
            }
            for (int t = 0; t < m; ++t) {
                const int64_t j = nz[t];
                const float d = dot[j - c];
                if (SUPPORT && cnt[j - c] < min_support) continue;
                float v;
                if (KIND == sim_dot)
                    v = d;
                else if (KIND == sim_jaccard)
                    v = static_cast<float>(d / (ti + tm[j] - static_cast<double>(d) + shrink));
                else
                    v = static_cast<float>(d / (ti * tm[j] + shrink));
                if (v == 0.0f || !std::isfinite(v)) continue;
                heaps.offer(i, v, static_cast<int32_t>(j));
                if (j != i) heaps.offer(j, v, ii);
            }
            std::fill(dot + (j0 - c), dot + (e - c), 0.0f);
            if (SUPPORT) std::fill(cnt + (j0 - c), cnt + (e - c), 0);
        }
    }
}

}  // namespace detail

inline bool symmetric_kind(int kind, double alpha) {
    return kind == sim_dot || kind == sim_cosine || kind == sim_jaccard ||
           (kind == sim_asymmetric && alpha == 0.5);
}

inline void sparse_knn_symmetric(const CsrF &x, int64_t n, const CsrF &xt, const double *sq,
                                 const SparseKnnOptions &opt, bool include_self,
                                 int32_t *out_index, float *out_score, int32_t *out_count,
                                 int num_threads) {
    const int k = opt.k;
    const int kind = opt.kind;
    int threads = resolve_threads(num_threads);
    if (n <= 4 * threads) threads = 1;
    if (n == 0) return;

    std::vector<double> term;
    if (kind != sim_dot) {
        term.resize(n);
        for (int64_t j = 0; j < n; ++j) term[j] = detail::norm_term(kind, sq[j], opt.alpha, true);
    }
    const double *tm = kind == sim_dot ? nullptr : term.data();
    const double shrink = opt.shrink;
    const int min_support = opt.min_support;
    const float ninf = -std::numeric_limits<float>::infinity();

    // Per-thread scratch, allocated here so that allocation failures surface as exceptions.
    struct Scratch {
        std::unique_ptr<detail::Cand[]> buf;
        std::vector<int32_t> size;
        std::vector<float> thr;
        std::vector<float> dot;
        std::vector<int32_t> cnt;
        std::vector<int64_t> start;
    };
    std::vector<Scratch> scratch(threads);
    const int cap = 2 * k;
    const int64_t ncap = n * static_cast<int64_t>(cap);
    for (auto &s : scratch) {
        s.buf.reset(new detail::Cand[ncap]);
        s.size.assign(n, 0);
        s.thr.assign(n, ninf);
        s.dot.assign(detail::kSymmetricBlock, 0.0f);
        s.cnt.assign(detail::kSymmetricBlock, 0);
    }


    // Tiles: row block I x column block J (J >= I, columns past each row's diagonal), so the
    // accumulator of a tile is B floats (L1) and the cross offers of a tile go to the B row
    // buffers of J (L2), not to random rows of all n. Every (row, X^T row) pair keeps a cursor
    // that advances through the column blocks; empty column blocks are skipped.
    const int64_t B = detail::kSymmetricBlock;
    const int64_t n_blocks = (n + B - 1) / B;
    std::atomic<int64_t> next_block{0};
    std::exception_ptr error = nullptr;
    std::mutex error_mutex;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        try {
            Scratch &s = scratch[tid];
            detail::RowBuffers heaps{s.buf.get(), s.size.data(), s.thr.data(), k, cap};
            float *dot = s.dot.data();     // B
            int32_t *cnt = s.cnt.data();   // B
            auto &cur = s.start;
            for (;;) {
                const int64_t blk = next_block.fetch_add(1, std::memory_order_relaxed);
                if (blk >= n_blocks) break;
                const int64_t a = blk * B, b = std::min(n, a + B);
#define TB_SYM_BLOCK(K, S)                                                                  \
    detail::symmetric_block<K, S>(x, n, xt, tm, shrink, min_support, include_self, B, a, b, \
                                  heaps, dot, cnt, cur)
                const bool sup = min_support > 1;
                if (kind == sim_dot)
                    sup ? TB_SYM_BLOCK(sim_dot, true) : TB_SYM_BLOCK(sim_dot, false);
                else if (kind == sim_jaccard)
                    sup ? TB_SYM_BLOCK(sim_jaccard, true) : TB_SYM_BLOCK(sim_jaccard, false);
                else
                    sup ? TB_SYM_BLOCK(sim_cosine, true) : TB_SYM_BLOCK(sim_cosine, false);
#undef TB_SYM_BLOCK
            }
        } catch (...) {
            std::lock_guard<std::mutex> lock(error_mutex);
            if (!error) error = std::current_exception();
        }
    }
    if (error) std::rethrow_exception(error);

    // Merge the threads' heaps of every row: k best of the union, then the output order.
    const int64_t rows_per_task = 64;
    const int64_t tasks = (n + rows_per_task - 1) / rows_per_task;
    std::vector<std::vector<std::pair<float, int64_t>>> tmp(threads);
    detail::parallel_tasks(tasks, threads, [&](int tid, int64_t task) {
        auto &all = tmp[tid];
        const int64_t end = std::min(n, (task + 1) * rows_per_task);
        for (int64_t i = task * rows_per_task; i < end; ++i) {
            all.clear();
            for (const auto &s : scratch) {
                const int c = s.size[i];
                const detail::Cand *b = s.buf.get() + i * cap;
                for (int j = 0; j < c; ++j) all.emplace_back(b[j].score, b[j].index);
            }
            auto best = [](const auto &a, const auto &b) {
                return a.first > b.first || (a.first == b.first && a.second < b.second);
            };
            int c = static_cast<int>(all.size());
            if (c > k) {
                std::nth_element(all.begin(), all.begin() + (k - 1), all.end(), best);
                c = k;
                all.resize(k);
            }
            if (opt.sort_by_index)
                std::sort(all.begin(), all.end(),
                          [](const auto &a, const auto &b) { return a.second < b.second; });
            else
                std::sort(all.begin(), all.end(), best);
            int32_t *oi = out_index + i * k;
            float *os = out_score + i * k;
            for (int j = 0; j < c; ++j) {
                oi[j] = static_cast<int32_t>(all[j].second);
                os[j] = all[j].first;
            }
            for (int j = c; j < k; ++j) {
                oi[j] = -1;
                os[j] = 0.0f;
            }
            out_count[i] = c;
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Scoring by a sparse neighbour graph, fused with top-k:
//   scores[r] = Q[r] . M   (Q: nq x d CSR, M: d x m CSR), e.g. a user's items times the
// item-item neighbour graph (ItemKNN, RP3beta) or a user's similarities to other users times
// their interactions (UserKNN). Items never touched score 0 and are still candidates (so the
// result equals ranking the dense product), offered after the touched ones when needed.
// Exclusions and the allowed mask are those of topk.hpp; padding is (-1, -inf).
inline void sparse_score_topk(const CsrF &q, int64_t nq, const CsrF &mat, int64_t m, int k,
                              const Exclusions &ex, int64_t *out_index, float *out_score,
                              int num_threads) {
    int threads = resolve_threads(num_threads);
    const int64_t rows_per_task = 16;
    const int64_t tasks = (nq + rows_per_task - 1) / rows_per_task;
    if (nq <= 4 * threads) threads = 1;
    if (threads > tasks) threads = static_cast<int>(std::max<int64_t>(1, tasks));
    struct Scratch {
        std::vector<float> acc;
        std::vector<uint8_t> flag;  // 1 = touched, 2 = excluded
        std::vector<int32_t> touched;
    };
    std::vector<Scratch> scratch(threads);
    const float ninf = -std::numeric_limits<float>::infinity();

    detail::parallel_tasks(tasks, threads, [&](int tid, int64_t task) {
        Scratch &s = scratch[tid];
        if (s.acc.empty()) {
            s.acc.assign(m, 0.0f);
            s.flag.assign(m, 0);
        }
        float *acc = s.acc.data();
        uint8_t *flag = s.flag.data();
        const int64_t r_end = std::min(nq, (task + 1) * rows_per_task);
        for (int64_t r = task * rows_per_task; r < r_end; ++r) {
            auto &touched = s.touched;
            touched.clear();
            for (int64_t p = q.indptr[r]; p < q.indptr[r + 1]; ++p) {
                const int32_t u = q.indices[p];
                const float a = q.data[p];
                for (int64_t t = mat.indptr[u]; t < mat.indptr[u + 1]; ++t) {
                    const int32_t j = mat.indices[t];
                    if (!flag[j]) {
                        flag[j] = 1;
                        touched.push_back(j);
                    }
                    acc[j] += mat.data[t] * a;
                }
            }
            int64_t n_excl_begin = 0, n_excl_end = 0;
            if (ex.indptr) {
                n_excl_begin = ex.indptr[r];
                n_excl_end = ex.indptr[r + 1];
                for (int64_t p = n_excl_begin; p < n_excl_end; ++p) flag[ex.indices[p]] |= 2;
            }
            TopKHeap heap(out_score + r * k, out_index + r * k, k);
            for (const int32_t j : touched) {
                if (flag[j] & 2) continue;
                if (ex.allowed && !ex.allowed[j]) continue;
                const float v = acc[j];
                if (std::isnan(v) || v == ninf) continue;
                heap.push(v, j);
            }
            // Untouched candidates score exactly 0: needed while 0 could still enter the heap.
            if (heap.size < k || heap.threshold() <= 0.0f) {
                for (int64_t j = 0; j < m; ++j) {
                    if (flag[j]) continue;
                    if (ex.allowed && !ex.allowed[j]) continue;
                    // offered in increasing index: once (0, j) loses to the root, all later do
                    if (heap.size == k && !TopKHeap::worse(heap.score[0], heap.index[0], 0.0f, j))
                        break;
                    heap.push(0.0f, j);
                }
            }
            heap.finish();
            for (const int32_t j : touched) {
                acc[j] = 0.0f;
                flag[j] = 0;
            }
            for (int64_t p = n_excl_begin; p < n_excl_end; ++p) flag[ex.indices[p]] = 0;
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Baselines by alternating least squares (Koren 2010; Surprise's baseline_als): each epoch sets
//   b_i = sum_u (r_ui - mu - b_u) / (reg_items + |U_i|), then
//   b_u = sum_i (r_ui - mu - b_i) / (reg_users + |I_u|).
// R is users x items CSR; sums run in CSR order (as numpy's bincount over the COO entries).
inline void als_baselines(const CsrF &r, int64_t n_users, int64_t n_items, double mu,
                          int iterations, double reg_users, double reg_items, double *bu,
                          double *bi) {
    std::vector<double> sum_i(n_items), cnt_i(n_items, 0.0);
    for (int64_t u = 0; u < n_users; ++u) bu[u] = 0.0;
    for (int64_t i = 0; i < n_items; ++i) bi[i] = 0.0;
    for (int64_t t = 0; t < r.indptr[n_users]; ++t) cnt_i[r.indices[t]] += 1.0;
    for (int it = 0; it < iterations; ++it) {
        std::fill(sum_i.begin(), sum_i.end(), 0.0);
        for (int64_t u = 0; u < n_users; ++u)
            for (int64_t t = r.indptr[u]; t < r.indptr[u + 1]; ++t)
                sum_i[r.indices[t]] += (static_cast<double>(r.data[t]) - mu) - bu[u];
        for (int64_t i = 0; i < n_items; ++i) bi[i] = sum_i[i] / (reg_items + cnt_i[i]);
        for (int64_t u = 0; u < n_users; ++u) {
            double acc = 0.0;
            for (int64_t t = r.indptr[u]; t < r.indptr[u + 1]; ++t)
                acc += (static_cast<double>(r.data[t]) - mu) - bi[r.indices[t]];
            bu[u] = acc / (reg_users + static_cast<double>(r.indptr[u + 1] - r.indptr[u]));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Neighbourhood rating prediction (Surprise's KNNBasic / KNNWithMeans / KNNBaseline core).
// For each pair (x, y): the context row y of C (CSR, sorted indices: the x' that y rated, with
// a residual value, e.g. r - mean[x'] or r - baseline) is intersected with the neighbour row x
// of S (CSR, sorted indices). Among the common x' with similarity > 0, the `k` most similar
// (ties: lower index) give est = sum(sim * residual) / sum(sim); out_k is how many were used.
// Pairs with no usable neighbour get est = 0 and out_k = 0.
//
// The pairs are grouped by x (a counting sort): the neighbour row x is scattered once into a
// dense per-thread array of length n_x, and every pair of the group then walks only its
// (short) context row with O(1) look-ups, instead of merging the (long) neighbour row with it
// once per pair. Candidates still come in increasing x' order, so the result is the same.
inline void knn_predict(const int64_t *x, const int64_t *y, int64_t n_pairs, const CsrF &sim,
                        const CsrF &ctx, int k, double *out_est, int32_t *out_k,
                        int num_threads, int64_t n_q = -1, int64_t n_x = -1) {
    if (n_pairs == 0) return;
    if (n_q < 0) {
        n_q = 0;
        for (int64_t p = 0; p < n_pairs; ++p) n_q = std::max(n_q, x[p] + 1);
    }
    if (n_x < 0) {
        n_x = 0;
        const int64_t nnz = sim.indptr[n_q];
        for (int64_t t = 0; t < nnz; ++t) n_x = std::max<int64_t>(n_x, sim.indices[t] + 1);
    }
    // group the pairs by x
    std::vector<int64_t> start(n_q + 1, 0);
    for (int64_t p = 0; p < n_pairs; ++p) ++start[x[p] + 1];
    for (int64_t q = 0; q < n_q; ++q) start[q + 1] += start[q];
    std::vector<int64_t> order(n_pairs);
    {
        std::vector<int64_t> fill(start.begin(), start.end() - 1);
        for (int64_t p = 0; p < n_pairs; ++p) order[fill[x[p]]++] = p;
    }
    std::vector<int64_t> groups;  // the x that have pairs
    groups.reserve(std::min(n_q, n_pairs));
    for (int64_t q = 0; q < n_q; ++q)
        if (start[q + 1] > start[q]) groups.push_back(q);
    const int64_t n_groups = static_cast<int64_t>(groups.size());

    int threads = resolve_threads(num_threads);
    if (n_pairs <= 1024) threads = 1;
    struct Scratch {
        std::vector<float> dense;
        std::vector<uint64_t> key;    // (similarity, position) packed as in KeyBuffer
        std::vector<float> residual;  // by position
    };
    std::vector<Scratch> scratch(threads);
    detail::parallel_tasks(n_groups, threads, [&](int tid, int64_t g) {
        Scratch &s = scratch[tid];
        if (s.dense.empty()) s.dense.assign(std::max<int64_t>(n_x, 1), 0.0f);
        float *dense = s.dense.data();
        auto &key = s.key;
        auto &res = s.residual;
        const int64_t xi = groups[g];
        const int64_t a0 = sim.indptr[xi], a1 = sim.indptr[xi + 1];
        for (int64_t a = a0; a < a1; ++a) dense[sim.indices[a]] = sim.data[a];
        for (int64_t o = start[xi]; o < start[xi + 1]; ++o) {
            const int64_t p = order[o];
            const int64_t yi = y[p];
            const int64_t b0 = ctx.indptr[yi], len = ctx.indptr[yi + 1] - b0;
            if (static_cast<int64_t>(key.size()) < len + 1) {
                key.resize(len + 1);
                res.resize(len + 1);
            }
            // branch-free collection of the rated neighbours with positive similarity; they
            // come in increasing neighbour index, so the position breaks ties towards the
            // lower index
            int64_t c = 0;
            for (int64_t b = 0; b < len; ++b) {
                const float sv = dense[ctx.indices[b0 + b]];
                key[c] = detail::cand_key(sv, c);
                res[c] = ctx.data[b0 + b];
                c += sv > 0.0f;
            }
            if (c > k) {
                std::nth_element(key.begin(), key.begin() + (k - 1), key.begin() + c,
                                 std::greater<uint64_t>());
                c = k;
            }
            double num = 0.0, den = 0.0;
            for (int64_t t = 0; t < c; ++t) {
                const float sv = detail::from_ordered_bits(static_cast<uint32_t>(key[t] >> 32));
                const uint32_t pos = 0xFFFFFFFFu - static_cast<uint32_t>(key[t]);
                num += static_cast<double>(sv) * res[pos];
                den += sv;
            }
            out_k[p] = static_cast<int32_t>(c);
            out_est[p] = den > 0.0 ? num / den : 0.0;
        }
        for (int64_t a = a0; a < a1; ++a) dense[sim.indices[a]] = 0.0f;
    });
}

// ============================================================================================
// (dense similarity search: added by the dense-search family in its own section)
// ============================================================================================

}  // namespace tastebud
