"""Generate runtimes/native/src/unicode_tables.h: the Unicode tables of the native tokenizer.

The native tokenizer (runtimes/native/src/tokenizer.cpp) must give the same ids as Hugging Face
`tokenizers`, whose Rust crates do not share one Unicode version: the BERT normalizer's control and
non-spacing-mark tests and the punctuation test come from the `unicode_categories` crate (an old
Unicode, and its "other" excludes unassigned code points), NFD from `unicode-normalization-alignments`,
lowercasing and White_Space from the Rust standard library (a recent Unicode). Python's `unicodedata`
(Unicode 14 on Python 3.11) differs from each of them on a few hundred code points.

So each property is computed from `unicodedata` first and then measured on the installed
`tokenizers` (the reference the Python loop uses) for every code point; where the two disagree the
measured behaviour wins, and the number of such code points is printed per table. Canonical combining
classes (for NFD reordering) come from `unicodedata` alone. Run:

    python runtimes/native/tools/gen_unicode_tables.py [--out runtimes/native/src/unicode_tables.h]
"""

from __future__ import annotations

import argparse
import sys
import unicodedata as ud
from pathlib import Path

from tokenizers import normalizers, pre_tokenizers

OUT = Path(__file__).resolve().parents[1] / "src" / "unicode_tables.h"
CODE_POINTS = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
# Rust char::is_whitespace: the White_Space property (PropList.txt), stable since Unicode 6.
WHITE_SPACE = {*range(0x9, 0xE), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029,
               0x202F, 0x205F, 0x3000}
ASCII_PUNCT = {ord(c) for c in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"}
S_BASE, L_BASE, V_BASE, T_BASE, L_COUNT, V_COUNT, T_COUNT = 0xAC00, 0x1100, 0x1161, 0x11A7, 19, 21, 28
N_COUNT, S_COUNT = V_COUNT * T_COUNT, L_COUNT * V_COUNT * T_COUNT


def hangul_nfd(c: int) -> list[int]:
    s = c - S_BASE
    out = [L_BASE + s // N_COUNT, V_BASE + (s % N_COUNT) // T_COUNT]
    if s % T_COUNT:
        out.append(T_BASE + s % T_COUNT)
    return out


def ranges(points) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for c in sorted(points):
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return [tuple(r) for r in out]


def report(name: str, from_ucd: set, measured: set) -> None:
    diff = sorted(from_ucd ^ measured)
    sample = " ".join(f"U+{c:04X}" for c in diff[:8])
    print(f"{name}: {len(measured)} code points; tokenizers differs from unicodedata on {len(diff)}"
          f"{' (' + sample + (' ...' if len(diff) > 8 else '') + ')' if diff else ''}", file=sys.stderr)


def report_map(name: str, from_ucd: dict, measured: dict) -> None:
    diff = sorted(c for c in set(from_ucd) | set(measured) if from_ucd.get(c) != measured.get(c))
    sample = " ".join(f"U+{c:04X}" for c in diff[:8])
    print(f"{name}: {len(measured)} code points mapped; tokenizers differs from unicodedata on {len(diff)}"
          f"{' (' + sample + (' ...' if len(diff) > 8 else '') + ')' if diff else ''}", file=sys.stderr)


def measure():
    clean = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False,
                                       lowercase=False)
    chinese = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=True, strip_accents=False,
                                         lowercase=False)
    strip = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=True,
                                       lowercase=False)
    nfd, lower = normalizers.NFD(), normalizers.Lowercase()
    punct, white = pre_tokenizers.Punctuation(), pre_tokenizers.WhitespaceSplit()
    t = {k: set() for k in ("remove", "chinese", "mn", "punct", "white")}
    t["decomp"], t["lower"] = {}, {}
    u = {k: set() for k in ("remove", "mn", "punct")}
    u["decomp"], u["lower"] = {}, {}
    for c in CODE_POINTS:
        s = chr(c)
        cat = ud.category(s)
        if clean.normalize_str(s) == "":
            t["remove"].add(c)
        if c in (0, 0xFFFD) or (cat[0] == "C" and c not in (9, 10, 13)):
            u["remove"].add(c)
        if chinese.normalize_str(s) == f" {s} ":
            t["chinese"].add(c)
        d = nfd.normalize_str(s)
        if d != s:
            t["decomp"][c] = [ord(x) for x in d]
        if ud.normalize("NFD", s) != s:
            u["decomp"][c] = [ord(x) for x in ud.normalize("NFD", s)]
        if d == s and strip.normalize_str(s) == "":
            t["mn"].add(c)
        if cat == "Mn":
            u["mn"].add(c)
        low = lower.normalize_str(s)
        if low != s:
            t["lower"][c] = [ord(x) for x in low]
        if s.lower() != s:
            u["lower"][c] = [ord(x) for x in s.lower()]
        if len(punct.pre_tokenize_str(f"a{s}a")) == 3:
            t["punct"].add(c)
        if cat[0] == "P" or c in ASCII_PUNCT:
            u["punct"].add(c)
        if len(white.pre_tokenize_str(f"a{s}a")) == 2:
            t["white"].add(c)
    # consistency: BertNormalizer strip_accents == NFD then drop the measured Mn set, per code point
    for c in CODE_POINTS:
        got = strip.normalize_str(chr(c))
        want = "".join(chr(x) for x in t["decomp"].get(c, [c]) if x not in t["mn"])
        assert got == want, f"strip_accents model fails at U+{c:04X}"
    for c in range(S_BASE, S_BASE + S_COUNT):
        assert t["decomp"][c] == hangul_nfd(c), f"Hangul U+{c:04X}"
    return t, u


