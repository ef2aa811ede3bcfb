// The only pybind11 file of tastebud. Every function checks shapes, dtypes and index bounds
// while holding the GIL, allocates its outputs, then releases the GIL around the kernel.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "dense_search.hpp"
#include "topk.hpp"

namespace py = pybind11;
using namespace tastebud;

namespace {

template <class T>
using carray = py::array_t<T, py::array::c_style>;

sgemm_fn g_sgemm = nullptr;

void set_blas(py::capsule sgemm_capsule) {
    const char *name = PyCapsule_GetName(sgemm_capsule.ptr());
    void *ptr = PyCapsule_GetPointer(sgemm_capsule.ptr(), name);
    if (!ptr) throw py::error_already_set();
    g_sgemm = reinterpret_cast<sgemm_fn>(ptr);
}

void require(bool ok, const std::string &message) {
    if (!ok) throw std::invalid_argument(message);
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
        const int64_t *p = indptr.data();
        const int32_t *idx = indices.data();
        require(p[0] == 0 && p[n] == indices.shape(0), "exclude indptr does not match indices");
        // O(nnz) checks; messages are only built on failure.
        for (int64_t r = 0; r < n; ++r) {
            if (p[r] > p[r + 1]) require(false, "exclude indptr must be non-decreasing");
            for (int64_t j = p[r]; j < p[r + 1]; ++j) {
                if (idx[j] < 0 || idx[j] >= m)
                    require(false, "exclude index out of range [0, " + std::to_string(m) + ")");
                if (j > p[r] && idx[j - 1] > idx[j])
                    require(false, "exclude indices must be sorted per row");
            }
        }
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

py::tuple topk_scores_py(carray<float> scores, int k, py::object excl_indptr,
                         py::object excl_indices, py::object allowed, int num_threads) {
    require(scores.ndim() == 2, "scores must be 2-D");
    const int64_t n = scores.shape(0), m = scores.shape(1);
    require(k >= 1, "k must be >= 1");
    // Keep the arrays alive for the duration of the call.
    py::object ip = excl_indptr.is_none() ? excl_indptr : py::object(excl_indptr.cast<carray<int64_t>>());
    py::object ix = excl_indices.is_none() ? excl_indices : py::object(excl_indices.cast<carray<int32_t>>());
    py::object al = allowed.is_none() ? allowed : py::object(allowed.cast<carray<uint8_t>>());
    Exclusions ex = make_exclusions(ip, ix, al, n, m);
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
    py::object bias_keep = item_bias;
    const float *bias = nullptr;
    if (!item_bias.is_none()) {
        auto b = item_bias.cast<carray<float>>();
        require(b.ndim() == 1 && b.shape(0) == m, "item_bias must have one entry per item");
        bias_keep = b;
        bias = b.data();
    }
    py::object ip = excl_indptr.is_none() ? excl_indptr : py::object(excl_indptr.cast<carray<int64_t>>());
    py::object ix = excl_indices.is_none() ? excl_indices : py::object(excl_indices.cast<carray<int32_t>>());
    py::object al = allowed.is_none() ? allowed : py::object(allowed.cast<carray<uint8_t>>());
    Exclusions ex = make_exclusions(ip, ix, al, n, m);
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


// A CSR given as (indptr int64, indices int32, data float32) with `rows` rows and `cols`
// columns: validated in O(nnz) (non-decreasing indptr, indices in range).
void check_csr(const carray<int64_t> &indptr, const carray<int32_t> &indices,
               const carray<float> &data, int64_t rows, int64_t cols, const char *name) {
    require(indptr.ndim() == 1 && indptr.shape(0) == rows + 1,
            std::string(name) + " indptr must have rows + 1 = " + std::to_string(rows + 1) +
                " entries");
    require(indices.ndim() == 1 && data.ndim() == 1 && indices.shape(0) == data.shape(0),
            std::string(name) + " indices and data must be 1-D of equal length");
    const int64_t *p = indptr.data();
    const int32_t *idx = indices.data();
    require(p[0] == 0 && p[rows] == indices.shape(0),
            std::string(name) + " indptr does not match indices");
    for (int64_t r = 0; r < rows; ++r) {
        if (p[r] > p[r + 1]) require(false, std::string(name) + " indptr must be non-decreasing");
        for (int64_t j = p[r]; j < p[r + 1]; ++j)
            if (idx[j] < 0 || idx[j] >= cols)
                require(false, std::string(name) + " index out of range [0, " +
                                   std::to_string(cols) + ")");
    }
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
    py::object bias_keep = item_bias;
    const float *bias = nullptr;
    if (!item_bias.is_none()) {
        auto b = item_bias.cast<carray<float>>();
        require(b.ndim() == 1 && b.shape(0) == m, "item_bias must have one entry per item");
        bias_keep = b;
        bias = b.data();
    }
    py::object ip = excl_indptr.is_none() ? excl_indptr : py::object(excl_indptr.cast<carray<int64_t>>());
    py::object ix = excl_indices.is_none() ? excl_indices : py::object(excl_indices.cast<carray<int32_t>>());
    py::object al = allowed.is_none() ? allowed : py::object(allowed.cast<carray<uint8_t>>());
    Exclusions ex = make_exclusions(ip, ix, al, n, m);
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
