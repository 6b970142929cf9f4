"""The videos int8 calibration and parity run on: the user's or held-out synthetic-world clips.

Frames come from real video files decoded by OpenCV: the user's (--calibration FILE_OR_DIR) or clips
of the synthetic world written to disk and read back, so codec artefacts are part of the data.
edge_vljepa.recording then runs them through the product's own path and records what the loop
really feeds each method: calibrating on that is what makes static int8 hold on device.
"""

from __future__ import annotations

from pathlib import Path

from edge_vljepa.config import ModelConfig
from edge_vljepa.data.world import sample_clip, sample_stream
from edge_vljepa.data.write import write_video
from edge_vljepa.preprocess import (
    PreprocessSpec,
)
from export.artifact import ExportError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def video_files(source: Path | None, cfg: ModelConfig, split: str, windows: int, workdir: Path,
                seed: int = 0) -> list[Path]:
    """The user's video file(s), or enough synthetic-world clips of `split` for `windows` X-Encoder
    windows of `cfg` (written under `workdir`; each clip lasts one to two windows, at least 2-4 s)."""
    if source is None:
        workdir.mkdir(parents=True, exist_ok=True)
        window_s = PreprocessSpec.from_config(cfg).num_frames / cfg.fps
        seconds = (max(2.0, window_s), max(4.0, 2 * window_s))
        return [write_video(sample_clip(split, i, seed=seed, seconds=seconds), workdir)[0]
                for i in range(windows)]
    if source.is_file():
        return [source]
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        if not files:
            raise ExportError(f"--calibration {source} holds no video files ({', '.join(VIDEO_SUFFIXES)})")
        return files
    raise ExportError(f"--calibration {source} not found")


def stream_file(workdir: Path, seed: int = 0, minutes: float = 1.0) -> Path:
    """A held-out (test split) synthetic stream with known segments, for decode-event agreement."""
    workdir.mkdir(parents=True, exist_ok=True)
    return write_video(sample_stream("test", 0, seed=seed, minutes=minutes), workdir)[0]


