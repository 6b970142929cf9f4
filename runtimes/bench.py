"""`python -m runtimes.bench`: which artifact to ship, measured on this machine.

    python -m runtimes.bench artifacts --artifacts art/fp32 art/int8 art/onnx-int8 --out docs/bench
    python -m runtimes.bench gpu --preset paper --out docs/bench

`artifacts`: for each artifact directory (any target whose runtime is installed here) and for the
PyTorch eager fp32 reference of the same model, measured in the same process with a fixed thread
count:
  components  median and p90 latency of every contract method on the artifact's golden inputs
              (warm-up, then at least 20 timed calls), file size, peak RSS of a fresh process that
              loads and runs only that component, GFLOP/s achieved against this machine's measured
              fp32 matmul peak; ratios to PyTorch eager fp32 and to ONNX Runtime at the same precision
              when an ONNX Runtime artifact of it is among --artifacts;
  streaming   real-time factor, windows/s, decodes per minute, change-to-text latency (ground-truth
              segment change -> decoded text on screen) per decode policy, and the loop's own overhead
              (time outside backend calls and preprocessing) over a generated test stream;
  memory      RSS over a long run (--long-minutes of video, 10 by default): start, end, slope.
Writes <name>.md (tables, the command, the machine) and <name>.png (latency against size against
quality per variant) under --out.

`gpu`: PyTorch CUDA latency of every contract method of a preset (random weights unless a
checkpoint is given) in fp32, fp16 and bf16, batch 1 as in streaming: median and p90 over CUDA-event
timed runs after warm-up, the matmul FLOPs of one call (torch.utils.flop_counter) and the TFLOP/s
they achieve, peak GPU memory. Writes gpu.md (the table, the command, the machine) under --out.
"""

from __future__ import annotations

import argparse
import copy
import platform
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_vljepa.config import PRESETS, get_preset
from edge_vljepa.contract import build_contract
from runtimes.memory import peak_rss_mb, rss_mb

DTYPES = ("fp32", "fp16", "bf16")
STREAMING_NOTE = (
    "The edge_vljepa streaming loop over one test stream read into memory first (decoding the video is not "
    "in these times). Change-to-text: ground-truth segment change -> its decode's window end, plus this "
    "run's median compute of a decoding window; offline_segments decides at the end of the stream, so it "
    "has none. Loop overhead: wall time outside backend calls and preprocessing (the loop's own logic: "
    "windows, label bank, policy, events).")


def example_inputs(spec, torch_dtype, device) -> list:
    """Contract inputs of one method as tensors: floats random in `torch_dtype`, masks all ones,
    other integers (token ids, positions) zeros; shapes exactly the contract's."""
    import torch
    rng = np.random.default_rng(0)
    args = []
    for t in spec.inputs:
        if t.dtype == "int64":
            array = np.ones(t.shape, np.int64) if "mask" in t.name else np.zeros(t.shape, np.int64)
            args.append(torch.from_numpy(array).to(device))
        else:
            args.append(torch.from_numpy(t.example(rng)).to(device, torch_dtype))
    return args


