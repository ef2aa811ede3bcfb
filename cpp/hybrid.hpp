// Feature-embedding hybrid factorization (Kula 2015, "Metadata Embeddings for User and Item
// Cold-start Recommendations", the LightFM model), trained by Hogwild SGD (Recht et al. 2011).
//
// A user's representation is the weighted sum of the embeddings of its features,
//   p_u = sum_a x_ua U_a,  b_u = sum_a x_ua c_a,
// an item's likewise (q_i, b_i from V, d), and the score is s(u, i) = p_u . q_i + b_u + b_i.
// With one identity feature per user and item this is plain matrix factorization with biases.
//
// Losses (per sampled positive (u, i)):
//   BPR      (Rendle et al. 2009): -log sigmoid(s_ui - s_uj), one sampled negative j.
//   WARP     (Weston et al. 2011): draw negatives until one violates the margin
//            (s_uj > s_ui - 1) or max_sampled draws are spent; after `trials` draws the
//            positive's rank is estimated as floor((n_items - 1) / trials) and the hinge
//            1 - s_ui + s_uj is weighted by log(max(1, rank)) (LightFM's weighting).
//   k-OS     (Weston et al. 2013): per user, the k-th best scored of n sampled positives is
//            the positive of a WARP step; an epoch visits every user once.
//   logistic: -log sigmoid(s_ui) on the positive and -log sigmoid(-s_uj) on one sampled
//            negative (negative sampling; LightFM's logistic loss uses only observed entries).
// Identity dropout (DropoutNet, Volkovs et al. 2017): with probability identity_dropout a
// sample's items leave out their identity features (see cold_mode), for item cold start.
// Every parameter touched by a step also gets the gradient alpha * theta of a per-feature L2
// penalty (alpha = user_alpha or item_alpha), applied lazily only where a feature occurs.
//
// Learning schedules, per scalar parameter:
//   adagrad  (Duchi et al. 2011): theta -= lr g / sqrt(G); G += g^2, G starting at 1, so
//            the first step of every parameter is exactly lr g (as in LightFM).
//   adadelta (Zeiler 2012): E[g2] = rho E[g2] + (1 - rho) g^2;
//            dx = sqrt(E[dx2] + eps) / sqrt(E[g2] + eps) g; E[dx2] = rho E[dx2] + (1 - rho) dx^2;
//            theta -= dx.
//
// Threads update the shared arrays without locks (Hogwild). Each thread owns the positives of
// a contiguous range of users, shuffled anew every epoch, and its own random stream, derived
// from (seed, epoch, thread): with one thread the result is fully deterministic.
// Kernels take raw pointers and assume validated input (bindings.cpp checks).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "topk.hpp"  // parallel_for, resolve_threads

