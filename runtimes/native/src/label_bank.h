// The label bank (Python: edge_vljepa/streaming/label_bank.py): labels and their L2-normalised Y-Encoder
// embeddings, cosine top-k with a stable order (ties keep the bank's order).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace evj {

std::vector<float> l2_normalize(const std::vector<float>& x);  // a zero vector stays zero

class LabelBank {
 public:
  LabelBank() = default;
  // embeddings: row-major K x dim; normalised here. Throws evj::Error(EVJ_ERR_TEXT) for no labels or
  // duplicates, EVJ_ERR_ARTIFACT for a shape mismatch.
  LabelBank(std::vector<std::string> labels, std::vector<float> embeddings, size_t dim);
  static LabelBank load(const std::string& npz_path);                       // label_bank.npz
  static LabelBank parse(const uint8_t* data, size_t size, const std::string& what);  // its bytes
  std::vector<std::pair<std::string, float>> topk(const std::vector<float>& embedding, int k) const;
  size_t size() const { return labels_.size(); }
  size_t dim() const { return dim_; }
  const std::vector<std::string>& labels() const { return labels_; }

 private:
  std::vector<std::string> labels_;
  std::vector<float> embeddings_;  // K x dim, normalised
  size_t dim_ = 0;
};

}  // namespace evj
