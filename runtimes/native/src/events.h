// Stream events as JSON lines (Python: edge_vljepa/streaming/events.py), the same keys in the same order:
// {"time", "window", "start", "end", "topk": [{"label", "score"}], "decode", "text", "span", "ms"}, and
// "reused": true only for a window that reused the last embedding (selective encoding, skip.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace evj {

struct Event {
  double time = 0;
  int64_t window = 0;
  double start = 0, end = 0;
  std::vector<std::pair<std::string, float>> topk;
  bool decode = false;
  std::optional<std::string> text;
  std::optional<std::pair<int64_t, int64_t>> span;
  std::vector<std::pair<std::string, double>> ms;  // stage -> milliseconds, in the order the stages ran
  bool reused = false;  // the last embedding stood for this window: no X-Encoder call

  std::string to_json() const;  // one line, no newline
};

}  // namespace evj
