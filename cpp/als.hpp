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
// Hot loops are plain loops over the factor dimension that GCC vectorises; on x86-64 the
// per-chunk solver is compiled three times (x86-64-v4 = AVX-512, v3 = AVX2+FMA, baseline SSE2)
// and the best version is picked at load time (target_clones), so the build stays portable;
// `flatten` inlines every helper into each clone, which is what makes them use the wider ISA.
// Results are independent of the thread count: each row is solved by one thread alone.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
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

// Dot product with 32 independent partial sums (vectorised without -ffast-math).
template <int F = 0>
inline float dot(const float *a, const float *b, int f_ = 0) {
    const int f = F > 0 ? F : f_;
    float acc[32] = {0};
    int j = 0;
    for (; j + 32 <= f; j += 32)
        for (int t = 0; t < 32; ++t) acc[t] += a[j + t] * b[j + t];
    float s = 0.0f;
    for (; j < f; ++j) s += a[j] * b[j];
    for (int t = 0; t < 16; ++t) acc[t] += acc[t + 16];
    for (int t = 0; t < 8; ++t) acc[t] += acc[t + 8];
    for (int t = 0; t < 4; ++t) acc[t] += acc[t + 4];
    return s + ((acc[0] + acc[2]) + (acc[1] + acc[3]));
}
inline float dot(const float *a, const float *b, int f) { return dot<0>(a, b, f); }

template <int F = 0>
inline void axpy(float a, const float *x, float *y, int f_ = 0) {
    const int f = F > 0 ? F : f_;
    for (int j = 0; j < f; ++j) y[j] += a * x[j];
}
inline void axpy(float a, const float *x, float *y, int f) { axpy<0>(a, x, y, f); }

// y += a0 x0 + a1 x1 + a2 x2 + a3 x3: one pass over y for four vectors.
template <int F = 0>
inline void axpy4(float a0, const float *x0, float a1, const float *x1, float a2, const float *x2,
                  float a3, const float *x3, float *y, int f_ = 0) {
    const int f = F > 0 ? F : f_;
    for (int j = 0; j < f; ++j) y[j] += (a0 * x0[j] + a1 * x1[j]) + (a2 * x2[j] + a3 * x3[j]);
}

// out = M v for a symmetric row-major f x f matrix, as a sum of scaled rows (no reductions).
template <int F = 0>
inline void symv(const float *M, const float *v, float *out, int f_ = 0) {
    const int f = F > 0 ? F : f_;
    if constexpr (F > 0) {
        float o[F] = {0};
        for (int r = 0; r < F; ++r) {
            const float vr = v[r];
            const float *row = M + r * F;
            for (int j = 0; j < F; ++j) o[j] += vr * row[j];
        }
        for (int j = 0; j < F; ++j) out[j] = o[j];
    } else {
        std::fill(out, out + f, 0.0f);
        int r = 0;
        for (; r + 4 <= f; r += 4)
            axpy4(v[r], M + int64_t(r) * f, v[r + 1], M + int64_t(r + 1) * f, v[r + 2],
                  M + int64_t(r + 2) * f, v[r + 3], M + int64_t(r + 3) * f, out, f);
        for (; r < f; ++r) axpy(v[r], M + int64_t(r) * f, out, f);
    }
}
inline void symv(const float *M, const float *v, float *out, int f) { symv<0>(M, v, out, f); }

}  // namespace vec

// One half-iteration's problem: solve every row of C against fixed factors Y.
struct AlsProblem {
    const int64_t *indptr;   // n_rows + 1
    const int32_t *indices;  // column of each entry, in [0, n_cols)
    const float *data;       // r_ui >= 0 of each entry
    int64_t n_rows;
    const float *Y;  // n_cols x f, the fixed side
    int f;
    const float *G;    // f x f, w0 * Y^T Y
    const float *reg;  // n_rows, lambda_u
    float alpha;       // c_ui = 1 + alpha * r_ui
    float w0;          // weight of unobserved entries
};

enum AlsSolver : int { ALS_CG = 0, ALS_CHOLESKY = 1 };

