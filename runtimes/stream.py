"""`python -m runtimes.stream`: the streaming selective-decoding loop on a video file or a camera.

    python -m runtimes.stream --video clip.mp4 [--preset default] [--policy changepoint] [--events out.jsonl]
    python -m runtimes.stream --artifacts artifacts/default-int8 --camera 0

Without --artifacts the model is the PyTorch reference (the eager model of a preset). With
--artifacts DIR it is the exported artifact, run by the backend of its manifest target
(runtimes.backends) from the directory alone: its tokenizers, its preprocessing spec, its label bank
(unless --labels) and its decode-policy defaults (unless given here). The Y-Decoder is loaded on the
first decode; the summary reports the RSS before and after it.

Prints the effective settings, then a live view (every decode as a line; the latest window's top-k
labels as one status line, redrawn in place on a terminal, at most one line per --refresh seconds
otherwise), then the summary: windows/s, real-time factor, decodes per minute, per-stage p50/p90 ms,
peak RSS. The loop itself is edge_vljepa.streaming.run_stream, the same on every backend; this CLI
only wires a source, a backend, tokenizers, a label bank and a decode policy to it.

Exit status: see EXIT_STATUS (also in --help).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from edge_vljepa.cli import HelpFormatter, add_model_arguments, exits_quietly_on_interrupt
from edge_vljepa.config import CAPTION_QUERY, ConfigError, ModelConfig, resolve_config
from edge_vljepa.contract import ContractError, build_contract
from edge_vljepa.data.video import Camera, VideoError, VideoFile
from edge_vljepa.outputs import OutputError, check_output_file
from edge_vljepa.preprocess import (
    TEXT_COMPONENTS,
    PreprocessSpec,
    TextTokenizer,
    component_tokenizer,
    crop_kept,
)
from edge_vljepa.streaming import (
    DEFAULT_POLICY,
    DEFAULT_STRIDE,
    POLICIES,
    Backend,
    EventWriter,
    LabelBank,
    PolicyError,
    SkipGate,
    make_policy,
    policy_defaults,
    run_stream,
    skip_defaults,
)
from edge_vljepa.weights import CheckpointError
from runtimes.artifact import Artifact, ArtifactError
from runtimes.backends import open_backend
from runtimes.label_banks import artifact_weights_id, cached_bank, reference_weights_id
from runtimes.memory import FirstCallMemory, peak_rss_mb

DEFAULT_LABELS = Path(__file__).resolve().parent.parent / "edge_vljepa" / "assets" / "default" / "labels.txt"
# decode-policy parameter -> the flag (argparse dest) that sets it
PARAM_FLAGS = {"every_s": "every", "rate_hz": "rate", "n_segments": "segments", "threshold": "threshold",
               "confirm": "confirm", "min_interval_s": "min_interval", "max_interval_s": "max_interval",
               "settle_s": "settle", "lead": "lead", "recheck": "recheck"}
# selective-encoding parameter (streaming.SkipGate) -> the flag (argparse dest) that sets it
SKIP_FLAGS = {"max_skip": "max_skip", "stable": "skip_stable", "pixel": "skip_pixel"}
EXIT_STATUS = """exit status: 0 on success; 1 when the source broke mid-stream (the events before
the break are kept, in the terminal and in --events); 2 for bad input, including an artifact that
cannot be used and an output path that cannot or must not be written (one line on stderr, no
traceback, checked before any work; events already written are kept); 3 when the stream ended
before its first window (a video shorter than one window: nothing to report); 130 when
interrupted while starting."""
NO_WINDOW = 3  # exit status: the stream ended before its first window


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m runtimes.stream", formatter_class=HelpFormatter, epilog=EXIT_STATUS,
        description="Run the VL-JEPA streaming loop: every window of frames becomes an embedding "
                    "(X-Encoder + Predictor), ranked against a label bank; the decode policy decides "
                    "when the Y-Decoder turns the embedding stream into text. Runs the PyTorch reference, "
                    "or an exported artifact with --artifacts (then the policy, its parameters and the "
                    "stride default to the artifact's decode defaults).")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--video", type=Path, help="a video file (anything OpenCV/FFmpeg reads)")
    src.add_argument("--camera", type=int, help="a camera index (live: frames are dropped if the loop lags)")
    p.add_argument("--artifacts", type=Path, help="an exported artifact directory (executorch, onnxruntime, "
                                                  "coreml) to run instead of the PyTorch reference")
    add_model_arguments(p, preset_help="model preset of the PyTorch reference; with --artifacts, "
                                       "the artifact must have been exported for it")
    p.add_argument("--checkpoint", type=Path,
                   help="PyTorch reference: native .safetensors checkpoint (default: the preset's shipped "
                        "weights if any, else random weights)")
    p.add_argument("--query", default=CAPTION_QUERY, help="the predictor's text query")
    p.add_argument("--labels", type=Path,
                   help=f"label list, one per line (default: the artifact's label bank, or "
                        f"{DEFAULT_LABELS.name} of the shipped model when present)")
    p.add_argument("--top-k", type=int, default=3, help="labels shown per window")
    p.add_argument("--stride", type=int, default=DEFAULT_STRIDE, help="model frames between window starts")
    p.add_argument("--policy", default=DEFAULT_POLICY, choices=list(POLICIES), help="decode policy")
    # policy parameters default to None: the chosen policy's own default (policies.py), or the artifact's
    uniform, offline, online, changepoint = (policy_defaults(name) for name in
                                             ("uniform", "offline_segments", "online", "changepoint"))
    p.add_argument("--every", type=float,
                   help=f"uniform: seconds between decodes (default: {uniform['every_s']})")
    p.add_argument("--rate", type=float,
                   help=f"offline_segments: decodes per second (default: {offline['rate_hz']})")
    p.add_argument("--segments", type=int, help="offline_segments: number of segments (overrides --rate)")
    p.add_argument("--threshold", type=float,
                   help="online, changepoint: cosine-distance change threshold (default: "
                        f"{online['threshold']})")
    p.add_argument("--confirm", type=int,
                   help=f"online: consecutive drifting windows to decide (default: {online['confirm']})")
    p.add_argument("--min-interval", type=float,
                   help=f"online, changepoint: minimum seconds between decodes (default: "
                        f"{online['min_interval_s']}, changepoint {changepoint['min_interval_s']})")
    p.add_argument("--max-interval", type=float,
                   help="online, changepoint: force a decode after this many seconds (default: none)")
    p.add_argument("--settle", type=float, help="changepoint: seconds from the first drifting window to the "
                                                f"decoded one (default: {changepoint['settle_s']})")
    p.add_argument("--lead", type=float, help="changepoint: when the window before the first drifting one "
                                              "was already this fraction of --threshold away, the change "
                                              "began earlier and half of --settle suffices (1: never; "
                                              f"default: {changepoint['lead']})")
    p.add_argument("--recheck", type=float, help="changepoint: the first window past the change is decoded "
                                                 "again when it differs from the decoded one by more than "
                                                 f"this cosine distance (default: {changepoint['recheck']})")
    skip = skip_defaults()
    p.add_argument("--max-skip", type=int, default=skip["max_skip"],
                   help="selective encoding: windows in a row that may reuse the last embedding while the "
                        "scene holds, no X-Encoder call (0: every window encoded; a change is seen at most "
                        "this many windows late)")
    p.add_argument("--skip-stable", type=float, default=skip["stable"],
                   help="selective encoding: cosine distance between encoded embeddings under which the "
                        "scene holds")
    p.add_argument("--skip-pixel", type=float, default=skip["pixel"],
                   help="selective encoding: change of the newest frame's thumbnail (0-1) over which a "
                        "window is encoded anyway")
    p.add_argument("--events", type=Path, help="write events as JSON lines here (flushed per event); never "
                                               "an input, and an existing file only with --force")
    p.add_argument("--force", action="store_true", help="overwrite an existing --events file")
    p.add_argument("--quiet", action="store_true", help="show decode events only, no window status")
    p.add_argument("--refresh", type=float, default=1.0,
                   help="when the output is not a terminal: seconds between window status lines")
    p.add_argument("--threads", type=int, help="CPU threads of the PyTorch reference (default: torch's)")
    return p


def artifact_defaults(artifact: Artifact) -> dict:
    """The artifact's decode defaults as argparse defaults (flags given on the command line win): its policy,
    stride and selective-encoding parameters, and its policy's parameters (`artifact_params`, used only
    when that policy is the one chosen)."""
    d = artifact.decode_defaults
    out = {key: d[key] for key in ("policy", "stride") if key in d}
    out |= {SKIP_FLAGS[k]: v for k, v in d.get("skip", {}).items() if k in SKIP_FLAGS and v is not None}
    return out | {"artifact_params": {d.get("policy"): d.get("params", {})}}


def policy_params(args: argparse.Namespace) -> dict:
    """The chosen policy's parameters: the flags given, else the artifact's for its policy, else the policy's
    defaults."""
    if args.policy not in POLICIES:
        return {}  # make_policy names the valid ones
    artifact = getattr(args, "artifact_params", {}).get(args.policy, {})
    params = {}
    for p, default in policy_defaults(args.policy).items():
        given = getattr(args, PARAM_FLAGS[p])
        params[p] = given if given is not None else artifact.get(p, default)
    if args.policy == "offline_segments":  # exactly one of them; --segments overrides --rate
        params.pop("rate_hz" if args.segments is not None else "n_segments")
    return params


def skip_params(args: argparse.Namespace) -> dict:
    """The selective-encoding parameters (streaming.SkipGate)."""
    return {k: getattr(args, flag) for k, flag in SKIP_FLAGS.items()}


def read_labels(path: Path) -> list[str]:
    if path.is_dir():
        raise FileNotFoundError(f"--labels {path} is a directory; give a label file (one label per line)")
    if not path.is_file():
        raise FileNotFoundError(f"label file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"label file {path} is not UTF-8 (byte {e.object[e.start]:#x} at offset {e.start}); "
                         f"convert it, e.g. iconv -f latin1 -t utf-8 {path}") from None
    labels = [line.strip() for line in text.splitlines() if line.strip()]
    if not labels:
        raise ValueError(f"label file {path} has no labels (one per line)")
    return labels


def query_text(tokenizer: TextTokenizer, query: str) -> str:
    """The query for the settings line; the default one says which of its words read as [UNK]."""
    unknown = tokenizer.unknown_words(query)
    if unknown and query == CAPTION_QUERY:  # the trained query: other words would change its token ids
        return (f"{query!r} ({', '.join(map(repr, unknown))} reads as [UNK], as the model was trained with "
                "it)")
    return repr(query)


def vocabulary_warnings(tokenizers: dict[str, TextTokenizer], query: str, labels: list[str]) -> list[str]:
    """Lines for stderr about words the model reads as [UNK] (it sees nothing of their meaning)."""
    lines = []
    unknown = tokenizers["predictor"].unknown_words(query)
    if unknown and query != CAPTION_QUERY:
        lines.append("warning: the query has words the predictor does not know: "
                     f"{', '.join(map(repr, unknown))} (each reads as [UNK]); its words: "
                     "python -m edge_vljepa.data vocab")
    bad = [(label, words) for label in labels if (words := tokenizers["y_encoder"].unknown_words(label))]
    if bad:
        shown = "; ".join(f"{', '.join(map(repr, words))} in {label!r}" for label, words in bad[:3])
        lines.append(f"warning: {len(bad)} label(s) have words the Y-Encoder reads as [UNK]: {shown}"
                     + (" ..." if len(bad) > 3 else ""))
    return lines


def crop_note(width: int, height: int) -> str | None:
    """A warning when the centre crop keeps less than half of a frame's width or height."""
    kept = crop_kept(height, width)
    if kept >= 0.5:
        return None
    side = "width" if width > height else "height"
    return (f"warning: frames are {width}x{height}; the centre crop keeps {kept:.0%} of each frame's {side} "
            "(the model sees a square)")


