"""The gates of a quantized artifact (issue 20): ground-truth task drops with a paired bootstrap interval,
decode-event F1, tensor tolerances; the tiny preset's tensor-only verdict; `--quant auto`."""

from __future__ import annotations

import argparse
import json
from functools import partial

import numpy as np
import pytest

from edge_vljepa.config import get_preset
from edge_vljepa.models import COMPONENTS
from edge_vljepa.parity import TASK_TOLERANCES, failures, paired_bootstrap, task_passes
from edge_vljepa.task_gate import TASKS, heldout_clips, task_items, task_parity
from export import auto, pipeline, to_executorch
from export.reference import default_labels
from runtimes.artifact import Artifact
from runtimes.backends import open_backend
from runtimes.backends.pytorch import PyTorchBackend
from tests.conftest import FAST_EXPORT

CFG = get_preset("tiny")


def test_paired_bootstrap_drop_and_interval():
    same = paired_bootstrap([1, 0, 1, 1], [1, 0, 1, 1], [0, 1, 2, 3])
    assert same["drop"] == 0 and same["interval"] == [0, 0]
    ref = np.ones(100)
    cand = np.r_[np.zeros(10), np.ones(90)]  # 10 of 100 clips lost: a real drop, the interval stays above 0
    lost = paired_bootstrap(ref, cand, np.arange(100))
    assert lost["drop"] == pytest.approx(0.1) and 0 < lost["interval"][0] < 0.1 < lost["interval"][1]
    one = paired_bootstrap(ref, np.r_[0, np.ones(99)], np.arange(100))  # one clip: the interval reaches 0
    assert one["drop"] == pytest.approx(0.01) and one["interval"][0] <= 0
    rel = paired_bootstrap([2.0, 2.0], [1.9, 1.9], [0, 1], relative=True)
    assert rel["drop"] == pytest.approx(0.05) and rel["relative"]
    # items of one clip are resampled together: two clips, one lost both its items
    grouped = paired_bootstrap([1, 1, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1])
    assert grouped["drop"] == 0.5 and grouped["items"] == 4


def metric(drop, low, relative=False):
    return {"reference": 0.9, "candidate": 0.9 - drop, "drop": drop, "interval": [low, drop + 0.01],
            "relative": relative, "items": 100}


def test_a_task_drop_fails_only_beyond_its_bound_and_with_an_interval_above_zero():
    tol = TASK_TOLERANCES
    assert task_passes(metric(0.01, 0.001), tol)  # at the bound
    assert task_passes(metric(0.05, -0.001), tol)  # the clips cannot tell it from no loss
    assert not task_passes(metric(0.02, 0.005), tol)
    assert task_passes(metric(0.029, 0.01, relative=True), tol)  # CIDEr-D: 3% relative
    assert not task_passes(metric(0.04, 0.01, relative=True), tol)
    tasks = {"task_gate": {"metrics": {"VQA accuracy": metric(0.02, 0.005),
                                       "caption CIDEr-D": metric(0.02, 0.01, relative=True)}},
             "labels": {"top1_agreement": 0.5, "windows": 4},  # reported, never gated
             "decode_events": {"f1": 0.8, "candidate_decodes": 4, "reference_decodes": 5}}
    lines = failures({}, {}, tasks, None)
    assert len(lines) == 2 and lines[0].startswith("decode events F1 0.80")
    assert "needs at least 0.9" in lines[0]
    assert lines[1].startswith("VQA accuracy: drop 2.0% absolute") and "allowed at most 1%" in lines[1]
    assert failures({}, {}, tasks | {"random_weights": True}, None) == [lines[1]]  # F1 not gated then
    strict = {"task": {"max_drop": 0.03, "decode_f1": 0.5}}  # the manifest's copy of the thresholds rules
    assert failures({}, {}, tasks, None, strict) == []


def test_task_metrics_of_the_fp32_artifact_equal_the_reference(artifact, tmp_path):
    clips = heldout_clips(CFG, 5, tmp_path)
    reference = PyTorchBackend(CFG)
    ref, cand = task_items(reference, CFG, clips), task_items(open_backend(Artifact(artifact)), CFG, clips)
    assert list(ref) == list(TASKS)
    questions = sum(len(c.segment.questions()) for c in clips)
    assert len(ref["VQA accuracy"][0]) == questions and len(ref["classification top-1"][0]) == 5
    assert len(ref["text-to-video R@1"][0]) == sum(len(c.segment.captions("test")) for c in clips)
    gate = task_parity(ref, cand, clips)
    assert gate["clips"] == 5 and set(gate["metrics"]) == set(TASKS)
    for name, m in gate["metrics"].items():
        assert abs(m["drop"]) <= 0.01 and task_passes(m, TASK_TOLERANCES), (name, m)


