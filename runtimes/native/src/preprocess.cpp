#include "preprocess.h"

#include <cmath>
#include <cstring>

#include <opencv2/imgproc.hpp>

#include "error.h"
#include "tokenizer.h"

namespace evj {
namespace {

[[noreturn]] void bad_frame(const std::string& why) { throw Error(EVJ_ERR_INVALID_ARGUMENT, "bad frame: " + why); }

int natural_pixel_stride(int format, int plane) {
  switch (format) {
    case EVJ_FORMAT_RGB: case EVJ_FORMAT_BGR: return 3;
    case EVJ_FORMAT_RGBA: case EVJ_FORMAT_BGRA: return 4;
    case EVJ_FORMAT_NV21: return plane == 0 ? 1 : 2;
    default: return 1;
  }
}

// Plane `i` of `frame` covers rows x cols samples: check its strides and size.
void check_plane(const evj_frame& f, int i, int rows, int cols, int sample_bytes, int* row_stride, int* pixel_stride) {
  if (!f.planes[i]) bad_frame("plane " + std::to_string(i) + " is NULL");
  int ps = f.pixel_stride[i] ? f.pixel_stride[i] : natural_pixel_stride(f.format, i);
  if (ps < sample_bytes || ps > 64) bad_frame("plane " + std::to_string(i) + " has pixel stride " + std::to_string(ps));
  int64_t min_row = int64_t(cols - 1) * ps + sample_bytes;
  int64_t rs = f.row_stride[i] ? f.row_stride[i] : min_row;
  if (rs < min_row) bad_frame("plane " + std::to_string(i) + " has row stride " + std::to_string(rs) + " < " + std::to_string(min_row) + " bytes a row needs");
  uint64_t need = uint64_t(rs) * uint64_t(rows - 1) + uint64_t(min_row);
  if (f.plane_size[i] < need)
    bad_frame("plane " + std::to_string(i) + " has " + std::to_string(f.plane_size[i]) + " bytes, a " + std::to_string(f.width) +
              "x" + std::to_string(f.height) + " frame with these strides needs " + std::to_string(need));
  *row_stride = int(rs);
  *pixel_stride = ps;
}

}  // namespace

void validate_frame(const evj_frame& f) {
  if (f.width <= 0 || f.height <= 0 || f.width > 16384 || f.height > 16384)
    bad_frame("size " + std::to_string(f.width) + "x" + std::to_string(f.height) + " (each side must be 1..16384)");
  if (!std::isfinite(f.timestamp_s)) bad_frame("timestamp is not finite");
  int rs, ps;
  switch (f.format) {
    case EVJ_FORMAT_RGB: case EVJ_FORMAT_BGR:
      check_plane(f, 0, f.height, f.width, 3, &rs, &ps);
      break;
    case EVJ_FORMAT_RGBA: case EVJ_FORMAT_BGRA:
      check_plane(f, 0, f.height, f.width, 4, &rs, &ps);
      break;
    case EVJ_FORMAT_NV21:
      if (f.width % 2 || f.height % 2) bad_frame("NV21 needs an even width and height");
      check_plane(f, 0, f.height, f.width, 1, &rs, &ps);
      check_plane(f, 1, f.height / 2, f.width / 2, 2, &rs, &ps);
      break;
    case EVJ_FORMAT_YUV_420_888:
      if (f.width % 2 || f.height % 2) bad_frame("YUV_420_888 needs an even width and height");
      for (int i = 0; i < 3; ++i) check_plane(f, i, i ? f.height / 2 : f.height, i ? f.width / 2 : f.width, 1, &rs, &ps);
      break;
    default:
      bad_frame("unknown pixel format " + std::to_string(f.format));
  }
}

cv::Mat frame_to_rgb(const evj_frame& f) {
  validate_frame(f);
  const int w = f.width, h = f.height;
  cv::Mat rgb;
  int rs[3] = {0, 0, 0}, ps[3] = {0, 0, 0};
  auto packed = [&](int type, int code) {
    check_plane(f, 0, h, w, CV_ELEM_SIZE(type), &rs[0], &ps[0]);
    cv::Mat view(h, w, type, const_cast<uint8_t*>(f.planes[0]), size_t(rs[0]));
    if (code < 0) view.copyTo(rgb); else cv::cvtColor(view, rgb, code);
  };
  switch (f.format) {
    case EVJ_FORMAT_RGB: packed(CV_8UC3, -1); break;
    case EVJ_FORMAT_BGR: packed(CV_8UC3, cv::COLOR_BGR2RGB); break;
    case EVJ_FORMAT_RGBA: packed(CV_8UC4, cv::COLOR_RGBA2RGB); break;
    case EVJ_FORMAT_BGRA: packed(CV_8UC4, cv::COLOR_BGRA2RGB); break;
    case EVJ_FORMAT_NV21: case EVJ_FORMAT_YUV_420_888: {
      // gather into a contiguous I420 (Y, then U, then V) or NV21 buffer, then one cvtColor
      const int cw = w / 2, ch = h / 2;
      cv::Mat yuv(h + ch, w, CV_8UC1);
      uint8_t* dst = yuv.data;
      check_plane(f, 0, h, w, 1, &rs[0], &ps[0]);
      for (int y = 0; y < h; ++y) std::memcpy(dst + size_t(y) * w, f.planes[0] + size_t(y) * rs[0], size_t(w));
      dst += size_t(w) * h;
      if (f.format == EVJ_FORMAT_NV21) {
        check_plane(f, 1, ch, cw, 2, &rs[1], &ps[1]);
        for (int y = 0; y < ch; ++y) std::memcpy(dst + size_t(y) * w, f.planes[1] + size_t(y) * rs[1], size_t(w));
        cv::cvtColor(yuv, rgb, cv::COLOR_YUV2RGB_NV21);
      } else {
        for (int i = 1; i <= 2; ++i) {
          check_plane(f, i, ch, cw, 1, &rs[i], &ps[i]);
          for (int y = 0; y < ch; ++y) {
            const uint8_t* src = f.planes[i] + size_t(y) * rs[i];
            for (int x = 0; x < cw; ++x) *dst++ = src[size_t(x) * ps[i]];
          }
        }
        cv::cvtColor(yuv, rgb, cv::COLOR_YUV2RGB_I420);
      }
      break;
    }
    default:
      bad_frame("unknown pixel format " + std::to_string(f.format));
  }
  return rgb;
}

cv::Mat prepare_frame(const cv::Mat& rgb, int img_size) {
  if (rgb.empty() || rgb.type() != CV_8UC3) throw Error(EVJ_ERR_INVALID_ARGUMENT, "expected an RGB uint8 frame");
  const int h = rgb.rows, w = rgb.cols;
  double scale = double(img_size) / double(std::min(h, w));
  // Python's round(): half to even, as std::nearbyint in the default rounding mode
  int new_h = std::max(img_size, int(std::nearbyint(h * scale)));
  int new_w = std::max(img_size, int(std::nearbyint(w * scale)));
  cv::Mat resized;
  cv::resize(rgb, resized, cv::Size(new_w, new_h), 0, 0, scale < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
  int top = (new_h - img_size) / 2, left = (new_w - img_size) / 2;
  return resized(cv::Rect(left, top, img_size, img_size)).clone();
}

void to_video_tensor(const std::vector<cv::Mat>& frames, const PreprocessSpec& spec, std::vector<float>& out) {
  const int T = int(frames.size()), S = spec.img_size;
  out.resize(size_t(3) * T * S * S);
  const size_t plane = size_t(S) * S;
  for (int t = 0; t < T; ++t) {
    const cv::Mat& f = frames[size_t(t)];
    if (f.rows != S || f.cols != S || f.type() != CV_8UC3) throw Error(EVJ_ERR_INTERNAL, "to_video_tensor: a frame is not SxSx3");
    for (int y = 0; y < S; ++y) {
      const uint8_t* row = f.ptr<uint8_t>(y);
      for (int x = 0; x < S; ++x)
        for (int c = 0; c < 3; ++c) {
          float v = float(row[3 * x + c]) / 255.0f;  // float32 ops in numpy's order: bit-identical
          out[(size_t(c) * T + size_t(t)) * plane + size_t(y) * S + size_t(x)] = (v - spec.mean[c]) / spec.std[c];
        }
    }
  }
}

TextEncoder::TextEncoder(const std::string& path, int max_len)
    : tokenizer_(new Tokenizer(Tokenizer::from_file(path))), max_len_(max_len), pad_id_(tokenizer_->pad_id()) {}
TextEncoder::~TextEncoder() = default;
TextEncoder::TextEncoder(TextEncoder&&) noexcept = default;
TextEncoder& TextEncoder::operator=(TextEncoder&&) noexcept = default;

void TextEncoder::encode(const std::string& text, const std::string& what, std::vector<int64_t>& ids,
                         std::vector<int64_t>& mask) const {
  std::vector<int64_t> tokens = tokenizer_->encode(text);
  if (int64_t(tokens.size()) > max_len_) {
    // Python: text[:40] (code points) + "..." when longer
    std::string head;
    size_t cps = 0, i = 0;
    for (; i < text.size() && cps < 40; ++cps) {
      unsigned char c = static_cast<unsigned char>(text[i]);
      size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
      head += text.substr(i, len);
      i += len;
    }
    throw Error(EVJ_ERR_TEXT, "the " + what + " '" + head + (i < text.size() ? "..." : "") + "' has " +
                                  std::to_string(tokens.size()) + " tokens; this model accepts at most " + std::to_string(max_len_));
  }
  ids.assign(size_t(max_len_), pad_id_);
  mask.assign(size_t(max_len_), 0);
  for (size_t i = 0; i < tokens.size(); ++i) {
    ids[i] = tokens[i];
    mask[i] = 1;
  }
}

std::string TextEncoder::decode(const std::vector<int64_t>& ids) const { return tokenizer_->decode(ids); }

}  // namespace evj
