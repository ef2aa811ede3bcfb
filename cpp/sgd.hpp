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
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#endif
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <type_traits>
#include <utility>
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
    // Uniform integer in [0, n) for n < 2^32 (Lemire's multiply-shift on the top 32 bits):
    // the draw of every SGD shuffle here and of kernels/sgd.py's _below.
    uint64_t below(uint64_t n) { return ((next() >> 32) * n) >> 32; }
    // The stream of block b from `seed` (DSGD blocks, the user-major segments).
    static SplitMix64 block(uint64_t seed, int64_t b) {
        return SplitMix64(SplitMix64(seed ^ (0x9E3779B97F4A7C15ULL * uint64_t(b + 1))).next());
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

// Branchless binary search (conditional moves instead of unpredictable branches: the
// probe sequence is data-dependent and would mispredict about half the time).
inline bool row_contains(const int32_t *indices, int64_t begin, int64_t end, int32_t item) {
    const int32_t *base = indices + begin;
    int64_t n = end - begin;
    if (n == 0) return false;
    while (n > 1) {
        const int64_t half = n / 2;
        base = (base[half] <= item) ? base + half : base;
        n -= half;
    }
    return *base == item;
}

// A sorted CSR of positives (users x items) plus, per entry, its row: sampling an entry
// uniformly samples a (user, positive item) pair in proportion to the user's activity.
struct PositiveSet {
    const int64_t *indptr;
    const int32_t *indices;
    const int32_t *row_of;  // nnz, row of each entry
    int64_t n_rows, n_items, nnz;
    // Optional dense membership bitmap (n_rows x n_items bits, row-major): one load per
    // negative check instead of a binary search. Built by bpr_epoch when it is small.
    const uint64_t *bits = nullptr;
};

// Whether `item` is a positive of `row`.
inline bool is_positive(const PositiveSet &S, int64_t row, int64_t item) {
    if (S.bits) {
        const uint64_t b = static_cast<uint64_t>(row) * static_cast<uint64_t>(S.n_items) +
                           static_cast<uint64_t>(item);
        return (S.bits[b >> 6] >> (b & 63)) & 1u;
    }
    return row_contains(S.indices, S.indptr[row], S.indptr[row + 1], int32_t(item));
}

// Draws a negative for `row`, rejected while it is a positive of that row (up to
// `max_tries` draws); returns -1 when every draw was a positive.
inline int64_t draw_negative(Rng &rng, const PositiveSet &S, int64_t row, bool verify,
                             int max_tries = 32) {
    for (int t = 0; t < max_tries; ++t) {
        const int64_t j = rng.below(static_cast<uint64_t>(S.n_items));
        if (!verify || !is_positive(S, row, j)) return j;
    }
    return -1;
}

struct BprStats {
    int64_t correct = 0;  // samples whose positive already outscored the negative
    int64_t skipped = 0;  // samples without a verified negative
};

namespace sgd_detail {

inline void prefetch_row(const float *row, int f) {
    const char *p = reinterpret_cast<const char *>(row);
    for (int line = 0; line < int(f * sizeof(float)); line += 64) __builtin_prefetch(p + line);
}

// One BPR step on (user vector u, positive i, negative j); returns whether i outscored j.
// F > 0: factor count fixed at compile time (fully unrolled); F = 0: runtime f.
template <int F>
inline bool bpr_step(float *u, float *vi, float *vj, float *bi, float *bj, int f_, float lr,
                     float reg, bool update_items) {
    const int f = F > 0 ? F : f_;
    float diff = (bi && bj) ? *bi - *bj : 0.0f;
    {
        float acc[16] = {0};
        int t = 0;
        for (; t + 16 <= f; t += 16)
            for (int q = 0; q < 16; ++q) acc[q] += u[t + q] * (vi[t + q] - vj[t + q]);
        for (; t < f; ++t) diff += u[t] * (vi[t] - vj[t]);
        for (int q = 0; q < 8; ++q) acc[q] += acc[q + 8];
        for (int q = 0; q < 4; ++q) acc[q] += acc[q + 4];
        diff += (acc[0] + acc[2]) + (acc[1] + acc[3]);
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

// `samples` Hogwild steps. The next triple is drawn one step ahead and its three rows are
// prefetched, hiding the cache misses of random rows on large data.
// Positives are drawn from the entries [first, first + count) of S (a thread's own block).
template <int F>
inline void bpr_run(const PositiveSet &S, float *U, float *V, float *bias, int f_, float lr,
                    float reg, bool verify, int64_t samples, int64_t first, int64_t count,
                    Rng &rng, BprStats &stats) {
    const int f = F > 0 ? F : f_;
    if (samples <= 0 || count <= 0) return;
    auto draw = [&](int64_t &user, int64_t &i, int64_t &j) {
        const int64_t k = first + rng.below(static_cast<uint64_t>(count));
        user = S.row_of[k];
        i = S.indices[k];
        j = rng.below(static_cast<uint64_t>(S.n_items));
        prefetch_row(U + user * f, f);
        prefetch_row(V + i * f, f);
        prefetch_row(V + j * f, f);
    };
    int64_t user, i, j;
    draw(user, i, j);
    for (int64_t s = 0; s < samples; ++s) {
        int64_t nu = 0, ni = 0, nj = 0;
        if (s + 1 < samples) draw(nu, ni, nj);
        if (verify && is_positive(S, user, j))
            j = draw_negative(rng, S, user, true);  // rare: redraw until not a positive
        if (j < 0 || j == i) {
            ++stats.skipped;
        } else {
            stats.correct += bpr_step<F>(U + user * f, V + i * f, V + j * f,
                                         bias ? bias + i : nullptr, bias ? bias + j : nullptr,
                                         f, lr, reg, true);
        }
        user = nu;
        i = ni;
        j = nj;
    }
}

TASTEBUD_CLONES
static void bpr_worker(const PositiveSet &S, float *U, float *V, float *bias, int f, float lr,
                       float reg, bool verify, int64_t samples, int64_t first, int64_t count,
                       Rng &rng, BprStats &stats) {
    switch (f) {
        case 32:
            bpr_run<32>(S, U, V, bias, f, lr, reg, verify, samples, first, count, rng, stats);
            break;
        case 64:
            bpr_run<64>(S, U, V, bias, f, lr, reg, verify, samples, first, count, rng, stats);
            break;
        case 128:
            bpr_run<128>(S, U, V, bias, f, lr, reg, verify, samples, first, count, rng, stats);
            break;
        default:
            bpr_run<0>(S, U, V, bias, f, lr, reg, verify, samples, first, count, rng, stats);
            break;
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
        bpr_step<0>(u, const_cast<float *>(V + i * f), const_cast<float *>(V + j * f), &bi, &bj,
                    f, lr, reg, false);
    }
}

}  // namespace sgd_detail

// One BPR epoch of `samples` SGD steps split evenly over threads (Hogwild). U (n_rows x f),
// V (n_items x f) and bias (n_items, or null) are updated in place. Thread t draws its
// positives from its own contiguous t-th of the entries (equal entry counts, so the union is
// still uniform over all entries): user rows are then written by one thread only (except at
// block edges), which removes most cache-line ping-pong between cores; item rows stay shared.
inline BprStats bpr_epoch(const PositiveSet &S, float *U, float *V, float *bias, int f, float lr,
                          float reg, bool verify, int64_t samples, uint64_t seed, int64_t epoch,
                          int num_threads) {
    // Hogwild threads share the item rows. When the item factors are small, every core keeps
    // writing the same few cache lines and the threads mostly wait on each other: measured on
    // ml-100k (1,682 items x 64 floats, 0.4 MiB), 2 threads took twice the wall time of one
    // (4x the CPU). So use at most one thread per MiB of item factors.
    const int64_t item_mib = static_cast<int64_t>(S.n_items) * f * int64_t(sizeof(float)) >> 20;
    const int threads = static_cast<int>(std::max<int64_t>(
        1, std::min<int64_t>({int64_t(resolve_threads(num_threads)), samples / 1024 + 1,
                              std::max<int64_t>(1, item_mib)})));
    std::vector<BprStats> stats(threads);
    // Membership bitmap for the negative checks when it fits in 8 MiB (ml-100k: 0.2 MiB).
    std::vector<uint64_t> bits;
    PositiveSet P = S;
    if (verify) bits = membership_bitmap(S.indptr, S.indices, S.n_rows, S.n_items);
    if (!bits.empty()) P.bits = bits.data();
    parallel_for(threads, threads, [&](int64_t t) {
        Rng rng(seed, uint64_t(epoch), uint64_t(t));
        const int64_t mine = samples / threads + (t < samples % threads ? 1 : 0);
        const int64_t first = S.nnz * t / threads, last = S.nnz * (t + 1) / threads;
        sgd_detail::bpr_worker(P, U, V, bias, f, lr, reg, verify, mine, first, last - first, rng,
                               stats[t]);
    });
    BprStats total;
    for (const auto &s : stats) {
        total.correct += s.correct;
        total.skipped += s.skipped;
    }
    return total;
}

// Fold-in: `epochs * |I_u|` SGD steps on each row's vector with items fixed; the RNG of a row
// depends only on (seed, the row's items) (topk.hpp row_content_hash), so a new user gets
// the same vector whatever the thread count and wherever it sits in the batch.
inline void bpr_fold_in(const PositiveSet &S, float *U, const float *V, const float *bias, int f,
                        float lr, float reg, bool verify, int epochs, uint64_t seed,
                        int num_threads) {
    parallel_for(S.n_rows, S.n_rows <= 16 ? 1 : num_threads, [&](int64_t row) {
        const int64_t b = S.indptr[row];
        Rng rng(seed, 0x5EEDULL, row_content_hash(S.indices + b, S.indptr[row + 1] - b));
        sgd_detail::bpr_fold_in_row(S, row, U + row * f, V, bias, f, lr, reg, verify, epochs,
                                    rng);
    });
}


// ===========================================================================================
// Explicit-rating biased MF (Funk 2006; Koren, Bell & Volinsky 2009; Surprise's SVD)
// ===========================================================================================
//
// ===========================================================================================
// Normal draws for factor initialisation: the ziggurat method, 16 lanes at a time
// ===========================================================================================
//
// Marsaglia & Tsang (2000), "The ziggurat method for generating random variables", 128
// layers, with Doornik's (2005) fix: the layer index and the signed 32-bit value come from
// different random words (the original used the same bits for both, which correlates
// them). ~99 % of draws take the fast path (one compare and one multiply); the rest take the
// exact wedge or tail test, so the output is N(0, 1) up to float rounding.
//
// The fast path runs 16 lanes at once, each its own xoshiro128** stream (32-bit words): in
// AVX-512 registers with hardware gathers for the table look-ups where the CPU has them
// (GCC's vectoriser emulates gathers with scalar loads under its generic tuning), else the
// same arithmetic lane by lane, giving the same floats (no FMA in either). A position whose
// candidate fails the rectangle test finishes its draw from the chunk's xoshiro256** stream.
// 1.0M values on one thread of this machine: 1.4 ms with AVX-512, 3.1 ms lane by lane (other
// CPUs, clang builds), against 2.7 ms for the scalar loop of one xoshiro256** stream that
// drew them before (numpy's generator: ~8 ms).
namespace ziggurat {

struct Tables {
    uint32_t k[128];
    float wf[128];  // w rounded to float, for the fast path
    double w[128], f[128];
    static constexpr double r = 3.442619855899;  // start of the tail
    Tables() {
        const double m = 2147483648.0, v = 9.91256303526217e-3;  // 2^31; area of a layer
        double d = r, t = r;
        const double q = v / std::exp(-0.5 * d * d);
        k[0] = static_cast<uint32_t>(d / q * m);
        k[1] = 0;
        w[0] = q / m;
        w[127] = d / m;
        f[0] = 1.0;
        f[127] = std::exp(-0.5 * d * d);
        for (int i = 126; i >= 1; --i) {
            d = std::sqrt(-2.0 * std::log(v / d + std::exp(-0.5 * d * d)));
            k[i + 1] = static_cast<uint32_t>(d / t * m);
            t = d;
            f[i] = std::exp(-0.5 * d * d);
            w[i] = d / m;
        }
        for (int i = 0; i < 128; ++i) wf[i] = static_cast<float>(w[i]);
    }
};

inline const Tables &tables() {
    static const Tables t;  // thread-safe initialisation (C++11)
    return t;
}

// Uniform in (0, 1), never 0 (the tail takes its log).
inline double open_uniform(Rng &rng) { return (double(rng.next() >> 11) + 0.5) * 0x1.0p-53; }

// The rest of a draw whose candidate (value word hz, layer iz) failed the rectangle test:
// the base layer's tail, or the wedge test with a uniform from rng; rejected, fresh
// candidates from rng until one is accepted. The candidates are i.i.d., so the result has
// exactly the ziggurat's law.
inline double finish(int32_t hz, int iz, Rng &rng, const Tables &z) {
    for (;;) {
        const double x = hz * z.w[iz];
        const uint32_t mag = hz < 0 ? 0u - static_cast<uint32_t>(hz) : static_cast<uint32_t>(hz);
        if (mag < z.k[iz]) return x;  // inside the layer's rectangle
        if (iz == 0) {                // the base layer's tail beyond r (Marsaglia 1964)
            double a, b;
            do {
                a = -std::log(open_uniform(rng)) / Tables::r;
                b = -std::log(open_uniform(rng));
            } while (b + b < a * a);
            return hz > 0 ? Tables::r + a : -Tables::r - a;
        }
        if (z.f[iz] + open_uniform(rng) * (z.f[iz - 1] - z.f[iz]) < std::exp(-0.5 * x * x))
            return x;  // in the wedge under the density
        const uint64_t bits = rng.next();
        hz = static_cast<int32_t>(static_cast<uint32_t>(bits >> 32));
        iz = static_cast<int>(bits & 127);
    }
}

constexpr int kLanes = 16;

// 16 xoshiro128** streams (Blackman & Vigna); lane l's state is s[0..3][l].
struct Lanes {
    uint32_t s[4][kLanes];
};

inline uint32_t rotl32(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }

inline uint32_t lane_next(Lanes &g, int l) {
    uint32_t &s0 = g.s[0][l], &s1 = g.s[1][l], &s2 = g.s[2][l], &s3 = g.s[3][l];
    const uint32_t result = rotl32(s1 * 5u, 7) * 9u, t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = rotl32(s3, 11);
    return result;
}

// The fast path of `groups` groups of 16 positions: each lane draws its value word hz and
// then its layer word (layer iz = low 7 bits); out = mean + std * (float(hz) * wf[iz]), and
// fast[g] has bit l set where lane l of group g passed the rectangle test |hz| < k[iz] (the
// caller overwrites the other positions).
// (fp-contract off, as in fast_path_avx512: the two paths give the same floats.)
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("fp-contract=off")))
#endif
static void fast_path_scalar(float *out, int32_t *hz, int32_t *iz, uint16_t *fast, int64_t groups,
                             Lanes &g, float mean, float std_dev, const Tables &z) {
#ifdef __clang__
#pragma clang fp contract(off)
#endif
    for (int64_t grp = 0; grp < groups; ++grp) {
        uint32_t value[kLanes], layer[kLanes];
        for (int l = 0; l < kLanes; ++l) value[l] = lane_next(g, l);
        for (int l = 0; l < kLanes; ++l) layer[l] = lane_next(g, l);
        uint16_t mask = 0;
        for (int l = 0; l < kLanes; ++l) {
            const int64_t j = grp * kLanes + l;
            const int32_t h = static_cast<int32_t>(value[l]);
            const int i = static_cast<int>(layer[l] & 127u);
            const uint32_t mag = h < 0 ? 0u - static_cast<uint32_t>(h) : static_cast<uint32_t>(h);
            const float scaled = static_cast<float>(h) * z.wf[i];
            const float y = mean + std_dev * scaled;
            hz[j] = h;
            iz[j] = i;
            out[j] = y;
            mask = static_cast<uint16_t>(mask | (mag < z.k[i] ? 1u << l : 0u));
        }
        fast[grp] = mask;
    }
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(TASTEBUD_NO_TARGET_CLONES)
#define TASTEBUD_ZIGGURAT_AVX512 1
// fast_path_scalar in AVX-512 registers: the same words, the same float operations (two
// multiplies and an add, never fused), so the same values.
__attribute__((target("avx512f"))) inline __m512i xoshiro128_next(__m512i &s0, __m512i &s1,
                                                                  __m512i &s2, __m512i &s3) {
    const __m512i five = _mm512_add_epi32(_mm512_slli_epi32(s1, 2), s1);
    const __m512i rot = _mm512_rol_epi32(five, 7);
    const __m512i result = _mm512_add_epi32(_mm512_slli_epi32(rot, 3), rot);
    const __m512i t = _mm512_slli_epi32(s1, 9);
    s2 = _mm512_xor_si512(s2, s0);
    s3 = _mm512_xor_si512(s3, s1);
    s1 = _mm512_xor_si512(s1, s2);
    s0 = _mm512_xor_si512(s0, s3);
    s2 = _mm512_xor_si512(s2, t);
    s3 = _mm512_rol_epi32(s3, 11);
    return result;
}

// (fp-contract off: GCC would otherwise fuse the multiply and the add, as the scalar path
// compiled for baseline x86-64 cannot, and the two paths would differ in the last bit.)
__attribute__((target("avx512f"), optimize("fp-contract=off"))) static void fast_path_avx512(
    float *out, int32_t *hz, int32_t *iz, uint16_t *fast, int64_t groups, Lanes &g,
    float mean, float std_dev, const Tables &z) {
    __m512i s0 = _mm512_loadu_si512(g.s[0]), s1 = _mm512_loadu_si512(g.s[1]);
    __m512i s2 = _mm512_loadu_si512(g.s[2]), s3 = _mm512_loadu_si512(g.s[3]);
    const __m512 mean_v = _mm512_set1_ps(mean), std_v = _mm512_set1_ps(std_dev);
    const __m512i low7 = _mm512_set1_epi32(127);
    for (int64_t grp = 0; grp < groups; ++grp) {
        const __m512i value = xoshiro128_next(s0, s1, s2, s3);
        const __m512i layer = _mm512_and_si512(xoshiro128_next(s0, s1, s2, s3), low7);
        const __m512i k = _mm512_i32gather_epi32(layer, z.k, 4);
        const __m512 w = _mm512_i32gather_ps(layer, z.wf, 4);
        const __mmask16 ok = _mm512_cmplt_epu32_mask(_mm512_abs_epi32(value), k);
        const __m512 scaled = _mm512_mul_ps(_mm512_cvtepi32_ps(value), w);
        const __m512 y = _mm512_add_ps(mean_v, _mm512_mul_ps(std_v, scaled));
        _mm512_storeu_ps(out + grp * kLanes, y);
        _mm512_storeu_si512(hz + grp * kLanes, value);
        _mm512_storeu_si512(iz + grp * kLanes, layer);
        fast[grp] = static_cast<uint16_t>(ok);
    }
    _mm512_storeu_si512(g.s[0], s0);
    _mm512_storeu_si512(g.s[1], s1);
    _mm512_storeu_si512(g.s[2], s2);
    _mm512_storeu_si512(g.s[3], s3);
}
#endif

}  // namespace ziggurat

// out[0..n) = mean + std * N(0, 1) draws. Values come in chunks of 4096; chunk c's lanes and
// its scalar stream are seeded from (seed, c), so value t depends on (seed, t) only: not on
// the threads, and a shorter fill is a prefix of a longer one (for one build on one platform:
// the rare finishing draws use libm's exp and log, and may be contracted differently).
inline void normal_fill(float *out, int64_t n, double mean, double std_dev, uint64_t seed,
                        int num_threads) {
    constexpr int64_t chunk = 4096, L = ziggurat::kLanes;
    const ziggurat::Tables &z = ziggurat::tables();
#ifdef TASTEBUD_ZIGGURAT_AVX512
    const bool avx512 = __builtin_cpu_supports("avx512f");
#endif
    const int64_t chunks = (n + chunk - 1) / chunk;
    parallel_for(chunks, chunks < 16 ? 1 : num_threads, [&](int64_t c) {
        alignas(64) float vals[chunk];
        alignas(64) int32_t hz[chunk], iz[chunk];
        uint16_t fast[chunk / L];
        SplitMix64 sm(SplitMix64::block(seed ^ 0x6e6f726dULL, c).next());
        ziggurat::Lanes g;
        for (auto &word : g.s)
            for (uint32_t &lane : word) lane = static_cast<uint32_t>(sm.next() >> 32);
        Rng rng(sm.next());
        const int64_t lo = c * chunk, m = std::min(n, lo + chunk) - lo, groups = (m + L - 1) / L;
        const float mean_f = static_cast<float>(mean), std_f = static_cast<float>(std_dev);
#ifdef TASTEBUD_ZIGGURAT_AVX512
        if (avx512)
            ziggurat::fast_path_avx512(vals, hz, iz, fast, groups, g, mean_f, std_f, z);
        else
#endif
            ziggurat::fast_path_scalar(vals, hz, iz, fast, groups, g, mean_f, std_f, z);
        for (int64_t grp = 0; grp < groups; ++grp) {  // the failed lanes, in position order
            for (unsigned failed = ~unsigned(fast[grp]) & 0xFFFFu; failed; failed &= failed - 1) {
                const int64_t j = grp * L + __builtin_ctz(failed);
                if (j >= m) break;
                const double x = ziggurat::finish(hz[j], iz[j], rng, z);
                vals[j] = static_cast<float>(mean + std_dev * x);
            }
        }
        std::copy(vals, vals + m, out + lo);
    });
}

// One SGD epoch over rating triples (u, i, r) in array order, per rating:
//
//     err  = r - (mu + b_u + b_i + p_u . q_i)
//     b_u += lr_bu (err - reg_bu b_u);      b_i += lr_bi (err - reg_bi b_i)
//     p_u += lr_pu (err q_i - reg_pu p_u);  q_i += lr_qi (err p_u - reg_qi q_i)   (old p_u, q_i)
//
// the update of python/tastebud/kernels/sgd.py (whose exact=True path replays the plain-Python
// reference bit for bit); here the dot product is summed in 2 x 16 lanes and the updates may be
// contracted into FMAs, which only changes rounding. The factor loops are plain loops over a
// compile-time length for the common sizes (fully unrolled, register resident; the clones
// use 512-bit vectors on AVX-512 machines); rows of the next ratings are prefetched so
// random rows that miss the caches overlap with the current update.
//
// svd_shuffle is the Fisher-Yates shuffle of sgd.py's shuffle_ratings (SplitMix64 +
// Lemire's multiply-shift): the same state gives the same permutation in both.

struct SvdRates {
    float mu, lr_bu, lr_bi, lr_pu, lr_qi, reg_bu, reg_bi, reg_pu, reg_qi;
};

namespace sgd_detail {

// GCC vector extensions: 16 floats, any alignment. In the default clone they are lowered
// to SSE registers, in the x86-64-v4 clone each is one zmm register.
typedef vec::f16 svd_v16;
using vec::hsum16;

// p . q over f floats: two 16-lane accumulators (halving the FMA dependency chain), a
// vector tree for the horizontal sum, and a scalar tail.
template <int F>
inline float svd_dot(const float *__restrict p, const float *__restrict q, int f_) {
    const int f = F > 0 ? F : f_;
    svd_v16 a0 = {0}, a1 = {0};
    int t = 0;
    for (; t + 32 <= f; t += 32) {
        a0 += *reinterpret_cast<const svd_v16 *>(p + t) * *reinterpret_cast<const svd_v16 *>(q + t);
        a1 += *reinterpret_cast<const svd_v16 *>(p + t + 16) *
              *reinterpret_cast<const svd_v16 *>(q + t + 16);
    }
    if (t + 16 <= f) {
        a0 += *reinterpret_cast<const svd_v16 *>(p + t) * *reinterpret_cast<const svd_v16 *>(q + t);
        t += 16;
    }
    float tail = 0.0f;
    for (; t < f; ++t) tail += p[t] * q[t];
    return hsum16(a0 + a1) + tail;
}

template <int F>
inline float svd_step(float *__restrict pu, float *__restrict qi, float *__restrict bu,
                      float *__restrict bi, float r, int f_, const SvdRates &h) {
    const int f = F > 0 ? F : f_;
    const float dot = svd_dot<F>(pu, qi, f);
    const float err = r - (h.mu + *bu + *bi + dot);
    *bu += h.lr_bu * (err - h.reg_bu * *bu);
    *bi += h.lr_bi * (err - h.reg_bi * *bi);
    for (int t = 0; t < f; ++t) {
        const float p = pu[t], q = qi[t];
        pu[t] = p + h.lr_pu * (err * q - h.reg_pu * p);
        qi[t] = q + h.lr_qi * (err * p - h.reg_qi * q);
    }
    return err;
}

// Ratings [lo, hi) in array order; the rows of the rating `ahead` positions later are
// prefetched (they are random rows: on data larger than the caches this hides the misses).
template <int F>
inline double svd_run(const int32_t *users, const int32_t *items, const float *ratings,
                      int64_t lo, int64_t hi, float *bu, float *bi, float *P, float *Q, int f_,
                      const SvdRates &h) {
    const int f = F > 0 ? F : f_;
    constexpr int64_t ahead = 6;
    double sse = 0.0;
    for (int64_t t = lo; t < hi; ++t) {
        if (t + ahead < hi) {
            prefetch_row(P + int64_t(users[t + ahead]) * f, f);
            prefetch_row(Q + int64_t(items[t + ahead]) * f, f);
        }
        const int64_t u = users[t], i = items[t];
        const float err = svd_step<F>(P + u * f, Q + i * f, bu + u, bi + i, ratings[t], f, h);
        sse += double(err) * double(err);
    }
    return sse;
}

TASTEBUD_CLONES
static double svd_worker(const int32_t *users, const int32_t *items, const float *ratings,
                         int64_t lo, int64_t hi, float *bu, float *bi, float *P, float *Q, int f,
                         const SvdRates &h) {
#define TASTEBUD_SVD_CASE(N) \
    case N: return svd_run<N>(users, items, ratings, lo, hi, bu, bi, P, Q, f, h);
    switch (f) {
        TASTEBUD_SVD_CASE(16)
        TASTEBUD_SVD_CASE(20)
        TASTEBUD_SVD_CASE(32)
        TASTEBUD_SVD_CASE(50)
        TASTEBUD_SVD_CASE(64)
        TASTEBUD_SVD_CASE(100)
        TASTEBUD_SVD_CASE(128)
        TASTEBUD_SVD_CASE(200)
        default: return svd_run<0>(users, items, ratings, lo, hi, bu, bi, P, Q, f, h);
    }
#undef TASTEBUD_SVD_CASE
}

}  // namespace sgd_detail

// Fisher-Yates shuffle of the triples in place; `state` is the SplitMix64 state (advanced).
inline void svd_shuffle(int32_t *users, int32_t *items, float *ratings, int64_t n,
                        uint64_t &state) {
    SplitMix64 sm(state);
    for (int64_t j = n - 1; j > 0; --j) {
        const uint64_t k = sm.below(uint64_t(j + 1));
        std::swap(users[j], users[k]);
        std::swap(items[j], items[k]);
        std::swap(ratings[j], ratings[k]);
    }
    state = sm.state;
}

// One epoch; returns the sum of squared errors seen. num_threads == 1: the sequential
// algorithm (deterministic). More: Hogwild, each thread takes one contiguous chunk of the
// (shuffled) order and updates the shared parameters without locks.
inline double svd_epoch(const int32_t *users, const int32_t *items, const float *ratings,
                        int64_t nnz, float *bu, float *bi, float *P, float *Q, int f,
                        const SvdRates &h, int num_threads) {
    int threads = resolve_threads(num_threads);
    threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, nnz / 1024)));
    std::vector<double> sse(threads, 0.0);
    parallel_for(threads, threads, [&](int64_t c) {
        const int64_t lo = c * nnz / threads, hi = (c + 1) * nnz / threads;
        sse[c] = sgd_detail::svd_worker(users, items, ratings, lo, hi, bu, bi, P, Q, f, h);
    });
    double total = 0.0;
    for (double s : sse) total += s;
    return total;
}

