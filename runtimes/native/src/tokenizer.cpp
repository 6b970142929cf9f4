// evj::Tokenizer: Hugging Face tokenizer.json (WordLevel / WordPiece) re-implemented to give the ids
// of the `tokenizers` library. The steps follow tokenizers' TokenizerImpl::encode_single_sequence:
//   1. split the raw text on the added tokens that are not normalized (leftmost-longest match),
//   2. normalize every other piece, split it on the normalized added tokens,
//   3. pre-tokenize the remaining pieces into words, 4. run the model on each word,
//   5. the post-processor adds the special tokens.
// Text is handled as UTF-32 code points internally; the vocabulary is keyed by UTF-8.
#include "tokenizer.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <nlohmann/json.hpp>

#include "error.h"
#include "unicode_tables.h"

namespace evj {
namespace {

using json = nlohmann::json;
using U32 = std::u32string;

constexpr int kMaxNesting = 64;  // Sequence normalizers / pre-tokenizers inside each other

[[noreturn]] void fail(const std::string& message) { throw Error(EVJ_ERR_TEXT, message); }

// One line, printable: control characters of a message (e.g. from JSON text) become escapes.
std::string one_line(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// UTF-8

[[noreturn]] void bad_utf8(size_t at, size_t n) {
  fail("text is not valid UTF-8 (byte " + std::to_string(at) + " of " + std::to_string(n) + ")");
}

U32 decode_utf8(const std::string& s) {
  U32 out;
  out.reserve(s.size());
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out.push_back(c);
      ++i;
      continue;
    }
    int len;
    char32_t cp, min;
    if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07, min = 0x10000;
    } else {
      bad_utf8(i, n);
    }
    if (i + len > n) bad_utf8(i, n);
    for (int k = 1; k < len; ++k) {
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) bad_utf8(i, n);
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) bad_utf8(i, n);
    out.push_back(cp);
    i += len;
  }
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string encode_utf8(const U32& s, size_t begin = 0, size_t end = std::u32string::npos) {
  std::string out;
  end = std::min(end, s.size());
  for (size_t i = begin; i < end; ++i) append_utf8(out, s[i]);
  return out;
}

// A JSON string (valid UTF-8 by nlohmann's parser) as code points.
U32 to_u32(const std::string& s) { return decode_utf8(s); }

// ---------------------------------------------------------------------------------------------
// Unicode properties (tables generated from unicodedata, measured against tokenizers)

template <size_t N>
bool in(const unicode::Range (&table)[N], char32_t c) {
  auto it = std::upper_bound(std::begin(table), std::end(table), c,
                             [](char32_t v, const unicode::Range& r) { return v < r.lo; });
  return it != std::begin(table) && c <= (it - 1)->hi;
}

bool is_whitespace(char32_t c) { return in(unicode::kWhiteSpace, c); }     // Rust char::is_whitespace
bool is_punctuation(char32_t c) { return in(unicode::kPunctuation, c); }   // ASCII punct. or P*
bool is_alnum(char32_t c) { return in(unicode::kAlnum, c); }

uint8_t ccc(char32_t c) {
  const auto& t = unicode::kCcc;
  auto it = std::upper_bound(std::begin(t), std::end(t), c,
                             [](char32_t v, const unicode::CccRange& r) { return v < r.lo; });
  return it != std::begin(t) && c <= (it - 1)->hi ? (it - 1)->ccc : 0;
}

template <size_t N, size_t M>
bool lookup(const unicode::Mapping (&table)[N], const uint32_t (&data)[M], char32_t c, U32& out) {
  auto it = std::lower_bound(std::begin(table), std::end(table), c,
                             [](const unicode::Mapping& m, char32_t v) { return m.cp < v; });
  if (it == std::end(table) || it->cp != c) return false;
  out.append(data + it->offset, data + it->offset + it->len);
  return true;
}

