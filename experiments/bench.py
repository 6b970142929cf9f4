"""`python -m experiments.bench`: which artifact to ship, measured on this machine.

    python -m experiments.bench artifacts --artifacts art/fp32 art/int8 art/onnx-int8 --out bench-out
    python -m experiments.bench int8-limit --threads 1 --out bench-out
    python -m experiments.bench gpu --preset paper --out bench-out

`artifacts`: for each artifact directory (any target whose runtime is installed here) and for the
PyTorch eager fp32 reference of the same model, measured in the same process with a fixed thread
count:
  components  median and p90 latency of every contract method on the artifact's golden inputs
              (warm-up, then at least 20 timed calls), file size, peak RSS of a fresh process that
              loads and runs only that component, GFLOP/s achieved against this machine's measured
              fp32 matmul peak; ratios to PyTorch eager fp32 and to ONNX Runtime at the same precision
              when an ONNX Runtime artifact of it is among --artifacts;
  int8 limit  when an artifact has an int8 component: this machine's int8 limit (below) beside the fp32
              peak, and each int8 method's achieved GOP/s as a share of it;
  streaming   real-time factor, windows/s, decodes per minute, change-to-text latency (ground-truth
              segment change -> decoded text on screen) per decode policy, and the loop's own overhead
              (time outside backend calls and preprocessing) over a generated test stream;
  memory      RSS over a long run (--long-minutes of video, 10 by default): start, end, slope.
Writes NAME.md (tables, the command, the machine), NAME.json (the same figures as data) and NAME.png
(latency against size against quality per variant) under --out (default: ~/edge-vljepa-runs/bench,
never the repository; `docs/bench/README.md` gives the commands that regenerate the committed reports).

`int8-limit`: the best int8 GEMM throughput any installed library (XNNPACK through a one-Linear .pte,
ONNX Runtime, PyTorch's quantized Linear) reaches here at --threads, at the model's Linear shapes
(experiments/int8_limit.py); writes NAME.md and NAME.json.
`native`: the native core against the Python runtime (experiments/bench_native.py).
`gpu`: see experiments/bench_gpu.py; writes gpu.md and gpu.json under --out.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from edge_vljepa.cli import HelpFormatter, add_model_arguments
from edge_vljepa.config import CAPTION_QUERY, COMPONENTS, ConfigError, resolve_config
from edge_vljepa.data.video import VideoFile
from edge_vljepa.data.world import sample_stream
from edge_vljepa.data.write import write_video
from edge_vljepa.models import method_modules
from edge_vljepa.outputs import OutputError, check_output_dir
from edge_vljepa.preprocess import component_tokenizer
from edge_vljepa.streaming import DEFAULT_POLICY, make_policy, run_stream
from experiments import int8_limit, rss_probe
from experiments.bench_gpu import DTYPES, gpu_latency, gpu_report
from experiments.bench_native import BENCH_POLICIES, run_native_bench
from experiments.bench_report import artifacts_report, int8_shares, plot_variants
from experiments.host import cpu_name, set_threads
from experiments.reports import RUNS, command_line, write_report
from experiments.selective_score import Truth, decision_delays
from runtimes.artifact import Artifact, ArtifactError
from runtimes.backends import open_backend
from runtimes.backends.pytorch import PyTorchBackend
from runtimes.memory import peak_rss_mb, rss_mb

DEFAULT_OUT = RUNS / "bench"


@dataclass
class Variant:
    """One thing to measure: an artifact directory, or the eager reference (directory None)."""

    name: str
    target: str
    quant: dict[str, str]  # component -> precision
    directory: Path | None
    sizes: dict[str, int]  # component -> bytes on disk (eager: fp32 parameter bytes)
    parity: dict = field(default_factory=dict)  # the manifest's parity section
    backend: object = None
    artifact: object = None  # runtimes.artifact.Artifact of an artifact variant

    @property
    def precision(self) -> str:
        """The common precision, or the most common one and the exceptions: "int8, y_encoder fp16"."""
        modes = list(self.quant.values())
        main = max(dict.fromkeys(modes), key=modes.count)  # ties: the first component's
        return ", ".join([main, *(f"{c} {q}" for c, q in self.quant.items() if q != main)])


def open_variant(directory: Path) -> Variant:
    artifact = Artifact(directory)
    backend = open_backend(artifact)
    m = artifact.manifest
    comps = m["components"]
    delegate = {c.get("delegate") for c in comps.values()} - {None}
    quant = {c: info["quant"] for c, info in comps.items()}
    def size(info: dict) -> int:  # a component's files: one, or one per method (ONNX, Core ML)
        files = set(info.get("method_files", {}).values()) or {info["file"]}
        return sum(m["files"][f]["size"] for f in files if f in m["files"])
    variant = Variant("", m["target"], quant, directory, {c: size(info) for c, info in comps.items()},
                      m.get("parity", {}), backend, artifact)
    variant.name = " ".join([m["target"], *sorted(delegate), variant.precision])
    return variant


def reference_variant(cfg, checkpoint: str | None) -> Variant:
    backend = PyTorchBackend(cfg, checkpoint=checkpoint)
    sizes = {c: sum(p.numel() * 4 for p in getattr(backend.model, c).parameters()) for c in COMPONENTS}
    return Variant("pytorch eager fp32", "pytorch", {c: "fp32" for c in COMPONENTS}, None, sizes,
                   backend=backend)


def golden_inputs(artifact: Artifact, methods: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """Each method's golden input (real recorded frames and texts) from the artifact's golden file."""
    golden = artifact.golden()
    return {m: {t.name: golden[m]["in"][t.name] for t in artifact.contract[m].inputs} for m in methods}


def time_calls(backend, method: str, inputs: dict, warmup: int, runs: int) -> list[float]:
    for _ in range(warmup):
        backend.run(method, inputs)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        backend.run(method, inputs)
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


def matmul_peak_gflops(runs: int = 20, n: int = 1024) -> float:
    """This machine's fp32 matmul rate at the current thread count (median of `runs` n^3 products)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n**3 / float(np.median(times)) / 1e9


