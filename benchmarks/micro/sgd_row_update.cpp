// The memory floor of one biased-MF SGD update (issue #5): how long does it take just to
// update two random factor rows, p <- a p + c q and q <- a q + c p, with no dot product, no
// error and no dependency between updates? This is a lower bound for any per-rating SGD
// kernel that writes both rows (SVD's svd_fit in cpp/sgd.hpp costs ~15 ns per rating at
// 100 factors on ml-100k, of which this part alone is ~14 ns).
//
//   g++ -O3 -march=native -o /tmp/sgd_row_update benchmarks/micro/sgd_row_update.cpp
//   /tmp/sgd_row_update
//
// Rows are V aligned 16-float vectors (V = 7: 100 factors padded to 112, as svd_fit pads
// them). "ml-100k size": 943 user rows and 1682 item rows (1.2 MB: in L2, not L1); "L1
// size": 20 and 40 rows (27 KB). 1.6M updates = 20 epochs of an ml-100k fold.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

typedef float v16 __attribute__((vector_size(64), aligned(64)));

template <int V>
__attribute__((noinline)) void updates(const int32_t *us, const int32_t *is, int64_t n, float *P,
                                       float *Q) {
    v16 a = {0}, c = {0};
    a += 0.9999f;
    c += 0.001f;
    for (int64_t t = 0; t < n; ++t) {
        v16 *p = reinterpret_cast<v16 *>(P + int64_t(us[t]) * 16 * V);
        v16 *q = reinterpret_cast<v16 *>(Q + int64_t(is[t]) * 16 * V);
        for (int k = 0; k < V; ++k) {
            const v16 x = p[k], y = q[k];
            p[k] = a * x + c * y;
            q[k] = a * y + c * x;
        }
    }
}

template <int V>
double ns_per_update(int n_users, int n_items) {
    const int64_t n = 1600000;
    std::mt19937 g(1);
    std::vector<int32_t> us(n), is(n);
    for (int64_t t = 0; t < n; ++t) {
        us[t] = int32_t(g() % n_users);
        is[t] = int32_t(g() % n_items);
    }
    float *P = static_cast<float *>(std::aligned_alloc(64, size_t(n_users) * 64 * V));
    float *Q = static_cast<float *>(std::aligned_alloc(64, size_t(n_items) * 64 * V));
    std::fill(P, P + int64_t(n_users) * 16 * V, 0.1f);
    std::fill(Q, Q + int64_t(n_items) * 16 * V, 0.1f);
    double best = 1e9;
    for (int rep = 0; rep < 7; ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
        updates<V>(us.data(), is.data(), n, P, Q);
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::free(P);
    std::free(Q);
    return best * 1e9 / double(n);
}

int main() {
    std::printf("floats/row  ml-100k size (ns/update)  L1 size (ns/update)\n");
    std::printf("%10d  %24.2f  %19.2f\n", 16, ns_per_update<1>(943, 1682), ns_per_update<1>(20, 40));
    std::printf("%10d  %24.2f  %19.2f\n", 32, ns_per_update<2>(943, 1682), ns_per_update<2>(20, 40));
    std::printf("%10d  %24.2f  %19.2f\n", 64, ns_per_update<4>(943, 1682), ns_per_update<4>(20, 40));
    std::printf("%10d  %24.2f  %19.2f\n", 112, ns_per_update<7>(943, 1682), ns_per_update<7>(20, 40));
    return 0;
}