// ===========================================================================================
// Whole SVD fit in C++: padded, aligned factor rows and a packed, shuffled rating array
// ===========================================================================================
//
// svd_fit runs `epochs` epochs of the algorithm above (same visiting order: the triples are
// shuffled before each epoch with svd_shuffle's Fisher-Yates draws, applied to one packed
// 16-byte record per rating instead of three arrays) and differs from svd_epoch only in how
// the arithmetic is laid out, which was measured on ml-100k (100 factors, 80k ratings/epoch):
//
//   * The factor rows are copied into buffers whose stride is f rounded up to a multiple of
//     16 floats and whose rows start on 64-byte boundaries. The padding stays exactly 0 (a
//     zero p and q receive zero updates), so every factor loop is whole aligned 16-float
//     vectors without a scalar tail (one zmm register each on AVX-512).
//   * The updates are written as p' = a_pu p + (lr_pu err) q, q' = a_qi q + (lr_qi err) p
//     with a = 1 - lr reg: 2 vector operations per 16 floats instead of 3; the same
//     iterates as `p + lr (err q - reg p)` in exact arithmetic (results differ by rounding).
//   * The shuffle moves one 16-byte record per swap (0.1 ms per epoch instead of 0.22).
//
// The cost of an update is then bounded by moving the two rows between L2 and L1 and
// writing them back (a dot product alone costs ~40 % of an update), not by its latency.
// With num_threads > 1 each thread takes one contiguous chunk of every epoch's order
// (Hogwild, as svd_epoch); num_threads == 1 is deterministic.

