"""How close an exported artifact is to the PyTorch reference, in tensors and in tasks.

Tensor parity: every method on the same recorded real inputs, per output: worst cosine, max abs
error and SNR (dB). Task parity: top-1 label agreement on held-out clips (each side runs its own
x_encoder -> predictor and its own Y-Encoder label bank) and decode-event agreement on a held-out
stream (each side runs the streaming loop; events match when within one window period).

TOLERANCES is the one place the thresholds live; exporters write them into the manifest.
"""

from __future__ import annotations

import time

import numpy as np

from edge_vljepa.config import ModelConfig
from edge_vljepa.data.video import VideoFile
from edge_vljepa.preprocess import component_tokenizer
from edge_vljepa.streaming import LabelBank, make_policy, run_checked, run_stream

TOLERANCES = {
    "fp32": {"max_abs": 1e-4},
    "fp16": {"cosine": 0.999},
    "int8": {"cosine": 0.99},
    "int8-dynamic": {"cosine": 0.99},
    "8da4w": {"cosine": 0.99},
    "int8-weights": {"cosine": 0.99},  # Core ML: int8 weights, fp16 compute
    "palettize4": {"cosine": 0.99},  # Core ML: 4-bit look-up-table weights, fp16 compute
}
TASK_TOLERANCES = {"top1_agreement": 0.95}  # any precision; decode-event F1 is reported


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
            ref, out = reference.run(method, inputs), candidate.run(method, inputs)
            for name in ref:
                m = compare(ref[name], out[name])
                w = worst.setdefault(name, m)
                worst[name] = {"cosine": min(w["cosine"], m["cosine"]),
                               "max_abs": max(w["max_abs"], m["max_abs"]),
                               "snr_db": min(w["snr_db"], m["snr_db"])}
        report[method] = {"calls": len(calls), "outputs": worst}
    return report


def latency_ms(reference, candidate, recorded: dict[str, list[dict]], runs: int = 20) -> dict[str, dict]:
    """Median ms per method (after one warm-up) of both sides on the same input, measured side by side."""
    out = {}
    for method, calls in recorded.items():
        times = {}
        for side, backend in (("reference", reference), ("candidate", candidate)):
            backend.run(method, calls[0])
            samples = []
            for _ in range(runs):
                start = time.perf_counter()
                backend.run(method, calls[0])
                samples.append((time.perf_counter() - start) * 1e3)
            times[side] = float(np.median(samples))
        out[method] = {**times, "ratio": times["candidate"] / times["reference"]}
    return out


def label_agreement(reference, candidate, cfg: ModelConfig, windows: list[np.ndarray], labels: list[str],
                    query: str) -> dict[str, float]:
    """Share of held-out windows whose top-1 label is the same on both sides."""
    query_tok = component_tokenizer(cfg, "predictor")
    ids, mask = query_tok.encode(query, what="query")
    label_tok = component_tokenizer(cfg, "y_encoder")
    top1 = []
    for backend in (reference, candidate):
        bank = LabelBank.build(labels, backend, label_tok)
        picks = []
        for video in windows:
            visual = run_checked(backend, "x_encoder", {"video": video})["visual_tokens"]
            emb = run_checked(backend, "predictor", {"visual_tokens": visual, "query_ids": ids,
                                                     "query_mask": mask})["embedding"][0]
            picks.append(bank.topk(emb, 1)[0][0])
        top1.append(picks)
    agree = float(np.mean([a == b for a, b in zip(*top1, strict=True)]))
    return {"windows": len(windows), "top1_agreement": agree}


def decode_agreement(reference, candidate, cfg: ModelConfig, video, query: str, stride: int = 2,
                     policy: str = "online") -> dict[str, float]:
    """Decode events of both sides on one stream: precision/recall/F1 of the candidate's decode times
    against the reference's, matched one-to-one within one window period; caption agreement on matches."""
    query_tok = component_tokenizer(cfg, "predictor")
    decoder_tok = component_tokenizer(cfg, "y_decoder")
    decodes = []
    for backend in (reference, candidate):
        events = []
        run_stream(VideoFile(video), backend, cfg, query=query, query_tokenizer=query_tok,
                   decoder_tokenizer=decoder_tok, policy=make_policy(policy), stride=stride,
                   on_event=lambda e, ev=events: ev.append(e) if e.decode else None)
        decodes.append([(e.time, e.text) for e in events])
    ref, cand = decodes
    tolerance = stride / cfg.fps + 1e-6
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


def failures(quant: dict[str, str], tensors: dict[str, dict], tasks: dict[str, dict],
             contract) -> list[str]:
    """Every tolerance the results miss, as readable lines (empty: the artifact passes)."""
    out = []
    for method, result in tensors.items():
        mode = quant[contract[method].component]
        for name, m in result["outputs"].items():
            for metric, bound in TOLERANCES[mode].items():
                bad = m[metric] > bound if metric == "max_abs" else m[metric] < bound
                if bad:
                    out.append(f"{method}.{name} ({mode}): {metric} {m[metric]:.6g}, "
                               f"{'allowed at most' if metric == 'max_abs' else 'needs at least'} {bound}")
    agreement = tasks.get("labels", {}).get("top1_agreement")
    if agreement is not None and agreement < TASK_TOLERANCES["top1_agreement"]:
        out.append(f"top-1 label agreement {agreement:.1%}, needs at least "
                   f"{TASK_TOLERANCES['top1_agreement']:.0%}")
    return out
