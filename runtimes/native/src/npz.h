// Reading .npz files (numpy's savez: a zip of .npy arrays) for golden.npz and label_bank.npz.
// Hand-written: a zip central-directory reader (stored entries, deflated ones through zlib, zip64 sizes)
// and an .npy header parser for the dtypes the artifacts use (<f4, <i8, <i4, <U{n}); both parse untrusted
// bytes, never read out of bounds, and have a fuzz target (tests/fuzz/fuzz_npz.cpp).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace evj {

struct NpyArray {
  std::string dtype;           // "f4", "i8", "i4", "U" (UTF-32 little-endian fixed width)
  size_t item_size = 0;        // bytes per element
  std::vector<int64_t> shape;  // C order
  std::vector<uint8_t> data;   // little-endian element bytes

  size_t numel() const;
  std::vector<float> as_float() const;      // f4 (throws otherwise)
  std::vector<int64_t> as_int64() const;    // i8 or i4
  std::vector<std::string> as_strings() const;  // U -> UTF-8
};

// Parse one .npy file's bytes; `what` names it in errors. Throws evj::Error.
NpyArray parse_npy(const uint8_t* data, size_t size, const std::string& what);
// All arrays of an .npz file in memory, keyed by name without ".npy". Throws evj::Error.
std::map<std::string, NpyArray> parse_npz(const uint8_t* data, size_t size, const std::string& what);
std::map<std::string, NpyArray> load_npz(const std::string& path);

std::string read_file(const std::string& path);  // throws evj::Error(EVJ_ERR_IO)

}  // namespace evj
