"""`python -m export.to_onnx` on the tiny preset: ONNX and .ort files load and run in ONNX Runtime and match
eager PyTorch per precision; the Jetson script plans exact TensorRT commands from an artifact."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap

import numpy as np
import onnx
import pytest

from edge_vljepa.config import get_preset
from edge_vljepa.contract import build_contract
from edge_vljepa.parity import TOLERANCES
from export import jetson_trt, to_onnx
from runtimes.artifact import Artifact, ArtifactError, file_sha256
from runtimes.backends.onnxruntime import OnnxRuntimeBackend

CFG = get_preset("tiny")
CONTRACT = build_contract(CFG)
FAST = ["--preset", "tiny", "--calibration-windows", "2", "--parity-windows", "4"]


def export(out, *extra):
    return to_onnx.main([*FAST, "--out", str(out), *extra])


def manifest(out):
    return json.loads((out / "manifest.json").read_text())


@pytest.fixture(scope="module")
def fp32(tiny_onnx_fp32_artifact):
    return tiny_onnx_fp32_artifact


@pytest.fixture(scope="module")
def fp16(tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "tiny-fp16"
    return export(out, "--quant", "fp16"), out


@pytest.fixture(scope="module")
def int8(tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "tiny-int8"
    # static ranges from 2 windows (FAST_EXPORT) missed held-out ones (x_encoder cosine 0.983); 8 hold
    return export(out, "--quant", "int8", "--quant-component", "y_encoder=int8-dynamic", "--no-ort",
                  "--calibration-windows", "8"), out


def worst(m, method, metric):
    values = [o[metric] for o in m["parity"]["tensors"][method]["outputs"].values()]
    return max(values) if metric == "max_abs" else min(values)


def test_fp32_files_pass_the_checker_and_match_eager_for_every_method(fp32):
    code, out = fp32
    assert code == 0
    m = manifest(out)
    assert m["target"] == "onnxruntime" and m["contract_hash"] == CONTRACT.hash()
    assert m["components"]["y_decoder"]["method_files"] == {"y_decoder_prefill": "y_decoder_prefill.onnx",
                                                            "y_decoder_step": "y_decoder_step.onnx"}
    for spec in CONTRACT:
        path = Artifact(out).method_file(spec.name)
        onnx.checker.check_model(str(path), full_check=True)
        graph = onnx.load(str(path)).graph
        assert [i.name for i in graph.input] == [t.name for t in spec.inputs]
        assert worst(m, spec.name, "max_abs") <= 1e-4, spec.name
    for name, info in m["files"].items():
        assert file_sha256(out / name) == info["sha256"]
    assert m["parity"]["status"] == "pass" and m["tolerances"]["tensor"] == {"fp32": TOLERANCES["fp32"]}
    assert m["parity"]["tasks"]["labels"]["top1_agreement"] >= 0.95
    assert m["parity"]["tasks"]["decode_events"]["f1"] >= 0.95
    assert set(m["parity"]["latency_ms"]) == {"threads", "load_average", "reliable", *CONTRACT.methods}


def test_golden_self_test_in_onnx_and_mobile_ort_formats(fp32):
    _, out = fp32
    m = manifest(out)
    config = (out / m["ort_required_operators"]).read_text()
    assert "MatMul" in config and str(out.parent) not in config and ".partial-" not in config
    golden = np.load(out / "golden.npz")
    for model_format in ("onnx", "ort"):
        backend = OnnxRuntimeBackend(Artifact(out), model_format=model_format)
        for spec in CONTRACT:
            inputs = {t.name: golden[f"{spec.name}.in.{t.name}"] for t in spec.inputs}
            outputs = backend.run(spec.name, inputs)
            for t in spec.outputs:
                np.testing.assert_allclose(outputs[t.name], golden[f"{spec.name}.out.{t.name}"], atol=1e-4)


def elem_types(path) -> dict[str, int]:
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    values = [*model.graph.input, *model.graph.value_info, *model.graph.output]
    return {v.name: v.type.tensor_type.elem_type for v in values}


def test_fp16_keeps_norms_and_softmax_in_fp32_and_meets_cosine(fp16):
    code, out = fp16
    m = manifest(out)
    assert code == (1 if m["parity"]["failures"] else 0)
    for spec in CONTRACT:
        assert worst(m, spec.name, "cosine") >= TOLERANCES["fp16"]["cosine"], spec.name
    path = out / "x_encoder.onnx"
    types, nodes = elem_types(path), onnx.load(str(path)).graph.node
    assert all(types[n.input[0]] == onnx.TensorProto.FLOAT for n in nodes if n.op_type == "Softmax")
    assert any(types.get(n.input[0]) == onnx.TensorProto.FLOAT16 for n in nodes if n.op_type == "MatMul")
    assert all(c["quant"] == "fp16" for c in m["components"].values())
    # no .ort for fp16: converting here would bake in fp32 casts and weights (see to_onnx.convert_to_ort)
    assert not list(out.glob("*.ort")) and "ort_required_operators" not in m


def test_int8_is_s8s8_qdq_on_linear_layers_and_meets_cosine(int8):
    code, out = int8
    m = manifest(out)
    quant = {c: info["quant"] for c, info in m["components"].items()}
    assert quant == {"x_encoder": "int8", "predictor": "int8", "y_encoder": "int8-dynamic",
                     "y_decoder": "int8"}
    for spec in CONTRACT:
        assert worst(m, spec.name, "cosine") >= TOLERANCES[quant[spec.component]]["cosine"], spec.name
        assert m["components"][spec.component]["graph"][spec.name]["quantized_nodes"] > 0
        assert "ort_files" not in m["components"][spec.component]  # --no-ort
    model = onnx.load(str(out / "x_encoder.onnx"))
    zero_points = {i.name: i for i in model.graph.initializer}
    q = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert q and all(zero_points[n.input[2]].data_type == onnx.TensorProto.INT8 for n in q)  # S8 activations
    assert all(onnx.numpy_helper.to_array(zero_points[n.input[2]]).max() == 0 for n in q)  # symmetric
    softmax_inputs = {n.input[0] for n in model.graph.node if n.op_type == "Softmax"}
    assert not softmax_inputs & {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    for method in ("x_encoder", "y_encoder"):  # static and dynamic: 7-bit weights (to_onnx: reduce_range)
        graph = onnx.load(str(out / f"{method}.onnx")).graph
        weights = [onnx.numpy_helper.to_array(t) for t in graph.initializer
                   if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 2]
        assert weights and max(int(np.abs(w.astype(int)).max()) for w in weights) <= 64, method
    # As in test_export_executorch: random weights, no task gate; the tensor gates decide (issue 20).
    labels = m["parity"]["tasks"]["labels"]["top1_agreement"]
    assert 0 <= labels <= 1 and m["parity"]["tasks"]["task_gate"]["not_run"].startswith("random weights")
    assert code == 0 and m["parity"]["failures"] == []


def test_tampered_truncated_or_foreign_files_give_clear_errors(fp32, tmp_path, monkeypatch):
    _, out = fp32
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    data = (copy / "predictor.onnx").read_bytes()
    (copy / "predictor.onnx").write_bytes(data[: len(data) // 3])
    with pytest.raises(ArtifactError, match="predictor.onnx does not match its sha256"):
        Artifact(copy)
    backend = OnnxRuntimeBackend(Artifact(copy, verify=False))  # corrupted but not caught by the manifest
    golden = np.load(copy / "golden.npz")
    inputs = {t.name: golden[f"predictor.in.{t.name}"] for t in CONTRACT["predictor"].inputs}
    with pytest.raises(ArtifactError, match="cannot load .*predictor.onnx as an ONNX Runtime model"):
        backend.run("predictor", inputs)
    m = manifest(out) | {"target": "executorch"}
    (copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match="not an onnxruntime one"):
        OnnxRuntimeBackend(Artifact(copy, verify=False))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ArtifactError, match="onnxruntime is not installed"):
        OnnxRuntimeBackend(Artifact(out))


@pytest.mark.parametrize("args,message", [
    (["--quant-component", "predictor=8da4w"], "expected COMPONENT=MODE"),
    (["--opset", "12"], "--opset 12"),
])
def test_bad_input_is_refused_before_any_work(tmp_path, capsys, args, message):
    assert export(tmp_path / "out", *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and not (tmp_path / "out").exists()


def test_missing_out_unknown_quant_and_non_empty_out(tmp_path, capsys):
    assert to_onnx.main(FAST) == 2 and "--out is required" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        export(tmp_path / "out", "--quant", "8da4w")  # an ExecuTorch mode, not an ONNX one
    assert e.value.code == 2
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("user data")
    assert export(tmp_path / "out") == 2
    assert "--force" in capsys.readouterr().err and (tmp_path / "out" / "keep.txt").read_text() == "user data"


def test_failure_half_way_is_one_line_and_leaves_nothing_that_looks_complete(tmp_path, monkeypatch, capsys):
    real = to_onnx.export_method

    def fail_on_predictor(module, spec, *args):
        if spec.name == "predictor":
            raise RuntimeError("simulated converter failure\n  deep library detail")
        return real(module, spec, *args)

    monkeypatch.setattr(to_onnx, "export_method", fail_on_predictor)
    assert export(tmp_path / "out", "--no-parity", "--calibration-windows", "1") == 2
    err = capsys.readouterr().err
    assert ("error: predictor: the onnxruntime conversion failed: RuntimeError: simulated converter failure\n"
            in err) and "deep library detail" not in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_parity_only_reruns_parity_of_an_existing_artifact(fp32, tmp_path, capsys):
    _, out = fp32
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    m = manifest(copy)
    m["parity"] = {"status": "stale"}
    (copy / "manifest.json").write_text(json.dumps(m))
    assert to_onnx.main(["--parity-only", str(copy), "--parity-windows", "2"]) == 0
    again = manifest(copy)
    assert again["parity"]["status"] == "pass" and again["parity"]["tasks"]["labels"]["windows"] == 2
    assert "parity      pass" in capsys.readouterr().out
    Artifact(copy)  # the files are untouched: still verify


def test_jetson_dry_run_plans_trtexec_with_contract_shapes(fp32, tmp_path, capsys):
    _, out = fp32
    assert jetson_trt.main([str(out), "--out", str(tmp_path / "trt"), "--dry-run"]) == 0
    script = (tmp_path / "trt" / "commands.sh").read_text()
    assert capsys.readouterr().out.startswith(script)
    golden = np.load(out / "golden.npz")
    for spec in CONTRACT:
        assert f"--onnx={out / (spec.name + '.onnx')}" in script and "--stronglyTyped" in script
        for t in spec.inputs:
            assert f"{t.name} {'x'.join(map(str, t.shape))} {t.dtype}" in script
            data = np.fromfile(tmp_path / "trt" / "inputs" / f"{spec.name}.{t.name}.bin", dtype=t.dtype)
            np.testing.assert_array_equal(data.reshape(t.shape), golden[f"{spec.name}.in.{t.name}"])
    assert "--shapes" not in script  # trtexec refuses --shapes for static models


def test_jetson_refuses_dynamic_int8_and_a_missing_trtexec(int8, fp32, tmp_path, capsys):
    assert jetson_trt.main([str(int8[1]), "--out", str(tmp_path / "a"), "--dry-run"]) == 2
    assert "MatMulInteger" in capsys.readouterr().err
    assert jetson_trt.main([str(fp32[1]), "--out", str(tmp_path / "b"), "--trtexec", "/nonexistent"]) == 2
    assert "trtexec not found" in capsys.readouterr().err


FAKE_TRTEXEC = """\
    import json, shutil, sys
    import numpy as np, onnxruntime as ort
    # A stand-in for trtexec (not installable here): "engines" are the ONNX files, run by ONNX Runtime,
    # with trtexec's flags and its --exportOutput JSON format, so the parsing and comparison are tested.
    opts = dict(a[2:].split("=", 1) for a in sys.argv[1:] if "=" in a)
    if "saveEngine" in opts:
        shutil.copyfile(opts["onnx"], opts["saveEngine"])
        sys.exit(0)
    session = ort.InferenceSession(opts["loadEngine"])
    files = dict(item.split(":", 1) for item in opts["loadInputs"].split(","))
    types = {"tensor(float)": np.float32, "tensor(int64)": np.int64}
    feeds = {i.name: np.fromfile(files[f"'{i.name}'"], types[i.type]).reshape(i.shape)
             for i in session.get_inputs()}
    outputs = session.run(None, feeds)
    json.dump([{"name": o.name, "dimensions": "x".join(map(str, v.shape)), "values": v.ravel().tolist()}
               for o, v in zip(session.get_outputs(), outputs)], open(opts["exportOutput"], "w"))
    print("[I] GPU Compute Time: min = 0.1 ms, max = 0.3 ms, mean = 0.2 ms, median = 0.2 ms, "
          "percentile(90%) = 0.3 ms")
