#include "decode.h"

#include "error.h"

namespace evj {
namespace {
int64_t argmax(const std::vector<float>& v) {
  size_t best = 0;
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] > v[best]) best = i;  // the first maximum, as np.argmax
  return int64_t(best);
}
}  // namespace

std::vector<int64_t> greedy_decode(Backend& backend, const std::vector<float>& embedding, const DecoderSpec& cfg) {
  auto out = backend.run("y_decoder_prefill", {HostTensor::floats({1, int64_t(embedding.size())}, embedding)});
  std::vector<float> logits = std::move(out.at(0).f);   // (1, V)
  HostTensor kv_cache = std::move(out.at(1));           // (layers, 2, kv_heads, max_seq_len, head_dim)
  std::vector<int64_t> ids;
  for (int n = 1; n <= cfg.max_new_tokens; ++n) {
    int64_t token = argmax(logits);  // the token at position P + n
    if (token == cfg.eos_token_id) break;
    ids.push_back(token);
    if (n == cfg.max_new_tokens) break;  // its logits would only predict a token past the limit
    out = backend.run("y_decoder_step", {HostTensor::ints({1, 1}, {token}), HostTensor::ints({1}, {int64_t(cfg.prefix_len) + n}),
                                         std::move(kv_cache)});
    logits = std::move(out.at(0).f);
    kv_cache = std::move(out.at(1));
  }
  return ids;
}

std::string decode_text(Backend& backend, const std::vector<float>& embedding, const DecoderSpec& cfg, const TextEncoder& tokenizer) {
  return tokenizer.decode(greedy_decode(backend, embedding, cfg));
}

}  // namespace evj
