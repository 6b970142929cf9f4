// Frames to model windows (Python: edge_vljepa/streaming/window.py): the resampler places source frames on
// the model grid t0 + k / fps by timestamp; the window buffer emits T contiguous grid frames every `stride`.
// Same arithmetic in double as Python, so window times are identical.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include <opencv2/core.hpp>

namespace evj {

constexpr double kEpsS = 1e-6;

class Resampler {
 public:
  explicit Resampler(double fps);
  double time(int64_t k) const { return t0_ + double(k) / fps_; }
  // Grid indices the source frame at time t fills (often none); the first frame sets t0.
  std::vector<int64_t> push(double t);
  int64_t num_frames() const { return num_frames_; }

 private:
  double fps_, t0_ = 0;
  bool started_ = false;
  int64_t num_frames_ = 0;
};

struct Window {
  int64_t index;
  double start, end;             // s
  std::vector<cv::Mat> frames;   // T x (S, S, 3) uint8 (shared, not copied)
  double time() const { return (start + end) / 2; }
};

class WindowBuffer {
 public:
  WindowBuffer(int num_frames, int stride, double fps);
  std::optional<Window> push(int64_t k, double t, const cv::Mat& frame);
  int64_t count() const { return count_; }

 private:
  struct Slot { int64_t k; double t; cv::Mat frame; };
  int num_frames_, stride_;
  double fps_;
  std::deque<Slot> frames_;
  int due_;
  int64_t count_ = 0;
};

}  // namespace evj
