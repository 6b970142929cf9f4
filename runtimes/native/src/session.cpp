#include "session.h"

#include <chrono>
#include <cmath>
#include <cstring>

#include "error.h"
#include "npz.h"

namespace evj {
using nlohmann::json;

OwnedFrame OwnedFrame::copy(const evj_frame& f) {
  OwnedFrame o;
  o.frame = f;
  for (int i = 0; i < 3; ++i) {
    if (f.planes[i] && f.plane_size[i]) {
      o.planes[i].assign(f.planes[i], f.planes[i] + f.plane_size[i]);
      o.frame.planes[i] = o.planes[i].data();
    } else {
      o.frame.planes[i] = nullptr;
    }
  }
  // NV12 given as YUV_420_888 with interleaved U/V sharing one buffer: each plane was copied separately,
  // and each copy holds plane_size bytes, so the strides stay valid.
  return o;
}

Session::Session(const std::string& dir, const char* expected_hash)
    : artifact_(open_artifact(dir, EVJ_EXECUTORCH_VERSION)) {
  if (expected_hash && *expected_hash && artifact_.contract_hash != expected_hash)
    throw Error(EVJ_ERR_CONTRACT, dir + " is an artifact of preset '" + artifact_.preset + "' (contract hash " +
                                      artifact_.contract_hash.substr(0, 12) + "), but the caller needs contract hash " +
                                      std::string(expected_hash).substr(0, 12) + "; use an artifact exported for it");
  for (const char* c : {"predictor", "y_decoder"})
    if (!artifact_.tokenizers.count(c)) throw Error(EVJ_ERR_ARTIFACT, dir + " has no tokenizer for '" + c + "' in its manifest");
  auto tokenizer = [&](const std::string& component, int max_len) {
    try {
      return std::make_unique<TextEncoder>(artifact_.tokenizers.at(component), max_len);
    } catch (const Error& e) {
      throw Error(EVJ_ERR_ARTIFACT, artifact_.tokenizers.at(component) + ": " + e.what());
    }
  };
  query_tok_ = tokenizer("predictor", artifact_.max_query_len);
  decoder_tok_ = tokenizer("y_decoder", artifact_.decoder.max_new_tokens + 2);
  query_tok_->encode(query_, "query", query_ids_, query_mask_);
  if (!artifact_.label_bank_path.empty()) {
    artifact_bank_ = LabelBank::load(artifact_.label_bank_path);
    has_artifact_bank_ = true;
  }
  stride_ = artifact_.default_stride;
  policy_ = artifact_.default_policy;
  set_policy(nullptr, nullptr);
  set_skip(nullptr);
  backend_ = std::make_unique<Backend>(artifact_);
  backend_->load_component("x_encoder");
  backend_->load_component("predictor");
}

Session::~Session() = default;

void Session::require_idle(const char* what) const {
  if (loop_) throw Error(EVJ_ERR_STATE, std::string(what) + " cannot change during a stream; call evj_finish first");
}

void Session::set_query(const std::string& query) {
  require_idle("the query");
  std::vector<int64_t> ids, mask;
  query_tok_->encode(query, "query", ids, mask);
  query_ = query;
  query_ids_ = std::move(ids);
  query_mask_ = std::move(mask);
}

void Session::set_labels(const std::vector<std::string>& labels) {
  require_idle("the labels");
  if (labels.empty()) {
    use_custom_bank_ = false;
    return;
  }
  for (const auto& l : labels)
    if (l.empty()) throw Error(EVJ_ERR_TEXT, "a label is empty");
  if (!artifact_.methods.count("y_encoder") || !artifact_.component_files.count("y_encoder"))
    throw Error(EVJ_ERR_ARTIFACT, artifact_.dir + " has no y_encoder: custom labels cannot be embedded; use its label bank");
  if (!label_tok_) {
    if (!artifact_.tokenizers.count("y_encoder")) throw Error(EVJ_ERR_ARTIFACT, artifact_.dir + " has no tokenizer for 'y_encoder'");
    label_tok_ = std::make_unique<TextEncoder>(artifact_.tokenizers.at("y_encoder"), artifact_.max_text_len);
  }
  std::vector<float> rows;
  size_t dim = 0;
  std::vector<std::vector<int64_t>> all_ids, all_masks;
  for (const auto& l : labels) {  // every label fits before any work
    std::vector<int64_t> ids, mask;
    label_tok_->encode(l, "label", ids, mask);
    all_ids.push_back(std::move(ids));
    all_masks.push_back(std::move(mask));
  }
  for (size_t i = 0; i < labels.size(); ++i) {
    const int64_t n = int64_t(all_ids[i].size());
    auto out = backend_->run("y_encoder", {HostTensor::ints({1, n}, all_ids[i]), HostTensor::ints({1, n}, all_masks[i])});
    dim = out.at(0).f.size();
    rows.insert(rows.end(), out[0].f.begin(), out[0].f.end());
  }
  custom_bank_ = LabelBank(labels, rows, dim);
  use_custom_bank_ = true;
}

void Session::set_top_k(int top_k) {
  require_idle("top-k");
  if (top_k < 1) throw Error(EVJ_ERR_INVALID_ARGUMENT, "top-k must be >= 1, got " + std::to_string(top_k));
  top_k_ = top_k;
}

void Session::set_policy(const char* name, const char* params_json) {
  require_idle("the decode policy");
  std::string policy = name ? name : artifact_.default_policy;
  json params = json::object();
  if (params_json && *params_json) {
    try {
      params = json::parse(params_json);
    } catch (const json::exception& e) {
      throw Error(EVJ_ERR_INVALID_ARGUMENT, std::string("decode policy parameters are not JSON: ") + e.what());
    }
    if (!params.is_object()) throw Error(EVJ_ERR_INVALID_ARGUMENT, "decode policy parameters must be a JSON object");
  }
  // the manifest's defaults for its own policy (values given here win; nulls mean "the policy's default")
  json effective = json::object();
  if (policy != "offline_segments") effective = policy_defaults(policy);  // shown in evj_info_json
  if (policy == artifact_.default_policy)
    for (auto& [k, v] : artifact_.default_params.items())
      if (!v.is_null()) effective[k] = v;
  for (auto& [k, v] : params.items()) effective[k] = v;
  make_policy(policy, effective);  // validates
  policy_ = policy;
  params_ = effective;
}

void Session::set_stride(int stride) {
  require_idle("the stride");
  if (stride < 1) throw Error(EVJ_ERR_INVALID_ARGUMENT, "the stride must be >= 1, got " + std::to_string(stride));
  stride_ = stride;
}

void Session::set_skip(const char* params_json) {
  require_idle("selective encoding");
  json params = json::object();
  if (params_json && *params_json) {
    try {
      params = json::parse(params_json);
    } catch (const json::exception& e) {
      throw Error(EVJ_ERR_INVALID_ARGUMENT, std::string("skip parameters are not JSON: ") + e.what());
    }
  }
  // the manifest's decode_policy_defaults.skip, then the values given here
  skip_ = skip_params(params, skip_params(artifact_.default_skip));
}

void Session::set_threads(int threads) {
  if (threads < 0) throw Error(EVJ_ERR_INVALID_ARGUMENT, "threads must be >= 0, got " + std::to_string(threads));
  if (threads > 0) set_runtime_threads(threads);
  threads_ = threads;
}

void Session::set_callback(evj_event_callback cb, void* user) {
  callback_ = cb;
  user_ = user;
}

const char* Session::next_event() {
  if (events_.empty()) return nullptr;
  current_event_ = std::move(events_.front());
  events_.pop_front();
  return current_event_.c_str();
}

void Session::on_event(const Event& e) {
  std::string line = e.to_json();
  if (callback_) {
    callback_(line.c_str(), user_);
    return;
  }
  if (events_.size() >= kMaxQueuedEvents) {
    events_.pop_front();
    ++dropped_events_;
  }
  events_.push_back(std::move(line));
}

void Session::start_stream() {
  LoopInputs in;
  in.artifact = &artifact_;
  in.backend = backend_.get();
  in.decoder_tokenizer = decoder_tok_.get();
  in.query_ids = query_ids_;
  in.query_mask = query_mask_;
  in.bank = use_custom_bank_ ? &custom_bank_ : has_artifact_bank_ ? &artifact_bank_ : nullptr;
  in.top_k = top_k_;
  in.stride = stride_;
  in.policy = make_policy(policy_, params_);
  in.skip = skip_;
  loop_ = std::make_unique<Loop>(std::move(in), [this](const Event& e) { on_event(e); });
  dropped_events_ = 0;
}

void Session::process_frame(const evj_frame& frame) {
  validate_frame(frame);
  if (!loop_) start_stream();
  loop_->push(frame);
  last_embedding_ = loop_->last_embedding();
}

void Session::push_frame(const evj_frame& frame) {
  validate_frame(frame);
  OwnedFrame copy = OwnedFrame::copy(frame);
  {
    std::lock_guard<std::mutex> lock(slot_mu_);
    if (slot_) dropped_.fetch_add(1);
    slot_ = std::move(copy);
  }
  slot_cv_.notify_one();
}

bool Session::process_pending(int timeout_ms, const std::atomic<bool>& closing) {
  std::optional<OwnedFrame> frame;
  {
    std::unique_lock<std::mutex> lock(slot_mu_);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms < 0 ? 0 : timeout_ms);
    while (!slot_ && !closing.load()) {
      if (timeout_ms == 0) break;
      auto step = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
      if (timeout_ms > 0 && step > deadline) step = deadline;
      slot_cv_.wait_until(lock, step);
      if (timeout_ms > 0 && std::chrono::steady_clock::now() >= deadline) break;
    }
    if (!slot_) return false;
    frame = std::move(slot_);
    slot_.reset();
  }
  process_frame(frame->frame);
  return true;
}

