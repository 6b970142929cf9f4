"""`python -m experiments.bench native`: the native core against the Python runtime on one artifact.

Each runs the whole streaming loop over the same video with the same thread count, one process each,
one after the other:
  python  the Python runtime (`edge_vljepa.streaming.run_stream` over the artifact's ExecuTorch
          backend) in a spawned process, decoding the video with OpenCV's Python package;
  cli     `vljepa-stream`, decoding the video with FFmpeg's libraries (Debian's build links some 150
          shared libraries, which count in its memory);
  core    `evj_raw_stream` (runtimes/native/tests/tools): the core alone in its process, fed the
          video's frames as raw RGB from a file: what an app adds to its process.
Per decode policy: windows, per-window latency (X-Encoder + Predictor medians), time inside backend
calls per window, the loop's own overhead (python, cli: wall time outside backend calls and
preprocessing, video decoding included; core: time inside the core's calls outside ExecuTorch and
preprocessing, as a share of the time inside its calls) and the process's peak RSS (VmHWM); and the
core once more with custom labels (the Y-Encoder is loaded only for them).
"""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from edge_vljepa.config import CAPTION_QUERY
from edge_vljepa.streaming import DEFAULT_POLICY, PAPER_RATE_HZ
from experiments.host import cpu_name
from runtimes.artifact import Artifact
from runtimes.native.parity import CLI_FLAGS, native_cli

# the decode policies every benchmark runs (experiments.bench too), each with its benchmark setting
BENCH_POLICIES = {"uniform": {"every_s": 1.0}, "offline_segments": {"rate_hz": PAPER_RATE_HZ}, "online": {},
                  "changepoint": {}}
MB = 1e6
CUSTOM_LABELS = ("a person cutting bread", "a red circle moving left", "a blue square",
                 "a hand picking up a cup")


def python_run(artifact_dir: str, video: str, policy: str, params: dict, stride: int, threads: int,
               labels: list[str] | None) -> dict:
    """In a fresh process: the Python runtime's loop over the video; its summary and peak RSS."""
    from edge_vljepa.data.video import VideoFile
    from edge_vljepa.streaming import LabelBank, make_policy, run_stream
    from experiments.host import set_threads
    from runtimes.backends import open_backend
    from runtimes.memory import peak_rss_mb
    set_threads(threads)
    artifact = Artifact(artifact_dir)
    backend = open_backend(artifact)
    bank = (LabelBank.build(labels, backend, artifact.text_tokenizer("y_encoder")) if labels
            else artifact.label_bank())
    events = []
    summary = run_stream(VideoFile(video), backend, artifact.cfg, query=CAPTION_QUERY,
                         query_tokenizer=artifact.text_tokenizer("predictor"),
                         decoder_tokenizer=artifact.text_tokenizer("y_decoder"),
                         policy=make_policy(policy, **params), stride=stride, label_bank=bank, top_k=3,
                         on_event=events.append, preprocess=artifact.preprocess)
    preprocess_s = sum(e.ms.get("preprocess", 0.0) for e in events) / 1e3
    return {"windows": summary.windows, "decodes": summary.decodes, "wall_s": summary.wall_s,
            "backend_s": summary.backend_s, "outside_backend_s": summary.outside_backend_s,
            "preprocess_s": preprocess_s, "stage_ms": summary.stage_ms, "peak_rss_mb": peak_rss_mb()}


def native_run(cli: Path, artifact_dir: Path, video: Path, policy: str, params: dict, stride: int,
               threads: int, labels: Path | None, workdir: Path) -> dict:
    """`vljepa-stream` over the video; its summary (--summary JSON) and peak RSS."""
    summary = workdir / f"{policy}.summary.json"
    command = [str(cli), "--artifacts", str(artifact_dir), "--video", str(video), "--policy", policy,
               "--stride", str(stride), "--threads", str(threads), "--quiet", "--summary", str(summary)]
    for name, value in params.items():
        command += [CLI_FLAGS[name], str(value)]
    if labels is not None:
        command += ["--labels", str(labels)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"vljepa-stream failed: {done.stderr.strip()}")
    return native_figures(json.loads(summary.read_text()), wall="wall_s")


def native_figures(s: dict, wall: str) -> dict:
    """The figures of the core's summary JSON (evj_summary_json); `wall`: the time the loop overhead is
    a share of ("wall_s": the whole process loop, decoding included; "core_s": inside the core's calls)."""
    return {"windows": s["windows"], "decodes": s["decodes"], "wall_s": s[wall], "backend_s": s["backend_s"],
            "outside_backend_s": s[wall] - s["backend_s"],
            "preprocess_s": s["stage_total_ms"].get("preprocess", 0.0) / 1e3,
            "stage_ms": {k: tuple(v) for k, v in s["stage_ms"].items()}, "peak_rss_mb": s["peak_rss_mb"]}


