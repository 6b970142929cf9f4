"""Decode policies: when to turn the embedding stream into text (selective decoding).

VL-JEPA predicts one embedding per window and only runs the Y-Decoder when text is needed
(paper section 4.6). Four policies share one interface, so the loop treats them alike:

  uniform           decode every `every_s` seconds (the paper's baseline, 1 Hz).
  offline_segments  the paper's method: Ward agglomerative clustering with a temporal-connectivity
                    constraint splits the whole stream into N segments; one decode per segment, at
                    its temporal midpoint, from its mean embedding. Offline: decides at `finish()`.
  online            a streaming change detector with a bounded decision delay (live use).
  changepoint       decodes each change once its new content has settled (live use).

Interface: `observe(index, start, end, embedding) -> DecodeRequest | None` once per window, in
order (start/end: the window's interval in stream seconds, its centre is the time its embedding
describes; embedding (E,)), then `finish() -> [DecodeRequest]` when the stream ends.
`wants_embedding(start, end) -> bool | None` before each window, for selective encoding (skip.py).
`make_policy(name, **params)` builds one by name.

numpy + scikit-learn (no torch): this is what a device runs.
"""

from __future__ import annotations

import inspect
import math
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import scipy.sparse
from sklearn.cluster import AgglomerativeClustering

from edge_vljepa.streaming.label_bank import l2_normalize

_EPS_S = 1e-6  # window times are sums of float fractions of a second


class PolicyError(ValueError):
    """An unknown policy name or an invalid parameter; the message lists the valid choices."""


@dataclass(frozen=True)
class DecodeRequest:
    """Decode `embedding` into text, attributed to stream time `time` and window `window`."""

    time: float  # s
    window: int
    span: tuple[int, int]  # first and last window (inclusive) whose content the embedding covers
    embedding: np.ndarray  # (E,) float32, L2-normalised


class Policy(Protocol):
    name: str

    def observe(self, index: int, start: float, end: float, embedding: np.ndarray) -> DecodeRequest | None:
        ...

    def finish(self) -> list[DecodeRequest]: ...

    def wants_embedding(self, start: float, end: float) -> bool | None:
        """For selective encoding, before the window [start, end] is encoded: True if this policy
        decides on its embedding (encode it), False if the last one serves it as well (reuse), None:
        no preference (the gate's own tests decide)."""
        ...


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise PolicyError(message)


def _require_live(name: str, threshold: float, min_interval_s: float, max_interval_s: float | None) -> None:
    """The parameters the live policies (online, changepoint) share."""
    _require(0 < threshold < 2, f"{name}: threshold is a cosine distance in (0, 2), got {threshold}")
    _require(min_interval_s >= 0, f"{name}: min_interval_s must be >= 0, got {min_interval_s}")
    _require(max_interval_s is None or max_interval_s > min_interval_s,
             f"{name}: max_interval_s ({max_interval_s}) must be None or > min_interval_s ({min_interval_s})")


class Uniform:
    """Decode the current window every `every_s` seconds: at the first window, then at the first
    window centred at or after each multiple of `every_s` after it. The paper's baseline (1 Hz)."""

    name = "uniform"

    def __init__(self, every_s: float = 1.0):
        _require(every_s > 0, f"uniform: every_s must be > 0, got {every_s}")
        self.every_s = every_s
        self.t_first: float | None = None
        self.next_t = -math.inf

    def observe(self, index: int, start: float, end: float, embedding: np.ndarray) -> DecodeRequest | None:
        t = (start + end) / 2
        if self.t_first is None:
            self.t_first = t
        if t < self.next_t - _EPS_S:
            return None
        periods = math.floor((t - self.t_first) / self.every_s + _EPS_S) + 1
        self.next_t = self.t_first + periods * self.every_s
        return DecodeRequest(t, index, (index, index), l2_normalize(embedding))

    def wants_embedding(self, start: float, end: float) -> bool | None:
        return None

    def finish(self) -> list[DecodeRequest]:
        return []


