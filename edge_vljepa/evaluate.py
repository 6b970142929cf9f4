"""Evaluation of a VL-JEPA model on the synthetic world's held-out TEST split.

    python -m edge_vljepa.evaluate [tasks] [--checkpoint PATH] [--clips N] [--seed S]

`tasks` (the default command) follows VL-JEPA's task set (arXiv 2512.10942, section 4): test clips are
generated deterministically (edge_vljepa.data.world.sample_clip, split "test", half of them with
colour x shape x action combinations never seen in training), written as real .mp4 files and read
back with OpenCV, so the model sees decoded frames as a user would feed them; the centre window of
`num_frames` frames at the model's fps is the X-Encoder input. Every score is printed for all clips,
for the combinations seen in training and for the held-out ones, next to its chance level:

  classification  zero-shot top-1 over every class (colour x shape x action) of the world, comparing
                  predictor(video, CAPTION_QUERY) with the Y-Encoder embeddings of the labels: the
                  canonical ones (labels.txt) and paraphrases from caption templates never used in
                  training (held-out wording and verbs, e.g. "the star, which is red, slides to the left").
  retrieval       text -> video R@1 / R@5: each test caption ranks all clips; a clip whose captions
                  include the same text counts as a hit. Seen-template and held-out-template captions.
  VQA             discriminative: the option whose Y-Encoder embedding is closest to
                  predictor(video, question) is the answer; per question type and overall.
  captioning      the Y-Decoder's greedy caption of the predicted embedding against the clip's test
                  captions (all its paraphrases): CIDEr-D (pycocoevalcap, the metric of the paper's
                  section 4.6; words as world.words gives them, punctuation dropped), exact match, and
                  the cosine similarity of all-MiniLM-L6-v2 sentence embeddings (best reference).
                  Chance: the same captions scored against a random other clip's references. The
                  decoder is also scored alone, from the Y-Encoder embedding of a ground-truth caption.

The selective-decoding experiment (paper section 4.6) is `python -m experiments.selective`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from edge_vljepa.cli import HelpFormatter
from edge_vljepa.config import PRESETS, ConfigError, ModelConfig, get_preset
from edge_vljepa.data.video import VideoError, VideoFile
from edge_vljepa.data.world import (
    CAPTION_TEMPLATES,
    Background,
    Pose,
    Segment,
    Thing,
    caption_templates,
    sample_clip,
    words,
    world_classes,
    world_labels,
)
from edge_vljepa.data.write import write_video
from edge_vljepa.models import VLJEPA
from edge_vljepa.preprocess import PreprocessSpec, TextTokenizer
from edge_vljepa.pretrained import load_model, shipped_checkpoint
from edge_vljepa.train import (
    CAPTION_QUERY,
    TextFeatures,
    TrainSettings,
    encode_texts,
    video_tensor,
    y_embedding,
)
from edge_vljepa.weights import CheckpointError


class EvaluateError(ValueError):
    """Bad command-line input; printed as one line."""


# --- test data ------------------------------------------------------------------------------

@dataclass
class TestClip:
    """One test clip as the model sees it, with what it should be understood as."""

    video: torch.Tensor  # (1, 3, T, S, S) from the decoded file's centre window
    segment: Segment
    held_out: bool  # its colour x shape x action combination never occurs in train

    @property
    def cls(self) -> tuple[str, str, str]:
        return self.segment.subject.colour, self.segment.subject.shape, self.segment.action


def write_test_clips(out: Path, count: int, seed: int, fps: float) -> list[tuple[Path, Segment]]:
    """Test clips 0..count-1 of `seed` written as .mp4 (+ .json annotation) into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    clips = []
    for i in tqdm(range(count), desc="write test clips", unit="clip", leave=False):
        video = sample_clip("test", i, seed=seed, seconds=TrainSettings().clip_seconds, fps=fps)
        path, _ = write_video(video, out, fmt="mp4")
        clips.append((path, video.segments[0]))
    return clips


def read_test_clip(path: Path, segment: Segment, cfg: ModelConfig) -> TestClip:
    """Decode a written clip with OpenCV and prepare its centre window like inference."""
    frames = [rgb for _, rgb in VideoFile(path)]
    t = cfg.x_encoder.num_frames
    if len(frames) < t:
        raise VideoError(f"{path} has {len(frames)} frames, the model needs {t}")
    start = (len(frames) - t) // 2
    return TestClip(video_tensor(frames[start:start + t], PreprocessSpec.from_config(cfg)), segment,
                    segment.held_out)