def write_raw_frames(video: Path, path: Path) -> Path:
    """The video's frames as evj_raw_stream reads them (a header line, then RGB bytes), at the video's
    nominal frame rate (its timestamps are those of a constant-rate file)."""
    from edge_vljepa.data.video import VideoFile
    source = VideoFile(video)
    frames = [rgb for _, rgb in source]
    h, w = frames[0].shape[:2]
    with path.open("wb") as f:
        f.write(f"{w} {h} {len(frames)} {source.fps}\n".encode())
        for rgb in frames:
            f.write(np.ascontiguousarray(rgb).tobytes())
    return path


def core_run(tool: Path, artifact_dir: Path, raw: Path, threads: int, labels: Path | None) -> dict:
    """`evj_raw_stream`: the core alone in its process (artifact's decode defaults)."""
    command = [str(tool), str(artifact_dir), str(raw), str(threads)] + ([str(labels)] if labels else [])
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"evj_raw_stream failed: {done.stderr.strip()}")
    return native_figures(json.loads(done.stdout.strip().splitlines()[-1]), wall="core_s")


def per_window_ms(run: dict) -> float:
    return sum(run["stage_ms"].get(stage, (0.0, 0.0))[0] for stage in ("x_encoder", "predictor"))


def loop_overhead(run: dict) -> float:
    """Share of wall time outside backend calls and preprocessing: the loop's own logic."""
    return (run["outside_backend_s"] - run["preprocess_s"]) / run["wall_s"] if run["wall_s"] else float("nan")


def run_native_bench(args) -> tuple[str, dict]:
    """(Markdown report, figures) of the native core against the Python runtime."""
    artifact = Artifact(args.artifacts[0])
    cli = native_cli(args.native_build)
    stride = args.stride
    video = args.video
    rows, figures = [], {"artifact": str(artifact.dir), "video": str(video), "threads": args.threads,
                         "runs": []}
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="edge-vljepa-native-bench-") as tmp:
        tmp = Path(tmp)
        for policy, params in BENCH_POLICIES.items():
            with spawn.Pool(1) as pool:
                py = pool.apply(python_run, (str(artifact.dir), str(video), policy, params, stride,
                                             args.threads, None))
            nat = native_run(cli, artifact.dir, video, policy, params, stride, args.threads, None, tmp)
            figures["runs"].append({"policy": policy, "python": py, "native": nat})
            rows.append((policy, py, nat))
        labels_file = args.custom_labels or tmp / "labels.txt"
        if args.custom_labels is None:
            labels_file.write_text("\n".join(CUSTOM_LABELS) + "\n")
        tool = cli.parent / "evj_raw_stream"
        raw = write_raw_frames(video, tmp / "frames.raw")
        core = core_run(tool, artifact.dir, raw, args.threads, None)
        custom = core_run(tool, artifact.dir, raw, args.threads, labels_file)
    files = artifact.manifest["files"]
    loaded = sum(files[info["file"]]["size"] for info in artifact.manifest["components"].values())
    figures["core"] = core
    figures["custom_labels"] = {"core": custom, "component_files_mb": loaded / MB}
    quant = ", ".join(f"{c} {i['quant']}" for c, i in artifact.manifest["components"].items())
    lines = [f"# The native core against the Python runtime: {artifact.dir.name}", "",
             f"Machine: {cpu_name()}; {args.threads} thread(s) for every side; artifact {artifact.dir} "
             f"({quant}); video {video}", "", __doc__.split("\n\n", 1)[1].strip(), "",
             "| policy | side | windows | decodes | ms per window | backend ms per window | "
             "loop overhead | peak RSS MB |", "|---|---|---|---|---|---|---|---|"]

    def row(policy: str, side: str, r: dict) -> str:
        return (f"| {policy} | {side} | {r['windows']} | {r['decodes']} | {per_window_ms(r):.2f} | "
                f"{1e3 * r['backend_s'] / max(1, r['windows']):.2f} | {loop_overhead(r):.2%} | "
                f"{r['peak_rss_mb']:.1f} |")
    for policy, py, nat in rows:
        lines += [row(policy, "python", py), row(policy, "cli", nat)]
    default = artifact.decode_defaults.get("policy", DEFAULT_POLICY)  # what evj_raw_stream runs
    lines.append(row(f"{default} (artifact default)", "core", core))
    ratios = [per_window_ms(nat) / per_window_ms(py) for _, py, nat in rows if per_window_ms(py) > 0]
    python_default = next(py for policy, py, _ in rows if policy == default)
    lines += ["", f"Per-window latency, cli / python: median {np.median(ratios):.2f} over the policies; "
              f"core / python ({default}): {per_window_ms(core) / per_window_ms(python_default):.2f}. "
              f"Peak RSS, core / python ({default}): "
              f"{core['peak_rss_mb'] / python_default['peak_rss_mb']:.3f}.",
              "", "## Custom labels (the Y-Encoder loaded to embed them)", "",
              f"The core alone, {default} policy, "
              f"{args.custom_labels or f'{len(CUSTOM_LABELS)} custom labels'}: peak RSS "
              f"{custom['peak_rss_mb']:.1f} MB against {loaded / MB:.1f} MB of component files (all four "
              f"components' .pte files; margin {custom['peak_rss_mb'] - loaded / MB:+.1f} MB)."]
    return "\n".join(lines) + "\n", figures
