"""The selective-decoding experiment (experiments.selective): a seconds-long smoke run of the CLI on the
tiny preset with random weights, the memoizing backend, and the protocol's pieces on constructed data
(nearest-decode matching, decision delays, rate at equal quality, scoring)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edge_vljepa.config import get_preset
from experiments.selective import MemoBackend, main
from experiments.selective_report import iso_quality
from experiments.selective_score import (
    Result,
    Truth,
    bootstrap,
    decision_delays,
    decode_f1,
    embedding_change,
    lowest_equal_rate,
    match_nearest,
    rate_at_quality,
    score,
)
from runtimes.backends.pytorch import PyTorchBackend

CFG = get_preset("tiny")


class Counting:
    """A real backend that counts its calls per method."""

    def __init__(self, backend):
        self.backend, self.contract, self.calls = backend, backend.contract, {}

    def run(self, method, inputs):
        self.calls[method] = self.calls.get(method, 0) + 1
        return self.backend.run(method, inputs)


def test_memo_backend_returns_identical_outputs_and_avoids_recomputation():
    reference = PyTorchBackend(CFG)
    counting = Counting(PyTorchBackend(CFG))
    memo = MemoBackend(counting)
    rng = np.random.default_rng(0)
    spec = reference.contract["x_encoder"].inputs[0]
    a, b = (rng.standard_normal(spec.shape).astype(np.float32) for _ in range(2))

    first = memo.run("x_encoder", {"video": a})
    second = memo.run("x_encoder", {"video": a.copy()})  # same bytes, another array
    expected = reference.run("x_encoder", {"video": a})
    np.testing.assert_array_equal(first["visual_tokens"], expected["visual_tokens"])
    np.testing.assert_array_equal(second["visual_tokens"], expected["visual_tokens"])
    assert counting.calls == {"x_encoder": 1} and (memo.hits, memo.misses) == (1, 1)
    assert memo.stats() == "x_encoder 1 computed of 2"

    first["visual_tokens"][:] = 0  # a caller mutating its outputs does not corrupt the cache
    again = memo.run("x_encoder", {"video": a})["visual_tokens"]
    np.testing.assert_array_equal(again, expected["visual_tokens"])
    memo.run("x_encoder", {"video": b})  # other bytes: computed
    assert counting.calls == {"x_encoder": 2} and memo.misses == 2
    memo.clear()
    memo.run("x_encoder", {"video": a})
    assert counting.calls == {"x_encoder": 3}


def test_annotations_are_matched_to_the_nearest_decode_in_time():
    decodes = [1.0, 5.0, 9.0]
    annotations = [0.0, 2.9, 3.0, 3.1, 7.0, 20.0]  # ties (3.0, 7.0) go to the earlier decode
    assert match_nearest(annotations, decodes).tolist() == [0, 0, 0, 1, 1, 2]
    assert match_nearest([4.0], [6.0]).tolist() == [0]


def test_decision_delay_runs_from_boundary_to_the_end_of_the_first_later_decode():
    decodes = [(1.0, 2.0, "a"), (11.0, 12.0, "b"), (12.0, 13.0, "c")]  # (time, window end, text)
    delays, missed = decision_delays([10.0, 20.0], decodes, stream_end=30.0)
    assert delays == [2.0] and missed == 1  # no decode after 20 s


def test_rate_at_equal_quality_walks_down_from_high_rates_and_ignores_noisy_low_points():
    points = [(2.0, 1.0), (1.0, 0.9), (0.5, 0.85), (0.25, 0.5), (0.1, 0.95)]
    assert rate_at_quality(points, 0.9) == pytest.approx(1.0)
    assert rate_at_quality(points, 0.8) == pytest.approx(0.25 + 0.3 / 0.35 * 0.25)
    assert rate_at_quality(points, 0.4) == pytest.approx(0.1)  # never falls below: the lowest rate
    assert rate_at_quality(points, 1.1) is None


def test_lowest_equal_rate_stops_at_the_first_significantly_worse_setting():
    def result(rate, upper):
        return Result("offline_segments", {"rate_hz": rate}, decodes=int(rate * 100), stream_s=100.0,
                      delta=(0.0, -1.0, upper))
    results = [result(1.0, 0.1), result(0.5, 0.05), result(0.25, -0.01), result(0.1, 0.2)]
    assert lowest_equal_rate(results, "offline_segments").params == {"rate_hz": 0.5}  # 0.1 is not reached
    assert lowest_equal_rate([result(1.0, -0.1)], "offline_segments") is None
    assert lowest_equal_rate(results, "online") is None


def test_bootstrap_intervals_and_iso_quality_reductions():
    rng = np.random.default_rng(0)
    base = Result("uniform", {"every_s": 1.0}, decodes=100, stream_s=100.0,
                  scores=[rng.uniform(0, 2, 20) for _ in range(10)])
    base.quality = float(np.concatenate(base.scores).mean())
    slow = Result("uniform", {"every_s": 4.0}, decodes=25, stream_s=100.0, quality=base.quality - 0.2,
                  scores=[s - 0.2 for s in base.scores])
    offline = [Result("offline_segments", {"rate_hz": r}, decodes=int(r * 100), stream_s=100.0, quality=q)
               for r, q in ((1.0, base.quality + 0.1), (0.5, base.quality), (0.1, base.quality - 0.5))]
    online = Result("online", {}, decodes=10, stream_s=100.0, quality=base.quality - 1)
    for r in (*offline, online):
        r.scores = [s + (r.quality - base.quality) for s in base.scores]
    results = [base, slow, *offline, online]
    bootstrap(results, base)
    assert base.ci[0] < base.quality < base.ci[1] and base.delta == (0.0, 0.0, 0.0)
    assert slow.delta == pytest.approx((-0.2, -0.2, -0.2))  # a constant shift: no spread when paired
    table = iso_quality(results, base).splitlines()
    assert "| every_s=1 | 1.000 |" in table[2] and "0.500 (2.00x)" in table[2] and "not reached" in table[2]
    assert "| every_s=4 | 0.250 |" in table[3]


def test_embedding_change_across_boundaries_and_within_segments():
    class Rec:  # what PolicyRecorder keeps: (window centre, unit embedding); windows of 2 s every 0.5 s
        windows = [(t, np.array([1.0, 0.0]) if t < 5 else np.array([0.6, 0.8]))
                   for t in np.arange(1, 9.5, 0.5)]

    truth = Truth(10.0, [(0.0, 5.0, ["a"]), (5.0, 10.0, ["b"])], [])
    across, within = embedding_change([Rec()], [truth], window_s=2.0)
    assert across.tolist() == pytest.approx([0.4])  # centre 4 (ends at 5) vs centre 6 (starts at 5)
    assert len(within) == 12 and not within.any()  # 1..4 and 6..9: 7 + 7 windows, 6 + 6 pairs


def test_score_matches_each_annotation_to_its_nearest_decode():
    truth = Truth(20.0, [(0.0, 10.0, ["a red circle moves left", "the red circle slides left"]),
                         (10.0, 20.0, ["a blue star grows", "the blue star gets bigger"])],
                  [(14.0, 16.0, "shake")])
    right = [(5.0, 6.0, "a red circle moves left"), (15.5, 16.5, "a blue star grows")]
    swapped = [(5.0, 6.0, "a blue star grows"), (15.5, 16.5, "a red circle moves left")]
    good = score(Result("online", {}), [(right, 20.0)], [truth], half_window_s=1.0)
    bad = score(Result("online", {}), [(swapped, 20.0)], [truth], half_window_s=1.0)
    assert good.quality > 1.0 > bad.quality
    assert good.rate_hz == pytest.approx(0.1) and good.nuisance_fraction == pytest.approx(0.5)
    assert good.delays == [6.5] and good.missed == 0
    assert [len(s) for s in good.scores] == [2] and good.quality == pytest.approx(good.scores[0].mean())


def test_cli_smoke_writes_the_table_and_plots(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["--preset", "tiny", "--random-weights", "--streams", "2", "--minutes", "0.3",
                 "--every", "0.5", "1", "4", "--rates", "1", "0.25", "--online", "0.1:1", "0.05:4",
                 "--changepoint", "0.1:0.5", "--skip", "2:1.9:1",
                 "--out", str(out), "--data", str(tmp_path / "videos")])
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.startswith("selective decoding: preset tiny") and "reduction offline_segments" in printed
    x_encoder = printed.rsplit("memoized calls: ", 1)[1].split(",")[0].split()  # x_encoder N computed of M
    # 9 settings encode every window (the X-Encoder ran once per window), 2 skip some
    assert 9 * int(x_encoder[1]) < int(x_encoder[4]) < 11 * int(x_encoder[1])
    assert len(list((tmp_path / "videos").glob("stream_*.mp4"))) == 2
    report = (out / "results.md").read_text()
    assert "python -m experiments.selective --preset tiny" in report and "| offline_segments |" in report
    assert "## Selective encoding" in report
    assert "| changepoint threshold=0.1, settle_s=1, lead=0.5, recheck=0.2 | 2/1.9/1 |" in report
    for png in ("curves.png", "encoder.png", "timeline.png"):
        img = cv2.imread(str(out / png))
        assert img is not None and img.shape[0] > 300 and img.std() > 0
    results = json.loads((out / "results.json").read_text())["results"]
    uniform = [r["rate_hz"] for r in results if r["policy"] == "uniform" and not r["skip"]]
    offline = [r["rate_hz"] for r in results if r["policy"] == "offline_segments"]
    assert uniform == sorted(uniform, reverse=True) and uniform[0] > uniform[-1]  # every_s 0.5, 1, 4
    assert uniform[0] == pytest.approx(2.0, rel=0.1) and uniform[1] == pytest.approx(1.0, rel=0.1)
    assert offline[0] > offline[1]
    assert {tuple(r["params"].values()) for r in results if r["policy"] == "online"} == {
        (0.1, 1.0), (0.05, 4.0)}  # the default setting (0.1, 1) is in the sweep already
    skipped = [r for r in results if r["skip"] is not None]
    assert [(r["policy"], r["skip"]) for r in skipped] == [
        ("uniform", {"max_skip": 2, "stable": 1.9, "pixel": 1.0}),
        ("changepoint", {"max_skip": 2, "stable": 1.9, "pixel": 1.0})]
    full = next(r for r in results
                if r["policy"] == "uniform" and r["params"] == {"every_s": 1.0} and not r["skip"])
    assert skipped[0]["encoded"] < full["encoded"] and 0 <= skipped[0]["f1"] <= 1
    assert skipped[0]["encoder_per_min"] < full["encoder_per_min"]


def test_decode_f1_matches_decodes_within_the_tolerance():
    def runs(*times):
        return [([(t, t + 1.0, "x") for t in times], 10.0)]
    assert decode_f1(runs(1.0, 5.0), runs(1.0, 5.0)) == 1.0
    assert decode_f1(runs(1.5, 5.0), runs(1.0, 5.0)) == 1.0  # 0.5 s late: within 1 s
    assert decode_f1(runs(1.0, 2.0, 5.0), runs(1.0, 5.0)) == pytest.approx(0.8)  # one extra: P 2/3, R 1
    assert decode_f1(runs(3.0), runs(1.0)) == 0.0
    assert decode_f1(runs(1.2), runs(1.0, 1.5)) == pytest.approx(2 / 3)  # one decode matches one only


def test_cli_refuses_a_preset_without_weights(capsys):
    assert main(["--preset", "tiny", "--streams", "1"]) == 2
    assert "no shipped weights" in capsys.readouterr().err


def test_cli_refuses_an_out_that_is_a_file_before_the_sweep(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    out = str(tmp_path / "file")
    assert main(["--preset", "tiny", "--random-weights", "--streams", "1", "--out", out]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
