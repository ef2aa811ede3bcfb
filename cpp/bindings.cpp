// The only pybind11 file of tastebud. Every function checks shapes, dtypes and index bounds
// while holding the GIL, allocates its outputs, then releases the GIL around the kernel.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <vector>
#include <string>

#include "als.hpp"
#include "sgd.hpp"
#include "similarity.hpp"
#include "topk.hpp"
#include "hybrid.hpp"
#include "dense_search.hpp"

namespace py = pybind11;
using namespace tastebud;

namespace {

template <class T>
using carray = py::array_t<T, py::array::c_style>;

sgemm_fn g_sgemm = nullptr;

void require(bool ok, const std::string &message) {
    if (!ok) throw std::invalid_argument(message);
}

// Installs scipy's sgemm (scipy.linalg.cython_blas.__pyx_capi__["sgemm"]). The capsule's
// name is the C signature Cython gives it: anything else (dgemm, another capsule) would be
// called with the wrong arguments, so it is refused.
void set_blas(py::capsule sgemm_capsule) {
    const char *name = PyCapsule_GetName(sgemm_capsule.ptr());
    const std::string sig = name ? name : "";
    const std::string single = "cython_blas_s *";
    require(sig.rfind("void (char *, char *, int *, int *, int *, ", 0) == 0 &&
                sig.find(single) != std::string::npos &&
                sig.find("cython_blas_d *") == std::string::npos &&
                sig.find("cython_blas_c *") == std::string::npos &&
                sig.find("cython_blas_z *") == std::string::npos,
            "set_blas needs scipy.linalg.cython_blas.__pyx_capi__['sgemm']");
    void *ptr = PyCapsule_GetPointer(sgemm_capsule.ptr(), name);
    if (!ptr) throw py::error_already_set();
    g_sgemm = reinterpret_cast<sgemm_fn>(ptr);
}

// An array the kernel writes into: it must already be a C-contiguous array of T (a converted
// copy would silently swallow the updates) and writeable.
template <class T>
carray<T> output_array(const py::object &obj, const std::string &name) {
    require(carray<T>::check_(obj), name + " must be a C-contiguous " +
                                        py::str(py::dtype::of<T>()).cast<std::string>() +
                                        " array (it is updated in place)");
    auto a = obj.cast<carray<T>>();
    require(a.writeable(), name + " must be writeable (it is updated in place)");
    return a;
}

// The structure of a CSR with n rows over n_cols columns: indptr starts at 0, never
// decreases and ends at nnz (all checked before any row is walked, so a bad indptr cannot make
// the index scan read outside `idx`), every index in [0, n_cols), and per row the indices are
// in any order (order 0), non-decreasing (1) or strictly increasing (2). O(n + nnz); messages
// are only built on failure.
void check_csr_structure(const int64_t *p, int64_t n, const int32_t *idx, int64_t nnz,
                         int64_t n_cols, int order, const std::string &name) {
    require(p[0] == 0 && p[n] == nnz, name + " indptr does not match indices");
    for (int64_t r = 0; r < n; ++r)
        if (p[r] > p[r + 1]) require(false, name + " indptr must be non-decreasing");
    for (int64_t r = 0; r < n; ++r) {
        for (int64_t j = p[r]; j < p[r + 1]; ++j) {
            if (idx[j] < 0 || idx[j] >= n_cols)
                require(false, name + " index out of range [0, " + std::to_string(n_cols) + ")");
            if (order > 0 && j > p[r] && (order == 1 ? idx[j - 1] > idx[j] : idx[j - 1] >= idx[j]))
                require(false, name + (order == 1 ? " indices must be sorted per row"
                                                  : " indices must be sorted and unique per row"));
        }
    }
}

// Validates an exclusion CSR (n_rows + 1 indptr, sorted in-range indices) and a mask.
Exclusions make_exclusions(const py::object &indptr_obj, const py::object &indices_obj,
                           const py::object &allowed_obj, int64_t n, int64_t m) {
    Exclusions ex;
    if (!indptr_obj.is_none()) {
        auto indptr = indptr_obj.cast<carray<int64_t>>();
        auto indices = indices_obj.cast<carray<int32_t>>();
        require(indptr.ndim() == 1 && indptr.shape(0) == n + 1,
                "exclude indptr must have n_rows + 1 = " + std::to_string(n + 1) + " entries");
        require(indices.ndim() == 1, "exclude indices must be 1-D");
        const int64_t *p = indptr.data();
        const int32_t *idx = indices.data();
        check_csr_structure(p, n, idx, indices.shape(0), m, 1, "exclude");
        ex.indptr = p;
        ex.indices = idx;
    }
    if (!allowed_obj.is_none()) {
        auto allowed = allowed_obj.cast<carray<uint8_t>>();
        require(allowed.ndim() == 1 && allowed.shape(0) == m,
                "allowed mask must have one entry per item (" + std::to_string(m) + ")");
        ex.allowed = allowed.data();
    }
    return ex;
}

const float *optional_bias(const py::object &bias, int64_t m, py::object &keep) {
    if (bias.is_none()) return nullptr;
    auto b = bias.cast<carray<float>>();
    require(b.ndim() == 1 && b.shape(0) == m, "item bias must have one entry per item");
    keep = b;
    return b.data();
}

// Exclusion arguments of the top-k bindings (each may be None), validated; `keep` holds the
// converted arrays alive for the duration of the call.
Exclusions exclusions_from(const py::object &indptr, const py::object &indices,
                           const py::object &allowed, int64_t n, int64_t m, py::list &keep) {
    py::object ip = indptr.is_none() ? indptr : py::object(indptr.cast<carray<int64_t>>());
    py::object ix = indices.is_none() ? indices : py::object(indices.cast<carray<int32_t>>());
    py::object al = allowed.is_none() ? allowed : py::object(allowed.cast<carray<uint8_t>>());
    keep.append(ip);
    keep.append(ix);
    keep.append(al);
    return make_exclusions(ip, ix, al, n, m);
}

py::tuple topk_scores_py(carray<float> scores, int k, py::object excl_indptr,
                         py::object excl_indices, py::object allowed, int num_threads) {
    require(scores.ndim() == 2, "scores must be 2-D");
    const int64_t n = scores.shape(0), m = scores.shape(1);
    require(k >= 1, "k must be >= 1");
    // Keep the arrays alive for the duration of the call.
    py::list keep;
    Exclusions ex = exclusions_from(excl_indptr, excl_indices, allowed, n, m, keep);
    carray<int64_t> out_index({n, static_cast<int64_t>(k)});
    carray<float> out_score({n, static_cast<int64_t>(k)});
    const float *s = scores.data();
    int64_t *oi = out_index.mutable_data();
    float *os = out_score.mutable_data();
    {
        py::gil_scoped_release nogil;
        topk_scores(s, n, m, k, ex, oi, os, num_threads);
    }
    return py::make_tuple(out_index, out_score);
}

py::tuple topk_dot_py(carray<float> queries, carray<float> items, py::object item_bias, int k,
                      py::object excl_indptr, py::object excl_indices, py::object allowed,
                      int num_threads, int query_block, int item_block) {
    require(g_sgemm != nullptr, "BLAS not initialised: call tastebud._core.set_blas first");
    require(queries.ndim() == 2 && items.ndim() == 2, "queries and items must be 2-D");
    const int64_t n = queries.shape(0), m = items.shape(0);
    require(queries.shape(1) == items.shape(1),
            "queries have " + std::to_string(queries.shape(1)) + " columns but items have " +
                std::to_string(items.shape(1)));
    require(queries.shape(1) < (int64_t(1) << 31) && m < (int64_t(1) << 31),
            "dimensions must fit in 32-bit BLAS integers");
    require(k >= 1, "k must be >= 1");
    const int f = static_cast<int>(queries.shape(1));
    py::object bias_keep;
    const float *bias = optional_bias(item_bias, m, bias_keep);
    py::list keep;
    Exclusions ex = exclusions_from(excl_indptr, excl_indices, allowed, n, m, keep);
    carray<int64_t> out_index({n, static_cast<int64_t>(k)});
    carray<float> out_score({n, static_cast<int64_t>(k)});
    const float *q = queries.data();
    const float *it = items.data();
    int64_t *oi = out_index.mutable_data();
    float *os = out_score.mutable_data();
    {
        py::gil_scoped_release nogil;
        topk_dot(q, n, it, m, f, bias, k, ex, oi, os, num_threads, g_sgemm, query_block,
                 item_block);
    }
    return py::make_tuple(out_index, out_score);
}

// ------------------------------------------------------------------ sparse kNN (similarity.hpp)

// Validates a CSR (n_rows + 1 int64 indptr, int32 indices in [0, n_cols), float32 data).
CsrF check_csr(const carray<int64_t> &indptr, const carray<int32_t> &indices,
               const carray<float> &data, int64_t n_rows, int64_t n_cols, const std::string &name,
               bool sorted) {
    require(n_rows >= 0 && n_cols >= 0, name + ": negative shape");
    require(indptr.ndim() == 1 && indptr.shape(0) == n_rows + 1,
            name + " indptr must have n_rows + 1 = " + std::to_string(n_rows + 1) + " entries");
    require(indices.ndim() == 1 && data.ndim() == 1 && indices.shape(0) == data.shape(0),
            name + " indices and data must be 1-D of equal length");
    const int64_t *p = indptr.data();
    const int32_t *idx = indices.data();
    check_csr_structure(p, n_rows, idx, indices.shape(0), n_cols, sorted ? 2 : 0, name);
    return CsrF{p, idx, data.data()};
}

// The checked inputs of the sparse kNN bindings: query rows, target columns (T^T), the squared
// norms the global kinds need (kept alive by q_keep / t_keep), and the options.
struct SparseKnnInputs {
    CsrF q, tt;
    const double *q_sq = nullptr, *t_sq = nullptr;
    py::object q_keep, t_keep;
    SparseKnnOptions opt;
};

SparseKnnInputs sparse_knn_inputs(const carray<int64_t> &q_indptr,
                                  const carray<int32_t> &q_indices, const carray<float> &q_data,
                                  int64_t nq,
                                  const carray<int64_t> &t_indptr,
                                  const carray<int32_t> &t_indices, const carray<float> &t_data,
                                  int64_t nt, int64_t d, const py::object &q_sq_obj,
                                  const py::object &t_sq_obj, int kind, double alpha,
                                  double shrink, int min_support, int k, bool positive_only) {
    require(kind >= sim_dot && kind <= sim_msd, "unknown similarity kind");
    require(k >= 1, "k must be >= 1");
    require(nt < (int64_t(1) << 31), "too many targets for int32 indices");
    SparseKnnInputs in;
    in.q = check_csr(q_indptr, q_indices, q_data, nq, d, "query", false);
    in.tt = check_csr(t_indptr, t_indices, t_data, d, nt, "target^T", false);
    if (kind == sim_cosine || kind == sim_asymmetric || kind == sim_jaccard) {
        auto qs = q_sq_obj.cast<carray<double>>();
        auto ts = t_sq_obj.cast<carray<double>>();
        require(qs.ndim() == 1 && qs.shape(0) == nq, "q_sq must have one entry per query");
        require(ts.ndim() == 1 && ts.shape(0) == nt, "t_sq must have one entry per target");
        in.q_keep = qs;
        in.t_keep = ts;
        in.q_sq = qs.data();
        in.t_sq = ts.data();
    }
    in.opt.kind = kind;
    in.opt.alpha = alpha;
    in.opt.shrink = shrink;
    in.opt.min_support = min_support;
    in.opt.k = k;
    in.opt.positive_only = positive_only;
    return in;
}

py::tuple sparse_knn_py(carray<int64_t> q_indptr, carray<int32_t> q_indices, carray<float> q_data,
                        int64_t nq, carray<int64_t> t_indptr, carray<int32_t> t_indices,
                        carray<float> t_data, int64_t nt, int64_t d, py::object q_sq_obj,
                        py::object t_sq_obj, int kind, double alpha, double shrink,
                        int min_support, int64_t self_offset, int k, bool sort_by_index,
                        int num_threads, bool positive_only) {
    SparseKnnInputs in = sparse_knn_inputs(q_indptr, q_indices, q_data, nq, t_indptr, t_indices,
                                           t_data, nt, d, q_sq_obj, t_sq_obj, kind, alpha, shrink,
                                           min_support, k, positive_only);
    SparseKnnOptions opt = in.opt;
    opt.self_offset = self_offset;
    opt.sort_by_index = sort_by_index;
    carray<int32_t> out_index({nq, static_cast<int64_t>(k)});
    carray<float> out_score({nq, static_cast<int64_t>(k)});
    carray<int32_t> out_count(nq);
    int32_t *oi = out_index.mutable_data();
    float *os = out_score.mutable_data();
    int32_t *oc = out_count.mutable_data();
    {
        py::gil_scoped_release nogil;
        sparse_knn(in.q, nq, in.tt, nt, in.q_sq, in.t_sq, opt, oi, os, oc, num_threads);
    }
    return py::make_tuple(out_index, out_score, out_count);
}

// As sparse_knn, but returns the neighbour graph as CSR (indptr int64, indices int32 sorted
// per row, data float32): rows are computed in blocks into padded scratch and compacted in C++.
py::tuple sparse_knn_csr_py(carray<int64_t> q_indptr, carray<int32_t> q_indices,
                            carray<float> q_data, int64_t nq, carray<int64_t> t_indptr,
                            carray<int32_t> t_indices, carray<float> t_data, int64_t nt,
                            int64_t d, py::object q_sq_obj, py::object t_sq_obj, int kind,
                            double alpha, double shrink, int min_support, int64_t self_offset,
                            int k, int num_threads, bool positive_only) {
    SparseKnnInputs in = sparse_knn_inputs(q_indptr, q_indices, q_data, nq, t_indptr, t_indices,
                                           t_data, nt, d, q_sq_obj, t_sq_obj, kind, alpha, shrink,
                                           min_support, k, positive_only);
    const CsrF &q = in.q;
    SparseKnnOptions opt = in.opt;
    opt.sort_by_index = true;
    std::vector<int64_t> indptr(nq + 1, 0);
    std::vector<int32_t> indices;
    std::vector<float> data;
    {
        py::gil_scoped_release nogil;
        const int64_t block = std::max<int64_t>(1, (int64_t(1) << 24) / k);
        std::vector<int32_t> bi, bc;
        std::vector<float> bs;
        for (int64_t start = 0; start < nq; start += block) {
            const int64_t rows = std::min(block, nq - start);
            bi.resize(rows * k);
            bs.resize(rows * k);
            bc.resize(rows);
            // the block's rows as a CSR of their own (indptr shifted to start at 0)
            std::vector<int64_t> ip(rows + 1);
            for (int64_t r = 0; r <= rows; ++r) ip[r] = q.indptr[start + r] - q.indptr[start];
            const CsrF qb{ip.data(), q.indices + q.indptr[start], q.data + q.indptr[start]};
            SparseKnnOptions o = opt;
            o.self_offset = self_offset >= 0 ? self_offset + start : -1;
            sparse_knn(qb, rows, in.tt, nt, in.q_sq ? in.q_sq + start : nullptr, in.t_sq, o,
                       bi.data(), bs.data(), bc.data(), num_threads);
            int64_t total = 0;
            for (int64_t r = 0; r < rows; ++r) total += bc[r];
            const int64_t base = static_cast<int64_t>(indices.size());
            indices.resize(base + total);
            data.resize(base + total);
            int64_t pos = base;
            for (int64_t r = 0; r < rows; ++r) {
                std::copy(bi.begin() + r * k, bi.begin() + r * k + bc[r], indices.begin() + pos);
                std::copy(bs.begin() + r * k, bs.begin() + r * k + bc[r], data.begin() + pos);
                pos += bc[r];
                indptr[start + r + 1] = pos;
            }
        }
    }
    carray<int64_t> out_indptr(nq + 1);
    carray<int32_t> out_indices(static_cast<int64_t>(indices.size()));
    carray<float> out_data(static_cast<int64_t>(data.size()));
    std::copy(indptr.begin(), indptr.end(), out_indptr.mutable_data());
    std::copy(indices.begin(), indices.end(), out_indices.mutable_data());
    std::copy(data.begin(), data.end(), out_data.mutable_data());
    return py::make_tuple(out_indptr, out_indices, out_data);
}

py::tuple sparse_knn_symmetric_py(carray<int64_t> x_indptr, carray<int32_t> x_indices,
                                  carray<float> x_data, int64_t n, int64_t d,
                                  carray<int64_t> t_indptr, carray<int32_t> t_indices,
                                  carray<float> t_data, py::object sq_obj, int kind,
                                  double alpha, double shrink, int min_support,
                                  bool include_self, int k, bool sort_by_index,
                                  int num_threads) {
    require(symmetric_kind(kind, alpha),
            "the symmetric kernel needs kind dot, cosine, jaccard or asymmetric with alpha 0.5");
    require(k >= 1, "k must be >= 1");
    require(n < (int64_t(1) << 31), "too many rows for int32 indices");
    CsrF x = check_csr(x_indptr, x_indices, x_data, n, d, "matrix", false);
    CsrF xt = check_csr(t_indptr, t_indices, t_data, d, n, "matrix^T", true);
    require(x_indices.shape(0) == t_indices.shape(0), "matrix^T must have the entries of matrix");
    py::object keep = sq_obj;
    const double *sq = nullptr;
    if (kind != sim_dot) {
        auto s = sq_obj.cast<carray<double>>();
        require(s.ndim() == 1 && s.shape(0) == n, "sq must have one entry per row");
        keep = s;
        sq = s.data();
    }
    SparseKnnOptions opt;
    opt.kind = kind;
    opt.alpha = alpha;
    opt.shrink = shrink;
    opt.min_support = min_support;
    opt.k = k;
    opt.sort_by_index = sort_by_index;
    carray<int32_t> out_index({n, static_cast<int64_t>(k)});
    carray<float> out_score({n, static_cast<int64_t>(k)});
    carray<int32_t> out_count(n);
    int32_t *oi = out_index.mutable_data();
    float *os = out_score.mutable_data();
    int32_t *oc = out_count.mutable_data();
    {
        py::gil_scoped_release nogil;
        sparse_knn_symmetric(x, n, xt, sq, opt, include_self, oi, os, oc, num_threads);
    }
    return py::make_tuple(out_index, out_score, out_count);
}

py::tuple sparse_score_topk_py(carray<int64_t> q_indptr, carray<int32_t> q_indices,
                               carray<float> q_data, int64_t nq, carray<int64_t> m_indptr,
                               carray<int32_t> m_indices, carray<float> m_data, int64_t d,
                               int64_t m, int k, py::object excl_indptr, py::object excl_indices,
                               py::object allowed, int num_threads) {
    require(k >= 1, "k must be >= 1");
    CsrF q = check_csr(q_indptr, q_indices, q_data, nq, d, "query", false);
    CsrF mat = check_csr(m_indptr, m_indices, m_data, d, m, "matrix", false);
    py::list keep;
    Exclusions ex = exclusions_from(excl_indptr, excl_indices, allowed, nq, m, keep);
    carray<int64_t> out_index({nq, static_cast<int64_t>(k)});
    carray<float> out_score({nq, static_cast<int64_t>(k)});
    int64_t *oi = out_index.mutable_data();
    float *os = out_score.mutable_data();
    {
        py::gil_scoped_release nogil;
        sparse_score_topk(q, nq, mat, m, k, ex, oi, os, num_threads);
    }
    return py::make_tuple(out_index, out_score);
}

py::tuple knn_predict_py(carray<int64_t> x, carray<int64_t> y, carray<int64_t> s_indptr,
                         carray<int32_t> s_indices, carray<float> s_data, int64_t n_q,
                         int64_t n_x, carray<int64_t> c_indptr, carray<int32_t> c_indices,
                         carray<float> c_data, int64_t n_y, int k, int num_threads) {
    require(k >= 1, "k must be >= 1");
    require(x.ndim() == 1 && y.ndim() == 1 && x.shape(0) == y.shape(0),
            "x and y must be 1-D of equal length");
    CsrF sim = check_csr(s_indptr, s_indices, s_data, n_q, n_x, "similarity", true);
    CsrF ctx = check_csr(c_indptr, c_indices, c_data, n_y, n_x, "context", true);
    const int64_t n = x.shape(0);
    const int64_t *px = x.data(), *py_ = y.data();
    for (int64_t i = 0; i < n; ++i) {
        if (px[i] < 0 || px[i] >= n_q || py_[i] < 0 || py_[i] >= n_y)
            require(false, "pair index out of range");
    }
    carray<double> out_est(n);
    carray<int32_t> out_k(n);
    double *oe = out_est.mutable_data();
    int32_t *ok = out_k.mutable_data();
    {
        py::gil_scoped_release nogil;
        knn_predict(px, py_, n, sim, ctx, k, oe, ok, num_threads, n_q, n_x);
    }
    return py::make_tuple(out_est, out_k);
}

py::tuple als_baselines_py(carray<int64_t> indptr, carray<int32_t> indices, carray<float> data,
                           int64_t n_users, int64_t n_items, double global_mean, int iterations,
                           double reg_users, double reg_items) {
    require(iterations >= 0, "iterations must be >= 0");
    require(reg_users >= 0 && reg_items >= 0, "regularisation must be >= 0");
    CsrF r = check_csr(indptr, indices, data, n_users, n_items, "ratings", false);
    carray<double> bu(n_users), bi(n_items);
    double *pu = bu.mutable_data(), *pi = bi.mutable_data();
    {
        py::gil_scoped_release nogil;
        als_baselines(r, n_users, n_items, global_mean, iterations, reg_users, reg_items, pu, pi);
    }
    return py::make_tuple(bu, bi);
}

// ------------------------------------------------------------------ ALS / BPR (cpp/als.hpp, sgd.hpp)

// Checks a CSR (indptr n_rows + 1, indices in [0, n_cols)), optionally sorted within rows.
void check_csr(const carray<int64_t> &indptr, const carray<int32_t> &indices, int64_t n_cols,
               bool sorted, const char *what) {
    const std::string name(what);
    require(indptr.ndim() == 1 && indptr.shape(0) >= 1, name + " indptr must be 1-D, non-empty");
    require(indices.ndim() == 1, name + " indices must be 1-D");
    check_csr_structure(indptr.data(), indptr.shape(0) - 1, indices.data(), indices.shape(0),
                        n_cols, sorted ? 2 : 0, name);
}

template <typename T>
void check_matrix(const carray<T> &a, int64_t rows, int64_t cols, const char *what) {
    require(a.ndim() == 2 && a.shape(0) == rows && a.shape(1) == cols,
            std::string(what) + " must have shape (" + std::to_string(rows) + ", " +
                std::to_string(cols) + ")");
}

template <typename T>
AlsProblemT<T> make_als_problem(const carray<int64_t> &indptr, const carray<int32_t> &indices,
                                const carray<float> &data, const carray<T> &Y, const carray<T> &G,
                                const carray<float> &reg, float alpha, float w0) {
    require(Y.ndim() == 2 && Y.shape(1) >= 1, "fixed factors must be 2-D with >= 1 column");
    const int64_t m = Y.shape(0), f = Y.shape(1);
    require(f < (int64_t(1) << 20), "too many factors");
    check_csr(indptr, indices, m, false, "ALS matrix");
    require(data.ndim() == 1 && data.shape(0) == indices.shape(0),
            "ALS data must have one value per index");
    const int64_t n = indptr.shape(0) - 1;
    check_matrix(G, f, f, "gram");
    require(reg.ndim() == 1 && reg.shape(0) == n, "regularization must have one value per row");
    require(std::isfinite(alpha) && alpha >= 0, "alpha must be finite and >= 0");
    require(std::isfinite(w0) && w0 >= 0, "unobserved weight must be finite and >= 0");
    AlsProblemT<T> P;
    P.indptr = indptr.data();
    P.indices = indices.data();
    P.data = data.data();
    P.n_rows = n;
    P.Y = Y.data();
    P.f = static_cast<int>(f);
    P.G = G.data();
    P.reg = reg.data();
    P.alpha = alpha;
    P.w0 = w0;
    return P;
}

// float32 and float64 (T) share one binding name: pybind11 picks the overload whose arrays
// match exactly (all arguments are noconvert).
template <typename T>
void als_solve_py(carray<int64_t> indptr, carray<int32_t> indices, carray<float> data,
                  carray<T> Y, carray<T> G, carray<float> reg, carray<T> X, float alpha,
                  float w0, int solver, int cg_steps, int num_threads) {
    AlsProblemT<T> P = make_als_problem<T>(indptr, indices, data, Y, G, reg, alpha, w0);
    check_matrix(X, P.n_rows, P.f, "solved factors");
    require(solver == ALS_CG || solver == ALS_CHOLESKY, "solver must be 0 (cg) or 1 (cholesky)");
    require(cg_steps >= 1, "cg_steps must be >= 1");
    require(X.writeable(), "solved factors must be writeable");
    T *x = X.mutable_data();
    {
        py::gil_scoped_release nogil;
        als_solve(P, x, solver, cg_steps, num_threads);
    }
}

template <typename T>
carray<double> als_loss_py(carray<int64_t> indptr, carray<int32_t> indices, carray<float> data,
                           carray<T> Y, carray<T> G, carray<float> reg, carray<T> X,
                           float alpha, float w0, int num_threads) {
    AlsProblemT<T> P = make_als_problem<T>(indptr, indices, data, Y, G, reg, alpha, w0);
    check_matrix(X, P.n_rows, P.f, "factors");
    carray<double> out(P.n_rows);
    double *o = out.mutable_data();
    const T *x = X.data();
    {
        py::gil_scoped_release nogil;
        als_loss(P, x, o, num_threads);
    }
    return out;
}

PositiveSet make_positive_set(const carray<int64_t> &indptr, const carray<int32_t> &indices,
                              int64_t n_items) {
    require(n_items >= 1 && n_items < (int64_t(1) << 31), "number of items must be in [1, 2^31)");
    check_csr(indptr, indices, n_items, true, "positives");
    PositiveSet S;
    S.indptr = indptr.data();
    S.indices = indices.data();
    S.row_of = nullptr;
    S.n_rows = indptr.shape(0) - 1;
    S.n_items = n_items;
    S.nnz = indices.shape(0);
    return S;
}


py::tuple bpr_epoch_py(carray<int64_t> indptr, carray<int32_t> indices, carray<int32_t> row_of,
                       carray<float> U, carray<float> V, py::object bias, float lr, float reg,
                       bool verify, int64_t samples, uint64_t seed, int64_t epoch,
                       int num_threads) {
    require(V.ndim() == 2 && V.shape(1) >= 1, "item factors must be 2-D with >= 1 column");
    const int64_t m = V.shape(0), f = V.shape(1);
    PositiveSet S = make_positive_set(indptr, indices, m);
    require(S.nnz >= 1 && S.nnz < (int64_t(1) << 32), "BPR needs 1 to 2^32 positives");
    check_matrix(U, S.n_rows, f, "user factors");
    require(row_of.ndim() == 1 && row_of.shape(0) == S.nnz, "row_of must have one entry per nnz");
    const int32_t *ro = row_of.data();
    for (int64_t r = 0; r < S.n_rows; ++r)
        for (int64_t k = S.indptr[r]; k < S.indptr[r + 1]; ++k)
            if (ro[k] != r) require(false, "row_of does not match indptr");
    S.row_of = ro;
    require(std::isfinite(lr) && lr > 0 && std::isfinite(reg) && reg >= 0,
            "learning_rate must be > 0 and regularization >= 0");
    require(samples >= 0, "samples must be >= 0");
    require(U.writeable() && V.writeable(), "factors must be writeable");
    py::object keep = py::none();
    float *b = nullptr;
    if (!bias.is_none()) {  // updated in place: no conversion
        auto out = output_array<float>(bias, "item bias");
        require(out.ndim() == 1 && out.shape(0) == m, "item bias must have one entry per item");
        keep = out;
        b = out.mutable_data();
    }
    float *u = U.mutable_data();
    float *v = V.mutable_data();
    BprStats stats;
    {
        py::gil_scoped_release nogil;
        stats = bpr_epoch(S, u, v, b, static_cast<int>(f), lr, reg, verify, samples, seed, epoch,
                          num_threads);
    }
    return py::make_tuple(stats.correct, stats.skipped);
}

carray<float> bpr_fold_in_py(carray<int64_t> indptr, carray<int32_t> indices, carray<float> V,
                             py::object bias, float lr, float reg, bool verify, int epochs,
                             uint64_t seed, int num_threads) {
    require(V.ndim() == 2 && V.shape(1) >= 1, "item factors must be 2-D with >= 1 column");
    const int64_t m = V.shape(0), f = V.shape(1);
    PositiveSet S = make_positive_set(indptr, indices, m);
    require(std::isfinite(lr) && lr > 0 && std::isfinite(reg) && reg >= 0,
            "learning_rate must be > 0 and regularization >= 0");
    require(epochs >= 0, "epochs must be >= 0");
    py::object keep = py::none();
    const float *b = optional_bias(bias, m, keep);
    carray<float> out({S.n_rows, f});
    float *u = out.mutable_data();
    const float *v = V.data();
    {
        py::gil_scoped_release nogil;
        bpr_fold_in(S, u, v, b, static_cast<int>(f), lr, reg, verify, epochs, seed, num_threads);
    }
    return out;
}


// ------------------------------------------------------------------ hybrid (cpp/hybrid.hpp)

// Checks a CSR (indptr int64 of rows + 1, indices int32 in [0, n_cols), values float32) and
// optionally that each row's indices are sorted and distinct.
hybrid::Csr hybrid_csr(const carray<int64_t> &indptr, const carray<int32_t> &indices,
                       const carray<float> *data, int64_t n_cols, bool sorted,
                       const std::string &name) {
    require(indptr.ndim() == 1 && indptr.shape(0) >= 1, name + " indptr must be 1-D, non-empty");
    require(indices.ndim() == 1, name + " indices must be 1-D");
    const int64_t rows = indptr.shape(0) - 1;
    const int64_t *p = indptr.data();
    const int32_t *idx = indices.data();
    if (data) require(data->ndim() == 1 && data->shape(0) == indices.shape(0),
                      name + " data must have one value per index");
    check_csr_structure(p, rows, idx, indices.shape(0), n_cols, sorted ? 2 : 0, name);
    hybrid::Csr m;
    m.indptr = p;
    m.indices = idx;
    m.data = data ? data->data() : nullptr;
    m.rows = rows;
    return m;
}

// Parameters and optimiser state of one side, as a tuple of 6 float32 arrays:
// (emb (n, f), bias (n), emb_acc1 (n, f), bias_acc1 (n), emb_acc2 (n, f), bias_acc2 (n)).
hybrid::Side hybrid_side(const py::tuple &arrays, int64_t n_features, int f,
                         const std::string &name) {
    require(arrays.size() == 6, name + " state must be 6 arrays");
    float *ptr[6];
    for (int a = 0; a < 6; ++a) {
        // No conversion: the kernel updates these arrays in place.
        require(carray<float>::check_(arrays[a]),
                name + " state arrays must be C-contiguous float32 ndarrays");
        auto arr = arrays[a].cast<carray<float>>();
        const bool matrix = (a % 2 == 0);
        require(matrix ? (arr.ndim() == 2 && arr.shape(0) == n_features && arr.shape(1) == f)
                       : (arr.ndim() == 1 && arr.shape(0) == n_features),
                name + " state array " + std::to_string(a) + " must have shape (" +
                    std::to_string(n_features) + (matrix ? ", " + std::to_string(f) : "") + ")");
        require(arr.writeable(), name + " state arrays must be writeable");
        ptr[a] = arr.mutable_data();
    }
    hybrid::Side side;
    side.emb = ptr[0];
    side.bias = ptr[1];
    side.emb_acc1 = ptr[2];
    side.bias_acc1 = ptr[3];
    side.emb_acc2 = ptr[4];
    side.bias_acc2 = ptr[5];
    return side;
}

hybrid::Settings hybrid_settings(int f, int loss, int schedule, float learning_rate, float rho,
                                 float epsilon, int max_sampled, int k, int n, int64_t n_items) {
    require(f >= 1, "factors must be >= 1");
    require(loss >= 0 && loss <= 3, "loss code must be in [0, 3]");
    require(schedule == 0 || schedule == 1, "schedule code must be 0 or 1");
    require(max_sampled >= 1 && k >= 1 && n >= 1, "max_sampled, k and n must be >= 1");
    require(n_items >= 1 && n_items < (int64_t(1) << 31), "n_items must be in [1, 2^31)");
    hybrid::Settings s;
    s.f = f;
    s.loss = loss;
    s.schedule = schedule;
    s.learning_rate = learning_rate;
    s.rho = rho;
    s.epsilon = epsilon;
    s.max_sampled = max_sampled;
    s.k = k;
    s.n = n;
    s.n_items = n_items;
    return s;
}

struct HybridModel {
    hybrid::Side users, items;
    hybrid::Csr positives;
};

// Builds and checks everything an epoch or a step needs. `arrays` keeps the casts alive.
HybridModel hybrid_model(const py::tuple &user_features, const py::tuple &item_features,
                         const carray<int64_t> &pos_indptr, const carray<int32_t> &pos_indices,
                         const py::tuple &user_state, const py::tuple &item_state,
                         float user_alpha, float item_alpha, const hybrid::Settings &s,
                         std::vector<py::object> &keep) {
    require(user_features.size() == 3 && item_features.size() == 3,
            "features must be (indptr, indices, data) tuples");
    const int64_t n_uf = py::len(user_state[1]), n_if = py::len(item_state[1]);
    auto uf_p = user_features[0].cast<carray<int64_t>>();
    auto uf_i = user_features[1].cast<carray<int32_t>>();
    auto uf_d = user_features[2].cast<carray<float>>();
    auto if_p = item_features[0].cast<carray<int64_t>>();
    auto if_i = item_features[1].cast<carray<int32_t>>();
    auto if_d = item_features[2].cast<carray<float>>();
    keep.insert(keep.end(), {uf_p, uf_i, uf_d, if_p, if_i, if_d});
    HybridModel m;
    m.users = hybrid_side(user_state, n_uf, s.f, "user");
    m.items = hybrid_side(item_state, n_if, s.f, "item");
    m.users.features = hybrid_csr(uf_p, uf_i, &uf_d, n_uf, false, "user features");
    m.items.features = hybrid_csr(if_p, if_i, &if_d, n_if, false, "item features");
    m.users.alpha = user_alpha;
    m.items.alpha = item_alpha;
    require(m.items.features.rows == s.n_items, "item features must have one row per item");
    m.positives = hybrid_csr(pos_indptr, pos_indices, nullptr, s.n_items, true, "positives");
    require(m.positives.rows == m.users.features.rows,
            "positives must have one row per user of the user features");
    return m;
}

void hybrid_epoch_py(py::tuple user_features, py::tuple item_features,
                     carray<int64_t> pos_indptr, carray<int32_t> pos_indices,
                     carray<int32_t> row_of, py::tuple user_state, py::tuple item_state, int f,
                     int loss, int schedule, float learning_rate, float rho, float epsilon,
                     float user_alpha, float item_alpha, int max_sampled, int k, int n,
                     uint64_t seed, int64_t epoch, int num_threads, int64_t n_epochs,
                     float identity_dropout, py::object item_identity) {
    const int64_t n_items = py::len(item_features[0]) - 1;
    hybrid::Settings s = hybrid_settings(f, loss, schedule, learning_rate, rho, epsilon,
                                         max_sampled, k, n, n_items);
    require(std::isfinite(identity_dropout) && identity_dropout >= 0.0f &&
                identity_dropout <= 1.0f,
            "identity_dropout must be in [0, 1]");
    s.identity_dropout = identity_dropout;
    std::vector<py::object> keep;
    HybridModel m = hybrid_model(user_features, item_features, pos_indptr, pos_indices,
                                 user_state, item_state, user_alpha, item_alpha, s, keep);
    carray<int32_t> identity;
    if (!item_identity.is_none()) {
        require(carray<int32_t>::check_(item_identity),
                "item_identity must be a C-contiguous int32 ndarray");
        identity = item_identity.cast<carray<int32_t>>();
        require(identity.ndim() == 1 && identity.shape(0) == n_items,
                "item_identity must have one entry per item");
        const int64_t n_if = py::len(item_state[1]);
        for (int64_t r = 0; r < n_items; ++r)
            if (identity.data()[r] < -1 || identity.data()[r] >= n_if)
                require(false, "item_identity entries must be -1 or a feature index");
        m.items.identity = identity.data();
    }
    require(row_of.ndim() == 1 && row_of.shape(0) == pos_indices.shape(0),
            "row_of must have one entry per positive");
    const int32_t *rows = row_of.data();
    for (int64_t r = 0; r < m.positives.rows; ++r)
        for (int64_t j = m.positives.indptr[r]; j < m.positives.indptr[r + 1]; ++j)
            if (rows[j] != r) require(false, "row_of does not match the positives' indptr");
    require(n_epochs >= 0, "n_epochs must be >= 0");
    {
        py::gil_scoped_release nogil;
        hybrid::run_epochs(m.users, m.items, m.positives, rows, s, seed, epoch, n_epochs,
                           num_threads);
    }
}

// One deterministic step (for tests): loss 0/3 WARP over the given negatives (returns the
// trials of the update, 0 if none), 1 BPR on (u, i, negatives[0]), 2 logistic on (u, i) with
// label y. Returns the number of trials (WARP) or 1.
int64_t hybrid_step_py(py::tuple user_features, py::tuple item_features,
                       carray<int64_t> pos_indptr, carray<int32_t> pos_indices,
                       py::tuple user_state, py::tuple item_state, int f, int loss,
                       int schedule, float learning_rate, float rho, float epsilon,
                       float user_alpha, float item_alpha, int max_sampled, int64_t user,
                       int64_t item, carray<int64_t> negatives, float y, int64_t skip_positive,
                       int64_t skip_negative) {
    const int64_t n_items = py::len(item_features[0]) - 1;
    hybrid::Settings s = hybrid_settings(f, loss, schedule, learning_rate, rho, epsilon,
                                         max_sampled, 1, 1, n_items);
    std::vector<py::object> keep;
    HybridModel m = hybrid_model(user_features, item_features, pos_indptr, pos_indices,
                                 user_state, item_state, user_alpha, item_alpha, s, keep);
    const int64_t n_if = py::len(item_state[1]);
    require(skip_positive >= -1 && skip_positive < n_if && skip_negative >= -1 &&
                skip_negative < n_if,
            "skip_positive and skip_negative must be -1 or an item feature index");
    require(user >= 0 && user < m.positives.rows, "user out of range");
    require(item >= 0 && item < n_items, "item out of range");
    require(negatives.ndim() == 1, "negatives must be 1-D");
    for (int64_t t = 0; t < negatives.shape(0); ++t)
        require(negatives.data()[t] >= 0 && negatives.data()[t] < n_items,
                "negative out of range");
    const int64_t *neg = negatives.data();
    const int64_t n_neg = negatives.shape(0);
    require(loss != hybrid::BPR || n_neg >= 1, "BPR needs one negative");
    int64_t result = 1;
    {
        py::gil_scoped_release nogil;
        // The epochs' positive lookup (a bitmap on small data), so that tests check it.
        const std::vector<uint64_t> bits = hybrid::membership_bits(m.positives, n_items);
        if (!bits.empty()) {
            m.positives.bits = bits.data();
            m.positives.cols = n_items;
        }
        hybrid::Scratch sc(s);
        if (loss == hybrid::LOGISTIC) {
            hybrid::logistic_step<0>(m.users, m.items, user, item, y, sc, s, skip_positive);
        } else {
            sc.user<0>(m.users, user, f);
            sc.positive<0>(m.items, item, f, skip_positive);
            if (loss == hybrid::BPR) {
                hybrid::bpr_step<0>(m.users, m.items, user, item, neg[0], sc, s,
                                    skip_negative);
            } else {
                int64_t next = 0;
                result = hybrid::warp_step<0>(
                    m.users, m.items, m.positives, user, item, sc, s,
                    [&]() { return next < n_neg ? neg[next++] : -1; },
                    [&](int64_t) { return skip_negative; });
            }
        }
    }
    return result;
}

carray<float> hybrid_fold_in_py(carray<float> item_repr, carray<float> item_bias,
                                carray<int64_t> pos_indptr, carray<int32_t> pos_indices,
                                carray<float> start, int epochs, int loss, float learning_rate,
                                float user_alpha, int max_sampled, uint64_t seed,
                                int num_threads) {
    require(item_repr.ndim() == 2 && item_bias.ndim() == 1 &&
                item_bias.shape(0) == item_repr.shape(0),
            "item_repr must be (n_items, f) and item_bias (n_items,)");
    const int64_t n_items = item_repr.shape(0);
    const int f = static_cast<int>(item_repr.shape(1));
    hybrid::Settings s = hybrid_settings(f, loss, 0, learning_rate, 0.95f, 1e-6f, max_sampled,
                                         1, 1, n_items);
    hybrid::Csr pos = hybrid_csr(pos_indptr, pos_indices, nullptr, n_items, true, "positives");
    require(start.ndim() == 2 && start.shape(0) == pos.rows && start.shape(1) == f,
            "start must be (n_users, f)");
    require(epochs >= 0, "epochs must be >= 0");
    carray<float> out({pos.rows, static_cast<int64_t>(f)});
    const float *q = item_repr.data(), *bq = item_bias.data(), *p0 = start.data();
    float *o = out.mutable_data();
    {
        py::gil_scoped_release nogil;
        hybrid::fold_in(q, bq, pos, p0, o, epochs, s, user_alpha, seed, num_threads);
    }
    return out;
}


// ---- explicit-rating ALS-WR half-iteration (cpp/als.hpp, namespace alswr)
// Solves every row of the CSR (indptr, indices, ratings) against the fixed side Y; biased
// when other_bias/own_bias are given (both or neither). X and own_bias are written.
void explicit_als_solve_py(carray<int64_t> indptr, carray<int32_t> indices, carray<float> ratings,
                           carray<float> Y, py::object other_bias, float mu, float reg,
                           carray<float> X, py::object own_bias, int num_threads) {
    require(indptr.ndim() == 1 && indptr.shape(0) >= 1, "indptr must be 1-D and non-empty");
    const int64_t n_rows = indptr.shape(0) - 1;
    require(Y.ndim() == 2 && X.ndim() == 2 && X.shape(0) == n_rows && X.shape(1) == Y.shape(1),
            "X must be (n_rows, f) and Y (n_cols, f)");
    require(Y.shape(1) >= 1 && Y.shape(1) < (int64_t(1) << 14), "f must be in [1, 16384)");
    require(X.writeable(), "X must be writeable");
    require(std::isfinite(reg) && reg > 0.0f, "reg must be a finite number > 0");
    require(std::isfinite(mu), "mu must be finite");
    const int64_t n_cols = Y.shape(0);
    check_csr(indptr, indices, ratings, n_rows, n_cols, "ratings", false);
    require(other_bias.is_none() == own_bias.is_none(),
            "other_bias and own_bias must both be given (biased) or both be None");
    const bool biased = !other_bias.is_none();
    carray<float> ob, wb;
    const float *pob = nullptr;
    float *pwb = nullptr;
    if (biased) {
        ob = other_bias.cast<carray<float>>();
        wb = output_array<float>(own_bias, "own_bias");
        require(ob.ndim() == 1 && ob.shape(0) == n_cols, "other_bias must have n_cols entries");
        require(wb.ndim() == 1 && wb.shape(0) == n_rows && wb.writeable(),
                "own_bias must be a writeable float32 array with n_rows entries");
        pob = ob.data();
        pwb = wb.mutable_data();
    }
    const alswr::Problem P{indptr.data(), indices.data(), ratings.data(), n_rows, Y.data(), pob,
                           static_cast<int>(Y.shape(1)), biased ? mu : 0.0f, reg, biased};
    float *px = X.mutable_data();
    {
        py::gil_scoped_release nogil;
        alswr::solve(P, px, pwb, num_threads);
    }
}

// ---- explicit-rating SVD (biased MF by SGD)
void check_triples(const carray<int32_t> &users, const carray<int32_t> &items,
                   const carray<float> &ratings, int64_t n_users, int64_t n_items) {
    require(users.ndim() == 1 && items.ndim() == 1 && ratings.ndim() == 1 &&
                users.shape(0) == items.shape(0) && users.shape(0) == ratings.shape(0),
            "users, items and ratings must be 1-D arrays of equal length");
    const int64_t n = users.shape(0);
    const int32_t *u = users.data(), *i = items.data();
    bool ok = true;
    for (int64_t t = 0; t < n; ++t)
        ok &= (u[t] >= 0) & (u[t] < n_users) & (i[t] >= 0) & (i[t] < n_items);
    require(ok, "user or item index out of range of the factor arrays");
}

// The checked shapes, rates and optional shuffle state shared by the SVD bindings.
struct SvdArgs {
    int64_t f;
    SvdRates rates;
    uint64_t *state = nullptr;  // null: no shuffle
    py::object keep;            // holds the shuffle-state array alive
};

SvdArgs svd_args(const carray<int32_t> &users, const carray<int32_t> &items,
                 const carray<float> &ratings, const carray<float> &bu, const carray<float> &bi,
                 const carray<float> &P, const carray<float> &Q, const carray<float> &hp,
                 const py::object &shuffle_state) {
    require(P.ndim() == 2 && Q.ndim() == 2 && P.shape(1) == Q.shape(1),
            "P and Q must be 2-D with the same number of columns");
    const int64_t n_users = P.shape(0), n_items = Q.shape(0), f = P.shape(1);
    require(f < (int64_t(1) << 20), "too many factors");
    require(bu.ndim() == 1 && bu.shape(0) == n_users, "bu must have one entry per row of P");
    require(bi.ndim() == 1 && bi.shape(0) == n_items, "bi must have one entry per row of Q");
    require(hp.ndim() == 1 && hp.shape(0) == 9, "hp must hold 9 values");
    require(bu.writeable() && bi.writeable() && P.writeable() && Q.writeable(),
            "bu, bi, P and Q must be writeable");
    check_triples(users, items, ratings, n_users, n_items);
    const float *h = hp.data();
    SvdArgs out{f, SvdRates{h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]}};
    if (!shuffle_state.is_none()) {
        auto st = output_array<uint64_t>(shuffle_state, "shuffle_state");
        require(st.ndim() == 1 && st.shape(0) == 1 && st.writeable(),
                "shuffle_state must be a writeable uint64 array of length 1");
        out.keep = st;
        out.state = st.mutable_data();
    }
    return out;
}

