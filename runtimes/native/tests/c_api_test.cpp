// The C API on a real artifact (EVJ_TEST_ARTIFACT: an exported tiny executorch artifact directory; the
// pytest run sets it). Bad input of every kind must give an error code and one line, never a crash.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "edge_vljepa.h"
#include "sha256.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string artifact() {
  const char* a = std::getenv("EVJ_TEST_ARTIFACT");
  return a ? a : "";
}

#define NEED_ARTIFACT()                                                          \
  if (artifact().empty()) GTEST_SKIP() << "EVJ_TEST_ARTIFACT is not set";

bool one_line(const char* s) { return s && *s && std::strchr(s, '\n') == nullptr; }

// A copy of the artifact in a fresh temp dir, modified by `edit(dir, manifest)`; the manifest is rewritten.
std::string modified(const std::string& name, const std::function<void(const fs::path&, json&)>& edit) {
  fs::path dir = fs::temp_directory_path() / ("evj_c_api_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::copy(artifact(), dir, fs::copy_options::recursive);
  std::ifstream in(dir / "manifest.json");
  json m = json::parse(in);
  in.close();
  edit(dir, m);
  if (!m.is_null()) std::ofstream(dir / "manifest.json") << m.dump(1);
  return dir.string();
}

void rehash(const fs::path& dir, json& m, const std::string& file) {
  m["files"][file]["sha256"] = evj::sha256_file((dir / file).string());
}

evj_status open_status(const std::string& dir, std::string* message = nullptr) {
  evj_session* s = reinterpret_cast<evj_session*>(0x1);
  evj_status st = evj_open(dir.c_str(), nullptr, &s);
  if (st == EVJ_OK) {
    evj_close(s);
  } else {
    EXPECT_EQ(s, nullptr);
    EXPECT_TRUE(one_line(evj_last_error())) << evj_last_error();
  }
  if (message) *message = evj_last_error();
  return st;
}

evj_frame rgb(const std::vector<uint8_t>& buf, int w, int h, double t) {
  evj_frame f{};
  f.format = EVJ_FORMAT_RGB;
  f.width = w;
  f.height = h;
  f.timestamp_s = t;
  f.planes[0] = buf.data();
  f.row_stride[0] = w * 3;
  f.pixel_stride[0] = 3;
  f.plane_size[0] = buf.size();
  return f;
}

}  // namespace

TEST(CApi, OpensRunsAndSelfTests) {
  NEED_ARTIFACT();
  evj_session* s = nullptr;
  ASSERT_EQ(evj_open(artifact().c_str(), nullptr, &s), EVJ_OK) << evj_last_error();
  const char* report = nullptr;
  EXPECT_EQ(evj_self_test(s, &report), EVJ_OK) << evj_last_error();
  EXPECT_TRUE(json::parse(report)["passed"].get<bool>());
  ASSERT_EQ(evj_set_policy(s, "uniform", "{\"every_s\": 1.0}"), EVJ_OK);
  std::vector<uint8_t> buf(48 * 40 * 3, 128);
  for (int i = 0; i < 24; ++i) {
    evj_frame f = rgb(buf, 48, 40, i / 8.0);
    ASSERT_EQ(evj_process_frame(s, &f), EVJ_OK) << evj_last_error();
  }
  ASSERT_EQ(evj_finish(s, nullptr), EVJ_OK);
  int n = 0;
  const char* line = nullptr;
  while (evj_next_event(s, &line) == EVJ_OK && line) {
    json e = json::parse(line);
    std::vector<std::string> keys;
    for (auto& [k, v] : e.items()) keys.push_back(k);
    EXPECT_EQ(e.size(), 9u);
    for (const char* k : {"time", "window", "start", "end", "topk", "decode", "text", "span", "ms"}) EXPECT_TRUE(e.contains(k)) << k;
    ++n;
  }
  EXPECT_EQ(n, 5);  // 24 frames at 8 fps -> 12 model frames at 4 fps; windows of 4 every 2: at k = 3, 5, 7, 9, 11
  const char* summary = nullptr;
  ASSERT_EQ(evj_summary_text(s, &summary), EVJ_OK);
  EXPECT_NE(std::string(summary).find("windows      "), std::string::npos);
  const float* emb = nullptr;
  size_t dim = 0;
  EXPECT_EQ(evj_last_embedding(s, &emb, &dim), EVJ_OK);
  EXPECT_GT(dim, 0u);
  EXPECT_EQ(evj_close(s), EVJ_OK);
}

