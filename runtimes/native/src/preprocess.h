// Preprocessing (Python: edge_vljepa/preprocess.py): camera/file frames of any format and size -> RGB,
// short-side resize (INTER_AREA when shrinking, INTER_LINEAR otherwise) + centre crop -> (S, S, 3) uint8;
// T frames -> normalised (1, 3, T, S, S) float32; texts -> ids + mask padded to the contract length.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "artifact.h"
#include "edge_vljepa.h"

namespace evj {

class Tokenizer;

// Check an evj_frame (format, size, strides, plane sizes) without reading pixels; throws
// evj::Error(EVJ_ERR_INVALID_ARGUMENT) naming the problem.
void validate_frame(const evj_frame& frame);
// An evj_frame (validated) -> a new RGB uint8 (H, W, 3) image (copies; the frame's planes may go away).
cv::Mat frame_to_rgb(const evj_frame& frame);
// RGB (H, W, 3) of any size -> (S, S, 3): short-side resize + centre crop (Python prepare_frame).
cv::Mat prepare_frame(const cv::Mat& rgb, int img_size);
// T prepared frames -> (1, 3, T, S, S) float32, normalised with the spec's mean and std.
void to_video_tensor(const std::vector<cv::Mat>& frames, const PreprocessSpec& spec, std::vector<float>& out);

// A tokenizer.json at a fixed length (Python TextTokenizer): encode -> ids and mask of max_len.
class TextEncoder {
 public:
  TextEncoder(const std::string& tokenizer_json_path, int max_len);
  ~TextEncoder();
  TextEncoder(TextEncoder&&) noexcept;
  TextEncoder& operator=(TextEncoder&&) noexcept;
  // Throws evj::Error(EVJ_ERR_TEXT) when the text has more than max_len tokens ("the query '...' has N
  // tokens; this model accepts at most M").
  void encode(const std::string& text, const std::string& what, std::vector<int64_t>& ids,
              std::vector<int64_t>& mask) const;
  std::string decode(const std::vector<int64_t>& ids) const;
  int max_len() const { return max_len_; }

 private:
  std::unique_ptr<Tokenizer> tokenizer_;
  int max_len_;
  int64_t pad_id_;
};

}  // namespace evj
