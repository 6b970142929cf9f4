#include "skip.h"

#include <cmath>
#include <cstdlib>

#include "error.h"
#include "label_bank.h"

namespace evj {
using nlohmann::json;

namespace {
std::string num(double v) {
  json j = v;
  return j.dump();
}
}  // namespace

SkipParams skip_params(const json& p, SkipParams base) {
  if (p.is_null()) return base;
  if (!p.is_object()) throw Error(EVJ_ERR_INVALID_ARGUMENT, "skip parameters must be a JSON object");
  for (auto& [k, v] : p.items())
    if (k != "max_skip" && k != "stable" && k != "pixel")
      throw Error(EVJ_ERR_INVALID_ARGUMENT, "skip has no parameter " + k + "; its parameters: max_skip, stable, pixel");
  SkipParams s = base;
  if (p.contains("max_skip") && !p["max_skip"].is_null()) {
    if (!p["max_skip"].is_number_integer() || p["max_skip"].get<int64_t>() < 0)
      throw Error(EVJ_ERR_INVALID_ARGUMENT, "skip: max_skip must be an integer >= 0, got " + p["max_skip"].dump());
    s.max_skip = p["max_skip"].get<int64_t>();
  }
  for (const char* key : {"stable", "pixel"})
    if (p.contains(key) && !p[key].is_null()) {
      if (!p[key].is_number()) throw Error(EVJ_ERR_INVALID_ARGUMENT, std::string("skip: ") + key + " must be a number");
      (std::string(key) == "stable" ? s.stable : s.pixel) = p[key].get<double>();
    }
  if (!(0 < s.stable && s.stable < 2))
    throw Error(EVJ_ERR_INVALID_ARGUMENT, "skip: stable is a cosine distance in (0, 2), got " + num(s.stable));
  if (!(0 <= s.pixel && s.pixel <= 1))
    throw Error(EVJ_ERR_INVALID_ARGUMENT, "skip: pixel is a mean absolute change in [0, 1], got " + num(s.pixel));
  return s;
}

json skip_json(const SkipParams& p) { return {{"max_skip", p.max_skip}, {"stable", p.stable}, {"pixel", p.pixel}}; }

std::vector<int64_t> thumbnail(const cv::Mat& frame) {
  const int b = frame.rows / kThumb;
  std::vector<int64_t> out(size_t(kThumb * kThumb * 3), 0);
  for (int y = 0; y < b * kThumb; ++y) {
    const uint8_t* row = frame.ptr<uint8_t>(y);
    for (int x = 0; x < b * kThumb; ++x)
      for (int c = 0; c < 3; ++c) out[size_t(((y / b) * kThumb + x / b) * 3 + c)] += row[x * 3 + c];
  }
  return out;
}

double thumbnail_change(const std::vector<int64_t>& a, const std::vector<int64_t>& b, int side) {
  int64_t sum = 0, block = int64_t(side / kThumb) * int64_t(side / kThumb);
  for (size_t i = 0; i < a.size(); ++i) sum += std::llabs(a[i] - b[i]);
  return double(sum) / double(int64_t(a.size()) * block * 255);
}

// Python: SkipGate.reuse (skip.py).
bool SkipGate::reuse(const cv::Mat& newest, std::optional<bool> wanted) {
  if (p_.max_skip == 0) return false;
  if (!last_.empty() && wanted == false) return take_last();  // the policy will not use this window's embedding
  std::vector<int64_t> thumb = thumbnail(newest);
  if (!last_.empty() && !wanted.has_value() && run_ < allowed_ && thumbnail_change(thumb, thumb_, newest.rows) <= p_.pixel)
    return take_last();
  pending_ = std::move(thumb);  // the thumbnail of the window about to be encoded
  return false;
}

bool SkipGate::take_last() {
  ++run_;
  ++reused_;
  return true;
}

void SkipGate::encoded(const std::vector<float>& embedding) {
  if (p_.max_skip == 0) return;
  std::vector<float> e = l2_normalize(embedding);
  bool held = false;
  if (!last_.empty()) {
    float dot = 0;  // float32, as numpy's e @ last
    for (size_t i = 0; i < e.size(); ++i) dot += e[i] * last_[i];
    held = 1.0 - double(dot) <= p_.stable;
  }
  allowed_ = held ? std::min(allowed_ + 1, p_.max_skip) : 0;
  last_ = std::move(e);
  thumb_ = std::move(pending_);
  run_ = 0;
}

}  // namespace evj