struct SvdRecord {
    int32_t u, i;
    float r;
    int32_t pad;
};

namespace sgd_detail {

typedef float svd_a16 __attribute__((vector_size(64), aligned(64)));

// V aligned 16-float blocks per row (V > 0 compile time; V = 0 runtime v).
template <int V>
inline double svd_run_padded(const SvdRecord *rec, int64_t lo, int64_t hi, float *bu, float *bi,
                             float *P, float *Q, int v_, const SvdRates &h) {
    const int v = V > 0 ? V : v_;
    const int64_t stride = int64_t(v) * 16;
    const float a_bu = 1.0f - h.lr_bu * h.reg_bu, a_bi = 1.0f - h.lr_bi * h.reg_bi;
    const float a_pu = 1.0f - h.lr_pu * h.reg_pu, a_qi = 1.0f - h.lr_qi * h.reg_qi;
    constexpr int64_t ahead = 6;
    double sse = 0.0;
    for (int64_t t = lo; t < hi; ++t) {
        if (t + ahead < hi) {
            prefetch_row(P + rec[t + ahead].u * stride, v * 16);
            prefetch_row(Q + rec[t + ahead].i * stride, v * 16);
        }
        const int64_t u = rec[t].u, i = rec[t].i;
        svd_a16 *__restrict pu = reinterpret_cast<svd_a16 *>(P + u * stride);
        svd_a16 *__restrict qi = reinterpret_cast<svd_a16 *>(Q + i * stride);
        svd_a16 acc0 = {0}, acc1 = {0};
        int k = 0;
        for (; k + 2 <= v; k += 2) {
            acc0 += pu[k] * qi[k];
            acc1 += pu[k + 1] * qi[k + 1];
        }
        if (k < v) acc0 += pu[k] * qi[k];
        const float dot = hsum16(acc0 + acc1);
        const float b_u = bu[u], b_i = bi[i];
        const float err = rec[t].r - ((h.mu + b_u) + (b_i + dot));
        bu[u] = a_bu * b_u + h.lr_bu * err;
        bi[i] = a_bi * b_i + h.lr_bi * err;
        const float cp = h.lr_pu * err, cq = h.lr_qi * err;
        for (k = 0; k < v; ++k) {
            const svd_a16 p = pu[k], q = qi[k];
            pu[k] = a_pu * p + cp * q;
            qi[k] = a_qi * q + cq * p;
        }
        sse += double(err) * double(err);
    }
    return sse;
}

TASTEBUD_CLONES
static double svd_worker_padded(const SvdRecord *rec, int64_t lo, int64_t hi, float *bu, float *bi,
                                float *P, float *Q, int v, const SvdRates &h) {
#define TASTEBUD_SVD_PCASE(N) \
    case N: return svd_run_padded<N>(rec, lo, hi, bu, bi, P, Q, v, h);
    switch (v) {
        TASTEBUD_SVD_PCASE(1)
        TASTEBUD_SVD_PCASE(2)
        TASTEBUD_SVD_PCASE(3)
        TASTEBUD_SVD_PCASE(4)
        TASTEBUD_SVD_PCASE(5)
        TASTEBUD_SVD_PCASE(6)
        TASTEBUD_SVD_PCASE(7)
        TASTEBUD_SVD_PCASE(8)
        TASTEBUD_SVD_PCASE(13)
        TASTEBUD_SVD_PCASE(16)
        default: return svd_run_padded<0>(rec, lo, hi, bu, bi, P, Q, v, h);
    }
#undef TASTEBUD_SVD_PCASE
}

// A buffer of n floats whose start is 64-byte aligned, uninitialised (the caller writes
// every element: zeroing it first cost as much as the copy).
struct AlignedFloats {
    std::unique_ptr<float[]> store;
    float *data;
    explicit AlignedFloats(int64_t n) : store(new float[size_t(n) + 16]) {
        const auto addr = reinterpret_cast<uintptr_t>(store.get());
        data = store.get() + ((64 - addr % 64) % 64) / sizeof(float);
    }
};

// Copies the rows of a (rows x f) matrix into rows of `stride` floats (zero after f) and
// back, on up to T threads (each thread a contiguous range of rows).
// Padded row slot[r] holds row r (row r when slot is empty).
inline void pad_rows(const float *src, float *dst, int64_t rows, int f, int64_t stride, int T,
                     const std::vector<int32_t> &slot) {
    parallel_for(T, rows < 4096 ? 1 : T, [&](int64_t t) {
        for (int64_t r = rows * t / T; r < rows * (t + 1) / T; ++r) {
            float *row = dst + (slot.empty() ? r : slot[r]) * stride;
            std::copy(src + r * f, src + (r + 1) * f, row);
            std::fill(row + f, row + stride, 0.0f);
        }
    });
}
inline void unpad_rows(const float *src, float *dst, int64_t rows, int f, int64_t stride, int T,
                       const std::vector<int32_t> &slot) {
    parallel_for(T, rows < 4096 ? 1 : T, [&](int64_t t) {
        for (int64_t r = rows * t / T; r < rows * (t + 1) / T; ++r) {
            const float *row = src + (slot.empty() ? r : slot[r]) * stride;
            std::copy(row, row + f, dst + r * f);
        }
    });
}

}  // namespace sgd_detail