// NFD: full canonical decomposition (Hangul algorithmically), then canonical ordering.
U32 nfd(const U32& s) {
  U32 out;
  out.reserve(s.size());
  for (char32_t c : s) {
    if (c >= 0xAC00 && c < 0xAC00 + 11172) {
      const char32_t i = c - 0xAC00;
      out.push_back(0x1100 + i / 588);
      out.push_back(0x1161 + (i % 588) / 28);
      if (i % 28) out.push_back(0x11A7 + i % 28);
    } else if (!lookup(unicode::kDecomposition, unicode::kDecompositionData, c, out)) {
      out.push_back(c);
    }
  }
  for (size_t i = 0; i < out.size();) {  // stable sort of each run of non-starters by class
    if (ccc(out[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < out.size() && ccc(out[j]) != 0) ++j;
    std::stable_sort(out.begin() + i, out.begin() + j,
                     [](char32_t a, char32_t b) { return ccc(a) < ccc(b); });
    i = j;
  }
  return out;
}

U32 lowercase(const U32& s) {
  U32 out;
  out.reserve(s.size());
  for (char32_t c : s) {
    if (!lookup(unicode::kLowercase, unicode::kLowercaseData, c, out)) out.push_back(c);
  }
  return out;
}

U32 remove_nonspacing_marks(const U32& s) {
  U32 out;
  for (char32_t c : s) {
    if (!in(unicode::kMarkNonspacing, c)) out.push_back(c);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// JSON helpers

const json* field(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

bool get_bool(const json& obj, const char* key, bool fallback, const std::string& where) {
  const json* v = field(obj, key);
  if (!v) return fallback;
  if (!v->is_boolean()) fail(where + ": '" + key + "' must be true or false");
  return v->get<bool>();
}

std::string get_string(const json& obj, const char* key, const std::string& fallback, const std::string& where) {
  const json* v = field(obj, key);
  if (!v) return fallback;
  if (!v->is_string()) fail(where + ": '" + key + "' must be a string");
  return v->get<std::string>();
}

int64_t get_id(const json& v, const std::string& where) {
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 0xFFFFFFFFLL) {
    fail(where + " must be an integer id in [0, 2^32)");
  }
  return v.get<int64_t>();
}

std::string type_of(const json& obj, const std::string& what) {
  if (!obj.is_object()) fail(what + " must be a JSON object");
  const json* t = field(obj, "type");
  if (!t || !t->is_string()) fail(what + " has no 'type'");
  return t->get<std::string>();
}

// ---------------------------------------------------------------------------------------------
// Normalizers

struct Normalizer {
  enum Kind { kBert, kLowercase, kNfd, kStripAccents, kStrip, kSequence } kind = kSequence;
  bool clean_text = true, chinese = true, strip_accents = true, lower = true;  // kBert
  bool strip_left = true, strip_right = true;                                 // kStrip
  std::vector<Normalizer> seq;                                                // kSequence

  static Normalizer parse(const json& j, int depth) {
    if (depth > kMaxNesting) fail("normalizer: Sequence nested too deeply");
    const std::string type = type_of(j, "normalizer");
    Normalizer n;
    if (type == "BertNormalizer") {
      n.kind = kBert;
      n.clean_text = get_bool(j, "clean_text", true, type);
      n.chinese = get_bool(j, "handle_chinese_chars", true, type);
      n.lower = get_bool(j, "lowercase", true, type);
      n.strip_accents = get_bool(j, "strip_accents", n.lower, type);  // null: follows lowercase
    } else if (type == "Lowercase") {
      n.kind = kLowercase;
    } else if (type == "NFD") {
      n.kind = kNfd;
    } else if (type == "StripAccents") {
      n.kind = kStripAccents;
    } else if (type == "Strip") {
      n.kind = kStrip;
      n.strip_left = get_bool(j, "strip_left", true, type);
      n.strip_right = get_bool(j, "strip_right", true, type);
    } else if (type == "Sequence") {
      const json* list = field(j, "normalizers");
      if (!list || !list->is_array()) fail("normalizer Sequence has no 'normalizers' list");
      for (const json& item : *list) n.seq.push_back(parse(item, depth + 1));
    } else {
      fail("normalizer type '" + type +
           "' is not supported (supported: BertNormalizer, Lowercase, NFD, StripAccents, Strip, Sequence)");
    }
    return n;
  }

  void apply(U32& s) const {
    switch (kind) {
      case kBert: {
        if (clean_text) {  // drop NUL, U+FFFD and controls; whitespace becomes ' '
          U32 out;
          for (char32_t c : s) {
            if (in(unicode::kCleanRemove, c)) continue;
            out.push_back(is_whitespace(c) ? U' ' : c);
          }
          s.swap(out);
        }
        if (chinese) {  // CJK ideographs become " c "
          U32 out;
          for (char32_t c : s) {
            if (in(unicode::kChinese, c)) {
              out += U' ';
              out += c;
              out += U' ';
            } else {
              out += c;
            }
          }
          s.swap(out);
        }
        if (strip_accents) s = remove_nonspacing_marks(nfd(s));
        if (lower) s = lowercase(s);
        break;
      }
      case kLowercase: s = lowercase(s); break;
      case kNfd: s = nfd(s); break;
      case kStripAccents: s = remove_nonspacing_marks(s); break;
      case kStrip: {
        size_t b = 0, e = s.size();
        if (strip_left) while (b < e && is_whitespace(s[b])) ++b;
        if (strip_right) while (e > b && is_whitespace(s[e - 1])) --e;
        s = s.substr(b, e - b);
        break;
      }
      case kSequence:
        for (const Normalizer& n : seq) n.apply(s);
        break;
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Pre-tokenizers: tokenizers' NormalizedString::split with a char predicate.

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

template <typename Pred>
void split(const U32& s, Pred is_delim, Behavior behavior, std::vector<U32>& out) {
  struct Piece { size_t begin, end; bool match; };
  std::vector<Piece> m;  // the pattern's matches: every delimiter char alone, runs between them
  size_t last = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (!is_delim(s[i])) continue;
    if (last < i) m.push_back({last, i, false});
    m.push_back({i, i + 1, true});
    last = i + 1;
  }
  if (last < s.size()) m.push_back({last, s.size(), false});
  std::vector<Piece> pieces;
  bool previous = false;
  switch (behavior) {
    case Behavior::kRemoved:
      for (const Piece& p : m) if (!p.match) pieces.push_back(p);
      break;
    case Behavior::kIsolated:
      pieces = m;
      break;
    case Behavior::kMergedWithPrevious:
      for (const Piece& p : m) {
        if (p.match && !previous && !pieces.empty()) pieces.back().end = p.end;
        else pieces.push_back(p);
        previous = p.match;
      }
      break;
    case Behavior::kMergedWithNext:
      for (auto it = m.rbegin(); it != m.rend(); ++it) {
        if (it->match && !previous && !pieces.empty()) pieces.back().begin = it->begin;
        else pieces.push_back(*it);
        previous = it->match;
      }
      std::reverse(pieces.begin(), pieces.end());
      break;
    case Behavior::kContiguous:
      for (const Piece& p : m) {
        if (p.match == previous && !pieces.empty()) pieces.back().end = p.end;
        else pieces.push_back(p);
        previous = p.match;
      }
      break;
  }
  for (const Piece& p : pieces) {
    if (p.end > p.begin) out.push_back(s.substr(p.begin, p.end - p.begin));
  }
}

struct PreTokenizer {
  enum Kind { kBert, kWhitespaceSplit, kPunctuation, kSequence } kind = kSequence;
  Behavior behavior = Behavior::kIsolated;  // kPunctuation
  std::vector<PreTokenizer> seq;

  static PreTokenizer parse(const json& j, int depth) {
    if (depth > kMaxNesting) fail("pre_tokenizer: Sequence nested too deeply");
    const std::string type = type_of(j, "pre_tokenizer");
    PreTokenizer p;
    if (type == "BertPreTokenizer") {
      p.kind = kBert;
    } else if (type == "WhitespaceSplit") {
      p.kind = kWhitespaceSplit;
    } else if (type == "Punctuation") {
      p.kind = kPunctuation;
      const std::string b = get_string(j, "behavior", "Isolated", type);
      static const std::map<std::string, Behavior> names = {
          {"Removed", Behavior::kRemoved}, {"Isolated", Behavior::kIsolated},
          {"MergedWithPrevious", Behavior::kMergedWithPrevious},
          {"MergedWithNext", Behavior::kMergedWithNext}, {"Contiguous", Behavior::kContiguous}};
      auto it = names.find(b);
      if (it == names.end()) fail("Punctuation: unknown behavior '" + b + "'");
      p.behavior = it->second;
    } else if (type == "Sequence") {
      const json* list = field(j, "pretokenizers");
      if (!list || !list->is_array()) fail("pre_tokenizer Sequence has no 'pretokenizers' list");
      for (const json& item : *list) p.seq.push_back(parse(item, depth + 1));
    } else {
      fail("pre_tokenizer type '" + type +
           "' is not supported (supported: BertPreTokenizer, WhitespaceSplit, Punctuation, Sequence)");
    }
    return p;
  }

  // Splits every piece of `words` in place.
  void apply(std::vector<U32>& words) const {
    if (kind == kSequence) {
      for (const PreTokenizer& p : seq) p.apply(words);
      return;
    }
    std::vector<U32> out;
    for (const U32& w : words) {
      switch (kind) {
        case kBert: {
          std::vector<U32> tmp;
          split(w, is_whitespace, Behavior::kRemoved, tmp);
          for (const U32& t : tmp) split(t, is_punctuation, Behavior::kIsolated, out);
          break;
        }
        case kWhitespaceSplit: split(w, is_whitespace, Behavior::kRemoved, out); break;
        case kPunctuation: split(w, is_punctuation, behavior, out); break;
        case kSequence: break;
      }
    }
    words.swap(out);
  }
};

// ---------------------------------------------------------------------------------------------
// Added tokens: tokenizers' AddedVocabulary::find_matches (aho-corasick, leftmost-longest).

struct AddedToken {
  U32 content;  // as matched: the raw content, or the normalized content for normalized tokens
  int64_t id = 0;
  bool special = false, normalized = true, lstrip = false, rstrip = false, single_word = false;
};

class Trie {
 public:
  void add(const U32& pattern, int token) {
    if (pattern.empty()) return;
    int node = 0;
    for (char32_t c : pattern) {
      auto it = nodes_[node].next.find(c);
      if (it == nodes_[node].next.end()) {
        nodes_.push_back({});
        it = nodes_[node].next.emplace(c, static_cast<int>(nodes_.size() - 1)).first;
      }
      node = it->second;
    }
    if (nodes_[node].token < 0) nodes_[node].token = token;  // first pattern wins on duplicates
  }
  bool empty() const { return nodes_.size() == 1; }
  // The longest pattern starting at s[pos]: (token, length), or token -1.
  std::pair<int, size_t> longest(const U32& s, size_t pos) const {
    int node = 0, best = -1;
    size_t best_len = 0;
    for (size_t i = pos; i < s.size(); ++i) {
      auto it = nodes_[node].next.find(s[i]);
      if (it == nodes_[node].next.end()) break;
      node = it->second;
      if (nodes_[node].token >= 0) best = nodes_[node].token, best_len = i + 1 - pos;
    }
    return {best, best_len};
  }

 private:
  struct Node {
    std::map<char32_t, int> next;
    int token = -1;
  };
  std::vector<Node> nodes_{Node{}};
};

struct Segment {
  U32 text;
  int64_t id = -1;  // >= 0: an added token
};

std::vector<Segment> split_added(const U32& s, const Trie& trie, const std::vector<AddedToken>& tokens) {
  std::vector<Segment> out;
  if (trie.empty()) {
    out.push_back({s, -1});
    return out;
  }
  size_t start_offset = 0, pos = 0;
  while (pos < s.size()) {
    const auto [t, len] = trie.longest(s, pos);
    if (t < 0) {
      ++pos;
      continue;
    }
    const AddedToken& tok = tokens[t];
    size_t start = pos, stop = pos + len;
    pos = stop;
    if (tok.single_word) {
      const bool start_space = start == 0 || !is_alnum(s[start - 1]);
      const bool stop_space = stop == s.size() || !is_alnum(s[stop]);
      if (!start_space || !stop_space) continue;
    }
    if (tok.lstrip) {
      size_t b = start;
      while (b > 0 && is_whitespace(s[b - 1])) --b;
      start = std::max(b, start_offset);
    }
    if (tok.rstrip) {
      while (stop < s.size() && is_whitespace(s[stop])) ++stop;
      pos = stop;
    }
    if (start_offset < start) out.push_back({s.substr(start_offset, start - start_offset), -1});
    out.push_back({s.substr(start, stop - start), tok.id});
    start_offset = stop;
  }
  if (start_offset < s.size() || out.empty()) out.push_back({s.substr(start_offset), -1});
  return out;
}

// ---------------------------------------------------------------------------------------------
// Models

struct Model {
  std::string type;  // "WordLevel" or "WordPiece"
  std::unordered_map<std::string, int64_t> vocab;
  std::unordered_map<int64_t, std::string> id_to_token;
  std::string unk_token;
  std::string prefix = "##";         // WordPiece continuing_subword_prefix
  size_t max_chars = 100;            // WordPiece max_input_chars_per_word

  int64_t unk_id() const {
    auto it = vocab.find(unk_token);
    if (it == vocab.end()) fail(type + " error: Missing " + unk_token + " token from the vocabulary");
    return it->second;
  }

  // Appends the ids of one pre-tokenized word; returns false when the word maps to unk.
  bool tokenize(const U32& word, std::vector<int64_t>* ids) const {
    const std::string utf8 = encode_utf8(word);
    if (type == "WordLevel") {
      auto it = vocab.find(utf8);
      if (it != vocab.end()) {
        if (ids) ids->push_back(it->second);
        return true;
      }
      if (ids) ids->push_back(unk_id());
      return false;
    }
    // WordPiece: greedy longest-match-first over char boundaries, "##" on non-initial pieces.
    if (word.size() > max_chars) {
      if (ids) ids->push_back(unk_id());
      return false;
    }
    std::vector<size_t> offset(word.size() + 1, 0);  // byte offset of each char
    for (size_t i = 0, b = 0; i < word.size(); ++i) {
      b += word[i] < 0x80 ? 1 : word[i] < 0x800 ? 2 : word[i] < 0x10000 ? 3 : 4;
      offset[i + 1] = b;
    }
    std::vector<int64_t> pieces;
    size_t start = 0;
    while (start < word.size()) {
      size_t end = word.size();
      int64_t found = -1;
      while (start < end) {
        std::string sub = utf8.substr(offset[start], offset[end] - offset[start]);
        if (start > 0) sub = prefix + sub;
        auto it = vocab.find(sub);
        if (it != vocab.end()) {
          found = it->second;
          break;
        }
        --end;
      }
      if (found < 0) {
        if (ids) ids->push_back(unk_id());
        return false;
      }
      pieces.push_back(found);
      start = end;
    }
    if (ids) ids->insert(ids->end(), pieces.begin(), pieces.end());
    return true;
  }
};

Model parse_model(const json& j) {
  Model m;
  m.type = type_of(j, "model");
  if (m.type != "WordLevel" && m.type != "WordPiece") {
    fail("model type '" + m.type + "' is not supported (supported: WordLevel, WordPiece)");
  }
  const json* vocab = field(j, "vocab");
  if (!vocab || !vocab->is_object()) fail(m.type + ": 'vocab' must be an object of token -> id");
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    const int64_t id = get_id(it.value(), m.type + " vocab entry '" + one_line(it.key()) + "'");
    m.vocab[it.key()] = id;
    m.id_to_token[id] = it.key();
  }
  m.unk_token = get_string(j, "unk_token", m.type == "WordPiece" ? "[UNK]" : "<unk>", m.type);
  if (m.type == "WordPiece") {
    m.prefix = get_string(j, "continuing_subword_prefix", "##", m.type);
    const json* mc = field(j, "max_input_chars_per_word");
    if (mc) {
      if (!mc->is_number_unsigned()) fail("WordPiece: 'max_input_chars_per_word' must be a non-negative integer");
      m.max_chars = mc->get<size_t>();
    }
  }
  return m;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

struct Tokenizer::Impl {
  Model model;
  std::optional<Normalizer> normalizer;
  std::optional<PreTokenizer> pre_tokenizer;
  std::vector<AddedToken> added;  // index = trie token
  Trie raw_trie, normalized_trie;
  std::unordered_map<std::string, int64_t> added_ids;    // content -> id
  std::unordered_map<int64_t, std::string> added_by_id;  // id -> content
  std::unordered_set<std::string> special;               // contents of special added tokens
  std::vector<int64_t> prefix_ids, suffix_ids;            // post-processor around the sequence
  enum class Decoder { kNone, kWordPiece } decoder = Decoder::kNone;
  std::string decoder_prefix = "##";
  bool decoder_cleanup = true;

  std::optional<int64_t> token_to_id(const std::string& t) const {
    auto a = added_ids.find(t);
    if (a != added_ids.end()) return a->second;
    auto v = model.vocab.find(t);
    if (v != model.vocab.end()) return v->second;
    return std::nullopt;
  }

  // Steps 1-3: segments that are added tokens (id >= 0) or pre-tokenized words (id -1).
  std::vector<Segment> words(const std::string& utf8) const {
    std::vector<Segment> out;
    for (Segment& raw : split_added(decode_utf8(utf8), raw_trie, added)) {
      if (raw.id >= 0) {
        out.push_back(std::move(raw));
        continue;
      }
      if (normalizer) normalizer->apply(raw.text);
      for (Segment& seg : split_added(raw.text, normalized_trie, added)) {
        if (seg.id >= 0) {
          out.push_back(std::move(seg));
          continue;
        }
        std::vector<U32> ws;
        if (!seg.text.empty()) ws.push_back(std::move(seg.text));
        if (pre_tokenizer) pre_tokenizer->apply(ws);
        for (U32& w : ws) out.push_back({std::move(w), -1});
      }
    }
    return out;
  }
};

namespace {

void parse_post_processor(const json& j, Tokenizer::Impl& t) {
  const std::string type = type_of(j, "post_processor");
  auto pair_id = [&](const char* key) -> int64_t {  // BertProcessing "sep": ["[SEP]", 102]
    const json* v = field(j, key);
    if (!v || !v->is_array() || v->size() != 2 || !(*v)[0].is_string()) {
      fail(type + ": '" + key + "' must be [token, id]");
    }
    return get_id((*v)[1], type + " '" + key + "' id");
  };
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    t.prefix_ids = {pair_id("cls")};
    t.suffix_ids = {pair_id("sep")};
  } else if (type == "TemplateProcessing") {
    const json* single = field(j, "single");
    const json* specials = field(j, "special_tokens");
    if (!single || !single->is_array()) fail("TemplateProcessing has no 'single' template list");
    bool seen_sequence = false;
    for (const json& piece : *single) {
      if (!piece.is_object()) fail("TemplateProcessing: template pieces must be objects");
      if (const json* seq = field(piece, "Sequence")) {
        if (!seq->is_object()) fail("TemplateProcessing: 'Sequence' must be an object");
        if (seen_sequence) fail("TemplateProcessing: the single template has two sequences");
        const std::string sid = get_string(*seq, "id", "A", "TemplateProcessing Sequence");
        if (sid != "A") fail("TemplateProcessing: the single template uses sequence '" + one_line(sid) + "'");
        seen_sequence = true;
      } else if (const json* sp = field(piece, "SpecialToken")) {
        if (!sp->is_object()) fail("TemplateProcessing: 'SpecialToken' must be an object");
        const std::string name = get_string(*sp, "id", "", "TemplateProcessing SpecialToken");
        const json* entry = specials && specials->is_object() ? field(*specials, name.c_str()) : nullptr;
        const json* ids = entry && entry->is_object() ? field(*entry, "ids") : nullptr;
        if (!ids || !ids->is_array()) {
          fail("TemplateProcessing: special token '" + one_line(name) + "' is missing from special_tokens");
        }
        auto& dst = seen_sequence ? t.suffix_ids : t.prefix_ids;
        for (const json& id : *ids) dst.push_back(get_id(id, "TemplateProcessing special token id"));
      } else {
        fail("TemplateProcessing: a template piece is neither Sequence nor SpecialToken");
      }
    }
    if (!seen_sequence) fail("TemplateProcessing: the single template has no sequence");
  } else {
    fail("post_processor type '" + type +
         "' is not supported (supported: TemplateProcessing, BertProcessing, RobertaProcessing)");
  }
}

void parse_decoder(const json& j, Tokenizer::Impl& t) {
  const std::string type = type_of(j, "decoder");
  if (type != "WordPiece") fail("decoder type '" + type + "' is not supported (supported: WordPiece)");
  t.decoder = Tokenizer::Impl::Decoder::kWordPiece;
  t.decoder_prefix = get_string(j, "prefix", "##", type);
  t.decoder_cleanup = get_bool(j, "cleanup", true, type);
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) {
    s.replace(p, from.size(), to);
  }
}

// tokenizers' decoders::wordpiece::cleanup (applied to each token, as tokenizers does)
void cleanup(std::string& s) {
  static const std::pair<const char*, const char*> rules[] = {
      {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
      {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : rules) replace_all(s, from, to);
}

std::shared_ptr<Tokenizer::Impl> parse(const std::string& text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail("not valid JSON: " + one_line(e.what()));
  }
  if (!j.is_object()) fail("a tokenizer.json must be a JSON object");
  auto t = std::make_shared<Tokenizer::Impl>();
  const json* model = field(j, "model");
  if (!model) fail("no 'model'");
  t->model = parse_model(*model);
  if (const json* n = field(j, "normalizer")) t->normalizer = Normalizer::parse(*n, 0);
  if (const json* p = field(j, "pre_tokenizer")) t->pre_tokenizer = PreTokenizer::parse(*p, 0);
  if (const json* p = field(j, "post_processor")) parse_post_processor(*p, *t);
  if (const json* d = field(j, "decoder")) parse_decoder(*d, *t);

  if (const json* list = field(j, "added_tokens")) {
    if (!list->is_array()) fail("'added_tokens' must be a list");
    int64_t max_added = -1;
    for (const json& a : *list) {
      if (!a.is_object()) fail("added_tokens entries must be objects");
      AddedToken tok;
      const json* content = field(a, "content");
      if (!content || !content->is_string()) fail("an added token has no 'content'");
      const std::string utf8 = content->get<std::string>();
      if (const json* id = field(a, "id")) get_id(*id, "added token '" + one_line(utf8) + "' id");
      tok.special = get_bool(a, "special", false, "added token");
      tok.normalized = get_bool(a, "normalized", !tok.special, "added token");
      tok.lstrip = get_bool(a, "lstrip", false, "added token");
      tok.rstrip = get_bool(a, "rstrip", false, "added token");
      tok.single_word = get_bool(a, "single_word", false, "added token");
      if (utf8.empty() || t->added_ids.count(utf8)) continue;  // tokenizers ignores these
      // tokenizers' AddedVocabulary::add_tokens ignores the file's id: the model's id when the
      // model has the token, else the next id after the vocabulary and the added tokens so far.
      if (auto v = t->model.vocab.find(utf8); v != t->model.vocab.end()) {
        tok.id = v->second;
      } else {
        const int64_t size = static_cast<int64_t>(t->model.vocab.size());
        tok.id = size;
        if (max_added >= 0 && (max_added >= size || size == 0)) tok.id = max_added + 1;
      }
      max_added = std::max(max_added, tok.id);
      tok.content = to_u32(utf8);
      const int index = static_cast<int>(t->added.size());
      if (tok.normalized) {
        if (t->normalizer) t->normalizer->apply(tok.content);  // matched in normalized text
        t->normalized_trie.add(tok.content, index);
      } else {
        t->raw_trie.add(tok.content, index);
      }
      t->added_ids[utf8] = tok.id;
      // tokenizers 0.23 decodes a normalized added token as its normalized content (and then skips
      // it as special only if that equals a special token's content)
      t->added_by_id[tok.id] = tok.normalized ? encode_utf8(tok.content) : utf8;
      if (tok.special) t->special.insert(utf8);
      t->added.push_back(std::move(tok));
    }
  }
  return t;
}

}  // namespace

Tokenizer Tokenizer::from_json(const std::string& json_text) {
  try {
    return Tokenizer(parse(json_text));
  } catch (const nlohmann::json::exception& e) {  // a value of an unexpected JSON type
    fail("tokenizer.json: " + one_line(e.what()));
  } catch (const Error& e) {
    throw Error(EVJ_ERR_TEXT, "tokenizer.json: " + std::string(e.what()));
  }
}

Tokenizer Tokenizer::from_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream buf;
  if (f) buf << f.rdbuf();
  if (!f || f.bad()) throw Error(EVJ_ERR_IO, "cannot read tokenizer file " + one_line(path));
  try {
    return Tokenizer(parse(buf.str()));
  } catch (const nlohmann::json::exception& e) {
    throw Error(EVJ_ERR_TEXT, one_line(path) + ": " + one_line(e.what()));
  } catch (const Error& e) {
    throw Error(EVJ_ERR_TEXT, one_line(path) + ": " + e.what());
  }
}

std::vector<int64_t> Tokenizer::encode(const std::string& utf8) const {
  std::vector<int64_t> ids = impl_->prefix_ids;
  for (const Segment& s : impl_->words(utf8)) {
    if (s.id >= 0) ids.push_back(s.id);
    else impl_->model.tokenize(s.text, &ids);
  }
  ids.insert(ids.end(), impl_->suffix_ids.begin(), impl_->suffix_ids.end());
  return ids;
}

std::vector<std::string> Tokenizer::unknown_words(const std::string& utf8) const {
  std::vector<std::string> out;
  for (const Segment& s : impl_->words(utf8)) {
    if (s.id < 0 && !impl_->model.tokenize(s.text, nullptr)) out.push_back(encode_utf8(s.text));
  }
  return out;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids) const {
  const Impl& t = *impl_;
  std::vector<std::string> tokens;
  for (int64_t id : ids) {
    const std::string* token = nullptr;
    if (auto a = t.added_by_id.find(id); a != t.added_by_id.end()) token = &a->second;
    else if (auto m = t.model.id_to_token.find(id); m != t.model.id_to_token.end()) token = &m->second;
    if (!token || t.special.count(*token)) continue;  // unknown ids and special tokens are skipped
    tokens.push_back(*token);
  }
  std::string out;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (t.decoder == Impl::Decoder::kNone) {
      if (i) out += ' ';
      out += tokens[i];
      continue;
    }
    std::string tok = tokens[i];
    if (i != 0) {
      if (tok.compare(0, t.decoder_prefix.size(), t.decoder_prefix) == 0) tok.erase(0, t.decoder_prefix.size());
      else tok = " " + tok;
    }
    if (t.decoder_cleanup) cleanup(tok);
    out += tok;
  }
  return out;
}

int64_t Tokenizer::pad_id() const { return impl_->token_to_id("[PAD]").value_or(0); }

std::optional<int64_t> Tokenizer::token_to_id(const std::string& token) const { return impl_->token_to_id(token); }

const std::string& Tokenizer::model_type() const { return impl_->model.type; }

size_t Tokenizer::vocab_size() const { return impl_->model.vocab.size(); }

}  // namespace evj
