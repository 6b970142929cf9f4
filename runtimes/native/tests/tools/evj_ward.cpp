// evj_ward: evj::ward_segments from the command line, for parity tests against sklearn.
//
//   evj_ward < "n d k" followed by n*d floats (text, whitespace-separated, row-major)
//
// Prints the n segment labels (0, 1, ... in temporal order) on one line, space-separated. Several
// problems may follow each other on stdin: one output line each. Bad input or an evj::Error prints
// one line on stderr, exit status 1.
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "error.h"
#include "ward.h"

int main() {
  long n = -1, d = -1, k = -1;
  int problems = 0;
  while (std::cin >> n) {
    if (!(std::cin >> d >> k) || n < 0 || d < 0 || n * d > (1L << 30)) {
      std::cerr << "error: expected 'n d k' then n*d floats on stdin\n";
      return 1;
    }
    std::vector<float> x(static_cast<size_t>(n * d));
    std::string tok;
    for (float& v : x) {
      if (!(std::cin >> tok)) {
        std::cerr << "error: expected " << n * d << " floats, the input ended early\n";
        return 1;
      }
      char* end = nullptr;
      v = std::strtof(tok.c_str(), &end);
      if (end == tok.c_str() || *end) {
        std::cerr << "error: not a number: " << tok << "\n";
        return 1;
      }
    }
    try {
      const std::vector<int> labels =
          evj::ward_segments(x, static_cast<int>(n), static_cast<int>(d), static_cast<int>(k));
      for (size_t i = 0; i < labels.size(); ++i) std::cout << (i ? " " : "") << labels[i];
      std::cout << "\n";
    } catch (const std::exception& e) {
      std::cerr << "error: " << e.what() << "\n";
      return 1;
    }
    ++problems;
  }
  if (problems == 0) {
    std::cerr << "error: expected 'n d k' then n*d floats on stdin\n";
    return 1;
  }
  return 0;
}
