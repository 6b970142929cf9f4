// The C API (include/edge_vljepa.h) over evj::Session: handle registry (closed handles stay known, so a
// call after close is EVJ_ERR_CLOSED, never a use-after-free), exceptions -> status + one-line message.
#include <atomic>
#include <cstring>
#include <mutex>
#include <new>
#include <shared_mutex>
#include <string>
#include <unordered_set>

#include "edge_vljepa.h"
#include "error.h"
#include "session.h"

struct evj_session {
  std::shared_mutex life;  // shared: any call; exclusive: close
  std::unique_ptr<evj::Session> impl;
  std::atomic<bool> closing{false};
  std::string error;
  std::mutex error_mu;
  std::string info, self_test;  // strings returned to the caller, owned by the handle
};

namespace {

thread_local std::string g_last_error;
std::mutex g_registry_mu;
// every handle ever opened (closed ones stay, so a closed handle is never reused); never destroyed, so the
// handles stay reachable (LeakSanitizer) and usable from other static destructors
std::unordered_set<const evj_session*>& g_sessions = *new std::unordered_set<const evj_session*>;

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

evj_status fail(evj_session* s, evj_status status, const std::string& message) {
  g_last_error = one_line(message);
  if (s) {
    std::lock_guard<std::mutex> lock(s->error_mu);
    s->error = g_last_error;
  }
  return status;
}

bool known(const evj_session* s) {
  std::lock_guard<std::mutex> lock(g_registry_mu);
  return g_sessions.count(s) > 0;
}

// Run `body` on an open session with exceptions mapped to statuses.
template <typename F>
evj_status call(evj_session* s, const char* fn, F&& body) {
  if (!s) return fail(nullptr, EVJ_ERR_INVALID_ARGUMENT, std::string(fn) + ": session is NULL");
  if (!known(s)) return fail(nullptr, EVJ_ERR_INVALID_ARGUMENT, std::string(fn) + ": not a session handle");
  std::shared_lock<std::shared_mutex> lock(s->life);
  if (!s->impl) return fail(nullptr, EVJ_ERR_CLOSED, std::string(fn) + ": the session is closed");
  try {
    body(*s->impl);
    return EVJ_OK;
  } catch (const evj::Error& e) {
    return fail(s, e.status, e.what());
  } catch (const std::bad_alloc&) {
    return fail(s, EVJ_ERR_INTERNAL, std::string(fn) + ": out of memory");
  } catch (const std::exception& e) {
    return fail(s, EVJ_ERR_INTERNAL, std::string(fn) + ": " + e.what());
  } catch (...) {
    return fail(s, EVJ_ERR_INTERNAL, std::string(fn) + ": unknown exception");
  }
}

#define EVJ_REQUIRE(ptr, fn)                                                                         \
  do {                                                                                               \
    if (!(ptr)) return fail(nullptr, EVJ_ERR_INVALID_ARGUMENT, std::string(fn) + ": " #ptr " is NULL"); \
  } while (0)

}  // namespace

extern "C" {

const char* evj_version(void) { return EVJ_CORE_VERSION; }
const char* evj_executorch_version(void) { return EVJ_EXECUTORCH_VERSION; }
const char* evj_last_error(void) { return g_last_error.c_str(); }

const char* evj_status_name(evj_status status) {
  switch (status) {
    case EVJ_OK: return "EVJ_OK";
    case EVJ_ERR_INVALID_ARGUMENT: return "EVJ_ERR_INVALID_ARGUMENT";
    case EVJ_ERR_ARTIFACT: return "EVJ_ERR_ARTIFACT";
    case EVJ_ERR_VERSION: return "EVJ_ERR_VERSION";
    case EVJ_ERR_CONTRACT: return "EVJ_ERR_CONTRACT";
    case EVJ_ERR_TEXT: return "EVJ_ERR_TEXT";
    case EVJ_ERR_BACKEND: return "EVJ_ERR_BACKEND";
    case EVJ_ERR_STATE: return "EVJ_ERR_STATE";
    case EVJ_ERR_CLOSED: return "EVJ_ERR_CLOSED";
    case EVJ_ERR_IO: return "EVJ_ERR_IO";
    case EVJ_ERR_SELF_TEST: return "EVJ_ERR_SELF_TEST";
    case EVJ_ERR_INTERNAL: return "EVJ_ERR_INTERNAL";
  }
  return "EVJ_ERR_UNKNOWN";
}

evj_status evj_open(const char* artifact_dir, const char* expected_contract_hash, evj_session** out_session) {
  EVJ_REQUIRE(out_session, "evj_open");
  *out_session = nullptr;
  EVJ_REQUIRE(artifact_dir, "evj_open");
  try {
    auto s = std::make_unique<evj_session>();
    s->impl = std::make_unique<evj::Session>(artifact_dir, expected_contract_hash);
    {
      std::lock_guard<std::mutex> lock(g_registry_mu);
      g_sessions.insert(s.get());
    }
    *out_session = s.release();
    return EVJ_OK;
  } catch (const evj::Error& e) {
    return fail(nullptr, e.status, e.what());
  } catch (const std::bad_alloc&) {
    return fail(nullptr, EVJ_ERR_INTERNAL, "evj_open: out of memory");
  } catch (const std::exception& e) {
    return fail(nullptr, EVJ_ERR_INTERNAL, std::string("evj_open: ") + e.what());
  }
}

evj_status evj_close(evj_session* s) {
  EVJ_REQUIRE(s, "evj_close");
  if (!known(s)) return fail(nullptr, EVJ_ERR_INVALID_ARGUMENT, "evj_close: not a session handle");
  s->closing = true;
  if (s->impl) s->impl->wake();
  std::unique_lock<std::shared_mutex> lock(s->life);
  s->impl.reset();  // the handle itself stays allocated and registered: later calls get EVJ_ERR_CLOSED
  return EVJ_OK;
}

const char* evj_session_error(const evj_session* s) {
  if (!s || !known(s)) return "";
  auto* m = const_cast<evj_session*>(s);
  std::lock_guard<std::mutex> lock(m->error_mu);
  return m->closing ? "" : m->error.c_str();
}

evj_status evj_info_json(evj_session* s, const char** out_json) {
  EVJ_REQUIRE(out_json, "evj_info_json");
  *out_json = nullptr;
  return call(s, "evj_info_json", [&](evj::Session& impl) {
    s->info = impl.info_json();
    *out_json = s->info.c_str();
  });
}

evj_status evj_set_query(evj_session* s, const char* query) {
  EVJ_REQUIRE(query, "evj_set_query");
  return call(s, "evj_set_query", [&](evj::Session& impl) { impl.set_query(query); });
}

evj_status evj_set_labels(evj_session* s, const char* const* labels, size_t n) {
  if (n > 0 && !labels) return fail(nullptr, EVJ_ERR_INVALID_ARGUMENT, "evj_set_labels: labels is NULL");
  return call(s, "evj_set_labels", [&](evj::Session& impl) {
    std::vector<std::string> list;
    for (size_t i = 0; i < n; ++i) {
      if (!labels[i]) throw evj::Error(EVJ_ERR_INVALID_ARGUMENT, "evj_set_labels: label " + std::to_string(i) + " is NULL");
      list.emplace_back(labels[i]);
    }
    impl.set_labels(list);
  });
}

evj_status evj_set_top_k(evj_session* s, int32_t top_k) {
  return call(s, "evj_set_top_k", [&](evj::Session& impl) { impl.set_top_k(top_k); });
}

evj_status evj_set_policy(evj_session* s, const char* name, const char* params_json) {
  return call(s, "evj_set_policy", [&](evj::Session& impl) { impl.set_policy(name, params_json); });
}

evj_status evj_set_stride(evj_session* s, int32_t stride) {
  return call(s, "evj_set_stride", [&](evj::Session& impl) { impl.set_stride(stride); });
}

evj_status evj_set_skip(evj_session* s, const char* params_json) {
  return call(s, "evj_set_skip", [&](evj::Session& impl) { impl.set_skip(params_json); });
}

evj_status evj_set_threads(evj_session* s, int32_t threads) {
  return call(s, "evj_set_threads", [&](evj::Session& impl) { impl.set_threads(threads); });
}

evj_status evj_set_event_callback(evj_session* s, evj_event_callback callback, void* user_data) {
  return call(s, "evj_set_event_callback", [&](evj::Session& impl) { impl.set_callback(callback, user_data); });
}

evj_status evj_next_event(evj_session* s, const char** out_json_line) {
  EVJ_REQUIRE(out_json_line, "evj_next_event");
  *out_json_line = nullptr;
  return call(s, "evj_next_event", [&](evj::Session& impl) { *out_json_line = impl.next_event(); });
}

evj_status evj_process_frame(evj_session* s, const evj_frame* frame) {
  EVJ_REQUIRE(frame, "evj_process_frame");
  return call(s, "evj_process_frame", [&](evj::Session& impl) { impl.process_frame(*frame); });
}

evj_status evj_push_frame(evj_session* s, const evj_frame* frame) {
  EVJ_REQUIRE(frame, "evj_push_frame");
  return call(s, "evj_push_frame", [&](evj::Session& impl) { impl.push_frame(*frame); });
}

evj_status evj_process_pending(evj_session* s, int32_t timeout_ms, int32_t* out_processed) {
  if (out_processed) *out_processed = 0;
  return call(s, "evj_process_pending", [&](evj::Session& impl) {
    bool done = impl.process_pending(timeout_ms, s->closing);
    if (out_processed) *out_processed = done ? 1 : 0;
  });
}

int64_t evj_dropped_frames(const evj_session* s) {
  if (!s || !known(s)) return -1;
  auto* m = const_cast<evj_session*>(s);
  std::shared_lock<std::shared_mutex> lock(m->life);
  return m->impl ? m->impl->dropped() : -1;
}

evj_status evj_last_embedding(evj_session* s, const float** out_data, size_t* out_dim) {
  EVJ_REQUIRE(out_data, "evj_last_embedding");
  EVJ_REQUIRE(out_dim, "evj_last_embedding");
  *out_data = nullptr;
  *out_dim = 0;
  return call(s, "evj_last_embedding", [&](evj::Session& impl) {
    const auto& e = impl.last_embedding();
    if (!e.empty()) {
      *out_data = e.data();
      *out_dim = e.size();
    }
  });
}

evj_status evj_finish(evj_session* s, const char* source_error) {
  return call(s, "evj_finish", [&](evj::Session& impl) { impl.finish(source_error); });
}

evj_status evj_summary_text(evj_session* s, const char** out_text) {
  EVJ_REQUIRE(out_text, "evj_summary_text");
  *out_text = nullptr;
  return call(s, "evj_summary_text", [&](evj::Session& impl) { *out_text = impl.summary_text().c_str(); });
}

evj_status evj_summary_json(evj_session* s, const char** out_json) {
  EVJ_REQUIRE(out_json, "evj_summary_json");
  *out_json = nullptr;
  return call(s, "evj_summary_json", [&](evj::Session& impl) { *out_json = impl.summary_json().c_str(); });
}

evj_status evj_self_test(evj_session* s, const char** out_report_json) {
  if (out_report_json) *out_report_json = nullptr;
  return call(s, "evj_self_test", [&](evj::Session& impl) {
    bool passed = impl.self_test(s->self_test);
    if (out_report_json) *out_report_json = s->self_test.c_str();
    if (!passed) throw evj::Error(EVJ_ERR_SELF_TEST, "self-test failed: outputs differ from golden.npz beyond tolerance: " + s->self_test);
  });
}

}  // extern "C"
