// The ExecuTorch backend (Python: runtimes/executorch_backend.py): one Module per component .pte, loaded
// with LoadMode::Mmap on first use (so the y_decoder costs nothing until the first decode); every call's
// inputs are checked against the contract and, once per method, the method's method_meta against the
// contract; outputs are copied out of the runtime's arenas before the next call.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "artifact.h"

namespace evj {

struct LoadedModule;  // an ExecuTorch Module (backend.cpp)

struct HostTensor {  // a contract tensor in host memory: float32 or int64, C order
  std::vector<int64_t> shape;
  bool is_int64 = false;
  std::vector<float> f;
  std::vector<int64_t> i;
  size_t numel() const { return is_int64 ? i.size() : f.size(); }
  static HostTensor floats(std::vector<int64_t> shape, std::vector<float> data);
  static HostTensor ints(std::vector<int64_t> shape, std::vector<int64_t> data);
};

class Backend {
 public:
  explicit Backend(const Artifact& artifact);
  ~Backend();
  // Run contract method `method` on its inputs (contract order); return its outputs (contract order).
  // Throws evj::Error: EVJ_ERR_CONTRACT for a tensor that does not match (named), EVJ_ERR_BACKEND when
  // ExecuTorch fails to load or execute (with the runtime's reason).
  std::vector<HostTensor> run(const std::string& method, const std::vector<HostTensor>& inputs);
  void load_component(const std::string& component);  // eager load (x_encoder, predictor at open)
  bool loaded(const std::string& component) const { return modules_.count(component) > 0; }
  std::vector<std::string> loaded_components() const;

 private:
  LoadedModule& module(const std::string& component);
  void check_method(const MethodSpec& spec, LoadedModule& m);
  const Artifact& artifact_;
  std::map<std::string, std::unique_ptr<LoadedModule>> modules_;
  std::set<std::string> checked_;
};

// Check tensors against contract specs; `kind` "input" | "output". Throws EVJ_ERR_CONTRACT naming it.
void check_tensors(const std::string& method, const std::vector<TensorSpec>& specs, const std::vector<HostTensor>& tensors,
                   const std::string& kind);
// Set ExecuTorch's CPU thread pool size (process-wide). Throws EVJ_ERR_BACKEND if the runtime refuses.
void set_runtime_threads(int threads);
int runtime_threads();
// The runtime's last log lines (errors) on this thread, "; "-joined, and clear them.
std::string take_runtime_log();

}  // namespace evj