def method_flops(model, contract, inputs: dict[str, dict[str, np.ndarray]]) -> dict[str, float]:
    """Matmul FLOPs of one call of each method (torch.utils.flop_counter on the eager model)."""

    modules, out = method_modules(model), {}
    for spec in (contract[m] for m in inputs):
        args = [torch.from_numpy(np.ascontiguousarray(inputs[spec.name][t.name])) for t in spec.inputs]
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            modules[spec.name](*args)
        out[spec.name] = float(counter.get_total_flops())
    return out


def component_rss(variant: Variant, cfg, checkpoint, component: str, inputs: dict, threads: int) -> tuple:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(rss_probe.component_rss, (str(variant.directory) if variant.directory else None,
                                           cfg.to_dict(), checkpoint, component, inputs, threads, 5))


@dataclass
class PolicyRun:
    variant: str
    policy: str
    summary: object
    delays: list[float]  # change-to-text, s: decision delay in stream time + this run's compute
    missed: int
    loop_overhead: float  # share of wall time outside backend calls and preprocessing
    outside_backend: float  # share of wall time outside backend calls (preprocessing included)


def stream_runs(variant: Variant, cfg, frames, truth, stride: int) -> list[PolicyRun]:
    out = []
    for name, params in BENCH_POLICIES.items():
        events = []
        summary = run_stream(frames, variant.backend, cfg, query=CAPTION_QUERY,
                             query_tokenizer=component_tokenizer(cfg, "predictor"),
                             decoder_tokenizer=component_tokenizer(cfg, "y_decoder"),
                             policy=make_policy(name, **params), stride=stride, on_event=events.append)
        decodes = [(e.time, e.end, e.text) for e in events if e.decode]
        delays, missed = [], 0
        if truth is not None and name != "offline_segments":  # offline decides at the end of the stream
            compute_s = np.median([sum(e.ms.values()) for e in events if e.decode]) / 1e3 if decodes else 0.0
            delays, missed = decision_delays(truth.boundaries, decodes, truth.duration)
            delays = [d + compute_s for d in delays]
        preprocess_s = sum(e.ms.get("preprocess", 0.0) for e in events) / 1e3
        wall = summary.wall_s
        out.append(PolicyRun(variant.name, name, summary, delays, missed,
                             (summary.outside_backend_s - preprocess_s) / wall,
                             summary.outside_backend_s / wall))
    return out


