#include "npz.h"

#include <zlib.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "error.h"

namespace evj {
namespace {

uint16_t rd16(const uint8_t* p) { return uint16_t(p[0] | p[1] << 8); }
uint32_t rd32(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }
uint64_t rd64(const uint8_t* p) { return uint64_t(rd32(p)) | uint64_t(rd32(p + 4)) << 32; }

[[noreturn]] void bad(const std::string& what, const std::string& why) {
  throw Error(EVJ_ERR_ARTIFACT, what + " is not a valid .npz/.npy file (" + why + ")");
}

void append_utf8(std::string& out, uint32_t c) {
  if (c < 0x80) {
    out += char(c);
  } else if (c < 0x800) {
    out += char(0xC0 | (c >> 6)); out += char(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += char(0xE0 | (c >> 12)); out += char(0x80 | ((c >> 6) & 0x3F)); out += char(0x80 | (c & 0x3F));
  } else {
    out += char(0xF0 | (c >> 18)); out += char(0x80 | ((c >> 12) & 0x3F));
    out += char(0x80 | ((c >> 6) & 0x3F)); out += char(0x80 | (c & 0x3F));
  }
}

// The value of key `key` in the .npy header dict literal, e.g. "'<f4'", "False", "(1, 3)".
std::string header_value(const std::string& header, const std::string& key, const std::string& what) {
  size_t k = header.find("'" + key + "'");
  if (k == std::string::npos) bad(what, "header has no '" + key + "'");
  size_t colon = header.find(':', k);
  if (colon == std::string::npos) bad(what, "header is malformed");
  size_t start = header.find_first_not_of(' ', colon + 1);
  if (start == std::string::npos) bad(what, "header is malformed");
  size_t end;
  if (header[start] == '(') {
    end = header.find(')', start);
    if (end == std::string::npos) bad(what, "header is malformed");
    ++end;
  } else if (header[start] == '\'') {
    end = header.find('\'', start + 1);
    if (end == std::string::npos) bad(what, "header is malformed");
    ++end;
  } else {
    end = header.find_first_of(",}", start);
    if (end == std::string::npos) bad(what, "header is malformed");
  }
  return header.substr(start, end - start);
}

}  // namespace

size_t NpyArray::numel() const {
  size_t n = 1;
  for (int64_t d : shape) n *= size_t(d);
  return n;
}

std::vector<float> NpyArray::as_float() const {
  if (dtype != "f4") throw Error(EVJ_ERR_ARTIFACT, "expected a float32 array, got dtype " + dtype);
  std::vector<float> out(numel());
  if (!out.empty()) std::memcpy(out.data(), data.data(), out.size() * 4);
  return out;
}

std::vector<int64_t> NpyArray::as_int64() const {
  std::vector<int64_t> out(numel());
  if (dtype == "i8") {
    if (!out.empty()) std::memcpy(out.data(), data.data(), out.size() * 8);
  } else if (dtype == "i4") {
    for (size_t i = 0; i < out.size(); ++i) out[i] = int32_t(rd32(data.data() + 4 * i));
  } else {
    throw Error(EVJ_ERR_ARTIFACT, "expected an integer array, got dtype " + dtype);
  }
  return out;
}

std::vector<std::string> NpyArray::as_strings() const {
  if (dtype != "U") throw Error(EVJ_ERR_ARTIFACT, "expected a unicode string array, got dtype " + dtype);
  std::vector<std::string> out;
  size_t chars = item_size / 4;
  for (size_t i = 0; i < numel(); ++i) {
    std::string s;
    for (size_t j = 0; j < chars; ++j) {
      uint32_t c = rd32(data.data() + i * item_size + 4 * j);
      if (c == 0) break;
      if (c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) throw Error(EVJ_ERR_ARTIFACT, "invalid code point in a string array");
      append_utf8(s, c);
    }
    out.push_back(std::move(s));
  }
  return out;
}

NpyArray parse_npy(const uint8_t* data, size_t size, const std::string& what) {
  if (size < 10 || std::memcmp(data, "\x93NUMPY", 6) != 0) bad(what, "no .npy magic");
  int major = data[6];
  size_t header_len, offset;
  if (major == 1) {
    header_len = rd16(data + 8); offset = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) bad(what, "truncated header");
    header_len = rd32(data + 8); offset = 12;
  } else {
    bad(what, "unsupported .npy version " + std::to_string(major));
  }
  if (header_len > size - offset) bad(what, "truncated header");
  std::string header(reinterpret_cast<const char*>(data + offset), header_len);
  offset += header_len;

