// Chain-connected Ward clustering, identical to sklearn's ward_tree with a chain connectivity
// graph (see ward.h for the conventions).
//
// sklearn keeps a heap of (inertia, i, j) tuples for connected pairs: initially (r, r - 1) for
// every row r >= 1 (only the lower triangle of the symmetric chain graph); each merge of the
// heap's smallest live tuple (i, j) creates node k (n, n + 1, ...) and pushes (inertia(k, h), k, h)
// for every current cluster h adjacent to i or j. Stale tuples (a node already merged) are popped
// and skipped. All tuples are distinct, so the pop order is the sorted tuple order whatever the
// push order: a std::priority_queue with the same lexicographic order reproduces it exactly.
#include "ward.h"

#include <cmath>
#include <cstdint>
#include <queue>
#include <string>
#include <tuple>

#include "error.h"

// sklearn computes sum += diff ** 2 without fused multiply-add (x86-64 builds); keep the products
// separately rounded where the compiler would otherwise contract them (clang on arm64).
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

namespace evj {
namespace {

struct Entry {
  double inertia;
  int64_t i, j;
  bool operator>(const Entry& o) const {
    return std::tie(inertia, i, j) > std::tie(o.inertia, o.i, o.j);
  }
};

// sklearn _hierarchical.compute_ward_dist for one (row, col) pair, same operation order.
double ward_dist(const double* m2_row, double m1_row, const double* m2_col, double m1_col, int d) {
  const double n = (m1_row * m1_col) / (m1_row + m1_col);
  double pa = 0.0;
  for (int f = 0; f < d; ++f) {
    const double diff = m2_row[f] / m1_row - m2_col[f] / m1_col;
    const double sq = diff * diff;
    pa += sq;
  }
  return pa * n;
}

}  // namespace

std::vector<int> ward_segments(const std::vector<float>& x, int n, int d, int k) {
  if (n < 0 || d < 0 || static_cast<uint64_t>(x.size()) != static_cast<uint64_t>(n) * static_cast<uint64_t>(d)) {
    throw Error("ward_segments: expected n x d = " + std::to_string(n) + " x " + std::to_string(d) +
                " values, got " + std::to_string(x.size()));
  }
  std::vector<int> labels(static_cast<size_t>(n));
  if (k >= n) {  // one segment per row (Python returns [(i, i) for i in range(n)])
    for (int i = 0; i < n; ++i) labels[i] = i;
    return labels;
  }
  if (k < 1) throw Error("ward_segments: the number of segments must be >= 1, got " + std::to_string(k));
  if (d < 1) throw Error("ward_segments: embeddings need at least 1 feature, got 0");
  for (size_t t = 0; t < x.size(); ++t) {
    if (!std::isfinite(x[t])) {
      throw Error("ward_segments: embedding row " + std::to_string(t / d) + " contains NaN or infinity");
    }
  }

  // Node bookkeeping (nodes 0..n-1 are rows, n.. are merges). A live cluster covers rows
  // [lo, hi] and keeps its feature sum (sklearn's moments_2) in slot lo of `sums`.
  const int n_nodes = 2 * n - k;
  std::vector<double> sums(x.begin(), x.end());  // (n, d): float -> double exactly
  std::vector<double> count(n_nodes, 0.0);         // moments_1
  std::vector<int> lo(n_nodes), hi(n_nodes), left(n_nodes, -1), right(n_nodes, -1);
  std::vector<char> live(n_nodes, 0);
  for (int i = 0; i < n; ++i) {
    count[i] = 1.0;
    lo[i] = hi[i] = i;
    left[i] = i - 1;
    right[i] = i + 1 < n ? i + 1 : -1;
    live[i] = 1;
  }
  auto row = [&](int node) { return sums.data() + static_cast<size_t>(lo[node]) * d; };

  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
  for (int r = 1; r < n; ++r) {
    heap.push({ward_dist(row(r), count[r], row(r - 1), count[r - 1], d), r, r - 1});
  }

  for (int node = n; node < n_nodes; ++node) {
    Entry e;
    do {  // heap is never empty here: a chain always has a live adjacent pair until one cluster
      e = heap.top();
      heap.pop();
    } while (!(live[e.i] && live[e.j]));
    const int i = static_cast<int>(e.i), j = static_cast<int>(e.j);
    const int a = lo[i] < lo[j] ? i : j, b = a == i ? j : i;  // a: the left cluster, b: the right one
    live[i] = live[j] = 0;

    // moments: sklearn moments_2[k] = moments_2[i] + moments_2[j] (addition is commutative)
    double* sa = row(a);
    const double* sb = row(b);
    for (int f = 0; f < d; ++f) sa[f] = sa[f] + sb[f];
    count[node] = count[i] + count[j];
    lo[node] = lo[a];
    hi[node] = hi[b];
    left[node] = left[a];
    right[node] = right[b];
    if (left[node] >= 0) right[left[node]] = node;
    if (right[node] >= 0) left[right[node]] = node;
    live[node] = 1;

    for (int h : {left[node], right[node]}) {
      if (h >= 0) heap.push({ward_dist(row(node), count[node], row(h), count[h], d), node, h});
    }
  }

  // Label the live clusters left to right.
  int first = -1;
  for (int node = 0; node < n_nodes; ++node) {
    if (live[node] && lo[node] == 0) first = node;
  }
  int label = 0;
  for (int node = first; node >= 0; node = right[node], ++label) {
    for (int r = lo[node]; r <= hi[node]; ++r) labels[r] = label;
  }
  return labels;
}

std::vector<std::pair<int, int>> ward_runs(const std::vector<float>& x, int n, int d, int k) {
  const std::vector<int> labels = ward_segments(x, n, d, k);
  std::vector<std::pair<int, int>> runs;
  for (int i = 0; i < n; ++i) {
    if (i == 0 || labels[i] != labels[i - 1]) runs.emplace_back(i, i);
    runs.back().second = i;
  }
  return runs;
}

}  // namespace evj
