// evj_tokenize: the native tokenizer from the command line, for parity tests against tokenizers.
//
//   evj_tokenize TOKENIZER_JSON [--json] [--decode | --unknown] < lines
//
// Default: one UTF-8 text per input line -> its ids, space-separated, one line per text.
// --decode: one line of space-separated ids per input line -> the decoded text.
// --unknown: one text per line -> its unknown words as a JSON list.
// --json: input texts and output texts are JSON string literals (texts with newlines).
// A line that fails (e.g. invalid UTF-8) prints "error: <message>" in its place, exit status 1.
// A tokenizer that does not load prints its one-line error on stderr, exit status 2.
#include <cstdlib>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "error.h"
#include "tokenizer.h"

int main(int argc, char** argv) {
  std::string path;
  bool decode = false, unknown = false, as_json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--decode") decode = true;
    else if (a == "--unknown") unknown = true;
    else if (a == "--json") as_json = true;
    else if (path.empty() && a.rfind("--", 0) != 0) path = a;
    else {
      std::cerr << "usage: evj_tokenize TOKENIZER_JSON [--json] [--decode | --unknown] < lines\n";
      return 2;
    }
  }
  if (path.empty()) {
    std::cerr << "usage: evj_tokenize TOKENIZER_JSON [--json] [--decode | --unknown] < lines\n";
    return 2;
  }
  std::optional<evj::Tokenizer> tok;
  try {
    tok.emplace(evj::Tokenizer::from_file(path));
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
  int status = 0;
  std::string line;
  while (std::getline(std::cin, line)) {
    try {
      if (decode) {
        std::istringstream in(line);
        std::vector<int64_t> ids;
        for (int64_t id; in >> id;) ids.push_back(id);
        const std::string text = tok->decode(ids);
        std::cout << (as_json ? nlohmann::json(text).dump() : text) << "\n";
        continue;
      }
      const std::string text = as_json ? nlohmann::json::parse(line).get<std::string>() : line;
      if (unknown) {
        std::cout << nlohmann::json(tok->unknown_words(text)).dump() << "\n";
        continue;
      }
      const std::vector<int64_t> ids = tok->encode(text);
      for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
      std::cout << "\n";
    } catch (const std::exception& e) {
      std::cout << "error: " << e.what() << "\n";
      status = 1;
    }
  }
  return status;
}
