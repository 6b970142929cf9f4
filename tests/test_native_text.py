"""Native core text and segmentation pieces against their Python references.

runtimes/native/src/tokenizer.cpp must give the ids of Hugging Face `tokenizers` (what
edge_vljepa/preprocess.py TextTokenizer uses) for both tokenizers the shipped models use: the
synthetic world's WordLevel tokenizer and all-MiniLM-L6-v2's BERT WordPiece tokenizer. Its decode
must equal `decode(ids, skip_special_tokens=True)`. runtimes/native/src/ward.cpp must give the
segments of edge_vljepa/streaming/policies.py `ward_segments` (sklearn Ward with a chain
connectivity), ties included.

The two command-line tools (runtimes/native/tests/tools/evj_tokenize.cpp, evj_ward.cpp) come from the
native core's build (the session's `native` fixture, tests/conftest.py).
"""

from __future__ import annotations

import json
import random
import subprocess
from itertools import product
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
NATIVE = ROOT / "runtimes" / "native"
WORLD_JSON = ROOT / "edge_vljepa" / "assets" / "world_tokenizer.json"
LABELS = ROOT / "edge_vljepa" / "assets" / "default" / "labels.txt"


@pytest.fixture(scope="module")
def tools(native):
    """The two tools of the core's build (tests/tools/evj_tokenize.cpp, evj_ward.cpp)."""
    return {tool: native["build_dir"] / tool for tool in ("evj_tokenize", "evj_ward")}


# --- corpus ------------------------------------------------------------------------------------------

EDGE_TEXTS = [
    "", " ", "   ", "\t", "\n", "hello", "HELLO World", "  extra   spaces  here  ", "a,b.c!d?e;f:g",
    "don't stop, it's fine.", "co-operate e-mail@example.com", "$100.00 + 5% = ~$105", "3.14159 2,718",
    "12345 67890 007", "#hashtag @user (paren) [bracket] {brace} <angle>", "naïve café résumé",
    "Ångström", "Straße", "İstanbul ıi", "ΣΊΣΥΦΟΣ σίσυφος", "ﬁ ligature ﬀ", "①②③ ½ x² H₂O",
    "Ｆｕｌｌｗｉｄｔｈ　ｔｅｘｔ", "你好世界", "日本語のテキストです", "한국어 텍스트", "emoji 😀🎉👍🏽",
    "🥰 newer emoji 🫠", "👨‍👩‍👧 family", "zero\u200bwidth", "soft\u00adhyphen", "bidi\u202etext",
    "tab\there", "new\nline", "cr\rlf\r\n", "\u2028line sep", "\u0085next line", "nbsp\u00a0here",
    "ideographic\u3000space", "control\x01\x07\x7f chars", "\ufffd replacement", "\x00nul",
    "a" * 100, "a" * 101, "b" * 150, "red" * 40, "supercalifragilisticexpialidocious",
    "antidisestablishmentarianism", "xyzzy qwertyuiop zxcvbnm", "[CLS] [SEP] [PAD] [MASK] [UNK]",
    "[cls] [sep]", "hello[SEP]world", "[SEP][SEP]", "a [ SEP ]", "[CLS]red circle[SEP]",
    "combining e\u0301 a\u0300 o\u0308\u0301", "Å vs A\u030a", "ǅ titlecase ǈ", "Ⅻ roman ⅻ",
    "mañana Zürich Þórr", "Ελληνικά", "русский текст", "العربية", "עברית", "हिन्दी", "ภาษาไทย",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝐁𝐨𝐥𝐝", "musical 𝅘𝅥𝅮 \U0001D165\U0001D16D", "\u0f73\u0f75 tibetan", "ᾂ ᾯ greek",
    "Ω Å K", "…—–“quotes” ‘single’ «guillemets»", "¿qué? ¡sí!", "a\u0345b", "\u0340\u0341\u0343\u0344",
    "ﬃ ﬄ ﬅ", "ǰ ΐ", "\u1734 \U00011938", "\u1c89 \ua7cb", "\U0001144b newa", "what colour is the star?",
    "RED CIRCLE MOVING LEFT", "Red Circle, moving LEFT!", "red  circle\tmoving\nleft",
    "the red circle is moving left. the blue square rotates", "...", "?!?!", "'", "' quoted '",
    "it 's", "do not", "they 're", "we 've", "I 'm", "can n't",
]