namespace als_detail {

// out += sum_k coef_k y_k over the row's entries, where with d_k = y_k . v
//   Residual: coef = c - (c - w0) d   (the sparse part of b - A v)
//   else:     coef = (c - w0) d       (the sparse part of A v)
// F > 0 is the factor count known at compile time: `out` and `v` then live in registers
// for the whole row and the loops are fully unrolled; F = 0 handles any size. The item
// vectors of a few entries ahead are prefetched (random rows of Y miss the cache on large
// catalogues).
template <int F, bool Residual>
inline void sparse_apply(const AlsProblem &P, int64_t b, int64_t e, const float *v, float *out) {
    const float alpha = P.alpha, w0 = P.w0;
    if constexpr (F > 0) {
        float o[F], vv[F];
        for (int j = 0; j < F; ++j) {
            o[j] = out[j];
            vv[j] = v[j];
        }
        for (int64_t k = b; k < e; ++k) {
            if (k + 6 < e) {
                const char *ahead = reinterpret_cast<const char *>(P.Y + int64_t(P.indices[k + 6]) * F);
                for (int line = 0; line < int(F * sizeof(float)); line += 64)
                    __builtin_prefetch(ahead + line);
            }
            const float *y = P.Y + int64_t(P.indices[k]) * F;
            float acc[16] = {0};
            for (int j = 0; j < F; j += 16)
                for (int t = 0; t < 16; ++t) acc[t] += y[j + t] * vv[j + t];
            for (int t = 0; t < 8; ++t) acc[t] += acc[t + 8];
            for (int t = 0; t < 4; ++t) acc[t] += acc[t + 4];
            const float d = (acc[0] + acc[2]) + (acc[1] + acc[3]);
            const float c = 1.0f + alpha * P.data[k];
            const float a = Residual ? c - (c - w0) * d : (c - w0) * d;
            for (int j = 0; j < F; ++j) o[j] += a * y[j];
        }
        for (int j = 0; j < F; ++j) out[j] = o[j];
    } else {
        const int f = P.f;
        auto coef = [&](int64_t k, const float *y) {
            const float c = 1.0f + alpha * P.data[k];
            const float d = vec::dot(y, v, f);
            return Residual ? c - (c - w0) * d : (c - w0) * d;
        };
        int64_t k = b;
        for (; k + 4 <= e; k += 4) {
            const float *y0 = P.Y + int64_t(P.indices[k]) * f;
            const float *y1 = P.Y + int64_t(P.indices[k + 1]) * f;
            const float *y2 = P.Y + int64_t(P.indices[k + 2]) * f;
            const float *y3 = P.Y + int64_t(P.indices[k + 3]) * f;
            const float a0 = coef(k, y0), a1 = coef(k + 1, y1), a2 = coef(k + 2, y2),
                        a3 = coef(k + 3, y3);
            vec::axpy4(a0, y0, a1, y1, a2, y2, a3, y3, out, f);
        }
        for (; k < e; ++k) {
            const float *y = P.Y + int64_t(P.indices[k]) * f;
            vec::axpy(coef(k, y), y, out, f);
        }
    }
}

// Warm-started conjugate gradient on row u; scratch holds 3 f floats.
template <int F>
inline void cg_row(const AlsProblem &P, int64_t u, float *x, int steps, float *scratch) {
    const int f = F > 0 ? F : P.f;
    const int64_t b = P.indptr[u], e = P.indptr[u + 1];
    if (b == e) {
        std::fill(x, x + f, 0.0f);
        return;
    }
    float *r = scratch, *p = scratch + f, *Ap = scratch + 2 * f;
    const float lam = P.reg[u];
    vec::symv<F>(P.G, x, r, f);  // r = b - A x
    for (int j = 0; j < f; ++j) r[j] = -r[j] - lam * x[j];
    sparse_apply<F, true>(P, b, e, x, r);
    std::copy(r, r + f, p);
    float rs = vec::dot<F>(r, r, f);
    if (!(rs > 1e-20f)) return;
    for (int s = 0; s < steps; ++s) {
        vec::symv<F>(P.G, p, Ap, f);
        vec::axpy<F>(lam, p, Ap, f);
        sparse_apply<F, false>(P, b, e, p, Ap);
        const float pAp = vec::dot<F>(p, Ap, f);
        if (!(pAp > 0.0f)) break;
        const float a = rs / pAp;
        vec::axpy<F>(a, p, x, f);
        vec::axpy<F>(-a, Ap, r, f);
        const float rs_new = vec::dot<F>(r, r, f);
        if (!(rs_new > 1e-20f)) break;
        const float beta = rs_new / rs;
        for (int j = 0; j < f; ++j) p[j] = r[j] + beta * p[j];
        rs = rs_new;
    }
}

// Assembles A (f x f, float) and rhs (f) of row u.
inline void assemble_row(const AlsProblem &P, int64_t u, float *A, float *rhs) {
    const int f = P.f;
    std::copy(P.G, P.G + int64_t(f) * f, A);
    for (int j = 0; j < f; ++j) A[int64_t(j) * f + j] += P.reg[u];
    std::fill(rhs, rhs + f, 0.0f);
    for (int64_t k = P.indptr[u]; k < P.indptr[u + 1]; ++k) {
        const float *y = P.Y + int64_t(P.indices[k]) * f;
        const float c = 1.0f + P.alpha * P.data[k];
        const float w = c - P.w0;
        for (int r = 0; r < f; ++r) vec::axpy(w * y[r], y, A + int64_t(r) * f, f);
        vec::axpy(c, y, rhs, f);
    }
}

// In-place Cholesky A = L L^T (lower triangle, double); a non-positive pivot (only possible
// with regularization 0 and a rank-deficient system) is clamped so the solve stays finite.
inline void cholesky(double *A, int f) {
    for (int j = 0; j < f; ++j) {
        double d = A[int64_t(j) * f + j];
        for (int k = 0; k < j; ++k) d -= A[int64_t(j) * f + k] * A[int64_t(j) * f + k];
        d = d > 1e-30 ? std::sqrt(d) : 1e-15;
        A[int64_t(j) * f + j] = d;
        for (int i = j + 1; i < f; ++i) {
            double s = A[int64_t(i) * f + j];
            for (int k = 0; k < j; ++k) s -= A[int64_t(i) * f + k] * A[int64_t(j) * f + k];
            A[int64_t(i) * f + j] = s / d;
        }
    }
}

// Solves L L^T z = rhs in place.
inline void cholesky_solve(const double *L, double *z, int f) {
    for (int i = 0; i < f; ++i) {
        double s = z[i];
        for (int k = 0; k < i; ++k) s -= L[int64_t(i) * f + k] * z[k];
        z[i] = s / L[int64_t(i) * f + i];
    }
    for (int i = f - 1; i >= 0; --i) {
        double s = z[i];
        for (int k = i + 1; k < f; ++k) s -= L[int64_t(k) * f + i] * z[k];
        z[i] = s / L[int64_t(i) * f + i];
    }
}

// Exact solve of row u; scratch holds f*f + f floats and f*f + f doubles.
inline void cholesky_row(const AlsProblem &P, int64_t u, float *x, float *fs, double *ds) {
    const int f = P.f;
    if (P.indptr[u] == P.indptr[u + 1]) {
        std::fill(x, x + f, 0.0f);
        return;
    }
    float *A = fs, *rhs = fs + int64_t(f) * f;
    double *Ad = ds, *z = ds + int64_t(f) * f;
    assemble_row(P, u, A, rhs);
    for (int64_t t = 0; t < int64_t(f) * f; ++t) Ad[t] = A[t];
    for (int j = 0; j < f; ++j) z[j] = rhs[j];
    cholesky(Ad, f);
    cholesky_solve(Ad, z, f);
    for (int j = 0; j < f; ++j) x[j] = static_cast<float>(z[j]);
}

struct AlsScratch {
    std::vector<float> fs;
    std::vector<double> ds;
    explicit AlsScratch(int f) : fs(int64_t(f) * f + 3 * int64_t(f)), ds(int64_t(f) * f + f) {}
};

// Solves rows [begin, end) into X; compiled per ISA (see the header comment).
TASTEBUD_CLONES
static void als_solve_chunk(const AlsProblem &P, float *X, int64_t begin, int64_t end,
                            int solver, int cg_steps, float *fs, double *ds) {
    for (int64_t u = begin; u < end; ++u) {
        float *x = X + u * P.f;
        if (solver == ALS_CG) {
            // Common sizes get register-resident, fully unrolled loops.
            switch (P.f) {
                case 32: cg_row<32>(P, u, x, cg_steps, fs); break;
                case 64: cg_row<64>(P, u, x, cg_steps, fs); break;
                case 128: cg_row<128>(P, u, x, cg_steps, fs); break;
                default: cg_row<0>(P, u, x, cg_steps, fs); break;
            }
        }
        else
            cholesky_row(P, u, x, fs, ds);
    }
}

// Per-row loss terms (see als_loss); G here is the plain Y^T Y.
TASTEBUD_CLONES
static void als_loss_chunk(const AlsProblem &P, const float *X, int64_t begin, int64_t end,
                           float *tmp, double *out) {
    const int f = P.f;
    for (int64_t u = begin; u < end; ++u) {
        const float *x = X + u * f;
        vec::symv(P.G, x, tmp, f);
        const double xgx = vec::dot(x, tmp, f);
        double observed = 0.0, observed_sq = 0.0;
        for (int64_t k = P.indptr[u]; k < P.indptr[u + 1]; ++k) {
            const double c = 1.0 + double(P.alpha) * P.data[k];
            const double d = vec::dot(x, P.Y + int64_t(P.indices[k]) * f, f);
            observed += c * (1.0 - d) * (1.0 - d);
            observed_sq += d * d;
        }
        out[u] = observed + double(P.w0) * (xgx - observed_sq) +
                 double(P.reg[u]) * double(vec::dot(x, x, f));
    }
}

}  // namespace als_detail

