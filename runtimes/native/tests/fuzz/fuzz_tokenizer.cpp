// libFuzzer target for evj::Tokenizer (tokenizer.json is an untrusted file inside an artifact;
// queries and labels are untrusted text).
//
// Every input is used three ways: as tokenizer.json text (from_json must load it or throw
// evj::Error; a loaded tokenizer must encode and decode without crashing), as input text to a valid
// BERT-like tokenizer (encode / unknown_words; invalid UTF-8 must be an evj::Error), and as a list
// of ids to decode. Any other exception, crash or sanitizer report is a bug.
//
//   clang++-14 -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -I src -I include \
//     tests/fuzz/fuzz_tokenizer.cpp src/tokenizer.cpp -o fuzz_tokenizer && ./fuzz_tokenizer -max_total_time=60
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "error.h"
#include "tokenizer.h"

namespace {

const char* kBertJson = R"({
  "added_tokens": [
    {"id": 0, "content": "[PAD]", "special": true, "normalized": false},
    {"id": 1, "content": "[UNK]", "special": true, "normalized": false},
    {"id": 2, "content": "[CLS]", "special": true, "normalized": false},
    {"id": 3, "content": "[SEP]", "special": true, "normalized": false},
    {"id": 20, "content": "<x>", "special": false, "normalized": true, "lstrip": true, "rstrip": true},
    {"id": 21, "content": "word", "special": false, "normalized": false, "single_word": true}],
  "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                 "strip_accents": null, "lowercase": true},
  "pre_tokenizer": {"type": "BertPreTokenizer"},
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
               {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
    "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                       "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
  "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
  "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100,
            "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "a": 4, "##a": 5, "b": 6, "##b": 7,
                      "ab": 8, "##ab": 9, ".": 10, "'": 11, "s": 12, "##s": 13, "é": 14, "中": 15,
                      "<x>": 20}}})";

void exercise(const evj::Tokenizer& t, const std::string& text, const std::vector<int64_t>& ids) {
  try {
    (void)t.encode(text);
    (void)t.unknown_words(text);
  } catch (const evj::Error&) {  // invalid UTF-8, or a missing unk token
  }
  (void)t.decode(ids);
  (void)t.decode(t.encode("a b. ab's word <x> é 中"));
  (void)t.pad_id();
  (void)t.token_to_id(text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const evj::Tokenizer bert = evj::Tokenizer::from_json(kBertJson);
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  std::vector<int64_t> ids(size / 8);
  if (!ids.empty()) std::memcpy(ids.data(), data, ids.size() * 8);
  for (int64_t& id : ids) id %= 64;  // mostly ids the vocabulary has, some negative ones

  exercise(bert, bytes, ids);
  try {
    const evj::Tokenizer t = evj::Tokenizer::from_json(bytes);
    exercise(t, "a b. ab's word <x> é 中", ids);
    exercise(t, bytes, ids);
  } catch (const evj::Error&) {  // malformed or unsupported tokenizer.json
  }
  return 0;
}
