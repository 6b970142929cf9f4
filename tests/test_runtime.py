"""The artifact runtime on a tiny ExecuTorch artifact: the backend registry, `runtimes.stream --artifacts`,
`runtimes.parity`, and every bad input (tampered, foreign, corrupted artifacts, broken video, no camera,
missing runtime) refused with one clear line and nothing lost."""

from __future__ import annotations

import json
import re
import shutil
import sys

import numpy as np
import pytest

from edge_vljepa.config import ModelConfig, get_preset
from edge_vljepa.contract import ContractError, build_contract
from edge_vljepa.data.world import sample_stream
from edge_vljepa.data.write import write_video
from edge_vljepa.models import build_model
from edge_vljepa.streaming import CheckedBackend, read_events
from edge_vljepa.weights import save_checkpoint
from runtimes import backends, parity, stream
from runtimes.artifact import Artifact, ArtifactError, file_sha256

CFG = get_preset("tiny")
FAST_PARITY = ["--windows", "4"]


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path, _ = write_video(sample_stream("test", 0, seed=3, minutes=0.25), tmp_path_factory.mktemp("video"),
                          64, 48, fmt="avi")
    return path


@pytest.fixture(scope="module")
def labels(tmp_path_factory, artifact):
    path = tmp_path_factory.mktemp("labels") / "labels.txt"
    path.write_text("\n".join(Artifact(artifact).label_bank().labels[:12]) + "\n")
    return path


def copy(artifact, tmp_path, **manifest_changes):
    """A copy of the artifact, its manifest updated with `manifest_changes` (top-level keys)."""
    out = tmp_path / "copy"
    shutil.copytree(artifact, out)
    edit_manifest(out, lambda m: m.update(manifest_changes))
    return out


def edit_manifest(directory, change) -> None:
    path = directory / "manifest.json"
    m = json.loads(path.read_text())
    change(m)
    path.write_text(json.dumps(m))


def rehash(directory) -> None:
    """Record the files' current sha256 and size (an exporter that wrote a corrupted file)."""
    def update(m):
        for name in m["files"]:
            path = directory / name
            m["files"][name] = {"sha256": file_sha256(path), "size": path.stat().st_size}
    edit_manifest(directory, update)


