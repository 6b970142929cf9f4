"""This machine's int8 limit: the best int8 GEMM throughput any installed library reaches here.

    python -m experiments.bench int8-limit --threads 1

An int8 artifact is judged by how close it gets to what this processor can give at all in int8, not by
a ratio to fp32 fixed across processors: XNNPACK's int8 Linear is 2.6-3.6x its fp32 on a Zen 4 with
AVX512-VNNI (docs/bench/int8-limit.md), 1.06-1.14x on a Zen 3 without VNNI.

One Linear layer (fp32 in, fp32 out, as inside the model; input (1, M, K), weights N x K) is quantized
the way the exporters quantize the model and timed per library:
  executorch xnnpack   a one-Linear .pte lowered to XNNPACK with the exporter's PT2E quantizer
                       (export.quantize, export.to_executorch): int8 (static), int8-dynamic and
                       8da8w (torchao's per-token dynamic int8);
  onnxruntime          a one-Linear ONNX file from the ONNX exporter (export.to_onnx.export_method):
                       int8 (QDQ static) and int8-dynamic (MatMulInteger), CPU provider;
  pytorch              torch.ao's dynamic quantized Linear (per-channel int8 weights), once per
                       quantized engine this torch has (fbgemm, onednn, x86, qnnpack).
GOP/s = 2 M K N / median seconds per call (the activations' quantization included, as in an artifact).
The limit is the best int8 figure over libraries and shapes; fp32 rows (PyTorch, XNNPACK) at the same
shapes stand beside it and are not part of it. Shapes: the X-Encoder's two MLP Linears (M = its tokens)
and a 1024^3 product (the fp32 peak's), unless --shapes names others.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edge_vljepa.contract import MethodSpec, TensorSpec
from export.quantize import QUANT_MODES

INT8_PRECISIONS = ("int8", "int8-dynamic", "8da4w", "8da8w")  # artifact precisions with int8 GEMMs


@dataclass(frozen=True)
class Shape:
    name: str
    m: int  # tokens
    k: int  # input features
    n: int  # output features

    @property
    def ops(self) -> int:
        return 2 * self.m * self.k * self.n

    @property
    def size(self) -> str:
        return f"{self.m}x{self.k}x{self.n}"

    @property
    def label(self) -> str:
        return self.size if self.name == self.size else f"{self.name} {self.size}"


def model_shapes(cfg) -> list[Shape]:
    """The X-Encoder's MLP Linears at its token count, and the fp32 peak's 1024^3 product."""
    x = cfg.x_encoder
    return [Shape("x_encoder mlp.fc1", x.num_tokens, x.embed_dim, x.mlp_hidden),
            Shape("x_encoder mlp.fc2", x.num_tokens, x.mlp_hidden, x.embed_dim),
            Shape("square", 1024, 1024, 1024)]


def parse_shape(text: str) -> Shape:
    """'MxKxN' -> Shape (for --shapes)."""
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"--shapes {text!r}: write M x K x N as three positive integers, e.g. 144x192x768")
    return Shape(text, *(int(p) for p in parts))


# --- one builder per library and precision: (linear, x, threads) -> a call to time ----------------

def executorch_xnnpack(linear: nn.Module, x: torch.Tensor, threads: int, mode: str):
    from executorch.exir import to_edge_transform_and_lower
    from executorch.runtime import Runtime

    from export.pipeline import quiet
    from export.quantize import quantized_program
    from export.to_executorch import partitioners, pt2e_quantizer

    with quiet():  # int8 (static) calibrates on the timed input itself
        exported = quantized_program(linear, (x,), mode, [(x,)], pt2e_quantizer)
        edge = to_edge_transform_and_lower(exported, partitioner=partitioners("xnnpack"))
        buffer = edge.to_executorch().buffer
    program = Runtime.get().load_program(buffer)
    method = program.load_method("forward")

    def call():
        method.execute([x])
    call.keep = (buffer, program)  # the program reads `buffer` in place: both outlive the calls
    return call


def onnxruntime(linear: nn.Module, x: torch.Tensor, threads: int, mode: str):
    import onnxruntime as ort

    from export.pipeline import quiet
    from export.to_onnx import export_method

    spec = MethodSpec("linear", "x_encoder", (TensorSpec("x", tuple(x.shape), "float32"),),
                      (TensorSpec("y", (*x.shape[:-1], linear[0].out_features), "float32"),))
    feed = {"x": x.numpy()}
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    with tempfile.TemporaryDirectory(prefix="edge-vljepa-int8-") as tmp, quiet():
        path = Path(tmp) / "linear.onnx"
        export_method(linear, spec, mode, [feed], path, opset=18)
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda: session.run(None, feed)


def pytorch_dynamic(linear: nn.Module, x: torch.Tensor, threads: int, engine: str):
    torch.backends.quantized.engine = engine  # the probe restores the previous engine
    with warnings.catch_warnings():  # torch.ao's eager quantization warns that torchao replaces it
        warnings.simplefilter("ignore")
        quantized = torch.ao.quantization.quantize_dynamic(
            linear, {nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig})

    def call():
        with torch.inference_mode():
            quantized(x)
    return call


def pytorch_fp32(linear: nn.Module, x: torch.Tensor, threads: int, _=None):
    def call():
        with torch.inference_mode():
            linear(x)
    return call


# (library, precision) -> (builder, its last argument); fp32 rows are references, not the limit
LIBRARIES = {**{("executorch xnnpack", mode): (executorch_xnnpack, mode)
                for mode in ("int8-dynamic", "int8", "8da8w") if mode in QUANT_MODES},
             ("onnxruntime", "int8-dynamic"): (onnxruntime, "int8-dynamic"),
             ("onnxruntime", "int8"): (onnxruntime, "int8"),
             **{(f"pytorch {engine}", "int8-dynamic"): (pytorch_dynamic, engine)
                for engine in torch.backends.quantized.supported_engines if engine != "none"},
             ("executorch xnnpack", "fp32"): (executorch_xnnpack, "fp32"),
             ("pytorch", "fp32"): (pytorch_fp32, None)}
LIBRARY_NAMES = ("executorch", "onnxruntime", "pytorch")  # the first word of a LIBRARIES name


def median_seconds(call, warmup: int, runs: int) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def probe(shapes: list[Shape], threads: int, libraries: list[str] | None = None, warmup: int = 3,
          runs: int = 20, fp32_peak: float | None = None) -> dict:
    """Every (library, precision) of LIBRARIES at every shape, at the current thread count (set by
    experiments.host.set_threads; ONNX Runtime sessions get `threads`). libraries: LIBRARY_NAMES to
    keep (default all). A library not installed here gets an "error" row. Returns {"threads", "rows",
    "limit_gops", "limit" (the best int8 row), "fp32_peak_gflops", "fp32_best_gops" (the best fp32 row),
    "int8_over_fp32" (limit / fp32 peak)}."""
    rows = []
    engine = torch.backends.quantized.engine
    for (library, precision), (build, arg) in LIBRARIES.items():
        if libraries and library.split()[0] not in libraries:
            continue
        for shape in shapes:
            row = {"library": library, "precision": precision, "shape": shape.name, "label": shape.label,
                   "m": shape.m, "k": shape.k, "n": shape.n}
            torch.manual_seed(0)
            linear, x = nn.Sequential(nn.Linear(shape.k, shape.n)).eval(), torch.randn(1, shape.m, shape.k)
            try:
                seconds = median_seconds(build(linear, x, threads, arg), warmup, runs)
                rows.append({**row, "median_ms": seconds * 1e3, "gops": shape.ops / seconds / 1e9})
            except ModuleNotFoundError as e:  # its runtime is not installed here
                rows.append({**row, "error": f"not installed (no module {e.name})"})
            finally:
                torch.backends.quantized.engine = engine
    int8 = [r for r in rows if r["precision"] != "fp32" and "gops" in r]
    best = max(int8, key=lambda r: r["gops"]) if int8 else None
    limit = best["gops"] if best else None
    fp32_best = max((r["gops"] for r in rows if r["precision"] == "fp32" and "gops" in r), default=None)
    return {"threads": threads, "rows": rows, "limit_gops": limit, "limit": best,
            "fp32_peak_gflops": fp32_peak, "fp32_best_gops": fp32_best,
            "int8_over_fp32": limit / fp32_peak if limit and fp32_peak else None}


def limit_lines(result: dict) -> list[str]:
    """The probe as Markdown: a GOP/s table (library x shape) and the limit beside the fp32 peak."""
    shapes = list(dict.fromkeys(r["label"] for r in result["rows"]))
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for r in result["rows"]:
        cells.setdefault((r["library"], r["precision"]), {})[r["label"]] = (
            f"{r['gops']:.1f}" if "gops" in r else r["error"])
    lines = [f"One Linear, fp32 in and out, quantized as the exporters quantize the model; GOP/s = 2MKN / "
             f"median call, {result['threads']} thread(s). int8 rows set the limit; fp32 rows are beside "
             "them for reference.", "",
             "| library | precision | " + " | ".join(shapes) + " |",
             "|---|---|" + "---|" * len(shapes)]
    for (library, precision), by_shape in cells.items():
        lines.append(f"| {library} | {precision} | "
                     + " | ".join(by_shape.get(label, "-") for label in shapes) + " |")
    best, peak = result["limit"], result["fp32_peak_gflops"]
    lines.append("")
    if best is None:
        lines.append("Int8 limit: none measured (no int8 library ran).")
    else:
        fp32_best = result["fp32_best_gops"]
        lines.append(f"**Int8 limit: {best['gops']:.1f} GOP/s** ({best['library']} {best['precision']}, "
                     f"{best['label']})"
                     + (f"; {best['gops'] / fp32_best:.2f}x the best fp32 row above ({fp32_best:.1f})"
                        if fp32_best else "")
                     + (f"; {result['int8_over_fp32']:.2f}x the fp32 matmul peak ({peak:.1f} GFLOP/s, torch, "
                        "1024^3)" if peak else "") + ".")
    return lines
