"""The artifacts benchmark's report: Markdown tables and a latency / size / quality plot.

Written by `python -m experiments.bench artifacts` beside a JSON file of the same figures
(experiments.reports.write_report).
"""

from __future__ import annotations

import time
from pathlib import Path

import matplotlib
import numpy as np
import torch

from edge_vljepa.parity import TASK_TOLERANCES
from edge_vljepa.task_gate import TASKS
from experiments.host import cpu_name
from experiments.int8_limit import INT8_PRECISIONS, limit_lines
from experiments.reports import command_line

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)

MB = 1e6
TASK_SHORT = dict(zip(TASKS, ("class.", "paraphrased", "VQA", "R@1", "CIDEr-D rel."), strict=True))
QUALITY_NOTE = (
    "Task drops: the fp32 reference's score minus the artifact's on the export's held-out clips (positive: "
    "lost; CIDEr-D relative to fp32's score). The task gate passes a drop of at most "
    f"{100 * TASK_TOLERANCES['max_drop']:g} point absolute (CIDEr-D "
    f"{TASK_TOLERANCES['cider_d_max_relative_drop']:.0%} relative) or one whose paired "
    f"{TASK_TOLERANCES['interval']:.0%} bootstrap interval reaches 0 (the intervals: each manifest's parity "
    "report). Verdict: the export's, over tensor tolerances, the task gate and decode-event F1 (>= "
    f"{TASK_TOLERANCES['decode_f1']:g}); top-1 label agreement is reported, not gated.")

STREAMING_NOTE = (
    "The edge_vljepa streaming loop over one test stream read into memory first (decoding the video is not "
    "in these times). Change-to-text: ground-truth segment change -> its decode's window end, plus this "
    "run's median compute of a decoding window; offline_segments decides at the end of the stream, so it "
    "has none. Loop overhead: wall time outside backend calls and preprocessing (the loop's own logic: "
    "windows, label bank, policy, events).")


def _ms(samples: list[float], q: float = 50) -> float:
    return float(np.percentile(samples, q))


def worst_cosine(parity: dict, methods: list[str]) -> float | None:
    tensors = parity.get("tensors", {})
    values = [m["cosine"] for method in methods if method in tensors
              for m in tensors[method]["outputs"].values()]
    return min(values) if values else None


def int8_shares(variants, methods, contract, latency, flops, limit: float | None) -> list[dict]:
    """Every int8 method's achieved throughput (matmul operations of the eager model / median) and its
    share of this machine's int8 limit (experiments.int8_limit)."""
    rows = []
    for v in variants:
        for method in methods:
            precision = v.quant.get(contract[method].component)
            if v.directory is None or precision not in INT8_PRECISIONS or not limit:
                continue
            gops = flops[method] / _ms(latency[v.name, method]) / 1e6
            rows.append({"variant": v.name, "method": method, "precision": precision,
                         "median_ms": _ms(latency[v.name, method]), "gops": gops, "share": gops / limit})
    return rows


def int8_section(int8: dict | None, shares: list[dict]) -> list[str]:
    if int8 is None:
        return []
    lines = ["", "## Int8 limit of this machine", "", *limit_lines(int8), "",
             "Each int8 artifact against it: GOP/s = matmul operations of one call of the eager model / "
             "the artifact's median (the attention matmuls, which stay fp32, and the time of every "
             "other op included, so 100% is out of reach).", "",
             "| variant | method | precision | median ms | GOP/s | share of the int8 limit |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['variant']} | {r['method']} | {r['precision']} | {r['median_ms']:.2f} | "
              f"{r['gops']:.1f} | {r['share']:.0%} |" for r in shares]
    return lines


