"""Selective encoding: skip the X-Encoder and Predictor while the scene holds.

With decoding made selective (policies.py), the encoder is the cost: it runs on every window (2 per
second at the default stride). The gate decides per window, before the encoder, whether the last
embedding can stand for it (the window is then "reused": its event repeats the last embedding's
labels, and the policy sees that embedding again). Two tests, both cheap:

  stability  each encoded window whose embedding stays within `stable` (cosine distance) of the
             previous encoded one lets one more window in a row be reused, up to `max_skip`: the
             encoder's stride lengthens while the scene holds, and drops back to every window at
             the first encoded window that moved;
  pixels     a window whose newest frame differs from the last encoded window's newest frame by
             more than `pixel` (mean absolute change of an 8 x 8 thumbnail, in [0, 1]) is encoded
             whatever the stability says (a cut, an object appearing).

So a change is seen at most `max_skip` windows late (max_skip x stride / fps seconds). max_skip = 0
(the default) encodes every window. The decode policy has the last word where it has one
(`wants_embedding`, policies.py): a window it decides on is encoded whatever the tests say, and one
whose embedding it will not use (changepoint while it waits for a change to settle) is reused. The
thumbnail is integer block sums of the preprocessed uint8 frame, so the native core
(runtimes/native/src/skip.cpp) takes the same decisions bit for bit.

numpy only (no torch): this is what a device runs.
"""

from __future__ import annotations

import inspect

import numpy as np

from edge_vljepa.streaming.label_bank import l2_normalize

THUMB = 8  # thumbnail side: THUMB x THUMB blocks per channel


def thumbnail(frame: np.ndarray) -> np.ndarray:
    """(THUMB, THUMB, 3) int64 block sums of an (S, S, 3) uint8 frame: blocks of S // THUMB pixels, the
    remaining rows and columns ignored."""
    b = frame.shape[0] // THUMB
    return frame[:b * THUMB, :b * THUMB].astype(np.int64).reshape(THUMB, b, THUMB, b, 3).sum(axis=(1, 3))


def thumbnail_change(a: np.ndarray, b: np.ndarray, side: int) -> float:
    """Mean absolute change of two thumbnails of frames of side `side`, in [0, 1] (pixel units / 255)."""
    block = (side // THUMB) ** 2
    return float(np.abs(a - b).sum()) / (a.size * block * 255)


class SkipGate:
    """Decides per window whether the X-Encoder runs (see the module docstring).

    Per window, in order: `reuse(frames, wanted)` -> True: use the last embedding; False: encode, then
    call `encoded(embedding)` with the new embedding. wanted: the policy's `wants_embedding`.
    """

    def __init__(self, max_skip: int = 0, stable: float = 0.05, pixel: float = 0.01):
        if not (isinstance(max_skip, int) and max_skip >= 0):
            raise ValueError(f"skip: max_skip must be an integer >= 0, got {max_skip!r}")
        if not 0 < stable < 2:
            raise ValueError(f"skip: stable is a cosine distance in (0, 2), got {stable}")
        if not 0 <= pixel <= 1:
            raise ValueError(f"skip: pixel is a mean absolute change in [0, 1], got {pixel}")
        self.max_skip, self.stable, self.pixel = max_skip, stable, pixel
        self.allowed = 0  # windows that may be reused in a row now (grows while the scene holds)
        self.run = 0  # windows reused since the last encoded one
        self.last: np.ndarray | None = None  # (E,) the last encoded embedding, unit length
        self.thumb: np.ndarray | None = None  # thumbnail of the last encoded window's newest frame
        self.pending: np.ndarray | None = None  # ... of the window being encoded
        self.reused = 0  # windows reused so far

    def reuse(self, frames, wanted: bool | None = None) -> bool:
        """Whether the window of uint8 `frames` (T x (S, S, 3)) may reuse the last embedding; wanted:
        True: the policy decides on this window (encode it), False: it will not use it (reuse), None:
        the tests above decide."""
        if self.max_skip == 0:
            return False
        if self.last is not None and wanted is False:  # the policy will not use this window's embedding
            return self._take_last()
        thumb = thumbnail(frames[-1])
        if (self.last is not None and wanted is None and self.run < self.allowed
                and thumbnail_change(thumb, self.thumb, frames[-1].shape[0]) <= self.pixel):
            return self._take_last()
        self.pending = thumb  # the thumbnail of the window about to be encoded
        return False

    def _take_last(self) -> bool:
        """This window reuses the last embedding."""
        self.run += 1
        self.reused += 1
        return True

    def encoded(self, embedding: np.ndarray) -> None:
        """Record the embedding (E,) of the window just encoded."""
        if self.max_skip == 0:
            return
        e = l2_normalize(embedding)
        held = self.last is not None and 1 - float(e @ self.last) <= self.stable
        self.allowed = min(self.allowed + 1, self.max_skip) if held else 0
        self.last, self.thumb, self.run = e, self.pending, 0


def skip_defaults() -> dict:
    """The gate's default parameters ({"max_skip": 0, ...}): the one source manifests and CLIs read."""
    return {k: p.default for k, p in inspect.signature(SkipGate).parameters.items()}
