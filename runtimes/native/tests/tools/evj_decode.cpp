// evj_decode VIDEO OUT.bgr
//
// Decodes VIDEO as vljepa-stream does (cli/video_source.cpp) and writes its frames, BGR rows without
// padding, one after another to OUT.bgr; prints {"width", "height", "fps", "frame_count", "times"} as JSON.
// tests/test_native.py compares them with opencv-python's VideoCapture, pixel for pixel.
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "video_source.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: evj_decode VIDEO OUT.bgr\n";
    return 2;
  }
  try {
    auto source = VideoSource::open_file(argv[1]);
    std::ofstream out(argv[2], std::ios::binary | std::ios::trunc);
    nlohmann::json info = {{"width", source->width}, {"height", source->height}, {"fps", source->fps},
                           {"frame_count", source->frame_count}, {"times", nlohmann::json::array()}};
    VideoFrame frame;
    while (source->read(frame)) {
      for (int y = 0; y < frame.height; ++y)
        out.write(reinterpret_cast<const char*>(frame.bgr + size_t(y) * size_t(frame.stride)), std::streamsize(frame.width) * 3);
      info["times"].push_back(frame.t);
    }
    if (!out) throw std::runtime_error(std::string("cannot write ") + argv[2]);
    std::cout << info.dump() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
