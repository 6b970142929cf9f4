"""The streaming loop's logic with a FAKE backend: window arithmetic, live dropping, the decode
policies on constructed embedding streams with known change points, greedy decoding, the label bank,
events, and a source that breaks mid-stream. Fakes are used ONLY here, for the loop's logic; the
real backends are tested against the contract elsewhere."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from edge_vljepa.config import get_preset
from edge_vljepa.contract import ContractError, build_contract
from edge_vljepa.data.video import VideoError, VideoFile
from edge_vljepa.preprocess import TextTokenizer
from edge_vljepa.streaming import (
    ChangePoint,
    Event,
    EventWriter,
    LabelBank,
    LagGate,
    OfflineSegments,
    Online,
    PolicyError,
    Resampler,
    SkipGate,
    Uniform,
    WindowBuffer,
    greedy_decode,
    l2_normalize,
    make_policy,
    read_events,
    run_checked,
    run_stream,
    ward_segments,
)

CFG = get_preset("tiny")  # T = 4 model frames at 4 fps: windows of W = 1 s
T, FPS = CFG.x_encoder.num_frames, CFG.fps
DEC = CFG.y_decoder
WORDS = ["red", "blue", "green"]  # one token each in the MiniLM and the synthetic-world vocabularies
E = CFG.embed_dim


def first_frame_at_or_after(times: list[float], tau: float) -> int:
    """Independent reference for the resampler: the first source frame not earlier than grid time tau."""
    return next(i for i, t in enumerate(times) if t >= tau - 1e-9)


def unit_bases(n: int, dim: int = E, seed: int = 0) -> np.ndarray:
    """n orthonormal vectors (n, dim)."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, n)))
    return q.T.astype(np.float32)


# --- window arithmetic ------------------------------------------------------------------------

@pytest.mark.parametrize("source_fps", [30.0, 7.5, 2.0])
def test_resampler_places_source_frames_on_the_model_grid(source_fps):
    t0 = 5.0  # e.g. a camera whose clock does not start at 0
    times = [t0 + i / source_fps for i in range(int(6 * source_fps))]  # 6 s
    resampler = Resampler(FPS)
    chosen = {}  # grid index -> source index
    for i, t in enumerate(times):
        for k in resampler.push(t):
            chosen[k] = i
    n_model = math.floor((times[-1] - t0) * FPS + 1e-9) + 1
    assert sorted(chosen) == list(range(n_model))
    assert chosen == {k: first_frame_at_or_after(times, t0 + k / FPS) for k in range(n_model)}
    assert resampler.time(8) == pytest.approx(t0 + 2.0)
    if source_fps == 30.0:  # 0.5 s = 15/30 lands exactly on frame 15, not 16
        assert chosen[2] == 15 and chosen[1] == 8
    if source_fps == 2.0:  # slower than the model: frames repeat
        assert list(chosen.values())[:5] == [0, 1, 1, 2, 2]


def test_resampler_accepts_millisecond_timestamps():
    times = [round(i * 1000 / 30, 3) / 1000 for i in range(61)]  # 33.333 ms steps, rounded
    resampler = Resampler(FPS)
    chosen = {k: i for i, t in enumerate(times) for k in resampler.push(t)}
    assert chosen == {k: first_frame_at_or_after(times, k / FPS) for k in range(9)}


@pytest.mark.parametrize("stride", [1, 2, 3, 6])
def test_window_buffer_emits_T_frames_every_stride(stride):
    buffer = WindowBuffer(T, stride, FPS)
    n_model = 20
    windows = [w for k in range(n_model) if (w := buffer.push(k, k / FPS, np.full((2, 2, 3), k, np.uint8)))]
    assert len(windows) == (n_model - T) // stride + 1
    for i, w in enumerate(windows):
        first = i * stride
        assert w.index == i
        assert [int(f[0, 0, 0]) for f in w.frames] == list(range(first, first + T))
        expected = (first / FPS, (first + T) / FPS, (first + T / 2) / FPS)
        assert (w.start, w.end, w.time) == pytest.approx(expected)


def test_window_buffer_restarts_after_a_gap():
    buffer = WindowBuffer(T, 2, FPS)
    ks = list(range(0, 7)) + list(range(9, 16))  # model frames 7 and 8 dropped
    starts = [w.start for k in ks if (w := buffer.push(k, k / FPS, np.zeros((1, 1, 3), np.uint8)))]
    assert starts == [0 / FPS, 2 / FPS, 9 / FPS, 11 / FPS]


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_lag_gate_drops_late_frames_with_one_warning_per_run():
    clock = FakeClock()
    gate = LagGate(max_lag_s=0.5, clock=clock)
    assert gate.admit(0.0)
    clock.now = 0.9
    assert gate.admit(0.5)  # lag 0.4
    with pytest.warns(RuntimeWarning, match="behind") as caught:
        assert not gate.admit(0.3)  # lag 0.6
        assert not gate.admit(0.35)
        assert gate.admit(0.8)  # caught up
        assert not gate.admit(0.1)  # a second run of drops
    assert gate.dropped == 3
    assert len(caught) == 2


