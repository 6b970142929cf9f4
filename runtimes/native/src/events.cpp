#include "events.h"

#include <nlohmann/json.hpp>

namespace evj {

std::string Event::to_json() const {
  nlohmann::ordered_json j;
  j["time"] = time;
  j["window"] = window;
  j["start"] = start;
  j["end"] = end;
  j["topk"] = nlohmann::ordered_json::array();
  for (const auto& [label, score] : topk) j["topk"].push_back({{"label", label}, {"score", double(score)}});
  j["decode"] = decode;
  j["text"] = text ? nlohmann::ordered_json(*text) : nlohmann::ordered_json(nullptr);
  j["span"] = span ? nlohmann::ordered_json::array({span->first, span->second}) : nlohmann::ordered_json(nullptr);
  j["ms"] = nlohmann::ordered_json::object();
  for (const auto& [stage, value] : ms) j["ms"][stage] = value;
  if (reused) j["reused"] = true;  // only then: streams without selective encoding keep the original keys
  // invalid UTF-8 (from a tokenizer) is replaced, never thrown
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace evj
