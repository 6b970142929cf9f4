"""`python -m runtimes.stream`: the streaming selective-decoding loop on a video file or a camera.

    python -m runtimes.stream --video clip.mp4 [--preset default] [--policy online] [--events out.jsonl]

Prints the effective settings, then one line per window (time, top-k labels, decoded text when the
policy decodes), then the timing summary (windows/s, real-time factor, decodes, per-stage ms).
The loop itself is edge_vljepa.streaming.run_stream, the same on every backend; this CLI only wires
a source, a backend, tokenizers, a label bank and a decode policy to it.

Exit status: 0 on success, 1 when the source broke mid-stream (the events before the break are
kept, in the terminal and in --events), 2 for bad input (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_vljepa.config import CAPTION_QUERY, PRESETS, ConfigError, get_preset
from edge_vljepa.contract import ContractError
from edge_vljepa.data.video import Camera, VideoError, VideoFile
from edge_vljepa.preprocess import component_tokenizer
from edge_vljepa.streaming import (
    DEFAULT_POLICY,
    DEFAULT_STRIDE,
    POLICIES,
    EventWriter,
    LabelBank,
    PolicyError,
    make_policy,
    run_stream,
)
from edge_vljepa.weights import CheckpointError

DEFAULT_LABELS = Path(__file__).resolve().parent.parent / "edge_vljepa" / "assets" / "default" / "labels.txt"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m runtimes.stream", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Run the VL-JEPA streaming loop: every window of frames becomes an embedding "
                    "(X-Encoder + Predictor), ranked against a label bank; the decode policy decides "
                    "when the Y-Decoder turns the embedding stream into text.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--video", type=Path, help="a video file (anything OpenCV/FFmpeg reads)")
    src.add_argument("--camera", type=int, help="a camera index (live: frames are dropped if the loop lags)")
    p.add_argument("--preset", default="default", choices=list(PRESETS), help="model preset")
    p.add_argument("--checkpoint", type=Path,
                   help="native .safetensors checkpoint (default: the preset's shipped weights if any, "
                        "else random weights)")
    p.add_argument("--query", default=CAPTION_QUERY, help="the predictor's text query")
    p.add_argument("--labels", type=Path, help=f"label list, one per line (default: {DEFAULT_LABELS.name} "
                                               "of the shipped model when present)")
    p.add_argument("--top-k", type=int, default=3, help="labels shown per window")
    p.add_argument("--stride", type=int, default=DEFAULT_STRIDE, help="model frames between window starts")
    p.add_argument("--policy", default=DEFAULT_POLICY, choices=list(POLICIES), help="decode policy")
    p.add_argument("--every", type=float, default=1.0, help="uniform: seconds between decodes")
    p.add_argument("--rate", type=float, default=0.35, help="offline_segments: decodes per second")
    p.add_argument("--segments", type=int, help="offline_segments: number of segments (overrides --rate)")
    p.add_argument("--threshold", type=float, default=0.1, help="online: cosine-distance change threshold")
    p.add_argument("--confirm", type=int, default=2, help="online: consecutive drifting windows to decide")
    p.add_argument("--min-interval", type=float, default=1.0, help="online: minimum seconds between decodes")
    p.add_argument("--max-interval", type=float, help="online: force a decode after this many seconds")
    p.add_argument("--events", type=Path, help="write events as JSON lines here (flushed per event)")
    p.add_argument("--quiet", action="store_true", help="print decode events only, not every window")
    p.add_argument("--threads", type=int, help="CPU threads for the backend (default: library default)")
    return p


def policy_params(args: argparse.Namespace) -> dict:
    if args.policy == "uniform":
        return {"every_s": args.every}
    if args.policy == "offline_segments":
        return {"n_segments": args.segments} if args.segments else {"rate_hz": args.rate}
    return {"threshold": args.threshold, "confirm": args.confirm, "min_interval_s": args.min_interval,
            "max_interval_s": args.max_interval}


def read_labels(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"label file not found: {path}")
    labels = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not labels:
        raise ValueError(f"label file {path} has no labels (one per line)")
    return labels


def format_event(event) -> str:
    labels = "  ".join(f"{label} {score:.2f}" for label, score in event.topk) or "-"
    line = f"{event.time:8.2f}s  {labels}"
    if event.decode:
        line += f"\n{'':10}>> {event.text!r}"
    return line


def make_backend(args, cfg):
    import torch  # only the reference backend needs torch

    from runtimes.pytorch_backend import PyTorchBackend
    if args.threads:
        torch.set_num_threads(args.threads)
    return PyTorchBackend(cfg, checkpoint=str(args.checkpoint) if args.checkpoint else None)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = get_preset(args.preset)
        if args.top_k < 1 or args.stride < 1:
            raise ValueError("--top-k and --stride must be >= 1")
        policy = make_policy(args.policy, **policy_params(args))
        source = VideoFile(args.video) if args.video else Camera(args.camera)
        query_tok = component_tokenizer(cfg, "predictor")
        query_tok.encode(args.query, what="query")  # an over-long query fails before any work
        decoder_tok = component_tokenizer(cfg, "y_decoder")
        labels_path = args.labels or (DEFAULT_LABELS if DEFAULT_LABELS.is_file() else None)
        labels = read_labels(labels_path) if labels_path else []
        backend = make_backend(args, cfg)
        label_tok = component_tokenizer(cfg, "y_encoder")
        bank = LabelBank.build(labels, backend, label_tok) if labels else None
    except (ConfigError, CheckpointError, ContractError, VideoError, PolicyError, FileNotFoundError,
            ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    window_s = cfg.x_encoder.num_frames / cfg.fps
    print(f"model     preset {cfg.name}, backend {backend.name}, weights: {backend.weights}")
    if args.video:
        print(f"source    {args.video} ({source.width}x{source.height}, {source.fps:.2f} fps, "
              f"{source.frame_count} frames)")
    else:
        print(f"source    camera {args.camera} (live)")
    print(f"windows   {cfg.x_encoder.num_frames} frames at {cfg.fps:g} fps = {window_s:g} s, "
          f"every {args.stride / cfg.fps:g} s; {cfg.x_encoder.img_size} px")
    print(f"query     {args.query!r}")
    print(f"labels    {len(labels)} from {labels_path}" if labels else "labels    none")
    print(f"policy    {args.policy} {policy_params(args)}")
    print()

    writer = EventWriter(args.events) if args.events else None

    def on_event(event):
        if writer is not None:
            writer(event)
        if event.decode or not args.quiet:
            print(format_event(event), flush=True)

    try:
        summary = run_stream(source, backend, cfg, query=args.query, query_tokenizer=query_tok,
                             decoder_tokenizer=decoder_tok, policy=policy, stride=args.stride,
                             label_bank=bank, top_k=args.top_k, on_event=on_event, live=source.live)
    finally:
        if writer is not None:
            writer.close()
    print()
    print(summary.format())
    if args.events:
        print(f"events    {args.events}")
    return 1 if summary.error else 0


if __name__ == "__main__":
    sys.exit(main())
