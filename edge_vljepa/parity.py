"""How close an exported artifact is to the PyTorch reference, in tensors and in tasks.

Tensor parity: every method on the same recorded real inputs, per output: worst cosine, max abs
error and SNR (dB). Task parity: what a user loses, the drop of ground-truth task metrics on held-out
clips, quantized artifact against the fp32 reference on the same clips, with a paired bootstrap
interval (edge_vljepa/task_gate.py; `paired_bootstrap` here); and what is reported beside it: top-1
label agreement (and top-k overlap) on held-out clips (the candidate's x_encoder -> predictor against
the shipped label bank, and against a bank of its own Y-Encoder: what custom labels get) and
decode-event agreement on a held-out stream (each side runs the streaming loop; events match when
within one window period). Used by the exporters and by `python -m runtimes.parity`. numpy only: no
torch import.

The gates: every tensor tolerance (TOLERANCES, per precision), decode-event F1, and each task metric's
drop (TASK_TOLERANCES) when the task gate ran (trained weights of the synthetic world, all four
components). TOLERANCES and TASK_TOLERANCES are the one place the thresholds live; exporters write
them into the manifest, and `failures` checks results against the manifest's copy.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from edge_vljepa.config import ModelConfig
from edge_vljepa.data.video import VideoFile
from edge_vljepa.preprocess import component_tokenizer
from edge_vljepa.streaming import Event, LabelBank, l2_normalize, make_policy, run_checked, run_stream

TOLERANCES = {
    "fp32": {"max_abs": 1e-4},
    "fp16": {"cosine": 0.999},
    "int8": {"cosine": 0.99},
    "int8-dynamic": {"cosine": 0.99},
    "8da4w": {"cosine": 0.99},
    "8da8w": {"cosine": 0.99},
    "int8-weights": {"cosine": 0.99},  # Core ML: int8 weights, fp16 compute
    "palettize4": {"cosine": 0.99},  # Core ML: 4-bit look-up-table weights, fp16 compute
}
TASK_TOLERANCES = {  # any precision
    "max_drop": 0.01,  # a task metric (accuracy, R@1) may fall at most 1 point absolute against fp32 ...
    "cider_d_max_relative_drop": 0.03,  # ... caption CIDEr-D at most 3% of fp32's ...
    "interval": 0.95,  # ... or its paired bootstrap interval of this confidence reaches 0 (not a real loss)
    "decode_f1": 0.9,  # decode events of the artifact against fp32's (matched within one window period)
}  # top-1 label agreement with fp32 is reported, not gated: near-tied labels reorder without any loss


def label_progress(labels: list[str]):
    """A progress bar over a label bank's labels (the paper Y-Encoder takes seconds per label here)."""
    return tqdm(labels, desc="label bank", unit="label", leave=False)