def run(capsys, cli, *argv):
    code = cli.main([*map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, message, status=2):
    assert code == status and err.startswith("error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


# --- the registry ---------------------------------------------------------------------------------

def test_registry_validates_every_call_against_the_contract(artifact, monkeypatch):
    backend = backends.open_backend(Artifact(artifact))
    assert isinstance(backend, CheckedBackend) and backend.name == "executorch"
    spec = build_contract(CFG)["x_encoder"]
    video = spec.inputs[0].example(np.random.default_rng(0))
    assert backend.run("x_encoder", {"video": video})["visual_tokens"].shape == spec.outputs[0].shape
    with pytest.raises(ContractError, match="x_encoder: tensor 'video' has shape \\(1, 3, 4, 16, 16\\)"):
        backend.run("x_encoder", {"video": video[..., :16, :16]})
    monkeypatch.setattr(backend.backend, "run", lambda method, inputs: {"visual_tokens": np.zeros((1, 2))})
    with pytest.raises(ContractError, match="x_encoder: tensor 'visual_tokens' has shape \\(1, 2\\)"):
        backend.run("x_encoder", {"video": video})


def test_the_y_decoder_is_loaded_at_the_first_decode(artifact):
    backend = backends.open_backend(Artifact(artifact))
    spec = build_contract(CFG)
    backend.run("x_encoder", {"video": spec["x_encoder"].inputs[0].example()})
    assert set(backend.backend._programs) == {"x_encoder"}
    backend.run("y_decoder_prefill", {"embedding": spec["y_decoder_prefill"].inputs[0].example()})
    assert set(backend.backend._programs) == {"x_encoder", "y_decoder"}


def test_registry_names_a_missing_backend_module_or_runtime(artifact, tmp_path, monkeypatch):
    (tmp_path / "needs_runtime_backend.py").write_text("import edge_vljepa_no_such_runtime\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(backends.TARGETS, "absent", ("runtimes.no_such_backend", "X", "pip install x"))
    monkeypatch.setitem(backends.TARGETS, "uninstalled", ("needs_runtime_backend", "X", "pip install x"))
    with pytest.raises(ArtifactError, match="this build has no absent backend"):
        backends.backend_class("absent")
    with pytest.raises(ArtifactError, match="the uninstalled runtime is not installed "
                                            "\\(no module 'edge_vljepa_no_such_runtime'\\): pip install x"):
        backends.backend_class("uninstalled")
    with pytest.raises(ArtifactError, match="unknown artifact target 'tensorrt'; this runtime knows exec"):
        backends.backend_class("tensorrt")
    monkeypatch.setitem(sys.modules, "executorch.runtime", None)  # ExecuTorch's runtime not installed
    with pytest.raises(ArtifactError, match="the executorch runtime is not installed"):
        backends.open_backend(Artifact(artifact))


# --- runtimes.stream --artifacts ------------------------------------------------------------------

def test_stream_on_the_artifact_matches_the_reference(capsys, tmp_path, artifact, video):
    bank_labels = tmp_path / "bank.txt"
    bank_labels.write_text("\n".join(Artifact(artifact).label_bank().labels))
    a, b = tmp_path / "artifact.jsonl", tmp_path / "reference.jsonl"
    code, out, err = run(capsys, stream, "--artifacts", artifact, "--video", video, "--events", a)
    assert code == 0, err
    assert "backend executorch" in out and "labels    656 from the artifact's label bank" in out
    assert "policy    changepoint" in out and "windows/s" in out and "real-time factor" in out
    assert "per minute" in out and "p50 ms" in out and "peak RSS" in out
    assert "y_decoder loaded lazily: RSS" in out and "at the first decode" in out
    code, _, err = run(capsys, stream, "--preset", "tiny", "--video", video, "--labels", bank_labels,
                       "--events", b)
    assert code == 0, err
    ours, ref = read_events(a), read_events(b)
    assert [e.window for e in ours] == [e.window for e in ref] and len(ours) > 20
    assert [e.decode for e in ours] == [e.decode for e in ref] and any(e.decode for e in ours)
    assert [e.text for e in ours] == [e.text for e in ref]
    for x, y in zip(ours, ref, strict=True):
        assert [label for label, _ in x.topk] == [label for label, _ in y.topk]
        np.testing.assert_allclose([s for _, s in x.topk], [s for _, s in y.topk], atol=1e-4)


def test_stream_takes_the_artifact_decode_defaults_unless_given(capsys, tmp_path, artifact, video, labels):
    moved = copy(artifact, tmp_path, decode_policy_defaults={"policy": "uniform", "stride": 4,
                                                             "params": {"every_s": 2.0},
                                                             "skip": {"max_skip": 2, "stable": 1.9}})
    code, out, _ = run(capsys, stream, "--artifacts", moved, "--video", video, "--labels", labels,
                       "--events", tmp_path / "e.jsonl")
    assert code == 0 and "policy    uniform {'every_s': 2.0}" in out and "every 1 s" in out
    assert "skip      max_skip 2, stable 1.9, pixel 0.01" in out  # selective encoding's defaults too
    code, out, _ = run(capsys, stream, "--artifacts", moved, "--video", video, "--labels", labels,
                       "--max-skip", "0", "--policy", "changepoint", "--events", tmp_path / "e.jsonl",
                       "--force")
    # the artifact's parameters are its own policy's: changepoint takes its defaults
    assert code == 0 and "skip      " not in out
    assert "policy    changepoint {'threshold': 0.1, 'settle_s': 1.0" in out
    assert not any(e.reused for e in read_events(tmp_path / "e.jsonl"))
    code, out, _ = run(capsys, stream, "--artifacts", moved, "--video", video, "--labels", labels,
                       "--events", tmp_path / "e.jsonl", "--force")
    events = read_events(tmp_path / "e.jsonl")
    assert [e.window for e in events if e.decode] == list(range(0, len(events), 2))  # a window a second
    code, out, _ = run(capsys, stream, "--artifacts", moved, "--video", video, "--labels", labels,
                       "--policy", "uniform", "--every", "1", "--stride", "2")
    assert code == 0 and "policy    uniform {'every_s': 1.0}" in out and "every 0.5 s" in out


def test_window_lines_are_throttled_when_not_a_terminal(capsys, artifact, video, labels):
    code, out, _ = run(capsys, stream, "--artifacts", artifact, "--video", video, "--labels", labels,
                       "--refresh", "1000", "--policy", "online")
    lines = out.splitlines()
    shown = [i for i, line in enumerate(lines) if re.match(r"\s+\d+\.\d\ds  ", line)]
    decodes = [i for i in shown if i + 1 < len(lines) and lines[i + 1].lstrip().startswith(">> ")]
    assert code == 0 and len(decodes) >= 2
    assert [i for i in shown if i not in decodes] == shown[:1]  # one window line: the first; every decode


# --- bad input: one line, non-zero, nothing lost ----------------------------------------------------

def flip_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def other_preset(directory) -> None:
    """Claim a model config the contract hash does not belong to."""
    edit_manifest(directory, lambda m: m["model"]["config"].update(embed_dim=48))


@pytest.mark.parametrize("damage,message", [
    (lambda d: flip_byte(d / "predictor.pte"), "predictor.pte does not match its sha256"),
    (lambda d: truncate(d / "x_encoder.pte"), "x_encoder.pte does not match its sha256"),
    (lambda d: (d / "y_encoder.pte").unlink(), "file y_encoder.pte listed in the manifest is missing"),
    (other_preset, "the contract hash in the manifest does not match its model config"),
    (lambda d: edit_manifest(d, lambda m: m.update(target="tensorrt")), "unknown artifact target 'tensorrt'"),
    (lambda d: (d / "manifest.json").unlink(), "is not an artifact directory: manifest.json not found"),
    (lambda d: edit_manifest(d, lambda m: m["components"]["y_decoder"].update(delegate="examplenpu")),
     "y_decoder is delegated to examplenpu, which this ExecuTorch runtime does not have"),
])
def test_unusable_artifact_is_refused_before_any_work(capsys, tmp_path, artifact, video, damage, message):
    damaged = copy(artifact, tmp_path)
    damage(damaged)
    events = tmp_path / "events.jsonl"
    code, out, err = run(capsys, stream, "--artifacts", damaged, "--video", video, "--events", events)
    assert_one_line_error(code, err, message)
    assert not events.exists() and "windows" not in out


def test_artifact_of_another_preset_is_refused(capsys, artifact, video):
    code, _, err = run(capsys, stream, "--artifacts", artifact, "--preset", "default", "--video", video)
    assert_one_line_error(code, err, "is an artifact of preset 'tiny' (contract hash")
    assert "--preset default needs contract hash" in err


def test_corrupted_program_fails_when_loaded_keeping_the_events_before(capsys, tmp_path, artifact, video):
    damaged = copy(artifact, tmp_path)
    truncate(damaged / "y_decoder.pte")
    rehash(damaged)  # the sha256 matches: only loading the program can tell
    events = tmp_path / "events.jsonl"
    code, _, err = run(capsys, stream, "--artifacts", damaged, "--video", video, "--events", events,
                       "--policy", "online")
    assert_one_line_error(code, err, "y_decoder.pte as an ExecuTorch program (File size is too small")
    kept = read_events(events)
    assert f"the {len(kept)} events before it are kept in {events}" in err
    assert len(kept) == 1 and not kept[0].decode  # online decodes at the 2nd window: the 1st is kept


def test_video_that_breaks_mid_stream_keeps_events(capsys, tmp_path, artifact, video):
    broken = tmp_path / "broken.avi"
    data = video.read_bytes()
    broken.write_bytes(data[: len(data) * 2 // 3])
    events = tmp_path / "events.jsonl"
    code, out, _ = run(capsys, stream, "--artifacts", artifact, "--video", broken, "--events", events)
    assert code == 1 and "broke mid-stream" in out and "peak RSS" in out
    assert len(read_events(events)) > 5


def test_camera_that_is_not_there(capsys, artifact):
    code, _, err = run(capsys, stream, "--artifacts", artifact, "--camera", 97)
    assert_one_line_error(code, err, "camera 97 is not available")


def test_artifact_whose_runtime_is_not_installed(capsys, tmp_path, artifact, video, monkeypatch):
    (tmp_path / "needs_runtime_backend.py").write_text("import edge_vljepa_no_such_runtime\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(backends.TARGETS, "someruntime", ("needs_runtime_backend", "X", "pip install it"))
    moved = copy(artifact, tmp_path, target="someruntime")
    code, _, err = run(capsys, stream, "--artifacts", moved, "--video", video)
    assert_one_line_error(code, err, "the someruntime runtime is not installed")


def test_reference_only_flags_are_refused_with_an_artifact(capsys, artifact, video):
    code, _, err = run(capsys, stream, "--artifacts", artifact, "--video", video, "--threads", 1)
    assert_one_line_error(code, err, "--threads is for the PyTorch reference")


# --- runtimes.parity ------------------------------------------------------------------------------

def test_parity_of_the_fp32_artifact_passes_with_a_report(capsys, tmp_path, artifact, video):
    code, out, err = run(capsys, parity, "--artifacts", artifact, "--video", video, *FAST_PARITY,
                         "--out", tmp_path / "report")  # labels: the artifact's bank (656)
    assert code == 0, out + err
    assert "labels      656" in out and "top-1 agreement 100.0%, top-5 overlap 100.0%" in out
    assert "parity      pass" in out and "F1 1.00" in out
    result = json.loads((tmp_path / "report" / "parity.json").read_text())
    assert result["status"] == "pass" and result["failures"] == []
    assert set(result["tensors"]) == set(build_contract(CFG).methods)
    assert all(m["max_abs"] <= 1e-4 for r in result["tensors"].values() for m in r["outputs"].values())
    assert result["tasks"]["stream_labels"] | {"windows": len(result["timelines"]["artifact"]["time"]),
                                               "top1_agreement": 1.0, "disagreements": 0, "near_ties": 0} \
        == result["tasks"]["stream_labels"]
    decodes = result["tasks"]["decode_events"]
    assert decodes["reference_decodes"] == decodes["candidate_decodes"] >= 1 and decodes["mean_offset_s"] == 0
    timelines = result["timelines"]
    assert len(timelines["reference"]["change"]) == len(timelines["artifact"]["change"]) > 20
    np.testing.assert_allclose(timelines["reference"]["change"], timelines["artifact"]["change"], atol=1e-4)
    html = (tmp_path / "report" / "report.html").read_text()
    assert "Parity PASS" in html and html.count("<svg") == 1 and "x_encoder.visual_tokens" in html
    svg = html.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert ">reference<" in svg and ">artifact<" in svg  # both sides' curves and decode rows, labelled


def test_parity_fails_against_a_perturbed_reference(capsys, tmp_path, artifact, video, labels):
    other = tmp_path / "other.safetensors"
    save_checkpoint(build_model(CFG, seed=5), other, CFG)
    code, out, _ = run(capsys, parity, "--artifacts", artifact, "--video", video, "--labels", labels,
                       *FAST_PARITY, "--checkpoint", other, "--out", tmp_path / "report")
    assert code == 1 and "PARITY FAILED" in out and "x_encoder.visual_tokens (fp32): max_abs" in out
    assert json.loads((tmp_path / "report" / "parity.json").read_text())["status"] == "fail"


def test_parity_holds_the_manifest_tolerances(capsys, tmp_path, artifact, video, labels):
    strict = copy(artifact, tmp_path)
    edit_manifest(strict, lambda m: m["tolerances"]["tensor"]["fp32"].update(max_abs=1e-12))
    code, out, _ = run(capsys, parity, "--artifacts", strict, "--video", video, "--labels", labels,
                       *FAST_PARITY, "--out", tmp_path / "report")
    assert code == 1 and "allowed at most 1e-12" in out


def test_parity_against_another_artifact(capsys, tmp_path, artifact, video, labels):
    twin = copy(artifact, tmp_path)
    code, out, err = run(capsys, parity, "--artifacts", artifact, "--video", video, "--labels", labels,
                         *FAST_PARITY, "--reference", twin, "--out", tmp_path / "report")
    assert code == 0, err
    result = json.loads((tmp_path / "report" / "parity.json").read_text())
    assert all(m["max_abs"] == 0 for r in result["tensors"].values() for m in r["outputs"].values())

    def make_foreign(m):  # a consistent artifact of another model
        m["model"]["config"]["embed_dim"] = 48
        m["contract_hash"] = build_contract(ModelConfig.from_dict(m["model"]["config"])).hash()

    edit_manifest(twin, make_foreign)
    code, _, err = run(capsys, parity, "--artifacts", artifact, "--video", video, "--reference", twin)
    assert_one_line_error(code, err, "needs contract hash")


def test_stream_and_parity_run_on_an_onnxruntime_artifact(capsys, tmp_path, tiny_onnx_fp32_artifact, video):
    code, onnx_artifact = tiny_onnx_fp32_artifact
    assert code == 0
    code, out, err = run(capsys, stream, "--artifacts", onnx_artifact, "--video", video, "--quiet",
                         "--events", tmp_path / "events.jsonl")
    assert code == 0, err
    assert "backend onnxruntime" in out and "windows/s" in out
    assert len(read_events(tmp_path / "events.jsonl")) > 20
    code, out, err = run(capsys, parity, "--artifacts", onnx_artifact, "--video", video, *FAST_PARITY,
                         "--out", tmp_path / "report")
    assert code == 0, out + err
    assert "parity      pass" in out and "F1 1.00" in out


def test_parity_help_explains_the_exit_status(capsys):
    with pytest.raises(SystemExit) as e:
        parity.main(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "Exit status 1 when the tolerances" in " ".join(out.split())


@pytest.mark.parametrize("version", [2, 0, None, "1"])
def test_reader_refuses_another_format_version(artifact, tmp_path, version):
    other = copy(artifact, tmp_path, format_version=version)
    expected = rf"artifact format version {re.escape(repr(version))}, this runtime reads version 1; re-export"
    with pytest.raises(ArtifactError, match=expected):
        Artifact(other)


def test_reader_reads_the_golden_file_by_method(artifact):
    golden = Artifact(artifact).golden()
    spec = build_contract(CFG)
    assert set(golden) == set(spec.methods)
    for method, sides in golden.items():
        assert set(sides["in"]) == {t.name for t in spec[method].inputs}
        assert set(sides["out"]) == {t.name for t in spec[method].outputs}


# --- faults a new user hit (issue 22) --------------------------------------------------------------

def test_parity_out_is_checked_before_any_work_and_never_overwritten(capsys, tmp_path, artifact, video,
                                                                      monkeypatch):
    monkeypatch.setattr(parity, "open_reference", lambda *a: pytest.fail("the reference was loaded"))
    (tmp_path / "file").write_text("x")
    code, _, err = run(capsys, parity, "--artifacts", artifact, "--video", video, "--out", tmp_path / "file")
    assert_one_line_error(code, err, "is a file, not a folder")
    report = tmp_path / "report"
    report.mkdir()
    (report / "parity.json").write_text("{}")
    code, _, err = run(capsys, parity, "--artifacts", artifact, "--video", video, "--out", report)
    assert_one_line_error(code, err, "already holds parity.json; choose another folder or pass --force")
    assert (report / "parity.json").read_text() == "{}"


def test_parity_verdict_puts_decodes_first_and_names_its_windows_and_near_ties(capsys, tmp_path, artifact,
                                                                                 video, labels):
    other = tmp_path / "other.safetensors"
    save_checkpoint(build_model(CFG, seed=5), other, CFG)
    code, out, _ = run(capsys, parity, "--artifacts", artifact, "--video", video, "--labels", labels,
                       "--checkpoint", other, "--out", tmp_path / "report")  # default --windows: 100
    assert code == 1
    assert out.index("decodes     ") < out.index("labels      top-1")
    result = json.loads((tmp_path / "report" / "parity.json").read_text())
    stream_windows = result["tasks"]["stream_labels"]["windows"]
    assert result["tasks"]["labels"]["windows"] < 100 < stream_windows or stream_windows < 100
    assert result["label_verdict"] == "stream_labels"  # fewer than 100 non-overlapping windows: all of them
    assert re.search(rf"top-1 label agreement [\d.]+% on {stream_windows} stream windows", out)
    assert "near-ties" in out
    assert "no task gate ran: the video has no ground truth" in out and "(reported, not gated)" in out


def test_near_ties_are_disagreements_within_the_measured_perturbation():
    from edge_vljepa.parity import agreement_text, disagreements, failures
    ref = np.array([[0.50, 0.49, 0.1], [0.9, 0.1, 0.0], [0.8, 0.2, 0.1], [0.9, 0.0, 0.0]])
    cand = ref + np.array([[-0.01, 0.01, 0], [0, 0, 0], [0, 0, 0], [-0.5, 0.5, 0]])
    found = disagreements(ref, cand)
    assert found["disagreements"] == 2 and found["near_ties"] == 1
    labels = {"windows": 4, "top1_agreement": 0.5, **found}
    assert failures({}, {}, {"labels": labels}, None) == []  # reported, not gated (issue 20)
    line = agreement_text(labels)
    assert line.startswith("top-1 label agreement 50.0% on 4 windows")
    assert "1 of the 2 disagreements are near-ties" in line