// ===========================================================================================
// User-major order (SVD(order="users")): several users in flight, their rows in registers
// ===========================================================================================
//
// An update moves a user row and an item row between L2 and L1 and writes both back; on
// ml-100k that traffic, not the arithmetic, bounds the uniform-shuffle kernel above (about
// 15 ns per update, benchmarks/micro/sgd_row_update.cpp). Visiting a user's ratings one
// after the other keeps the user row in registers, so only the item row moves. One user at
// a time is latency-bound instead (dot product -> error -> row update -> next dot product,
// about 23 ns), so kSvdLanes users are in flight and take turns, one rating each. Their
// rows are held as s * p~ (s a scalar): the weight decay (1 - lr reg) p becomes s' = a s and
// the update one FMA per vector. Measured on ml-100k (1 thread, 100 factors, 20 epochs):
// 22 ms per fit against 29 ms for the uniform shuffle, same RMSE.
//
// The visiting order of one epoch over a block (svd_users_order spells it out; the lane
// kernel and the general path both follow it):
//  1. the block's segments (one user's ratings each) in a Fisher-Yates order drawn from sm;
//  2. lanes 0..L-1 take segments from that order in turn; taking a segment of m ratings
//     draws a start o in [0, m) from sm, and the lane visits positions o, ..., m-1, 0, ...,
//     o-1 of the segment;
//  3. a step visits the next rating of every lane that holds a segment, in lane order;
//     after a step every lane whose segment is done takes the next one, in lane order,
//     until the order is exhausted.
// Two lanes of a step always hold different users; when they hold the same item, the step
// runs the lanes one after the other, so the result is always that of applying the updates
// sequentially in this order (rounding aside).

