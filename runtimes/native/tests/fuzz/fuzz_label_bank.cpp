// libFuzzer target: the label-bank / .npz / .npy parsers (npz.cpp, label_bank.cpp) on arbitrary bytes.
#include <cstddef>
#include <cstdint>

#include "error.h"
#include "label_bank.h"
#include "npz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    evj::LabelBank bank = evj::LabelBank::parse(data, size, "fuzz.npz");
    std::vector<float> e(bank.dim(), 1.0f);
    bank.topk(e, 3);
  } catch (const evj::Error&) {
  }
  try {
    evj::parse_npy(data, size, "fuzz.npy");
  } catch (const evj::Error&) {
  }
  return 0;
}