def world_texts() -> list[str]:
    from edge_vljepa.data import world
    rng = random.Random(0)
    texts = []
    combos = product(world.COLOURS, world.SHAPES, world.SIZES, world.ACTIONS.values(),
                     range(1, world.MAX_OBJECTS + 1))
    for colour, shape, size, action, count in combos:
        if rng.random() > 0.04:
            continue
        fields = world._fields(colour, shape, size, action, count)
        texts += [world._articles(t.text.format(**fields)) for t in world.CAPTION_TEMPLATES]
        texts += [q["question"] for q in world._questions(fields, action, count)]
    return texts


def random_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    pools = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", " \t\n\r\x0b\x0c\u00a0\u2003\u3000\u0085\u2028",
        "àáâãäåçèéêëìíîïñòóôõöùúûüýÿœæßÀÉÎÕÜ", "\u0300\u0301\u0302\u0308\u0327\u0345\u20d7",
        "的一是不了人我在有他这中大来上国个到说们", "가나다라마바사아자차카타파하", "😀🎉👍🏽🥰🫠❤️‍🔥",
    ]
    words = ["red", "circle", "moving", "left", "[SEP]", "[CLS]", "[MASK]", "the", "unbelievable"]
    texts = []
    for _ in range(n):
        chars = []
        for _ in range(rng.randint(1, 40)):
            r = rng.random()
            if r < 0.75:
                chars.append(rng.choice(rng.choice(pools)))
            elif r < 0.85:
                chars.append(rng.choice(words))
            else:  # any code point, assigned or not (no surrogates: not encodable as UTF-8)
                c = rng.choice([rng.randrange(0x80, 0x800), rng.randrange(0x800, 0x10000),
                                rng.randrange(0x10000, 0x110000)])
                chars.append(chr(c) if not 0xD800 <= c <= 0xDFFF else "x")
        texts.append("".join(chars))
    return texts


def corpus() -> list[str]:
    labels = LABELS.read_text().splitlines()
    texts = list(EDGE_TEXTS) + labels + world_texts()
    texts += [t.upper() for t in labels[::7]] + [t.title() + "!" for t in labels[3::11]]
    texts += [f"  {t},  {t.upper()}?  " for t in labels[5::13]]
    return texts + random_texts(400, seed=1)


def hf_tokenizer(path: Path):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(path))
    tok.no_padding()  # as edge_vljepa.preprocess.TextTokenizer: the MiniLM file pads and truncates to 128
    tok.no_truncation()
    return tok


def tokenizer_files() -> dict[str, Path]:
    from edge_vljepa.preprocess import tokenizer_file
    return {"world": WORLD_JSON, "minilm": tokenizer_file("minilm")}


def run_tool(tool: Path, args: list[str], lines: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(tool), *args], input="".join(f"{line}\n" for line in lines),
                          capture_output=True, text=True, encoding="utf-8", timeout=300)


# --- tokenizer ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["world", "minilm"])
def test_encode_and_decode_match_tokenizers(tools, name):
    path = tokenizer_files()[name]
    hf = hf_tokenizer(path)
    texts = corpus()
    assert len(texts) > 1000
    want = [hf.encode(t).ids for t in texts]
    out = run_tool(tools["evj_tokenize"], [str(path), "--json"], [json.dumps(t) for t in texts])
    assert out.returncode == 0, out.stderr + out.stdout[-2000:]
    got = [[int(x) for x in line.split()] for line in out.stdout.splitlines()]
    assert len(got) == len(texts)
    bad = [(t, w, g) for t, w, g in zip(texts, want, got, strict=True) if w != g]
    assert not bad, f"{len(bad)} of {len(texts)} texts differ, e.g. {bad[:3]}"

    # decode: the ids of every text, plus random id sequences (special and unknown ids included)
    rng = random.Random(2)
    size = hf.get_vocab_size()
    id_lists = want + [[rng.randrange(size + 20) for _ in range(rng.randint(0, 30))] for _ in range(300)]
    out = run_tool(tools["evj_tokenize"], [str(path), "--json", "--decode"],
                   [" ".join(map(str, ids)) for ids in id_lists])
    assert out.returncode == 0, out.stderr
    decoded = [json.loads(line) for line in out.stdout.splitlines()]
    want_text = [hf.decode(ids, skip_special_tokens=True) for ids in id_lists]
    bad = [(ids, w, g) for ids, w, g in zip(id_lists, want_text, decoded, strict=True) if w != g]
    assert not bad, f"{len(bad)} of {len(id_lists)} decodes differ, e.g. {bad[:3]}"