def long_run(variant: Variant, cfg, video: Path, stride: int) -> dict:
    """RSS sampled at every window of a long video read lazily from disk, the default decode policy."""
    samples = []
    summary = run_stream(VideoFile(video), variant.backend, cfg, query=CAPTION_QUERY,
                         query_tokenizer=component_tokenizer(cfg, "predictor"),
                         decoder_tokenizer=component_tokenizer(cfg, "y_decoder"),
                         policy=make_policy(DEFAULT_POLICY), stride=stride,
                         on_event=lambda e: samples.append((e.end, rss_mb() or peak_rss_mb())))
    t, rss = np.array(samples).T
    settled = t >= t[-1] * 0.1  # the first tenth holds the lazy loads (Y-Decoder on the first decode)
    slope = float(np.polyfit(t[settled] / 60, rss[settled], 1)[0]) if settled.sum() > 2 else float("nan")
    return {"variant": variant.name, "policy": DEFAULT_POLICY, "minutes": t[-1] / 60,
            "windows": summary.windows,
            "start_mb": float(rss[0]), "end_mb": float(rss[-1]), "max_mb": float(rss.max()),
            "slope_mb_per_min": slope, "realtime_factor": summary.realtime_factor}


def make_stream(folder: Path, index: int, minutes: float) -> tuple[Path, Path]:
    return write_video(sample_stream("test", index, seed=0, minutes=minutes), folder, fmt="mp4")


def run_artifacts(args) -> int:

    set_threads(args.threads)
    try:
        variants = [open_variant(d) for d in args.artifacts]
    except ArtifactError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    first = variants[0].artifact
    cfg, contract = first.cfg, first.contract
    for v in variants[1:]:
        if v.artifact.contract.hash() != contract.hash():
            print(f"error: {v.directory} is an artifact of another model than {variants[0].directory} "
                  "(contract hashes differ); benchmark artifacts of one model together", file=sys.stderr)
            return 2
    held = set.intersection(*(set(v.quant) for v in variants))  # components every artifact holds
    whole = len(held) == len({spec.component for spec in contract})
    checkpoint = first.manifest["model"].get("checkpoint")
    checkpoint = checkpoint if checkpoint and Path(checkpoint).is_file() else None
    reference = reference_variant(cfg, checkpoint)
    variants = [reference, *variants]
    methods = [spec.name for spec in contract if spec.component in held]
    inputs = golden_inputs(variants[1].artifact, methods)
    print(f"bench     preset {cfg.name}, {len(variants) - 1} artifact(s) + PyTorch eager fp32, "
          f"{args.threads} thread(s), {args.runs} timed calls per method")

    peak = matmul_peak_gflops()
    flops = method_flops(reference.backend.model, contract, inputs)
    print(f"machine   {cpu_name()}; fp32 matmul peak {peak:.1f} GFLOP/s at {args.threads} thread(s)")
    latency: dict[tuple[str, str], list[float]] = {}
    with tqdm(total=len(methods) * len(variants), desc="latency", unit="run") as bar:
        for method in methods:  # side by side: every variant on one method before the next method
            for v in variants:
                latency[v.name, method] = time_calls(v.backend, method, inputs[method], args.warmup,
                                                     args.runs)
                bar.update()
    rss = {}
    if not args.skip_rss:
        components = list(dict.fromkeys(contract[m].component for m in methods))
        for v in tqdm(variants, desc="peak RSS", unit="variant"):
            for c in components:
                rss[v.name, c] = component_rss(v, cfg, checkpoint, c, {m: inputs[m] for m in methods
                                                                     if contract[m].component == c},
                                               args.threads)
    int8 = shares = None
    if any(q in int8_limit.INT8_PRECISIONS for v in variants for c, q in v.quant.items() if c in held):
        print("int8      this machine's int8 limit (one Linear per library and shape)...", flush=True)
        int8 = int8_limit.probe(int8_limit.model_shapes(cfg), args.threads, warmup=args.warmup,
                                runs=args.runs, fp32_peak=peak)
        shares = int8_shares(variants, methods, contract, latency, flops, int8["limit_gops"])
    if whole:
        streams, long = streaming(args, cfg, variants)
    else:
        streams, long = [], None
        print(f"streaming not run: the artifacts hold {', '.join(sorted(held))} only; "
              "the loop needs all four components")
    report = artifacts_report(args, cfg, variants, methods, contract, latency, flops, peak, rss, streams,
                              long, int8, shares or [])
    figures = {
        "preset": cfg.name, "threads": args.threads, "fp32_matmul_peak_gflops": peak,
        "variants": [{"name": v.name, "target": v.target, "quant": v.quant, "sizes": v.sizes,
                      "directory": v.directory, "parity": v.parity} for v in variants],
        "latency_ms": [{"variant": v, "method": m, "median": float(np.median(s)),
                        "p90": float(np.percentile(s, 90)), "samples": s} for (v, m), s in latency.items()],
        "gflop_per_call": {m: f / 1e9 for m, f in flops.items()},
        "int8_limit": int8, "int8_share": shares,
        "peak_rss_mb": [{"variant": v, "component": c, "baseline": base, "peak": top}
                        for (v, c), (base, top) in rss.items()],
        "streaming": [{"variant": r.variant, "policy": r.policy, "realtime_factor": r.summary.realtime_factor,
                       "windows_per_s": r.summary.windows_per_s, "decodes_per_min": r.summary.decodes_per_min,
                       "change_to_text_s": r.delays, "missed": r.missed, "loop_overhead": r.loop_overhead,
                       "outside_backend": r.outside_backend} for r in streams],
        "long_run": long}
    md, js = write_report(args.out, args.name, report, figures, command_line("experiments.bench", args.argv))
    plot_variants(args.out / f"{args.name}.png", variants, latency, held,
                  f"{cfg.name}: {args.threads} thread(s)")
    print(report)
    print(f"wrote {md}, {js} and {args.out / (args.name + '.png')}")
    return 0


