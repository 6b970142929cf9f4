// Greedy decoding of an embedding into text (Python: edge_vljepa/streaming/decode.py) over
// y_decoder_prefill / y_decoder_step with the explicit KV cache: prefix at 0..P-1, BOS at P, the n-th
// generated token at P + n; argmax (first maximum), stop at EOS or max_new_tokens.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "artifact.h"
#include "backend.h"
#include "preprocess.h"

namespace evj {

std::vector<int64_t> greedy_decode(Backend& backend, const std::vector<float>& embedding, const DecoderSpec& cfg);
std::string decode_text(Backend& backend, const std::vector<float>& embedding, const DecoderSpec& cfg, const TextEncoder& tokenizer);

}  // namespace evj