double svd_epoch_py(carray<int32_t> users, carray<int32_t> items, carray<float> ratings,
                    carray<float> bu, carray<float> bi, carray<float> P, carray<float> Q,
                    carray<float> hp, py::object shuffle_state, int num_threads) {
    SvdArgs a = svd_args(users, items, ratings, bu, bi, P, Q, hp, shuffle_state);
    require(users.writeable() && items.writeable() && ratings.writeable(),
            "arrays must be writeable");
    const int64_t f = a.f;
    const SvdRates &rates = a.rates;
    uint64_t *state = a.state;
    int32_t *u = users.mutable_data(), *i = items.mutable_data();
    float *r = ratings.mutable_data();
    float *pbu = bu.mutable_data(), *pbi = bi.mutable_data();
    float *p = P.mutable_data(), *q = Q.mutable_data();
    const int64_t n = users.shape(0);
    double sse;
    {
        py::gil_scoped_release nogil;
        if (state) svd_shuffle(u, i, r, n, *state);
        sse = svd_epoch(u, i, r, n, pbu, pbi, p, q, static_cast<int>(f), rates, num_threads);
    }
    return sse;
}

// Whole SVD fit (cpp/sgd.hpp svd_fit): the triples are read only (packed and shuffled in a
// private copy); returns the per-epoch sums of squared errors (float64, length epochs).
carray<double> svd_fit_py(carray<int32_t> users, carray<int32_t> items, carray<float> ratings,
                          carray<float> bu, carray<float> bi, carray<float> P, carray<float> Q,
                          carray<float> hp, int epochs, py::object shuffle_state,
                          int num_threads, const std::string &order) {
    SvdArgs a = svd_args(users, items, ratings, bu, bi, P, Q, hp, shuffle_state);
    require(epochs >= 0, "epochs must be >= 0");
    require(order == "ratings" || order == "users", "order must be 'ratings' or 'users'");
    const bool user_major = order == "users";
    require(users.shape(0) < (int64_t(1) << 40), "too many ratings");
    const int64_t f = a.f;
    const SvdRates &rates = a.rates;
    uint64_t *state = a.state;
    carray<double> sse(static_cast<py::ssize_t>(epochs));
    const int32_t *u = users.data(), *i = items.data();
    const float *r = ratings.data();
    float *pbu = bu.mutable_data(), *pbi = bi.mutable_data();
    float *p = P.mutable_data(), *q = Q.mutable_data();
    double *out = sse.mutable_data();
    const int64_t n = users.shape(0);
    {
        py::gil_scoped_release nogil;
        svd_fit(u, i, r, n, pbu, pbi, p, q, P.shape(0), Q.shape(0), static_cast<int>(f), rates,
                epochs, state, num_threads, out, user_major);
    }
    return sse;
}