def emit_ranges(name: str, rs, comment: str) -> str:
    body = ",".join(f"{{0x{a:X},0x{b:X}}}" for a, b in rs)
    return f"// {comment}\ninline constexpr Range {name}[] = {{{body}}};\n"


def emit_map(name: str, m: dict[int, list[int]], comment: str) -> str:
    entries, data = [], []
    for c in sorted(m):
        entries.append(f"{{0x{c:X},{len(data)},{len(m[c])}}}")
        data.extend(m[c])
    return (f"// {comment}\ninline constexpr Mapping {name}[] = {{{','.join(entries)}}};\n"
            f"inline constexpr uint32_t {name}Data[] = {{{','.join(f'0x{x:X}' for x in data)}}};\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT, help="header to write")
    args = ap.parse_args(argv)
    import tokenizers
    print(f"unicodedata {ud.unidata_version}, tokenizers {tokenizers.__version__}", file=sys.stderr)
    t, u = measure()
    assert t["white"] == WHITE_SPACE, "tokenizers' whitespace is not White_Space"
    report("clean_text removes", u["remove"], t["remove"])
    report("non-spacing marks", u["mn"], t["mn"])
    report("punctuation", u["punct"], t["punct"])
    report_map("NFD", u["decomp"], t["decomp"])
    report_map("lowercase", u["lower"], t["lower"])
    decomp = {c: v for c, v in t["decomp"].items() if not S_BASE <= c < S_BASE + S_COUNT}
    ccc = {}
    for c in CODE_POINTS:
        if ud.combining(chr(c)):
            ccc[c] = ud.combining(chr(c))
    ccc_ranges: list[list[int]] = []
    for c in sorted(ccc):
        if ccc_ranges and ccc_ranges[-1][1] == c - 1 and ccc_ranges[-1][2] == ccc[c]:
            ccc_ranges[-1][1] = c
        else:
            ccc_ranges.append([c, c, ccc[c]])
    alnum = {c for c in CODE_POINTS if ud.category(chr(c))[0] in "LN"}
    parts = [
        "// Generated by runtimes/native/tools/gen_unicode_tables.py; do not edit.\n"
        f"// unicodedata {ud.unidata_version}, measured against tokenizers {tokenizers.__version__}.\n"
        "#pragma once\n\n#include <cstdint>\n\nnamespace evj::unicode {\n\n"
        "struct Range { uint32_t lo, hi; };\n"
        "struct CccRange { uint32_t lo, hi; uint8_t ccc; };\n"
        "struct Mapping { uint32_t cp; uint16_t offset; uint8_t len; };\n\n",
        emit_ranges("kWhiteSpace", ranges(WHITE_SPACE), "Rust char::is_whitespace (White_Space)"),
        emit_ranges("kCleanRemove", ranges(t["remove"]),
                    "BertNormalizer clean_text removes these (NUL, U+FFFD, 'other' except \\t \\n \\r)"),
        emit_ranges("kChinese", ranges(t["chinese"]), "BertNormalizer handle_chinese_chars"),
        emit_ranges("kMarkNonspacing", ranges(t["mn"]), "non-spacing marks removed by strip_accents"),
        emit_ranges("kPunctuation", ranges(t["punct"]),
                    "ASCII punctuation or Unicode P* (Punctuation, BertPreTokenizer)"),
        emit_ranges("kAlnum", ranges(alnum), "L* or N* (approximates Rust char::is_alphanumeric)"),
        "// canonical combining classes (non-zero)\ninline constexpr CccRange kCcc[] = {"
        + ",".join(f"{{0x{a:X},0x{b:X},{k}}}" for a, b, k in ccc_ranges) + "};\n",
        emit_map("kDecomposition", decomp, "full canonical decompositions (NFD), Hangul syllables excluded"),
        emit_map("kLowercase", t["lower"], "Rust char::to_lowercase where it is not the identity"),
        "\n}  // namespace evj::unicode\n",
    ]
    args.out.write_text("".join(parts))
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