  NpyArray a;
  std::string descr = header_value(header, "descr", what);
  if (descr.size() < 4 || descr.front() != '\'' || descr.back() != '\'') bad(what, "bad descr");
  descr = descr.substr(1, descr.size() - 2);
  if (descr == "<f4") { a.dtype = "f4"; a.item_size = 4; }
  else if (descr == "<i8") { a.dtype = "i8"; a.item_size = 8; }
  else if (descr == "<i4") { a.dtype = "i4"; a.item_size = 4; }
  else if (descr.size() > 2 && descr.compare(0, 2, "<U") == 0) {
    size_t chars = 0;
    for (size_t i = 2; i < descr.size(); ++i) {
      if (descr[i] < '0' || descr[i] > '9' || chars > 100000) bad(what, "bad descr " + descr);
      chars = chars * 10 + size_t(descr[i] - '0');
    }
    if (chars == 0) bad(what, "bad descr " + descr);
    a.dtype = "U"; a.item_size = 4 * chars;
  } else {
    bad(what, "unsupported dtype " + descr);
  }
  if (header_value(header, "fortran_order", what) != "False") bad(what, "Fortran order is not supported");
  std::string shape = header_value(header, "shape", what);
  if (shape.size() < 2 || shape.front() != '(') bad(what, "bad shape");
  size_t numel = 1;
  std::string num;
  for (size_t i = 1; i < shape.size(); ++i) {
    char c = shape[i];
    if (c >= '0' && c <= '9') {
      if (num.size() > 12) bad(what, "bad shape");
      num += c;
    } else if (c == ',' || c == ')') {
      if (!num.empty()) {
        int64_t d = std::stoll(num);
        a.shape.push_back(d);
        if (d > 0 && numel > (size_t(1) << 40) / size_t(d)) bad(what, "shape too large");
        numel *= size_t(d);
        num.clear();
      }
    } else if (c != ' ') {
      bad(what, "bad shape");
    }
  }
  if (a.shape.size() > 8) bad(what, "too many dimensions");
  if (numel > (size_t(1) << 40) / a.item_size) bad(what, "shape too large");
  size_t bytes = numel * a.item_size;
  if (size - offset < bytes) bad(what, "data truncated: " + std::to_string(size - offset) + " of " + std::to_string(bytes) + " bytes");
  a.data.assign(data + offset, data + offset + bytes);
  return a;
}

std::map<std::string, NpyArray> parse_npz(const uint8_t* data, size_t size, const std::string& what) {
  // end of central directory: the last "PK\5\6" record
  if (size < 22) bad(what, "too small for a zip file");
  size_t eocd = std::string::npos;
  size_t lowest = size > 22 + 65535 ? size - 22 - 65535 : 0;
  for (size_t i = size - 22 + 1; i-- > lowest;) {
    if (rd32(data + i) == 0x06054b50) { eocd = i; break; }
  }
  if (eocd == std::string::npos) bad(what, "no zip end-of-central-directory record");
  uint64_t entries = rd16(data + eocd + 10);
  uint64_t cd_offset = rd32(data + eocd + 16);
  if ((cd_offset == 0xFFFFFFFF || entries == 0xFFFF) && eocd >= 20 && rd32(data + eocd - 20) == 0x07064b50) {
    uint64_t z64 = rd64(data + eocd - 20 + 8);  // zip64 end-of-central-directory record
    if (z64 > size || size - z64 < 56 || rd32(data + z64) != 0x06064b50) bad(what, "bad zip64 record");
    entries = rd64(data + z64 + 32);
    cd_offset = rd64(data + z64 + 48);
  }
  if (entries > 100000) bad(what, "too many entries");
  std::map<std::string, NpyArray> out;
  uint64_t p = cd_offset;
  for (uint64_t e = 0; e < entries; ++e) {
    if (p > size || size - p < 46 || rd32(data + p) != 0x02014b50) bad(what, "bad central directory");
    uint16_t method = rd16(data + p + 10);
    uint64_t csize = rd32(data + p + 20), usize = rd32(data + p + 24);
    uint16_t name_len = rd16(data + p + 28), extra_len = rd16(data + p + 30), comment_len = rd16(data + p + 32);
    uint64_t local = rd32(data + p + 42);
    if (size - p - 46 < uint64_t(name_len) + extra_len + comment_len) bad(what, "bad central directory");
    std::string name(reinterpret_cast<const char*>(data + p + 46), name_len);
    // zip64 extended information: the 0xFFFFFFFF fields, in order usize, csize, local offset
    const uint8_t* x = data + p + 46 + name_len;
    for (size_t i = 0; i + 4 <= extra_len;) {
      uint16_t id = rd16(x + i), len = rd16(x + i + 2);
      if (i + 4 + len > extra_len) bad(what, "bad extra field");
      if (id == 0x0001) {
        size_t q = i + 4, end = i + 4 + len;
        if (usize == 0xFFFFFFFF) { if (q + 8 > end) bad(what, "bad zip64 field"); usize = rd64(x + q); q += 8; }
        if (csize == 0xFFFFFFFF) { if (q + 8 > end) bad(what, "bad zip64 field"); csize = rd64(x + q); q += 8; }
        if (local == 0xFFFFFFFF) { if (q + 8 > end) bad(what, "bad zip64 field"); local = rd64(x + q); q += 8; }
      }
      i += 4 + len;
    }
    p += 46 + uint64_t(name_len) + extra_len + comment_len;
    if (local > size || size - local < 30 || rd32(data + local) != 0x04034b50) bad(what, "bad local header of " + name);
    uint64_t start = local + 30 + uint64_t(rd16(data + local + 26)) + rd16(data + local + 28);
    if (start > size || size - start < csize) bad(what, name + " is truncated");
    const uint8_t* body = data + start;
    std::vector<uint8_t> inflated;
    if (method == 8) {
      if (usize > (uint64_t(1) << 32)) bad(what, name + " is too large");
      inflated.resize(size_t(usize));
      z_stream zs{};
      if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) bad(what, "zlib failed");
      zs.next_in = const_cast<Bytef*>(body);
      zs.avail_in = uInt(csize);
      zs.next_out = inflated.data();
      zs.avail_out = uInt(usize);
      int rc = inflate(&zs, Z_FINISH);
      inflateEnd(&zs);
      if (rc != Z_STREAM_END || zs.total_out != usize) bad(what, name + " does not inflate");
      body = inflated.data();
      csize = usize;
    } else if (method != 0) {
      bad(what, name + " uses zip compression method " + std::to_string(method));
    } else if (csize != usize) {
      bad(what, name + " has inconsistent sizes");
    }
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0) name.resize(name.size() - 4);
    out[name] = parse_npy(body, size_t(csize), what + ":" + name);
  }
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(EVJ_ERR_IO, "cannot read " + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::map<std::string, NpyArray> load_npz(const std::string& path) {
  std::string bytes = read_file(path);
  return parse_npz(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path);
}

}  // namespace evj
