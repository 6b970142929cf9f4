// A session: one artifact + settings + the current stream (the C API's evj_session, in C++).
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "artifact.h"
#include "backend.h"
#include "edge_vljepa.h"
#include "label_bank.h"
#include "loop.h"
#include "preprocess.h"
#include "skip.h"

namespace evj {

constexpr const char* kDefaultQuery = "what is happening?";  // edge_vljepa.config.CAPTION_QUERY
constexpr size_t kMaxQueuedEvents = 4096;

// A frame whose planes the core owns (the keep-newest slot of a live source).
struct OwnedFrame {
  evj_frame frame{};
  std::vector<uint8_t> planes[3];
  static OwnedFrame copy(const evj_frame& f);  // f validated
};

class Session {
 public:
  Session(const std::string& dir, const char* expected_contract_hash);
  ~Session();

  void set_query(const std::string& query);
  void set_labels(const std::vector<std::string>& labels);
  void set_top_k(int top_k);
  void set_policy(const char* name, const char* params_json);
  void set_stride(int stride);
  void set_skip(const char* params_json);
  void set_threads(int threads);
  void set_callback(evj_event_callback cb, void* user);
  const char* next_event();  // nullptr when none

  void process_frame(const evj_frame& frame);
  void push_frame(const evj_frame& frame);       // any thread
  bool process_pending(int timeout_ms, const std::atomic<bool>& closing);
  int64_t dropped() const { return dropped_.load(); }
  void finish(const char* source_error);
  const std::string& summary_text() const;
  const std::string& summary_json() const;
  std::string info_json() const;
  bool self_test(std::string& report);
  const std::vector<float>& last_embedding() const { return last_embedding_; }
  void wake() { slot_cv_.notify_all(); }

 private:
  void require_idle(const char* what) const;
  void start_stream();
  void on_event(const Event& e);

  Artifact artifact_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<TextEncoder> query_tok_, decoder_tok_, label_tok_;
  LabelBank artifact_bank_, custom_bank_;
  bool has_artifact_bank_ = false, use_custom_bank_ = false;
  std::string query_ = kDefaultQuery;
  std::vector<int64_t> query_ids_, query_mask_;
  int top_k_ = 3, stride_ = 2, threads_ = 0;
  std::string policy_;
  nlohmann::json params_;
  SkipParams skip_;

  evj_event_callback callback_ = nullptr;
  void* user_ = nullptr;
  std::deque<std::string> events_;
  std::string current_event_;
  int64_t dropped_events_ = 0;

  std::unique_ptr<Loop> loop_;
  std::vector<float> last_embedding_;
  std::optional<Summary> summary_;
  std::string summary_text_, summary_json_;

  std::mutex slot_mu_;
  std::condition_variable slot_cv_;
  std::optional<OwnedFrame> slot_;
  std::atomic<int64_t> dropped_{0};
};

}  // namespace evj