TEST(CApi, NullPointersAndClosedSessionsAreErrorsNotCrashes) {
  NEED_ARTIFACT();
  EXPECT_EQ(evj_open(nullptr, nullptr, nullptr), EVJ_ERR_INVALID_ARGUMENT);
  evj_session* s = nullptr;
  EXPECT_EQ(evj_open(nullptr, nullptr, &s), EVJ_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(one_line(evj_last_error()));
  EXPECT_EQ(evj_set_query(nullptr, "x"), EVJ_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(evj_process_frame(nullptr, nullptr), EVJ_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(evj_close(nullptr), EVJ_ERR_INVALID_ARGUMENT);
  ASSERT_EQ(evj_open(artifact().c_str(), nullptr, &s), EVJ_OK);
  EXPECT_EQ(evj_set_query(s, nullptr), EVJ_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(evj_process_frame(s, nullptr), EVJ_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(evj_set_labels(s, nullptr, 2), EVJ_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(evj_summary_text(s, nullptr), EVJ_ERR_INVALID_ARGUMENT);
  const char* text = nullptr;
  EXPECT_EQ(evj_summary_text(s, &text), EVJ_ERR_STATE);  // nothing finished yet
  EXPECT_EQ(evj_close(s), EVJ_OK);
  EXPECT_EQ(evj_close(s), EVJ_OK);
  EXPECT_EQ(evj_set_query(s, "x"), EVJ_ERR_CLOSED);
  std::vector<uint8_t> buf(16 * 16 * 3);
  evj_frame f = rgb(buf, 16, 16, 0);
  EXPECT_EQ(evj_process_frame(s, &f), EVJ_ERR_CLOSED);
  EXPECT_EQ(evj_push_frame(s, &f), EVJ_ERR_CLOSED);
  EXPECT_EQ(evj_finish(s, nullptr), EVJ_ERR_CLOSED);
  EXPECT_EQ(evj_dropped_frames(s), -1);
  EXPECT_TRUE(one_line(evj_last_error()));
  EXPECT_EQ(evj_set_query(reinterpret_cast<evj_session*>(&buf), "x"), EVJ_ERR_INVALID_ARGUMENT);  // not a handle
}

TEST(CApi, BadSettingsAndFrames) {
  NEED_ARTIFACT();
  evj_session* s = nullptr;
  ASSERT_EQ(evj_open(artifact().c_str(), nullptr, &s), EVJ_OK);
  std::string longq;
  for (int i = 0; i < 200; ++i) longq += "what ";
  EXPECT_EQ(evj_set_query(s, longq.c_str()), EVJ_ERR_TEXT);
  EXPECT_NE(std::string(evj_last_error()).find("this model accepts at most"), std::string::npos) << evj_last_error();
  const char* empty[] = {""};
  EXPECT_EQ(evj_set_labels(s, empty, 1), EVJ_ERR_TEXT);
  const char* dup[] = {"a cat", "a cat"};
  EXPECT_EQ(evj_set_labels(s, dup, 2), EVJ_ERR_TEXT);
  EXPECT_EQ(evj_set_top_k(s, 0), EVJ_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(evj_set_stride(s, 0), EVJ_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(evj_set_policy(s, "bogus", nullptr), EVJ_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(evj_set_policy(s, "online", "{\"threshold\": 5}"), EVJ_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(evj_set_policy(s, "online", "not json"), EVJ_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(evj_set_policy(s, "offline_segments", "{}"), EVJ_ERR_INVALID_ARGUMENT);
  const char* labels[] = {"a red circle", "a blue square"};
  EXPECT_EQ(evj_set_labels(s, labels, 2), EVJ_OK) << evj_last_error();
  std::vector<uint8_t> buf(16 * 16 * 3);
  evj_frame f = rgb(buf, 16, 16, 0);
  f.plane_size[0] = 10;
  EXPECT_EQ(evj_process_frame(s, &f), EVJ_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(one_line(evj_last_error()));
  f = rgb(buf, 16, 16, 0);
  f.format = 42;
  EXPECT_EQ(evj_push_frame(s, &f), EVJ_ERR_INVALID_ARGUMENT);
  f = rgb(buf, 16, 16, 0);
  EXPECT_EQ(evj_process_frame(s, &f), EVJ_OK);
  EXPECT_EQ(evj_set_query(s, "x"), EVJ_ERR_STATE);  // during a stream
  EXPECT_EQ(evj_finish(s, nullptr), EVJ_OK);
  EXPECT_EQ(evj_set_query(s, "what is happening?"), EVJ_OK);
  evj_close(s);
}

TEST(CApi, KeepNewestSlotCountsDrops) {
  NEED_ARTIFACT();
  evj_session* s = nullptr;
  ASSERT_EQ(evj_open(artifact().c_str(), nullptr, &s), EVJ_OK);
  std::vector<uint8_t> buf(16 * 16 * 3, 7);
  for (int i = 0; i < 5; ++i) {
    evj_frame f = rgb(buf, 16, 16, i * 0.25);
    ASSERT_EQ(evj_push_frame(s, &f), EVJ_OK);
  }
  EXPECT_EQ(evj_dropped_frames(s), 4);
  int32_t processed = 0;
  EXPECT_EQ(evj_process_pending(s, 0, &processed), EVJ_OK);
  EXPECT_EQ(processed, 1);
  EXPECT_EQ(evj_process_pending(s, 10, &processed), EVJ_OK);
  EXPECT_EQ(processed, 0);
  ASSERT_EQ(evj_finish(s, nullptr), EVJ_OK);
  const char* js = nullptr;
  ASSERT_EQ(evj_summary_json(s, &js), EVJ_OK);
  json j = json::parse(js);
  EXPECT_EQ(j["dropped_frames"], 4);
  EXPECT_EQ(j["source_frames"], 1);
  evj_close(s);
}

TEST(CApi, BadArtifactsAreRefusedWithOneLine) {
  NEED_ARTIFACT();
  std::string msg;
  EXPECT_EQ(open_status("/nonexistent/dir", &msg), EVJ_ERR_ARTIFACT);
  EXPECT_EQ(open_status(artifact(), &msg), EVJ_OK);
  EXPECT_EQ(open_status(modified("tampered", [](const fs::path& d, json&) {
              std::ofstream(d / "predictor.pte", std::ios::app) << "x";
            }), &msg), EVJ_ERR_ARTIFACT);
  EXPECT_NE(msg.find("sha256"), std::string::npos) << msg;
  EXPECT_EQ(open_status(modified("truncated", [](const fs::path& d, json& m) {
              fs::resize_file(d / "x_encoder.pte", 1000);
              rehash(d, m, "x_encoder.pte");
            }), &msg), EVJ_ERR_BACKEND);
  EXPECT_EQ(open_status(modified("notjson", [](const fs::path& d, json& m) {
              std::ofstream(d / "manifest.json") << "{ not json";
              m = nullptr;
            }), &msg), EVJ_ERR_ARTIFACT);
  EXPECT_NE(msg.find("not JSON"), std::string::npos) << msg;
  EXPECT_EQ(open_status(modified("nokeys", [](const fs::path&, json& m) { m.erase("preprocessing"); }), &msg), EVJ_ERR_ARTIFACT);
  EXPECT_EQ(open_status(modified("missing", [](const fs::path& d, json&) { fs::remove(d / "y_decoder.pte"); }), &msg), EVJ_ERR_ARTIFACT);
  EXPECT_NE(msg.find("missing"), std::string::npos) << msg;
  EXPECT_EQ(open_status(modified("version", [](const fs::path&, json& m) { m["tools"]["executorch"] = "0.7.0"; }), &msg), EVJ_ERR_VERSION);
  EXPECT_NE(msg.find("0.7.0"), std::string::npos) << msg;
  EXPECT_EQ(open_status(modified("format", [](const fs::path&, json& m) { m["format_version"] = 99; }), &msg), EVJ_ERR_ARTIFACT);
  EXPECT_EQ(open_status(modified("contract", [](const fs::path&, json& m) {
              m["contract"]["methods"]["predictor"]["outputs"][0]["shape"][1] = 7;
            }), &msg), EVJ_ERR_CONTRACT);
  // another model's contract, consistently hashed: the programs' method_meta do not match it
  EXPECT_EQ(open_status(modified("other_model", [](const fs::path&, json& m) {
              m["contract"]["methods"]["x_encoder"]["outputs"][0]["shape"][1] = 7;
              m["contract"]["methods"]["predictor"]["inputs"][0]["shape"][1] = 7;
              m["contract_hash"] = evj::sha256_hex(m["contract"].dump(-1, ' ', true));
            }), &msg), EVJ_OK);  // opens (loading is lazy per method) ...
  evj_session* s = nullptr;
  std::string other = modified("other_model2", [](const fs::path&, json& m) {
    m["contract"]["methods"]["x_encoder"]["outputs"][0]["shape"][1] = 7;
    m["contract"]["methods"]["predictor"]["inputs"][0]["shape"][1] = 7;
    m["contract_hash"] = evj::sha256_hex(m["contract"].dump(-1, ' ', true));
  });
  ASSERT_EQ(evj_open(other.c_str(), nullptr, &s), EVJ_OK);
  const char* report = nullptr;
  EXPECT_EQ(evj_self_test(s, &report), EVJ_ERR_CONTRACT);  // ... and is refused at the first call
  EXPECT_TRUE(one_line(evj_last_error()));
  evj_close(s);
  // an expected contract hash that differs
  s = nullptr;
  EXPECT_EQ(evj_open(artifact().c_str(), "0000000000000000", &s), EVJ_ERR_CONTRACT);
  EXPECT_EQ(s, nullptr);
}
