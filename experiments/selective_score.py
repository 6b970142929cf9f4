"""experiments.selective's scoring (VL-JEPA section 4.6 protocol): a stream's ground truth, each policy
setting's result over all streams, matching each annotation to its nearest decode, CIDEr-D quality,
decision delays, decode-event F1, rates at equal quality and bootstrap intervals over streams."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_vljepa.evaluate import cider_d
from edge_vljepa.streaming import policy_defaults

POLICY_NAMES = ("uniform", "offline_segments", "online", "changepoint")
F1_TOLERANCE_S = 1.0  # decode-event F1: a decode matches one at full-rate encoding this close in time


def online_default() -> dict:
    d = policy_defaults("online")
    return {"threshold": d["threshold"], "min_interval_s": d["min_interval_s"]}


def changepoint_default() -> dict:
    d = policy_defaults("changepoint")
    return {k: d[k] for k in ("threshold", "settle_s", "lead", "recheck")}


@dataclass(frozen=True)
class Truth:
    """A stream's ground truth, read from its annotation JSON."""

    duration: float
    segments: list[tuple[float, float, list[str]]]  # (start s, end s, reference captions)
    stretches: list[tuple[float, float, str]]  # nuisance-only (start s, end s, kind)

    @classmethod
    def from_json(cls, path: Path) -> Truth:
        a = json.loads(Path(path).read_text())
        return cls(a["duration"], [(s["start"], s["end"], [c["text"] for c in s["captions"]])
                                   for s in a["segments"]],
                   [(s["start"], s["end"], s["kind"]) for s in a["nuisance_stretches"]])

    @property
    def boundaries(self) -> list[float]:
        return [s for s, _, _ in self.segments[1:]]


@dataclass
class Result:
    """One policy setting over all streams."""

    policy: str
    params: dict
    skip: dict | None = None  # the SkipGate's parameters; None: the X-Encoder runs on every window
    decodes: int = 0
    stream_s: float = 0.0
    encoded: int = 0  # X-Encoder calls
    f1: float = float("nan")  # decode-event F1 against the same setting at full-rate encoding
    base_delta: tuple[float, float, float] = (float("nan"),) * 3  # quality - full-rate encoding's, interval
    quality: float = float("nan")
    nuisance_fraction: float = float("nan")
    delays: list[float] = field(default_factory=list)
    missed: int = 0
    scores: list[np.ndarray] = field(default_factory=list)  # per stream: CIDEr-D of each annotation
    ci: tuple[float, float] = (float("nan"), float("nan"))  # 95% bootstrap interval of `quality`
    delta: tuple[float, float, float] = (float("nan"),) * 3  # quality - the reference's, with its interval
    outside: float = float("nan")  # share of annotations whose nearest decode lies outside their segment

    @property
    def rate_hz(self) -> float:
        return self.decodes / self.stream_s if self.stream_s else float("nan")

    @property
    def encoder_per_min(self) -> float:
        return 60 * self.encoded / self.stream_s if self.stream_s else float("nan")

    @property
    def decodes_per_min(self) -> float:
        return 60 * self.rate_hz

    @property
    def setting(self) -> str:
        return ", ".join(f"{k}={v:g}" for k, v in self.params.items() if v is not None)

    @property
    def label(self) -> str:
        skip = "" if self.skip is None else ", skip " + "/".join(f"{v:g}" for v in self.skip.values())
        return self.setting + skip

    def delay(self, q: float) -> float:
        return float(np.percentile(self.delays, q)) if self.delays else float("nan")


def match_nearest(annotation_times, decode_times) -> np.ndarray:
    """Index of the decode (sorted times) nearest to each annotation time; ties go to the earlier one."""
    d, a = np.asarray(decode_times, dtype=np.float64), np.asarray(annotation_times, dtype=np.float64)
    right = np.clip(np.searchsorted(d, a), 0, len(d) - 1)
    left = np.clip(right - 1, 0, len(d) - 1)
    return np.where(np.abs(d[left] - a) <= np.abs(d[right] - a), left, right)


def decision_delays(boundaries, decodes, stream_end: float) -> tuple[list[float], int]:
    """Per boundary b: (end of the window of the first decode centred at or after b) - b, i.e. when its
    text can be shown, if that decode comes before the next boundary; else b counts as missed.
    decodes: (time, window end, text), sorted."""
    delays, missed = [], 0
    for i, b in enumerate(boundaries):
        nxt = boundaries[i + 1] if i + 1 < len(boundaries) else stream_end
        first = next((d for d in decodes if d[0] >= b), None)
        if first is not None and first[0] < nxt:
            delays.append(first[1] - b)
        else:
            missed += 1
    return delays, missed


def decode_f1(runs, base_runs, tolerance_s: float = F1_TOLERANCE_S) -> float:
    """F1 of the decode times of `runs` against those of `base_runs` (per stream, as `score` takes them):
    each decode matches at most one base decode within `tolerance_s`, greedily in time order."""
    matched = found = wanted = 0
    for (decodes, *_), (base, *_) in zip(runs, base_runs, strict=True):
        times, free = sorted(d[0] for d in decodes), sorted(d[0] for d in base)
        found, wanted = found + len(times), wanted + len(free)
        for t in times:
            k = next((k for k, b in enumerate(free) if abs(b - t) <= tolerance_s + 1e-9), None)
            if k is not None:
                matched += 1
                free.pop(k)
    precision, recall = matched / max(found, 1), matched / max(wanted, 1)
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def rate_at_quality(points: list[tuple[float, float]], target: float) -> float | None:
    """The rate down to which the piecewise-linear curve (rate, quality) keeps `target`: from its
    highest-rate point reaching `target`, walk down in rate to the first crossing below it (so a noisy
    low-rate point cannot count as reaching it); None if no point reaches `target`."""
    pts = sorted(points, reverse=True)
    i = next((i for i, (_, q) in enumerate(pts) if q >= target), None)
    if i is None:
        return None
    for (r0, q0), (r1, q1) in zip(pts[i:], pts[i + 1:], strict=False):
        if q1 < target:
            return r1 + (target - q1) / (q0 - q1) * (r0 - r1)
    return pts[-1][0]


