"""experiments.int8_limit and the int8 parts of the bench report: this machine's int8 limit measured for
real on tiny shapes (fields present and positive; timings themselves are never asserted), the int8
dot-product extensions named from synthetic cpuinfo, and each int8 artifact's share of the limit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_vljepa.config import get_preset
from edge_vljepa.contract import build_contract
from experiments import bench, host, int8_limit
from experiments.bench import Variant
from experiments.bench_report import int8_section, int8_shares

ARM = ("processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes crc32 atomics asimddp sve\n"
       "CPU implementer\t: 0x41\nCPU part\t: 0xd40\n\n")


def test_machine_line_names_the_int8_dot_product_extensions_present_and_absent(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Intel Xeon\n"
                       "flags\t\t: avx2 avx512f avx512_vnni amx_int8\n")
    assert host.int8_dot_product(cpuinfo) == {"avx_vnni": False, "avx512_vnni": True, "amx_int8": True}
    assert "int8 dot product: avx512_vnni, amx_int8; without avx_vnni; 1 cores" in host.cpu_name(cpuinfo)
    cpuinfo.write_text(ARM + ARM.replace(": 0\n", ": 1\n", 1))  # Arm: Features, SDOT without I8MM
    assert host.int8_dot_product(cpuinfo) == {"asimddp": True, "i8mm": False}
    assert "(asimd, sve; int8 dot product: asimddp (SDOT); without i8mm (SMMLA); 2 cores)" in \
        host.cpu_name(cpuinfo)
    missing = tmp_path / "absent"  # macOS, Windows: no cpuinfo, nothing claimed
    assert host.int8_dot_product(missing) is None
    assert "int8 dot product unknown" in host.cpu_name(missing)


def test_model_shapes_are_the_x_encoders_mlp_at_its_token_count():
    x = get_preset("default").x_encoder
    fc1, fc2, square = int8_limit.model_shapes(get_preset("default"))
    assert (fc1.m, fc1.k, fc1.n) == (x.num_tokens, x.embed_dim, x.mlp_hidden)
    assert (fc2.m, fc2.k, fc2.n) == (x.num_tokens, x.mlp_hidden, x.embed_dim) and square.m == 1024
    assert int8_limit.parse_shape("8x32x64").ops == 2 * 8 * 32 * 64
    with pytest.raises(ValueError, match="three positive integers"):
        int8_limit.parse_shape("8x32")


def test_int8_limit_command_measures_every_library_for_real(tmp_path, capsys):
    out = tmp_path / "limit"
    assert bench.main(["int8-limit", "--shapes", "8x32x64", "--warmup", "1", "--runs", "3",
                       "--out", str(out)]) == 0
    data = json.loads((out / "int8-limit.json").read_text())
    assert data["command"].startswith("python -m experiments.bench int8-limit")
    assert set(data["machine"]["int8_dot_product"] or {}) <= {"avx_vnni", "avx512_vnni", "amx_int8",
                                                                "asimddp", "i8mm"}
    figures = data["figures"]
    rows = {(r["library"], r["precision"]): r for r in figures["rows"]}
    for key in [("executorch xnnpack", "int8-dynamic"), ("executorch xnnpack", "int8"),
                ("onnxruntime", "int8-dynamic"), ("onnxruntime", "int8"), ("pytorch fbgemm", "int8-dynamic"),
                ("executorch xnnpack", "fp32"), ("pytorch", "fp32")]:
        assert rows[key]["gops"] > 0 and rows[key]["median_ms"] > 0, key
    assert figures["limit_gops"] == max(r["gops"] for r in figures["rows"] if r["precision"] != "fp32")
    assert figures["fp32_peak_gflops"] > 0 and figures["int8_over_fp32"] > 0 and figures["fp32_best_gops"] > 0
    report = (out / "int8-limit.md").read_text()
    assert "| executorch xnnpack | int8-dynamic |" in report and "| onnxruntime | int8 |" in report
    assert "**Int8 limit:" in report and "int8 dot product" in report


def test_the_int8_limit_command_refuses_a_bad_shape(tmp_path, capsys):
    assert bench.main(["int8-limit", "--shapes", "8x32", "--out", str(tmp_path / "o")]) == 2
    assert "three positive integers" in capsys.readouterr().err


def test_each_int8_method_gets_its_share_of_the_limit():
    contract = build_contract(get_preset("tiny"))
    quant = {"x_encoder": "int8-dynamic", "predictor": "fp32", "y_encoder": "fp32", "y_decoder": "fp32"}
    variants = [Variant("pytorch eager fp32", "pytorch", dict.fromkeys(quant, "fp32"), None, {}),
                Variant("executorch xnnpack int8-dynamic", "executorch", quant, Path("a"), {})]
    methods = ["x_encoder", "predictor"]
    latency = {(v.name, m): [2.0, 2.0, 2.0] for v in variants for m in methods}
    flops = {"x_encoder": 0.4e9, "predictor": 0.1e9}
    shares = int8_shares(variants, methods, contract, latency, flops, limit=400.0)
    assert shares == [{"variant": "executorch xnnpack int8-dynamic", "method": "x_encoder",
                       "precision": "int8-dynamic", "median_ms": 2.0, "gops": 200.0, "share": 0.5}]
    limit = {"threads": 1, "rows": [{"library": "onnxruntime", "precision": "int8", "label": "8x32x64",
                                     "gops": 400.0, "median_ms": 1.0}],
             "limit": {"library": "onnxruntime", "precision": "int8", "label": "8x32x64", "gops": 400.0},
             "limit_gops": 400.0, "fp32_peak_gflops": 100.0, "int8_over_fp32": 4.0, "fp32_best_gops": None}
    text = "\n".join(int8_section(limit, shares))
    assert "## Int8 limit of this machine" in text and "4.00x the fp32 matmul peak" in text
    assert "| executorch xnnpack int8-dynamic | x_encoder | int8-dynamic | 2.00 | 200.0 | 50% |" in text