namespace tastebud {
namespace hybrid {

enum Loss : int { WARP = 0, BPR = 1, LOGISTIC = 2, WARP_KOS = 3 };
enum Schedule : int { ADAGRAD = 0, ADADELTA = 1 };

// SplitMix64 finaliser (seeding) and xoshiro128+-style 64-bit generator (xorshift64*):
// small, fast, and good enough for sampling indices.
inline uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

struct Random {
    uint64_t s[2];
    Random(uint64_t seed, uint64_t a, uint64_t b) {
        s[0] = mix64(seed ^ mix64(a * 0x9E3779B97F4A7C15ULL + b));
        s[1] = mix64(s[0] + 0x632BE59BD9B4E019ULL);
        if ((s[0] | s[1]) == 0) s[1] = 1;
    }
    // xoroshiro128+ (Blackman & Vigna)
    uint64_t next() {
        const uint64_t s0 = s[0];
        uint64_t s1 = s[1];
        const uint64_t result = s0 + s1;
        s1 ^= s0;
        s[0] = ((s0 << 24) | (s0 >> 40)) ^ s1 ^ (s1 << 16);
        s[1] = (s1 << 37) | (s1 >> 27);
        return result;
    }
    // Uniform integer in [0, n), n < 2^32 (Lemire's multiply-shift on the high bits).
    int64_t below(int64_t n) {
        return static_cast<int64_t>(((next() >> 32) * static_cast<uint64_t>(n)) >> 32);
    }
};

// A CSR matrix with int64 indptr, int32 indices and float32 values.
struct Csr {
    const int64_t *indptr = nullptr;
    const int32_t *indices = nullptr;
    const float *data = nullptr;
    int64_t rows = 0;
    // Optional dense membership bitmap (rows x cols bits, row-major) for row_contains.
    const uint64_t *bits = nullptr;
    int64_t cols = 0;
};

// One side's (users' or items') feature parameters and optimiser state. Arrays are
// n_features x f (emb) and n_features (bias). acc1 = adagrad G or adadelta E[g^2];
// acc2 = adadelta E[dx^2] (unused by adagrad).
struct Side {
    float *emb = nullptr, *bias = nullptr;
    float *emb_acc1 = nullptr, *bias_acc1 = nullptr;
    float *emb_acc2 = nullptr, *bias_acc2 = nullptr;
    Csr features;
    float alpha = 0.0f;
    // Identity feature of each row (-1: none), for identity dropout; nullptr: none known.
    const int32_t *identity = nullptr;
};

struct Settings {
    int f = 0;
    int loss = WARP;
    int schedule = ADAGRAD;
    float learning_rate = 0.05f;
    float rho = 0.95f;
    float epsilon = 1e-6f;
    int max_sampled = 10;
    int k = 5;
    int n = 10;
    int64_t n_items = 0;
    // Identity dropout (DropoutNet, Volkovs et al. 2017): probability that a training sample
    // represents its items without their identity features (by side features alone).
    float identity_dropout = 0.0f;
};

// Whether `col` is in the sorted row `row` of m: a branch-free binary search (the outcome of
// each halving is a conditional move, not a jump the CPU must guess).
inline bool row_contains(const Csr &m, int64_t row, int32_t col) {
    if (m.bits) {
        const uint64_t b = static_cast<uint64_t>(row) * static_cast<uint64_t>(m.cols) +
                           static_cast<uint64_t>(col);
        return (m.bits[b >> 6] >> (b & 63)) & 1u;
    }
    const int32_t *base = m.indices + m.indptr[row];
    int64_t n = m.indptr[row + 1] - m.indptr[row];
    if (n == 0) return false;
    while (n > 1) {
        const int64_t half = n / 2;
        base = base[half] <= col ? base + half : base;
        n -= half;
    }
    return *base == col;
}

// The entries of m (with cols columns) as a dense bitmap for row_contains (one load instead
// of a binary search), or an empty vector when it would take more than max_bytes.
inline std::vector<uint64_t> membership_bits(const Csr &m, int64_t cols,
                                             int64_t max_bytes = int64_t(8) << 20) {
    return membership_bitmap(m.indptr, m.indices, m.rows, cols, max_bytes);
}

// WARP's rank estimate after `trials` draws found the first violator, and its loss weight.
inline int64_t warp_rank_estimate(int64_t n_items, int64_t trials) {
    return (n_items - 1) / trials;
}
inline float warp_weight(int64_t n_items, int64_t trials) {
    return std::log(static_cast<float>(std::max<int64_t>(1, warp_rank_estimate(n_items, trials))));
}

inline float sigmoid(float x) {
    if (x >= 0) return 1.0f / (1.0f + std::exp(-x));
    const float e = std::exp(x);
    return e / (1.0f + e);
}

// The vector loops take the factor count as a template parameter F when it is a common size
// (F > 0: the compiler unrolls and vectorises them fully) and fall back to the runtime f
// (F = 0). The epoch driver is compiled per ISA (AVX-512, AVX2, baseline) with runtime
// dispatch (GCC target_clones), which keeps the build portable (no -march=native).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    !defined(TASTEBUD_NO_TARGET_CLONES)
#define TASTEBUD_HYBRID_CLONES \
    __attribute__((flatten, target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TASTEBUD_HYBRID_CLONES
#endif

// GCC vector extensions (as in sgd.hpp): 16 floats at any alignment. In the default clone they
// are lowered to SSE registers, in the x86-64-v3 clone to AVX2 pairs, in the x86-64-v4 clone
// to one zmm register. The loops over a compile-time factor count F (a multiple of 16) are
// fully unrolled and register resident.
typedef vec::f16 hyb_v16;

// Unaligned 16-float load (a macro: a function returning a vector would change the ABI
// between the clones).
#define TASTEBUD_HYB_LOAD16(p) (*reinterpret_cast<const hyb_v16 *>(p))

using vec::hsum16;

template <int F>
constexpr bool vectorised = F > 0 && F % 16 == 0;

// out = sum_a x_a emb[a], *bias_out = sum_a x_a bias[a] over the features of `row` other
// than `skip` (a dropped identity feature; -1: none).
template <int F>
inline void representation(const Side &side, int64_t row, int f_, float *__restrict out,
                           float *bias_out, int64_t skip = -1) {
    const int f = F > 0 ? F : f_;
    const Csr &m = side.features;
    float b = 0.0f;
    if constexpr (vectorised<F>) {
        hyb_v16 q[F / 16] = {};
        for (int64_t j = m.indptr[row]; j < m.indptr[row + 1]; ++j) {
            const float x = m.data[j];
            const int64_t a = m.indices[j];
            if (a == skip) continue;
            const float *e = side.emb + a * F;
            for (int t = 0; t < F / 16; ++t) q[t] += x * TASTEBUD_HYB_LOAD16(e + 16 * t);
            b += x * side.bias[a];
        }
        for (int t = 0; t < F / 16; ++t) *reinterpret_cast<hyb_v16 *>(out + 16 * t) = q[t];
    } else {
        for (int d = 0; d < f; ++d) out[d] = 0.0f;
        for (int64_t j = m.indptr[row]; j < m.indptr[row + 1]; ++j) {
            const float x = m.data[j];
            const int64_t a = m.indices[j];
            if (a == skip) continue;
            const float *__restrict e = side.emb + a * f;
            for (int d = 0; d < f; ++d) out[d] += x * e[d];
            b += x * side.bias[a];
        }
    }
    *bias_out = b;
}

// The representation of `row` without a copy when the row is a single feature of weight 1
// (an identity feature without side information, the common case): a pointer to that
// feature's embedding. Otherwise the sum is written to buf and buf returned. Callers compute
// every gradient from these vectors before any update, as with a copy.
template <int F>
inline const float *representation_view(const Side &side, int64_t row, int f_, float *buf,
                                        float *bias_out, int64_t skip = -1) {
    const int f = F > 0 ? F : f_;
    const Csr &m = side.features;
    const int64_t begin = m.indptr[row];
    if (m.indptr[row + 1] - begin == 1 && m.data[begin] == 1.0f && skip < 0) {
        const int64_t a = m.indices[begin];
        *bias_out = side.bias[a];
        return side.emb + a * f;
    }
    representation<F>(side, row, f, buf, bias_out, skip);
    return buf;
}

// a . b over f floats: two 16-lane accumulators (half the FMA dependency chain) and a vector
// tree for the horizontal sum when F is a multiple of 16, else 8 scalar lanes.
template <int F>
inline float dot(const float *__restrict a, const float *__restrict b, int f_) {
    if constexpr (vectorised<F>) {
        hyb_v16 a0 = {0}, a1 = {0};
        int t = 0;
        for (; t + 32 <= F; t += 32) {
            a0 += TASTEBUD_HYB_LOAD16(a + t) * TASTEBUD_HYB_LOAD16(b + t);
            a1 += TASTEBUD_HYB_LOAD16(a + t + 16) * TASTEBUD_HYB_LOAD16(b + t + 16);
        }
        if (t + 16 <= F) a0 += TASTEBUD_HYB_LOAD16(a + t) * TASTEBUD_HYB_LOAD16(b + t);
        return hsum16(a0 + a1);
    } else {
        const int f = F > 0 ? F : f_;
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int d = 0;
        for (; d + 8 <= f; d += 8)
            for (int q = 0; q < 8; ++q) acc[q] += a[d + q] * b[d + q];
        float s = 0.0f;
        for (; d < f; ++d) s += a[d] * b[d];
        return s + (((acc[0] + acc[4]) + (acc[1] + acc[5])) +
                    ((acc[2] + acc[6]) + (acc[3] + acc[7])));
    }
}

// p . q_j + b_j without writing q_j to memory: a single feature is one dot; several are summed
// in registers (F a multiple of 16) and dotted once. Feature `skip` (-1: none) is left out.
template <int F>
inline float score_item(const Side &side, int64_t row, const float *__restrict p, int f_,
                        int64_t skip = -1) {
    const int f = F > 0 ? F : f_;
    const Csr &m = side.features;
    const int64_t begin = m.indptr[row], end = m.indptr[row + 1];
    if (end - begin == 1 && skip < 0) {
        const int64_t a = m.indices[begin];
        return m.data[begin] * (dot<F>(p, side.emb + a * f, f) + side.bias[a]);
    }
    if constexpr (vectorised<F>) {
        hyb_v16 q[F / 16] = {};
        float bias = 0.0f;
        for (int64_t j = begin; j < end; ++j) {
            const float x = m.data[j];
            const int64_t a = m.indices[j];
            if (a == skip) continue;
            const float *e = side.emb + a * F;
            for (int t = 0; t < F / 16; ++t) q[t] += x * TASTEBUD_HYB_LOAD16(e + 16 * t);
            bias += x * side.bias[a];
        }
        hyb_v16 acc = {0};
        for (int t = 0; t < F / 16; ++t) acc += q[t] * TASTEBUD_HYB_LOAD16(p + 16 * t);
        return hsum16(acc) + bias;
    } else {
        float total = 0.0f;
        for (int64_t j = begin; j < end; ++j) {
            const int64_t a = m.indices[j];
            if (a == skip) continue;
            total += m.data[j] * (dot<F>(p, side.emb + a * f, f) + side.bias[a]);
        }
        return total;
    }
}

// Applies the gradient scale * grad (+ L2) to the features of `row` of one side, except the
// dropped feature `skip` (-1: none), which took no part in the representation.
// grad: dL/d(representation) (length f); grad_bias: dL/d(bias representation).
template <int F>
inline void update_side(const Side &side, int64_t row, const float *__restrict grad, float scale,
                        float grad_bias, const Settings &s, int64_t skip = -1) {
    const Csr &m = side.features;
    const int f = F > 0 ? F : s.f;
    const float lr = s.learning_rate, alpha = side.alpha;
    // A bias with neither gradient nor penalty keeps its value and its optimiser state.
    const bool bias_step = grad_bias != 0.0f || alpha != 0.0f;
    for (int64_t j = m.indptr[row]; j < m.indptr[row + 1]; ++j) {
        const float x = m.data[j];
        const int64_t a = m.indices[j];
        if (a == skip) continue;
        float *__restrict e = side.emb + a * f;
        float *__restrict g1 = side.emb_acc1 + a * f;
        if (s.schedule == ADAGRAD) {
            for (int d = 0; d < f; ++d) {
                const float g = x * (scale * grad[d]) + alpha * e[d];
                e[d] -= lr * g / std::sqrt(g1[d]);
                g1[d] += g * g;
            }
            if (!bias_step) continue;
            const float g = x * grad_bias + alpha * side.bias[a];
            side.bias[a] -= lr * g / std::sqrt(side.bias_acc1[a]);
            side.bias_acc1[a] += g * g;
        } else {
            const float rho = s.rho, eps = s.epsilon;
            float *__restrict g2 = side.emb_acc2 + a * f;
            for (int d = 0; d < f; ++d) {
                const float g = x * (scale * grad[d]) + alpha * e[d];
                g1[d] = rho * g1[d] + (1.0f - rho) * g * g;
                const float dx = std::sqrt(g2[d] + eps) / std::sqrt(g1[d] + eps) * g;
                g2[d] = rho * g2[d] + (1.0f - rho) * dx * dx;
                e[d] -= dx;
            }
            if (!bias_step) continue;
            const float g = x * grad_bias + alpha * side.bias[a];
            side.bias_acc1[a] = rho * side.bias_acc1[a] + (1.0f - rho) * g * g;
            const float dx =
                std::sqrt(side.bias_acc2[a] + eps) / std::sqrt(side.bias_acc1[a] + eps) * g;
            side.bias_acc2[a] = rho * side.bias_acc2[a] + (1.0f - rho) * dx * dx;
            side.bias[a] -= dx;
        }
    }
}

// Per-thread scratch: user, positive and negative representations (p, qi, qj: views into the
// embeddings for single-feature rows, else the buffers), gradients, and WARP's loss weights
// by number of trials.
struct Scratch {
    std::vector<float> buf;
    float *pbuf, *qibuf, *qjbuf, *gu, *gi, *gj;
    const float *p = nullptr, *qi = nullptr, *qj = nullptr;
    float bu = 0, bi = 0, bj = 0;
    int64_t skip_i = -1, skip_j = -1;  // dropped identity features of qi and qj (-1: none)
    std::vector<float> warp_weights;  // warp_weights[t] = warp_weight(n_items, t), t >= 1
    std::vector<std::pair<float, int32_t>> kos;  // k-OS: scored sampled positives
    explicit Scratch(const Settings &s) : buf(6 * static_cast<size_t>(s.f)) {
        const int f = s.f;
        pbuf = buf.data();
        qibuf = pbuf + f;
        qjbuf = qibuf + f;
        gu = qjbuf + f;
        gi = gu + f;
        gj = gi + f;
        const int64_t table = std::min<int64_t>(s.max_sampled, 4096);
        warp_weights.resize(static_cast<size_t>(table) + 1, 0.0f);
        for (int64_t t = 1; t <= table; ++t) warp_weights[t] = warp_weight(s.n_items, t);
    }
    float weight(int64_t n_items, int64_t trials) const {
        return trials < static_cast<int64_t>(warp_weights.size()) ? warp_weights[trials]
                                                                  : warp_weight(n_items, trials);
    }
    template <int F>
    void user(const Side &users, int64_t u, int f) {
        p = representation_view<F>(users, u, f, pbuf, &bu);
    }
    template <int F>
    void positive(const Side &items, int64_t i, int f, int64_t skip = -1) {
        skip_i = skip;
        qi = representation_view<F>(items, i, f, qibuf, &bi, skip);
    }
    template <int F>
    void negative(const Side &items, int64_t j, int f, int64_t skip = -1) {
        skip_j = skip;
        qj = representation_view<F>(items, j, f, qjbuf, &bj, skip);
    }
};

// Identity dropout: the identity feature of item `row`, or -1 where it has none or has no
// side feature besides it (without one nothing would be left to learn from).
inline int64_t droppable_identity(const Side &items, int64_t row) {
    if (items.identity == nullptr) return -1;
    const int64_t a = items.identity[row];
    if (a < 0 || items.features.indptr[row + 1] - items.features.indptr[row] < 2) return -1;
    return a;
}

// Whether a training sample runs in "cold mode" (probability s.identity_dropout): its positive
// and all its negatives are then represented without their identity features, so the step
// compares items as cold items are compared, by their side features alone (DropoutNet's
// input dropout applied per sample; on a validation split of ml-100k this beat dropping the
// items' identities independently). The generator is not touched when p = 0 (bit-identical
// to the plain model).
inline bool cold_mode(const Side &items, const Settings &s, Random &rng) {
    if (!(s.identity_dropout > 0.0f) || items.identity == nullptr) return false;
    const float u = static_cast<float>(rng.next() >> 40) * (1.0f / 16777216.0f);  // [0, 1)
    return u < s.identity_dropout;
}

// A pairwise step given d = dL/ds_ui (the negative gets -d): user and both items updated
// from the representations held in `sc` (computed before any update).
template <int F>
inline void pair_update(const Side &users, const Side &items, int64_t u, int64_t i, int64_t j,
                        float d, Scratch &sc, const Settings &s) {
    const int f = F > 0 ? F : s.f;
    const float *__restrict p = sc.p, *__restrict qi = sc.qi, *__restrict qj = sc.qj;
    float *__restrict gu = sc.gu;
    for (int t = 0; t < f; ++t) gu[t] = d * (qi[t] - qj[t]);
    // The items' gradients are +-d p, read from p (a view of the user's embedding possibly,
    // which changes only in the last update).
    update_side<F>(items, i, p, d, d, s, sc.skip_i);
    update_side<F>(items, j, p, -d, -d, s, sc.skip_j);
    update_side<F>(users, u, gu, 1.0f, 0.0f, s);
}

// A pointwise logistic step on (u, i) with label y in {0, 1}, item i without its feature
// `skip` (-1: none); returns the loss.
template <int F>
inline float logistic_step(const Side &users, const Side &items, int64_t u, int64_t i, float y,
                           Scratch &sc, const Settings &s, int64_t skip = -1) {
    const int f = F > 0 ? F : s.f;
    sc.user<F>(users, u, f);
    sc.positive<F>(items, i, f, skip);
    const float score = dot<F>(sc.p, sc.qi, f) + sc.bu + sc.bi;
    const float d = sigmoid(score) - y;
    for (int t = 0; t < f; ++t) sc.gu[t] = d * sc.qi[t];
    update_side<F>(items, i, sc.p, d, d, s, skip);  // p changes only in the user update, after
    update_side<F>(users, u, sc.gu, 1.0f, d, s);
    return y > 0.5f ? -std::log(std::max(sigmoid(score), 1e-30f))
                    : -std::log(std::max(sigmoid(-score), 1e-30f));
}

// A BPR step on (u, i, j) with representations of u and i already in sc, j without its
// feature `skip_j` (-1: none).
template <int F>
inline void bpr_step(const Side &users, const Side &items, int64_t u, int64_t i, int64_t j,
                     Scratch &sc, const Settings &s, int64_t skip_j = -1) {
    sc.negative<F>(items, j, s.f, skip_j);
    const float x = dot<F>(sc.p, sc.qi, s.f) + sc.bi - dot<F>(sc.p, sc.qj, s.f) - sc.bj;
    pair_update<F>(users, items, u, i, j, -sigmoid(-x), sc, s);
}

// The WARP search on (u, i) with representations of u and i in sc: draws negatives from
// next_negative() (returns -1 when exhausted) until one violates the margin; a drawn item
// that is a positive of u counts as a trial but never as a violator. Returns the number of
// trials of the update (0 when none was made). The work per draw is LightFM's (one score of
// the drawn item against the user, the positive's score computed once per sample); the
// positive check runs only for violators, as in LightFM. skip_of(j) is the feature a drawn
// negative j leaves out (identity dropout; -1: none).
template <int F, class NextNegative, class SkipOf>
inline int64_t warp_step(const Side &users, const Side &items, const Csr &positives, int64_t u,
                         int64_t i, Scratch &sc, const Settings &s, NextNegative next_negative,
                         SkipOf skip_of) {
    const float s_pos = dot<F>(sc.p, sc.qi, s.f) + sc.bi;  // b_u cancels in the margin
    for (int64_t trials = 1; trials <= s.max_sampled; ++trials) {
        const int64_t j = next_negative();
        if (j < 0) return 0;
        const int64_t skip = skip_of(j);
        // Score without materialising q_j (most draws do not violate the margin).
        if (score_item<F>(items, j, sc.p, s.f, skip) <= s_pos - 1.0f) continue;
        if (row_contains(positives, u, static_cast<int32_t>(j))) continue;
        sc.negative<F>(items, j, s.f, skip);
        const float w = sc.weight(s.n_items, trials);
        if (w > 0.0f) pair_update<F>(users, items, u, i, j, -w, sc, s);
        return trials;
    }
    return 0;
}

// One training sample of a pairwise or pointwise loss on the positive (u, i).
template <int F>
inline void sample_step(const Side &users, const Side &items, const Csr &positives, int64_t u,
                        int64_t i, Scratch &sc, const Settings &s, Random &rng) {
    const bool cold = cold_mode(items, s, rng);
    auto skip_of = [&](int64_t j) { return cold ? droppable_identity(items, j) : -1; };
    if (s.loss == LOGISTIC) {
        logistic_step<F>(users, items, u, i, 1.0f, sc, s, skip_of(i));
        for (int tries = 0; tries < 32; ++tries) {
            const int64_t j = rng.below(s.n_items);
            if (!row_contains(positives, u, static_cast<int32_t>(j))) {
                logistic_step<F>(users, items, u, j, 0.0f, sc, s, skip_of(j));
                break;
            }
        }
        return;
    }
    sc.user<F>(users, u, s.f);
    sc.positive<F>(items, i, s.f, skip_of(i));
    if (s.loss == BPR) {
        for (int tries = 0; tries < 32; ++tries) {
            const int64_t j = rng.below(s.n_items);
            if (!row_contains(positives, u, static_cast<int32_t>(j))) {
                bpr_step<F>(users, items, u, i, j, sc, s, skip_of(j));
                return;
            }
        }
        return;
    }
    warp_step<F>(users, items, positives, u, i, sc, s, [&]() { return rng.below(s.n_items); },
                 skip_of);
}

// k-OS WARP for user u: the k-th best of n sampled positives is the positive of a WARP step.
template <int F>
inline void kos_step(const Side &users, const Side &items, const Csr &positives, int64_t u,
                     Scratch &sc, const Settings &s, Random &rng) {
    const int64_t begin = positives.indptr[u], count = positives.indptr[u + 1] - begin;
    if (count == 0) return;
    sc.user<F>(users, u, s.f);
    sc.kos.clear();
    for (int t = 0; t < s.n; ++t) {
        const int32_t i = positives.indices[begin + rng.below(count)];
        sc.kos.emplace_back(score_item<F>(items, i, sc.p, s.f), i);
    }
    const size_t kth = static_cast<size_t>(std::min<int64_t>(s.k, s.n)) - 1;
    std::nth_element(sc.kos.begin(), sc.kos.begin() + kth, sc.kos.end(),
                     [](const auto &a, const auto &b) {
                         return a.first > b.first || (a.first == b.first && a.second < b.second);
                     });
    const int64_t i = sc.kos[kth].second;
    const bool cold = cold_mode(items, s, rng);
    auto skip_of = [&](int64_t j) { return cold ? droppable_identity(items, j) : -1; };
    sc.positive<F>(items, i, s.f, skip_of(i));
    warp_step<F>(users, items, positives, u, i, sc, s, [&]() { return rng.below(s.n_items); },
                 skip_of);
}

// Samples order[begin, end) of one epoch with F-specialised loops.
template <int F>
inline void epoch_block(const Side &users, const Side &items, const Csr &positives,
                        const int32_t *row_of, const int64_t *order, int64_t begin, int64_t end,
                        const Settings &s, Random &rng) {
    Scratch sc(s);
    for (int64_t q = begin; q < end; ++q) {
        const int64_t e = order[q];
        if (s.loss == WARP_KOS) {
            kos_step<F>(users, items, positives, e, sc, s, rng);
        } else {
            sample_step<F>(users, items, positives, row_of[e], positives.indices[e], sc, s, rng);
        }
    }
}

// Compiled once per ISA (see TASTEBUD_HYBRID_CLONES); dispatches on common factor counts.
TASTEBUD_HYBRID_CLONES
static void epoch_block_dispatch(const Side &users, const Side &items, const Csr &positives,
                                 const int32_t *row_of, const int64_t *order, int64_t begin,
                                 int64_t end, const Settings &s, Random &rng) {
    switch (s.f) {
        case 16: epoch_block<16>(users, items, positives, row_of, order, begin, end, s, rng); break;
        case 32: epoch_block<32>(users, items, positives, row_of, order, begin, end, s, rng); break;
        case 64: epoch_block<64>(users, items, positives, row_of, order, begin, end, s, rng); break;
        case 128:
            epoch_block<128>(users, items, positives, row_of, order, begin, end, s, rng);
            break;
        default: epoch_block<0>(users, items, positives, row_of, order, begin, end, s, rng);
    }
}

// Thread blocks of an epoch: thread t takes the samples order[bounds[t], bounds[t + 1]). For
// the per-entry losses the blocks are the entries of contiguous user ranges (cut at row
// boundaries so that they hold about equal numbers of entries): no two threads then write the
// same user's identity embedding, which leaves only item rows shared between Hogwild threads
// (fewer cache lines moving between cores). For k-OS (one sample per user) the blocks are
// equal user ranges.
inline std::vector<int64_t> thread_blocks(const Csr &positives, bool per_user, int threads) {
    std::vector<int64_t> bounds(static_cast<size_t>(threads) + 1, 0);
    const int64_t rows = positives.rows, nnz = positives.indptr[rows];
    int64_t r = 0;
    for (int t = 1; t < threads; ++t) {
        if (per_user) {
            bounds[t] = rows * t / threads;
        } else {
            const int64_t target = nnz * t / threads;
            while (r < rows && positives.indptr[r] < target) ++r;
            bounds[t] = positives.indptr[r];
        }
    }
    bounds[threads] = per_user ? rows : nnz;
    return bounds;
}

// Fisher-Yates shuffle of the ids begin..end-1 into order[begin, end) from the stream
// (seed, epoch, 0xFFFFFFFF + block).
inline void shuffled(int64_t *order, int64_t begin, int64_t end, uint64_t seed, int64_t epoch,
                     int64_t block) {
    for (int64_t i = begin; i < end; ++i) order[i] = i;
    Random rng(seed, static_cast<uint64_t>(epoch), 0xFFFFFFFFULL + static_cast<uint64_t>(block));
    for (int64_t i = end - begin - 1; i > 0; --i)
        std::swap(order[begin + i], order[begin + rng.below(i + 1)]);
}

// Epochs first_epoch .. first_epoch + n_epochs - 1. Each epoch, thread t shuffles its block
// (see thread_blocks) and trains on it with the stream (seed, epoch, t). With one thread the
// epoch is one shuffle of every sample: the result depends only on the seed.
inline void run_epochs(const Side &users, const Side &items, const Csr &positives,
                       const int32_t *row_of, const Settings &s, uint64_t seed,
                       int64_t first_epoch, int64_t n_epochs, int num_threads) {
    const bool per_user = s.loss == WARP_KOS;
    const int64_t n_samples = per_user ? positives.rows : positives.indptr[positives.rows];
    const int threads = static_cast<int>(
        std::max<int64_t>(1, std::min<int64_t>(resolve_threads(num_threads), n_samples / 64)));
    const std::vector<int64_t> bounds = thread_blocks(positives, per_user, threads);
    std::vector<int64_t> order(static_cast<size_t>(n_samples));
    const std::vector<uint64_t> bits = membership_bits(positives, s.n_items);
    Csr pos = positives;
    if (!bits.empty()) {
        pos.bits = bits.data();
        pos.cols = s.n_items;
    }
    for (int64_t epoch = first_epoch; epoch < first_epoch + n_epochs; ++epoch) {
        parallel_for(threads, threads, [&](int64_t t) {
            const int64_t begin = bounds[t], end = bounds[t + 1];
            shuffled(order.data(), begin, end, seed, epoch, t);
            Random rng(seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(t));
            epoch_block_dispatch(users, items, pos, row_of, order.data(), begin, end, s, rng);
        });
    }
}

// Fold-in of new users (cold start): item parameters fixed, each new user u starts from
// p0[u] (the sum of its known feature embeddings) and learns an offset delta by `epochs`
// passes of the model's loss over its positives (adagrad with its own state starting at 1,
// L2 user_alpha on delta; k-OS folds in as WARP). The user bias is a constant per user and
// does not change a ranking, so it is not learned. Item representations q (n_items x f)
// and biases bq are precomputed. Users are independent: parallel over users, one random
// stream per (seed, the user's positive items), so the result is the same for any thread
// count and any position of the user in the batch.
// Writes p = p0 + delta into out (n_new x f).
inline void fold_in(const float *q, const float *bq, const Csr &positives, const float *p0,
                    float *out, int epochs, const Settings &s, float user_alpha, uint64_t seed,
                    int num_threads) {
    const int f = s.f;
    const int64_t n_new = positives.rows, n_items = s.n_items;
    parallel_for(n_new, num_threads, [&](int64_t u) {
        float *__restrict p = out + u * f;
        const float *__restrict base = p0 + u * f;
        std::vector<float> acc(f, 1.0f), delta(f, 0.0f);
        for (int d = 0; d < f; ++d) p[d] = base[d];
        const int64_t begin = positives.indptr[u], count = positives.indptr[u + 1] - begin;
        if (count == 0) return;
        // Seeded by the row's items, not its batch position (topk.hpp row_content_hash).
        Random rng(seed, 0xF01D1ULL, row_content_hash(positives.indices + begin, count));
        auto negative = [&]() -> int64_t {
            for (int tries = 0; tries < 32; ++tries) {
                const int64_t j = rng.below(n_items);
                if (!row_contains(positives, u, static_cast<int32_t>(j))) return j;
            }
            return -1;
        };
        auto score = [&](int64_t i) { return dot<0>(p, q + i * f, f) + bq[i]; };
        // delta -= lr g / sqrt(acc) with g = scale_i q_i + scale_j q_j + alpha delta
        auto step = [&](float scale_i, int64_t i, float scale_j, int64_t j) {
            const float *qi = q + i * f;
            const float *qj = j >= 0 ? q + j * f : qi;
            if (j < 0) scale_j = 0.0f;
            for (int d = 0; d < f; ++d) {
                const float g = scale_i * qi[d] + scale_j * qj[d] + user_alpha * delta[d];
                delta[d] -= s.learning_rate * g / std::sqrt(acc[d]);
                acc[d] += g * g;
                p[d] = base[d] + delta[d];
            }
        };
        for (int e = 0; e < epochs; ++e) {
            for (int64_t t = 0; t < count; ++t) {
                const int64_t i = positives.indices[begin + rng.below(count)];
                if (s.loss == LOGISTIC) {
                    step(sigmoid(score(i)) - 1.0f, i, 0.0f, -1);
                    const int64_t j = negative();
                    if (j >= 0) step(sigmoid(score(j)), j, 0.0f, -1);
                } else if (s.loss == BPR) {
                    const int64_t j = negative();
                    if (j < 0) continue;
                    const float d = -sigmoid(-(score(i) - score(j)));
                    step(d, i, -d, j);
                } else {
                    const float s_pos = score(i);
                    for (int64_t trials = 1; trials <= s.max_sampled; ++trials) {
                        const int64_t j = rng.below(n_items);
                        if (row_contains(positives, u, static_cast<int32_t>(j))) continue;
                        if (score(j) > s_pos - 1.0f) {
                            const float w = warp_weight(n_items, trials);
                            if (w > 0.0f) step(-w, i, w, j);
                            break;
                        }
                    }
                }
            }
        }
    });
}

}  // namespace hybrid
}  // namespace tastebud