def ward_segments(embeddings: np.ndarray, n_segments: int) -> list[tuple[int, int]]:
    """Split a sequence of embeddings (n, E) into `n_segments` contiguous (first, last) index runs.

    Ward agglomerative clustering where only temporal neighbours may merge (a chain connectivity
    graph), so every cluster is one contiguous run (paper section 4.6).
    """
    n = len(embeddings)
    if n_segments >= n:
        return [(i, i) for i in range(n)]
    chain = scipy.sparse.diags([np.ones(n - 1), np.ones(n - 1)], [-1, 1])  # (n, n): i ~ i +- 1
    labels = AgglomerativeClustering(n_clusters=n_segments, linkage="ward",
                                     connectivity=chain).fit_predict(embeddings)
    starts = [0] + [i for i in range(1, n) if labels[i] != labels[i - 1]]
    return list(zip(starts, [s - 1 for s in starts[1:]] + [n - 1], strict=True))


class OfflineSegments:
    """The paper's selective decoding (section 4.6), offline: it needs the whole embedding stream.

    At `finish()` the stream is split by `ward_segments` into N segments, N = `n_segments`, or
    round(`rate_hz` x the span of the window times) (at least 1); give exactly one. Each segment is
    decoded once, at its temporal midpoint, from its mean embedding (re-normalised).
    """

    name = "offline_segments"

    def __init__(self, n_segments: int | None = None, rate_hz: float | None = None):
        _require((n_segments is None) != (rate_hz is None),
                 "offline_segments: give exactly one of n_segments (a count) or rate_hz (decodes per "
                 f"second), got n_segments={n_segments}, rate_hz={rate_hz}")
        _require(n_segments is None or (isinstance(n_segments, int) and n_segments > 0),
                 f"offline_segments: n_segments must be a positive integer, got {n_segments!r}")
        _require(rate_hz is None or rate_hz > 0, f"offline_segments: rate_hz must be > 0, got {rate_hz}")
        self.n_segments, self.rate_hz = n_segments, rate_hz
        self.indices: list[int] = []
        self.times: list[float] = []
        self.embeddings: list[np.ndarray] = []

    def observe(self, index: int, start: float, end: float, embedding: np.ndarray) -> DecodeRequest | None:
        self.indices.append(index)
        self.times.append((start + end) / 2)
        self.embeddings.append(l2_normalize(embedding))
        return None

    def wants_embedding(self, start: float, end: float) -> bool | None:
        return None

    def finish(self) -> list[DecodeRequest]:
        if not self.times:
            return []
        n = self.n_segments or max(1, round(self.rate_hz * (self.times[-1] - self.times[0])))
        embeddings = np.stack(self.embeddings)  # (n_windows, E)
        requests = []
        for first, last in ward_segments(embeddings, n):
            middle = (first + last) // 2
            requests.append(DecodeRequest((self.times[first] + self.times[last]) / 2, self.indices[middle],
                                          (self.indices[first], self.indices[last]),
                                          l2_normalize(embeddings[first:last + 1].mean(axis=0))))
        return requests