// A rating inside a user-major block: the user is implied by its segment.
struct SvdItemRating {
    int32_t i;
    float r;
};

constexpr int kSvdLanes = 3;

// Fisher-Yates permutation of [0, n) into order[0..n).
inline void svd_permutation(int32_t *order, int64_t n, SplitMix64 &sm) {
    for (int64_t s = 0; s < n; ++s) order[s] = int32_t(s);
    for (int64_t j = n - 1; j > 0; --j)
        std::swap(order[j], order[sm.below(uint64_t(j + 1))]);
}

// The visiting order of one user-major epoch (see above): writes the ratings of the block
// (segment s: user seg_user[s], ratings rec[seg[s], seg[s + 1])) into `out` as records, in
// the order their updates are applied.
inline void svd_users_order(const SvdItemRating *rec, const int64_t *seg,
                            const int32_t *seg_user, int64_t n_seg, int32_t *order,
                            SplitMix64 &sm, SvdRecord *out) {
    constexpr int L = kSvdLanes;
    svd_permutation(order, n_seg, sm);
    int64_t next = 0, n_out = 0, base[L] = {}, len[L] = {}, idx[L] = {}, left[L] = {};
    int32_t user[L] = {};
    bool held[L] = {};
    auto take = [&](int l) {
        held[l] = next < n_seg;
        if (!held[l]) return;
        const int32_t s = order[next++];
        base[l] = seg[s];
        user[l] = seg_user[s];
        len[l] = left[l] = seg[s + 1] - seg[s];
        idx[l] = int64_t(sm.below(uint64_t(len[l])));
    };
    auto visit = [&](int l) {
        const SvdItemRating &x = rec[base[l] + idx[l]];
        out[n_out++] = SvdRecord{user[l], x.i, x.r, 0};
        idx[l] = idx[l] + 1 == len[l] ? 0 : idx[l] + 1;
        --left[l];
    };
    bool any = true;
    for (int l = 0; l < L; ++l) take(l);
    while (any) {
        any = false;
        for (int l = 0; l < L; ++l)
            if (held[l]) visit(l);
        for (int l = 0; l < L; ++l) {
            if (held[l] && left[l] == 0) take(l);
            any |= held[l];
        }
    }
}