"""


def test_jetson_parity_parses_trtexec_outputs(fp32, tmp_path, capsys):
    _, out = fp32
    fake = tmp_path / "trtexec"
    fake.write_text(f"#!{sys.executable}\n" + textwrap.dedent(FAKE_TRTEXEC))
    fake.chmod(0o755)
    assert jetson_trt.main([str(out), "--out", str(tmp_path / "trt"), "--trtexec", str(fake)]) == 0
    report = json.loads((tmp_path / "trt" / "parity.json").read_text())
    assert report["status"] == "pass" and set(report["methods"]) == set(CONTRACT.methods)
    assert all(r["median_ms"] == 0.2 for r in report["methods"].values())
    assert "parity      pass" in capsys.readouterr().out


@pytest.mark.parametrize("mode", ["int8-dynamic", "int8"])
def test_a_linear_on_a_2d_input_is_quantized_too(tmp_path, mode):
    """torch exports a Linear on a 2-D input (a pooled embedding's head) as Gemm, which ONNX Runtime's
    dynamic quantizer leaves in float; the exporter rewrites it as MatMul + Add first, and counts the nodes
    that really compute in int8."""
    import onnxruntime as ort
    import torch

    from edge_vljepa.contract import MethodSpec, TensorSpec
    from export.to_onnx import export_method
    torch.manual_seed(0)
    linear = torch.nn.Sequential(torch.nn.Linear(32, 64)).eval()
    x = np.random.default_rng(0).standard_normal((8, 32)).astype(np.float32)
    spec = MethodSpec("head", "predictor", (TensorSpec("x", (8, 32), "float32"),),
                      (TensorSpec("y", (8, 64), "float32"),))
    info = export_method(linear, spec, mode, [{"x": x}], tmp_path / "head.onnx", 18)
    assert info["quantized_nodes"] == 1 and "Gemm" not in info["ops"]
    if mode == "int8-dynamic":
        assert info["ops"]["MatMulInteger"] == 1
    y = ort.InferenceSession(str(tmp_path / "head.onnx")).run(None, {"x": x})[0]
    error = np.abs(y - linear(torch.from_numpy(x)).detach().numpy()).max()
    assert 0 < error < 0.05  # quantized (not bit-equal to fp32), and close
