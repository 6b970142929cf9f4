// The streaming loop (Python: edge_vljepa/streaming/loop.py run_stream), incremental: one source frame
// at a time, then finish(). Stages, in order, as in Python:
//   resample -> preprocess (convert + resize/crop per used frame; stack + normalise per window) ->
//   window -> skip? -> x_encoder -> predictor -> label_bank -> policy -> y_decoder (when asked) -> event
// with per-stage milliseconds in each event and the same summary (StreamSummary.format()).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "artifact.h"
#include "backend.h"
#include "edge_vljepa.h"
#include "events.h"
#include "label_bank.h"
#include "policies.h"
#include "preprocess.h"
#include "skip.h"
#include "window.h"

namespace evj {

extern const char* const kStages[5];  // preprocess, x_encoder, predictor, label_bank, y_decoder

struct Summary {
  int64_t windows = 0, decodes = 0, source_frames = 0, dropped_frames = 0, dropped_events = 0;
  int64_t reused = 0;  // windows that reused the last embedding (selective encoding): no X-Encoder call
  double stream_s = 0, wall_s = 0, backend_s = 0;
  double core_s = 0;  // inside the core's frame and finish calls (wall_s also holds the caller's time between them)
  std::vector<std::pair<std::string, std::pair<double, double>>> stage_ms;  // stage -> (p50, p90), stages that ran
  std::vector<std::pair<std::string, double>> stage_total_ms;  // stage -> sum of its calls, ms
  std::optional<std::string> error;
  bool interrupted = false;
  double peak_rss_mb = 0;
  std::string format() const;   // exactly Python's StreamSummary.format()
  std::string to_json() const;
};

double percentile(std::vector<double> v, double q);  // numpy's default (linear) percentile
double peak_rss_mb();

struct LoopInputs {  // what a stream needs, fixed for its duration
  const Artifact* artifact;
  Backend* backend;
  const TextEncoder* decoder_tokenizer;
  std::vector<int64_t> query_ids, query_mask;
  const LabelBank* bank;  // may be null
  int top_k;
  int stride;
  std::unique_ptr<Policy> policy;
  SkipParams skip;  // selective encoding; max_skip 0: every window encoded
};

class Loop {
 public:
  Loop(LoopInputs inputs, std::function<void(const Event&)> emit);
  // One source frame: validated already; converted to RGB only when the model grid needs it.
  void push(const evj_frame& frame);
  void count_dropped(int64_t n) { dropped_frames_ += n; }
  Summary finish(const std::optional<std::string>& source_error, int64_t dropped_events);
  const std::vector<float>& last_embedding() const { return last_embedding_; }
  int64_t windows() const { return int64_t(spans_.size()); }

 private:
  double now_ms() const;
  void emit(const Event& e);
  std::string decode(const DecodeRequest& r, Event& e);
  LoopInputs in_;
  std::function<void(const Event&)> emit_;
  Resampler resampler_;
  WindowBuffer buffer_;
  SkipGate skip_;
  std::vector<std::pair<double, double>> spans_;
  std::map<std::string, std::vector<double>> stage_ms_;
  int64_t source_frames_ = 0, decodes_ = 0, dropped_frames_ = 0;
  double prepare_ms_ = 0, backend_ms_ = 0, core_ms_ = 0;
  std::chrono::steady_clock::time_point wall_start_;
  std::vector<float> video_, embedding_, last_embedding_;  // embedding_: the last window's, raw (E,)
  std::vector<std::pair<std::string, float>> topk_;  // the last window's labels
};

}  // namespace evj
