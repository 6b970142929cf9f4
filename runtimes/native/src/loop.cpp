#include "loop.h"

#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "decode.h"
#include "error.h"

namespace evj {

const char* const kStages[5] = {"preprocess", "x_encoder", "predictor", "label_bank", "y_decoder"};

namespace {
std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}
void add_ms(std::vector<std::pair<std::string, double>>& ms, const std::string& stage, double value) {
  for (auto& [s, v] : ms)
    if (s == stage) { v += value; return; }
  ms.emplace_back(stage, value);
}
}  // namespace

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  double pos = (double(v.size()) - 1) * q / 100.0;
  size_t lo = size_t(std::floor(pos)), hi = std::min(lo + 1, v.size() - 1);
  double frac = pos - double(lo);
  return v[lo] + (v[hi] - v[lo]) * frac;
}

// Peak resident memory of this process, MB (10^6 bytes, as the Python runtime reports). Linux: VmHWM of /proc/self/status, the high-water mark of
// this process's own address space (ru_maxrss survives execve, so a CLI started by a large parent
// would report the parent's peak). Elsewhere getrusage: KiB on Linux/Android, bytes on Apple.
double peak_rss_mb() {
  if (FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    long kib = -1;
    while (std::fgets(line, sizeof line, f))
      if (std::sscanf(line, "VmHWM: %ld kB", &kib) == 1) break;
    std::fclose(f);
    if (kib >= 0) return double(kib) * 1024.0 / 1e6;
  }
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
#if defined(__APPLE__)
  return double(ru.ru_maxrss) / 1e6;
#else
  return double(ru.ru_maxrss) * 1024.0 / 1e6;
#endif
}

std::string Summary::format() const {
  double windows_per_s = wall_s > 0 ? double(windows) / wall_s : 0.0;
  double rtf = wall_s > 0 ? stream_s / wall_s : 0.0;
  double per_min = stream_s > 0 ? 60.0 * double(decodes) / stream_s : 0.0;
  std::string out;
  out += "windows      " + std::to_string(windows) + " (" + fmt("%.1f", windows_per_s) + " windows/s)";
  if (reused) out += ", " + std::to_string(reused) + " reused (x_encoder on " + std::to_string(windows - reused) + ")";
  out += "\n";
  // with no window the model never ran: reading frames alone says nothing of its speed
  std::string speed = windows ? "real-time factor " + fmt("%.2f", rtf) + "x" : std::string("no window");
  out += "stream       " + fmt("%.2f", stream_s) + " s in " + fmt("%.2f", wall_s) + " s wall (" + speed + ")\n";
  out += "decodes      " + std::to_string(decodes) + " (" + fmt("%.1f", per_min) + " per minute)\n";
  out += "frames       " + std::to_string(source_frames) + " read, " + std::to_string(dropped_frames) + " dropped\n";
  out += "backend      " + fmt("%.2f", backend_s) + " s, outside backend " + fmt("%.2f", wall_s - backend_s) + " s\n";
  out += "stage        p50 ms    p90 ms";
  for (const auto& [stage, p] : stage_ms) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "\n  %-10s %8.2f  %8.2f", stage.c_str(), p.first, p.second);
    out += buf;
  }
  if (interrupted) out += "\ninterrupted by the user";
  if (error) out += "\nthe source broke mid-stream: " + *error;
  return out;
}

std::string Summary::to_json() const {
  nlohmann::ordered_json j;
  j["windows"] = windows; j["reused"] = reused; j["decodes"] = decodes; j["source_frames"] = source_frames;
  j["dropped_frames"] = dropped_frames; j["dropped_events"] = dropped_events;
  j["stream_s"] = stream_s; j["wall_s"] = wall_s; j["backend_s"] = backend_s; j["outside_backend_s"] = wall_s - backend_s;
  j["core_s"] = core_s;
  j["stage_ms"] = nlohmann::ordered_json::object();
  for (const auto& [stage, p] : stage_ms) j["stage_ms"][stage] = {p.first, p.second};
  j["stage_total_ms"] = nlohmann::ordered_json::object();
  for (const auto& [stage, total] : stage_total_ms) j["stage_total_ms"][stage] = total;
  j["error"] = error ? nlohmann::ordered_json(*error) : nlohmann::ordered_json(nullptr);
  j["interrupted"] = interrupted;
  j["peak_rss_mb"] = peak_rss_mb;
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

Loop::Loop(LoopInputs inputs, std::function<void(const Event&)> emit)
    : in_(std::move(inputs)), emit_(std::move(emit)), resampler_(in_.artifact->preprocess.fps),
      buffer_(in_.artifact->preprocess.num_frames, in_.stride, in_.artifact->preprocess.fps),
      skip_(in_.skip), wall_start_(std::chrono::steady_clock::now()) {}

double Loop::now_ms() const {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - wall_start_).count();
}

void Loop::emit(const Event& e) {
  for (const auto& [stage, value] : e.ms) stage_ms_[stage].push_back(value);
  if (emit_) emit_(e);
}

std::string Loop::decode(const DecodeRequest& r, Event& e) {
  ++decodes_;
  double t0 = now_ms();
  std::string text = decode_text(*in_.backend, r.embedding, in_.artifact->decoder, *in_.decoder_tokenizer);
  double dt = now_ms() - t0;
  add_ms(e.ms, "y_decoder", dt);
  backend_ms_ += dt;
  return text;
}

