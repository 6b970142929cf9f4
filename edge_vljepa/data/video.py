"""Video input through OpenCV: files and live cameras as streams of (t seconds, RGB uint8 frame).

`VideoFile` reads a container (mp4, avi, mov, mkv, ... whatever OpenCV's FFmpeg reads) with the
container's timestamps; `Camera` reads a capture device or a stream URL on a capture thread and is
marked `live`, so the streaming loop drops frames when it falls behind (edge_vljepa.streaming.window).
Frames have the source's size; the loop resizes them (edge_vljepa.preprocess.prepare_frame).

Every failure is a `VideoError` with a one-line, actionable message: a missing file, a file that is
not a video or is corrupted, an empty video, a camera that is not there, a stream that breaks
mid-way (the frames read before the break are yielded first, so nothing seen is lost). A file ends
normally when decoding reaches its duration, however many frames its header counts.

OpenCV + numpy only (no torch).
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np


class VideoError(RuntimeError):
    """A video source that cannot be read; the message says which and what to do."""


class VideoFile:
    """A video file as (t, RGB (H, W, 3) uint8) frames, t in seconds from the container's timestamps.

    Opening checks the file (exists, decodes, has a frame rate and a first frame), so a bad file
    fails before any work; every iteration reads the file again from the start.
    """

    live = False

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            what = "is a directory, not a video file" if self.path.is_dir() else "not found"
            raise VideoError(f"video file {what}: {self.path}")
        cap = self._open()
        try:
            self.fps = cap.get(cv2.CAP_PROP_FPS)
            # exact for mp4/mov/avi; estimated (duration x fps) by FFmpeg for some containers
            self.frame_count = max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
            self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
            self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            has_frame, _ = cap.read()
        finally:
            cap.release()
        if not has_frame:
            raise VideoError(f"video {self.path} contains no frames; record or export it again")
        if not (self.fps > 0 and math.isfinite(self.fps)):
            raise VideoError(f"video {self.path} has no frame rate; re-encode it with one, "
                             "e.g. ffmpeg -i IN -r 30 OUT.mp4")

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise VideoError(f"cannot read {self.path} as a video: not a video file, or a corrupted, "
                             "truncated or empty one (OpenCV/FFmpeg found no decodable stream)")
        return cap

    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]:
        cap = self._open()
        count, t_prev = 0, -math.inf
        try:
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                t = cap.get(cv2.CAP_PROP_POS_MSEC) / 1e3  # this frame's presentation time
                if not t > t_prev:  # a container without usable timestamps: constant frame rate
                    t = t_prev + 1 / self.fps if count else 0.0
                yield t, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                count, t_prev = count + 1, t
        finally:
            cap.release()
        if not self.reached_end(count, t_prev):
            raise VideoError(f"video {self.path} broke after {count} of {self.frame_count} frames "
                             f"(at {t_prev:.2f} s): the file is truncated or corrupted")

    def reached_end(self, count: int, t_last: float) -> bool:
        """Whether decoding stopped at the end of the file rather than before it: `count` frames were
        decoded, the last at `t_last` s. A file ends at its duration (the header's frame count at its
        frame rate), not at its frame count: a sparse file (a variable-rate recording, an AVI with
        empty chunks) has fewer frames than the header counts, with gaps in their timestamps."""
        slack = max(2, 0.01 * self.frame_count)  # frames: tolerate FFmpeg's frame-count estimates
        if count >= self.frame_count - slack:
            return True
        return t_last + 1 / self.fps >= (self.frame_count - slack) / self.fps  # the last frame's end


class Camera:
    """A live source: a camera index (0 = the default camera) or a stream URL (rtsp://, http://).

    A capture thread reads frames as they come and stamps them with their capture time (seconds
    since iteration began), keeping up to `buffer` frames, so when the loop falls behind its frames
    visibly lag the clock and it drops them. Iterate once; the device is released at the end.
    """

    live = True

    def __init__(self, source: int | str = 0, buffer: int = 64):
        self.source, self.buffer = source, buffer
        self.name = f"camera {source}" if isinstance(source, int) else f"stream {source}"
        self.cap = cv2.VideoCapture(source)
        ok, first = self.cap.read() if self.cap.isOpened() else (False, None)
        if not ok:
            self.cap.release()
            raise VideoError(f"{self.name} is not available: check that it is connected and not used by "
                             "another program, or pick another index")
        self.height, self.width = first.shape[:2]

    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]:
        frames: queue.Queue[tuple[float, np.ndarray] | None] = queue.Queue(maxsize=self.buffer)
        stop = threading.Event()
        start = time.perf_counter()

        def put(item: tuple[float, np.ndarray] | None) -> None:
            while not stop.is_set():  # a blocking put that still notices `stop`
                try:
                    frames.put(item, timeout=0.1)
                    return
                except queue.Full:
                    pass

        def capture() -> None:
            try:
                while not stop.is_set():
                    ok, bgr = self.cap.read()
                    if not ok:
                        break
                    put((time.perf_counter() - start, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
            finally:
                put(None)  # the end of the stream, also when reading raised

        thread = threading.Thread(target=capture, name=f"capture {self.name}", daemon=True)
        thread.start()
        count = 0
        try:
            while (item := frames.get()) is not None:
                yield item
                count += 1
        finally:
            stop.set()
            thread.join()
            self.cap.release()
        raise VideoError(f"{self.name} stopped delivering frames after {count} frames; "
                         "check its connection")