def gpu_latency(preset: str, dtypes: list[str], warmup: int, runs: int,
                checkpoint: Path | None = None) -> list[dict]:
    """One row per (method, dtype): median / p90 ms, GFLOP per call, TFLOP/s, peak memory GiB."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from edge_vljepa.models import build_model, method_modules
    from edge_vljepa.pretrained import load_model

    cfg = get_preset(preset)
    weights = (load_model(cfg, checkpoint) if checkpoint else build_model(cfg)).eval()
    rows = []
    for name in dtypes:
        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]
        model = copy.deepcopy(weights).to("cuda", dtype)
        modules = method_modules(model)
        for spec in build_contract(cfg):
            args = example_inputs(spec, dtype, "cuda")
            module = modules[spec.name]
            with torch.inference_mode():
                with FlopCounterMode(display=False) as counter:
                    module(*args)
                for _ in range(warmup):
                    module(*args)
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                times = []
                for _ in range(runs):
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                    module(*args)
                    end.record()
                    end.synchronize()
                    times.append(start.elapsed_time(end))
            median = float(np.median(times))
            flops = counter.get_total_flops()
            rows.append({"method": spec.name, "dtype": name, "median_ms": median,
                         "p90_ms": float(np.percentile(times, 90)), "gflop": flops / 1e9,
                         "tflops": flops / median / 1e9,
                         "peak_gib": torch.cuda.max_memory_allocated() / 2**30})
        del model, modules
        torch.cuda.empty_cache()
    return rows


def machine() -> str:
    import torch
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (f"{platform.processor() or platform.machine()}{gpu}, {platform.platform()}, "
            f"torch {torch.__version__}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


def gpu_report(args, rows: list[dict]) -> str:
    weights = f"checkpoint {args.checkpoint}" if args.checkpoint else "random weights"
    lines = [f"# PyTorch CUDA latency: preset {args.preset} ({weights})",
             "", f"Command: `{shlex.join(['python', '-m', 'runtimes.bench', *args.argv])}`", "",
             f"Machine: {machine()}", "",
             f"Batch 1, contract shapes, eager PyTorch (no compile, no CUDA graphs); {args.warmup} warm-up "
             f"and {args.runs} timed runs per method, CUDA events; GFLOP = matmul FLOPs of one call "
             "(torch.utils.flop_counter); TFLOP/s = GFLOP / median; peak = max GPU memory allocated while "
             "timing (weights of all components included).", "",
             "| method | dtype | median ms | p90 ms | GFLOP | TFLOP/s | peak GiB | speed-up vs fp32 |",
             "|---|---|---|---|---|---|---|---|"]
    fp32 = {r["method"]: r["median_ms"] for r in rows if r["dtype"] == "fp32"}
    order = [spec.name for spec in build_contract(get_preset(args.preset))]
    for r in sorted(rows, key=lambda r: (order.index(r["method"]), DTYPES.index(r["dtype"]))):
        speedup = f"{fp32[r['method']] / r['median_ms']:.2f}x" if r["method"] in fp32 else "-"
        lines.append(f"| {r['method']} | {r['dtype']} | {r['median_ms']:.2f} | {r['p90_ms']:.2f} | "
                     f"{r['gflop']:.1f} | {r['tflops']:.1f} | {r['peak_gib']:.2f} | {speedup} |")
    return "\n".join(lines) + "\n"


# --- artifacts on this CPU --------------------------------------------------------------------

BENCH_POLICIES = {"uniform": {"every_s": 1.0}, "offline_segments": {"rate_hz": 0.35}, "online": {}}
MB = 1e6


def set_threads(n: int) -> None:
    """One thread count for every runtime in this process: PyTorch, ExecuTorch's threadpool and the
    ONNX Runtime sessions opened afterwards."""
    import torch

    from runtimes.onnxruntime_backend import OnnxRuntimeBackend
    torch.set_num_threads(n)
    OnnxRuntimeBackend.threads = n
    try:
        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
        _unsafe_reset_threadpool(n)
    except ImportError:
        pass


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
    from runtimes.artifact import Artifact
    from runtimes.backends import open_backend
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
    from runtimes.pytorch_backend import PyTorchBackend
    backend = PyTorchBackend(cfg, checkpoint=checkpoint)
    from edge_vljepa.models import COMPONENTS
    sizes = {c: sum(p.numel() * 4 for p in getattr(backend.model, c).parameters()) for c in COMPONENTS}
    return Variant("pytorch eager fp32", "pytorch", {c: "fp32" for c in COMPONENTS}, None, sizes,
                   backend=backend)


def golden_inputs(directory: Path, contract, methods: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """Each method's golden input (real recorded frames and texts) from an artifact's golden.npz."""
    with np.load(directory / "golden.npz") as g:
        return {m: {t.name: g[f"{m}.in.{t.name}"] for t in contract[m].inputs} for m in methods}


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
    import torch
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
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from edge_vljepa.models import method_modules
    modules, out = method_modules(model), {}
    for spec in (contract[m] for m in inputs):
        args = [torch.from_numpy(np.ascontiguousarray(inputs[spec.name][t.name])) for t in spec.inputs]
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            modules[spec.name](*args)
        out[spec.name] = float(counter.get_total_flops())
    return out


def _component_rss(directory: str | None, cfg_dict: dict, checkpoint: str | None, component: str,
                   inputs: dict, threads: int, runs: int) -> tuple[float, float]:
    """In a fresh process: (RSS once the runtime's modules are imported, the highest RSS sampled after
    loading `component` and after each of `runs` calls of its methods), MB (Linux /proc)."""
    from edge_vljepa.config import ModelConfig
    set_threads(threads)
    if directory is None:
        from runtimes.pytorch_backend import PyTorchBackend
        baseline = rss_mb() or 0.0
        backend = PyTorchBackend(ModelConfig.from_dict(cfg_dict), checkpoint=checkpoint)
    else:
        from runtimes.artifact import Artifact
        from runtimes.backends import CheckedBackend, backend_class
        artifact = Artifact(directory)
        runtime = backend_class(artifact.target)  # the runtime library imported: part of the baseline
        baseline = rss_mb() or 0.0
        backend = CheckedBackend(runtime(artifact))
    peak = rss_mb() or peak_rss_mb()  # no /proc (macOS): ru_maxrss, the process peak
    for method, method_inputs in inputs.items():
        for _ in range(runs):
            backend.run(method, method_inputs)
            peak = max(peak, rss_mb() or peak_rss_mb())
    # sampled, not ru_maxrss: Linux keeps ru_maxrss across the fork + exec that spawns this process,
    # so it would report the parent's peak
    return baseline, peak


def component_rss(variant: Variant, cfg, checkpoint, component: str, inputs: dict, threads: int) -> tuple:
    import multiprocessing
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_component_rss, (str(variant.directory) if variant.directory else None,
                                           cfg.to_dict(), checkpoint, component, inputs, threads, 5))


@dataclass
class StreamRun:
    variant: str
    policy: str
    summary: object
    delays: list[float]  # change-to-text, s: decision delay in stream time + this run's compute
    missed: int
    loop_overhead: float  # share of wall time outside backend calls and preprocessing
    outside_backend: float  # share of wall time outside backend calls (preprocessing included)


def stream_runs(variant: Variant, cfg, frames, truth, stride: int) -> list[StreamRun]:
    from edge_vljepa.config import CAPTION_QUERY
    from edge_vljepa.preprocess import component_tokenizer
    from edge_vljepa.streaming import make_policy, run_stream
    from runtimes.selective import decision_delays
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
        out.append(StreamRun(variant.name, name, summary, delays, missed,
                             (summary.outside_backend_s - preprocess_s) / wall,
                             summary.outside_backend_s / wall))
    return out


def long_run(variant: Variant, cfg, video: Path, stride: int) -> dict:
    """RSS sampled at every window of a long video read lazily from disk, online policy."""
    from edge_vljepa.config import CAPTION_QUERY
    from edge_vljepa.data.video import VideoFile
    from edge_vljepa.preprocess import component_tokenizer
    from edge_vljepa.streaming import make_policy, run_stream
    samples = []
    summary = run_stream(VideoFile(video), variant.backend, cfg, query=CAPTION_QUERY,
                         query_tokenizer=component_tokenizer(cfg, "predictor"),
                         decoder_tokenizer=component_tokenizer(cfg, "y_decoder"),
                         policy=make_policy("online"), stride=stride,
                         on_event=lambda e: samples.append((e.end, rss_mb() or peak_rss_mb())))
    t, rss = np.array(samples).T
    settled = t >= t[-1] * 0.1  # the first tenth holds the lazy loads (Y-Decoder on the first decode)
    slope = float(np.polyfit(t[settled] / 60, rss[settled], 1)[0]) if settled.sum() > 2 else float("nan")
    return {"variant": variant.name, "minutes": t[-1] / 60, "windows": summary.windows,
            "start_mb": float(rss[0]), "end_mb": float(rss[-1]), "max_mb": float(rss.max()),
            "slope_mb_per_min": slope, "realtime_factor": summary.realtime_factor}


def make_stream(folder: Path, index: int, minutes: float) -> tuple[Path, Path]:
    from edge_vljepa.data.world import sample_stream
    from edge_vljepa.data.write import write_video
    from edge_vljepa.evaluate import RENDER_SIZE
    return write_video(sample_stream("test", index, seed=0, minutes=minutes), folder, RENDER_SIZE,
                       RENDER_SIZE, "mp4")


def worst_cosine(parity: dict, methods: list[str]) -> float | None:
    tensors = parity.get("tensors", {})
    values = [m["cosine"] for method in methods if method in tensors
              for m in tensors[method]["outputs"].values()]
    return min(values) if values else None


def run_artifacts(args) -> int:
    from runtimes.artifact import ArtifactError

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
    inputs = golden_inputs(variants[1].directory, contract, methods)
    print(f"bench     preset {cfg.name}, {len(variants) - 1} artifact(s) + PyTorch eager fp32, "
          f"{args.threads} thread(s), {args.runs} timed calls per method")

    peak = matmul_peak_gflops()
    flops = method_flops(reference.backend.model, contract, inputs)
    print(f"machine   {cpu_name()}; fp32 matmul peak {peak:.1f} GFLOP/s at {args.threads} thread(s)")
    latency: dict[tuple[str, str], list[float]] = {}
    from tqdm import tqdm
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
    if whole:
        streams, long = streaming(args, cfg, variants)
    else:
        streams, long = [], None
        print(f"streaming not run: the artifacts hold {', '.join(sorted(held))} only; "
              "the loop needs all four components")
    report = artifacts_report(args, cfg, variants, methods, contract, latency, flops, peak, rss, streams,
                              long)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.md").write_text(report)
    plot_variants(args.out / f"{args.name}.png", variants, latency, held,
                  f"{cfg.name}: {args.threads} thread(s)")
    print(report)
    print(f"wrote {args.out / (args.name + '.md')} and {args.out / (args.name + '.png')}")
    return 0


def streaming(args, cfg, variants: list[Variant]) -> tuple[list[StreamRun], dict | None]:
    """The streaming runs of every variant over one test stream, and the long memory run of the first
    artifact."""
    from tqdm import tqdm

    from edge_vljepa.data.video import VideoFile
    from runtimes.selective import Truth
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


SIMD_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")  # what int8 and fp32 kernels use


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """This machine's processor (vendor name, family/model, the SIMD extensions the kernels pick from),
    core count and OS, for reports: "AMD EPYC" alone names several generations, and int8 kernels are
    2-4x faster with VNNI than without."""
    info = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []

    def field(name: str) -> str | None:
        return next((ln.split(":", 1)[1].strip() for ln in info if ln.split(":")[0].strip() == name), None)

    model = field("model name") or platform.processor() or platform.machine()
    flags = set((field("flags") or "").split())
    simd = ", ".join(f for f in SIMD_FLAGS if f in flags) or "none of " + "/".join(SIMD_FLAGS)
    family = f"family {field('cpu family')} model {field('model')}; " if field("cpu family") else ""
    return (f"{model} ({family}{simd}; {sum(ln.startswith('processor') for ln in info) or '?'} cores), "
            f"{platform.platform()}")


def _ms(samples: list[float], q: float = 50) -> float:
    return float(np.percentile(samples, q))


def artifacts_report(args, cfg, variants, methods, contract, latency, flops, peak, rss, streams, long) -> str:
    import torch
    eager = variants[0].name

    def ort_twin(v: Variant, component: str) -> str | None:  # ONNX Runtime at this component's precision
        return next((o.name for o in variants if o.target == "onnxruntime" and o is not v
                     and o.quant.get(component) == v.quant.get(component)), None)
    lines = [f"# Which artifact to ship: preset {cfg.name}", "",
             f"Command: `{shlex.join(['python', '-m', 'runtimes.bench', *args.argv])}`", "",
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
    lines += ["", "## Quality (from each artifact's parity report)", "",
              "| variant | size MB | worst cosine x_encoder / predictor / y_encoder / y_decoder | "
              "top-1 label agreement | decode-event F1 |", "|---|---|---|---|---|"]
    for v in variants[1:]:
        cos = [worst_cosine(v.parity, [m for m in methods if contract[m].component == c])
               for c in ("x_encoder", "predictor", "y_encoder", "y_decoder")]
        tasks = v.parity.get("tasks", {})
        lab = tasks.get("labels", {}).get("top1_agreement")
        f1 = tasks.get("decode_events", {}).get("f1")
        lines.append(f"| {v.name} | {sum(v.sizes.values()) / MB:.2f} | "
                     + " / ".join("-" if c is None else f"{c:.4f}" for c in cos)
                     + f" | {'-' if lab is None else f'{lab:.1%}'} | {'-' if f1 is None else f'{f1:.2f}'} |")
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
                  f"{long['variant']}, online policy, {long['minutes']:.1f} minutes of video read lazily "
                  f"from disk ({long['windows']} windows, real-time factor {long['realtime_factor']:.1f}x): "
                  f"RSS {long['start_mb']:.0f} MB after the first window, {long['end_mb']:.0f} MB at the "
                  f"end, max {long['max_mb']:.0f} MB; slope after the first tenth "
                  f"{long['slope_mb_per_min']:+.2f} MB per minute of video."]
    return "\n".join(lines) + "\n"


def plot_variants(path: Path, variants, latency, held: set[str], title: str) -> None:
    """Per-window latency (X-Encoder + Predictor medians, those the artifacts hold) against the size of
    the benchmarked components, annotated with quality."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    per_window = [m for m in ("x_encoder", "predictor") if m in held]
    for v in variants:
        x = sum(size for c, size in v.sizes.items() if c in held) / MB
        y = sum(_ms(latency[v.name, m]) for m in per_window)
        lab = v.parity.get("tasks", {}).get("labels", {}).get("top1_agreement")
        cos = worst_cosine(v.parity, per_window)
        quality = ("reference" if v.directory is None else f"top-1 agreement {lab:.0%}" if lab is not None
                   else f"worst cosine {cos:.4f}" if cos is not None else "parity not run")
        ax.scatter(x, y, s=60, marker="s" if v.directory is None else "o")
        ax.annotate(f"{v.name}\n{quality}", (x, y), textcoords="offset points", xytext=(6, 4), fontsize=7)
    ax.set_xlabel(f"size on disk, {' + '.join(sorted(held))} (MB)")
    ax.set_ylabel(f"ms per window ({' + '.join(per_window)}, median)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m runtimes.bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    a = sub.add_parser("artifacts", help="artifact directories against PyTorch eager and ONNX Runtime on "
                                         "this CPU", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
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
    a.add_argument("--out", type=Path, default=Path("docs/bench"), help="output folder")
    g = sub.add_parser("gpu", help="PyTorch CUDA latency per contract method (needs an NVIDIA GPU)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g.add_argument("--preset", default="paper", choices=list(PRESETS))
    g.add_argument("--checkpoint", type=Path, help="native .safetensors (default: random weights)")
    g.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=DTYPES)
    g.add_argument("--warmup", type=int, default=10)
    g.add_argument("--runs", type=int, default=50)
    g.add_argument("--out", type=Path, default=Path("docs/bench"), help="folder for gpu.md")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv
    if args.command == "artifacts":
        if args.runs < 20 or args.warmup < 1 or args.threads < 1:
            print("error: --runs must be >= 20, --warmup >= 1 and --threads >= 1", file=sys.stderr)
            return 2
        return run_artifacts(args)
    import torch
    if not torch.cuda.is_available():
        print("error: `gpu` needs a CUDA GPU visible to torch; this machine has none", file=sys.stderr)
        return 2
    if args.runs < 20 or args.warmup < 1:
        print("error: --runs must be >= 20 and --warmup >= 1", file=sys.stderr)
        return 2
    rows = gpu_latency(args.preset, args.dtypes, args.warmup, args.runs, args.checkpoint)
    report = gpu_report(args, rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu.md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