void Session::finish(const char* source_error) {
  if (!loop_) start_stream();  // an empty stream still has a summary
  {
    std::lock_guard<std::mutex> lock(slot_mu_);
    slot_.reset();
  }
  loop_->count_dropped(dropped_.exchange(0));
  std::optional<std::string> error;
  if (source_error && *source_error) error = source_error;
  std::unique_ptr<Loop> loop = std::move(loop_);  // the next frame starts a new stream, even if this throws
  summary_ = loop->finish(error, dropped_events_);
  summary_text_ = summary_->format();
  summary_json_ = summary_->to_json();
}

const std::string& Session::summary_text() const {
  if (!summary_) throw Error(EVJ_ERR_STATE, "no stream has finished yet (call evj_finish)");
  return summary_text_;
}

const std::string& Session::summary_json() const {
  if (!summary_) throw Error(EVJ_ERR_STATE, "no stream has finished yet (call evj_finish)");
  return summary_json_;
}

std::string Session::info_json() const {
  nlohmann::ordered_json j;
  j["preset"] = artifact_.preset;
  j["artifact"] = artifact_.dir;
  j["contract_hash"] = artifact_.contract_hash;
  j["executorch_version"] = artifact_.executorch_version;
  j["runtime_executorch_version"] = EVJ_EXECUTORCH_VERSION;
  j["components"] = nlohmann::ordered_json::object();
  for (auto& [c, q] : artifact_.component_quant)
    j["components"][c] = {{"quant", q}, {"loaded", backend_->loaded(c)}};
  j["weights"] = artifact_.manifest.contains("model") ? artifact_.manifest["model"].value("checkpoint", json()) : json();
  const auto& p = artifact_.preprocess;
  j["preprocessing"] = {{"img_size", p.img_size}, {"num_frames", p.num_frames}, {"fps", p.fps},
                        {"mean", {p.mean[0], p.mean[1], p.mean[2]}}, {"std", {p.std[0], p.std[1], p.std[2]}}};
  j["query"] = query_;
  const LabelBank* bank = use_custom_bank_ ? &custom_bank_ : has_artifact_bank_ ? &artifact_bank_ : nullptr;
  j["labels"] = bank ? bank->size() : 0;
  j["labels_from"] = use_custom_bank_ ? "custom" : has_artifact_bank_ ? "artifact" : "none";
  j["top_k"] = top_k_;
  j["policy"] = policy_;
  j["params"] = params_;
  j["stride"] = stride_;
  j["skip"] = skip_json(skip_);
  j["threads"] = threads_ ? threads_ : runtime_threads();
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

bool Session::self_test(std::string& report) {
  if (artifact_.golden_path.empty()) throw Error(EVJ_ERR_ARTIFACT, artifact_.dir + " has no golden.npz for a self-test");
  auto golden = load_npz(artifact_.golden_path);
  nlohmann::ordered_json methods = nlohmann::ordered_json::object();
  bool passed = true;
  for (const auto& [name, spec] : artifact_.methods) {
    std::vector<HostTensor> inputs;
    bool present = true;
    for (const auto& t : spec.inputs) {
      auto it = golden.find(name + ".in." + t.name);
      if (it == golden.end()) { present = false; break; }
      HostTensor h = t.dtype == "int64" ? HostTensor::ints(it->second.shape, it->second.as_int64())
                                        : HostTensor::floats(it->second.shape, it->second.as_float());
      inputs.push_back(std::move(h));
    }
    if (!present) continue;
    auto outputs = backend_->run(name, inputs);
    std::string quant = artifact_.component_quant.count(spec.component) ? artifact_.component_quant.at(spec.component) : "fp32";
    json tol = artifact_.tolerances.contains(quant) ? artifact_.tolerances[quant] : json{{"max_abs", 1e-4}};
    double max_abs = 0, worst_cos = 1;
    for (size_t k = 0; k < spec.outputs.size(); ++k) {
      auto it = golden.find(name + ".out." + spec.outputs[k].name);
      if (it == golden.end()) throw Error(EVJ_ERR_ARTIFACT, artifact_.golden_path + " has no " + name + ".out." + spec.outputs[k].name);
      std::vector<float> want = it->second.as_float();
      const std::vector<float>& got = outputs[k].f;
      if (want.size() != got.size()) throw Error(EVJ_ERR_SELF_TEST, name + ": output " + spec.outputs[k].name + " has the wrong size");
      double dot = 0, nw = 0, ng = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        max_abs = std::max(max_abs, double(std::fabs(got[i] - want[i])));
        dot += double(got[i]) * want[i]; nw += double(want[i]) * want[i]; ng += double(got[i]) * got[i];
      }
      worst_cos = std::min(worst_cos, nw > 0 && ng > 0 ? dot / std::sqrt(nw * ng) : (nw == ng ? 1.0 : 0.0));
    }
    bool ok = true;
    nlohmann::ordered_json m;
    m["max_abs"] = max_abs;
    m["cosine"] = worst_cos;
    if (tol.contains("max_abs")) ok = ok && max_abs <= tol["max_abs"].get<double>();
    if (tol.contains("cosine")) ok = ok && worst_cos >= tol["cosine"].get<double>();
    m["tolerance"] = tol;
    m["passed"] = ok;
    methods[name] = m;
    passed = passed && ok;
  }
  nlohmann::ordered_json r;
  r["passed"] = passed;
  r["methods"] = methods;
  report = r.dump();
  return passed;
}

}  // namespace evj