namespace sgd_detail {

template <int V>
__attribute__((always_inline)) inline svd_a16 svd_dot_rows(const svd_a16 *p, const svd_a16 *q) {
    svd_a16 acc0 = p[0] * q[0], acc1 = {0};
    int k = 1;
    for (; k + 2 <= V; k += 2) {
        acc1 += p[k] * q[k];
        acc0 += p[k + 1] * q[k + 1];
    }
    if (k < V) acc1 += p[k] * q[k];
    return acc0 + acc1;
}

// Calls f(std::integral_constant<int, 0>{}), ..., f(std::integral_constant<int, N - 1>{}):
// a loop whose index is a compile-time constant in the body.
template <class F, int... I>
__attribute__((always_inline)) inline void static_for_impl(F &f, std::integer_sequence<int, I...>) {
    (f(std::integral_constant<int, I>{}), ...);
}
template <int N, class F>
__attribute__((always_inline)) inline void static_for(F &&f) {
    static_for_impl(f, std::make_integer_sequence<int, N>{});
}

// One user-major epoch over a block with kSvdLanes users in flight (V aligned 16-float
// blocks per row, V <= 8 so that the lanes' rows fit the registers; needs a_pu > 1/2 so
// that the lane scales stay normal between renormalisations).
//
// Every index into the lane state is a compile-time constant (static_for, lane masks as
// template constants, factor loops fully unrolled): GCC keeps an array in registers only
// when it is never indexed at run time. With run-time lane indices (the clash path and the
// refill loop) it kept all p[l] on the stack, loading and storing them at every step;
// compile-time lanes made the fit about 14 % faster on both MovieLens sets (median of paired
// 1-thread runs, same results). The row updates run lane by lane, so only one lane's two multipliers are live.
template <int V>
__attribute__((always_inline)) inline double svd_run_users(
    const SvdItemRating *rec, const int64_t *seg, const int32_t *seg_user, int64_t n_seg,
    int32_t *order, SplitMix64 &sm, float *bu, float *bi, float *P, float *Q, const SvdRates &h) {
    constexpr int L = kSvdLanes;
    constexpr int64_t stride = int64_t(V) * 16;
    const float a_bu = 1.0f - h.lr_bu * h.reg_bu, a_bi = 1.0f - h.lr_bi * h.reg_bi;
    const float a_pu = 1.0f - h.lr_pu * h.reg_pu, a_qi = 1.0f - h.lr_qi * h.reg_qi;
    const float mu = h.mu, lr_bu = h.lr_bu, lr_bi = h.lr_bi, lr_pu = h.lr_pu, lr_qi = h.lr_qi;
    svd_permutation(order, n_seg, sm);
    int64_t next = 0;
    svd_a16 p[L][V];  // lane l's user row is scale[l] * p[l]
    float scale[L] = {}, b[L] = {};
    const SvdItemRating *base[L] = {};
    int32_t idx[L] = {}, len[L] = {}, left[L] = {};  // segments shorter than 2^31 (checked)
    int64_t u[L] = {};
    double sse[L] = {};
    auto take = [&](auto lane) __attribute__((always_inline)) {
        constexpr int l = decltype(lane)::value;
        if (next == n_seg) {
            u[l] = -1;
            return;
        }
        const int32_t s = order[next++];
        if (next < n_seg) {  // what the next take loads: it may sit in another core's cache
            const int64_t u_next = seg_user[order[next]];
            const char *row = reinterpret_cast<const char *>(P + u_next * stride);
            for (int line = 0; line < V * 64; line += 64) __builtin_prefetch(row + line);
            __builtin_prefetch(bu + u_next);
        }
        len[l] = left[l] = int32_t(seg[s + 1] - seg[s]);
        idx[l] = int32_t(sm.below(uint64_t(len[l])));
        base[l] = rec + seg[s];
        u[l] = seg_user[s];
        const svd_a16 *src = reinterpret_cast<const svd_a16 *>(P + u[l] * stride);
#pragma GCC unroll 8
        for (int k = 0; k < V; ++k) p[l][k] = src[k];
        scale[l] = 1.0f;
        b[l] = bu[u[l]];
    };
    auto put = [&](auto lane) __attribute__((always_inline)) {
        constexpr int l = decltype(lane)::value;
        svd_a16 *dst = reinterpret_cast<svd_a16 *>(P + u[l] * stride);
#pragma GCC unroll 8
        for (int k = 0; k < V; ++k) dst[k] = scale[l] * p[l][k];
        bu[u[l]] = b[l];
    };
    // Visits the current rating rc[l] of every lane l in the (compile-time) mask; their
    // items are distinct.
    auto step = [&](auto mask_constant, const SvdItemRating *rc) __attribute__((always_inline)) {
        constexpr int mask = decltype(mask_constant)::value;
        svd_a16 *q[L];
        float dot[L], cp[L], cq[L];
        static_for<L>([&](auto lane) __attribute__((always_inline)) {
            constexpr int l = decltype(lane)::value;
            if constexpr ((mask >> l) & 1) {
                idx[l] = idx[l] + 1 == len[l] ? 0 : idx[l] + 1;
                --left[l];
                // The next rating's item row (a loop with a compile-time bound: prefetch_row's
                // runtime bound measured 20 % slower on ml-latest-small).
                const char *next_q =
                    reinterpret_cast<const char *>(Q + int64_t(base[l][idx[l]].i) * stride);
                for (int line = 0; line < V * 64; line += 64) __builtin_prefetch(next_q + line);
                q[l] = reinterpret_cast<svd_a16 *>(Q + int64_t(rc[l].i) * stride);
            }
        });
        static_for<L>([&](auto lane) __attribute__((always_inline)) {
            constexpr int l = decltype(lane)::value;
            if constexpr ((mask >> l) & 1) dot[l] = hsum16(svd_dot_rows<V>(p[l], q[l]));
        });
        static_for<L>([&](auto lane) __attribute__((always_inline)) {
            constexpr int l = decltype(lane)::value;
            if constexpr ((mask >> l) & 1) {
                // The chain from one dot product to the next runs through err, cp and the
                // row update only: the rest of err and the multipliers of err do not wait.
                const float b_i = bi[rc[l].i];
                const float rest = rc[l].r - ((mu + b[l]) + b_i);
                const float err = rest - scale[l] * dot[l];
                b[l] = a_bu * b[l] + lr_bu * err;
                bi[rc[l].i] = a_bi * b_i + lr_bi * err;
                // p' = a p + cp q = s' (p~ + (cp / s') q) with s' = a s; q' = a q + cq s p~.
                const float s1 = a_pu * scale[l];
                cp[l] = err * (lr_pu / s1);
                cq[l] = err * (lr_qi * scale[l]);
                scale[l] = s1;
                sse[l] += double(err) * double(err);
            }
        });
        static_for<L>([&](auto lane) __attribute__((always_inline)) {
            constexpr int l = decltype(lane)::value;
            if constexpr ((mask >> l) & 1) {
                // q' = a q + cq p and p' = p + cp q, written so that no operand needs a copy
                // before the fused multiply-adds that overwrite their first argument (GCC
                // emitted ~145 register copies in this kernel otherwise; 0-4.5 % of the fit).
#pragma GCC unroll 8
                for (int k = 0; k < V; ++k) {
                    const svd_a16 qk = q[l][k];
                    svd_a16 q_new = qk * a_qi;
                    q_new += cq[l] * p[l][k];
                    p[l][k] += cp[l] * qk;
                    q[l][k] = q_new;
                }
                if (__builtin_expect(scale[l] < 0x1p-16f, 0)) {
#pragma GCC unroll 8
                    for (int k = 0; k < V; ++k) p[l][k] *= scale[l];
                    scale[l] = 1.0f;
                }
            }
        });
    };
    bool all = true;
    static_for<L>([&](auto lane) __attribute__((always_inline)) {
        take(lane);
        all &= u[decltype(lane)::value] >= 0;
    });
    while (all) {
        SvdItemRating rc[L];
        for (int l = 0; l < L; ++l) rc[l] = base[l][idx[l]];
        bool clash = false;
        for (int l = 1; l < L; ++l)
            for (int m = 0; m < l; ++m) clash |= rc[l].i == rc[m].i;
        if (__builtin_expect(!clash, 1)) {
            step(std::integral_constant<int, (1 << L) - 1>{}, rc);
        } else {
            static_for<L>([&](auto lane) __attribute__((always_inline)) {
                step(std::integral_constant<int, 1 << decltype(lane)::value>{}, rc);
            });
        }
        static_for<L>([&](auto lane) __attribute__((always_inline)) {
            constexpr int l = decltype(lane)::value;
            if (left[l] == 0) {
                put(lane);
                take(lane);
                all &= u[l] >= 0;
            }
        });
    }
    // Fewer lanes than L hold a segment (the order is exhausted): they take turns.
    for (bool any = true; any;) {
        any = false;
        static_for<L>([&](auto lane) __attribute__((always_inline)) {
            constexpr int l = decltype(lane)::value;
            if (u[l] < 0) return;
            SvdItemRating rc[L];
            rc[l] = base[l][idx[l]];
            step(std::integral_constant<int, 1 << l>{}, rc);
            if (left[l] == 0) {
                put(lane);
                u[l] = -1;
            }
            any |= u[l] >= 0;
        });
    }
    return (sse[0] + sse[1]) + sse[2];
}

// One user-major epoch over a block in the general case: the order of svd_users_order
// applied one rating at a time by svd_run_padded (`scratch`: one record per rating).
TASTEBUD_CLONES
static double svd_users_general(const SvdItemRating *rec, const int64_t *seg,
                                const int32_t *seg_user, int64_t n_seg, int32_t *order,
                                SplitMix64 &sm, float *bu, float *bi, float *P, float *Q, int v,
                                const SvdRates &h, SvdRecord *scratch) {
    svd_users_order(rec, seg, seg_user, n_seg, order, sm, scratch);
    return svd_run_padded<0>(scratch, 0, seg[n_seg] - seg[0], bu, bi, P, Q, v, h);
}

// The lane kernel for V blocks per row, one cloned function per V (not flattened:
// svd_run_users is always inlined into each clone). Measured on ml-100k: one switch over
// all V in a single flattened clone made the fit 9 % slower (25.5 against 23.4 ms).
template <int V>
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    !defined(TASTEBUD_NO_TARGET_CLONES)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
static double svd_users_lanes(const SvdItemRating *rec, const int64_t *seg,
                              const int32_t *seg_user, int64_t n_seg, int32_t *order,
                              SplitMix64 &sm, float *bu, float *bi, float *P, float *Q,
                              const SvdRates &h) {
    return svd_run_users<V>(rec, seg, seg_user, n_seg, order, sm, bu, bi, P, Q, h);
}

// Whether the lane kernel applies: rows of at most 8 blocks (they fit the registers),
// a_pu > 1/2 (the lane scales stay normal between renormalisations) and segments shorter
// than 2^31. Otherwise svd_users_general runs the same order.
inline bool svd_lanes_apply(int v, const SvdRates &h, bool short_segments) {
    return v >= 1 && v <= 8 && short_segments && 1.0f - h.lr_pu * h.reg_pu > 0.5f;
}

// One user-major epoch over a block. `scratch` (one record per rating of the block) is
// used by the general path only.
inline double svd_worker_users(const SvdItemRating *rec, const int64_t *seg,
                               const int32_t *seg_user, int64_t n_seg, int32_t *order,
                               SplitMix64 &sm, float *bu, float *bi, float *P, float *Q, int v,
                               const SvdRates &h, bool lanes, SvdRecord *scratch) {
    static_assert(kSvdLanes == 3, "svd_run_users sums three lane accumulators");
    if (lanes) {
#define TASTEBUD_SVD_UCASE(N) \
    case N: return svd_users_lanes<N>(rec, seg, seg_user, n_seg, order, sm, bu, bi, P, Q, h);
        switch (v) {
            TASTEBUD_SVD_UCASE(1)
            TASTEBUD_SVD_UCASE(2)
            TASTEBUD_SVD_UCASE(3)
            TASTEBUD_SVD_UCASE(4)
            TASTEBUD_SVD_UCASE(5)
            TASTEBUD_SVD_UCASE(6)
            TASTEBUD_SVD_UCASE(7)
            TASTEBUD_SVD_UCASE(8)
            default: break;
        }
#undef TASTEBUD_SVD_UCASE
    }
    return svd_users_general(rec, seg, seg_user, n_seg, order, sm, bu, bi, P, Q, v, h, scratch);
}

}  // namespace sgd_detail

// Fisher-Yates shuffle of the packed records with svd_shuffle's draws (the same permutation).
inline void svd_shuffle_records(SvdRecord *rec, int64_t n, uint64_t &state) {
    SplitMix64 sm(state);
    for (int64_t j = n - 1; j > 0; --j) {
        std::swap(rec[j], rec[sm.below(uint64_t(j + 1))]);
    }
    state = sm.state;
}

// Splits [0, n) into `parts` contiguous ranges of about equal cost and returns the stratum
// of every index. Index k costs counts[k] (its ratings) plus `extra` when it has any; end p
// is the index whose cost before it is closest to p / parts of the total (the lower one on a
// tie).
inline std::vector<int32_t> svd_strata(const std::vector<int64_t> &counts, int parts,
                                       int64_t extra) {
    const int64_t n = static_cast<int64_t>(counts.size());
    std::vector<int64_t> before(size_t(n) + 1, 0);  // before[k]: the cost of [0, k)
    for (int64_t k = 0; k < n; ++k)
        before[k + 1] = before[k] + counts[k] + (counts[k] > 0 ? extra : 0);
    std::vector<int32_t> of(counts.size(), 0);
    int64_t start = 0;
    for (int p = 1; p <= parts; ++p) {
        int64_t end = n;
        if (p < parts) {  // costs times `parts` against total * p: no rounding
            const int64_t target = before[size_t(n)] * p;
            end = start;
            while (end < n && before[end] * parts < target) ++end;
            if (end > start && target - before[end - 1] * parts <= before[end] * parts - target)
                --end;
        }
        for (int64_t k = start; k < end; ++k) of[k] = p - 1;
        start = end;
    }
    return of;
}