@pytest.mark.parametrize("name", ["world", "minilm"])
def test_unknown_words(tools, name):
    path = tokenizer_files()[name]
    hf = hf_tokenizer(path)
    unk = hf.token_to_id("[UNK]")
    texts = ["red circle moving left", "a zorblax glorps", "x" * 120, "the café 你好 🥰"]
    out = run_tool(tools["evj_tokenize"], [str(path), "--json", "--unknown"], [json.dumps(t) for t in texts])
    assert out.returncode == 0, out.stderr
    for text, line in zip(texts, out.stdout.splitlines(), strict=True):
        words = json.loads(line)
        assert (unk in hf.encode(text).ids) == bool(words), (text, words)
    assert json.loads(out.stdout.splitlines()[0]) == []


def test_invalid_utf8_is_a_one_line_error(tools):
    proc = subprocess.run([str(tools["evj_tokenize"]), str(WORLD_JSON)], input=b"ok\n\xff\xfe bad\nred\n",
                          capture_output=True, timeout=60)
    lines = proc.stdout.decode().splitlines()
    assert proc.returncode == 1 and len(lines) == 3
    assert lines[1].startswith("error: ") and "UTF-8" in lines[1]
    assert lines[0] == "2 1 3" and lines[2] != lines[1]


def _save(tmp_path: Path, name: str, tokenizer) -> Path:
    path = tmp_path / f"{name}.json"
    tokenizer.save(str(path))
    return path


def test_other_models_and_bad_files_are_refused(tools, tmp_path):
    from tokenizers import Tokenizer, models
    bpe = Tokenizer(models.BPE(vocab={"a": 0, "b": 1, "ab": 2, "<unk>": 3}, merges=[("a", "b")],
                               unk_token="<unk>"))
    unigram = Tokenizer(models.Unigram([("<unk>", 0.0), ("a", -1.0), ("b", -2.0)], unk_id=0))
    cases = {
        "BPE": _save(tmp_path, "bpe", bpe),
        "Unigram": _save(tmp_path, "unigram", unigram),
        "JSON": tmp_path / "malformed.json",
        "missing.json": tmp_path / "missing.json",
    }
    cases["JSON"].write_text('{"model": {"type": "WordLevel", "vocab": {"a": 0}')  # truncated
    for needle, path in cases.items():
        proc = run_tool(tools["evj_tokenize"], [str(path)], ["a b"])
        assert proc.returncode == 2, (needle, proc.stdout)
        message = proc.stderr.strip()
        assert "\n" not in message and needle in message and str(path) in message, message
        assert message.startswith("error: ")


