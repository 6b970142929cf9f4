// evj_raw_stream ARTIFACT_DIR FRAMES.raw [THREADS] [LABELS_FILE]
//
// Streams raw RGB frames through the C API and prints the summary JSON: the native core in a process
// that holds nothing else (no video decoder), for the memory and overhead figures of
// `python -m experiments.bench native`. FRAMES.raw: a text line "WIDTH HEIGHT COUNT FPS\n", then COUNT
// frames of WIDTH * HEIGHT * 3 bytes (RGB), read one at a time.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "edge_vljepa.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: evj_raw_stream ARTIFACT_DIR FRAMES.raw [THREADS] [LABELS_FILE]\n";
    return 2;
  }
  std::ifstream in(argv[2], std::ios::binary);
  int width = 0, height = 0;
  long count = 0;
  double fps = 0;
  if (!(in >> width >> height >> count >> fps) || width <= 0 || height <= 0 || count < 0 || fps <= 0) {
    std::cerr << "error: " << argv[2] << " is not a raw frames file (WIDTH HEIGHT COUNT FPS header)\n";
    return 2;
  }
  in.get();  // the header's newline
  evj_session* s = nullptr;
  if (evj_open(argv[1], nullptr, &s) != EVJ_OK) {
    std::cerr << "error: " << evj_last_error() << "\n";
    return 2;
  }
  if (argc > 3 && evj_set_threads(s, std::stoi(argv[3])) != EVJ_OK) {
    std::cerr << "error: " << evj_last_error() << "\n";
    evj_close(s);
    return 2;
  }
  if (argc > 4) {
    std::ifstream lf(argv[4]);
    std::vector<std::string> labels;
    for (std::string line; std::getline(lf, line);)
      if (!line.empty()) labels.push_back(line);
    std::vector<const char*> ptrs;
    for (const auto& l : labels) ptrs.push_back(l.c_str());
    if (evj_set_labels(s, ptrs.data(), ptrs.size()) != EVJ_OK) {
      std::cerr << "error: " << evj_last_error() << "\n";
      evj_close(s);
      return 2;
    }
  }
  std::vector<uint8_t> rgb(size_t(width) * size_t(height) * 3);
  for (long i = 0; i < count; ++i) {
    if (!in.read(reinterpret_cast<char*>(rgb.data()), std::streamsize(rgb.size()))) break;
    evj_frame f = {EVJ_FORMAT_RGB, width, height, double(i) / fps, {rgb.data(), nullptr, nullptr},
                   {width * 3, 0, 0}, {3, 0, 0}, {rgb.size(), 0, 0}};
    if (evj_process_frame(s, &f) != EVJ_OK) {
      std::cerr << "error: " << evj_last_error() << "\n";
      evj_close(s);
      return 2;
    }
    const char* line = nullptr;
    while (evj_next_event(s, &line) == EVJ_OK && line != nullptr) {
    }
  }
  const char* summary = nullptr;
  if (evj_finish(s, nullptr) != EVJ_OK || evj_summary_json(s, &summary) != EVJ_OK) {
    std::cerr << "error: " << evj_last_error() << "\n";
    evj_close(s);
    return 2;
  }
  std::cout << summary << "\n";
  evj_close(s);
  return 0;
}
