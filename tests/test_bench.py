"""experiments.bench: contract-shaped inputs and clear refusals (timings themselves are never asserted)."""

from __future__ import annotations

import json

import numpy as np
import torch

from edge_vljepa.config import get_preset
from edge_vljepa.contract import build_contract
from edge_vljepa.models import build_model, method_modules
from experiments import bench, bench_gpu, host


def test_example_inputs_follow_the_contract_and_run_every_method():
    cfg = get_preset("tiny")
    modules = method_modules(build_model(cfg).eval())
    for spec in build_contract(cfg):
        args = bench_gpu.example_inputs(spec, torch.float16, "cpu")
        for t, a in zip(spec.inputs, args, strict=True):
            assert tuple(a.shape) == t.shape
            assert a.dtype == (torch.int64 if t.dtype == "int64" else torch.float16)
            if "mask" in t.name:
                assert bool((a == 1).all())
        with torch.inference_mode():
            out = modules[spec.name](*[a.float() if a.is_floating_point() else a for a in args])
        first = out[0] if isinstance(out, tuple) else out
        assert np.isfinite(first.numpy()).all()


def test_machine_line_names_the_cpu_generation_and_its_simd_extensions(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    core = ("processor\t: {}\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
            "model name\t: AMD EPYC\nflags\t\t: fpu sse avx avx2 fma avx512f avx512_vnni\n\n")
    cpuinfo.write_text(core.format(0) + core.format(1))
    name = host.cpu_name(cpuinfo)
    assert name.startswith("AMD EPYC (family 25 model 17; avx2, avx512f; int8 dot product: avx512_vnni; "
                           "without avx_vnni, amx_int8; 2 cores)")
    cpuinfo.write_text(core.format(0).replace(" avx2 fma avx512f avx512_vnni", ""))
    assert ("(family 25 model 17; none of avx2/avx512f; int8 dot product: none; without avx_vnni, "
            "avx512_vnni, amx_int8; 1 cores)") in host.cpu_name(cpuinfo)


def test_gpu_command_refuses_a_machine_without_cuda(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bench.main(["gpu", "--preset", "tiny"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err


def test_artifacts_report_has_every_section(tiny_fp32_artifact, tiny_onnx_fp32_artifact, tmp_path):
    (status, artifact), (onnx_status, onnx_artifact) = tiny_fp32_artifact, tiny_onnx_fp32_artifact
    assert status == onnx_status == 0
    out = tmp_path / "bench"
    assert bench.main(["artifacts", "--artifacts", str(artifact), str(onnx_artifact), "--skip-rss",
                       "--stream-minutes", "0.25", "--long-minutes", "0.25", "--out", str(out),
                       "--name", "tiny"]) == 0
    report = (out / "tiny.md").read_text()
    for section in ("## Per component", "## Quality", "## Streaming", "## Memory over a long run"):
        assert section in report
    # the quality table's row: the task gate did not run (random weights), the tensor gates passed
    quality = [line for line in report.splitlines() if line.startswith("| executorch xnnpack fp32 | ")
               and line.count("|") == 8]
    assert len(quality) == 1 and "| not run: random weights |" in quality[0]
    assert quality[0].endswith("| pass |")
    rows = [line for line in report.splitlines() if line.startswith("| executorch xnnpack fp32 | x_encoder")]
    assert len(rows) == 1
    # timed side by side in the same run: ratios to eager fp32 and to ONNX Runtime fp32 are numbers
    assert float(rows[0].split("|")[6]) > 0 and float(rows[0].split("|")[7]) > 0
    assert "| onnxruntime fp32 | x_encoder |" in report
    for policy in ("uniform", "offline_segments", "online", "changepoint"):
        assert f"| pytorch eager fp32 | {policy} |" in report
    assert (out / "tiny.png").stat().st_size > 10_000
    data = json.loads((out / "tiny.json").read_text())  # the same figures as data, with command and machine
    assert data["command"].startswith("python -m experiments.bench artifacts") and "cpu" in data["machine"]
    medians = {(r["variant"], r["method"]): r["median"] for r in data["figures"]["latency_ms"]}
    assert medians[("executorch xnnpack fp32", "x_encoder")] > 0
    assert {r["policy"] for r in data["figures"]["streaming"]} == {"uniform", "offline_segments", "online",
                                                                  "changepoint"}


def test_artifacts_command_refuses_a_directory_that_is_not_an_artifact(tmp_path, capsys):
    assert bench.main(["artifacts", "--artifacts", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "manifest.json not found" in capsys.readouterr().err


def test_an_out_that_cannot_be_written_is_refused_before_any_measurement(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert bench.main(["artifacts", "--artifacts", str(tmp_path), "--out", str(tmp_path / "file" / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out: ") and "is a file, not a folder" in err