def test_loader_refuses_unsupported_pieces(tools, tmp_path):
    """A WordPiece file with a normalizer or pre-tokenizer this port does not implement is refused
    on load (naming it), rather than silently giving other ids than tokenizers."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    for attr, value, needle in (("normalizer", normalizers.NFKC(), "NFKC"),
                                ("pre_tokenizer", pre_tokenizers.Whitespace(), "Whitespace")):
        tok = Tokenizer(models.WordPiece({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
        setattr(tok, attr, value)
        proc = run_tool(tools["evj_tokenize"], [str(_save(tmp_path, needle, tok))], ["a"])
        assert proc.returncode == 2 and needle in proc.stderr and "not supported" in proc.stderr, proc.stderr


def test_other_supported_pieces_match(tools, tmp_path):
    """Pieces the shipped files do not use but the loader accepts: NFD + StripAccents + Strip,
    punctuation split behaviours, added (non-special, normalized) tokens, BertProcessing."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    vocab = {w: i for i, w in enumerate(["[UNK]", "[CLS]", "[SEP]", "cafe", "a", "b", "!", "!b", "a!", "!!",
                                         "##b", "##!", "hello", "new", "tok", "e"])}
    texts = ["Café a!b", "  a!!b  ", "hello NEWTOK world", "newtok!", "a!b!!", "é!!", "", "  "]
    for behavior in ("removed", "isolated", "merged_with_previous", "merged_with_next", "contiguous"):
        tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=5))
        tok.normalizer = normalizers.Sequence([normalizers.Strip(), normalizers.NFD(),
                                               normalizers.StripAccents(), normalizers.Lowercase()])
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                     pre_tokenizers.Punctuation(behavior)])
        tok.post_processor = processors.BertProcessing(("[SEP]", 2), ("[CLS]", 1))
        tok.decoder = decoders.WordPiece()
        tok.add_special_tokens(["[CLS]", "[SEP]"])
        tok.add_tokens([AddedToken("newtok", normalized=True)])
        path = _save(tmp_path, behavior, tok)
        hf = Tokenizer.from_file(str(path))
        out = run_tool(tools["evj_tokenize"], [str(path), "--json"], [json.dumps(t) for t in texts])
        assert out.returncode == 0, out.stderr
        got = [[int(x) for x in line.split()] for line in out.stdout.splitlines()]
        assert got == [hf.encode(t).ids for t in texts], behavior


def test_added_tokens_match(tools, tmp_path):
    """Added tokens as tokenizers handles them: matched before (normalized=false) or after
    normalization, leftmost-longest, lstrip / rstrip / single_word, ids assigned by tokenizers (the
    model's id, else the next free one; the file's id is ignored), special ones skipped by decode,
    normalized ones decoded as their normalized content."""
    from tokenizers import Tokenizer
    spec = json.loads(WORLD_JSON.read_text())
    spec["added_tokens"][0]["id"] = 50  # [PAD]: the model's id 0 wins
    extra = [("zorb", dict(special=False, normalized=False)),
             ("zorbix", dict(special=True, normalized=False)),
             ("<Ls>", dict(special=False, normalized=False, lstrip=True)),
             ("<rs>", dict(special=True, normalized=True, rstrip=True)),
             ("Moving Up", dict(special=False, normalized=True)),
             ("sw", dict(special=False, single_word=True)),
             ("red", dict(special=True, normalized=False)), ("CIRCLE", dict(special=False, normalized=True)),
             ("Zap", dict(special=True, normalized=True))]
    for i, (content, flags) in enumerate(extra):
        token = {"id": 7 + i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
                 "normalized": True, "special": False}
        spec["added_tokens"].append({**token, **flags})
    path = tmp_path / "added.json"
    path.write_text(json.dumps(spec))
    hf = Tokenizer.from_file(str(path))
    texts = ["[PAD] zorb zorbix zorbixzorb red", "a  <Ls>b <Ls>  c<Ls>", "x <RS>   y <rs>z",
             "moving up MOVING UP", "sw swsw asw sw, (sw) sw!", "redred circle", "a Circle zap ZAP circle",
             "", "zor b", "<ls> <Ls><Ls>", "the red circle"]
    out = run_tool(tools["evj_tokenize"], [str(path), "--json"], [json.dumps(t) for t in texts])
    assert out.returncode == 0, out.stderr
    got = [[int(x) for x in line.split()] for line in out.stdout.splitlines()]
    assert got == [hf.encode(t).ids for t in texts]
    id_lists = [list(range(0, 110)), [50, 0, 7, 91, 92, 93, 96, 97, 98, 99, 500]]
    out = run_tool(tools["evj_tokenize"], [str(path), "--json", "--decode"],
                   [" ".join(map(str, i)) for i in id_lists])
    assert [json.loads(line) for line in out.stdout.splitlines()] == [
        hf.decode(ids, skip_special_tokens=True) for ids in id_lists]