@dataclass
class Model:
    """What the loop needs from a model, wherever it comes from."""

    cfg: ModelConfig
    backend: Backend
    tokenizers: dict[str, TextTokenizer]  # text component -> tokenizer
    bank: LabelBank | None
    labels_from: str
    preprocess: PreprocessSpec
    description: str
    lazy_decoder: bool  # the Y-Decoder is loaded at the first decode


def reference_model(args) -> Model:
    cfg = resolve_config(args.preset, args.config)
    tokenizers = {c: component_tokenizer(cfg, c) for c in TEXT_COMPONENTS}
    tokenizers["predictor"].encode(args.query, what="query")  # an over-long query fails before any work
    labels_path = args.labels or (DEFAULT_LABELS if DEFAULT_LABELS.is_file() else None)
    labels = read_labels(labels_path) if labels_path else []
    import torch  # only the reference backend needs torch

    from runtimes.backends.pytorch import PyTorchBackend
    if args.threads:
        torch.set_num_threads(args.threads)
    backend = PyTorchBackend(cfg, checkpoint=str(args.checkpoint) if args.checkpoint else None)
    bank = (cached_bank(labels, backend, tokenizers["y_encoder"], reference_weights_id(backend))
            if labels else None)
    return Model(cfg, backend, tokenizers, bank, f"{len(labels)} from {labels_path}" if labels else "none",
                 PreprocessSpec.from_config(cfg),
                 f"preset {cfg.name}, backend pytorch, weights: {backend.weights}", lazy_decoder=False)


