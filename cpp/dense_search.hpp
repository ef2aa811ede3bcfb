// Exact top-k search kernels beyond the dense BLAS tile path of topk.hpp.
//
//   topk_sparse: sparse queries (CSR, n x f) against sparse items given transposed
//                (CSR of items^T, f x m), e.g. TF-IDF profiles. Each query row is scattered
//                into a dense accumulator of m scores (item-major inverted-index traversal:
//                for every query feature, add its weight times the feature's item column),
//                then masked and reduced by the bounded heap of topk.hpp. Nothing of size
//                n x m, and no densified item matrix, is ever held: one m-float row per thread.
//
// Cost: sum over query nonzeros of the nonzeros of the matching item-feature column, plus
// O(m) per query to clear and scan the accumulator. Accumulation order per item follows the
// query's feature order, so results do not depend on the thread count.
//
// The kernels take raw pointers and assume validated input (bindings.cpp checks).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "topk.hpp"

namespace tastebud {

inline void topk_sparse(const int64_t *q_indptr, const int32_t *q_indices, const float *q_data,
                        int64_t n, const int64_t *t_indptr, const int32_t *t_indices,
                        const float *t_data, int64_t m, const float *item_bias, int k,
                        const Exclusions &ex, int64_t *out_index, float *out_score,
                        int num_threads) {
    const int64_t rows_per_task = 16;
    const int64_t tasks = (n + rows_per_task - 1) / rows_per_task;
    parallel_for(tasks, n <= 4 * rows_per_task ? 1 : num_threads, [&](int64_t task) {
        std::vector<float> acc(static_cast<size_t>(m));
        const int64_t r_end = std::min(n, (task + 1) * rows_per_task);
        for (int64_t r = task * rows_per_task; r < r_end; ++r) {
            if (item_bias)
                std::copy(item_bias, item_bias + m, acc.begin());
            else
                std::fill(acc.begin(), acc.end(), 0.0f);
            for (int64_t j = q_indptr[r]; j < q_indptr[r + 1]; ++j) {
                const int32_t f = q_indices[j];
                const float v = q_data[j];
                for (int64_t p = t_indptr[f]; p < t_indptr[f + 1]; ++p)
                    acc[t_indices[p]] += v * t_data[p];
            }
            int64_t cursor = ex.indptr ? ex.indptr[r] : 0;
            mask_block(acc.data(), 0, m, ex, r, cursor);
            TopKHeap heap(out_score + r * k, out_index + r * k, k);
            offer_row(heap, acc.data(), m, 0);
            heap.finish();
        }
    });
}

}  // namespace tastebud
