// libFuzzer target: the manifest parser (artifact.cpp parse_manifest) on arbitrary bytes.
// Build: cmake -DEVJ_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang; run: ./fuzz_manifest -max_total_time=60
#include <cstddef>
#include <cstdint>
#include <string>

#include "artifact.h"
#include "error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    evj::parse_manifest("/nonexistent", std::string(reinterpret_cast<const char*>(data), size), "1.5.1");
  } catch (const evj::Error&) {
  }
  return 0;
}