// The item strata's cost of an item beyond its ratings, in ratings: its row is fetched into
// L1 at least once per block and epoch. Measured per thread (2 threads, ml-100k, 5 folds,
// per-block timers): with exact equal-count cuts the long-tail stratum's thread took
// 0.5-9 % longer than the other; with this cost the slower thread's time per fit fell 3 %
// below the previous rule's (cuts rounded down to multiples of 16 items); 1 and 3 did no
// better, 4 worse; ml-latest-small fitted 5 % faster (benchmarks/README.md, stop 18).
constexpr int64_t kSvdItemRowCost = 2;

// The DSGD strata of every user and item for T threads (all 0 when T == 1): block of a
// rating = us[user] * T + is[item].
//
// The cuts are exact (moving the item cut by 16 items moved 3-8 % of an epoch's work from
// one thread to the other on ml-100k), so two strata may meet inside a cache line of the
// bias arrays, which the threads write at every update. The kernels therefore index users
// and items by slot: id k of stratum s has its bias and padded row at slot k + 16 s of
// their copies, 16 unused slots (64 bytes) between consecutive strata.
struct SvdSlots {
    std::vector<int32_t> of;  // empty (slot k = k) when T == 1 or the slots would not fit int32
    int64_t n;                // number of slots
    SvdSlots(const std::vector<int32_t> &stratum, int T) : n(int64_t(stratum.size())) {
        if (T == 1 || n + 16 * int64_t(T - 1) > std::numeric_limits<int32_t>::max()) return;
        of.resize(stratum.size());
        for (int64_t k = 0; k < n; ++k) of[k] = static_cast<int32_t>(k + 16 * stratum[k]);
        n += 16 * int64_t(T - 1);
    }
    int32_t operator()(int32_t k) const { return of.empty() ? k : of[k]; }
};

struct SvdStrata {
    std::vector<int32_t> us, is;
    int T;
    SvdStrata(const int32_t *users, const int32_t *items, int64_t nnz, int64_t n_users,
              int64_t n_items, int T_)
        : us(size_t(n_users), 0), is(size_t(n_items), 0), T(T_) {
        if (T == 1) return;
        std::vector<int64_t> ucount(n_users, 0), icount(n_items, 0);
        for (int64_t t = 0; t < nnz; ++t) {
            ++ucount[users[t]];
            ++icount[items[t]];
        }
        us = svd_strata(ucount, T, 0);
        is = svd_strata(icount, T, kSvdItemRowCost);
    }
    int64_t block(int32_t u, int32_t i) const { return int64_t(us[u]) * T + is[i]; }
};

// The DSGD schedule shared by both orders: `epochs` epochs of T phases; in phase s the T
// blocks (a, (a + s) mod T) run in parallel, block b = a * T + c being run(e, b), which
// returns its sum of squared errors; sse_out[e] = the epoch's sum. A thread takes the blocks
// of one item stratum c (item rows stay in its cache; user rows move, and the lane kernel
// prefetches them). Blocks of a phase share no user and no item, so the result does not
// depend on which thread runs which block.
template <class RunBlock>
inline void svd_dsgd_epochs(int T, int epochs, double *sse_out, RunBlock run) {
    std::vector<double> sse(size_t(T) * T, 0.0);
#pragma omp parallel num_threads(T) if (T > 1)
    {
#ifdef _OPENMP
        const int tid = omp_get_thread_num(), team = omp_get_num_threads();
#else
        const int tid = 0, team = 1;
#endif
        for (int e = 0; e < epochs; ++e) {
            for (int s = 0; s < T; ++s) {
                for (int c = tid; c < T; c += team) {
                    const int64_t b = int64_t((c + T - s) % T) * T + c;
                    sse[b] = run(e, b);
                }
#pragma omp barrier
            }
#pragma omp single
            {
                double total = 0.0;
                for (double x : sse) total += x;
                sse_out[e] = total;
            }
        }
    }
}

// The user-major epochs of svd_fit (order="users"; rows already padded to v * 16 floats;
// P, bu, Q and bi indexed by slot, SvdSlots). Blocks (user stratum, item stratum) as for
// DSGD (one block when T == 1). Within a block
// the ratings are grouped by user (a segment per user, users in index order, a user's
// ratings in array order), then every segment is shuffled once (Fisher-Yates, a stream per
// block drawn from `prep`). Epoch e runs the phases of DSGD; block b's epoch follows the
// user-major order above with a stream drawn from (epoch seed e, b). The seeds: prep is the
// first output of SplitMix64(state), the epoch seeds the next `epochs` outputs.
inline void svd_fit_users(const int32_t *users, const int32_t *items, const float *ratings,
                          int64_t nnz, float *bu, float *bi, float *P, float *Q, int64_t n_users,
                          int v, const SvdRates &h, int epochs, uint64_t &state,
                          const SvdStrata &strata, const SvdSlots &user_slot,
                          const SvdSlots &item_slot, double *sse_out) {
    const int T = strata.T;
    // The ratings in user order (stable): position k holds triple by_user[k], or triple k
    // where the triples are already sorted by user (the models pass them so).
    bool sorted = true;
    for (int64_t t = 1; t < nnz && sorted; ++t) sorted = users[t - 1] <= users[t];
    std::vector<int64_t> by_user;
    if (!sorted) {
        std::vector<int64_t> at(size_t(n_users) + 1, 0);
        for (int64_t t = 0; t < nnz; ++t) ++at[size_t(users[t]) + 1];
        for (int64_t u = 0; u < n_users; ++u) at[u + 1] += at[u];
        by_user.resize(static_cast<size_t>(nnz));
        for (int64_t t = 0; t < nnz; ++t) by_user[at[users[t]]++] = t;
    }
    auto triple = [&](int64_t k) { return by_user.empty() ? k : by_user[k]; };
    // User strata are contiguous ranges of users, so user stratum a holds the positions
    // [first[a], first[a + 1]); its blocks (a, 0), ..., (a, T - 1) fill the same range of
    // `rec`, and each stratum is prepared on its own thread.
    std::vector<int64_t> first(size_t(T) + 1, nnz);
    first[0] = 0;
    for (int a = 1; a < T; ++a) {
        int64_t lo = first[a - 1], hi = nnz;  // first position whose user is in stratum >= a
        while (lo < hi) {
            const int64_t mid = lo + (hi - lo) / 2;
            if (strata.us[users[triple(mid)]] >= a) hi = mid; else lo = mid + 1;
        }
        first[a] = lo;
    }
    const int64_t n_blocks = int64_t(T) * T;
    std::vector<SvdItemRating> rec(static_cast<size_t>(nnz));
    // Segments of block b (a block's ratings of one user): starts seg[b][s] and the block's
    // end as a last entry, users seg_user[b][s]; order[b]: the kernel's scratch.
    std::vector<std::vector<int64_t>> seg(static_cast<size_t>(n_blocks));
    std::vector<std::vector<int32_t>> seg_user(static_cast<size_t>(n_blocks)),
        order(static_cast<size_t>(n_blocks));
    SplitMix64 seeds(state);
    const uint64_t prep = seeds.next();
    std::vector<uint64_t> epoch_seed(size_t(std::max(epochs, 0)));
    for (auto &e : epoch_seed) e = seeds.next();
    state = seeds.state;
    std::vector<char> short_segments(size_t(T), 1);
    // Where the ratings [lo, hi) are sorted by user and, within a user, by item stratum
    // (CSR order: the models' case), calls run(u, c, k0, k1) for the ratings [k0, k1) of
    // user u in item stratum c, one call per (u, c) in their order, and returns true;
    // otherwise returns false, having visited some of the runs.
    auto sorted_runs = [&](int64_t lo, int64_t hi, auto run) {
        if (!by_user.empty()) return false;
        for (int64_t k = lo; k < hi;) {
            const int32_t u = users[k];
            for (int c = 0; c < T; ++c) {
                const int64_t k0 = k;
                while (k < hi && users[k] == u && strata.is[items[k]] == c) ++k;
                if (k > k0) run(u, c, k0, k);
            }
            if (k < hi && users[k] == u) return false;
        }
        return true;
    };
    parallel_for(T, T, [&](int64_t a) {
        const int64_t lo = first[a], hi = first[a + 1];
        std::vector<int64_t> fill(size_t(T), 0);
        // The sizes of blocks (a, 0), ..., (a, T - 1). Runs of a user and stratum are
        // counted whole: a count per rating would chain every increment through memory.
        const bool by_runs = sorted_runs(
            lo, hi, [&](int32_t, int c, int64_t k0, int64_t k1) { fill[c] += k1 - k0; });
        if (!by_runs) {
            std::fill(fill.begin(), fill.end(), 0);
            for (int64_t k = lo; k < hi; ++k) ++fill[strata.is[items[triple(k)]]];
        }
        int64_t next_start = lo;
        for (int c = 0; c < T; ++c) {  // fill[c]: where block (a, c) is written next
            const int64_t count = fill[c];
            fill[c] = next_start;
            next_start += count;
        }
        if (by_runs) {
            sorted_runs(lo, hi, [&](int32_t u, int c, int64_t k0, int64_t k1) {
                const int64_t b = a * T + c;
                int64_t at = fill[c];
                seg[b].push_back(at);
                seg_user[b].push_back(user_slot(u));
                for (int64_t k = k0; k < k1; ++k)
                    rec[at++] = SvdItemRating{item_slot(items[k]), ratings[k]};
                fill[c] = at;
            });
        } else {  // any order: a rating at a time (the same blocks and segments)
            std::vector<int32_t> last(size_t(T), -1);  // the user of each block's last segment
            for (int64_t k = lo; k < hi; ++k) {
                const int64_t t = triple(k);
                const int c = strata.is[items[t]];
                const int64_t b = a * T + c, at = fill[c]++;
                rec[at] = SvdItemRating{item_slot(items[t]), ratings[t]};
                if (users[t] != last[c]) {
                    seg[b].push_back(at);
                    seg_user[b].push_back(user_slot(users[t]));
                    last[c] = users[t];
                }
            }
        }
        bool all_short = true;
        for (int c = 0; c < T; ++c) {
            const int64_t b = a * T + c;
            seg[b].push_back(fill[c]);
            order[b].resize(seg_user[b].size());
            // Every segment shuffled once (Fisher-Yates, the block's stream from prep).
            SplitMix64 sm = SplitMix64::block(prep, b);
            const std::vector<int64_t> &sb = seg[b];
            for (size_t s = 0; s + 1 < sb.size(); ++s) {
                all_short &= sb[s + 1] - sb[s] < (int64_t(1) << 31);
                for (int64_t j = sb[s + 1] - 1; j > sb[s]; --j)
                    std::swap(rec[j], rec[sb[s] + int64_t(sm.below(uint64_t(j - sb[s] + 1)))]);
            }
        }
        short_segments[a] = all_short;
    });
    const bool lanes = sgd_detail::svd_lanes_apply(
        v, h, std::all_of(short_segments.begin(), short_segments.end(), [](char x) { return x; }));
    // The general path's records, allocated here (an allocation failure inside the
    // parallel region would end the process): block b uses [seg[b].front(), ...).
    std::vector<SvdRecord> scratch(lanes ? 0 : static_cast<size_t>(nnz));
    svd_dsgd_epochs(T, epochs, sse_out, [&](int e, int64_t b) {
        SplitMix64 sm = SplitMix64::block(epoch_seed[e], b);
        return sgd_detail::svd_worker_users(
            rec.data(), seg[b].data(), seg_user[b].data(), int64_t(seg_user[b].size()),
            order[b].data(), sm, bu, bi, P, Q, v, h, lanes,
            lanes ? nullptr : scratch.data() + seg[b].front());
    });
}

