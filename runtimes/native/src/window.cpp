#include "window.h"

#include <cmath>

#include "error.h"

namespace evj {

Resampler::Resampler(double fps) : fps_(fps) {
  if (!(fps > 0)) throw Error(EVJ_ERR_INVALID_ARGUMENT, "the model fps must be > 0");
}

std::vector<int64_t> Resampler::push(double t) {
  if (!started_) {
    t0_ = t;
    started_ = true;
  }
  int64_t last = int64_t(std::floor((t - t0_) * fps_ + kEpsS));
  std::vector<int64_t> ks;
  for (int64_t k = num_frames_; k <= last; ++k) ks.push_back(k);
  num_frames_ = std::max(num_frames_, last + 1);
  return ks;
}

WindowBuffer::WindowBuffer(int num_frames, int stride, double fps)
    : num_frames_(num_frames), stride_(stride), fps_(fps), due_(num_frames) {
  if (num_frames <= 0 || stride <= 0) throw Error(EVJ_ERR_INVALID_ARGUMENT, "window size and stride must be > 0");
}

std::optional<Window> WindowBuffer::push(int64_t k, double t, const cv::Mat& frame) {
  if (!frames_.empty() && k != frames_.back().k + 1) {
    frames_.clear();
    due_ = num_frames_;
  }
  frames_.push_back({k, t, frame});
  if (int(frames_.size()) > num_frames_) frames_.pop_front();
  if (--due_ > 0) return std::nullopt;
  due_ = stride_;
  Window w;
  w.index = count_++;
  w.start = frames_.front().t;
  w.end = w.start + double(num_frames_) / fps_;
  for (const Slot& s : frames_) w.frames.push_back(s.frame);
  return w;
}

}  // namespace evj
