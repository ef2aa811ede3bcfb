// Hogwild stochastic gradient samplers (Recht et al. 2011): BPR (Rendle et al. 2009).
//
// Reusable pieces for every sampler-based model of this header:
//   * SplitMix64 (seeding) and Xoshiro256** (the per-thread stream), both tiny and fast;
//   * Rng::below(n): an unbiased-enough uniform index by Lemire's multiply-shift (bias < n/2^32);
//   * row_contains: binary search in a sorted CSR row (negative verification);
//   * SampleTask: how samples of one epoch are split over threads, with one RNG per thread
//     derived from (seed, epoch, thread), so one thread with one seed is fully deterministic.
//
// Threads update the shared factor arrays without locks (Hogwild): with sparse data two
// threads rarely touch the same rows, and the occasional lost update does not hurt
// convergence. This is a benign data race on float arrays, as in implicit and LightFM.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "als.hpp"  // vec:: loops and TASTEBUD_CLONES
#include "topk.hpp"

namespace tastebud {

struct SplitMix64 {
    uint64_t state;
    explicit SplitMix64(uint64_t seed) : state(seed) {}
    uint64_t next() {
        uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
};

// xoshiro256** (Blackman & Vigna), seeded through SplitMix64 as its authors advise.
struct Rng {
    uint64_t s[4];

    explicit Rng(uint64_t seed) {
        SplitMix64 sm(seed);
        for (auto &w : s) w = sm.next();
    }
    // A stream per (seed, a, b): e.g. (random_state, epoch, thread) or (random_state, row).
    Rng(uint64_t seed, uint64_t a, uint64_t b)
        : Rng(SplitMix64(seed ^ SplitMix64(a * 0x9E3779B97F4A7C15ULL + b).next()).next()) {}

    static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