# --- decode policies on constructed embedding streams -------------------------------------------

W_S, D_S = T / FPS, 1 / FPS  # window length and period (stride 1), seconds


def scene_stream(scenes: list[tuple[float, np.ndarray]], duration: float, jitter: float, seed: int = 1):
    """Windows (start, end, embedding) of a stream whose content changes at known times.

    scenes: (start time, unit vector) in order. A window [start, start + W) mixes the scenes it
    overlaps by overlap, like a real clip straddling a cut, plus random jitter of size `jitter`.
    """
    rng = np.random.default_rng(seed)
    bounds = [s for s, _ in scenes[1:]] + [math.inf]
    out = []
    for i in range(int((duration - W_S) / D_S) + 1):
        start = i * D_S
        mix = sum(max(0.0, min(start + W_S, b) - max(start, s)) * v
                  for (s, v), b in zip(scenes, bounds, strict=True))
        e = l2_normalize(mix) + jitter * rng.standard_normal(E) / math.sqrt(E)
        out.append((start, start + W_S, l2_normalize(e)))
    return out


def constant_stream(n: int, e: np.ndarray):
    return [(i * D_S, i * D_S + W_S, e) for i in range(n)]  # centres 0.5, 0.75, ...


def fire_times(policy, windows) -> list[float]:
    requests = [r for i, (start, end, e) in enumerate(windows) if (r := policy.observe(i, start, end, e))]
    return [r.time for r in requests + policy.finish()]


def test_uniform_fires_at_exact_times():
    windows = constant_stream(17, np.ones(E, np.float32))  # centres 0.5 .. 4.5
    assert fire_times(Uniform(every_s=1.0), windows) == [0.5, 1.5, 2.5, 3.5, 4.5]
    assert fire_times(Uniform(every_s=0.6), windows) == [0.5, 1.25, 1.75, 2.5, 3.0, 3.5, 4.25]