// One half-iteration: updates every row of X (n_rows x f, in place; read as the CG start).
inline void als_solve(const AlsProblem &P, float *X, int solver, int cg_steps, int num_threads) {
    const int64_t chunk = 32;
    const int64_t tasks = (P.n_rows + chunk - 1) / chunk;
    parallel_for(tasks, P.n_rows <= 4 * chunk ? 1 : num_threads, [&](int64_t task) {
        // One allocation per 32 rows is negligible next to their solves.
        als_detail::AlsScratch scratch(P.f);
        const int64_t begin = task * chunk, end = std::min(P.n_rows, begin + chunk);
        als_detail::als_solve_chunk(P, X, begin, end, solver, cg_steps, scratch.fs.data(),
                                    scratch.ds.data());
    });
}

// Per-row loss of X against Y with P.G = Y^T Y (not scaled by w0):
//   sum_{i in I_u} c_ui (1 - x.y_i)^2 + w0 sum_{i not in I_u} (x.y_i)^2 + lambda_u |x|^2,
// the unobserved sum taken as w0 (x^T YtY x - sum_{i in I_u} (x.y_i)^2). Written to out[u]
// so that the caller sums in a fixed order (deterministic for any thread count).
inline void als_loss(const AlsProblem &P, const float *X, double *out, int num_threads) {
    const int64_t chunk = 256;
    const int64_t tasks = (P.n_rows + chunk - 1) / chunk;
    parallel_for(tasks, num_threads, [&](int64_t task) {
        std::vector<float> tmp(P.f);
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

// In-place Cholesky A = U^T U of a w x w row-major matrix, upper triangle used (right-
// looking: every inner loop is a contiguous axpy, which GCC vectorises without -ffast-math,
// where the textbook inner products would be scalar reduction chains). A non-positive pivot
// (impossible for reg > 0) is clamped so the solve stays finite.
inline void cholesky_upper(double *__restrict A, int w) {
    for (int j = 0; j < w; ++j) {
        double *__restrict Aj = A + int64_t(j) * w;
        const double d = Aj[j] > 1e-300 ? std::sqrt(Aj[j]) : 1e-150;
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