def streaming(args, cfg, variants: list[Variant]) -> tuple[list[PolicyRun], dict | None]:
    """The streaming runs of every variant over one test stream, and the long memory run of the first
    artifact."""

    streams, long = [], None
    with tempfile.TemporaryDirectory(prefix="edge-vljepa-bench-") as tmp:
        if args.video:
            video, annotation = args.video, args.video.with_suffix(".json")
        else:
            print(f"data      a {args.stream_minutes:g}-minute test stream (seed 0)...", flush=True)
            video, annotation = make_stream(Path(tmp), 0, args.stream_minutes)
        truth = Truth.from_json(annotation) if annotation.is_file() else None
        frames = list(VideoFile(video))
        for v in tqdm(variants, desc="streaming", unit="variant"):
            streams += stream_runs(v, cfg, frames, truth, args.stride)
        if args.long_minutes > 0:
            print(f"data      a {args.long_minutes:g}-minute stream for the memory run...", flush=True)
            long_video, _ = make_stream(Path(tmp), 1, args.long_minutes)
            long = long_run(variants[1], cfg, long_video, args.stride)
    return streams, long


def run_int8_limit(args) -> int:
    try:
        cfg = resolve_config(args.preset, args.config, default="default")
        shapes = ([int8_limit.parse_shape(s) for s in args.shapes] if args.shapes
                  else int8_limit.model_shapes(cfg))
    except (ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    set_threads(args.threads)
    peak = matmul_peak_gflops()
    machine = cpu_name()
    print(f"machine   {machine}; fp32 matmul peak {peak:.1f} GFLOP/s at {args.threads} thread(s)")
    result = int8_limit.probe(shapes, args.threads, args.libraries, args.warmup, args.runs, fp32_peak=peak)
    command = command_line("experiments.bench", args.argv)
    report = "\n".join([f"# Int8 limit of this machine: {args.threads} thread(s)", "",
                        f"Command: `{command}`", "",
                        f"Machine: {machine}; torch {torch.__version__}; "
                        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
                        *int8_limit.limit_lines(result)]) + "\n"
    md, js = write_report(args.out, args.name, report, {"preset": cfg.name, **result}, command)
    print(report)
    print(f"wrote {md} and {js}")
    return 0 if result["limit"] else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m experiments.bench", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    a = sub.add_parser("artifacts", help="artifact directories against PyTorch eager and ONNX Runtime on "
                                         "this CPU", formatter_class=HelpFormatter)
    a.add_argument("--artifacts", type=Path, nargs="+", required=True,
                   help="artifact directories of one model")
    a.add_argument("--threads", type=int, default=1, help="threads for every runtime")
    a.add_argument("--warmup", type=int, default=3)
    a.add_argument("--runs", type=int, default=20, help="timed calls per method (>= 20)")
    a.add_argument("--video", type=Path, help="stream for the streaming figures (its .json annotation "
                                               "beside it gives change-to-text latency); default: generated")
    a.add_argument("--stream-minutes", type=float, default=2.0, help="length of the generated stream")
    a.add_argument("--long-minutes", type=float, default=10.0,
                   help="minutes of video for the memory run (0: skip)")
    a.add_argument("--stride", type=int, default=2, help="model frames between windows")
    a.add_argument("--skip-rss", action="store_true", help="skip the per-component peak-RSS processes")
    a.add_argument("--name", default="bench", help="report name: NAME.md and NAME.png")
    a.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    i = sub.add_parser("int8-limit", help="this machine's int8 limit: the best int8 GEMM throughput of "
                                           "XNNPACK, ONNX Runtime and PyTorch's quantized Linear here",
                       description=int8_limit.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(i, preset_help="model whose X-Encoder MLP shapes are measured")
    i.add_argument("--shapes", nargs="+", metavar="MxKxN",
                   help="GEMM shapes instead of the model's (M tokens, K inputs, N outputs), "
                        "e.g. 144x192x768")
    i.add_argument("--libraries", nargs="+", choices=int8_limit.LIBRARY_NAMES,
                   help="only these (default: all)")
    i.add_argument("--threads", type=int, default=1, help="threads for every library (default: 1)")
    i.add_argument("--warmup", type=int, default=3, help="untimed calls first (default: 3)")
    i.add_argument("--runs", type=int, default=20, help="timed calls per library and shape (default: 20)")
    i.add_argument("--name", default="int8-limit", help="report name: NAME.md and NAME.json")
    i.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    n = sub.add_parser("native", help="the native core (vljepa-stream) against the Python runtime on one "
                                      "ExecuTorch artifact: per-window latency, loop overhead, peak RSS",
                       formatter_class=HelpFormatter)
    n.add_argument("--artifacts", type=Path, nargs=1, required=True, help="an ExecuTorch artifact directory")
    n.add_argument("--video", type=Path, required=True,
                   help="the video both run over (e.g. a 1-minute stream)")
    n.add_argument("--threads", type=int, default=1, help="threads for both")
    n.add_argument("--stride", type=int, default=2, help="model frames between windows")
    n.add_argument("--custom-labels", type=Path,
                   help="labels file for the custom-label memory run (default: four sample labels)")
    n.add_argument("--native-build", type=Path,
                   help="the native build folder (default: runtimes/native/build)")
    n.add_argument("--name", default="native", help="report name: NAME.md and NAME.json")
    n.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    g = sub.add_parser("gpu", help="PyTorch CUDA latency per contract method (needs an NVIDIA GPU)",
                       formatter_class=HelpFormatter)
    add_model_arguments(g, default="paper")
    g.add_argument("--checkpoint", type=Path, help="native .safetensors (default: random weights)")
    g.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=DTYPES)
    g.add_argument("--warmup", type=int, default=10)
    g.add_argument("--runs", type=int, default=50)
    g.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for gpu.md and gpu.json")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:  # before any measurement: reports are rewritten in place (docs/bench refreshes that way)
        check_output_dir(args.out)
    except OutputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.command == "artifacts":
        if args.runs < 20 or args.warmup < 1 or args.threads < 1:
            print("error: --runs must be >= 20, --warmup >= 1 and --threads >= 1", file=sys.stderr)
            return 2
        return run_artifacts(args)
    if args.command == "int8-limit":
        if args.threads < 1 or args.runs < 1 or args.warmup < 0:
            print("error: --threads and --runs must be >= 1, --warmup >= 0", file=sys.stderr)
            return 2
        return run_int8_limit(args)
    if args.command == "native":
        if args.threads < 1 or args.stride < 1:
            print("error: --threads and --stride must be >= 1", file=sys.stderr)
            return 2
        try:
            report, figures = run_native_bench(args)
        except (ArtifactError, FileNotFoundError, RuntimeError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        command = command_line("experiments.bench", args.argv)
        md, js = write_report(args.out, args.name, report, figures, command)
        print(report)
        print(f"wrote {md} and {js}")
        return 0
    if not torch.cuda.is_available():
        print("error: `gpu` needs a CUDA GPU visible to torch; this machine has none", file=sys.stderr)
        return 2
    if args.runs < 20 or args.warmup < 1:
        print("error: --runs must be >= 20 and --warmup >= 1", file=sys.stderr)
        return 2
    try:
        cfg = resolve_config(args.preset, args.config, default="paper")
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows = gpu_latency(cfg, args.dtypes, args.warmup, args.runs, args.checkpoint)
    report = gpu_report(args, cfg, rows)
    md, js = write_report(args.out, "gpu", report,
                          {"preset": cfg.name, "config": cfg.to_dict(), "rows": rows},
                          command_line("experiments.bench", args.argv))
    print(report)
    print(f"wrote {md} and {js}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