// Fills `out` (any shape, C order) with mean + std * N(0, 1) draws (cpp/sgd.hpp normal_fill).
void normal_fill_py(carray<float> out, double mean, double std_dev, uint64_t seed,
                    int num_threads) {
    require(out.writeable(), "out must be writeable");
    require(std::isfinite(mean) && std::isfinite(std_dev) && std_dev >= 0.0,
            "mean must be finite and std a finite number >= 0");
    float *o = out.mutable_data();
    const int64_t n = out.size();
    py::gil_scoped_release nogil;
    normal_fill(o, n, mean, std_dev, seed, num_threads);
}

// A CSR with `rows` rows and `cols` columns, indices unsorted allowed (see the kNN check_csr).
void check_csr(const carray<int64_t> &indptr, const carray<int32_t> &indices,
               const carray<float> &data, int64_t rows, int64_t cols, const char *name) {
    check_csr(indptr, indices, data, rows, cols, name, false);
}

py::tuple topk_sparse_py(carray<int64_t> q_indptr, carray<int32_t> q_indices,
                         carray<float> q_data, int64_t n_features, carray<int64_t> t_indptr,
                         carray<int32_t> t_indices, carray<float> t_data, int64_t m,
                         py::object item_bias, int k, py::object excl_indptr,
                         py::object excl_indices, py::object allowed, int num_threads) {
    require(k >= 1, "k must be >= 1");
    require(n_features >= 0 && m >= 0, "n_features and m must be >= 0");
    require(q_indptr.ndim() == 1 && q_indptr.shape(0) >= 1, "query indptr must be 1-D");
    const int64_t n = q_indptr.shape(0) - 1;
    check_csr(q_indptr, q_indices, q_data, n, n_features, "query");
    check_csr(t_indptr, t_indices, t_data, n_features, m, "item^T");
    py::object bias_keep;
    const float *bias = optional_bias(item_bias, m, bias_keep);
    py::list keep;
    Exclusions ex = exclusions_from(excl_indptr, excl_indices, allowed, n, m, keep);
    carray<int64_t> out_index({n, static_cast<int64_t>(k)});
    carray<float> out_score({n, static_cast<int64_t>(k)});
    int64_t *oi = out_index.mutable_data();
    float *os = out_score.mutable_data();
    const int64_t *qp = q_indptr.data(), *tp = t_indptr.data();
    const int32_t *qi = q_indices.data(), *ti = t_indices.data();
    const float *qd = q_data.data(), *td = t_data.data();
    {
        py::gil_scoped_release nogil;
        topk_sparse(qp, qi, qd, n, tp, ti, td, m, bias, k, ex, oi, os, num_threads);
    }
    return py::make_tuple(out_index, out_score);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "tastebud compiled kernels (private: use the tastebud package API)";
    m.def("set_blas", &set_blas, py::arg("sgemm_capsule"),
          "Register scipy.linalg.cython_blas's sgemm for the blocked kernels.");
    m.def("topk_scores", &topk_scores_py, py::arg("scores").noconvert(), py::arg("k"),
          py::arg("excl_indptr"), py::arg("excl_indices"), py::arg("allowed"),
          py::arg("num_threads"), "Top-k of each row of a dense score block.");
    m.def("topk_dot", &topk_dot_py, py::arg("queries").noconvert(), py::arg("items").noconvert(),
          py::arg("item_bias"), py::arg("k"), py::arg("excl_indptr"), py::arg("excl_indices"),
          py::arg("allowed"), py::arg("num_threads"), py::arg("query_block") = 256,
          py::arg("item_block") = 2048, "Blocked top-k of queries . items^T.");
    m.def("sparse_knn", &sparse_knn_py, py::arg("q_indptr").noconvert(),
          py::arg("q_indices").noconvert(), py::arg("q_data").noconvert(), py::arg("nq"),
          py::arg("t_indptr").noconvert(), py::arg("t_indices").noconvert(),
          py::arg("t_data").noconvert(), py::arg("nt"), py::arg("d"), py::arg("q_sq"),
          py::arg("t_sq"), py::arg("kind"), py::arg("alpha"), py::arg("shrink"),
          py::arg("min_support"), py::arg("self_offset"), py::arg("k"), py::arg("sort_by_index"),
          py::arg("num_threads"), py::arg("positive_only") = false,
          "Top-k sparse similarity between the rows of Q and of T (given T^T in CSR).");
    m.def("sparse_knn_csr", &sparse_knn_csr_py, py::arg("q_indptr").noconvert(),
          py::arg("q_indices").noconvert(), py::arg("q_data").noconvert(), py::arg("nq"),
          py::arg("t_indptr").noconvert(), py::arg("t_indices").noconvert(),
          py::arg("t_data").noconvert(), py::arg("nt"), py::arg("d"), py::arg("q_sq"),
          py::arg("t_sq"), py::arg("kind"), py::arg("alpha"), py::arg("shrink"),
          py::arg("min_support"), py::arg("self_offset"), py::arg("k"), py::arg("num_threads"),
          py::arg("positive_only") = false,
          "Top-k sparse similarity of the rows of Q against the rows of T, as a CSR graph.");
    m.def("sparse_knn_symmetric", &sparse_knn_symmetric_py, py::arg("x_indptr").noconvert(),
          py::arg("x_indices").noconvert(), py::arg("x_data").noconvert(), py::arg("n"),
          py::arg("d"), py::arg("t_indptr").noconvert(), py::arg("t_indices").noconvert(),
          py::arg("t_data").noconvert(), py::arg("sq"), py::arg("kind"), py::arg("alpha"),
          py::arg("shrink"), py::arg("min_support"), py::arg("include_self"), py::arg("k"),
          py::arg("sort_by_index"), py::arg("num_threads"),
          "Top-k self-similarity of the rows of X for a symmetric kind, each pair computed once.");
    m.def("sparse_score_topk", &sparse_score_topk_py, py::arg("q_indptr").noconvert(),
          py::arg("q_indices").noconvert(), py::arg("q_data").noconvert(), py::arg("nq"),
          py::arg("m_indptr").noconvert(), py::arg("m_indices").noconvert(),
          py::arg("m_data").noconvert(), py::arg("d"), py::arg("m"), py::arg("k"),
          py::arg("excl_indptr"), py::arg("excl_indices"), py::arg("allowed"),
          py::arg("num_threads"), "Top-k of the rows of the sparse product Q . M.");
    m.def("knn_predict", &knn_predict_py, py::arg("x").noconvert(), py::arg("y").noconvert(),
          py::arg("s_indptr").noconvert(), py::arg("s_indices").noconvert(),
          py::arg("s_data").noconvert(), py::arg("n_q"), py::arg("n_x"),
          py::arg("c_indptr").noconvert(),
          py::arg("c_indices").noconvert(), py::arg("c_data").noconvert(), py::arg("n_y"),
          py::arg("k"), py::arg("num_threads"), "Neighbourhood rating estimates of pairs.");
    m.def("als_baselines", &als_baselines_py, py::arg("indptr").noconvert(),
          py::arg("indices").noconvert(), py::arg("data").noconvert(), py::arg("n_users"),
          py::arg("n_items"), py::arg("global_mean"), py::arg("iterations"),
          py::arg("reg_users"), py::arg("reg_items"),
          "User and item baselines by alternating least squares (Surprise's baseline_als).");
    m.def("als_solve", &als_solve_py<float>, py::arg("indptr").noconvert(),
          py::arg("indices").noconvert(), py::arg("data").noconvert(), py::arg("Y").noconvert(),
          py::arg("G").noconvert(), py::arg("reg").noconvert(), py::arg("X").noconvert(),
          py::arg("alpha"), py::arg("w0"), py::arg("solver"), py::arg("cg_steps"),
          py::arg("num_threads"),
          "ALS half-iteration: solve every row of X in place (Y, G, X all float32 or all "
          "float64).");
    m.def("als_solve", &als_solve_py<double>, py::arg("indptr").noconvert(),
          py::arg("indices").noconvert(), py::arg("data").noconvert(), py::arg("Y").noconvert(),
          py::arg("G").noconvert(), py::arg("reg").noconvert(), py::arg("X").noconvert(),
          py::arg("alpha"), py::arg("w0"), py::arg("solver"), py::arg("cg_steps"),
          py::arg("num_threads"));
    m.def("als_loss", &als_loss_py<float>, py::arg("indptr").noconvert(),
          py::arg("indices").noconvert(), py::arg("data").noconvert(), py::arg("Y").noconvert(),
          py::arg("G").noconvert(), py::arg("reg").noconvert(), py::arg("X").noconvert(),
          py::arg("alpha"), py::arg("w0"), py::arg("num_threads"),
          "Per-row ALS loss terms (float64 out; Y, G, X float32 or float64).");
    m.def("als_loss", &als_loss_py<double>, py::arg("indptr").noconvert(),
          py::arg("indices").noconvert(), py::arg("data").noconvert(), py::arg("Y").noconvert(),
          py::arg("G").noconvert(), py::arg("reg").noconvert(), py::arg("X").noconvert(),
          py::arg("alpha"), py::arg("w0"), py::arg("num_threads"));
    m.def("bpr_epoch", &bpr_epoch_py, py::arg("indptr").noconvert(),
          py::arg("indices").noconvert(), py::arg("row_of").noconvert(), py::arg("U").noconvert(),
          py::arg("V").noconvert(), py::arg("bias"), py::arg("learning_rate"),
          py::arg("regularization"), py::arg("verify_negative"), py::arg("samples"),
          py::arg("seed"), py::arg("epoch"), py::arg("num_threads"),
          "One Hogwild BPR epoch; returns (correct, skipped) sample counts.");
    m.def("bpr_fold_in", &bpr_fold_in_py, py::arg("indptr").noconvert(),
          py::arg("indices").noconvert(), py::arg("V").noconvert(), py::arg("bias"),
          py::arg("learning_rate"), py::arg("regularization"), py::arg("verify_negative"),
          py::arg("epochs"), py::arg("seed"), py::arg("num_threads"),
          "BPR fold-in: SGD on new users' vectors with item factors fixed.");
    m.def("hybrid_epoch", &hybrid_epoch_py, py::arg("user_features"), py::arg("item_features"),
          py::arg("pos_indptr").noconvert(), py::arg("pos_indices").noconvert(),
          py::arg("row_of").noconvert(), py::arg("user_state"), py::arg("item_state"),
          py::arg("f"), py::arg("loss"), py::arg("schedule"), py::arg("learning_rate"),
          py::arg("rho"), py::arg("epsilon"), py::arg("user_alpha"), py::arg("item_alpha"),
          py::arg("max_sampled"), py::arg("k"), py::arg("n"), py::arg("seed"), py::arg("epoch"),
          py::arg("num_threads"), py::arg("n_epochs") = 1, py::arg("identity_dropout") = 0.0f,
          py::arg("item_identity") = py::none(),
          "n_epochs (default 1) Hogwild epochs of the feature-embedding hybrid model, the first "
          "numbered `epoch`; with identity_dropout > 0 a sampled item leaves out its identity "
          "feature item_identity[i] (int32, -1: none) with that probability.");
    m.def("hybrid_step", &hybrid_step_py, py::arg("user_features"), py::arg("item_features"),
          py::arg("pos_indptr").noconvert(), py::arg("pos_indices").noconvert(),
          py::arg("user_state"), py::arg("item_state"), py::arg("f"), py::arg("loss"),
          py::arg("schedule"), py::arg("learning_rate"), py::arg("rho"), py::arg("epsilon"),
          py::arg("user_alpha"), py::arg("item_alpha"), py::arg("max_sampled"),
          py::arg("user"), py::arg("item"), py::arg("negatives").noconvert(), py::arg("y"),
          py::arg("skip_positive") = -1, py::arg("skip_negative") = -1,
          "One deterministic SGD step of the hybrid model (for tests); the positive / every "
          "negative leaves out item feature skip_positive / skip_negative (-1: none).");
    m.def("hybrid_fold_in", &hybrid_fold_in_py, py::arg("item_repr").noconvert(),
          py::arg("item_bias").noconvert(), py::arg("pos_indptr").noconvert(),
          py::arg("pos_indices").noconvert(), py::arg("start").noconvert(), py::arg("epochs"),
          py::arg("loss"), py::arg("learning_rate"), py::arg("user_alpha"),
          py::arg("max_sampled"), py::arg("seed"), py::arg("num_threads"),
          "Fold-in of new users with item parameters fixed.");
    m.def("hybrid_warp_rank",
          [](int64_t n_items, int64_t trials) {
              require(n_items >= 1 && trials >= 1, "n_items and trials must be >= 1");
              return hybrid::warp_rank_estimate(n_items, trials);
          },
          py::arg("n_items"), py::arg("trials"),
          "WARP's rank estimate floor((n_items - 1) / trials).");
    m.def("svd_epoch", &svd_epoch_py, py::arg("users").noconvert(),
          py::arg("items").noconvert(), py::arg("ratings").noconvert(), py::arg("bu").noconvert(),
          py::arg("bi").noconvert(), py::arg("P").noconvert(), py::arg("Q").noconvert(),
          py::arg("hp").noconvert(), py::arg("shuffle_state"), py::arg("num_threads"),
          "One SGD epoch of biased MF (optionally shuffling the triples first, in place); "
          "returns the sum of squared errors.");
    m.def("svd_fit", &svd_fit_py, py::arg("users").noconvert(), py::arg("items").noconvert(),
          py::arg("ratings").noconvert(), py::arg("bu").noconvert(), py::arg("bi").noconvert(),
          py::arg("P").noconvert(), py::arg("Q").noconvert(), py::arg("hp").noconvert(),
          py::arg("epochs"), py::arg("shuffle_state"), py::arg("num_threads"),
          py::arg("order") = "ratings",
          "All SGD epochs of biased MF; returns the per-epoch sums of squared errors. With "
          "shuffle_state given, order='ratings' shuffles a private packed copy of the triples "
          "before each epoch and order='users' visits users in random order, several in "
          "flight (cpp/sgd.hpp svd_fit_users); without it the triples run in array order.");
    m.def("normal_fill", &normal_fill_py, py::arg("out").noconvert(), py::arg("mean"),
          py::arg("std"), py::arg("seed"), py::arg("num_threads"),
          "Fill a float32 array with mean + std * standard normal draws (ziggurat; the "
          "values depend on the seed only, not on num_threads).");
    m.def("explicit_als_solve", &explicit_als_solve_py, py::arg("indptr").noconvert(),
          py::arg("indices").noconvert(), py::arg("ratings").noconvert(),
          py::arg("Y").noconvert(), py::arg("other_bias"), py::arg("mu"), py::arg("reg"),
          py::arg("X").noconvert(), py::arg("own_bias"), py::arg("num_threads"),
          "ALS-WR half-iteration on explicit ratings: solve every row of X (and its bias).");
    m.def("topk_sparse", &topk_sparse_py, py::arg("q_indptr").noconvert(),
          py::arg("q_indices").noconvert(), py::arg("q_data").noconvert(),
          py::arg("n_features"), py::arg("t_indptr").noconvert(),
          py::arg("t_indices").noconvert(), py::arg("t_data").noconvert(), py::arg("m"),
          py::arg("item_bias"), py::arg("k"), py::arg("excl_indptr"), py::arg("excl_indices"),
          py::arg("allowed"), py::arg("num_threads"),
          "Top-k of sparse queries (CSR) . sparse items (given as CSR of items^T).");
#ifdef _OPENMP
    m.attr("openmp") = true;
#else
    m.attr("openmp") = false;
#endif
}