namespace {
// Adds the time of a scope to `total_ms` (the core's own time, see Summary::core_s).
struct ScopeTimer {
  double& total_ms;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  ~ScopeTimer() { total_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count(); }
};
}  // namespace

void Loop::push(const evj_frame& frame) {
  ScopeTimer timed{core_ms_};
  ++source_frames_;
  // -- resample: the model frames (grid times) this source frame fills, usually 0 or 1
  std::vector<int64_t> slots = resampler_.push(frame.timestamp_s);
  if (slots.empty()) return;

  // -- preprocess (1/2): convert to RGB, short-side resize + centre crop, once per used source frame
  double t0 = now_ms();
  cv::Mat small = prepare_frame(frame_to_rgb(frame), in_.artifact->preprocess.img_size);
  prepare_ms_ += now_ms() - t0;

  for (int64_t k : slots) {
    // -- window: T model frames every `stride` model frames
    std::optional<Window> window = buffer_.push(k, resampler_.time(k), small);
    if (!window) continue;
    spans_.emplace_back(window->start, window->end);
    Event e;
    e.ms.emplace_back("preprocess", prepare_ms_);
    prepare_ms_ = 0;

    // -- skip: while the scene holds, the last embedding (and its labels) stands for this window
    t0 = now_ms();
    e.reused = skip_.reuse(window->frames.back(), in_.policy->wants_embedding(window->start, window->end));
    add_ms(e.ms, "preprocess", now_ms() - t0);
    if (!e.reused) {
      // -- preprocess (2/2): stack + normalise
      t0 = now_ms();
      to_video_tensor(window->frames, in_.artifact->preprocess, video_);
      add_ms(e.ms, "preprocess", now_ms() - t0);

      // -- x_encoder: clip -> visual tokens
      const auto& xin = in_.artifact->method("x_encoder").inputs[0];
      t0 = now_ms();
      std::vector<HostTensor> clip(1);  // moved in and back: the clip is not copied (0.9 MB on the default model)
      clip[0] = HostTensor::floats(xin.shape, std::move(video_));
      auto visual = in_.backend->run("x_encoder", clip);
      video_ = std::move(clip[0].f);
      double dt = now_ms() - t0;
      add_ms(e.ms, "x_encoder", dt);
      backend_ms_ += dt;

      // -- predictor: (visual tokens, query) -> the answer's embedding
      const int64_t lq = int64_t(in_.query_ids.size());
      t0 = now_ms();
      auto out = in_.backend->run("predictor", {std::move(visual.at(0)), HostTensor::ints({1, lq}, in_.query_ids),
                                                HostTensor::ints({1, lq}, in_.query_mask)});
      dt = now_ms() - t0;
      add_ms(e.ms, "predictor", dt);
      backend_ms_ += dt;
      embedding_ = std::move(out.at(0).f);  // (E,)
      skip_.encoded(embedding_);
      last_embedding_ = l2_normalize(embedding_);

      // -- label_bank: cosine top-k
      if (in_.bank) {
        t0 = now_ms();
        topk_ = in_.bank->topk(embedding_, in_.top_k);
        add_ms(e.ms, "label_bank", now_ms() - t0);
      }
    }
    e.topk = topk_;

    // -- policy, then y_decoder only when it asks
    std::optional<DecodeRequest> request = in_.policy->observe(window->index, window->start, window->end, embedding_);
    if (request) e.text = decode(*request, e);

    // -- event
    e.time = window->time();
    e.window = window->index;
    e.start = window->start;
    e.end = window->end;
    e.decode = request.has_value();
    if (request) e.span = request->span;
    emit(e);
  }
}

Summary Loop::finish(const std::optional<std::string>& source_error, int64_t dropped_events) {
  double finish_start = now_ms();
  // -- end of stream: offline policies decide now, one decode event per request
  for (const DecodeRequest& r : in_.policy->finish()) {
    Event e;
    if (in_.bank) {
      double t0 = now_ms();
      e.topk = in_.bank->topk(r.embedding, in_.top_k);
      add_ms(e.ms, "label_bank", now_ms() - t0);
    }
    e.text = decode(r, e);
    e.time = r.time;
    e.window = r.window;
    e.start = spans_.at(size_t(r.span.first)).first;
    e.end = spans_.at(size_t(r.span.second)).second;
    e.decode = true;
    e.span = r.span;
    emit(e);
  }
  Summary s;
  s.windows = int64_t(spans_.size());
  s.reused = skip_.reused();
  s.decodes = decodes_;
  s.source_frames = source_frames_;
  s.dropped_frames = dropped_frames_;
  s.dropped_events = dropped_events;
  s.stream_s = double(resampler_.num_frames()) / in_.artifact->preprocess.fps;
  s.wall_s = now_ms() / 1e3;
  s.core_s = (core_ms_ + now_ms() - finish_start) / 1e3;
  double backend_ms = 0;
  for (const char* stage : {"x_encoder", "predictor", "y_decoder"})
    for (double v : stage_ms_[stage]) backend_ms += v;
  s.backend_s = backend_ms / 1e3;
  for (const char* stage : kStages) {
    auto it = stage_ms_.find(stage);
    if (it == stage_ms_.end() || it->second.empty()) continue;
    s.stage_ms.emplace_back(stage, std::make_pair(percentile(it->second, 50), percentile(it->second, 90)));
    double total = 0;
    for (double v : it->second) total += v;
    s.stage_total_ms.emplace_back(stage, total);
  }
  s.error = source_error;
  s.peak_rss_mb = peak_rss_mb();
  return s;
}

}  // namespace evj
