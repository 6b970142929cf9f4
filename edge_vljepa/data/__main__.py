"""Command line for the synthetic video world: write clips or streams with annotations, list the vocabulary.

    python -m edge_vljepa.data clips --split train --count 200 --out data/train --seed 0
    python -m edge_vljepa.data streams --split test --count 20 --minutes 2 --out data/streams --seed 0
    python -m edge_vljepa.data vocab

Prints the effective settings first and a summary last; user errors are one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from edge_vljepa.cli import HelpFormatter
from edge_vljepa.data.render import RENDER_SIZE
from edge_vljepa.data.world import NUISANCES, SPLITS, WorldError, sample_clip, sample_stream, vocabulary
from edge_vljepa.data.write import VIDEO_FORMATS, write_index, write_video

DESCRIPTION = """\
Procedural egocentric-style video world for VL-JEPA training and evaluation (numpy + OpenCV).
Objects (shape x colour x size) on textured backgrounds; in each segment one object moves, rotates,
grows, shrinks, appears, disappears, stays still, or is picked up / put down by a hand. Each video
comes with a JSON annotation: segment boundaries, paraphrased captions, a canonical label, questions
with answers, nuisance settings (lighting drift, camera shake, sensor noise, compression artefacts,
which never change the meaning), split and seed. Splits hold out subject colour x shape x action
combinations and caption templates (edge_vljepa/data/world.py: HELD_OUT_COMBOS, CAPTION_TEMPLATES).
Deterministic: the same seed, split and index give the same video."""


class UsageError(Exception):
    """A bad command line; main prints it as one line."""


def _size(text: str) -> tuple[int, int]:
    """'128' or 'WIDTHxHEIGHT'."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected N or WIDTHxHEIGHT, got {text!r}")
    return parts[0], parts[1]


def _nuisance(text: str) -> tuple[str, ...] | None:
    """'random' -> None (sampled per video), 'none', 'all', or a comma-separated list of kinds."""
    if text == "random":
        return None
    if text == "none":
        return ()
    if text == "all":
        return NUISANCES
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in NUISANCES]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(
            f"unknown nuisance {', '.join(unknown) or repr(text)}; use random, none, all or a comma list of: "
            f"{', '.join(NUISANCES)}")
    return kinds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m edge_vljepa.data", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fmt = HelpFormatter

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--split", choices=SPLITS, default="train", help="which split's rules to follow")
    common.add_argument("--out", type=Path, required=True, default=argparse.SUPPRESS, help="output directory")
    common.add_argument("--seed", type=int, default=0,
                        help="world seed; video i depends only on seed, split and i")
    common.add_argument("--size", type=_size, default=str(RENDER_SIZE), metavar="N|WxH",
                        help="frame size in pixels")
    common.add_argument("--fps", type=float, default=8.0, help="frames per second")
    common.add_argument("--format", choices=tuple(VIDEO_FORMATS), default="mp4",
                        help="mp4 (mp4v codec) or avi (MJPG codec)")
    common.add_argument("--nuisance", type=_nuisance, default="random",
                        help=f"random (each kind on with p=1/2 per video), none, all, or a comma list of: "
                             f"{', '.join(NUISANCES)}")
    common.add_argument("--force", action="store_true",
                        help="write into a non-empty --out (same-named files are overwritten)")

    clips = commands.add_parser("clips", parents=[common], formatter_class=fmt,
                                help="one-segment clips for classification, retrieval and VQA",
                                description="Write one-segment clips with annotations.")
    clips.add_argument("--count", type=int, default=200, help="number of clips")
    clips.add_argument("--seconds", type=float, nargs=2, default=(2.0, 4.0), metavar=("MIN", "MAX"),
                       help="clip length range")

    streams = commands.add_parser("streams", parents=[common], formatter_class=fmt,
                                  help="long streams of segments, with nuisance-only stretches",
                                  description="Write long streams: consecutive segments of a persistent "
                                              "scene, each with its boundaries and texts.")
    streams.add_argument("--count", type=int, default=20, help="number of streams")
    streams.add_argument("--minutes", type=float, default=2.0, help="minimum length of each stream")
    streams.add_argument("--segment-seconds", type=float, nargs=2, default=(2.0, 10.0),
                         metavar=("MIN", "MAX"), help="segment length range")
    streams.add_argument("--stretch-prob", type=float, default=0.25,
                         help="chance that a long enough segment gets a nuisance-only stretch")

    commands.add_parser("vocab", formatter_class=fmt,
                        help="print the world's text vocabulary, one token a line",
                        description="Print every token any caption, label, question or answer can contain.")
    return parser


def _check_args(args: argparse.Namespace) -> None:
    if args.count <= 0:
        raise UsageError(f"--count must be > 0, got {args.count}")
    if min(args.size) < 32 or max(args.size) > 4096:
        raise UsageError(f"--size must be 32 to 4096 pixels per side, got {args.size[0]}x{args.size[1]}")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} exists and is not a directory")
    if args.out.is_dir() and any(args.out.iterdir()) and not args.force:
        raise UsageError(f"--out {args.out} is not empty; pass --force to write into it")


def _generate(args: argparse.Namespace) -> None:
    if args.command == "clips":
        def sample(i):
            return sample_clip(args.split, i, args.seed, tuple(args.seconds), args.fps, args.nuisance)
    else:
        def sample(i):
            return sample_stream(args.split, i, args.seed, args.minutes, tuple(args.segment_seconds),
                                 args.fps, args.nuisance, args.stretch_prob)
    sample(0)  # parameter errors surface before any file is written
    args.out.mkdir(parents=True, exist_ok=True)
    width, height = args.size
    written, actions = [], Counter()
    frames = segments = held_out = stretches = 0
    start = time.perf_counter()
    for i in tqdm(range(args.count), desc=args.command, unit=args.command[:-1]):
        video = sample(i)
        written.append(write_video(video, args.out, width, height, args.format))
        frames += video.num_frames
        segments += len(video.segments)
        held_out += sum(s.held_out for s in video.segments)
        stretches += len(video.stretches)
        actions.update(s.action for s in video.segments)
    elapsed = time.perf_counter() - start
    write_index(args.out, _settings(args), written)
    print(f"wrote {args.count} {args.command} to {args.out}: {frames} frames ({frames / args.fps:.0f} s at "
          f"{args.fps:g} fps, {width}x{height} {args.format}), {segments} segments ({held_out} with held-out "
          f"combinations), {stretches} nuisance-only stretches, in {elapsed:.1f} s "
          f"({1e3 * elapsed / frames:.2f} ms/frame)")
    print("actions: " + ", ".join(f"{a} {n}" for a, n in sorted(actions.items())))


def _settings(args: argparse.Namespace) -> dict:
    """The effective settings, JSON-ready: printed first and stored in index.json."""
    shown = {}
    for key, value in vars(args).items():
        if key == "size":
            value = f"{value[0]}x{value[1]}"
        elif key == "nuisance":
            value = "random" if value is None else ",".join(value) or "none"
        elif isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        shown[key] = value
    return shown


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "vocab":
        print("\n".join(vocabulary()))
        return 0
    print("edge_vljepa.data " + " ".join(f"{k}={v}" for k, v in _settings(args).items()))
    try:
        _check_args(args)
        _generate(args)
    except (UsageError, WorldError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: cannot write to {args.out}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
