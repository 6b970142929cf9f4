"""`python -m export.to_coreml` on the tiny preset: every method converts with each compression option,
the artifact's .mlpackage directories are integrity-checked, and Core ML says plainly that it runs only
on macOS. Nothing here executes a Core ML model: `predict` is macOS-only, so numerical parity is
"pending: run on a Mac"."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

from edge_vljepa.config import get_preset
from edge_vljepa.contract import build_contract
from edge_vljepa.models import build_model, method_modules
from export import pipeline, to_coreml
from runtimes.artifact import Artifact, ArtifactError, file_output_names, path_size
from runtimes.backends.coreml import CoreMLBackend

CFG = get_preset("tiny")
CONTRACT = build_contract(CFG)
# What each compression leaves in the ML program: weights as int8 with per-channel scales (iOS 18 op set:
# constexpr_blockwise_shift_scale; iOS 17: constexpr_affine_dequantize) or as 4-bit look-up tables.
COMPRESSED_OP = {("int8-weights", "18"): "constexpr_blockwise_shift_scale",
                 ("int8-weights", "17"): "constexpr_affine_dequantize",
                 ("palettize4", "18"): "constexpr_lut_to_dense"}


def examples(spec):
    return pipeline.as_args(spec, {t.name: t.example() for t in spec.inputs})


@pytest.fixture(scope="module")
def modules():
    return method_modules(build_model(CFG))


@pytest.fixture(scope="module")
def fp16_models(modules):
    """Every method converted once in fp16; the compression tests start from these."""
    return {spec.name: to_coreml.convert_method(modules[spec.name], spec, "fp16", examples(spec), "18")
            for spec in CONTRACT}


def input_dtypes(mlmodel, op_type: str) -> set[str]:
    from coremltools.converters.mil.mil import types
    return {types.builtin_to_string(op.inputs["x"].dtype)
            for op in mlmodel._mil_program.functions["main"].operations if op.op_type == op_type}


def test_fp32_and_fp16_conversion_of_every_method(modules, fp16_models):
    for spec in CONTRACT:
        fp32 = to_coreml.convert_method(modules[spec.name], spec, "fp32", examples(spec), "17")
        for mlmodel in (fp32, fp16_models[spec.name]):
            description = mlmodel.get_spec().description
            assert [i.name for i in description.input] == [t.name for t in spec.inputs]
            assert [o.name for o in description.output] == file_output_names(spec)
        assert input_dtypes(fp32, "linear") == {"fp32"}
        # fp16 compute, with softmax and the norms' rsqrt kept in fp32
        assert "fp16" in input_dtypes(fp16_models[spec.name], "linear")
        assert input_dtypes(fp16_models[spec.name], "softmax") == {"fp32"}
        assert input_dtypes(fp16_models[spec.name], "rsqrt") == {"fp32"}


@pytest.mark.parametrize("mode,ios", sorted(COMPRESSED_OP))
def test_weight_compression_of_every_method(fp16_models, tmp_path, mode, ios):
    for spec in CONTRACT:
        mlmodel = fp16_models[spec.name]
        if ios == "17":  # the iOS 17 op set: convert again for that target
            module = method_modules(build_model(CFG))[spec.name]
            mlmodel = to_coreml.convert_method(module, spec, "fp16", examples(spec), ios)
        compressed = to_coreml.compress(mlmodel, mode)
        assert to_coreml.op_counts(compressed).get(COMPRESSED_OP[mode, ios], 0) > 0, spec.name
        for model, name in ((mlmodel, "plain"), (compressed, mode)):
            with pipeline.quiet():
                model.save(str(tmp_path / f"{spec.name}.{name}.mlpackage"))
        assert path_size(tmp_path / f"{spec.name}.{mode}.mlpackage") < path_size(
            tmp_path / f"{spec.name}.plain.mlpackage"), spec.name


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    out = tmp_path_factory.mktemp("coreml") / "tiny-coreml"
    code = to_coreml.main(["--preset", "tiny", "--calibration-windows", "1", "--out", str(out),
                           "--quant", "fp16", "--quant-component", "predictor=palettize4",
                           "--quant-component", "y_decoder=int8-weights"])
    return code, out


def test_artifact_records_sizes_ops_and_parity_pending(artifact):
    code, out = artifact
    assert code == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["target"] == "coreml" and m["contract_hash"] == CONTRACT.hash()
    assert m["parity"]["status"].startswith("pending: run on a Mac: python -m export.to_coreml --parity-only")
    for spec in CONTRACT:
        info = m["components"][spec.component]
        file = info["method_files"][spec.name]
        assert file == f"{spec.name}.mlpackage" and (out / file).is_dir()
        assert m["files"][file]["size"] == path_size(out / file) and info["ios"] == "18"
        assert sum(info["ops"][spec.name].values()) > 0
    assert m["components"]["predictor"]["quant"] == "palettize4"
    assert "constexpr_lut_to_dense" in m["components"]["predictor"]["ops"]["predictor"]
    Artifact(out)  # every .mlpackage's tree hash verifies


def test_mlpackage_tree_hash_detects_changed_added_and_removed_files(artifact, tmp_path):
    _, out = artifact
    for change in ("modify", "add", "remove"):
        copy = tmp_path / change
        shutil.copytree(out, copy)
        weights = next((copy / "predictor.mlpackage").rglob("weight.bin"))
        if change == "modify":
            data = bytearray(weights.read_bytes())
            data[len(data) // 2] ^= 0xFF
            weights.write_bytes(bytes(data))
        elif change == "add":
            (weights.parent / "extra.bin").write_bytes(b"x")
        else:
            weights.unlink()
        with pytest.raises(ArtifactError, match="predictor.mlpackage does not match its sha256"):
            Artifact(copy)


@pytest.mark.skipif(sys.platform == "darwin", reason="checks the message Core ML gives off macOS")
def test_coreml_backend_and_parity_only_say_it_runs_only_on_macos(artifact, capsys):
    _, out = artifact
    with pytest.raises(ArtifactError, match=r"Core ML runs only on macOS .* python -m export.to_coreml "
                                            r"--parity-only"):
        CoreMLBackend(Artifact(out))
    assert to_coreml.main(["--parity-only", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: pending: run on a Mac") and str(out) in err


def test_coreml_backend_refuses_another_target(artifact, tmp_path):
    _, out = artifact
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    m = json.loads((copy / "manifest.json").read_text()) | {"target": "onnxruntime"}
    (copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match="not a coreml one"):
        CoreMLBackend(Artifact(copy))


def test_palettization_needs_ios18_and_unknown_modes_are_refused(tmp_path, capsys):
    base = ["--preset", "tiny", "--out", str(tmp_path / "out")]
    assert to_coreml.main([*base, "--quant", "palettize4", "--ios", "17"]) == 2
    assert "--ios 18" in capsys.readouterr().err and not (tmp_path / "out").exists()
    with pytest.raises(SystemExit) as e:
        to_coreml.main([*base, "--quant", "int8"])  # static int8 activations need calibration on a Mac
    assert e.value.code == 2
