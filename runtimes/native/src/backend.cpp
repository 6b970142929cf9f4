#include "backend.h"

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>
#include <sstream>

#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor_ptr.h>
#include <executorch/runtime/platform/platform.h>

#include "error.h"

// libexecutorch_threadpool.so exports these; the wheel ships no threadpool.h.
namespace executorch::extension::threadpool {
class ThreadPool {
 public:
  size_t get_thread_count() const;
  bool _unsafe_reset_threadpool(uint32_t num_threads);
};
ThreadPool* get_threadpool();
}  // namespace executorch::extension::threadpool

namespace evj {
using executorch::aten::ScalarType;
using executorch::extension::module::Module;

struct LoadedModule {
  explicit LoadedModule(const std::string& path) : m(path, Module::LoadMode::Mmap) {}
  Module m;
};
using executorch::runtime::EValue;

namespace {

thread_local std::string g_log;  // the runtime's error/warning lines since the last take_runtime_log()

void emit_log(et_timestamp_t, et_pal_log_level_t level, const char*, const char*, size_t, const char* message, size_t length) {
  std::string line(message, length);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  if (level == kError || level == kFatal || level == kInfo || level == kDebug) {
    if (level == kError || level == kFatal) {
      if (g_log.size() < 2000) g_log += (g_log.empty() ? "" : "; ") + line;
    }
  }
  static const bool verbose = std::getenv("EVJ_RUNTIME_LOG") != nullptr;
  if (verbose) std::cerr << "[executorch] " << line << "\n";
}

void install_log() {
  static std::once_flag once;
  std::call_once(once, [] { executorch::runtime::register_pal(executorch::runtime::PalImpl::create(emit_log, __FILE__)); });
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}

std::string reason(const std::string& fallback) {
  std::string log = take_runtime_log();
  return log.empty() ? fallback : log;
}

}  // namespace

std::string take_runtime_log() {
  std::string out;
  std::swap(out, g_log);
  return out;
}

HostTensor HostTensor::floats(std::vector<int64_t> shape, std::vector<float> data) {
  HostTensor t;
  t.shape = std::move(shape);
  t.f = std::move(data);
  return t;
}
HostTensor HostTensor::ints(std::vector<int64_t> shape, std::vector<int64_t> data) {
  HostTensor t;
  t.shape = std::move(shape);
  t.is_int64 = true;
  t.i = std::move(data);
  return t;
}

void check_tensors(const std::string& method, const std::vector<TensorSpec>& specs, const std::vector<HostTensor>& tensors,
                   const std::string& kind) {
  if (specs.size() != tensors.size())
    throw Error(EVJ_ERR_CONTRACT, method + ": " + std::to_string(tensors.size()) + " " + kind + " tensors, the contract has " +
                                      std::to_string(specs.size()));
  for (size_t k = 0; k < specs.size(); ++k) {
    const TensorSpec& s = specs[k];
    const HostTensor& t = tensors[k];
    if (t.shape != s.shape)
      throw Error(EVJ_ERR_CONTRACT, method + ": tensor '" + s.name + "' has shape " + shape_str(t.shape) + ", the contract expects " + shape_str(s.shape));
    if (t.is_int64 != (s.dtype == "int64"))
      throw Error(EVJ_ERR_CONTRACT, method + ": tensor '" + s.name + "' has dtype " + (t.is_int64 ? "int64" : "float32") +
                                        ", the contract expects " + s.dtype);
    if (int64_t(t.numel()) != s.numel()) throw Error(EVJ_ERR_CONTRACT, method + ": tensor '" + s.name + "' has the wrong number of elements");
  }
}

Backend::Backend(const Artifact& artifact) : artifact_(artifact) { install_log(); }
Backend::~Backend() = default;

std::vector<std::string> Backend::loaded_components() const {
  std::vector<std::string> out;
  for (auto& [c, m] : modules_) out.push_back(c);
  return out;
}

void Backend::load_component(const std::string& component) { module(component); }

LoadedModule& Backend::module(const std::string& component) {
  auto it = modules_.find(component);
  if (it != modules_.end()) return *it->second;
  auto file = artifact_.component_files.find(component);
  if (file == artifact_.component_files.end())
    throw Error(EVJ_ERR_ARTIFACT, artifact_.dir + " has no file for the " + component + " component");
  take_runtime_log();
  auto m = std::make_unique<LoadedModule>(file->second);
  auto err = m->m.load();
  if (err != executorch::runtime::Error::Ok)
    throw Error(EVJ_ERR_BACKEND, "cannot load " + file->second + " as an ExecuTorch program (" +
                                     reason("error " + std::to_string(int(err))) + ")");
  return *(modules_[component] = std::move(m));
}

void Backend::check_method(const MethodSpec& spec, LoadedModule& lm) {
  Module& m = lm.m;
  if (checked_.count(spec.name)) return;
  auto meta = m.method_meta(spec.name);
  if (!meta.ok())
    throw Error(EVJ_ERR_CONTRACT, artifact_.component_files.at(spec.component) + " has no method '" + spec.name + "' (" + reason("not found") + ")");
  auto check = [&](bool input, size_t n, const std::vector<TensorSpec>& specs) {
    if (n != specs.size())
      throw Error(EVJ_ERR_CONTRACT, spec.name + ": the program has " + std::to_string(n) + (input ? " inputs" : " outputs") +
                                        ", the contract " + std::to_string(specs.size()));
    for (size_t k = 0; k < n; ++k) {
      auto info = input ? meta->input_tensor_meta(k) : meta->output_tensor_meta(k);
      if (!info.ok()) throw Error(EVJ_ERR_CONTRACT, spec.name + ": " + (input ? "input " : "output ") + specs[k].name + " is not a tensor in the program");
      auto sizes = info->sizes();
      std::vector<int64_t> shape(sizes.begin(), sizes.end());
      ScalarType want = specs[k].dtype == "int64" ? ScalarType::Long : ScalarType::Float;
      if (shape != specs[k].shape || info->scalar_type() != want)
        throw Error(EVJ_ERR_CONTRACT, spec.name + ": the program's " + (input ? "input '" : "output '") + specs[k].name + "' is " +
                                          shape_str(shape) + " of type " + std::to_string(int(info->scalar_type())) +
                                          ", the contract expects " + shape_str(specs[k].shape) + " " + specs[k].dtype +
                                          " (an artifact of another model?)");
    }
  };
  check(true, meta->num_inputs(), spec.inputs);
  check(false, meta->num_outputs(), spec.outputs);
  auto err = m.load_method(spec.name);
  if (err != executorch::runtime::Error::Ok)
    throw Error(EVJ_ERR_BACKEND, "cannot load method " + spec.name + " (" + reason("error " + std::to_string(int(err))) + ")");
  checked_.insert(spec.name);
}

std::vector<HostTensor> Backend::run(const std::string& method, const std::vector<HostTensor>& inputs) {
  const MethodSpec& spec = artifact_.method(method);
  check_tensors(method, spec.inputs, inputs, "input");
  LoadedModule& lm = module(spec.component);
  check_method(spec, lm);
  Module& m = lm.m;
  std::vector<executorch::extension::TensorPtr> ptrs;
  std::vector<EValue> values;
  for (const HostTensor& t : inputs) {
    std::vector<executorch::aten::SizesType> sizes(t.shape.begin(), t.shape.end());
    void* data = t.is_int64 ? static_cast<void*>(const_cast<int64_t*>(t.i.data())) : static_cast<void*>(const_cast<float*>(t.f.data()));
    ptrs.push_back(executorch::extension::make_tensor_ptr(std::move(sizes), data, t.is_int64 ? ScalarType::Long : ScalarType::Float));
    values.emplace_back(*ptrs.back());
  }
  take_runtime_log();
  auto result = m.execute(method, values);
  if (!result.ok()) throw Error(EVJ_ERR_BACKEND, method + ": ExecuTorch execute failed (" + reason("error " + std::to_string(int(result.error()))) + ")");
  std::vector<HostTensor> outputs;
  for (size_t k = 0; k < result->size(); ++k) {
    const EValue& v = (*result)[k];
    if (!v.isTensor()) throw Error(EVJ_ERR_CONTRACT, method + ": output " + std::to_string(k) + " is not a tensor");
    const auto& t = v.toTensor();
    HostTensor h;
    h.shape.assign(t.sizes().begin(), t.sizes().end());
    if (t.scalar_type() == ScalarType::Long) {
      h.is_int64 = true;
      h.i.assign(t.const_data_ptr<int64_t>(), t.const_data_ptr<int64_t>() + t.numel());
    } else if (t.scalar_type() == ScalarType::Float) {
      h.f.assign(t.const_data_ptr<float>(), t.const_data_ptr<float>() + t.numel());
    } else {
      throw Error(EVJ_ERR_CONTRACT, method + ": output " + std::to_string(k) + " has an unsupported dtype");
    }
    outputs.push_back(std::move(h));
  }
  check_tensors(method, spec.outputs, outputs, "output");
  return outputs;
}

void set_runtime_threads(int threads) {
  if (threads < 1) throw Error(EVJ_ERR_INVALID_ARGUMENT, "threads must be >= 1");
  auto* pool = executorch::extension::threadpool::get_threadpool();
  if (!pool || !pool->_unsafe_reset_threadpool(uint32_t(threads)))
    throw Error(EVJ_ERR_BACKEND, "the ExecuTorch thread pool cannot be resized to " + std::to_string(threads) + " threads");
}

int runtime_threads() {
  auto* pool = executorch::extension::threadpool::get_threadpool();
  return pool ? int(pool->get_thread_count()) : 1;
}

}  // namespace evj