class Online:
    """Streaming change detection with hysteresis and a bounded decision delay (live use).

    Keeps r, the mean embedding of the current segment (the content last decoded). A window
    drifts when its cosine distance 1 - cos to r exceeds `threshold`. When `confirm` consecutive
    windows drift and at least `min_interval_s` passed since the last decode, it decodes their
    mean and a new segment starts. The deciding windows may straddle the change and still mix old
    content, so r is re-anchored: it follows the newest window until one starts at or after the
    deciding window's end (pure new content); later windows that do not drift join r's mean. So
    one change gives one decode, and jitter (a window's cosine distance to its content) under about
    `threshold` / 3 never fires. The first `confirm` windows of a stream are decoded (there is no
    r yet); `max_interval_s` (off by default) forces a periodic refresh from the current window.

    Worst-case decision delay, with W the window length and D the window period (stride / fps)
    in seconds: a change at time c, at least 1.5 W + D after the previous decode, to content that
    stays farther than `threshold` from r, is decided at a window centred before
        c + max(W / 2 + confirm * D, min_interval_s + D),
    available when that window ends, W / 2 later. Changes closer together may be reported as one.
    The defaults suit L2-normalised embeddings whose same-content jitter stays under 0.03.
    """

    name = "online"

    def __init__(self, threshold: float = 0.1, confirm: int = 2, min_interval_s: float = 1.0,
                 max_interval_s: float | None = None):
        _require_live("online", threshold, min_interval_s, max_interval_s)
        _require(isinstance(confirm, int) and confirm >= 1,
                 f"online: confirm must be an integer >= 1, got {confirm!r}")
        self.threshold, self.confirm = threshold, confirm
        self.min_interval_s, self.max_interval_s = min_interval_s, max_interval_s
        self.segment_sum: np.ndarray | None = None  # (E,) sum of the current segment's windows; r ~ it
        self.drifting: deque[tuple[int, np.ndarray]] = deque(maxlen=confirm)  # consecutive (index, (E,))
        self.anchor_until: float | None = None  # re-anchoring r until a window starts here (s)
        self.last_t = -math.inf  # time of the last decode

    def observe(self, index: int, start: float, end: float, embedding: np.ndarray) -> DecodeRequest | None:
        e, t = l2_normalize(embedding), (start + end) / 2
        if self.anchor_until is not None:  # r follows the content until it is past the change
            self.segment_sum = e
            if start >= self.anchor_until - _EPS_S:
                self.anchor_until = None
            return None
        since = t - self.last_t
        if self.segment_sum is not None:  # after the first decode
            if self.max_interval_s is not None and since >= self.max_interval_s - _EPS_S:
                return self._decode(t, end, (index, index), e)
            if 1 - float(e @ l2_normalize(self.segment_sum)) <= self.threshold:
                self.drifting.clear()
                self.segment_sum = self.segment_sum + e
                return None
        self.drifting.append((index, e))
        if len(self.drifting) < self.confirm or since < self.min_interval_s - _EPS_S:
            return None
        mean = l2_normalize(np.mean([d for _, d in self.drifting], axis=0))
        return self._decode(t, end, (self.drifting[0][0], index), mean)

    def _decode(self, t: float, end: float, span: tuple[int, int], embedding: np.ndarray) -> DecodeRequest:
        self.segment_sum, self.anchor_until, self.last_t = embedding, end, t
        self.drifting.clear()
        return DecodeRequest(t, span[1], span, embedding)

    def wants_embedding(self, start: float, end: float) -> bool | None:
        return None

    def finish(self) -> list[DecodeRequest]:
        return []