# --- model outputs --------------------------------------------------------------------------

class Embedder:
    """The model's embeddings for evaluation: videos x queries, texts, and greedy captions."""

    def __init__(self, model: VLJEPA, batch_size: int = 32):
        cfg = model.cfg
        self.model, self.batch_size = model, batch_size
        self.features = TextFeatures(model)
        self.query_tokenizer = TextTokenizer(cfg.predictor.tokenizer, cfg.predictor.max_query_len)
        self.decoder_tokenizer = TextTokenizer(cfg.y_decoder.tokenizer, cfg.y_decoder.max_new_tokens + 1)

    @torch.no_grad()
    def visual(self, clips: list[TestClip]) -> torch.Tensor:
        """X-Encoder tokens (n, N, Dx) of the clips."""
        return torch.cat([self.model.x_encoder(torch.cat([c.video for c in clips[i:i + self.batch_size]]))
                          for i in range(0, len(clips), self.batch_size)])

    @torch.no_grad()
    def predict(self, visual: torch.Tensor, clip_index: list[int], queries: list[str]) -> torch.Tensor:
        """Predicted embeddings (n, E) of `queries` about the clips `clip_index` (visual: (clips, N, Dx))."""
        out = []
        for i in range(0, len(queries), self.batch_size):
            ids, mask = encode_texts(self.query_tokenizer, queries[i:i + self.batch_size], "query")
            out.append(self.model.predictor(visual[clip_index[i:i + self.batch_size]], ids, mask))
        return torch.cat(out)

    @torch.no_grad()
    def texts(self, texts: list[str]) -> torch.Tensor:
        """Y-Encoder embeddings (n, E)."""
        return y_embedding(self.model, self.features(texts))

    @torch.no_grad()
    def sentence(self, texts: list[str]) -> torch.Tensor:
        """The frozen backbone's own sentence embeddings (mean pooled, unit norm): for MiniLM exactly
        all-MiniLM-L6-v2's sentence-transformers embedding, independent of anything trained here."""
        return torch.nn.functional.normalize(self.features(texts), dim=-1)

    @torch.no_grad()
    def captions(self, embeddings: torch.Tensor) -> list[str]:
        """Greedy Y-Decoder captions, batched (the same tokens as edge_vljepa.streaming.greedy_decode:
        argmax until EOS or max_new_tokens, recomputed over the prefix instead of a KV cache)."""
        d = self.model.cfg.y_decoder
        texts = []
        for i in range(0, len(embeddings), self.batch_size):
            emb = embeddings[i:i + self.batch_size]
            tokens = torch.full((len(emb), 1), d.bos_token_id, dtype=torch.long)
            done = torch.zeros(len(emb), dtype=torch.bool)
            for _ in range(d.max_new_tokens):
                nxt = self.model.y_decoder(emb, tokens)[:, -1].argmax(-1)  # (b,)
                nxt = nxt.masked_fill(done, d.eos_token_id)
                done |= nxt == d.eos_token_id
                tokens = torch.cat([tokens, nxt[:, None]], dim=1)
                if done.all():
                    break
            for row in tokens[:, 1:].tolist():
                ids = row[:row.index(d.eos_token_id)] if d.eos_token_id in row else row
                texts.append(self.decoder_tokenizer.decode(ids))
        return texts


# --- label sets -----------------------------------------------------------------------------

def _class_segment(colour: str, shape: str, action: str) -> Segment:
    """A placeholder segment of one class, only to phrase its texts with the world's templates."""
    pose = Pose(0.5, 0.5, 0.12)
    return Segment(0, 1, action, Thing(colour, shape), "medium", pose, pose, (), Background("plain", 0), 0)


def paraphrased_label_sets() -> dict[int, list[str]]:
    """For each caption template never used in training that names only colour, shape and action
    (not size or count), the text of every class in world_classes() order."""
    templates = [i for i in caption_templates("test") if "train" not in CAPTION_TEMPLATES[i].splits
                 and "{size}" not in CAPTION_TEMPLATES[i].text and "{count}" not in CAPTION_TEMPLATES[i].text]
    sets: dict[int, list[str]] = {i: [] for i in templates}
    for cls in world_classes():
        for caption in _class_segment(*cls).captions("test"):
            if caption["template"] in sets:
                sets[caption["template"]].append(caption["text"])
    return sets


