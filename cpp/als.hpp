// Implicit-feedback ALS (Hu, Koren & Volinsky 2008) with the options of Rendle et al. 2021
// ("Revisiting the Performance of iALS on Item Recommendation Benchmarks").
//
// One half-iteration solves, for every row u of a sparse matrix C (users x items, or the
// transposed items x users), the ridge regression
//
//     (w0 YtY + sum_{i in I_u} (c_ui - w0) y_i y_i^T + lambda_u I) x_u = sum_{i in I_u} c_ui y_i
//
// where c_ui = 1 + alpha * r_ui is the confidence of an observed entry (preference 1),
// w0 the weight of every unobserved entry (preference 0; w0 = 1 is the original model) and
// lambda_u the (optionally frequency-scaled) regularization. The caller passes G = w0 YtY,
// computed once per half-iteration with BLAS, so the per-row work is O(|I_u| f) per CG step.
//
// Two solvers:
//   * conjugate gradient warm-started from the current x_u, with a fixed number of steps
//     (Takacs, Pilaszy & Tikk 2011), which never forms the f x f matrix: A p is
//     G p + lambda p + sum (c - w0)(y.p) y, evaluated sparsely;
//   * exact: the f x f matrix is assembled and solved by Cholesky (double precision).
// Rows with no entries get x_u = 0 (the minimiser of their loss).
//
// CG data layout (f = 32, 64, 128; the common sizes, compiled with f known): each row's
// entries are gathered once per half-iteration into a contiguous, zero-padded buffer (the
// rows of Y it touches and their confidences), and the 1 + cg_steps passes over the row read
// that L1/L2-resident copy instead of scattered rows of Y; the next row's first entries are
// prefetched meanwhile. Each pass takes four entries at a time: four dot products as vectors
// of partial sums, reduced by one shuffle tree, then four axpys into two accumulator sets.
// The f x f product G p is a sum of scaled rows of G with two accumulator sets. Other f
// (and rows longer than kGatherCap) use the same algorithm straight from Y.
//
// Precision: every kernel is a template on T = float or double (AlsProblemT<T>); the
// confidences and regularization come in as float, the Cholesky path is double throughout.
//
// Hot loops are plain loops or GCC vector extensions over the factor dimension; on x86-64
// the per-chunk solver is compiled three times (x86-64-v4 = AVX-512, v3 = AVX2+FMA,
// baseline SSE2) and the best version is picked at load time (target_clones), so the build
// stays portable; `flatten` inlines every helper into each clone, which is what makes them
// use the wider ISA. Results are independent of the thread count: each row is solved by one
// thread alone.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "topk.hpp"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    !defined(TASTEBUD_NO_TARGET_CLONES)
#define TASTEBUD_CLONES \
    __attribute__((flatten, target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TASTEBUD_CLONES
#endif

namespace tastebud {
namespace vec {

// The loops take the length as a template parameter F when it is known at compile time
// (F > 0: fully unrolled, register-resident) and fall back to the runtime f (F = 0).
// T is float or double (the ALS kernels come in both precisions).

// Dot product with 32 independent partial sums (vectorised without -ffast-math).
template <int F = 0, typename T>
inline T dot(const T *a, const T *b, int f_ = 0) {
    const int f = F > 0 ? F : f_;
    T acc[32] = {0};
    int j = 0;
    for (; j + 32 <= f; j += 32)
        for (int t = 0; t < 32; ++t) acc[t] += a[j + t] * b[j + t];
    T s = 0;
    for (; j < f; ++j) s += a[j] * b[j];
    for (int t = 0; t < 16; ++t) acc[t] += acc[t + 16];
    for (int t = 0; t < 8; ++t) acc[t] += acc[t + 8];
    for (int t = 0; t < 4; ++t) acc[t] += acc[t + 4];
    return s + ((acc[0] + acc[2]) + (acc[1] + acc[3]));
}
inline float dot(const float *a, const float *b, int f) { return dot<0, float>(a, b, f); }

template <int F = 0, typename T>
inline void axpy(T a, const T *x, T *y, int f_ = 0) {
    const int f = F > 0 ? F : f_;
    for (int j = 0; j < f; ++j) y[j] += a * x[j];
}
inline void axpy(float a, const float *x, float *y, int f) { axpy<0, float>(a, x, y, f); }

// y += a0 x0 + a1 x1 + a2 x2 + a3 x3: one pass over y for four vectors.
template <int F = 0, typename T>
inline void axpy4(T a0, const T *x0, T a1, const T *x1, T a2, const T *x2, T a3, const T *x3,
                  T *y, int f_ = 0) {
    const int f = F > 0 ? F : f_;
    for (int j = 0; j < f; ++j) y[j] += (a0 * x0[j] + a1 * x1[j]) + (a2 * x2[j] + a3 * x3[j]);
}

// out = M v for a symmetric row-major f x f matrix, as a sum of scaled rows (no reductions);
// with F known, two interleaved accumulators halve the FMA dependency chains.
template <int F = 0, typename T>
inline void symv(const T *M, const T *v, T *out, int f_ = 0) {
    const int f = F > 0 ? F : f_;
    if constexpr (F > 0) {
        T o0[F] = {0}, o1[F] = {0};
        int r = 0;
        for (; r + 2 <= F; r += 2) {
            const T v0 = v[r], v1 = v[r + 1];
            const T *row0 = M + r * F, *row1 = row0 + F;
            for (int j = 0; j < F; ++j) o0[j] += v0 * row0[j];
            for (int j = 0; j < F; ++j) o1[j] += v1 * row1[j];
        }
        if (r < F)
            for (int j = 0; j < F; ++j) o0[j] += v[r] * M[r * F + j];
        for (int j = 0; j < F; ++j) out[j] = o0[j] + o1[j];
    } else {
        std::fill(out, out + f, T(0));
        int r = 0;
        for (; r + 4 <= f; r += 4)
            axpy4<0, T>(v[r], M + int64_t(r) * f, v[r + 1], M + int64_t(r + 1) * f, v[r + 2],
                        M + int64_t(r + 2) * f, v[r + 3], M + int64_t(r + 3) * f, out, f);
        for (; r < f; ++r) axpy<0, T>(v[r], M + int64_t(r) * f, out, f);
    }
}
inline void symv(const float *M, const float *v, float *out, int f) { symv<0, float>(M, v, out, f); }

}  // namespace vec

// One half-iteration's problem: solve every row of C against fixed factors Y (all of Y, G
// and the solved X in precision T; the sparse matrix and regularization stay float).
template <typename T>
struct AlsProblemT {
    const int64_t *indptr;   // n_rows + 1
    const int32_t *indices;  // column of each entry, in [0, n_cols)
    const float *data;       // r_ui >= 0 of each entry
    int64_t n_rows;
    const T *Y;  // n_cols x f, the fixed side
    int f;
    const T *G;        // f x f, w0 * Y^T Y
    const float *reg;  // n_rows, lambda_u
    float alpha;       // c_ui = 1 + alpha * r_ui
    float w0;          // weight of unobserved entries
};
using AlsProblem = AlsProblemT<float>;
using AlsProblem64 = AlsProblemT<double>;

enum AlsSolver : int { ALS_CG = 0, ALS_CHOLESKY = 1 };

namespace als_detail {

// Rows longer than this are solved straight from Y instead of a gathered copy (bounds the
// per-thread buffer to kGatherCap * (f + 2) values).
constexpr int64_t kGatherCap = 4096;

// out += sum_k coef_k y_k over the row's entries, where with d_k = y_k . v
//   Residual: coef = c - (c - w0) d   (the sparse part of b - A v)
//   else:     coef = (c - w0) d       (the sparse part of A v)
// read straight from Y (used for F = 0 and for very long rows). The item vectors of a few
// entries ahead are prefetched (random rows of Y miss the cache on large catalogues).
template <int F, bool Residual, typename T>
inline void sparse_apply(const AlsProblemT<T> &P, int64_t b, int64_t e, const T *v, T *out) {
    const T alpha = P.alpha, w0 = P.w0;
    if constexpr (F > 0) {
        T o[F], vv[F];
        for (int j = 0; j < F; ++j) {
            o[j] = out[j];
            vv[j] = v[j];
        }
        for (int64_t k = b; k < e; ++k) {
            if (k + 6 < e) {
                const char *ahead =
                    reinterpret_cast<const char *>(P.Y + int64_t(P.indices[k + 6]) * F);
                for (int line = 0; line < int(F * sizeof(T)); line += 64)
                    __builtin_prefetch(ahead + line);
            }
            const T *y = P.Y + int64_t(P.indices[k]) * F;
            T acc[16] = {0};
            for (int j = 0; j < F; j += 16)
                for (int t = 0; t < 16; ++t) acc[t] += y[j + t] * vv[j + t];
            for (int t = 0; t < 8; ++t) acc[t] += acc[t + 8];
            for (int t = 0; t < 4; ++t) acc[t] += acc[t + 4];
            const T d = (acc[0] + acc[2]) + (acc[1] + acc[3]);
            const T c = T(1) + alpha * T(P.data[k]);
            const T a = Residual ? c - (c - w0) * d : (c - w0) * d;
            for (int j = 0; j < F; ++j) o[j] += a * y[j];
        }
        for (int j = 0; j < F; ++j) out[j] = o[j];
    } else {
        const int f = P.f;
        auto coef = [&](int64_t k, const T *y) {
            const T c = T(1) + alpha * T(P.data[k]);
            const T d = vec::dot<0, T>(y, v, f);
            return Residual ? c - (c - w0) * d : (c - w0) * d;
        };
        int64_t k = b;
        for (; k + 4 <= e; k += 4) {
            const T *y0 = P.Y + int64_t(P.indices[k]) * f;
            const T *y1 = P.Y + int64_t(P.indices[k + 1]) * f;
            const T *y2 = P.Y + int64_t(P.indices[k + 2]) * f;
            const T *y3 = P.Y + int64_t(P.indices[k + 3]) * f;
            const T a0 = coef(k, y0), a1 = coef(k + 1, y1), a2 = coef(k + 2, y2),
                    a3 = coef(k + 3, y3);
            vec::axpy4<0, T>(a0, y0, a1, y1, a2, y2, a3, y3, out, f);
        }
        for (; k < e; ++k) {
            const T *y = P.Y + int64_t(P.indices[k]) * f;
            vec::axpy<0, T>(coef(k, y), y, out, f);
        }
    }
}

// The four dot products held as four vectors of partial sums, reduced together (one
// shuffle tree for four entries instead of one per entry). GCC vector extensions: each
// target clone lowers them to its widest registers.
template <typename T>
struct Lanes {
    typedef T V __attribute__((vector_size(64), aligned(sizeof(T))));
    typedef T V4 __attribute__((vector_size(4 * sizeof(T))));
    static constexpr int L = 64 / sizeof(T);

    __attribute__((always_inline)) static inline void sum4(V a0, V a1, V a2, V a3, V4 &d) {
        if constexpr (L == 16) {
            const V s01 = __builtin_shufflevector(a0, a1, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19,
                                                  20, 21, 22, 23) +
                          __builtin_shufflevector(a0, a1, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25,
                                                  26, 27, 28, 29, 30, 31);
            const V s23 = __builtin_shufflevector(a2, a3, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19,
                                                  20, 21, 22, 23) +
                          __builtin_shufflevector(a2, a3, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25,
                                                  26, 27, 28, 29, 30, 31);
            const V s = __builtin_shufflevector(s01, s23, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18,
                                                19, 24, 25, 26, 27) +
                        __builtin_shufflevector(s01, s23, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22,
                                                23, 28, 29, 30, 31);
            typedef T V8 __attribute__((vector_size(8 * sizeof(T))));
            const V8 t = __builtin_shufflevector(s, s, 0, 1, 4, 5, 8, 9, 12, 13) +
                         __builtin_shufflevector(s, s, 2, 3, 6, 7, 10, 11, 14, 15);
            d = __builtin_shufflevector(t, t, 0, 2, 4, 6) +
                __builtin_shufflevector(t, t, 1, 3, 5, 7);
        } else {
            static_assert(L == 8, "float or double");
            const V s01 = __builtin_shufflevector(a0, a1, 0, 1, 2, 3, 8, 9, 10, 11) +
                          __builtin_shufflevector(a0, a1, 4, 5, 6, 7, 12, 13, 14, 15);
            const V s23 = __builtin_shufflevector(a2, a3, 0, 1, 2, 3, 8, 9, 10, 11) +
                          __builtin_shufflevector(a2, a3, 4, 5, 6, 7, 12, 13, 14, 15);
            const V s = __builtin_shufflevector(s01, s23, 0, 1, 4, 5, 8, 9, 12, 13) +
                        __builtin_shufflevector(s01, s23, 2, 3, 6, 7, 10, 11, 14, 15);
            d = __builtin_shufflevector(s, s, 0, 2, 4, 6) +
                __builtin_shufflevector(s, s, 1, 3, 5, 7);
        }
    }
};

// A row's entries gathered once (contiguous, row-major, zero-padded to a multiple of 4) with
// their confidences, and reused by every CG pass (1 + steps of them): the passes then read
// L1/L2-resident memory instead of scattered rows of Y.
template <typename T>
struct Gathered {
    std::vector<T> yr, cw, c;
    int64_t n = 0, npad = 0;

    void reserve(int64_t n_max, int f) {
        // The buffer is reused by later calls (per thread), possibly with another f.
        const int64_t np = (n_max + 3) / 4 * 4;
        if (int64_t(yr.size()) < np * f) yr.resize(np * f);
        if (int64_t(c.size()) < np) {
            cw.resize(np);
            c.resize(np);
        }
    }

    static constexpr int64_t kAhead = 12;

    // Prefetches the first entries of the row [b, e) (called for the next row while the
    // current one is solved, so that its first gathers do not wait for memory).
    template <int F>
    static void prefetch_row(const AlsProblemT<T> &P, int64_t b, int64_t e) {
        for (int64_t k = b; k < std::min(e, b + kAhead); ++k) {
            const char *y = reinterpret_cast<const char *>(P.Y + int64_t(P.indices[k]) * F);
            for (int line = 0; line < int(F * sizeof(T)); line += 64) __builtin_prefetch(y + line);
        }
    }

    template <int F>
    void gather(const AlsProblemT<T> &P, int64_t b, int64_t e) {
        n = e - b;
        npad = (n + 3) / 4 * 4;
        const T alpha = P.alpha, w0 = P.w0;
        for (int64_t k = 0; k < n; ++k) {
            if (k + kAhead < n) {
                const char *ahead =
                    reinterpret_cast<const char *>(P.Y + int64_t(P.indices[b + k + kAhead]) * F);
                for (int line = 0; line < int(F * sizeof(T)); line += 64)
                    __builtin_prefetch(ahead + line);
            }
            using V = typename Lanes<T>::V;
            const V *y = reinterpret_cast<const V *>(P.Y + int64_t(P.indices[b + k]) * F);
            V *dst = reinterpret_cast<V *>(yr.data() + k * F);
            for (int q = 0; q < F / Lanes<T>::L; ++q) dst[q] = y[q];
            const T conf = T(1) + alpha * T(P.data[b + k]);
            c[k] = conf;
            cw[k] = conf - w0;
        }
        for (int64_t k = n; k < npad; ++k) {
            for (int j = 0; j < F; ++j) yr[k * F + j] = T(0);
            c[k] = T(0);
            cw[k] = T(0);
        }
    }

    // out += sum_k coef_k y_k with the coefficients of sparse_apply, four entries at a time.
    template <int F, bool Residual>
    void apply(const T *v, T *out) const {
        using LT = Lanes<T>;
        using V = typename LT::V;
        using V4 = typename LT::V4;
        constexpr int Q = F / LT::L;
        static_assert(F % LT::L == 0, "F must be a whole number of vectors");
        V vv[Q], o0[Q], o1[Q];
        for (int q = 0; q < Q; ++q) {
            vv[q] = reinterpret_cast<const V *>(v)[q];
            o0[q] = reinterpret_cast<const V *>(out)[q];
            o1[q] = V{};
        }
        const T *y = yr.data();
        for (int64_t k = 0; k < npad; k += 4) {
            const V *y0 = reinterpret_cast<const V *>(y + k * F);
            const V *y1 = y0 + Q, *y2 = y1 + Q, *y3 = y2 + Q;
            V a0 = y0[0] * vv[0], a1 = y1[0] * vv[0], a2 = y2[0] * vv[0], a3 = y3[0] * vv[0];
            for (int q = 1; q < Q; ++q) {
                a0 += y0[q] * vv[q];
                a1 += y1[q] * vv[q];
                a2 += y2[q] * vv[q];
                a3 += y3[q] * vv[q];
            }
            V4 d;
            LT::sum4(a0, a1, a2, a3, d);
            V4 cv, cwv;
            std::copy(c.data() + k, c.data() + k + 4, reinterpret_cast<T *>(&cv));
            std::copy(cw.data() + k, cw.data() + k + 4, reinterpret_cast<T *>(&cwv));
            const V4 w = Residual ? cv - cwv * d : cwv * d;
            for (int q = 0; q < Q; ++q) {
                o0[q] += w[0] * y0[q];
                o1[q] += w[1] * y1[q];
            }
            for (int q = 0; q < Q; ++q) {
                o0[q] += w[2] * y2[q];
                o1[q] += w[3] * y3[q];
            }
        }
        for (int q = 0; q < Q; ++q) reinterpret_cast<V *>(out)[q] = o0[q] + o1[q];
    }
};

// Warm-started conjugate gradient on row u; scratch holds 3 f values. With F > 0 and a row
// no longer than kGatherCap the row's entries are gathered once into `g`.
template <int F, typename T>
inline void cg_row(const AlsProblemT<T> &P, int64_t u, T *x, int steps, T *scratch,
                   Gathered<T> *g) {
    const int f = F > 0 ? F : P.f;
    const int64_t b = P.indptr[u], e = P.indptr[u + 1];
    if (b == e) {
        std::fill(x, x + f, T(0));
        return;
    }
    bool gathered = false;
    if constexpr (F > 0) {
        if (g != nullptr && e - b <= kGatherCap) {
            g->template gather<F>(P, b, e);
            gathered = true;
            if (u + 1 < P.n_rows)
                Gathered<T>::template prefetch_row<F>(P, e, P.indptr[u + 2]);
        }
    }
    auto apply = [&](const T *v, T *out, auto residual) {
        constexpr bool R = decltype(residual)::value;
        if constexpr (F > 0) {
            if (gathered) {
                g->template apply<F, R>(v, out);
                return;
            }
        }
        sparse_apply<F, R, T>(P, b, e, v, out);
    };
    T *r = scratch, *p = scratch + f, *Ap = scratch + 2 * f;
    const T lam = P.reg[u];
    vec::symv<F, T>(P.G, x, r, f);  // r = b - A x
    for (int j = 0; j < f; ++j) r[j] = -r[j] - lam * x[j];
    apply(x, r, std::true_type{});
    std::copy(r, r + f, p);
    const T tiny = std::is_same<T, float>::value ? T(1e-20) : T(1e-40);
    T rs = vec::dot<F, T>(r, r, f);
    if (!(rs > tiny)) return;
    for (int s = 0; s < steps; ++s) {
        vec::symv<F, T>(P.G, p, Ap, f);
        vec::axpy<F, T>(lam, p, Ap, f);
        apply(p, Ap, std::false_type{});
        const T pAp = vec::dot<F, T>(p, Ap, f);
        if (!(pAp > T(0))) break;
        const T a = rs / pAp;
        vec::axpy<F, T>(a, p, x, f);
        vec::axpy<F, T>(-a, Ap, r, f);
        const T rs_new = vec::dot<F, T>(r, r, f);
        if (!(rs_new > tiny)) break;
        const T beta = rs_new / rs;
        for (int j = 0; j < f; ++j) p[j] = r[j] + beta * p[j];
        rs = rs_new;
    }
}

// Assembles A (f x f) and rhs (f) of row u in double.
template <typename T>
inline void assemble_row(const AlsProblemT<T> &P, int64_t u, double *A, double *rhs,
                         double *yd) {
    const int f = P.f;
    for (int64_t t = 0; t < int64_t(f) * f; ++t) A[t] = double(P.G[t]);
    for (int j = 0; j < f; ++j) A[int64_t(j) * f + j] += double(P.reg[u]);
    std::fill(rhs, rhs + f, 0.0);
    for (int64_t k = P.indptr[u]; k < P.indptr[u + 1]; ++k) {
        const T *y = P.Y + int64_t(P.indices[k]) * f;
        for (int j = 0; j < f; ++j) yd[j] = double(y[j]);
        const double c = 1.0 + double(P.alpha) * double(P.data[k]);
        const double w = c - double(P.w0);
        for (int r = 0; r < f; ++r) vec::axpy<0, double>(w * yd[r], yd, A + int64_t(r) * f, f);
        vec::axpy<0, double>(c, yd, rhs, f);
    }
}

// In-place Cholesky A = U^T U of a w x w row-major matrix, upper triangle used (right-
// looking: every inner loop is a contiguous axpy, which GCC vectorises without -ffast-math,
// where the textbook inner products would be scalar reduction chains). A non-positive pivot
// (only possible with regularization 0 and a rank-deficient system) is clamped so the solve
// stays finite. Used by the implicit-ALS exact solve and by ALS-WR.
inline void cholesky_upper(double *__restrict A, int w) {
    for (int j = 0; j < w; ++j) {
        double *__restrict Aj = A + int64_t(j) * w;
        const double d = Aj[j] > 1e-30 ? std::sqrt(Aj[j]) : 1e-15;
        const double inv = 1.0 / d;
        Aj[j] = d;
        for (int k = j + 1; k < w; ++k) Aj[k] *= inv;
        for (int i = j + 1; i < w; ++i) {
            double *__restrict Ai = A + int64_t(i) * w;
            const double c = Aj[i];
            for (int k = i; k < w; ++k) Ai[k] -= c * Aj[k];
        }
    }
}

// Solves U^T U z = b in place (U from cholesky_upper).
inline void cholesky_upper_solve(const double *__restrict U, double *__restrict z, int w) {
    for (int i = 0; i < w; ++i) {  // U^T y = b, column-oriented: row i of U is contiguous
        const double *__restrict Ui = U + int64_t(i) * w;
        z[i] /= Ui[i];
        const double zi = z[i];
        for (int k = i + 1; k < w; ++k) z[k] -= Ui[k] * zi;
    }
    for (int i = w - 1; i >= 0; --i) {  // U x = y
        const double *__restrict Ui = U + int64_t(i) * w;
        double s = z[i];
        for (int k = i + 1; k < w; ++k) s -= Ui[k] * z[k];
        z[i] = s / Ui[i];
    }
}

// Exact solve of row u; ds holds f*f + 2 f doubles.
template <typename T>
inline void cholesky_row(const AlsProblemT<T> &P, int64_t u, T *x, double *ds) {
    const int f = P.f;
    if (P.indptr[u] == P.indptr[u + 1]) {
        std::fill(x, x + f, T(0));
        return;
    }
    double *A = ds, *z = ds + int64_t(f) * f, *yd = z + f;
    assemble_row(P, u, A, z, yd);
    cholesky_upper(A, f);
    cholesky_upper_solve(A, z, f);
    for (int j = 0; j < f; ++j) x[j] = static_cast<T>(z[j]);
}

template <typename T>
struct AlsScratch {
    std::vector<T> fs;
    std::vector<double> ds;
    Gathered<T> &g;
    AlsScratch(int f, Gathered<T> &g_)
        : fs(3 * int64_t(f)), ds(int64_t(f) * f + 2 * int64_t(f)), g(g_) {}
};

template <typename T>
inline void als_solve_rows(const AlsProblemT<T> &P, T *X, int64_t begin, int64_t end,
                           int solver, int cg_steps, AlsScratch<T> &s) {
    if (solver == ALS_CG && (P.f == 32 || P.f == 64 || P.f == 128)) {
        int64_t longest = 0;
        for (int64_t u = begin; u < end; ++u)
            longest = std::max(longest, P.indptr[u + 1] - P.indptr[u]);
        s.g.reserve(std::min(longest, kGatherCap), P.f);
    }
    for (int64_t u = begin; u < end; ++u) {
        T *x = X + u * P.f;
        if (solver == ALS_CG) {
            // Common sizes get register-resident, fully unrolled loops and gathered rows.
            switch (P.f) {
                case 32: cg_row<32, T>(P, u, x, cg_steps, s.fs.data(), &s.g); break;
                case 64: cg_row<64, T>(P, u, x, cg_steps, s.fs.data(), &s.g); break;
                case 128: cg_row<128, T>(P, u, x, cg_steps, s.fs.data(), &s.g); break;
                default: cg_row<0, T>(P, u, x, cg_steps, s.fs.data(), nullptr); break;
            }
        } else {
            cholesky_row(P, u, x, s.ds.data());
        }
    }
}

// Solves rows [begin, end) into X; compiled per ISA (see the header comment).
TASTEBUD_CLONES
static void als_solve_chunk(const AlsProblem &P, float *X, int64_t begin, int64_t end,
                            int solver, int cg_steps, AlsScratch<float> &s) {
    als_solve_rows(P, X, begin, end, solver, cg_steps, s);
}
TASTEBUD_CLONES
static void als_solve_chunk(const AlsProblem64 &P, double *X, int64_t begin, int64_t end,
                            int solver, int cg_steps, AlsScratch<double> &s) {
    als_solve_rows(P, X, begin, end, solver, cg_steps, s);
}

// Per-row loss terms (see als_loss); G here is the plain Y^T Y.
template <typename T>
inline void als_loss_rows(const AlsProblemT<T> &P, const T *X, int64_t begin, int64_t end,
                          T *tmp, double *out) {
    const int f = P.f;
    for (int64_t u = begin; u < end; ++u) {
        const T *x = X + u * f;
        vec::symv<0, T>(P.G, x, tmp, f);
        const double xgx = vec::dot<0, T>(x, tmp, f);
        double observed = 0.0, observed_sq = 0.0;
        for (int64_t k = P.indptr[u]; k < P.indptr[u + 1]; ++k) {
            const double c = 1.0 + double(P.alpha) * P.data[k];
            const double d = vec::dot<0, T>(x, P.Y + int64_t(P.indices[k]) * f, f);
            observed += c * (1.0 - d) * (1.0 - d);
            observed_sq += d * d;
        }
        out[u] = observed + double(P.w0) * (xgx - observed_sq) +
                 double(P.reg[u]) * double(vec::dot<0, T>(x, x, f));
    }
}
TASTEBUD_CLONES
static void als_loss_chunk(const AlsProblem &P, const float *X, int64_t begin, int64_t end,
                           float *tmp, double *out) {
    als_loss_rows(P, X, begin, end, tmp, out);
}
TASTEBUD_CLONES
static void als_loss_chunk(const AlsProblem64 &P, const double *X, int64_t begin, int64_t end,
                           double *tmp, double *out) {
    als_loss_rows(P, X, begin, end, tmp, out);
}

}  // namespace als_detail

// One half-iteration: updates every row of X (n_rows x f, in place; read as the CG start).
template <typename T>
inline void als_solve(const AlsProblemT<T> &P, T *X, int solver, int cg_steps,
                      int num_threads) {
    const int64_t chunk = 32;
    const int64_t tasks = (P.n_rows + chunk - 1) / chunk;
    parallel_for(tasks, P.n_rows <= 4 * chunk ? 1 : num_threads, [&](int64_t task) {
        // One small allocation per 32 rows is negligible next to their solves; the gathered
        // rows (up to kGatherCap entries) stay allocated per thread and are reused.
        static thread_local als_detail::Gathered<T> gathered;
        als_detail::AlsScratch<T> scratch(P.f, gathered);
        const int64_t begin = task * chunk, end = std::min(P.n_rows, begin + chunk);
        als_detail::als_solve_chunk(P, X, begin, end, solver, cg_steps, scratch);
    });
}

// Per-row loss of X against Y with P.G = Y^T Y (not scaled by w0):
//   sum_{i in I_u} c_ui (1 - x.y_i)^2 + w0 sum_{i not in I_u} (x.y_i)^2 + lambda_u |x|^2,
// the unobserved sum taken as w0 (x^T YtY x - sum_{i in I_u} (x.y_i)^2). Written to out[u]
// so that the caller sums in a fixed order (deterministic for any thread count).
template <typename T>
inline void als_loss(const AlsProblemT<T> &P, const T *X, double *out, int num_threads) {
    const int64_t chunk = 256;
    const int64_t tasks = (P.n_rows + chunk - 1) / chunk;
    parallel_for(tasks, num_threads, [&](int64_t task) {
        std::vector<T> tmp(P.f);
        const int64_t begin = task * chunk, end = std::min(P.n_rows, begin + chunk);
        als_detail::als_loss_chunk(P, X, begin, end, tmp.data(), out);
    });
}

}  // namespace tastebud


// ===========================================================================================
// Explicit-rating ALS-WR (Zhou, Wilkinson, Schreiber & Pan 2008), used by ExplicitALS
// ===========================================================================================
//
// This section is separate from the implicit-feedback solver above (owned by the rating
// family; it uses none of the helpers above, so either side can change independently).
//
// One half-iteration solves, for every row u of a CSR of ratings (users x items, or the
// item-major copy), the ridge regression over the row's observed entries only
//
//     x_u = argmin_x  sum_{j in row u} (t_uj - x . y_j)^2 + reg * n_u * |x|^2,
//
// n_u the row's number of ratings (the "weighted-lambda" regularisation). Unbiased model:
// y_j = Y_j and t_uj = r_uj. Biased model (r_ui ~ mu + b_u + b_i + p_u . q_i): x = [p_u, b_u],
// y_j = [Y_j, 1] and t_uj = r_uj - mu - b_j with b_j the fixed side's bias (reg * n_u then
// also shrinks b_u). The w x w normal equations (w = f or f + 1) are accumulated in double
// precision four ratings at a time (one pass over the matrix per four rank-1 updates) and
// solved by an in-place Cholesky factorisation; a row with fewer ratings n than unknowns w
// (most items of a long-tailed catalogue) solves the equivalent n x n dual system instead.
// Rows without ratings get x = 0 (and b = 0).
// Each row is solved by one thread alone, so results do not depend on the thread count.

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    !defined(TASTEBUD_NO_TARGET_CLONES)
#define TASTEBUD_ALSWR_CLONES \
    __attribute__((flatten, target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TASTEBUD_ALSWR_CLONES
#endif

namespace tastebud {
namespace alswr {

using als_detail::cholesky_upper;
using als_detail::cholesky_upper_solve;

struct Problem {
    const int64_t *indptr;   // n_rows + 1
    const int32_t *indices;  // column (fixed-side row) of each rating
    const float *ratings;    // r of each rating
    int64_t n_rows;
    const float *Y;           // n_cols x f, the fixed side's factors
    const float *other_bias;  // n_cols, the fixed side's biases (biased model), else null
    int f;
    float mu;  // global mean subtracted from the targets (biased model), else 0
    float reg;
    bool biased;
};

// Scratch of one thread (double): A (w x w), b (w), four feature rows (4 x w) and, for the
// dual solve, the transposed feature block (w x w) and the targets (w).
struct Scratch {
    std::vector<double> A, b, y, YT, t;
    explicit Scratch(int w)
        : A(size_t(w) * w), b(w), y(size_t(4) * w), YT(size_t(w) * w), t(w) {}
};

// Loads the feature row of column j into y (double): [Y_j, 1] or Y_j; returns its target.
inline double load_row(const Problem &P, int64_t p, double *__restrict y) {
    const int64_t j = P.indices[p];
    const float *src = P.Y + j * P.f;
    for (int k = 0; k < P.f; ++k) y[k] = src[k];
    double t = P.ratings[p];
    if (P.biased) {
        y[P.f] = 1.0;
        t -= double(P.mu) + double(P.other_bias[j]);
    }
    return t;
}

TASTEBUD_ALSWR_CLONES
static void solve_rows(const Problem &P, int64_t begin, int64_t end, float *X, float *own_bias,
                       Scratch &S) {
    const int w = P.f + (P.biased ? 1 : 0);
    double *__restrict A = S.A.data();
    double *__restrict b = S.b.data();
    double *__restrict y0 = S.y.data();
    double *__restrict y1 = y0 + w;
    double *__restrict y2 = y1 + w;
    double *__restrict y3 = y2 + w;
    for (int64_t u = begin; u < end; ++u) {
        const int64_t lo = P.indptr[u], hi = P.indptr[u + 1];
        float *x = X + u * P.f;
        if (hi == lo) {
            std::fill(x, x + P.f, 0.0f);
            if (P.biased) own_bias[u] = 0.0f;
            continue;
        }
        const int64_t n = hi - lo;
        const double lam = double(P.reg) * double(n);
        if (n < w) {
            // Fewer ratings than unknowns: the dual form of the same ridge solution,
            // x = Y_u^T (Y_u Y_u^T + lam I)^-1 t_u (push-through identity, exact for
            // lam > 0), an n x n system instead of w x w.
            const int m = static_cast<int>(n);
            double *__restrict YT = S.YT.data();  // w x m: column j = features of rating j
            double *__restrict t = S.t.data();
            for (int j = 0; j < m; ++j) {
                t[j] = load_row(P, lo + j, y0);
                for (int k = 0; k < w; ++k) YT[int64_t(k) * m + j] = y0[k];
            }
            std::fill(A, A + int64_t(m) * m, 0.0);
            for (int k = 0; k < w; ++k) {
                const double *__restrict col = YT + int64_t(k) * m;
                for (int r = 0; r < m; ++r) {
                    double *__restrict Ar = A + int64_t(r) * m;
                    const double c = col[r];
                    for (int q = r; q < m; ++q) Ar[q] += c * col[q];
                }
            }
            for (int r = 0; r < m; ++r) A[int64_t(r) * m + r] += lam;
            cholesky_upper(A, m);
            cholesky_upper_solve(A, t, m);
            for (int k = 0; k < w; ++k) {
                const double *__restrict col = YT + int64_t(k) * m;
                double acc = 0.0;
                for (int j = 0; j < m; ++j) acc += col[j] * t[j];
                b[k] = acc;
            }
            for (int k = 0; k < P.f; ++k) x[k] = static_cast<float>(b[k]);
            if (P.biased) own_bias[u] = static_cast<float>(b[P.f]);
            continue;
        }
        std::fill(A, A + int64_t(w) * w, 0.0);
        std::fill(b, b + w, 0.0);
        // Upper triangle of sum_j y_j y_j^T, four ratings per pass over the matrix.
        int64_t p = lo;
        for (; p + 4 <= hi; p += 4) {
            const double t0 = load_row(P, p, y0), t1 = load_row(P, p + 1, y1);
            const double t2 = load_row(P, p + 2, y2), t3 = load_row(P, p + 3, y3);
            for (int k = 0; k < w; ++k) b[k] += (t0 * y0[k] + t1 * y1[k]) + (t2 * y2[k] + t3 * y3[k]);
            for (int r = 0; r < w; ++r) {
                double *__restrict Ar = A + int64_t(r) * w;
                const double c0 = y0[r], c1 = y1[r], c2 = y2[r], c3 = y3[r];
                for (int k = r; k < w; ++k)
                    Ar[k] += (c0 * y0[k] + c1 * y1[k]) + (c2 * y2[k] + c3 * y3[k]);
            }
        }
        for (; p < hi; ++p) {
            const double t0 = load_row(P, p, y0);
            for (int k = 0; k < w; ++k) b[k] += t0 * y0[k];
            for (int r = 0; r < w; ++r) {
                double *__restrict Ar = A + int64_t(r) * w;
                const double c0 = y0[r];
                for (int k = r; k < w; ++k) Ar[k] += c0 * y0[k];
            }
        }
        for (int k = 0; k < w; ++k) A[int64_t(k) * w + k] += lam;
        cholesky_upper(A, w);
        cholesky_upper_solve(A, b, w);
        for (int k = 0; k < P.f; ++k) x[k] = static_cast<float>(b[k]);
        if (P.biased) own_bias[u] = static_cast<float>(b[P.f]);
    }
}

// One half-iteration: writes every row of X (n_rows x f) and, biased, own_bias (n_rows).
inline void solve(const Problem &P, float *X, float *own_bias, int num_threads) {
    const int w = P.f + (P.biased ? 1 : 0);
    const int64_t block = 16;
    const int64_t n_blocks = (P.n_rows + block - 1) / block;
    const int threads = static_cast<int>(
        std::max<int64_t>(1, std::min<int64_t>(resolve_threads(num_threads), n_blocks)));
    std::vector<Scratch> scratch;
    scratch.reserve(threads);
    for (int t = 0; t < threads; ++t) scratch.emplace_back(w);
    // Blocks are handed out dynamically; each thread uses its own scratch.
    std::vector<int64_t> next(1, 0);
    parallel_for(threads, threads, [&](int64_t t) {
        for (;;) {
            int64_t blk;
#pragma omp atomic capture
            blk = next[0]++;
            if (blk >= n_blocks) break;
            const int64_t begin = blk * block, end = std::min(P.n_rows, begin + block);
            solve_rows(P, begin, end, X, own_bias, scratch[t]);
        }
    });
}

}  // namespace alswr
}  // namespace tastebud