def compare(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    r, c = reference.astype(np.float64).ravel(), candidate.astype(np.float64).ravel()
    noise = float(np.sum((r - c) ** 2))
    denom = float(np.linalg.norm(r) * np.linalg.norm(c))
    return {"cosine": float(r @ c / denom) if denom > 0 else float(noise == 0),
            "max_abs": float(np.max(np.abs(r - c))) if r.size else 0.0,
            "snr_db": float(10 * np.log10(np.sum(r ** 2) / noise)) if noise > 0 else float("inf")}


def tensor_parity(reference, candidate, recorded: dict[str, list[dict]]) -> dict[str, dict]:
    """Per method and output: the worst cosine, max abs error and SNR over the recorded inputs."""
    report = {}
    for method, calls in recorded.items():
        worst: dict[str, dict[str, float]] = {}
        for inputs in calls:
            ref, out = run_checked(reference, method, inputs), run_checked(candidate, method, inputs)
            for name in ref:
                m = compare(ref[name], out[name])
                w = worst.setdefault(name, m)
                worst[name] = {"cosine": min(w["cosine"], m["cosine"]),
                               "max_abs": max(w["max_abs"], m["max_abs"]),
                               "snr_db": min(w["snr_db"], m["snr_db"])}
        report[method] = {"calls": len(calls), "outputs": worst}
    return report


def latency_ms(reference, candidate, recorded: dict[str, list[dict]], runs: int = 20) -> dict:
    """Median ms per method of both sides on the same input (after one warm-up call each), their calls
    interleaved so that whatever else the machine does slows both alike. The caller fixes one thread
    count for both. `load_average`: the highest 1-minute load average seen during the measurement;
    `reliable`: False when it exceeded the core count (other work shared the cores: figures from such
    a run were 30x off)."""
    sides = (("reference", reference), ("candidate", candidate))
    out: dict = {}
    load = os.getloadavg()[0]
    for method, calls in recorded.items():
        samples: dict[str, list[float]] = {side: [] for side, _ in sides}
        for _, backend in sides:  # warm-up
            backend.run(method, calls[0])
        for _ in range(runs):
            for side, backend in sides:
                start = time.perf_counter()
                backend.run(method, calls[0])
                samples[side].append((time.perf_counter() - start) * 1e3)
        times = {side: float(np.median(s)) for side, s in samples.items()}
        out[method] = {**times, "ratio": times["candidate"] / times["reference"]}
        load = max(load, os.getloadavg()[0])
    return out | {"load_average": round(load, 2), "reliable": load <= (os.cpu_count() or 1)}


def disagreements(ref_scores: np.ndarray, cand_scores: np.ndarray) -> dict:
    """Top-1 disagreements of two sides' label scores (n windows, K labels; one shared bank), and how
    many of them are near-ties: windows whose reference top-1/top-2 margin is below the measured
    perturbation, the 90th percentile over windows of the largest |score difference| between the
    sides. Labels that close flip with the ordinary noise of a precision, not with a broken model."""
    ref_scores, cand_scores = np.asarray(ref_scores), np.asarray(cand_scores)
    differ = ref_scores.argmax(axis=1) != cand_scores.argmax(axis=1)
    top2 = np.sort(np.pad(ref_scores, ((0, 0), (1, 0)), constant_values=-np.inf), axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]  # inf for a single label
    perturbation = float(np.percentile(np.abs(ref_scores - cand_scores).max(axis=1), 90))
    return {"disagreements": int(differ.sum()), "near_ties": int((differ & (margin < perturbation)).sum()),
            "perturbation": perturbation}


def bank_scores(bank: LabelBank, embeddings) -> np.ndarray:
    """Cosine scores (n, K) of embeddings (n, E) against every label of `bank`."""
    return l2_normalize(np.asarray(embeddings).reshape(len(embeddings), -1)) @ bank.embeddings.T


def label_agreement(reference, candidate, cfg: ModelConfig, windows: list[np.ndarray], shipped: LabelBank,
                    query: str, k: int = 5) -> dict[str, float]:
    """Top-1 label agreement on held-out windows, two ways:

    top1_agreement (the gate) and topk_overlap: the reference's and the candidate's x_encoder ->
    predictor ranked against `shipped`, the reference's label bank the artifact carries, which a
    device classifies with;
    own_bank_top1_agreement: the candidate ranks against a bank its own Y-Encoder built, which is
    what a device does with labels of its own (custom labels).
    `reference_margin_p10`: the 10th percentile of the reference's top-1 minus top-2 score; labels
    closer than the quantization noise flip (docs/design.md, quantization)."""
    query_tok = component_tokenizer(cfg, "predictor")
    ids, mask = query_tok.encode(query, what="query")
    label_tok = component_tokenizer(cfg, "y_encoder")

    def embeddings(backend) -> list[np.ndarray]:
        out = []
        name = getattr(backend, "name", "backend")
        for video in tqdm(windows, desc=f"labels ({name})", unit="window", leave=False):
            visual = run_checked(backend, "x_encoder", {"video": video})["visual_tokens"]
            out.append(run_checked(backend, "predictor", {"visual_tokens": visual, "query_ids": ids,
                                                          "query_mask": mask})["embedding"][0])
        return out

    own_bank = LabelBank.build(shipped.labels, candidate, label_tok, progress=label_progress)
    ref_emb = embeddings(reference)
    ref_top = [shipped.topk(e, max(k, 2)) for e in ref_emb]
    cand_emb = embeddings(candidate)
    cand_labels = [[label for label, _ in shipped.topk(e, k)] for e in cand_emb]
    own = [own_bank.topk(e, 1)[0][0] for e in cand_emb]
    ref_labels = [[label for label, _ in top[:k]] for top in ref_top]
    pairs = list(zip(ref_labels, cand_labels, own, strict=True))
    return {"windows": len(windows), "top1_agreement": float(np.mean([a[0] == b[0] for a, b, _ in pairs])),
            "k": k, "topk_overlap": float(np.mean([len(set(a) & set(b)) / k for a, b, _ in pairs])),
            "own_bank_top1_agreement": float(np.mean([a[0] == c for a, _, c in pairs])),
            "reference_margin_p10": float(np.percentile([t[0][1] - t[1][1] for t in ref_top], 10)),
            **disagreements(bank_scores(shipped, ref_emb), bank_scores(shipped, cand_emb))}


@dataclass(frozen=True)
class StreamRecord:
    """One side's streaming loop over a video: its events and its window embeddings (n_windows, E)."""

    events: list[Event]
    embeddings: np.ndarray
    error: str | None = None  # the source's error if the video broke mid-stream

    @property
    def decodes(self) -> list[tuple[float, str]]:
        return [(e.time, e.text) for e in self.events if e.decode]

    @property
    def windows(self) -> list[Event]:
        """The per-window events (one per window, in order, before any end-of-stream decode)."""
        return self.events[:len(self.embeddings)]

    def change(self) -> np.ndarray:
        """Embedding change per window: cosine distance to the previous window (0 for the first)."""
        e = l2_normalize(self.embeddings)  # (n, E)
        return np.concatenate([[0.0], 1 - np.sum(e[1:] * e[:-1], axis=1)]) if len(e) else np.zeros(0)


class _PredictorOutputs:
    """A backend wrapper that keeps every predictor embedding (the loop calls it once per window)."""

    def __init__(self, backend):
        self.backend, self.contract, self.rows = backend, backend.contract, []

    def run(self, method: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.backend.run(method, inputs)
        if method == "predictor":
            self.rows.append(outputs["embedding"][0])
        return outputs


def record_stream(backend, cfg: ModelConfig, video, query: str, stride: int = 2, policy: str = "online",
                  params: dict | None = None, label_bank: LabelBank | None = None) -> StreamRecord:
    """Run the streaming loop on `video` with decode policy `policy` (`params`: its parameters) and,
    when given, a label bank (top-1 label per window)."""
    events: list[Event] = []
    recorder = _PredictorOutputs(backend)
    summary = run_stream(VideoFile(video), recorder, cfg, query=query,
                         query_tokenizer=component_tokenizer(cfg, "predictor"),
                         decoder_tokenizer=component_tokenizer(cfg, "y_decoder"),
                         policy=make_policy(policy, **(params or {})), stride=stride, label_bank=label_bank,
                         top_k=1, on_event=events.append)
    embeddings = np.array(recorder.rows, dtype=np.float32).reshape(len(recorder.rows), -1)  # (n_windows, E)
    return StreamRecord(events, embeddings, summary.error)


def decode_agreement(reference, candidate, cfg: ModelConfig, video, query: str, stride: int = 2,
                     policy: str = "online") -> dict[str, float]:
    """Decode events of both sides on one stream (see `event_agreement`)."""
    ref, cand = (record_stream(b, cfg, video, query, stride, policy) for b in (reference, candidate))
    return event_agreement(ref.decodes, cand.decodes, stride / cfg.fps)


def stream_label_agreement(ref: StreamRecord, cand: StreamRecord, bank: LabelBank | None = None) -> dict:
    """Share of stream windows with the same top-1 label, both sides ranking against one label bank
    (what a device does with the artifact's precomputed bank: only X-Encoder and Predictor differ);
    with the bank, also its `disagreements`."""
    same = [a.topk[0][0] == b.topk[0][0] for a, b in zip(ref.windows, cand.windows, strict=True)]
    out = {"windows": len(same), "top1_agreement": float(np.mean(same)) if same else 1.0}
    if bank is not None and same:
        out |= disagreements(bank_scores(bank, ref.embeddings), bank_scores(bank, cand.embeddings))
    return out


def event_agreement(ref: list[tuple[float, str]], cand: list[tuple[float, str]],
                    window_period_s: float) -> dict[str, float]:
    """Precision/recall/F1 of the candidate's decode times against the reference's, matched one-to-one
    within one window period; mean |time offset| and caption agreement over the matches."""
    tolerance = window_period_s + 1e-6
    unmatched, matches = list(ref), []
    for t, text in cand:
        best = min(unmatched, key=lambda r: abs(r[0] - t), default=None)
        if best is not None and abs(best[0] - t) <= tolerance:
            unmatched.remove(best)
            matches.append((best, (t, text)))
    precision = len(matches) / len(cand) if cand else float(not ref)
    recall = len(matches) / len(ref) if ref else float(not cand)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"reference_decodes": len(ref), "candidate_decodes": len(cand), "precision": precision,
            "recall": recall, "f1": f1,
            "mean_offset_s": float(np.mean([abs(a[0] - b[0]) for a, b in matches])) if matches else 0.0,
            "caption_agreement": float(np.mean([a[1] == b[1] for a, b in matches])) if matches else 1.0}


def agreement_text(labels: dict) -> str:
    """Top-1 label agreement (a label_agreement or stream_label_agreement result) in words, with how many
    of its disagreements are near-ties."""
    line = f"top-1 label agreement {labels['top1_agreement']:.1%}"
    if "windows" in labels:
        line += f" on {labels['windows']} {labels.get('what', 'windows')}"
    if labels.get("disagreements"):
        line += (f" ({labels['near_ties']} of the {labels['disagreements']} disagreements are near-ties: "
                 f"reference top-1/top-2 margin below the perturbation {labels['perturbation']:.4f})")
    return line


def paired_bootstrap(reference, candidate, clips, relative: bool = False, confidence: float = 0.95,
                     samples: int = 2000, seed: int = 0) -> dict:
    """The drop of a metric's mean from `reference` to `candidate` (per-item scores of the same items;
    relative: as a share of the reference's mean) and its paired bootstrap interval: the clips are
    resampled with replacement, each with all of its items (`clips`: the clip of each item; a clip's
    questions or captions are not independent of each other)."""
    ref, cand = np.asarray(reference, np.float64), np.asarray(candidate, np.float64)
    clips = np.asarray(clips)
    n = int(clips.max()) + 1
    ref_sum, cand_sum = np.bincount(clips, ref, n), np.bincount(clips, cand, n)
    items = np.bincount(clips, minlength=n).astype(np.float64)

    def drop(weights):  # weights (B, n): how often each clip is drawn
        r, c = weights @ ref_sum, weights @ cand_sum
        if relative:
            return np.divide(r - c, r, out=np.zeros_like(r), where=r != 0)
        return (r - c) / (weights @ items)

    draws = np.random.default_rng(seed).multinomial(n, np.full(n, 1 / n), size=samples)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(drop(draws), [tail, 100 - tail])
    return {"items": len(ref), "reference": float(ref.mean()), "candidate": float(cand.mean()),
            "drop": float(drop(np.ones((1, n)))[0]), "interval": [float(low), float(high)],
            "relative": relative}


def task_bound(metric: dict, tolerances: dict) -> float:
    """The largest drop `metric` (a paired_bootstrap result) may have."""
    return tolerances["cider_d_max_relative_drop" if metric["relative"] else "max_drop"]


def task_passes(metric: dict, tolerances: dict) -> bool:
    """A drop within its bound, or one whose interval reaches 0 (no loss the clips can show)."""
    return metric["drop"] <= task_bound(metric, tolerances) or metric["interval"][0] <= 0


def failures(quant: dict[str, str], tensors: dict[str, dict], tasks: dict[str, dict],
             contract, tolerances: dict | None = None) -> list[str]:
    """Every gate the results miss, as readable lines (empty: the artifact passes).

    tasks: "task_gate" (its "metrics": drops, edge_vljepa.task_gate; or "not_run": why), "decode_events"
    (F1, gated unless tasks["random_weights"]: random weights have no tasks to keep), "labels" (reported).
    tolerances: {"tensor": {mode: {metric: bound}}, "task": {...}} as a manifest stores them;
    default (and for a mode or key the manifest lacks): TOLERANCES and TASK_TOLERANCES."""
    tolerances = tolerances or {}
    tensor_tol = {**TOLERANCES, **tolerances.get("tensor", {})}
    task_tol = {**TASK_TOLERANCES, **tolerances.get("task", {})}
    out = []
    for method, result in tensors.items():
        mode = quant[contract[method].component]
        for name, m in result["outputs"].items():
            for metric, bound in tensor_tol[mode].items():
                bad = m[metric] > bound if metric == "max_abs" else m[metric] < bound
                if bad:
                    out.append(f"{method}.{name} ({mode}): {metric} {m[metric]:.6g}, "
                               f"{'allowed at most' if metric == 'max_abs' else 'needs at least'} {bound}")
    decodes = tasks.get("decode_events")
    if decodes and not tasks.get("random_weights") and decodes["f1"] < task_tol["decode_f1"]:
        out.append(f"decode events F1 {decodes['f1']:.2f} ({decodes['candidate_decodes']} vs "
                   f"{decodes['reference_decodes']} reference), needs at least {task_tol['decode_f1']}")
    for name, m in tasks.get("task_gate", {}).get("metrics", {}).items():
        if not task_passes(m, task_tol):
            what = "of fp32's" if m["relative"] else "absolute"
            low, high = m["interval"]
            out.append(f"{name}: drop {m['drop']:.1%} {what} ({m['reference']:.3f} -> "
                       f"{m['candidate']:.3f}), {task_tol['interval']:.0%} interval [{low:.1%}, {high:.1%}] "
                       f"above 0; allowed at most {task_bound(m, task_tol):.0%}")
    return out