# --- metrics --------------------------------------------------------------------------------

@dataclass
class Row:
    """One line of the table: a score and its chance level over all clips, over the clips of
    combinations seen in training, and over the held-out ones (their chance levels can differ:
    e.g. the 16 held-out combinations repeat, so more clips share a caption)."""

    name: str
    all: float
    seen: float
    held_out: float
    chance_all: float
    chance_seen: float
    chance_held_out: float


def split_means(values, held_out) -> tuple[float, float, float]:
    """Means of per-item `values` over all items, the seen ones and the held-out ones."""
    values, held_out = np.asarray(values, dtype=np.float64), np.asarray(held_out, dtype=bool)
    values = np.broadcast_to(values, held_out.shape)

    def mean(v):
        return float(v.mean()) if len(v) else float("nan")
    return mean(values), mean(values[~held_out]), mean(values[held_out])


def row(name: str, values, held_out, chance) -> Row:
    """A table row from per-item scores and per-item (or one) chance levels."""
    return Row(name, *split_means(values, held_out), *split_means(chance, held_out))


def top1(pred: torch.Tensor, bank: torch.Tensor) -> np.ndarray:
    """Index of the most cosine-similar bank row (K, E) for each prediction (n, E)."""
    return (pred @ bank.T).argmax(1).numpy()


def recall_chance(n: int, relevant: int, k: int) -> float:
    """Probability that k clips drawn at random from n include one of `relevant`."""
    return 1.0 - math.comb(n - relevant, k) / math.comb(n, k)


def caption_words(text: str) -> str:
    """A caption as CIDEr sees it: lower-case words, punctuation dropped (like the COCO PTB tokenizer)."""
    return " ".join(w for w in words(text) if w.isalpha())


def cider_d(hypotheses: list[str], references: list[list[str]]) -> np.ndarray:
    """Per-caption CIDEr-D (pycocoevalcap's Cider, IDF over these references); mean = corpus score."""
    try:
        from pycocoevalcap.cider.cider import Cider
    except ImportError:
        raise EvaluateError("captioning metrics need CIDEr from pycocoevalcap: "
                            "pip install pycocoevalcap") from None
    gts = {i: [caption_words(r) for r in refs] for i, refs in enumerate(references)}
    res = {i: [caption_words(h)] for i, h in enumerate(hypotheses)}
    _, scores = Cider().compute_score(gts, res)
    return np.asarray(scores)


def caption_rows(name: str, embedder: Embedder, decoded: list[str], references: list[list[str]],
                 held_out: list[bool], derangement: np.ndarray) -> list[Row]:
    """CIDEr-D, exact match and MiniLM similarity of `decoded`, with the deranged pairing as chance."""
    others = [references[j] for j in derangement]
    flat = sorted({r for refs in references for r in refs})
    ref_index = {r: i for i, r in enumerate(flat)}
    hyp, refs = embedder.sentence(decoded), embedder.sentence(flat)

    def similarity(refs_per_clip):
        return [float((refs[[ref_index[r] for r in rs]] @ h).max())
                for h, rs in zip(hyp, refs_per_clip, strict=True)]

    def exact(refs_per_clip):
        return [caption_words(d) in {caption_words(r) for r in rs}
                for d, rs in zip(decoded, refs_per_clip, strict=True)]
    return [
        row(f"{name}: CIDEr-D", cider_d(decoded, references), held_out, cider_d(decoded, others)),
        row(f"{name}: exact match", exact(references), held_out, exact(others)),
        row(f"{name}: MiniLM cosine", similarity(references), held_out, similarity(others)),
    ]


def classification_rows(embedder: Embedder, pred: torch.Tensor, clips: list[TestClip]) -> list[Row]:
    """Zero-shot top-1 of the caption-query predictions over every class, per label wording."""
    classes = world_classes()
    truth = np.asarray([classes.index(c.cls) for c in clips])
    held_out = [c.held_out for c in clips]
    banks = {"canonical labels": world_labels()}
    for i, texts in paraphrased_label_sets().items():
        banks[f"paraphrased labels (template {i})"] = texts
    rows = []
    for name, texts in banks.items():
        picked = top1(pred, embedder.texts(texts))
        rows.append(row(f"classification top-1, {name}", picked == truth, held_out, 1.0 / len(texts)))
        if name == "canonical labels":  # which parts of the top-1 label are right
            for part, attribute in enumerate(("colour", "shape", "action")):
                right = [classes[p][part] == c.cls[part] for p, c in zip(picked, clips, strict=True)]
                chance = [np.mean([k[part] == c.cls[part] for k in classes]) for c in clips]
                rows.append(row(f"  its {attribute}", right, held_out, chance))
    return rows


