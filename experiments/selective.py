"""Selective decoding (VL-JEPA, arXiv 2512.10942, section 4.6) on held-out test streams.

    python -m experiments.selective [--streams 20] [--minutes 2] [--out DIR]

Test-split streams of the synthetic world (data.world.sample_stream) are written as real .mp4 + .json
files, decoded back with OpenCV (VideoFile) and run through THE streaming loop (streaming.run_stream)
with the PyTorch reference backend, once per decode-policy setting: `uniform` (every_s),
`offline_segments` (rate_hz), `online` (threshold, min_interval_s), `changepoint` (threshold, settle_s,
lead, recheck),
and with selective encoding (streaming.SkipGate: max_skip, stable, pixel) for a few policy settings,
against the same settings at full-rate encoding (decode-event F1). A memoizing backend caches every
backend output by the hash of its input bytes, so the sweep re-runs the exact product loop without
recomputing the encoders (a real cache of real outputs, cleared per stream).

Protocol (paper): each ground-truth annotation (a segment, at its temporal midpoint, with all its
test-split caption paraphrases as references) is matched to the nearest decoded output in time;
quality = CIDEr-D (evaluate.cider_d) averaged over annotations; rate = decodes per stream second.
Also reported: the decode-reduction factor at uniform-1 Hz quality (and at the quality of every uniform
point below 1 Hz), bootstrap intervals over streams, X-Encoder calls and decodes per minute, the online
policies' decision delay and missed boundaries,
the share of decodes inside nuisance-only stretches, the share of annotations whose nearest decode is
outside their segment, and how much the embedding moves across boundaries vs inside segments. Writes
results.md, results.json, curves.png, encoder.png and timeline.png under --out (default
~/edge-vljepa-runs/selective, never the repository; docs/selective/README.md gives the command that
regenerates the committed one). This file runs the sweep; the scoring is experiments/selective_score.py,
the report and plots experiments/selective_report.py.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from edge_vljepa.cli import HelpFormatter
from edge_vljepa.config import CAPTION_QUERY, PRESETS, ConfigError, get_preset
from edge_vljepa.data.video import VideoError, VideoFile
from edge_vljepa.data.world import sample_stream
from edge_vljepa.data.write import write_video
from edge_vljepa.outputs import check_output_dir
from edge_vljepa.preprocess import component_tokenizer
from edge_vljepa.pretrained import shipped_checkpoint
from edge_vljepa.streaming import DEFAULT_STRIDE, SkipGate, l2_normalize, make_policy, run_stream
from edge_vljepa.weights import CheckpointError
from experiments.host import cpu_name
from experiments.reports import RUNS, command_line
from experiments.selective_report import write_outputs
from experiments.selective_score import (
    POLICY_NAMES,
    Result,
    Truth,
    changepoint_default,
    online_default,
    score,
)
from runtimes.backends.pytorch import PyTorchBackend

ONLINE_SWEEP = "0.1:1 0.1:0.5:2 0.05:1"  # threshold:min_interval_s[:max_interval_s]
# threshold:settle_s[:lead:recheck]
CHANGEPOINT_SWEEP = "0.1:1:1:0.1 0.1:0.5 0.15:1 0.1:1:0.5:0.3 0.1:1:0.3:0.2"
SKIP_SWEEP = "1:0.05:0.01 1:0.05:0.02 2:0.05:0.01 3:0.1:0.02"  # max_skip:stable:pixel


class MemoBackend:
    """Wraps a backend; a method called again with the same input bytes returns its cached outputs."""

    def __init__(self, backend, methods: tuple[str, ...] | None = None):
        self.backend, self.contract, self.methods = backend, backend.contract, methods
        self.name = f"memo({getattr(backend, 'name', type(backend).__name__)})"
        self.cache: dict[str, dict[str, np.ndarray]] = {}
        self.calls: dict[str, int] = {}  # method -> calls
        self.computed: dict[str, int] = {}  # method -> calls passed on to the wrapped backend

    @property
    def hits(self) -> int:
        return sum(self.calls.values()) - self.misses

    @property
    def misses(self) -> int:
        return sum(self.computed.values())

    def stats(self) -> str:
        return ", ".join(f"{m} {self.computed.get(m, 0)} computed of {n}" for m, n in self.calls.items())

    @staticmethod
    def key(method: str, inputs: dict[str, np.ndarray]) -> str:
        h = hashlib.sha256(method.encode())
        for name in sorted(inputs):
            a = np.ascontiguousarray(inputs[name])
            h.update(f"|{name}|{a.dtype.str}|{a.shape}|".encode())
            h.update(a.data)
        return h.hexdigest()

    def run(self, method: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.methods is not None and method not in self.methods:
            return self.backend.run(method, inputs)
        key = self.key(method, inputs)
        self.calls[method] = self.calls.get(method, 0) + 1
        if key not in self.cache:
            self.computed[method] = self.computed.get(method, 0) + 1
            self.cache[key] = {k: np.array(v, copy=True) for k, v in self.backend.run(method, inputs).items()}
        return {k: v.copy() for k, v in self.cache[key].items()}

    def clear(self) -> None:
        self.cache.clear()


class PolicyRecorder:
    """A policy wrapper that keeps (window centre, unit embedding) of every window it sees."""

    def __init__(self, policy):
        self.policy, self.name, self.windows = policy, policy.name, []

    def observe(self, index, start, end, embedding):
        self.windows.append(((start + end) / 2, l2_normalize(embedding)))
        return self.policy.observe(index, start, end, embedding)

    def finish(self):
        return self.policy.finish()

    def wants_embedding(self, start, end):
        return self.policy.wants_embedding(start, end)


# --- the experiment -------------------------------------------------------------------------------


def colon_spec(names: tuple[str, ...], required: int, integer: tuple[str, ...] = ()):
    """An argparse type: "A:B[:C]" -> {names[0]: A, ...} (at least `required` values)."""
    def parse(text: str) -> dict:
        try:
            values = [float(v) for v in text.split(":")]
            if not required <= len(values) <= len(names):
                raise ValueError
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {':'.join(n.upper() for n in names)} (the first "
                                             f"{required} required), got {text!r}") from None
        return {n: int(v) if n in integer else v for n, v in zip(names, values, strict=False)}
    return parse


online_spec = colon_spec(("threshold", "min_interval_s", "max_interval_s"), 2)
changepoint_spec = colon_spec(
    ("threshold", "settle_s", "lead", "recheck", "min_interval_s", "max_interval_s"), 2)
skip_spec = colon_spec(("max_skip", "stable", "pixel"), 3, integer=("max_skip",))


def sweep(args) -> list[Result]:
    """Every setting of the sweep; with selective encoding, the uniform 1 Hz and the default changepoint
    settings, each also at full rate (the baseline of its F1 and quality difference)."""
    def parsed(values, spec):  # argparse leaves string defaults unparsed
        return [spec(v) if isinstance(v, str) else v for v in values]

    online, changepoint = parsed(args.online, online_spec), parsed(args.changepoint, changepoint_spec)
    skips = parsed(args.skip, skip_spec)
    online += [] if online_default() in online else [online_default()]
    changepoint += [] if changepoint_default() in changepoint else [changepoint_default()]
    every = list(args.every) + ([] if not skips or 1 in args.every else [1.0])
    return ([Result("uniform", {"every_s": e}) for e in every]
            + [Result("offline_segments", {"rate_hz": r}) for r in args.rates]
            + [Result("online", o) for o in online]
            + [Result("changepoint", c) for c in changepoint]
            + [Result(policy, params, skip=k) for k in skips
               for policy, params in (("uniform", {"every_s": 1.0}), ("changepoint", changepoint_default()))])


def make_backend(cfg, weights: Path | None) -> PyTorchBackend:
    """The PyTorch reference backend (MiniLM + the shipped or given trained weights)."""
    return PyTorchBackend(cfg, checkpoint=str(weights) if weights else None)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m experiments.selective", description=__doc__.split("\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("--preset", default="default", choices=list(PRESETS), help="model preset")
    p.add_argument("--checkpoint", type=Path, help="native .safetensors; none: the shipped weights")
    p.add_argument("--random-weights", action="store_true", help="allow a preset without weights (tests)")
    p.add_argument("--streams", type=int, default=20, help="test-split streams")
    p.add_argument("--minutes", type=float, default=2.0, help="length of each stream")
    p.add_argument("--seed", type=int, default=0, help="world seed of the test streams")
    p.add_argument("--stride", type=int, default=DEFAULT_STRIDE, help="model frames between windows")
    p.add_argument("--every", type=float, nargs="+", default=[0.5, 1, 1.5, 2, 3, 4, 6, 10],
                   help="uniform: every_s values (1 is the reference of the reduction factor)")
    p.add_argument("--rates", type=float, nargs="+", default=[1, 0.5, 0.35, 0.25, 0.15, 0.1],
                   help="offline_segments: rate_hz values")
    p.add_argument("--online", type=online_spec, nargs="+", metavar="T:M[:X]",
                   default=ONLINE_SWEEP.split(), help="online: threshold:min_interval_s[:max_interval_s] "
                   "settings (the policy's default setting is always added)")
    p.add_argument("--changepoint", type=changepoint_spec, nargs="+", metavar="T:S[:L[:R[:M[:X]]]]",
                   default=CHANGEPOINT_SWEEP.split(), help="changepoint: threshold:settle_s[:lead[:recheck"
                   "[:min_interval_s[:max_interval_s]]]] settings (the policy's default setting is always "
                   "added; 0.1:1:1:0.1 is the policy before lead and recheck)")
    p.add_argument("--skip", type=skip_spec, nargs="*", metavar="K:STABLE:PIXEL", default=SKIP_SWEEP.split(),
                   help="selective encoding settings (max_skip:stable:pixel), each run with uniform 1 Hz and "
                   "the default changepoint setting; none: no selective encoding")
    p.add_argument("--timeline-stream", type=int, default=0, help="stream drawn in timeline.png")
    p.add_argument("--data", type=Path, help="keep the stream videos here; none: a temporary folder")
    p.add_argument("--out", type=Path, default=RUNS / "selective", help="output folder")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    try:
        cfg = get_preset(args.preset)
        weights = args.checkpoint or shipped_checkpoint(cfg.name)
        if weights is None and not args.random_weights:
            raise ValueError(f"preset {cfg.name!r} has no shipped weights; pass --checkpoint PATH")
        if args.streams < 1 or args.minutes <= 0 or not 0 <= args.timeline_stream < args.streams:
            raise ValueError("need --streams >= 1, --minutes > 0, 0 <= --timeline-stream < --streams")
        check_output_dir(args.out)  # before the sweep, not after it (OutputError is a ValueError)
        results = sweep(args)
        for r in results:
            make_policy(r.policy, **r.params)  # bad values fail before any work
            SkipGate(**(r.skip or {}))
        torch.set_num_threads(args.threads)
        backend = MemoBackend(make_backend(cfg, weights))
    except (ConfigError, CheckpointError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    machine = f"{cpu_name()}, torch {torch.__version__}, {args.threads} torch thread(s)"
    window_s = cfg.x_encoder.num_frames / cfg.fps
    print(f"selective decoding: preset {cfg.name}, weights {weights or 'RANDOM'}, backend {backend.name}")
    print(f"streams   {args.streams} test-split x {args.minutes:g} min (seed {args.seed}), written as .mp4")
    print(f"windows   {window_s:g} s every {args.stride / cfg.fps:g} s; query {CAPTION_QUERY!r}")
    for name in POLICY_NAMES:
        print(f"{name:<17} " + "; ".join(r.label for r in results if r.policy == name))
    print(f"out       {args.out}\nmachine   {machine}\n")

    query_tok = component_tokenizer(cfg, "predictor")
    decoder_tok = component_tokenizer(cfg, "y_decoder")
    runs: list[list[tuple]] = [[] for _ in results]  # per setting, per stream: (decodes, stream s, encoded)
    truths, recorders = [], []
    with tempfile.TemporaryDirectory() as tmp, tqdm(total=args.streams * len(results), unit="run") as bar:
        data = args.data or Path(tmp)
        data.mkdir(parents=True, exist_ok=True)
        for i in range(args.streams):
            bar.set_description(f"stream {i}")
            stream = sample_stream("test", i, seed=args.seed, minutes=args.minutes)
            video_path, json_path = write_video(stream, data, fmt="mp4")
            truths.append(Truth.from_json(json_path))
            frames = list(VideoFile(video_path))  # real decoded frames, read once for the whole sweep
            backend.clear()  # the cache lives for one stream: bounded memory
            for k, r in enumerate(results):
                policy = make_policy(r.policy, **r.params)
                if k == 0:  # keeps every window's embedding (timeline, embedding-change statistics)
                    policy = PolicyRecorder(policy)
                    recorders.append(policy)
                decodes = []
                summary = run_stream(frames, backend, cfg, query=CAPTION_QUERY, query_tokenizer=query_tok,
                                     decoder_tokenizer=decoder_tok, policy=policy, stride=args.stride,
                                     skip=SkipGate(**r.skip) if r.skip else None,
                                     on_event=lambda e, d=decodes: e.decode and d.append((e.time, e.end,
                                                                                          e.text)))
                if summary.error:
                    raise VideoError(summary.error)
                runs[k].append((decodes, summary.stream_s, summary.encoded))
                bar.update()
    results = [score(r, rs, truths, window_s / 2) for r, rs in zip(results, runs, strict=True)]
    command = command_line("experiments.selective", argv)
    write_outputs(args, cfg, weights, results, runs, truths, recorders, command, machine, backend)
    print(f"\ndone in {time.perf_counter() - start:.0f} s; memoized calls: {backend.stats()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
