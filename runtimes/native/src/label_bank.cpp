#include "label_bank.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "error.h"
#include "npz.h"

namespace evj {

std::vector<float> l2_normalize(const std::vector<float>& x) {
  // numpy: norm in float32 via sqrt(sum(x*x)) (pairwise summation); float accumulation in double here
  // differs by < 1 ulp of the norm, far below any tolerance the loop compares with.
  double sum = 0;
  for (float v : x) sum += double(v) * double(v);
  float norm = std::max(float(std::sqrt(sum)), 1e-12f);
  std::vector<float> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = x[i] / norm;
  return out;
}

LabelBank::LabelBank(std::vector<std::string> labels, std::vector<float> embeddings, size_t dim)
    : labels_(std::move(labels)), dim_(dim) {
  if (labels_.empty()) throw Error(EVJ_ERR_TEXT, "a label bank needs at least one label");
  std::set<std::string> seen, dup;
  for (const auto& l : labels_)
    if (!seen.insert(l).second) dup.insert(l);
  if (!dup.empty()) {
    std::string list;
    for (const auto& d : dup) list += (list.empty() ? "'" : ", '") + d + "'";
    throw Error(EVJ_ERR_TEXT, "duplicate labels in the label bank: " + list);
  }
  if (dim == 0 || embeddings.size() != labels_.size() * dim)
    throw Error(EVJ_ERR_ARTIFACT, "label embeddings must be (" + std::to_string(labels_.size()) + ", E)");
  embeddings_.resize(embeddings.size());
  for (size_t r = 0; r < labels_.size(); ++r) {
    std::vector<float> row(embeddings.begin() + long(r * dim), embeddings.begin() + long((r + 1) * dim));
    row = l2_normalize(row);
    std::copy(row.begin(), row.end(), embeddings_.begin() + long(r * dim));
  }
}

LabelBank LabelBank::parse(const uint8_t* data, size_t size, const std::string& what) {
  auto arrays = parse_npz(data, size, what);
  if (!arrays.count("labels") || !arrays.count("embeddings"))
    throw Error(EVJ_ERR_ARTIFACT, what + " is not a label bank (it needs the arrays 'labels' and 'embeddings')");
  const NpyArray& e = arrays["embeddings"];
  const NpyArray& l = arrays["labels"];
  if (e.shape.size() != 2 || l.shape.size() != 1 || e.shape[0] != l.shape[0])
    throw Error(EVJ_ERR_ARTIFACT, what + ": labels and embeddings do not match in shape");
  return LabelBank(l.as_strings(), e.as_float(), size_t(e.shape[1]));
}

LabelBank LabelBank::load(const std::string& path) {
  std::string bytes = read_file(path);
  return parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path);
}

std::vector<std::pair<std::string, float>> LabelBank::topk(const std::vector<float>& embedding, int k) const {
  if (embedding.size() != dim_)
    throw Error(EVJ_ERR_CONTRACT, "embedding has dimension " + std::to_string(embedding.size()) + ", the label bank " + std::to_string(dim_));
  std::vector<float> e = l2_normalize(embedding);
  std::vector<float> scores(labels_.size());
  constexpr size_t kLanes = 8;  // independent partial sums: the compiler vectorizes them (one chain would not)
  for (size_t r = 0; r < labels_.size(); ++r) {
    const float* row = embeddings_.data() + r * dim_;
    float lane[kLanes] = {};
    size_t i = 0;
    for (; i + kLanes <= dim_; i += kLanes)
      for (size_t j = 0; j < kLanes; ++j) lane[j] += row[i + j] * e[i + j];
    float s = 0;
    for (; i < dim_; ++i) s += row[i] * e[i];
    for (float v : lane) s += v;
    scores[r] = s;
  }
  // the k best, ties in label order (as a stable sort of all scores, without sorting them all)
  std::vector<size_t> order(labels_.size());
  std::iota(order.begin(), order.end(), 0);
  size_t n = std::min(order.size(), size_t(std::max(k, 0)));
  std::partial_sort(order.begin(), order.begin() + std::ptrdiff_t(n), order.end(),
                    [&](size_t a, size_t b) { return scores[a] > scores[b] || (scores[a] == scores[b] && a < b); });
  std::vector<std::pair<std::string, float>> out;
  for (size_t i = 0; i < n; ++i) out.emplace_back(labels_[order[i]], scores[order[i]]);
  return out;
}

}  // namespace evj
