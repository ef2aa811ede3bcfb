// The only pybind11 file of tastebud. Every function checks shapes, dtypes and index bounds
// while holding the GIL, allocates its outputs, then releases the GIL around the kernel.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "hybrid.hpp"
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
    require(p[0] == 0 && p[rows] == indices.shape(0), name + " indptr does not match indices");
    if (data) require(data->ndim() == 1 && data->shape(0) == indices.shape(0),
                      name + " data must have one value per index");
    for (int64_t r = 0; r < rows; ++r) {
        if (p[r] > p[r + 1]) require(false, name + " indptr must be non-decreasing");
        for (int64_t j = p[r]; j < p[r + 1]; ++j) {
            if (idx[j] < 0 || idx[j] >= n_cols)
                require(false, name + " index out of range [0, " + std::to_string(n_cols) + ")");
            if (sorted && j > p[r] && idx[j - 1] >= idx[j])
                require(false, name + " indices must be sorted and distinct per row");
        }
    }
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
                     uint64_t seed, int64_t epoch, int num_threads) {
    const int64_t n_items = py::len(item_features[0]) - 1;
    hybrid::Settings s = hybrid_settings(f, loss, schedule, learning_rate, rho, epsilon,
                                         max_sampled, k, n, n_items);
    std::vector<py::object> keep;
    HybridModel m = hybrid_model(user_features, item_features, pos_indptr, pos_indices,
                                 user_state, item_state, user_alpha, item_alpha, s, keep);
    require(row_of.ndim() == 1 && row_of.shape(0) == pos_indices.shape(0),
            "row_of must have one entry per positive");
    const int32_t *rows = row_of.data();
    for (int64_t r = 0; r < m.positives.rows; ++r)
        for (int64_t j = m.positives.indptr[r]; j < m.positives.indptr[r + 1]; ++j)
            if (rows[j] != r) require(false, "row_of does not match the positives' indptr");
    {
        py::gil_scoped_release nogil;
        const int64_t n_samples =
            loss == hybrid::WARP_KOS ? m.positives.rows : m.positives.indptr[m.positives.rows];
        std::vector<int64_t> order(static_cast<size_t>(n_samples));
        hybrid::shuffled(order.data(), n_samples, seed, epoch);
        hybrid::run_epoch(m.users, m.items, m.positives, rows, order.data(), n_samples, s, seed,
                          epoch, num_threads);
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
                       int64_t item, carray<int64_t> negatives, float y) {
    const int64_t n_items = py::len(item_features[0]) - 1;
    hybrid::Settings s = hybrid_settings(f, loss, schedule, learning_rate, rho, epsilon,
                                         max_sampled, 1, 1, n_items);
    std::vector<py::object> keep;
    HybridModel m = hybrid_model(user_features, item_features, pos_indptr, pos_indices,
                                 user_state, item_state, user_alpha, item_alpha, s, keep);
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
        hybrid::Scratch sc(f);
        if (loss == hybrid::LOGISTIC) {
            hybrid::logistic_step<0>(m.users, m.items, user, item, y, sc, s);
        } else {
            hybrid::representation<0>(m.users, user, f, sc.p, &sc.bu);
            hybrid::representation<0>(m.items, item, f, sc.qi, &sc.bi);
            if (loss == hybrid::BPR) {
                hybrid::bpr_step<0>(m.users, m.items, user, item, neg[0], sc, s);
            } else {
                int64_t next = 0;
                result = hybrid::warp_step<0>(m.users, m.items, m.positives, user, item, sc, s,
                                           [&]() { return next < n_neg ? neg[next++] : -1; });
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
    m.def("hybrid_epoch", &hybrid_epoch_py, py::arg("user_features"), py::arg("item_features"),
          py::arg("pos_indptr").noconvert(), py::arg("pos_indices").noconvert(),
          py::arg("row_of").noconvert(), py::arg("user_state"), py::arg("item_state"),
          py::arg("f"), py::arg("loss"), py::arg("schedule"), py::arg("learning_rate"),
          py::arg("rho"), py::arg("epsilon"), py::arg("user_alpha"), py::arg("item_alpha"),
          py::arg("max_sampled"), py::arg("k"), py::arg("n"), py::arg("seed"), py::arg("epoch"),
          py::arg("num_threads"), "One Hogwild epoch of the feature-embedding hybrid model.");
    m.def("hybrid_step", &hybrid_step_py, py::arg("user_features"), py::arg("item_features"),
          py::arg("pos_indptr").noconvert(), py::arg("pos_indices").noconvert(),
          py::arg("user_state"), py::arg("item_state"), py::arg("f"), py::arg("loss"),
          py::arg("schedule"), py::arg("learning_rate"), py::arg("rho"), py::arg("epsilon"),
          py::arg("user_alpha"), py::arg("item_alpha"), py::arg("max_sampled"),
          py::arg("user"), py::arg("item"), py::arg("negatives").noconvert(), py::arg("y"),
          "One deterministic SGD step of the hybrid model (for tests).");
    m.def("hybrid_fold_in", &hybrid_fold_in_py, py::arg("item_repr").noconvert(),
          py::arg("item_bias").noconvert(), py::arg("pos_indptr").noconvert(),
          py::arg("pos_indices").noconvert(), py::arg("start").noconvert(), py::arg("epochs"),
          py::arg("loss"), py::arg("learning_rate"), py::arg("user_alpha"),
          py::arg("max_sampled"), py::arg("seed"), py::arg("num_threads"),
          "Fold-in of new users with item parameters fixed.");
    m.def("hybrid_warp_rank", &hybrid::warp_rank_estimate, py::arg("n_items"), py::arg("trials"),
          "WARP's rank estimate floor((n_items - 1) / trials).");
#ifdef _OPENMP
    m.attr("openmp") = true;
#else
    m.attr("openmp") = false;
#endif
}
