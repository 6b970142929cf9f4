// Frames of a video file or a camera for vljepa-stream, decoded with FFmpeg's libraries (libavformat,
// libavcodec, libswscale) directly. Why not OpenCV's VideoCapture: Debian's OpenCV video I/O links about
// 250 shared libraries (GStreamer, GTK, ...) that cost the process tens of MB of resident memory before
// the first frame; FFmpeg's own libraries are the decoder OpenCV uses underneath, at about half the cost.
//
// The frames equal opencv-python's VideoCapture (what the Python loop decodes with): the same conversion
// (BGR24, bicubic), the same timestamps (the frame's pts from the stream's start), frame rate, frame count
// and display-matrix rotation; decoders run bit-exact, so FFmpeg builds whose SIMD IDCTs differ (Debian's
// 5.1 and opencv-python's 8.0 on XVID) give the same pixels.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

struct VideoFrame {  // a view of the source's buffer, valid until its next read
  int width = 0, height = 0, stride = 0;  // stride: bytes per row of bgr
  double t = 0;                           // presentation time in seconds from the stream's start
  const uint8_t* bgr = nullptr;           // height rows of stride bytes, width * 3 of them used
};

class VideoSource {
 public:
  // Both throw std::runtime_error with one line naming the file (or camera) and what is wrong.
  static std::unique_ptr<VideoSource> open_file(const std::string& path);
  static std::unique_ptr<VideoSource> open_camera(int index);  // V4L2 through libavdevice, loaded on use
  ~VideoSource();

  // The next frame; false at the end of the stream or where it broke (compare frames read to frame_count).
  bool read(VideoFrame& frame);

  int width = 0, height = 0;  // after rotation
  double fps = 0;
  int64_t frame_count = 0;    // from the header (0 when unknown), as OpenCV's CAP_PROP_FRAME_COUNT

  struct Impl;  // FFmpeg's state, in video_source.cpp
  explicit VideoSource(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};
