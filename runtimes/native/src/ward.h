// Chain-connected Ward clustering: the offline selective-decoding segmentation (VL-JEPA paper,
// section 4.6), the C++ twin of edge_vljepa/streaming/policies.py `ward_segments`.
//
// Python's ward_segments(embeddings, n_segments) returns the segments as a list of (first, last)
// index runs, in temporal order. The C++ `ward_segments` returns the same partition as one label
// per row: labels[i] is the index (0, 1, 2, ... in temporal order) of the run that row i belongs
// to, so labels are non-decreasing, start at 0, and the maximal runs of equal labels are exactly
// Python's (first, last) tuples. `ward_runs` returns those tuples directly.
//
// Algorithm: sklearn's ward_tree with a connectivity graph (AgglomerativeClustering(linkage="ward",
// connectivity=chain)): a min-heap of (inertia, i, j) over connected cluster pairs, the inertia
//   n_i n_j / (n_i + n_j) * sum_f (mean_i[f] - mean_j[f])^2
// computed in double with sklearn's operation order, merged node k = n, n+1, ... with pairs
// (k, neighbour) pushed after each merge; ties are broken by the tuple order exactly as Python's
// heapq does. The partition into k clusters is the one after n - k merges (what sklearn's tree
// cut gives). Each cluster of a chain is contiguous.
#pragma once

#include <utility>
#include <vector>

namespace evj {

// x: row-major n x d floats (n rows of dimension d). k: the number of segments wanted.
// k >= n (or n == 0) gives one segment per row, as the Python function. Throws evj::Error for
// k < 1, d < 1, x.size() != n * d, or non-finite values (sklearn's input validation).
std::vector<int> ward_segments(const std::vector<float>& x, int n, int d, int k);

// The same segmentation as Python returns it: (first, last) row index runs, inclusive, in order.
std::vector<std::pair<int, int>> ward_runs(const std::vector<float>& x, int n, int d, int k);

}  // namespace evj
