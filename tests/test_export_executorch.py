"""`python -m export.to_executorch` on the tiny preset: artifacts load and run in the ExecuTorch runtime."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_vljepa.config import ModelConfig, get_preset
from edge_vljepa.contract import build_contract
from edge_vljepa.models import build_model
from edge_vljepa.parity import TOLERANCES
from edge_vljepa.recording import reference_components
from edge_vljepa.weights import save_checkpoint
from export import to_executorch
from export.reference import default_labels
from runtimes.artifact import Artifact, ArtifactError, file_sha256
from runtimes.backends.executorch import ExecuTorchBackend
from tests.conftest import FAST_EXPORT

CFG = get_preset("tiny")


def export(out, *extra):
    return to_executorch.main([*FAST_EXPORT, "--out", str(out), *extra])


@pytest.fixture
def fp32(tiny_fp32_artifact):
    return tiny_fp32_artifact


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    out = tmp_path_factory.mktemp("et") / "tiny-mixed"
    code = export(out, "--quant", "int8", "--quant-component", "predictor=8da4w",
                  "--quant-component", "y_encoder=int8-dynamic", "--quant-component", "y_decoder=fp16")
    return code, out


def manifest(out):
    return json.loads((out / "manifest.json").read_text())


def test_fp32_artifact_is_complete_and_matches_eager(fp32):
    code, out = fp32
    assert code == 0
    m = manifest(out)
    assert m["contract_hash"] == build_contract(CFG).hash() and m["target"] == "executorch"
    assert ModelConfig.from_dict(m["model"]["config"]) == CFG
    for name, info in m["files"].items():
        assert file_sha256(out / name) == info["sha256"] and (out / name).stat().st_size == info["size"]
    assert set(m["components"]) == {"x_encoder", "predictor", "y_encoder", "y_decoder"}
    assert m["components"]["y_decoder"]["methods"] == ["y_decoder_prefill", "y_decoder_step"]
    assert all(c["quant"] == "fp32" and c["delegate"] == "xnnpack" for c in m["components"].values())
    # the hot path is one delegated subgraph: nothing but tuple unpacking left to portable kernels
    assert set(m["components"]["x_encoder"]["delegation"]["x_encoder"]["portable_ops"]) <= {"getitem"}
    assert m["parity"]["status"] == "pass" and m["tolerances"]["tensor"] == {"fp32": TOLERANCES["fp32"]}
    for method, result in m["parity"]["tensors"].items():
        assert result["calls"] > 0, method
        for name, metric in result["outputs"].items():
            assert metric["max_abs"] <= 1e-4, (method, name, metric)
    labels = m["parity"]["tasks"]["labels"]
    assert labels["windows"] == 4
    assert labels["top1_agreement"] >= 0.95 and labels["own_bank_top1_agreement"] >= 0.95
    assert m["parity"]["tasks"]["decode_events"]["f1"] >= 0.95
    bank = np.load(out / "label_bank.npz")
    assert len(bank["labels"]) == bank["embeddings"].shape[0] == len(default_labels(CFG)) == 656


def test_golden_self_test_reproduces_in_the_runtime(fp32):
    _, out = fp32
    backend = ExecuTorchBackend(Artifact(out))
    golden = np.load(out / "golden.npz")
    for spec in build_contract(CFG):
        outputs = backend.run(spec.name, {t.name: golden[f"{spec.name}.in.{t.name}"] for t in spec.inputs})
        for t in spec.outputs:
            np.testing.assert_allclose(outputs[t.name], golden[f"{spec.name}.out.{t.name}"], atol=1e-4)


def test_mixed_quantization_meets_tensor_tolerances(mixed):
    code, out = mixed
    m = manifest(out)
    quant = {c: info["quant"] for c, info in m["components"].items()}
    assert quant == {"x_encoder": "int8", "predictor": "8da4w", "y_encoder": "int8-dynamic",
                     "y_decoder": "fp16"}
    x_encoder_size = m["files"][m["components"]["x_encoder"]["file"]]["size"]
    assert x_encoder_size < 0.5 * 4 * 124_736  # int8 weights: well under the fp32 parameter bytes
    contract = build_contract(CFG)
    for method, result in m["parity"]["tensors"].items():
        bound = TOLERANCES[quant[contract[method].component]]["cosine"]
        for name, metric in result["outputs"].items():
            assert metric["cosine"] >= bound, (method, name, metric)
    # Random weights have no tasks to lose: label agreement and decode events are reported, the task gate
    # does not run (it says why), and the export passes on its tensor gates (issue 20).
    tasks = m["parity"]["tasks"]
    assert 0 <= tasks["labels"]["top1_agreement"] <= 1 and tasks["decode_events"]["candidate_decodes"] >= 0
    assert tasks["random_weights"] and tasks["task_gate"]["not_run"].startswith("random weights")
    assert code == 0 and m["parity"]["failures"] == []


def test_coreml_lowers_but_parity_is_not_run_here(tmp_path):
    assert export(tmp_path / "coreml", "--backend", "coreml", "--calibration-windows", "1") == 0
    m = manifest(tmp_path / "coreml")
    assert m["parity"]["status"].startswith("not run on this host")
    assert all(c["delegate"] == "coreml" for c in m["components"].values())


@pytest.mark.parametrize("args,message", [
    (["--quant-component", "decoder=int8"], "expected COMPONENT=MODE"),
    (["--quant-component", "predictor=int3"], "expected COMPONENT=MODE"),
    (["--backend", "coreml", "--quant", "int8"], "supports fp32 and fp16 here"),
    (["--backend", "qnn"], "QNN_SDK_ROOT"),
])
def test_bad_input_is_refused_before_any_work(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.delenv("QNN_SDK_ROOT", raising=False)
    assert export(tmp_path / "out", *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and not (tmp_path / "out").exists()


def test_unknown_backend_and_quant_are_argparse_errors(tmp_path):
    for args in (["--backend", "tpu"], ["--quant", "int2"]):
        with pytest.raises(SystemExit) as e:
            export(tmp_path / "out", *args)
        assert e.value.code == 2


def test_non_empty_out_is_refused_without_force(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("user data")
    assert export(tmp_path / "out") == 2
    assert "--force" in capsys.readouterr().err and (tmp_path / "out" / "keep.txt").read_text() == "user data"


def test_checkpoint_that_does_not_fit_lists_differences(tmp_path, capsys):
    other = ModelConfig.from_dict({**CFG.to_dict(), "embed_dim": 48})
    save_checkpoint(build_model(other), tmp_path / "other.safetensors", other)
    assert export(tmp_path / "out", "--checkpoint", str(tmp_path / "other.safetensors")) == 2
    assert "embed_dim: checkpoint 48, preset 32" in capsys.readouterr().err


def test_failure_half_way_leaves_nothing_that_looks_complete(tmp_path, monkeypatch, capsys):
    real = to_executorch.lower_component

    def fail_on_predictor(model, component, *args):
        if component == "predictor":
            raise to_executorch.ExportError("simulated lowering failure")
        return real(model, component, *args)

    monkeypatch.setattr(to_executorch, "lower_component", fail_on_predictor)
    assert export(tmp_path / "out", "--no-parity", "--calibration-windows", "1") == 2
    assert "simulated lowering failure" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no --out, no partial directory


def test_runtime_refuses_tampered_or_foreign_artifacts(fp32, tmp_path):
    _, out = fp32
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    data = bytearray((copy / "predictor.pte").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "predictor.pte").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="predictor.pte does not match its sha256"):
        Artifact(copy)
    m = manifest(out)
    m["model"]["config"]["embed_dim"] = 48  # claims another model than its contract hash
    (copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match="contract hash"):
        Artifact(copy)


def test_partial_artifact_holds_only_the_chosen_components_and_benchmarks(tmp_path):
    from experiments import bench
    out = tmp_path / "x-only"
    assert export(out, "--components", "x_encoder", "--quant", "int8") == 0
    m = manifest(out)
    assert list(m["components"]) == ["x_encoder"] and "label_bank" not in m
    assert set(m["parity"]["tensors"]) == {"x_encoder"} and m["parity"]["tasks"] == {}
    cosine = m["parity"]["tensors"]["x_encoder"]["outputs"]["visual_tokens"]["cosine"]
    assert cosine >= TOLERANCES["int8"]["cosine"]
    with np.load(out / "golden.npz") as g:
        assert {k.split(".")[0] for k in g.files} == {"x_encoder"}
    with pytest.raises(ArtifactError, match="predictor"):
        spec = build_contract(CFG)["predictor"]
        ExecuTorchBackend(Artifact(out)).run("predictor", {t.name: t.example() for t in spec.inputs})
    assert bench.main(["artifacts", "--artifacts", str(out), "--skip-rss", "--out", str(tmp_path / "b"),
                       "--name", "x"]) == 0
    report = (tmp_path / "b" / "x.md").read_text()
    assert "| executorch xnnpack int8 | x_encoder |" in report and "| predictor |" not in report
    assert "Not run: the artifacts hold x_encoder only" in report


@pytest.mark.parametrize(("exported", "needed"), [
    (["x_encoder"], {"x_encoder"}),
    (["y_encoder"], {"y_encoder"}),
    (["predictor"], {"x_encoder", "predictor", "y_encoder"}),  # its inputs and the label bank
    (["y_decoder"], {"x_encoder", "predictor", "y_decoder", "y_encoder"}),
])
def test_a_partial_export_keeps_only_the_reference_components_it_runs(exported, needed):
    assert reference_components(exported) == needed


def test_a_released_reference_component_refuses_to_run():
    from runtimes.backends.pytorch import PyTorchBackend
    backend = PyTorchBackend(CFG)
    backend.release(["predictor", "y_decoder"])
    assert backend.model.predictor is None and backend.model.y_decoder is None
    contract = build_contract(CFG)
    with pytest.raises(RuntimeError, match="released"):
        backend.run("predictor", {t.name: t.example() for t in contract["predictor"].inputs})
    out = backend.run("x_encoder", {t.name: t.example() for t in contract["x_encoder"].inputs})
    assert out["visual_tokens"].shape == contract["x_encoder"].outputs[0].shape


def test_quant_override_of_a_left_out_component_is_refused(tmp_path, capsys):
    assert export(tmp_path / "out", "--components", "x_encoder", "--quant-component", "predictor=int8") == 2
    assert "--components leaves out" in capsys.readouterr().err


def test_paper_tokenizers_are_required_for_real_weights_and_stand_in_for_random_ones(tmp_path):
    from export.artifact import ExportError
    from export.pipeline import parse_tokenizers
    from export.reference import with_tokenizers
    paper = get_preset("paper")
    with pytest.raises(ExportError, match="--tokenizer llama3=PATH"):
        with_tokenizers(paper, {}, random_weights=False)
    cfg, notes = with_tokenizers(paper, {}, random_weights=True)
    assert [cfg.predictor.tokenizer, cfg.y_encoder.tokenizer, cfg.y_decoder.tokenizer] == ["minilm"] * 3
    assert len(notes) == 3 and all("stands in" in n for n in notes)
    folder = tmp_path / "Llama-3.2-1B"
    folder.mkdir()
    (folder / "tokenizer.json").write_text("{}")
    cfg, notes = with_tokenizers(paper, parse_tokenizers([f"llama3={folder}"]), random_weights=True)
    assert cfg.predictor.tokenizer == str(folder) and cfg.y_encoder.tokenizer == "minilm" and len(notes) == 1
    for bad in ("llama3", "llama3=", "=x"):
        with pytest.raises(ExportError, match="expected NAME=PATH"):
            parse_tokenizers([bad])