def retrieval_rows(embedder: Embedder, pred: torch.Tensor, clips: list[TestClip]) -> list[Row]:
    """Text -> video R@1 and R@5 with every test caption as a query, by template wording."""
    n, rows = len(clips), []
    train_templates = set(caption_templates("train"))
    for seen_wording in (True, False):
        queries = [(i, cap["text"]) for i, c in enumerate(clips) for cap in c.segment.captions("test")
                   if (cap["template"] in train_templates) == seen_wording]
        owners: dict[str, set[int]] = {}  # a text -> the clips it describes
        for i, text in queries:
            owners.setdefault(text, set()).add(i)
        ranking = torch.argsort(embedder.texts([t for _, t in queries]) @ pred.T, dim=1, descending=True)
        wording = "train-template captions" if seen_wording else "held-out-template captions"
        held_out = [clips[i].held_out for i, _ in queries]
        for k in (1, 5):
            hits = [bool(owners[t] & set(ranking[q, :k].tolist())) for q, (_, t) in enumerate(queries)]
            chance = [recall_chance(n, len(owners[t]), k) for _, t in queries]
            rows.append(row(f"text-to-video R@{k}, {wording}", hits, held_out, chance))
    return rows


def vqa_rows(embedder: Embedder, visual: torch.Tensor, clips: list[TestClip]) -> list[Row]:
    """Discriminative VQA accuracy over every question of every clip, overall and per question type."""
    questions = [(i, qa) for i, c in enumerate(clips) for qa in c.segment.questions()]
    answers = embedder.predict(visual, [i for i, _ in questions], [qa["question"] for _, qa in questions])
    correct = np.asarray([qa["options"][int(top1(a[None], embedder.texts(qa["options"]))[0])] == qa["answer"]
                          for (_, qa), a in zip(questions, answers, strict=True)])
    chance = np.asarray([1.0 / len(qa["options"]) for _, qa in questions])
    kinds = np.asarray([qa["type"] for _, qa in questions])
    held_out = np.asarray([clips[i].held_out for i, _ in questions])
    rows = [row("VQA accuracy, all questions", correct, held_out, chance)]
    for kind in dict.fromkeys(kinds):
        pick = kinds == kind
        rows.append(row(f"VQA accuracy, {kind}", correct[pick], held_out[pick], chance[pick]))
    return rows


def evaluate_tasks(model: VLJEPA, clips: list[TestClip], seed: int = 0,
                   batch_size: int = 32) -> tuple[list[Row], list[tuple[str, str]]]:
    """All task metrics for `clips`; also (a ground-truth caption, the decoded caption) per clip."""
    embedder = Embedder(model, batch_size)
    n = len(clips)
    visual = embedder.visual(clips)  # (n, N, Dx)
    pred = embedder.predict(visual, list(range(n)), [CAPTION_QUERY] * n)  # (n, E)
    rows = classification_rows(embedder, pred, clips) + retrieval_rows(embedder, pred, clips)
    rows += vqa_rows(embedder, visual, clips)

    held_out = [c.held_out for c in clips]
    references = [[cap["text"] for cap in c.segment.captions("test")] for c in clips]
    derangement = (np.arange(n) + np.random.default_rng(seed).integers(1, n)) % n  # nobody keeps their own
    decoded = embedder.captions(pred)
    rows += caption_rows("captioning (predicted embedding)", embedder, decoded, references, held_out,
                         derangement)
    train_templates = set(caption_templates("train"))
    first_train = [next(cap["text"] for cap in c.segment.captions("test")
                        if cap["template"] in train_templates) for c in clips]
    alone = embedder.captions(embedder.texts(first_train))
    rows += caption_rows("Y-Decoder alone (Y-Encoder of a GT caption)", embedder, alone, references, held_out,
                         derangement)
    return rows, list(zip(first_train, decoded, strict=True))