def test_offline_segments_recover_known_segments_exactly():
    lengths = [7, 12, 5, 9]
    bases = unit_bases(4)
    embeddings = np.concatenate([np.repeat(b[None], n, axis=0) for b, n in zip(bases, lengths, strict=True)])
    starts = np.cumsum([0] + lengths[:-1])
    expected = [(int(s), int(s + n - 1)) for s, n in zip(starts, lengths, strict=True)]
    assert ward_segments(embeddings, 4) == expected

    windows = [(i * D_S, i * D_S + W_S, e) for i, e in enumerate(embeddings)]  # centres span 8 s
    centres = [(a + b) / 2 for a, b, _ in windows]
    for policy in (OfflineSegments(n_segments=4), OfflineSegments(rate_hz=0.5)):
        assert all(policy.observe(i, *w) is None for i, w in enumerate(windows))
        requests = policy.finish()
        assert [r.span for r in requests] == expected
        assert [r.time for r in requests] == [(centres[a] + centres[b]) / 2 for a, b in expected]
        assert [r.window for r in requests] == [(a + b) // 2 for a, b in expected]
        assert np.allclose(np.stack([r.embedding for r in requests]), bases, atol=1e-6)


def test_offline_segments_with_more_segments_than_windows():
    policy = OfflineSegments(n_segments=5)
    for i in range(3):
        policy.observe(i, float(i), float(i + 1), np.eye(E, dtype=np.float32)[i])
    assert [r.span for r in policy.finish()] == [(0, 0), (1, 1), (2, 2)]
    assert OfflineSegments(n_segments=2).finish() == []


def online_bound(policy: Online) -> float:
    """The worst-case decision delay stated in Online's docstring (window centre times)."""
    return max(W_S / 2 + policy.confirm * D_S, policy.min_interval_s + D_S)


def test_online_fires_once_within_its_delay_after_each_change():
    a, b, c = unit_bases(3)
    c_close = l2_normalize(0.8 * b + 0.6 * c)  # cosine 0.8 to b: a subtle change (distance 0.2)
    changes = [10.0, 20.0, 35.0]
    scenes = [(0.0, a), (changes[0], b), (changes[1], c_close), (changes[2], a)]
    policy = Online()
    fired = fire_times(policy, scene_stream(scenes, duration=50.0, jitter=0.15))
    # the first windows are described, then exactly one decode per change, in time
    assert fired[0] == 0.5 + (policy.confirm - 1) * D_S
    assert len(fired) == 1 + len(changes)
    for change, t in zip(changes, fired[1:], strict=True):
        assert change < t <= change + online_bound(policy)


def test_online_honours_min_interval():
    a, b = unit_bases(2, seed=3)
    policy = Online(min_interval_s=5.0)
    fired = fire_times(policy, scene_stream([(0.0, a), (3.0, b)], duration=20.0, jitter=0.15))
    first = 0.5 + (policy.confirm - 1) * D_S
    assert fired == [first, first + 5.0]  # the change at 3 s waits for the min interval
    assert fired[1] <= 3.0 + online_bound(policy)


def test_online_never_fires_on_noise_only():
    a = unit_bases(1, seed=4)[0]
    noise_only = scene_stream([(0.0, a)], duration=600.0, jitter=0.25, seed=4)
    assert np.mean([1 - float(e @ a) for _, _, e in noise_only]) > 0.02  # real jitter, not a constant
    assert fire_times(Online(), noise_only) == [0.75]  # the initial description only


def test_online_ignores_a_single_window_glitch_and_refreshes_when_asked():
    a = unit_bases(1)[0]
    windows = constant_stream(40, a)
    windows[20] = (*windows[20][:2], unit_bases(2, seed=9)[1])  # one outlier window
    assert fire_times(Online(), windows) == [0.75]
    assert fire_times(Online(max_interval_s=3.0), windows) == [0.75, 3.75, 6.75, 9.75]


def test_make_policy_names_and_parameters():
    assert isinstance(make_policy("online", threshold=0.2), Online)
    assert make_policy("uniform", every_s=2.0).every_s == 2.0
    with pytest.raises(PolicyError, match="unknown decode policy 'ward'.*online, changepoint"):
        make_policy("ward")
    with pytest.raises(PolicyError, match="no parameter every.*every_s"):
        make_policy("uniform", every=2)
    with pytest.raises(PolicyError, match="exactly one of n_segments"):
        make_policy("offline_segments", n_segments=3, rate_hz=0.5)
    with pytest.raises(PolicyError, match="threshold"):
        make_policy("online", threshold=0.0)
    with pytest.raises(PolicyError, match="max_interval_s"):
        make_policy("online", min_interval_s=2.0, max_interval_s=1.0)



def changepoint_bound(policy: ChangePoint) -> float:
    """ChangePoint's decision delay bound (window centre times): a window sees a change in its last
    D_S, drifts once enough of it is new (at most W_S later), and the decode waits settle_s more."""
    return W_S / 2 + policy.settle_s + D_S


def test_changepoint_decodes_the_settled_content_once_per_change():
    a, b, c = unit_bases(3)
    c_close = l2_normalize(0.8 * b + 0.6 * c)  # a subtle change (distance 0.2)
    changes = [10.0, 20.0, 35.0]
    scenes = [(0.0, a), (changes[0], b), (changes[1], c_close), (changes[2], a)]
    windows = scene_stream(scenes, duration=50.0, jitter=0.15)
    policy = ChangePoint()
    requests = [r for i, (start, end, e) in enumerate(windows) if (r := policy.observe(i, start, end, e))]
    assert requests[0].time == 0.5 and len(requests) == 1 + len(changes)  # the first window, 1 per change
    for change, r, new in zip(changes, requests[1:], (b, c_close, a), strict=True):
        assert change < r.time <= change + changepoint_bound(policy)
        assert windows[r.window][0] >= change - 1e-9  # its window is all past the change: not a mix
        assert float(r.embedding @ new) > 0.95 and r.span[0] < r.span[1] == r.window
    # the same stream: Online decodes the mean of the straddling windows, further from the new scene
    online = Online()
    mixed = [r for i, (start, end, e) in enumerate(windows) if (r := online.observe(i, start, end, e))]

    def worst(rs):
        return min(float(r.embedding @ new) for r, new in zip(rs[1:], (b, c_close, a), strict=True))
    assert worst(mixed) < worst(requests)


def test_changepoint_ignores_noise_and_glitches_and_refreshes_when_asked():
    a = unit_bases(1, seed=4)[0]
    assert fire_times(ChangePoint(), scene_stream([(0.0, a)], duration=600.0, jitter=0.25, seed=4)) == [0.5]
    windows = constant_stream(40, a)
    windows[20] = (*windows[20][:2], unit_bases(2, seed=9)[1])  # one outlier window
    assert fire_times(ChangePoint(), windows) == [0.5]
    assert fire_times(ChangePoint(max_interval_s=3.0), windows) == [0.5, 3.5, 6.5, 9.5]


def test_changepoint_redecodes_when_the_early_text_was_of_the_transition():
    a, b = unit_bases(2, seed=5)
    windows = scene_stream([(0.0, a), (10.0, b)], duration=20.0, jitter=0.0)
    policy = ChangePoint(settle_s=0.0)  # decides at the first drifting window: its content is mostly old
    requests = [r for i, (start, end, e) in enumerate(windows) if (r := policy.observe(i, start, end, e))]
    assert len(requests) == 3  # the start; the change, early; once the windows are all new, again
    early, late = requests[1:]
    assert float(early.embedding @ b) < 0.9 < float(late.embedding @ b)
    assert windows[late.window][0] >= windows[early.span[0]][1] - 1e-9  # the first all-new window


def at_distance(a: np.ndarray, c: np.ndarray, d: float) -> np.ndarray:
    """A unit vector at cosine distance d from unit a, towards c (orthogonal to a)."""
    return np.cos(np.arccos(1 - d)) * a + np.sin(np.arccos(1 - d)) * c


def test_changepoint_lead_halves_the_settle_when_the_change_began_a_window_earlier():
    a, b, c = unit_bases(3, seed=7)
    windows = constant_stream(40, a)
    windows[10] = (*windows[10][:2], at_distance(a, c, 0.07))  # already 0.7 threshold away, not drifting
    windows[11:] = [(*w[:2], b) for w in windows[11:]]  # drifts from window 11 (centre 3.25 s)
    assert fire_times(ChangePoint(lead=1.0), windows) == [0.5, 3.25 + 1.0]  # no lead: settle_s
    assert fire_times(ChangePoint(lead=0.5), windows) == [0.5, 3.25 + 0.5]  # lead: settle_s / 2
    assert fire_times(ChangePoint(lead=0.8), windows) == [0.5, 3.25 + 1.0]  # 0.07 < 0.8 x 0.1
    windows[10] = (*windows[10][:2], a)
    assert fire_times(ChangePoint(lead=0.5), windows) == [0.5, 3.25 + 1.0]  # a sudden change waits


def test_changepoint_recheck_has_its_own_distance():
    a, b = unit_bases(2, seed=5)
    windows = scene_stream([(0.0, a), (10.0, b)], duration=20.0, jitter=0.0)
    early = ChangePoint(settle_s=0.0)  # decides at the first drifting window, mostly old content
    requests = [r for i, (start, end, e) in enumerate(windows) if (r := early.observe(i, start, end, e))]
    gap = 1 - float(requests[2].embedding @ requests[1].embedding)  # the all-new window vs the early one
    assert len(requests) == 3 and gap > 0.2
    assert len(fire_times(ChangePoint(settle_s=0.0, recheck=gap + 0.01), windows)) == 2
    assert len(fire_times(ChangePoint(settle_s=0.0, recheck=gap - 0.01), windows)) == 3


def test_changepoint_wants_only_the_windows_it_decides_on():
    a, b, c = unit_bases(3, seed=2)
    windows = scene_stream([(0.0, a), (10.0, b), (20.0, c)], duration=30.0, jitter=0.05)
    policy, wants = ChangePoint(), []
    for i, (start, end, e) in enumerate(windows):
        wanted = policy.wants_embedding(start, end)
        request = policy.observe(i, start, end, e)
        wants.append((wanted, request is not None))
    assert wants[0] == (None, True)  # the first window: no opinion, described
    assert all(wanted is True for wanted, fired in wants[1:] if fired)  # every decision was wanted
    assert not any(fired for wanted, fired in wants if wanted is False)  # a reusable window never decides
    assert sum(w is False for w, _ in wants) >= 4 and sum(w is None for w, _ in wants) > len(wants) / 2
    assert all(make_policy(name).wants_embedding(0.0, W_S) is None for name in ("uniform", "online"))


def test_make_policy_builds_changepoint():
    assert isinstance(make_policy("changepoint", threshold=0.2, settle_s=0.5), ChangePoint)
    with pytest.raises(PolicyError, match="settle_s"):
        make_policy("changepoint", settle_s=-1.0)
    with pytest.raises(PolicyError, match="no parameter confirm"):
        make_policy("changepoint", confirm=2)
    with pytest.raises(PolicyError, match="lead is a fraction of threshold"):
        make_policy("changepoint", lead=1.5)
    with pytest.raises(PolicyError, match="recheck is a cosine distance"):
        make_policy("changepoint", recheck=0.0)


# --- selective encoding ---------------------------------------------------------------------------

def gate_pattern(gate: SkipGate, frames, embeddings, wanted=None) -> str:
    """'E' for an encoded window, 'R' for a reused one; wanted: the policy's answer per window."""
    out = ""
    for f, e, w in zip(frames, embeddings, wanted or [None] * len(frames), strict=True):
        if gate.reuse(f, w):
            out += "R"
        else:
            gate.encoded(e)
            out += "E"
    return out


def test_skip_gate_lengthens_the_stride_while_the_scene_holds():
    still = [np.full((16, 16, 3), 100, np.uint8)] * 4  # a window of T frames
    a, b = unit_bases(2, seed=6)
    assert gate_pattern(SkipGate(), [still] * 6, [a] * 6) == "EEEEEE"  # off by default
    assert gate_pattern(SkipGate(max_skip=2), [still] * 12, [a] * 12) == "EERERRERRERR"
    # the change at window 4 is seen at the next encoded window (6: max_skip late), which moved: every
    # window is encoded again until the scene holds
    assert gate_pattern(SkipGate(max_skip=2), [still] * 10, [a] * 4 + [b] * 6) == "EERERREERE"
    # a pixel change forces the encoder, whatever the stability says
    bright = [np.full((16, 16, 3), 130, np.uint8)] * 4  # mean change 30 / 255 = 0.12
    assert gate_pattern(SkipGate(max_skip=2), [still] * 2 + [bright] * 5, [a] * 7) == "EEERRER"
    assert gate_pattern(SkipGate(max_skip=2, pixel=0.2), [still] * 2 + [bright] * 5, [a] * 7) == "EERERRE"
    # the policy has the last word: a window it decides on is encoded, one it will not use is reused
    wanted = [None, False, None, None, True, None, False, False, None, None, None, None]
    assert gate_pattern(SkipGate(max_skip=2), [still] * 12, [a] * 12, wanted) == "ERERERRRERRE"
    assert gate_pattern(SkipGate(max_skip=0), [still] * 12, [a] * 12, wanted) == "E" * 12  # off: off
    with pytest.raises(ValueError, match="max_skip"):
        SkipGate(max_skip=-1)
    with pytest.raises(ValueError, match="stable"):
        SkipGate(stable=0.0)


def test_loop_skips_the_encoder_while_the_scene_holds():
    bank = LabelBank.build(WORDS, FakeModel(30.0), LABEL_TOKENIZER)
    full_model, skip_model = FakeModel(30.0), FakeModel(30.0)
    full, skipped = [], []
    stream(coloured_frames(30.0, 12.0), full_model, Uniform(every_s=0.5), label_bank=bank,
           on_event=full.append)
    # the fake frames change colour every frame: only the stability test decides here
    summary = stream(coloured_frames(30.0, 12.0), skip_model, Uniform(every_s=0.5), label_bank=bank,
                     on_event=skipped.append, skip=SkipGate(max_skip=2, pixel=1.0))
    assert [e.window for e in skipped] == [e.window for e in full] == list(range(23))  # an event each
    reused = [e.reused for e in skipped]
    assert summary.reused == sum(reused) >= 8
    assert summary.encoded == len(skip_model.windows) == 23 - sum(reused)
    assert "RRR" not in "".join("R" if r else "E" for r in reused)  # at most max_skip in a row
    for prev, e in zip(skipped, skipped[1:], strict=False):
        if e.reused:  # the last embedding and labels stand for it: no encoder, predictor or label bank
            assert e.topk == prev.topk and e.text == prev.text and set(e.ms) == {"preprocess", "y_decoder"}
            assert '"reused": true' in e.to_json() and Event.from_json(e.to_json()).reused
    assert all('"reused"' not in e.to_json() for e in full)  # the schema is unchanged without skipping
    # each change shows up at most max_skip windows (1 s) late
    first = {w: next(e.time for e in events if e.text == w) for events in (full,) for w in WORDS}
    assert all(0 <= next(e.time for e in skipped if e.text == w) - first[w] <= 1.0 for w in WORDS)
    assert "reused (x_encoder on" in summary.format()
    # with changepoint, the windows it decides on are encoded, and the ones it waits through reused
    events = []
    stream(coloured_frames(30.0, 12.0), FakeModel(30.0), ChangePoint(), on_event=events.append,
           skip=SkipGate(max_skip=2, pixel=1.0))
    decisions = [e for e in events if e.decode]
    assert len(decisions) >= 3 and not any(e.reused for e in decisions) and any(e.reused for e in events)


# --- greedy decoding ----------------------------------------------------------------------------

class ScriptedDecoder:
    """FAKE y_decoder: emits `script` token by token and records what each step was fed."""

    def __init__(self, script: list[int]):
        self.contract = build_contract(CFG)
        self.script, self.fed = script, []  # fed: (token, position, kv marker)
        self.calls = 0

    def _out(self) -> dict[str, np.ndarray]:
        logits = np.zeros((1, DEC.vocab_size), np.float32)
        logits[0, self.script[min(self.calls, len(self.script) - 1)]] = 1.0
        kv = np.full(self.contract["y_decoder_step"].inputs[2].shape, self.calls, np.float32)
        self.calls += 1
        return {"logits": logits, "kv_cache": kv}

    def run(self, method, inputs):
        if method == "y_decoder_step":
            self.fed.append((int(inputs["token"][0, 0]), int(inputs["position"][0]),
                             float(inputs["kv_cache"].flat[0])))
        return self._out()


def test_greedy_decode_stops_at_eos_and_feeds_positions():
    decoder = ScriptedDecoder([5, 6, 7, DEC.eos_token_id, 9])
    assert greedy_decode(decoder, np.zeros(E, np.float32), DEC) == [5, 6, 7]
    p = DEC.prefix_len
    # token n sits at P + n; each step gets the cache the previous call returned
    assert decoder.fed == [(5, p + 1, 0.0), (6, p + 2, 1.0), (7, p + 3, 2.0)]
    eos_first = ScriptedDecoder([DEC.eos_token_id])
    assert greedy_decode(eos_first, np.zeros(E, np.float32), DEC) == [] and eos_first.fed == []


def test_greedy_decode_stops_at_max_new_tokens():
    decoder = ScriptedDecoder([42])
    ids = greedy_decode(decoder, np.zeros(E, np.float32), DEC)
    assert ids == [42] * DEC.max_new_tokens
    positions = [pos for _, pos, _ in decoder.fed]
    assert positions == list(range(DEC.prefix_len + 1, DEC.prefix_len + DEC.max_new_tokens))
    assert positions[-1] < DEC.max_seq_len


def test_run_checked_names_the_bad_tensor():
    class WrongShape(ScriptedDecoder):
        def run(self, method, inputs):
            kv_cache = super().run(method, inputs)["kv_cache"]
            return {"logits": np.zeros((1, 3), np.float32), "kv_cache": kv_cache}

    with pytest.raises(ContractError, match="y_decoder_prefill.*'logits'"):
        run_checked(WrongShape([1]), "y_decoder_prefill", {"embedding": np.zeros((1, E), np.float32)})
    with pytest.raises(ContractError, match="'embedding' has dtype float64"):
        run_checked(WrongShape([1]), "y_decoder_prefill", {"embedding": np.zeros((1, E))})


# --- the fake model for the loop -----------------------------------------------------------------

QUERY = "what is happening?"
QUERY_TOKENIZER = TextTokenizer(CFG.predictor.tokenizer, CFG.predictor.max_query_len)
LABEL_TOKENIZER = TextTokenizer(CFG.y_encoder.tokenizer, CFG.y_encoder.max_text_len)
DECODER_TOKENIZER = TextTokenizer(CFG.y_decoder.tokenizer, DEC.max_new_tokens)
WORD_IDS = [DECODER_TOKENIZER.ids(w)[1] for w in WORDS]  # [BOS/CLS, word, EOS/SEP]
LABEL_IDS = [LABEL_TOKENIZER.ids(w)[1] for w in WORDS]
BASES = unit_bases(len(WORDS))


def scene_of(t: float) -> int:
    """The constructed stream: red before 4 s, blue until 8 s, then green."""
    return 0 if t < 4.0 else 1 if t < 8.0 else 2


class FakeModel:
    """FAKE backend for the loop logic only. Each frame's colour encodes its source index;
    x_encoder reads the indices back (so tests see exactly which frames a window held), predictor
    returns the scripted embedding of those frames' scenes, y_encoder embeds a scene word as its
    scene vector, y_decoder says the scene word nearest the embedding, then EOS. `slow_s` advances a
    FakeClock per x_encoder call to play a slow device."""

    def __init__(self, source_fps: float, clock: FakeClock | None = None, slow_s: float = 0.0):
        self.contract = build_contract(CFG)
        self.source_fps, self.clock, self.slow_s = source_fps, clock, slow_s
        self.windows: list[list[int]] = []  # source frame indices of each x_encoder call

    def run(self, method, inputs):
        return getattr(self, method)(**inputs)

    def x_encoder(self, video):
        if self.clock is not None:
            self.clock.now += self.slow_s
        mean, std = np.asarray(CFG.mean)[:, None], np.asarray(CFG.std)[:, None]
        rgb = np.rint((video[0, :, :, 0, 0] * std + mean) * 255)  # (3, T)
        indices = rgb[0] + 256 * rgb[1]  # (T,)
        self.windows.append(indices.astype(int).tolist())
        tokens = np.zeros(self.contract["x_encoder"].outputs[0].shape, np.float32)
        tokens[0, :T, 0] = indices
        return {"visual_tokens": tokens}

    def predictor(self, visual_tokens, query_ids, query_mask):
        assert query_mask.sum() == len(QUERY_TOKENIZER.ids(QUERY))
        scenes = [scene_of(i / self.source_fps) for i in visual_tokens[0, :T, 0].astype(int)]
        return {"embedding": l2_normalize(BASES[scenes].sum(axis=0))[None]}

    def y_encoder(self, input_ids, attention_mask):
        return {"embedding": BASES[LABEL_IDS.index(int(input_ids[0, 1]))][None]}

    def _logits(self, token: int) -> np.ndarray:
        logits = np.zeros((1, DEC.vocab_size), np.float32)
        logits[0, token] = 1.0
        return logits

    def y_decoder_prefill(self, embedding):
        word = WORD_IDS[int(np.argmax(BASES @ embedding[0]))]
        return {"logits": self._logits(word),
                "kv_cache": np.zeros(self.contract["y_decoder_prefill"].outputs[1].shape, np.float32)}

    def y_decoder_step(self, token, position, kv_cache):
        return {"logits": self._logits(DEC.eos_token_id), "kv_cache": kv_cache}


def coloured_frames(source_fps: float, seconds: float, clock: FakeClock | None = None):
    """(t, RGB (48, 64, 3)) frames whose colour encodes the source index; with a clock, a frame
    arrives no earlier than its timestamp (a live camera)."""
    for i in range(int(seconds * source_fps)):
        t = i / source_fps
        if clock is not None:
            clock.now = max(clock.now, t)
        frame = np.zeros((48, 64, 3), np.uint8)
        frame[..., 0], frame[..., 1] = i % 256, i // 256
        yield t, frame


def stream(frames, model, policy, **kwargs):
    return run_stream(frames, model, CFG, query=QUERY, query_tokenizer=QUERY_TOKENIZER,
                      decoder_tokenizer=DECODER_TOKENIZER, policy=policy, stride=2, **kwargs)


def expected_window_frames(source_fps: float, first_k: int) -> list[int]:
    times = [i / source_fps for i in range(int(20 * source_fps))]
    return [first_frame_at_or_after(times, k / FPS) for k in range(first_k, first_k + T)]


# --- the loop ------------------------------------------------------------------------------------

def test_loop_windows_labels_and_offline_decodes():
    model = FakeModel(30.0)
    bank = LabelBank.build(WORDS, model, LABEL_TOKENIZER)
    events = []
    summary = stream(coloured_frames(30.0, 12.0), model, OfflineSegments(n_segments=3), label_bank=bank,
                     top_k=2, on_event=events.append)
    # 12 s at 30 fps -> 48 model frames -> windows of 4 every 2: 23
    windows, decodes = events[:23], events[23:]
    assert summary.windows == 23 and summary.source_frames == 360 and summary.dropped_frames == 0
    assert summary.stream_s == 12.0 and summary.decodes == 3 and summary.error is None
    assert [e.window for e in windows] == list(range(23))
    assert [(e.start, e.end, e.time) for e in windows] == [(0.5 * i, 0.5 * i + 1, 0.5 * i + 0.5)
                                                           for i in range(23)]
    assert model.windows == [expected_window_frames(30.0, 2 * i) for i in range(23)]
    assert not any(e.decode for e in windows)
    for e in windows:
        if scene_of(e.start) == scene_of(e.end - 1e-3):  # a window inside one scene
            assert e.topk[0] == (WORDS[scene_of(e.start)], pytest.approx(1.0))
        assert len(e.topk) == 2 and set(e.ms) == {"preprocess", "x_encoder", "predictor", "label_bank"}
    # one decode per scene, covering all windows in order, at the segments' midpoints
    assert [e.text for e in decodes] == WORDS
    spans = [e.span for e in decodes]
    assert spans[0][0] == 0 and spans[-1][1] == 22
    assert all(b[0] == a[1] + 1 for a, b in zip(spans, spans[1:], strict=False))
    assert [e.time for e in decodes] == [(windows[a].time + windows[b].time) / 2 for a, b in spans]
    assert all(e.decode and "y_decoder" in e.ms for e in decodes)
    assert set(summary.stage_ms) == {"preprocess", "x_encoder", "predictor", "label_bank", "y_decoder"}


def test_loop_uniform_decodes_in_window_events():
    model = FakeModel(7.5)
    events = []
    summary = stream(coloured_frames(7.5, 6.0), model, Uniform(every_s=1.0), on_event=events.append)
    assert [e.time for e in events if e.decode] == [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]
    assert [e.text for e in events if e.decode] == ["red"] * 4 + ["blue"] * 2
    assert all(("y_decoder" in e.ms) == e.decode and e.topk == [] for e in events)
    assert model.windows == [expected_window_frames(7.5, 2 * i) for i in range(len(events))]
    assert summary.decodes == 6 and summary.decodes_per_min == pytest.approx(60.0)


def test_loop_live_drops_frames_when_behind_and_files_never_do():
    clock = FakeClock()
    model = FakeModel(30.0, clock=clock, slow_s=1.1)  # 1.1 s per window, one every 0.5 s arrives
    with pytest.warns(RuntimeWarning, match="behind"):
        summary = stream(coloured_frames(30.0, 12.0, clock), model, Uniform(), live=True, clock=clock)
    assert summary.dropped_frames > 0 and 0 < summary.windows < 23
    for frames in model.windows:  # every window still holds T consecutive model frames
        first_k = int(frames[0] * FPS // 30.0)  # the grid frame that source frame filled
        assert frames == expected_window_frames(30.0, first_k)

    file_clock = FakeClock()
    slow_file = FakeModel(30.0, clock=file_clock, slow_s=1.1)
    summary = stream(coloured_frames(30.0, 12.0), slow_file, Uniform(), clock=file_clock)
    assert summary.dropped_frames == 0 and summary.windows == 23


def test_broken_source_keeps_the_events_so_far(tmp_path):
    def breaks_after_200():
        for i, item in enumerate(coloured_frames(30.0, 12.0)):
            if i == 200:
                raise VideoError("video broke after 200 frames")
            yield item

    path = tmp_path / "events.jsonl"
    with EventWriter(path) as writer:
        summary = stream(breaks_after_200(), FakeModel(30.0), OfflineSegments(n_segments=2), on_event=writer)
    events = read_events(path)
    # 200 frames: t <= 6.63 s -> 27 model frames -> 12 windows, then the offline decodes of what was seen
    assert summary.error == "VideoError: video broke after 200 frames"
    assert summary.windows == 12 and [e.window for e in events[:12]] == list(range(12))
    assert [e.text for e in events[12:]] == ["red", "blue"]
    assert "broke mid-stream" in summary.format()


def test_truncated_video_file_keeps_the_events_so_far(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (64, 48))
    for _, rgb in coloured_frames(30.0, 6.0):
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    events = []
    summary = stream(VideoFile(path), FakeModel(30.0), Uniform(), on_event=events.append)
    assert summary.error is not None and "truncated or corrupted" in summary.error
    assert 0 < summary.windows == len(events) and summary.source_frames < 180


# --- label bank and events ------------------------------------------------------------------------

def test_label_bank_topk_and_round_trip(tmp_path):
    bank = LabelBank(["a", "b", "c"], np.array([[1, 0], [0, 2], [1, 1]], np.float32))
    assert np.allclose(np.linalg.norm(bank.embeddings, axis=1), 1.0)
    top = bank.topk(np.array([3.0, 1.0], np.float32), k=2)
    assert [label for label, _ in top] == ["a", "c"]
    assert [s for _, s in top] == pytest.approx([3 / math.sqrt(10), 4 / math.sqrt(20)])
    assert len(bank.topk(np.array([0.0, 1.0]), k=10)) == 3
    bank.save(tmp_path / "bank.npz")
    loaded = LabelBank.load(tmp_path / "bank.npz")
    assert loaded.labels == bank.labels and np.allclose(loaded.embeddings, bank.embeddings, atol=1e-7)
    assert loaded.embeddings.dtype == np.float32
    with pytest.raises(ValueError, match="duplicate labels.*'a'"):
        LabelBank(["a", "a"], np.eye(2))
    with pytest.raises(ValueError, match="dimension 3"):
        bank.topk(np.ones(3))


def test_events_round_trip_and_flush(tmp_path):
    events = [Event(0.5, 0, 0.0, 1.0, [("kitchen", 0.9125), ("park", -0.25)], ms={"x_encoder": 1.5}),
              Event(3.25, 5, 1.0, 5.5, [], decode=True, text="a café, \"quoted\"", span=(2, 8),
                    ms={"y_decoder": 12.0})]
    assert [Event.from_json(e.to_json()) for e in events] == events
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path)
    writer(events[0])
    assert read_events(path) == events[:1]  # on disk before close: a crash keeps it
    writer(events[1])
    writer.close()
    assert read_events(path) == events
