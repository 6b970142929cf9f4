// SHA-256 (FIPS 180-4), for the manifest's per-file hashes and the contract hash. Hand-written (~80 lines)
// because the targets share no crypto library (OpenSSL is not on Android/iOS by default); checked against
// Python's hashlib in tests/sha256_test.cpp and tests/test_native.py.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace evj {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  std::string hexdigest();  // finalises; call once

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

std::string sha256_hex(const std::string& data);
std::string sha256_file(const std::string& path);  // throws evj::Error (EVJ_ERR_IO)

}  // namespace evj
