// Selective encoding (Python: edge_vljepa/streaming/skip.py), the same decisions: per window, before the
// X-Encoder, whether the last embedding stands for it. An encoded window whose embedding stays within
// `stable` (cosine distance) of the previous encoded one lets one more window in a row be reused, up to
// `max_skip`; a window whose newest frame differs from the last encoded window's newest frame by more than
// `pixel` (mean absolute change of an 8 x 8 block-sum thumbnail, integer arithmetic) is encoded anyway.
// max_skip 0 (the default) encodes every window. The decode policy has the last word where it has one
// (Policy::wants_embedding, policies.h): a window it decides on is encoded whatever the tests say, one whose
// embedding it will not use is reused.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

namespace evj {

struct SkipParams {
  int64_t max_skip = 0;
  double stable = 0.05, pixel = 0.01;
};

// The parameters in `p` (a JSON object; missing keys keep `base`'s); unknown keys or invalid values throw
// evj::Error(EVJ_ERR_INVALID_ARGUMENT) with skip.py's message.
SkipParams skip_params(const nlohmann::json& p, SkipParams base = SkipParams{});
nlohmann::json skip_json(const SkipParams& p);

constexpr int kThumb = 8;
std::vector<int64_t> thumbnail(const cv::Mat& frame);  // (kThumb, kThumb, 3) block sums of an (S, S, 3) uint8 frame
double thumbnail_change(const std::vector<int64_t>& a, const std::vector<int64_t>& b, int side);

class SkipGate {
 public:
  explicit SkipGate(SkipParams p = SkipParams{}) : p_(p) {}
  // The window's newest frame; wanted: the policy's wants_embedding (true: encode, false: reuse, nullopt: the
  // tests decide). true: use the last embedding.
  bool reuse(const cv::Mat& newest, std::optional<bool> wanted = std::nullopt);
  void encoded(const std::vector<float>& embedding);  // the embedding of the window just encoded
  int64_t reused() const { return reused_; }

 private:
  bool take_last();  // this window reuses the last embedding
  SkipParams p_;
  int64_t allowed_ = 0, run_ = 0, reused_ = 0;
  std::vector<float> last_;  // the last encoded embedding, unit length (empty before the first)
  std::vector<int64_t> thumb_, pending_;
};

}  // namespace evj