def artifact_model(args, artifact: Artifact) -> Model:
    for flag in ("checkpoint", "threads"):
        if getattr(args, flag) is not None:
            raise ValueError(f"--{flag} is for the PyTorch reference; an artifact brings its own weights "
                             "and its runtime sizes its own thread pool")
    cfg = artifact.cfg
    tokenizers = {c: artifact.text_tokenizer(c) for c in TEXT_COMPONENTS}
    tokenizers["predictor"].encode(args.query, what="query")
    labels = read_labels(args.labels) if args.labels else None
    backend = open_backend(artifact)
    if labels:
        bank = cached_bank(labels, backend, tokenizers["y_encoder"], artifact_weights_id(artifact))
        labels_from = f"from {args.labels}"
    else:
        bank, labels_from = artifact.label_bank(), "from the artifact's label bank"
    quant = ", ".join(f"{c} {i.get('quant', '?')}" for c, i in artifact.manifest["components"].items())
    return Model(cfg, backend, tokenizers, bank, f"{len(bank.labels)} {labels_from}", artifact.preprocess,
                 f"preset {cfg.name}, backend {backend.name}, artifact {artifact.dir} ({quant}), "
                 f"weights: {artifact.manifest['model'].get('checkpoint')}", lazy_decoder=True)


def open_artifact(args) -> Artifact:
    artifact = Artifact(args.artifacts)
    if args.preset or args.config:
        flag = f"--preset {args.preset}" if args.preset else f"--config {args.config}"
        artifact.check_contract(build_contract(resolve_config(args.preset, args.config)), flag)
    return artifact