def test_cheapest_first_orders_by_size_then_speed_among_equal_sizes():
    rows = [{"mode": "int8", "size_bytes": 100, "latency_ms": 3.0},
            {"mode": "int8-dynamic", "size_bytes": 102, "latency_ms": 2.0},
            {"mode": "8da4w", "size_bytes": 60, "latency_ms": 9.0},
            {"mode": "8da8w", "size_bytes": 101, "latency_ms": 2.5}]
    assert [r["mode"] for r in auto.cheapest_first(rows)] == ["8da4w", "int8-dynamic", "8da8w", "int8"]
    assert auto.tiers(("fp32", "fp16", "int8", "int8-dynamic", "8da4w", "8da8w")) == [
        ["int8", "int8-dynamic", "8da4w", "8da8w"], ["fp16"], ["fp32"]]


def test_quant_auto_picks_the_cheapest_passing_precision_and_records_what_it_tried(tmp_path, capsys,
                                                                                   monkeypatch):
    monkeypatch.setattr(to_executorch.TARGET, "quant_modes", ("fp32", "fp16", "int8", "int8-dynamic"))  # fast
    out = tmp_path / "auto"
    code = to_executorch.main([*FAST_EXPORT, "--components", "x_encoder", "--quant", "auto",
                               "--out", str(out)])
    printed = capsys.readouterr().out
    m = json.loads((out / "manifest.json").read_text())
    evidence = m["quant_auto"]
    rows = evidence["tried"]["x_encoder"]
    chosen = m["components"]["x_encoder"]["quant"]
    assert code == 0 and evidence["chosen"] == {"x_encoder": chosen} and chosen in ("int8", "int8-dynamic")
    passed = [r for r in rows if r["verdict"] == "pass"]
    assert len(passed) == 1 and passed[0]["mode"] == chosen
    tried = [r for r in rows if "size_bytes" in r]
    assert {r["mode"] for r in tried} == {"int8", "int8-dynamic"}  # fp16 and fp32 were not needed
    assert all(r["worst_cosine"] < 0.99 for r in rows[:rows.index(passed[0])])  # what came first failed
    assert "tensor tolerances only" in evidence["gates"] and "what was tried" in printed
    assert m["tolerances"]["tensor"] == {chosen: {"cosine": 0.99}} and "max_drop" in m["tolerances"]["task"]


def test_a_trained_model_gets_the_task_gate_and_its_table(artifact, tmp_path, capsys):
    """The exporter's parity with trained weights (here: told so) runs the task gate on held-out clips and
    prints its table; random weights or a partial artifact say why it did not run."""
    quant = dict.fromkeys(COMPONENTS, "fp32")
    assert pipeline.task_gate_reason(quant, True, False).startswith("random weights")
    assert pipeline.task_gate_reason(quant, False, True).startswith("a model of your own")
    assert "all four components" in pipeline.task_gate_reason({"x_encoder": "int8"}, False, False)
    assert pipeline.task_gate_reason(quant, False, False) is None
    args = argparse.Namespace(no_parity=False, parity_windows=4)
    reference = PyTorchBackend(CFG)
    labels = default_labels(CFG)[:8]
    parity, failed = pipeline.run_parity(to_executorch.TARGET, artifact, reference, labels, quant, args,
                                         tmp_path, None, None, False)
    gate = parity["tasks"]["task_gate"]
    assert failed == [] and gate["clips"] == 4 and set(gate["metrics"]) == set(TASKS)
    assert all(abs(m["drop"]) <= 0.25 for m in gate["metrics"].values())  # fp32: at most a near-tie flips
    lines = pipeline.task_gate_lines(gate, {})
    assert lines[0].startswith("task gate   4 held-out clips") and len(lines) == 2 + len(TASKS)
    assert all(line.endswith("pass") for line in lines[2:])


def test_the_search_gates_one_swapped_component_on_tasks_and_decode_events(tmp_path):
    """--quant auto's gate with the task gate on: a predictor lowered alone, inside the fp32 reference."""
    from edge_vljepa.recording import clip_windows, parity_inputs
    from export.calibration import stream_file, video_files
    reference, labels = PyTorchBackend(CFG), default_labels(CFG)[:4]
    windows = clip_windows(video_files(None, CFG, "test", 4, tmp_path / "w"), CFG, 4)
    recorded = parity_inputs(reference, CFG, windows, labels)
    search = auto.Search(reference, recorded, heldout_clips(CFG, 4, tmp_path / "c"),
                         stream_file(tmp_path / "s", minutes=0.25))
    args = to_executorch.build_parser().parse_args(["--out", str(tmp_path / "unused")])
    lower = partial(pipeline.lower, to_executorch.TARGET, args, reference, recorded)
    candidate = auto.lower_alone(to_executorch.TARGET, reference, "predictor", "fp32", lower, recorded,
                                 labels, tmp_path / "predictor-fp32")
    assert candidate.manifest["label_bank"] and list(candidate.manifest["components"]) == ["predictor"]
    row = search.gate("predictor", "fp32", open_backend(candidate))
    assert row["verdict"] == "pass" and row["failures"] == [] and row["max_abs"] <= 1e-4
    assert set(row["task_drops"]) == set(TASKS) and row["decode_f1"] == 1.0
    assert any(key[0] == "x_encoder" for key in search.reference.memo)  # upstream outputs computed once
