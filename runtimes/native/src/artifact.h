// Opening an exported artifact directory (docs/artifact-format.md; Python: runtimes/artifact.py):
// manifest.json, its format version, the contract and its hash, every file's sha256, and the ExecuTorch
// version the .pte files were exported with against this runtime's own.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace evj {

constexpr int kFormatVersion = 1;

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  std::string dtype;  // "float32" | "int64"
  int64_t numel() const;
};

struct MethodSpec {
  std::string name, component;
  std::vector<TensorSpec> inputs, outputs;
};

struct PreprocessSpec {
  int img_size = 0, num_frames = 0;
  double fps = 0;
  float mean[3] = {0, 0, 0}, std[3] = {1, 1, 1};
};

struct DecoderSpec {  // the y_decoder config values greedy decoding needs
  int prefix_len = 0, max_new_tokens = 0;
  int64_t eos_token_id = 0;
};

struct Artifact {
  std::string dir;
  nlohmann::json manifest;
  std::string preset, contract_hash, executorch_version;
  std::map<std::string, MethodSpec> methods;                    // contract method name -> spec
  std::map<std::string, std::string> component_files;           // component -> path of its .pte
  std::map<std::string, std::string> component_quant;           // component -> quant ("fp32", ...)
  std::map<std::string, std::string> tokenizers;                // text component -> tokenizer.json path
  std::string label_bank_path, golden_path;                     // "" when not recorded
  PreprocessSpec preprocess;
  DecoderSpec decoder;
  int max_query_len = 0, max_text_len = 0;
  std::string default_policy = "changepoint";  // edge_vljepa/streaming/policies.py DEFAULT_POLICY
  int default_stride = 2;
  nlohmann::json default_params = nlohmann::json::object();
  nlohmann::json default_skip = nlohmann::json::object();       // decode_policy_defaults.skip (selective encoding)
  nlohmann::json tolerances = nlohmann::json::object();        // manifest tolerances.tensor

  const MethodSpec& method(const std::string& name) const;  // throws EVJ_ERR_CONTRACT
  std::string path(const std::string& name) const { return dir + "/" + name; }
};

// The canonical JSON of Python's Contract.hash(): json.dumps(sort_keys=True, separators=(",", ":")),
// ASCII only; and its sha256.
std::string canonical_json(const nlohmann::json& value);
std::string contract_hash(const nlohmann::json& contract);

// Parse a manifest's text (no file checks): throws evj::Error(EVJ_ERR_ARTIFACT / EVJ_ERR_CONTRACT /
// EVJ_ERR_VERSION) with one line naming the problem.
Artifact parse_manifest(const std::string& dir, const std::string& manifest_text,
                        const std::string& runtime_executorch_version);
// Open `dir`: parse its manifest, then check every file's existence and sha256 (verify_files).
Artifact open_artifact(const std::string& dir, const std::string& runtime_executorch_version,
                       bool verify_files = true);
// "1.5.1+cpu" -> "1.5.1": the public version, compared between export and runtime.
std::string public_version(const std::string& version);

}  // namespace evj