def format_table(rows: list[Row]) -> str:
    """Score (chance) for all clips, seen combinations and held-out combinations."""
    width = max(len(r.name) for r in rows)
    lines = [f"{'task':<{width}}  {'all (chance)':>15}  {'seen (chance)':>15}  {'held-out (chance)':>17}",
             "-" * (width + 53)]
    for r in rows:
        cells = [f"{v:6.3f} ({c:5.3f})" for v, c in ((r.all, r.chance_all), (r.seen, r.chance_seen),
                                                    (r.held_out, r.chance_held_out))]
        lines.append(f"{r.name:<{width}}  {cells[0]:>15}  {cells[1]:>15}  {cells[2]:>17}")
    return "\n".join(lines)


# --- CLI ------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m edge_vljepa.evaluate", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Evaluate a VL-JEPA model on the synthetic world's held-out test split. "
                    "Without a command, runs `tasks`.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    tasks = commands.add_parser(
        "tasks", formatter_class=HelpFormatter,
        help="classification, retrieval, VQA and captioning on test clips",
        description="Zero-shot classification, text-to-video retrieval, discriminative VQA and captioning "
                    "on deterministic test clips written as .mp4 and decoded with OpenCV.")
    tasks.add_argument("--preset", default="default", choices=list(PRESETS), help="model preset")
    tasks.add_argument("--checkpoint", type=Path,
                       help="native .safetensors checkpoint; None: the preset's shipped weights")
    tasks.add_argument("--clips", type=int, default=300, help="number of test clips (>= 5)")
    tasks.add_argument("--seed", type=int, default=0, help="world seed of the test clips")
    tasks.add_argument("--data", type=Path,
                       help="keep the test videos in this folder; None: a temporary folder")
    tasks.add_argument("--json", type=Path, help="also write the metrics here as JSON")
    tasks.add_argument("--batch-size", type=int, default=32, help="clips per forward pass")
    tasks.add_argument("--threads", type=int, default=1, help="torch CPU threads (see train --threads)")
    return parser


def run_tasks(args: argparse.Namespace) -> int:
    if args.clips < 5:
        raise EvaluateError(f"--clips must be >= 5 (R@5 needs 5 candidates), got {args.clips}")
    if args.seed < 0 or args.batch_size <= 0:
        raise EvaluateError("--seed must be >= 0 and --batch-size > 0")
    cfg = get_preset(args.preset)
    weights = args.checkpoint or shipped_checkpoint(cfg.name)
    if weights is None:
        raise EvaluateError(f"preset {cfg.name!r} ships no trained weights; pass --checkpoint PATH")
    torch.set_num_threads(args.threads)
    print(f"evaluate tasks: preset {cfg.name}, weights {weights}, {args.clips} test clips "
          f"(seed {args.seed}), "
          f"window {cfg.x_encoder.num_frames} frames at {cfg.fps:g} fps, query {CAPTION_QUERY!r}")
    start = time.perf_counter()
    model = load_model(cfg, weights)
    with tempfile.TemporaryDirectory() as tmp:
        written = write_test_clips(args.data or Path(tmp), args.clips, args.seed, cfg.fps)
        clips = [read_test_clip(path, segment, cfg) for path, segment in written]
    rows, examples = evaluate_tasks(model, clips, args.seed, args.batch_size)
    n_held = sum(c.held_out for c in clips)
    print(f"\n{len(clips)} clips: {len(clips) - n_held} seen combos, {n_held} held-out combos\n")
    print(format_table(rows))
    templates = "; ".join(f"template {i} = {CAPTION_TEMPLATES[i].text!r}" for i in paraphrased_label_sets())
    print(f"\nparaphrased labels, wording never used in training: {templates}")
    print("\nexamples (a ground-truth caption -> the decoded caption of the predicted embedding):")
    for truth, decoded in examples[:5]:
        print(f"  {truth!r} -> {decoded!r}")
    if args.json:
        args.json.write_text(json.dumps({"preset": cfg.name, "weights": str(weights), "clips": len(clips),
                                         "seed": args.seed, "held_out_clips": n_held,
                                         "rows": [vars(r) for r in rows]}, indent=1) + "\n")
    saved = f"; metrics in {args.json}" if args.json else ""
    print(f"\ndone in {time.perf_counter() - start:.0f} s{saved}")
    return 0


COMMANDS = {"tasks": run_tasks}  # subcommand -> handler(args) -> exit status


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in (*COMMANDS, "-h", "--help"):
        argv.insert(0, "tasks")  # `tasks` is the default command
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (EvaluateError, ConfigError, CheckpointError, VideoError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