def format_event(event) -> str:
    labels = "  ".join(f"{label} {score:.2f}" for label, score in event.topk) or "-"
    line = f"{event.time:8.2f}s  {labels}"
    if event.decode:
        line += f"\n{'':10}>> {event.text!r}"
    return line


class LiveView:
    """The terminal view: every decode as lines; windows as one status line, redrawn in place on a
    terminal, otherwise at most one line every `every_s` wall seconds (no flood either way)."""

    def __init__(self, out=None, quiet: bool = False, every_s: float = 1.0, clock=time.perf_counter):
        self.out = out or sys.stdout
        self.quiet, self.every_s, self.clock = quiet, every_s, clock
        self.tty = self.out.isatty()
        self.next_line = -float("inf")
        self.status_shown = False

    def __call__(self, event) -> None:
        if event.decode:
            self.clear()
            print(format_event(event), file=self.out, flush=True)
        elif self.quiet:
            return
        elif self.tty:
            width = shutil.get_terminal_size().columns - 1
            self.out.write("\r" + f"window {event.window:<5}{format_event(event)}"[:width] + "\x1b[K")
            self.out.flush()
            self.status_shown = True
        elif self.clock() >= self.next_line:
            self.next_line = self.clock() + self.every_s
            print(format_event(event), file=self.out, flush=True)

    def clear(self) -> None:
        """Remove the status line (before other output)."""
        if self.status_shown:
            self.out.write("\r\x1b[K")
            self.status_shown = False