def test_combining_mark_sequences_match(tools):
    """NFD reorders combining marks by class before BERT's accent stripping drops the non-spacing ones;
    random mark sequences (spacing marks with a class included) give tokenizers' ids."""
    import unicodedata
    marks = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and unicodedata.combining(chr(c))]
    rng = random.Random(5)
    texts = ["".join(rng.choice(["a", "e", "Å", "ᾂ", " ", "\U0001D165", "\u302e", chr(rng.choice(marks))])
                     for _ in range(rng.randint(1, 12))) for _ in range(3000)]
    for path in tokenizer_files().values():
        hf = hf_tokenizer(path)
        out = run_tool(tools["evj_tokenize"], [str(path), "--json"], [json.dumps(t) for t in texts])
        got = [[int(x) for x in line.split()] for line in out.stdout.splitlines()]
        assert got == [e.ids for e in hf.encode_batch(texts)], path


@pytest.mark.slow
def test_every_code_point_matches(tools):
    """Every Unicode scalar value, in context, through both tokenizers (~1.1M texts each, ~1-2 min)."""
    texts = [f"x{chr(c)}Ab{chr(c)}{chr(c)}" for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    for path in tokenizer_files().values():
        hf = hf_tokenizer(path)
        out = run_tool(tools["evj_tokenize"], [str(path), "--json"], [json.dumps(t) for t in texts])
        got = [[int(x) for x in line.split()] for line in out.stdout.splitlines()]
        want = [e.ids for e in hf.encode_batch(texts)]
        bad = [hex(ord(t[1])) for t, w, g in zip(texts, want, got, strict=True) if w != g]
        assert not bad, f"{len(bad)} code points differ: {bad[:20]}"


# --- Ward ----------------------------------------------------------------------------------------------

def _ward_cases():
    rng = np.random.default_rng(0)
    cases = []
    for n in list(range(1, 41)) + [57, 64, 99, 128, 150, 200, 255, 300]:
        d = int(rng.choice([1, 2, 3, 8, 32]))
        kinds = ["normal", "ties", "duplicates"]
        for kind in kinds:
            if kind == "normal":
                x = rng.standard_normal((n, d)).astype(np.float32)
            elif kind == "ties":  # small integers: many exactly equal inertias
                x = rng.integers(0, 3, (n, d)).astype(np.float32)
            else:  # repeated rows (a static scene), L2-normalised like the policy's embeddings
                base = rng.standard_normal((max(1, n // 5), d)).astype(np.float32)
                x = base[np.sort(rng.integers(0, len(base), n))]
                x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
            ks = sorted({1, n, max(1, n // 2), max(1, n // 10), *rng.integers(1, n + 1, 3).tolist()})
            cases += [(x.astype(np.float32), int(k)) for k in ks]
    return cases


def test_ward_segments_match_sklearn(tools):
    from edge_vljepa.streaming.policies import ward_segments
    cases = _ward_cases()
    assert len(cases) > 500
    text = []
    for x, k in cases:
        n, d = x.shape
        text.append(f"{n} {d} {k}\n" + " ".join(repr(float(v)) for v in x.ravel()))
    out = subprocess.run([str(tools["evj_ward"])], input="\n".join(text) + "\n", capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    got = [[int(v) for v in line.split()] for line in out.stdout.splitlines()]
    assert len(got) == len(cases)
    bad = []
    for (x, k), labels in zip(cases, got, strict=True):
        want = [0] * len(x)
        for label, (first, last) in enumerate(ward_segments(x, k)):
            want[first:last + 1] = [label] * (last + 1 - first)
        if labels != want:
            bad.append((x.shape, k))
    assert not bad, f"{len(bad)} of {len(cases)} segmentations differ: {bad[:5]}"


def test_ward_rejects_bad_input(tools):
    cases = (("3 2 0\n1 2 3 4 5 6\n", ">= 1"), ("2 1 1\nnan 1\n", "NaN"), ("2 2 1\n1 2 3\n", "ended"))
    for text, needle in cases:
        out = subprocess.run([str(tools["evj_ward"])], input=text, capture_output=True, text=True, timeout=60)
        assert out.returncode == 1 and needle in out.stderr and out.stderr.count("\n") == 1, out.stderr