class ChangePoint:
    """Online change-point decoding that decodes the new content once it has settled (live use).

    Keeps r, the mean embedding of the current segment. A window drifts when its cosine distance
    1 - cos to r exceeds `threshold`; the first drifting window marks a change. That window sees the
    change only at its tail, so its content (and any mean over the transition) is mostly the old
    scene: on the held-out streams (docs/selective) the first drifting window is typically 3/8 to 1/2
    new at threshold 0.1, while a 3/4-new window is already within ~0.1 of the new scene (p50). So it
    decodes the first window centred at least `settle_s` after the first drifting one, from that
    window's own embedding, provided every window since drifted too (otherwise the drift was a glitch
    and is forgotten). When the window before the first drifting one was already more than
    `lead` x `threshold` from r, the change began a window earlier and the first drifting window is
    mostly new: then settle_s / 2 suffices (lead 1: never). r restarts from the decoded embedding and
    follows the newest window until one starts at or after the first drifting window's end (its
    content is all past the change); that window is compared with the decoded embedding, and decoded
    too if they differ by more than `recheck` (the first decode came too early in the transition).
    Later windows that do not drift join r's mean. The first window of a stream is decoded;
    `max_interval_s` (off by default) forces a periodic refresh from the current window;
    `min_interval_s` spaces decodes.

    Decision delay, with W the window length and D the window period: a change at time c first
    drifts in a window ending f * W after c (f: the new fraction that crosses the threshold); the
    decoded window ends settle_s (or settle_s / 2, rounded up to D) later: about f * W + settle_s
    after c (1.5-2.5 s for the default model's W = 2 s, D = 0.5 s), at most W / 2 + settle_s + D
    after c in window centres.

    `wants_embedding(start, end)` tells selective encoding (skip.py) which windows it decides on: the
    decision windows (settle reached, the recheck window) must be encoded; the windows in between
    (settling, following the transition) may reuse the last embedding; None elsewhere.
    """

    name = "changepoint"

    def __init__(self, threshold: float = 0.1, settle_s: float = 1.0, min_interval_s: float = 0.0,
                 max_interval_s: float | None = None, lead: float = 0.5, recheck: float = 0.2):
        _require_live("changepoint", threshold, min_interval_s, max_interval_s)
        _require(settle_s >= 0, f"changepoint: settle_s must be >= 0, got {settle_s}")
        _require(0 <= lead <= 1, f"changepoint: lead is a fraction of threshold in [0, 1], got {lead}")
        _require(0 < recheck < 2, f"changepoint: recheck is a cosine distance in (0, 2), got {recheck}")
        self.threshold, self.settle_s, self.lead, self.recheck = threshold, settle_s, lead, recheck
        self.min_interval_s, self.max_interval_s = min_interval_s, max_interval_s
        self.segment_sum: np.ndarray | None = None  # (E,) sum of the current segment's windows; r ~ it
        self.first: tuple[int, float, float] | None = None  # the first drifting window: (index, centre, end)
        self.settle = settle_s  # the wait of the current change: settle_s, or settle_s / 2 after a lead
        self.previous = 0.0  # distance to r of the last window that did not drift
        self.anchor_until: float | None = None  # r follows the newest window until one starts here (s)
        self.last_t = -math.inf  # time of the last decode
        self.decoded: np.ndarray | None = None  # (E,) the last decoded embedding

    def wants_embedding(self, start: float, end: float) -> bool | None:
        if self.first is not None:  # settling: only the window where settle is reached decides
            return (start + end) / 2 - self.first[1] >= self.settle - _EPS_S
        if self.anchor_until is not None:  # following the transition: only the recheck window decides
            return start >= self.anchor_until - _EPS_S
        return None

    def observe(self, index: int, start: float, end: float, embedding: np.ndarray) -> DecodeRequest | None:
        e, t = l2_normalize(embedding), (start + end) / 2
        if self.segment_sum is None:  # the first window: describe it
            return self._decode(t, (index, index), e, None)
        since = t - self.last_t
        if self.max_interval_s is not None and since >= self.max_interval_s - _EPS_S:
            return self._decode(t, (index, index), e, None)
        if self.anchor_until is not None:  # r follows the content until it is past the change
            self.segment_sum = e
            if start < self.anchor_until - _EPS_S:
                return None
            self.anchor_until = None  # all past the change: was the decoded text of it?
            if 1 - float(e @ self.decoded) > self.recheck:
                return self._decode(t, (index, index), e, None)
            return None
        distance = 1 - float(e @ l2_normalize(self.segment_sum))
        if distance <= self.threshold:
            self.first, self.previous = None, distance
            self.segment_sum = self.segment_sum + e
            return None
        if self.first is None:
            self.first = (index, t, end)
            self.settle = self.settle_s / 2 if self.previous > self.lead * self.threshold else self.settle_s
        if t - self.first[1] < self.settle - _EPS_S or since < self.min_interval_s - _EPS_S:
            return None
        return self._decode(t, (self.first[0], index), e, self.first[2])

    def _decode(self, t: float, span: tuple[int, int], embedding: np.ndarray,
                anchor_until: float | None) -> DecodeRequest:
        self.segment_sum, self.anchor_until, self.last_t, self.first = embedding, anchor_until, t, None
        self.decoded, self.previous = embedding, 0.0
        return DecodeRequest(t, span[1], span, embedding)

    def finish(self) -> list[DecodeRequest]:
        return []


POLICIES = {"uniform": Uniform, "offline_segments": OfflineSegments, "online": Online,
            "changepoint": ChangePoint}


DEFAULT_POLICY, DEFAULT_STRIDE = "changepoint", 2  # live use; windows every 2 model frames (0.5 s at 4 fps)
PAPER_RATE_HZ = 0.35  # offline_segments: the paper's rate at uniform-1 Hz quality (section 4.6)


def policy_defaults(name: str) -> dict:
    """The default parameters of policy `name`: the one source that manifests, CLIs and benchmarks
    read. offline_segments takes one of n_segments / rate_hz; its default is the paper's rate."""
    defaults = {k: p.default for k, p in inspect.signature(POLICIES[name]).parameters.items()}
    return defaults | ({"rate_hz": PAPER_RATE_HZ} if name == "offline_segments" else {})


def make_policy(name: str, **params) -> Policy:
    """The policy `name` built with `params`; an unknown name or parameter raises PolicyError."""
    if name not in POLICIES:
        raise PolicyError(f"unknown decode policy {name!r}; choose one of: {', '.join(POLICIES)}")
    allowed = list(inspect.signature(POLICIES[name]).parameters)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise PolicyError(f"decode policy {name!r} has no parameter {', '.join(unknown)}; "
                          f"its parameters: {', '.join(allowed)}")
    return POLICIES[name](**params)