def artifacts_report(args, cfg, variants, methods, contract, latency, flops, peak, rss, streams, long,
                     int8: dict | None = None, shares: list[dict] = ()) -> str:
    """int8: the int8-limit probe's result (when an artifact has an int8 component); shares: int8_shares."""
    eager = variants[0].name

    def ort_twin(v, component: str) -> str | None:  # ONNX Runtime at this component's precision
        return next((o.name for o in variants if o.target == "onnxruntime" and o is not v
                     and o.quant.get(component) == v.quant.get(component)), None)
    lines = [f"# Which artifact to ship: preset {cfg.name}", "",
             f"Command: `{command_line('experiments.bench', args.argv)}`", "",
             f"Machine: {cpu_name()}; torch {torch.__version__}; {args.threads} thread(s) for every runtime; "
             f"fp32 matmul peak {peak:.1f} GFLOP/s (torch, 1024^3, same threads); "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             "## Per component", "",
             f"Golden inputs of the artifact (real frames and texts); {args.warmup} warm-up and "
             f"{args.runs} timed calls per method, all variants side by side in one process. "
             "GFLOP/s = matmul FLOPs of the eager model / median; % peak against the fp32 matmul peak "
             "above (int8 kernels can exceed it). Peak RSS: a fresh process that loads only this component "
             "and runs it (in brackets: above the same process once its runtime library was imported; "
             "the eager reference loads the whole model).", "",
             "| variant | method | size MB | median ms | p90 ms | vs eager fp32 | "
             "vs ONNX Runtime same precision | GFLOP/s | % peak | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for method in methods:
        component = contract[method].component
        for v in variants:
            med = _ms(latency[v.name, method])
            base = _ms(latency[eager, method])
            ort_name = ort_twin(v, component)
            vs_ort = f"{med / _ms(latency[ort_name, method]):.2f}" if ort_name else "-"
            gflops = flops[method] / med / 1e6
            mem = rss.get((v.name, component))
            mem_text = f"{mem[1]:.0f} (+{mem[1] - mem[0]:.0f})" if mem else "-"
            lines.append(f"| {v.name} | {method} | {v.sizes.get(component, 0) / MB:.2f} | {med:.2f} | "
                         f"{_ms(latency[v.name, method], 90):.2f} | {med / base:.2f} | {vs_ort} | "
                         f"{gflops:.1f} | {100 * gflops / peak:.0f}% | {mem_text} |")
    lines += int8_section(int8, list(shares))
    lines += ["", "## Quality (from each artifact's parity report)", "", QUALITY_NOTE, "",
              "| variant | size MB | worst cosine x_encoder / predictor / y_encoder / y_decoder | "
              "top-1 label agreement | decode-event F1 | task drops " + " / ".join(TASK_SHORT.values())
              + " | verdict |", "|---|---|---|---|---|---|---|"]
    for v in variants[1:]:
        cos = [worst_cosine(v.parity, [m for m in methods if contract[m].component == c])
               for c in ("x_encoder", "predictor", "y_encoder", "y_decoder")]
        tasks = v.parity.get("tasks", {})
        lab = tasks.get("labels", {}).get("top1_agreement")
        f1 = tasks.get("decode_events", {}).get("f1")
        gate = tasks.get("task_gate", {})
        drops = (" / ".join(f"{gate['metrics'][t]['drop']:+.3f}" for t in TASK_SHORT) if "metrics" in gate
                 else "not run" + (f": {gate['not_run'].split(':')[0]}" if gate.get("not_run") else ""))
        lines.append(f"| {v.name} | {sum(v.sizes.values()) / MB:.2f} | "
                     + " / ".join("-" if c is None else f"{c:.4f}" for c in cos)
                     + f" | {'-' if lab is None else f'{lab:.1%}'} | {'-' if f1 is None else f'{f1:.2f}'} | "
                     f"{drops} | {v.parity.get('status', '-')} |")
    if not streams:
        components = sorted({contract[m].component for m in methods})
        lines += ["", "## Streaming", "", f"Not run: the artifacts hold {', '.join(components)} only; the "
                  "streaming loop needs all four components."]
    else:
        lines += ["", "## Streaming", "", STREAMING_NOTE, "",
                  "| variant | policy | real-time factor | windows/s | decodes/min | change-to-text "
                  "p50 / p90 s (missed) | outside backend | loop overhead |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in streams:
            s = r.summary
            c2t = (f"{np.percentile(r.delays, 50):.2f} / {np.percentile(r.delays, 90):.2f} ({r.missed})"
                   if r.delays else "-")
            lines.append(f"| {r.variant} | {r.policy} | {s.realtime_factor:.1f}x | {s.windows_per_s:.1f} | "
                         f"{s.decodes_per_min:.1f} | {c2t} | {r.outside_backend:.1%} | "
                         f"{r.loop_overhead:.1%} |")
    if long:
        lines += ["", "## Memory over a long run", "",
                  f"{long['variant']}, {long['policy']} policy, {long['minutes']:.1f} minutes of video "
                  f"read lazily from disk ({long['windows']} windows, real-time factor "
                  f"{long['realtime_factor']:.1f}x): "
                  f"RSS {long['start_mb']:.0f} MB after the first window, {long['end_mb']:.0f} MB at the "
                  f"end, max {long['max_mb']:.0f} MB; slope after the first tenth "
                  f"{long['slope_mb_per_min']:+.2f} MB per minute of video."]
    return "\n".join(lines) + "\n"


def plot_variants(path: Path, variants, latency, held: set[str], title: str) -> None:
    """Per-window latency (X-Encoder + Predictor medians, those the artifacts hold) against the size of
    the benchmarked components; the legend gives each variant's export verdict and quality."""
    fig, ax = plt.subplots(figsize=(10, 4.8), dpi=120)
    per_window = [m for m in ("x_encoder", "predictor") if m in held]
    markers = "sodv^<>phD*"
    for k, v in enumerate(variants):
        x = sum(size for c, size in v.sizes.items() if c in held) / MB
        y = sum(_ms(latency[v.name, m]) for m in per_window)
        lab = v.parity.get("tasks", {}).get("labels", {}).get("top1_agreement")
        cos = worst_cosine(v.parity, per_window)
        quality = ("reference" if v.directory is None
                   else f"gates {v.parity.get('status', '-')}, top-1 agreement {lab:.0%}" if lab is not None
                   else f"gates {v.parity.get('status', '-')}, worst cosine {cos:.4f}" if cos is not None
                   else "parity not run")
        ax.scatter(x, y, s=60, marker=markers[k % len(markers)], label=f"{v.name}: {quality}")
    ax.set_xlabel(f"size on disk, {' + '.join(sorted(held))} (MB)")
    ax.set_ylabel(f"ms per window ({' + '.join(per_window)}, median)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
