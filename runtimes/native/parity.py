"""The native core against the Python loop on one artifact and one video, event by event.

    python -m runtimes.parity --artifacts DIR --video clip.mp4 --native

The Python loop (edge_vljepa.streaming over the artifact's ExecuTorch backend, frames decoded by
OpenCV's Python package) is the reference. The native side runs twice, each in its own process:
  core  the C++ core through its C API (ctypes) on the very frames the Python loop decoded: only
        the loops differ (resampling, preprocessing, ExecuTorch calls, label bank, policy, decoding);
  cli   `vljepa-stream` end to end, decoding the file with FFmpeg's libraries (bit-exact decoders, the
        conversion and timestamps of OpenCV's VideoCapture): what a Jetson runs.
Compared per side: every window's time and span, its top-1 label, every decode's time, span and text,
and the window embeddings (worst cosine). The verdict holds when both sides' are all identical and their
worst cosine is at least `MIN_COSINE`; where only the CLI differs, its decoder gave other pixels than
opencv-python's (another FFmpeg build), and the verdict says so.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edge_vljepa.config import CAPTION_QUERY
from edge_vljepa.parity import record_stream
from edge_vljepa.streaming import DEFAULT_POLICY, Event, LabelBank, policy_defaults, read_events
from runtimes.artifact import Artifact
from runtimes.backends import open_backend
from runtimes.stream import PARAM_FLAGS

MIN_COSINE = 0.9999  # window embeddings, native vs Python on the same artifact (same kernels, same frames)
# decode-policy parameter -> vljepa-stream flag: the Python CLI's flags, which the native CLI shares
CLI_FLAGS = {param: "--" + dest.replace("_", "-") for param, dest in PARAM_FLAGS.items()}


def native_cli(build_dir: Path | None = None) -> Path:
    """The built `vljepa-stream`; FileNotFoundError naming the build command when it is missing."""
    from runtimes.native import DEFAULT_BUILD_DIR
    cli = Path(build_dir or DEFAULT_BUILD_DIR) / "vljepa-stream"
    if not cli.is_file():
        raise FileNotFoundError(f"the native CLI {cli} is not built; run: python -m runtimes.native build")
    return cli


def run_native(cli: Path, artifact: Path, video: Path, query: str, policy: str, params: dict, stride: int,
               labels: Path | None, workdir: Path) -> tuple[list[Event], np.ndarray, str]:
    """(events, window embeddings (n, E), summary text) of `vljepa-stream` on the video."""
    events, embeddings = workdir / "native.jsonl", workdir / "native.npy"
    command = [str(cli), "--artifacts", str(artifact), "--video", str(video), "--query", query,
               "--policy", policy, "--stride", str(stride), "--top-k", "1", "--quiet",
               "--events", str(events), "--embeddings", str(embeddings)]
    for name, value in params.items():
        if value is not None:
            command += [CLI_FLAGS[name], str(value)]
    if labels is not None:
        command += ["--labels", str(labels)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode not in (0, 1):  # 1: the source broke mid-stream, events kept (as the Python loop)
        raise RuntimeError(f"vljepa-stream failed: {done.stderr.strip().splitlines()[-1:]}")
    return read_events(events), np.load(embeddings), done.stdout


def run_core_on_frames(artifact: Path, video: Path, query: str, policy: str, params: dict, stride: int,
                       labels: Path | None, workdir: Path) -> tuple[list[Event], np.ndarray]:
    """(events, window embeddings) of the core (ctypes, a child process: the executorch Python extension
    and the wheel's C++ runtime are not loaded together) on frames decoded by OpenCV's Python package."""
    events, embeddings = workdir / "core.jsonl", workdir / "core.npy"
    spec = {"artifact": str(artifact), "video": str(video), "query": query, "policy": policy,
            "params": params, "stride": stride, "labels": str(labels) if labels else None,
            "events": str(events), "embeddings": str(embeddings)}
    done = subprocess.run([sys.executable, "-m", "runtimes.native.parity", json.dumps(spec)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the native core failed: {done.stderr.strip().splitlines()[-1:]}")
    return read_events(events), np.load(embeddings)


def feed(spec: dict) -> None:
    """The child process of run_core_on_frames."""
    from edge_vljepa.data.video import VideoFile
    from runtimes.native import NativeSession

    rows, lines = [], []
    with NativeSession(spec["artifact"]) as s:
        s.set_query(spec["query"])
        s.set_policy(spec["policy"], spec["params"])
        s.set_stride(spec["stride"])
        s.set_top_k(1)
        if spec["labels"]:
            s.set_labels([x.strip() for x in Path(spec["labels"]).read_text(encoding="utf-8").splitlines()
                          if x.strip()])
        for t, rgb in VideoFile(spec["video"]):
            s.process_frame(rgb, t)
            new = s.events()
            if new:  # one event per window; the C API exposes the last window's embedding
                last = s.last_embedding().copy()
                rows += [np.full_like(last, np.nan)] * (len(new) - 1) + [last]
            lines += new
        s.finish()
        lines += s.events()
    Path(spec["events"]).write_text("".join(line + "\n" for line in lines))
    np.save(spec["embeddings"], np.array(rows, dtype=np.float32))


def compare_runs(py_events: list[Event], py_embeddings: np.ndarray, nat_events: list[Event],
                 nat_embeddings: np.ndarray) -> dict:
    """Window-by-window and decode-by-decode agreement, and the worst embedding cosine."""
    n = len(py_embeddings)
    py_windows, nat_windows = py_events[:n], nat_events[:len(nat_embeddings)]
    same_windows = [(a.time, a.window, a.start, a.end) == (b.time, b.window, b.start, b.end)
                    for a, b in zip(py_windows, nat_windows, strict=False)]
    top1 = [bool(a.topk and b.topk and a.topk[0][0] == b.topk[0][0])
            for a, b in zip(py_windows, nat_windows, strict=False)]
    py_dec = [(e.time, e.span, e.text) for e in py_events if e.decode]
    nat_dec = [(e.time, e.span, e.text) for e in nat_events if e.decode]
    rows = min(len(py_embeddings), len(nat_embeddings))
    a, b = py_embeddings[:rows].astype(np.float64), nat_embeddings[:rows].astype(np.float64)
    valid = ~np.isnan(b).any(axis=1)  # rows the native CLI could not see (several windows in one frame)
    a, b = a[valid], b[valid]
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    margins = [e.topk[0][1] - e.topk[1][1] for e in py_windows if len(e.topk) > 1]
    return {
        "windows": {"python": len(py_windows), "native": len(nat_windows),
                    "identical_times": int(sum(same_windows))},
        "top1": {"identical": int(sum(top1)), "of": len(top1),
                 "disagree_at": [i for i, same in enumerate(top1) if not same][:20]},
        "decodes": {"python": py_dec, "native": nat_dec, "identical": py_dec == nat_dec},
        "embeddings": {"compared": int(valid.sum()), "skipped": int((~valid).sum()),
                       "worst_cosine": float(cos.min()) if cos.size else None,
                       "mean_cosine": float(cos.mean()) if cos.size else None},
        "reference_margin_p5": float(np.percentile(margins, 5)) if margins else None,
    }


def failures(result: dict) -> list[str]:
    out = []
    w, t, d, e = result["windows"], result["top1"], result["decodes"], result["embeddings"]
    if not (w["python"] == w["native"] == w["identical_times"]):
        out.append(f"windows: python {w['python']}, native {w['native']}, "
                   f"identical times {w['identical_times']}")
    if t["identical"] != t["of"]:
        out.append(f"top-1 labels differ in {t['of'] - t['identical']} of {t['of']} windows (first at "
                   f"{t['disagree_at'][:5]})")
    if not d["identical"]:
        out.append(f"decodes differ: python {len(d['python'])}, native {len(d['native'])}")
    if e["worst_cosine"] is None or e["worst_cosine"] < MIN_COSINE:
        out.append(f"worst window-embedding cosine {e['worst_cosine']}, needs at least {MIN_COSINE}")
    return out


def compare_native(artifact_dir: Path, video: Path, policy: str | None = None, params: dict | None = None,
                   stride: int | None = None, query: str = CAPTION_QUERY, labels: Path | None = None,
                   build_dir: Path | None = None) -> dict:
    """Run the three (defaults: the artifact's decode defaults) and compare with the Python loop:
    {"core": ..., "cli": ..., settings, "failures"} (empty failures: both behave like the loop)."""
    artifact = Artifact(artifact_dir)
    cli = native_cli(build_dir)
    defaults = artifact.decode_defaults
    policy = policy or defaults.get("policy", DEFAULT_POLICY)
    if params is None:
        params = defaults.get("params", {}) if policy == defaults.get("policy") else policy_defaults(policy)
    params = {k: v for k, v in params.items() if v is not None}
    stride = stride or defaults.get("stride", 2)
    backend = open_backend(artifact)
    if labels is not None:
        bank_labels = [x.strip() for x in labels.read_text(encoding="utf-8").splitlines() if x.strip()]
        bank = LabelBank.build(bank_labels, backend, artifact.text_tokenizer("y_encoder"))
    else:
        bank = artifact.label_bank()
    py = record_stream(backend, artifact.cfg, video, query, stride, policy, params, label_bank=bank)
    with tempfile.TemporaryDirectory(prefix="edge-vljepa-native-") as tmp:
        core = run_core_on_frames(artifact.dir, video, query, policy, params, stride, labels, Path(tmp))
        cli_events, cli_embeddings, _ = run_native(cli, artifact.dir, video, query, policy, params, stride,
                                                   labels, Path(tmp))
    result = {"artifact": str(artifact.dir), "video": str(video), "policy": policy, "params": params,
              "stride": stride, "query": query,
              "core": compare_runs(py.events, py.embeddings, *core),
              "cli": compare_runs(py.events, py.embeddings, cli_events, cli_embeddings)}
    core_failed, cli_failed = failures(result["core"]), failures(result["cli"])
    why = "" if core_failed else (" (the core agrees on the Python loop's frames: the CLI's video decoder "
                                  "gave other pixels than opencv-python's)")
    result["failures"] = [f"core: {f}" for f in core_failed] + [f"cli: {f}{why}" for f in cli_failed]
    return result


def format_side(name: str, r: dict) -> list[str]:
    w, t, d, e = r["windows"], r["top1"], r["decodes"], r["embeddings"]
    cos = (f"worst cosine {e['worst_cosine']:.7f}, mean {e['mean_cosine']:.7f} over {e['compared']} windows"
           if e["worst_cosine"] is not None else "no embedding compared")
    same = "identical times, spans and texts" if d["identical"] else "DIFFERENT"
    return [f"{name:<5} windows {w['native']} (python {w['python']}, identical times "
            f"{w['identical_times']}); "
            f"top-1 identical in {t['identical']} of {t['of']}; decodes {len(d['native'])} (python "
            f"{len(d['python'])}): {same}; embedding {cos}"]


def format_result(result: dict) -> str:
    lines = [f"native    {result['artifact']} on {result['video']}: policy {result['policy']} "
             f"{result['params']}, stride {result['stride']}",
             *format_side("core", result["core"]), *format_side("cli", result["cli"])]
    lines.append("NATIVE PARITY " + ("PASSED" if not result["failures"] else
                                     "FAILED: " + "; ".join(result["failures"])))
    return "\n".join(lines)


def write_result(result: dict, path: Path) -> None:
    path.write_text(json.dumps(result, indent=1, default=str) + "\n")


if __name__ == "__main__":  # the child process of run_core_on_frames
    feed(json.loads(sys.argv[1]))
