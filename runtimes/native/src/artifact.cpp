#include "artifact.h"

#include <sys/stat.h>

#include <cstdio>

#include "error.h"
#include "npz.h"
#include "sha256.h"

namespace evj {
using nlohmann::json;

int64_t TensorSpec::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

const MethodSpec& Artifact::method(const std::string& name) const {
  auto it = methods.find(name);
  if (it == methods.end()) throw Error(EVJ_ERR_CONTRACT, dir + ": the contract has no method '" + name + "'");
  return it->second;
}

std::string public_version(const std::string& version) { return version.substr(0, version.find('+')); }

std::string canonical_json(const json& value) {
  // nlohmann's object is a std::map (keys sorted by bytes, as Python sorts ASCII keys); dump() without
  // indent uses "," and ":" separators; ensure_ascii matches Python's default \uXXXX escapes.
  return value.dump(-1, ' ', true);
}

std::string contract_hash(const json& contract) { return sha256_hex(canonical_json(contract)); }

namespace {

[[noreturn]] void invalid(const std::string& dir, const std::string& why) {
  throw Error(EVJ_ERR_ARTIFACT, dir + "/manifest.json is not a valid manifest (" + why + ")");
}

TensorSpec tensor_spec(const json& j) {
  TensorSpec t;
  t.name = j.at("name").get<std::string>();
  t.shape = j.at("shape").get<std::vector<int64_t>>();
  t.dtype = j.at("dtype").get<std::string>();
  if (t.dtype != "float32" && t.dtype != "int64") throw Error(EVJ_ERR_CONTRACT, "tensor " + t.name + " has unsupported dtype " + t.dtype);
  if (t.shape.empty() || t.shape.size() > 8) throw Error(EVJ_ERR_CONTRACT, "tensor " + t.name + " has an unsupported rank");
  int64_t n = 1;
  for (int64_t d : t.shape) {
    if (d <= 0 || d > (int64_t(1) << 31) || n > (int64_t(1) << 40) / d) throw Error(EVJ_ERR_CONTRACT, "tensor " + t.name + " has an invalid shape");
    n *= d;
  }
  return t;
}

bool is_file(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// A file name from the manifest must stay inside the artifact directory.
std::string safe_name(const std::string& dir, const json& j, const std::string& what) {
  if (!j.is_string()) invalid(dir, what + " is not a file name");
  std::string name = j.get<std::string>();
  if (name.empty() || name[0] == '/' || name.find("..") != std::string::npos || name.find('\0') != std::string::npos)
    invalid(dir, what + " '" + name + "' is not a plain file name inside the artifact");
  return name;
}

const MethodSpec& need(const Artifact& a, const std::string& method) {
  auto it = a.methods.find(method);
  if (it == a.methods.end()) throw Error(EVJ_ERR_CONTRACT, a.dir + ": the contract has no method '" + method + "'");
  return it->second;
}

}  // namespace

Artifact parse_manifest(const std::string& dir, const std::string& text, const std::string& runtime_version) {
  Artifact a;
  a.dir = dir;
  try {
    a.manifest = json::parse(text);
  } catch (const json::exception& e) {
    invalid(dir, std::string("not JSON: ") + e.what());
  }
  const json& m = a.manifest;
  try {
    if (!m.is_object()) invalid(dir, "not a JSON object");
    int version = m.at("format_version").get<int>();
    if (version != kFormatVersion)
      throw Error(EVJ_ERR_ARTIFACT, dir + " has artifact format version " + std::to_string(version) +
                                        "; this runtime reads version " + std::to_string(kFormatVersion) + ": re-export it");
    std::string target = m.at("target").get<std::string>();
    if (target != "executorch")
      throw Error(EVJ_ERR_ARTIFACT, dir + " is a '" + target + "' artifact; the native core runs executorch artifacts");
    a.preset = m.at("model").at("preset").get<std::string>();

    // the ExecuTorch version that made the .pte files must be this runtime's
    const json& tools = m.at("tools");
    std::string exported = tools.contains("executorch") && tools["executorch"].is_string() ? tools["executorch"].get<std::string>() : "";
    if (exported.empty() || exported == "not installed")
      throw Error(EVJ_ERR_VERSION, dir + ": the manifest does not record the ExecuTorch version of its .pte files; re-export it");
    a.executorch_version = exported;
    if (public_version(exported) != public_version(runtime_version))
      throw Error(EVJ_ERR_VERSION, dir + " was exported with ExecuTorch " + exported + ", this runtime is ExecuTorch " +
                                       runtime_version + ": re-export it with executorch==" + public_version(runtime_version) +
                                       " or use a runtime built against " + public_version(exported));

    // the contract, its hash recomputed as Python's Contract.hash()
    const json& contract = m.at("contract");
    a.contract_hash = m.at("contract_hash").get<std::string>();
    std::string recomputed = contract_hash(contract);
    if (recomputed != a.contract_hash)
      throw Error(EVJ_ERR_CONTRACT, dir + ": the contract hash in the manifest (" + a.contract_hash.substr(0, 12) +
                                        ") does not match its contract (" + recomputed.substr(0, 12) + "): modified manifest; re-export it");
    if (contract.at("version").get<int>() != 1) throw Error(EVJ_ERR_CONTRACT, dir + ": unsupported contract version");
    for (auto& [name, spec] : contract.at("methods").items()) {
      MethodSpec ms;
      ms.name = spec.at("name").get<std::string>();
      ms.component = spec.at("component").get<std::string>();
      for (const json& t : spec.at("inputs")) ms.inputs.push_back(tensor_spec(t));
      for (const json& t : spec.at("outputs")) ms.outputs.push_back(tensor_spec(t));
      if (ms.name != name) throw Error(EVJ_ERR_CONTRACT, dir + ": contract method " + name + " names itself " + ms.name);
      a.methods[name] = ms;
    }

    for (auto& [component, info] : m.at("components").items()) {
      a.component_files[component] = a.path(safe_name(dir, info.at("file"), "components." + component + ".file"));
      a.component_quant[component] = info.value("quant", "fp32");
    }
    for (auto& [component, file] : m.at("tokenizers").items())
      a.tokenizers[component] = a.path(safe_name(dir, file, "tokenizers." + component));
    if (m.contains("label_bank")) a.label_bank_path = a.path(safe_name(dir, m["label_bank"], "label_bank"));
    if (m.contains("golden")) a.golden_path = a.path(safe_name(dir, m["golden"], "golden"));

    const json& p = m.at("preprocessing");
    a.preprocess.img_size = p.at("img_size").get<int>();
    a.preprocess.num_frames = p.at("num_frames").get<int>();
    a.preprocess.fps = p.at("fps").get<double>();
    for (int c = 0; c < 3; ++c) {
      a.preprocess.mean[c] = p.at("mean").at(c).get<float>();
      a.preprocess.std[c] = p.at("std").at(c).get<float>();
      if (!(a.preprocess.std[c] > 0)) invalid(dir, "preprocessing.std must be > 0");
    }
    if (a.preprocess.img_size <= 0 || a.preprocess.img_size > 4096 || a.preprocess.num_frames <= 0 ||
        a.preprocess.num_frames > 1024 || !(a.preprocess.fps > 0 && a.preprocess.fps < 1000))
      invalid(dir, "preprocessing values out of range");

    const json& d = m.at("model").at("config").at("y_decoder");
    a.decoder.prefix_len = d.at("prefix_len").get<int>();
    a.decoder.max_new_tokens = d.at("max_new_tokens").get<int>();
    a.decoder.eos_token_id = d.at("eos_token_id").get<int64_t>();
    if (a.decoder.max_new_tokens < 1 || a.decoder.max_new_tokens > 100000 || a.decoder.prefix_len < 0)
      invalid(dir, "y_decoder config out of range");

    if (m.contains("decode_policy_defaults")) {
      const json& dd = m["decode_policy_defaults"];
      a.default_policy = dd.value("policy", a.default_policy);
      a.default_stride = dd.value("stride", a.default_stride);
      if (dd.contains("params") && dd["params"].is_object()) a.default_params = dd["params"];
      if (dd.contains("skip") && dd["skip"].is_object()) a.default_skip = dd["skip"];
    }
    if (m.contains("tolerances") && m["tolerances"].contains("tensor")) a.tolerances = m["tolerances"]["tensor"];
  } catch (const json::exception& e) {
    invalid(dir, std::string("missing or mistyped key: ") + e.what());
  }

  // the methods the loop calls, checked against what the preprocessing and the config say
  const MethodSpec& x = need(a, "x_encoder");
  const MethodSpec& pr = need(a, "predictor");
  if (x.inputs.size() != 1 || x.inputs[0].shape.size() != 5 || x.inputs[0].shape[2] != a.preprocess.num_frames ||
      x.inputs[0].shape[3] != a.preprocess.img_size || x.inputs[0].shape[4] != a.preprocess.img_size || x.inputs[0].shape[1] != 3)
    throw Error(EVJ_ERR_CONTRACT, dir + ": the x_encoder input does not match the preprocessing spec");
  if (pr.inputs.size() != 3 || pr.inputs[1].shape.size() != 2) throw Error(EVJ_ERR_CONTRACT, dir + ": unexpected predictor inputs");
  a.max_query_len = int(pr.inputs[1].shape[1]);
  if (a.methods.count("y_encoder")) {
    const MethodSpec& y = a.methods["y_encoder"];
    if (y.inputs.empty() || y.inputs[0].shape.size() != 2) throw Error(EVJ_ERR_CONTRACT, dir + ": unexpected y_encoder inputs");
    a.max_text_len = int(y.inputs[0].shape[1]);
  }
  for (const char* c : {"x_encoder", "predictor"})
    if (!a.component_files.count(c)) throw Error(EVJ_ERR_ARTIFACT, dir + " has no " + std::string(c) + " component");
  return a;
}

Artifact open_artifact(const std::string& dir, const std::string& runtime_version, bool verify_files) {
  std::string manifest_path = dir + "/manifest.json";
  if (!is_file(manifest_path)) throw Error(EVJ_ERR_ARTIFACT, dir + " is not an artifact directory: manifest.json not found");
  Artifact a = parse_manifest(dir, read_file(manifest_path), runtime_version);
  if (verify_files) {
    try {
      for (auto& [name, info] : a.manifest.at("files").items()) {
        std::string path = a.path(safe_name(dir, json(name), "files"));
        if (!is_file(path)) throw Error(EVJ_ERR_ARTIFACT, dir + ": file " + name + " listed in the manifest is missing");
        if (sha256_file(path) != info.at("sha256").get<std::string>())
          throw Error(EVJ_ERR_ARTIFACT, dir + ": " + name + " does not match its sha256 in the manifest (modified or corrupted); re-export or restore it");
      }
    } catch (const json::exception& e) {
      invalid(dir, std::string("files: ") + e.what());
    }
    // every file the core opens must be one the manifest vouches for
    const json& files = a.manifest.at("files");
    auto listed = [&](const std::string& path) {
      std::string name = path.substr(dir.size() + 1);
      if (!files.contains(name)) throw Error(EVJ_ERR_ARTIFACT, dir + ": " + name + " is not listed (with its sha256) in the manifest's files");
    };
    for (auto& [c, path] : a.component_files) listed(path);
    for (auto& [c, path] : a.tokenizers) listed(path);
    if (!a.label_bank_path.empty()) listed(a.label_bank_path);
    if (!a.golden_path.empty()) listed(a.golden_path);
  }
  return a;
}

}  // namespace evj
