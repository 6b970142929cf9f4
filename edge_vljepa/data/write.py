"""Writing synthetic videos to disk: a video file that cv2.VideoCapture reads, plus a JSON annotation.

opencv-python-headless cannot write H.264; it writes MPEG-4 Part 2 ("mp4v" in .mp4) and Motion-JPEG
("MJPG" in .avi). Both are lossy, so a decoded frame differs slightly from the rendered one; the
labels never depend on pixel-exact frames. Reading videos back is `edge_vljepa.data.video`'s job.

Layout of an output directory:
  <kind>_<index:06d>.<mp4|avi>   the video, BGR frames at the annotation's fps and size
  <kind>_<index:06d>.json        its annotation (world.annotation plus file name, size and codec)
  index.json                     the generation settings and the list of videos; read this rather
                                 than globbing, since --force may leave files of an earlier run
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2

from edge_vljepa.data.render import RENDER_SIZE, render_frames
from edge_vljepa.data.world import Video, annotation

ANNOTATION_FORMAT = "edge-vljepa-synthetic/1"
VIDEO_FORMATS = {"mp4": "mp4v", "avi": "MJPG"}  # container -> fourcc


def video_stem(video: Video) -> str:
    return f"{video.kind}_{video.index:06d}"


def write_video(video: Video, out_dir: Path, width: int = RENDER_SIZE, height: int = RENDER_SIZE,
                fmt: str = "mp4") -> tuple[Path, Path]:
    """Render `video` into out_dir as <stem>.<fmt> and <stem>.json; returns both paths.

    Raises OSError when the writer cannot be opened (unwritable directory, unsupported codec).
    """
    if fmt not in VIDEO_FORMATS:
        raise ValueError(f"unknown video format {fmt!r}; choose one of: {', '.join(VIDEO_FORMATS)}")
    out_dir = Path(out_dir)
    video_path = out_dir / f"{video_stem(video)}.{fmt}"
    fourcc = VIDEO_FORMATS[fmt]
    writer = cv2.VideoWriter(str(video_path), cv2.VideoWriter_fourcc(*fourcc), video.fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"cannot open a {fourcc} video writer for {video_path}")
    try:
        for frame in render_frames(video, width, height):
            writer.write(frame)
    finally:
        writer.release()
    record = {"format": ANNOTATION_FORMAT, "video": video_path.name, "width": width, "height": height,
              "codec": fourcc, **annotation(video)}
    json_path = video_path.with_suffix(".json")
    json_path.write_text(json.dumps(record, indent=1) + "\n")
    return video_path, json_path


def write_index(out_dir: Path, settings: dict, videos: list[tuple[Path, Path]]) -> Path:
    """index.json: the settings that generated the directory and its (video, annotation) files."""
    path = Path(out_dir) / "index.json"
    index = {"format": ANNOTATION_FORMAT, "settings": settings,
             "videos": [{"video": v.name, "annotation": a.name} for v, a in videos]}
    path.write_text(json.dumps(index, indent=1) + "\n")
    return path