def lowest_equal_rate(results: list[Result], policy: str) -> Result | None:
    """Walking down in rate through the settings of `policy`, the last one whose paired 95% interval of
    the difference to the reference (bootstrap's `delta`) still reaches 0, i.e. not significantly worse;
    stops at the first significantly worse setting. None if even the highest-rate one is worse."""
    last = None
    for r in sorted((r for r in results if r.policy == policy and r.skip is None), key=lambda r: -r.rate_hz):
        if r.delta[2] < 0:
            break
        last = r
    return last


def score(result: Result, runs, truths: list[Truth], half_window_s: float) -> Result:
    """Fill in `result` from its runs, one (decodes [(time, window end, text)], stream s[, X-Encoder
    calls]) per stream. A decode is inside a nuisance-only stretch when its time is within the stretch
    widened by half a window (the windows that see the stretch)."""
    hyps, refs, inside, outside = [], [], 0, 0
    for (decodes, stream_s, *encoded), truth in zip(runs, truths, strict=True):
        decodes = sorted(decodes)
        result.decodes, result.stream_s = result.decodes + len(decodes), result.stream_s + stream_s
        result.encoded += encoded[0] if encoded else 0
        mids = [(s + e) / 2 for s, e, _ in truth.segments]
        nearest = match_nearest(mids, [d[0] for d in decodes]) if decodes else [None] * len(mids)
        hyps += [decodes[j][2] if j is not None else "" for j in nearest]
        outside += sum(j is None or not s <= decodes[j][0] < e
                       for j, (s, e, _) in zip(nearest, truth.segments, strict=True))
        refs += [captions for _, _, captions in truth.segments]
        inside += sum(any(s - half_window_s <= t <= e + half_window_s for s, e, _ in truth.stretches)
                      for t, _, _ in decodes)
        if result.policy != "offline_segments":  # the online policies (uniform included)
            delays, missed = decision_delays(truth.boundaries, decodes, truth.duration)
            result.delays, result.missed = result.delays + delays, result.missed + missed
    scores = cider_d(hyps, refs)
    result.quality = float(np.mean(scores))
    result.scores = np.split(scores, np.cumsum([len(t.segments) for t in truths])[:-1])
    result.nuisance_fraction = inside / result.decodes if result.decodes else float("nan")
    result.outside = outside / len(hyps)
    return result


def embedding_change(recorders, truths: list[Truth], window_s: float) -> tuple[np.ndarray, np.ndarray]:
    """1 - cos of the embeddings (a) across each ground-truth boundary: the last window ending at or before
    it vs the first starting at or after it; (b) of consecutive windows inside one segment (jitter)."""
    across, within = [], []
    for rec, truth in zip(recorders, truths, strict=True):
        t, e = np.array([w[0] for w in rec.windows]), np.stack([w[1] for w in rec.windows])
        starts = [s for s, _, _ in truth.segments]
        for b in truth.boundaries:
            before = np.flatnonzero(t + window_s / 2 <= b + 1e-6)
            after = np.flatnonzero(t - window_s / 2 >= b - 1e-6)
            if len(before) and len(after):
                across.append(1 - float(e[before[-1]] @ e[after[0]]))
        first = np.searchsorted(starts, t - window_s / 2 + 1e-6, side="right")  # segment of a window's start
        last = np.searchsorted(starts, t + window_s / 2 - 1e-6, side="right")  # ... and of its end
        same = (first == last)[1:] & (first[1:] == first[:-1]) & (last[:-1] == last[1:])
        within += list((1 - np.sum(e[1:] * e[:-1], axis=1))[same])
    return np.array(across), np.array(within)


def bootstrap(results: list[Result], reference: Result | None, n: int = 2000, seed: int = 0) -> None:
    """95% intervals by resampling streams (annotation scores fixed): each result's quality, and its
    paired difference to `reference` (same streams, same annotations)."""
    counts = np.array([len(s) for s in results[0].scores])
    idx = np.random.default_rng(seed).integers(0, len(counts), (n, len(counts)))  # (n, streams)
    total = counts[idx].sum(1)
    sums = {id(r): np.array([s.sum() for s in r.scores]) for r in results}

    def paired(r: Result, ref: Result) -> tuple[float, float, float]:
        d = sums[id(r)] - sums[id(ref)]
        return (d.sum() / counts.sum(), *np.percentile(d[idx].sum(1) / total, [2.5, 97.5]))

    for r in results:
        r.ci = tuple(np.percentile(sums[id(r)][idx].sum(1) / total, [2.5, 97.5]))
        if reference is not None:
            r.delta = paired(r, reference)
        if r.skip is not None and (base := full_rate(results, r)) is not None:
            r.base_delta = paired(r, base)


def full_rate(results: list[Result], r: Result) -> Result | None:
    """The setting of `r` at full-rate encoding (no skip), if in the sweep."""
    return next((b for b in results if b.skip is None and (b.policy, b.params) == (r.policy, r.params)), None)