// `epochs` SGD epochs over the triples (read only; indices validated by the caller).
// P (n_users x f), Q (n_items x f), bu, bi are read as the start and written at the end.
// shuffle_state: SplitMix64 state advanced by the shuffles, or null for array order.
// sse_out[e]: the sum of squared errors seen during epoch e.
//
// num_threads == 1: the sequential algorithm (each epoch one uniform shuffle, svd_shuffle's
// permutation). T = num_threads > 1: stratified SGD (DSGD, Gemulla, Nijkamp, Haas & Sismanis
// 2011) instead of Hogwild: users and items are cut into T contiguous strata of about equal
// cost (svd_strata: ratings, plus kSvdItemRowCost per item), giving T x T blocks; an epoch
// is T phases, and in phase s the blocks (a, (a + s) mod T) run in parallel
// (svd_dsgd_epochs), each block's ratings shuffled with a stream drawn from (state, epoch,
// block). Blocks of one phase share no user and no item,
// so the threads never write the same parameters (no races, no cache lines bouncing
// between cores, which made Hogwild on ml-100k slower than one thread) and the result does
// not depend on timing: deterministic for a given thread count, though not equal to the
// one-thread result. At most nnz / 4096 threads run.
//
// user_major (with a shuffle_state): the user-major order of svd_fit_users instead of the
// uniform shuffles, on the same blocks.
inline void svd_fit(const int32_t *users, const int32_t *items, const float *ratings, int64_t nnz,
                    float *bu, float *bi, float *P, float *Q, int64_t n_users, int64_t n_items,
                    int f, const SvdRates &h, int epochs, uint64_t *shuffle_state,
                    int num_threads, double *sse_out, bool user_major = false) {
    const int v = (f + 15) / 16;
    const int64_t stride = int64_t(v) * 16;
    int T = resolve_threads(num_threads);
    T = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(T, nnz / 4096)));
#ifndef _OPENMP
    T = 1;
#endif
    const SvdStrata strata(users, items, nnz, n_users, n_items, T);
    // The rows and biases by slot (SvdSlots; bu and bi themselves when T == 1).
    const SvdSlots user_slot(strata.us, T), item_slot(strata.is, T);
    sgd_detail::AlignedFloats Pp(user_slot.n * stride), Qp(item_slot.n * stride);
    sgd_detail::pad_rows(P, Pp.data, n_users, f, stride, T, user_slot.of);
    sgd_detail::pad_rows(Q, Qp.data, n_items, f, stride, T, item_slot.of);
    auto slotted = [](float *b, const SvdSlots &slot, std::vector<float> &copy) {
        if (slot.of.empty()) return b;
        copy.assign(size_t(slot.n), 0.0f);
        for (size_t k = 0; k < slot.of.size(); ++k) copy[slot.of[k]] = b[k];
        return copy.data();
    };
    std::vector<float> bu_copy, bi_copy;
    float *const bus = slotted(bu, user_slot, bu_copy);
    float *const bis = slotted(bi, item_slot, bi_copy);
    std::vector<SvdRecord> rec(static_cast<size_t>(user_major && shuffle_state ? 0 : nnz));
    if (user_major && shuffle_state) {
        svd_fit_users(users, items, ratings, nnz, bus, bis, Pp.data, Qp.data, n_users, v, h,
                      epochs, *shuffle_state, strata, user_slot, item_slot, sse_out);
    } else if (T == 1) {
        for (int64_t t = 0; t < nnz; ++t) rec[t] = SvdRecord{users[t], items[t], ratings[t], 0};
        for (int e = 0; e < epochs; ++e) {
            if (shuffle_state) svd_shuffle_records(rec.data(), nnz, *shuffle_state);
            sse_out[e] = sgd_detail::svd_worker_padded(rec.data(), 0, nnz, bu, bi, Pp.data,
                                                       Qp.data, v, h);
        }
    } else {
        // Counting sort of the records into blocks (a, b) = (user stratum, item stratum),
        // stable: within a block the ratings keep their array order.
        std::vector<int64_t> start(size_t(T) * T + 1, 0);
        for (int64_t t = 0; t < nnz; ++t) ++start[strata.block(users[t], items[t]) + 1];
        for (size_t b = 0; b + 1 < start.size(); ++b) start[b + 1] += start[b];
        std::vector<int64_t> fill(start.begin(), start.end() - 1);
        for (int64_t t = 0; t < nnz; ++t)
            rec[fill[strata.block(users[t], items[t])]++] =
                SvdRecord{user_slot(users[t]), item_slot(items[t]), ratings[t], 0};
        std::vector<uint64_t> epoch_seed(epochs, 0);
        if (shuffle_state) {
            SplitMix64 sm(*shuffle_state);
            for (auto &s : epoch_seed) s = sm.next();
            *shuffle_state = sm.state;
        }
        svd_dsgd_epochs(T, epochs, sse_out, [&](int e, int64_t b) {
            SvdRecord *blk = rec.data() + start[b];
            const int64_t m = start[b + 1] - start[b];
            if (shuffle_state) {
                uint64_t st = SplitMix64::block(epoch_seed[e], b).state;
                svd_shuffle_records(blk, m, st);
            }
            return sgd_detail::svd_worker_padded(blk, 0, m, bus, bis, Pp.data, Qp.data, v, h);
        });
    }
    sgd_detail::unpad_rows(Pp.data, P, n_users, f, stride, T, user_slot.of);
    sgd_detail::unpad_rows(Qp.data, Q, n_items, f, stride, T, item_slot.of);
    for (size_t k = 0; k < user_slot.of.size(); ++k) bu[k] = bu_copy[user_slot.of[k]];
    for (size_t k = 0; k < item_slot.of.size(); ++k) bi[k] = bi_copy[item_slot.of[k]];
}

}  // namespace tastebud