@exits_quietly_on_interrupt
def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.events is not None:  # before any work: never the input, never silently overwritten
            check_output_file(args.events, inputs=[args.video, args.labels], force=args.force,
                              flag="--events")
        artifact = open_artifact(args) if args.artifacts else None
        if artifact is not None:
            parser.set_defaults(**artifact_defaults(artifact))
            args = parser.parse_args(argv)
        if args.top_k < 1 or args.stride < 1 or args.refresh < 0:
            raise ValueError("--top-k and --stride must be >= 1, --refresh >= 0")
        policy = make_policy(args.policy, **policy_params(args))
        skip = SkipGate(**skip_params(args))
        source = VideoFile(args.video) if args.video else Camera(args.camera)
        model = artifact_model(args, artifact) if artifact is not None else reference_model(args)
    except (ArtifactError, ConfigError, CheckpointError, ContractError, VideoError, PolicyError,
            FileNotFoundError, ValueError, OutputError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    cfg, spec = model.cfg, model.preprocess
    print(f"model     {model.description}")
    if args.video:
        print(f"source    {args.video} ({source.width}x{source.height}, {source.fps:.2f} fps, "
              f"{source.frame_count} frames)")
    else:
        print(f"source    camera {args.camera} (live)")
    window_s = spec.num_frames / spec.fps
    print(f"windows   {spec.num_frames} frames at {spec.fps:g} fps = {window_s:g} s, "
          f"every {args.stride / spec.fps:g} s; {spec.img_size} px")
    print(f"query     {query_text(model.tokenizers['predictor'], args.query)}")
    print(f"labels    {model.labels_from}")
    print(f"policy    {args.policy} {policy_params(args)}")
    if skip.max_skip:
        print(f"skip      max_skip {skip.max_skip}, stable {skip.stable:g}, pixel {skip.pixel:g}: a change "
              f"is seen at most {skip.max_skip * args.stride / spec.fps:g} s late")
    print()
    notes = vocabulary_warnings(model.tokenizers, args.query, model.bank.labels if args.labels else [])
    for line in [*notes, crop_note(source.width, source.height)]:
        if line:
            print(line, file=sys.stderr)

    backend = FirstCallMemory(model.backend)
    view = LiveView(quiet=args.quiet, every_s=args.refresh)
    writer = EventWriter(args.events) if args.events else None
    events = 0

    def on_event(event):
        nonlocal events
        events += 1
        if writer is not None:
            writer(event)
        view(event)

    try:
        summary = run_stream(source, backend, cfg, query=args.query,
                             query_tokenizer=model.tokenizers["predictor"],
                             decoder_tokenizer=model.tokenizers["y_decoder"], policy=policy,
                             stride=args.stride, label_bank=model.bank, top_k=args.top_k, on_event=on_event,
                             live=source.live, preprocess=spec, skip=skip)
    except (ArtifactError, ContractError) as e:  # a component that fails to load or run, e.g. at 1st decode
        view.clear()
        kept = f"; the {events} events before it are kept" + (f" in {args.events}" if args.events else "")
        print(f"error: {e}{kept}", file=sys.stderr)
        return 2
    finally:
        if writer is not None:
            writer.close()
    view.clear()
    print()
    print(summary.format())
    decoder = "loaded lazily" if model.lazy_decoder else "in memory from the start (PyTorch reference)"
    print(f"memory       peak RSS {peak_rss_mb():.1f} MB; y_decoder {decoder}: {backend.format()}")
    if args.events:
        print(f"events    {args.events}")
    if summary.error:
        return 1
    if summary.windows == 0 and not summary.interrupted:
        print(f"warning: the video is shorter than one window of {window_s:g} s ({spec.num_frames} frames at "
              f"{spec.fps:g} fps): no window, nothing to report", file=sys.stderr)
        return NO_WINDOW
    return 0


if __name__ == "__main__":
    sys.exit(main())
