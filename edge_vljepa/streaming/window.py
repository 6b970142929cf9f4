"""Frames to model windows: resample any source to the model fps, cut a window of T model frames
every `stride` model frames, and, for live sources only, drop frames when processing falls behind.

The X-Encoder sees clips of `num_frames` frames sampled at `cfg.fps` (V-JEPA 2 samples its clips at
a fixed fps, 4 in VL-JEPA); sources come at any rate (30 fps files, 7.5 fps cameras, variable-rate
phone videos), so frames are placed on the model's time grid by their timestamps, never by counting.
Window times are grid times, so they are exact and identical on every backend.

numpy only (no torch): this is what a device runs.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Timestamps come from containers in milliseconds (e.g. 33.333 ms at 30 fps); a frame this close
# to a grid time counts as on it, so 0.5 s = 15 / 30 fps lands on the grid deterministically.
_EPS_S = 1e-6


class Resampler:
    """Places source frames on the model grid t0 + k / fps (t0: the first frame's timestamp).

    Grid time k takes the first source frame at or after it: no look-ahead, at most one source
    frame period late, and a frame is repeated when the source is slower than the model fps.
    """

    def __init__(self, fps: float):
        if fps <= 0:
            raise ValueError(f"the model fps must be > 0, got {fps}")
        self.fps = fps
        self.t0: float | None = None
        self.num_frames = 0  # model frames produced so far (the next grid index)

    def time(self, k: int) -> float:
        """Stream time (s) of model frame k."""
        return self.t0 + k / self.fps

    def push(self, t: float) -> list[int]:
        """Grid indices (model frames) the source frame at time `t` (s) fills; often none."""
        if self.t0 is None:
            self.t0 = t
        last = math.floor((t - self.t0) * self.fps + _EPS_S)
        ks = list(range(self.num_frames, last + 1))
        self.num_frames = max(self.num_frames, last + 1)
        return ks


@dataclass(frozen=True)
class Window:
    """T consecutive model frames: the X-Encoder's input before normalisation."""

    index: int
    start: float  # s, time of the first model frame
    end: float  # s, start + T / fps (exclusive)
    frames: tuple[np.ndarray, ...]  # T x (S, S, 3) uint8

    @property
    def time(self) -> float:
        """The window's centre: the stream time its embedding describes."""
        return (self.start + self.end) / 2


class WindowBuffer:
    """Emits a window of `num_frames` model frames every `stride` model frames.

    Windows hold contiguous grid frames only: a gap in the grid (frames dropped by a live source)
    restarts the buffer, so the next window comes after `num_frames` new frames.
    """

    def __init__(self, num_frames: int, stride: int, fps: float):
        if num_frames <= 0 or stride <= 0:
            raise ValueError(f"window size and stride must be > 0, got {num_frames} and {stride}")
        self.num_frames, self.stride, self.fps = num_frames, stride, fps
        self.frames: deque[tuple[int, float, np.ndarray]] = deque(maxlen=num_frames)  # (k, t, frame)
        self.due = num_frames  # model frames still needed before the next window
        self.count = 0  # windows emitted so far

    def push(self, k: int, t: float, frame: np.ndarray) -> Window | None:
        """Add model frame k at time t (s); return a window when one is complete."""
        if self.frames and k != self.frames[-1][0] + 1:
            self.frames.clear()
            self.due = self.num_frames
        self.frames.append((k, t, frame))
        self.due -= 1
        if self.due > 0:
            return None
        self.due = self.stride
        start = self.frames[0][1]
        window = Window(self.count, start, start + self.num_frames / self.fps,
                        tuple(f for _, _, f in self.frames))
        self.count += 1
        return window


class LagGate:
    """Live sources only: admits a frame unless it lags the clock by more than `max_lag_s`.

    The first frame anchors stream time to the clock; afterwards a frame at stream time t lags by
    clock() - anchor - t. A lagging frame means the loop has fallen behind the source, so it is
    dropped (counted, one warning per run of drops) and the loop catches up on fresh frames instead
    of drifting further behind. Files are never gated: read as fast as the loop runs, nothing is
    dropped and the results are deterministic.
    """

    def __init__(self, max_lag_s: float = 0.5, clock: Callable[[], float] = time.perf_counter):
        if max_lag_s <= 0:
            raise ValueError(f"max_lag_s must be > 0, got {max_lag_s}")
        self.max_lag_s, self.clock = max_lag_s, clock
        self.anchor: float | None = None
        self.dropped = 0
        self.dropping = False

    def admit(self, t: float) -> bool:
        now = self.clock()
        if self.anchor is None:
            self.anchor = now - t
        lag = now - self.anchor - t
        if lag <= self.max_lag_s:
            self.dropping = False
            return True
        if not self.dropping:
            warnings.warn(f"live source: processing is {lag:.2f} s behind (bound {self.max_lag_s} s); "
                          "dropping frames until it catches up", RuntimeWarning, stacklevel=2)
        self.dropping = True
        self.dropped += 1
        return False