    uint64_t next() {
        const uint64_t result = rotl(s[1] * 5, 7) * 9;
        const uint64_t t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = rotl(s[3], 45);
        return result;
    }
    // Uniform integer in [0, n) for n < 2^32 (Lemire's multiply-shift).
    uint32_t below(uint64_t n) {
        return static_cast<uint32_t>(((next() >> 32) * n) >> 32);
    }
    // Uniform in [0, 1).
    float uniform() { return static_cast<float>(next() >> 40) * (1.0f / 16777216.0f); }
};

inline bool row_contains(const int32_t *indices, int64_t begin, int64_t end, int32_t item) {
    const int32_t *first = indices + begin, *last = indices + end;
    const int32_t *it = std::lower_bound(first, last, item);
    return it != last && *it == item;
}

// A sorted CSR of positives (users x items) plus, per entry, its row: sampling an entry
// uniformly samples a (user, positive item) pair in proportion to the user's activity.
struct PositiveSet {
    const int64_t *indptr;
    const int32_t *indices;
    const int32_t *row_of;  // nnz, row of each entry
    int64_t n_rows, n_items, nnz;
};

// Draws a negative for `row`, rejected while it is a positive of that row (up to
// `max_tries` draws); returns -1 when every draw was a positive.
inline int64_t draw_negative(Rng &rng, const PositiveSet &S, int64_t row, bool verify,
                             int max_tries = 32) {
    for (int t = 0; t < max_tries; ++t) {
        const int64_t j = rng.below(static_cast<uint64_t>(S.n_items));
        if (!verify || !row_contains(S.indices, S.indptr[row], S.indptr[row + 1], int32_t(j)))
            return j;
    }
    return -1;
}

struct BprStats {
    int64_t correct = 0;  // samples whose positive already outscored the negative
    int64_t skipped = 0;  // samples without a verified negative
};

namespace sgd_detail {

// One BPR step on (user vector u, positive i, negative j); returns whether i outscored j.
inline bool bpr_step(float *u, float *vi, float *vj, float *bi, float *bj, int f, float lr,
                     float reg, bool update_items) {
    float diff = (bi && bj) ? *bi - *bj : 0.0f;
    {
        float acc[32] = {0};
        int t = 0;
        for (; t + 32 <= f; t += 32)
            for (int q = 0; q < 32; ++q) acc[q] += u[t + q] * (vi[t + q] - vj[t + q]);
        for (; t < f; ++t) diff += u[t] * (vi[t] - vj[t]);
        for (int q = 0; q < 32; ++q) diff += acc[q];
    }
    // d/dx log sigmoid(x) = 1 - sigmoid(x) = sigmoid(-x)
    const float z = 1.0f / (1.0f + std::exp(diff));
    if (update_items) {
        for (int t = 0; t < f; ++t) {
            const float uu = u[t], a = vi[t], b = vj[t];
            u[t] = uu + lr * (z * (a - b) - reg * uu);
            vi[t] = a + lr * (z * uu - reg * a);
            vj[t] = b + lr * (-z * uu - reg * b);
        }
        if (bi && bj) {
            *bi += lr * (z - reg * *bi);
            *bj += lr * (-z - reg * *bj);
        }
    } else {
        for (int t = 0; t < f; ++t) u[t] += lr * (z * (vi[t] - vj[t]) - reg * u[t]);
    }
    return diff > 0.0f;
}

TASTEBUD_CLONES
static void bpr_worker(const PositiveSet &S, float *U, float *V, float *bias, int f, float lr,
                       float reg, bool verify, int64_t samples, Rng &rng, BprStats &stats) {
    for (int64_t s = 0; s < samples; ++s) {
        const int64_t k = rng.below(static_cast<uint64_t>(S.nnz));
        const int64_t user = S.row_of[k];
        const int64_t i = S.indices[k];
        const int64_t j = draw_negative(rng, S, user, verify);
        if (j < 0 || j == i) {
            ++stats.skipped;
            continue;
        }
        stats.correct += bpr_step(U + user * f, V + i * f, V + j * f, bias ? bias + i : nullptr,
                                  bias ? bias + j : nullptr, f, lr, reg, true);
    }
}

TASTEBUD_CLONES
static void bpr_fold_in_row(const PositiveSet &S, int64_t row, float *u, const float *V,
                            const float *bias, int f, float lr, float reg, bool verify,
                            int epochs, Rng &rng) {
    const int64_t b = S.indptr[row], e = S.indptr[row + 1];
    for (int t = 0; t < f; ++t) u[t] = (rng.uniform() - 0.5f) / f;
    if (b == e) {
        std::fill(u, u + f, 0.0f);
        return;
    }
    const int64_t samples = int64_t(epochs) * (e - b);
    for (int64_t s = 0; s < samples; ++s) {
        const int64_t i = S.indices[b + rng.below(static_cast<uint64_t>(e - b))];
        const int64_t j = draw_negative(rng, S, row, verify);
        if (j < 0 || j == i) continue;
        // Items are read-only here: bpr_step only writes u when update_items is false.
        float bi = bias ? bias[i] : 0.0f, bj = bias ? bias[j] : 0.0f;
        bpr_step(u, const_cast<float *>(V + i * f), const_cast<float *>(V + j * f), &bi, &bj, f,
                 lr, reg, false);
    }
}

}  // namespace sgd_detail

// One BPR epoch of `samples` SGD steps split evenly over threads (Hogwild). U (n_rows x f),
// V (n_items x f) and bias (n_items, or null) are updated in place.
inline BprStats bpr_epoch(const PositiveSet &S, float *U, float *V, float *bias, int f, float lr,
                          float reg, bool verify, int64_t samples, uint64_t seed, int64_t epoch,
                          int num_threads) {
    const int threads = static_cast<int>(std::max<int64_t>(
        1, std::min<int64_t>(resolve_threads(num_threads), samples / 1024 + 1)));
    std::vector<BprStats> stats(threads);
    parallel_for(threads, threads, [&](int64_t t) {
        Rng rng(seed, uint64_t(epoch), uint64_t(t));
        const int64_t mine = samples / threads + (t < samples % threads ? 1 : 0);
        sgd_detail::bpr_worker(S, U, V, bias, f, lr, reg, verify, mine, rng, stats[t]);
    });
    BprStats total;
    for (const auto &s : stats) {
        total.correct += s.correct;
        total.skipped += s.skipped;
    }
    return total;
}

// Fold-in: `epochs * |I_u|` SGD steps on each row's vector with items fixed; the RNG of a row
// depends only on (seed, row), so results do not depend on the thread count.
inline void bpr_fold_in(const PositiveSet &S, float *U, const float *V, const float *bias, int f,
                        float lr, float reg, bool verify, int epochs, uint64_t seed,
                        int num_threads) {
    parallel_for(S.n_rows, S.n_rows <= 16 ? 1 : num_threads, [&](int64_t row) {
        Rng rng(seed, 0x5EEDULL, uint64_t(row));
        sgd_detail::bpr_fold_in_row(S, row, U + row * f, V, bias, f, lr, reg, verify, epochs,
                                    rng);
    });
}

}  // namespace tastebud
