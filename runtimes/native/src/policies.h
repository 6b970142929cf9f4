// Decode policies (Python: edge_vljepa/streaming/policies.py), the same logic step by step:
// uniform (every every_s seconds), online (change detection with hysteresis), changepoint (change detection
// that decodes the settled content), offline_segments (Ward segments at finish, ward.h). observe() once per window, in order; finish() at the end of the stream.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace evj {

struct DecodeRequest {
  double time;
  int64_t window;
  std::pair<int64_t, int64_t> span;
  std::vector<float> embedding;  // L2-normalised
};

class Policy {
 public:
  virtual ~Policy() = default;
  virtual std::optional<DecodeRequest> observe(int64_t index, double start, double end, const std::vector<float>& embedding) = 0;
  virtual std::vector<DecodeRequest> finish() = 0;
  // Python: Policy.wants_embedding (policies.py), before the window [start, end] is encoded, for selective
  // encoding (skip.h): true if the policy decides on its embedding (encode it), false if the last one serves
  // as well (reuse), nullopt: no preference (the gate's own tests decide). Only changepoint has one.
  virtual std::optional<bool> wants_embedding(double /*start*/, double /*end*/) const { return std::nullopt; }
};

// The policy `name` with `params` (a JSON object; missing keys take policies.py's defaults). Unknown
// names or parameters and invalid values throw evj::Error(EVJ_ERR_INVALID_ARGUMENT) with Python's message.
std::unique_ptr<Policy> make_policy(const std::string& name, const nlohmann::json& params);
// policies.py's own defaults of `name` ({"every_s": 1.0}, ...), max_interval_s / n_segments / rate_hz null.
nlohmann::json policy_defaults(const std::string& name);

}  // namespace evj
