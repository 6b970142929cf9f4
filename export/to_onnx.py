"""`python -m export.to_onnx`: ONNX artifacts (plus ONNX Runtime's mobile .ort format) with a parity report.

    python -m export.to_onnx --preset tiny --quant int8 --out artifacts/tiny-onnx-int8

One .onnx per contract method (`x_encoder.onnx`, `predictor.onnx`, `y_encoder.onnx`,
`y_decoder_prefill.onnx`, `y_decoder_step.onnx`: an ONNX graph has one entry point, so the decoder's
two methods are two files, each with its own copy of the decoder weights); the manifest's
`method_files` says which file holds which method. Each file has the contract's static shapes and
tensor names (the step's returned cache is `kv_cache_out`: see runtimes.artifact.file_output_names),
opset 18 by default (TensorRT 8.6/10 and ONNX Runtime Mobile parse it), and passes
`onnx.checker.check_model(full_check=True)`.

Precision per component:
  fp32          `torch.onnx.export(dynamo=True)` of the method's `torch.export` program;
  fp16          the same of the half-precision program (export/quantize.py): LayerNorm, RMSNorm and
                softmax stay fp32 inside (explicit Casts), I/O stays fp32 (the contract);
  int8          ONNX Runtime static QDQ, S8S8 (symmetric int8 activations and per-channel weights, as
                TensorRT wants), calibrated on the recorded inputs of real decoded frames; only the
                MatMul/Gemm/Conv nodes of nn.Linear layers are quantized (the norms' mean and RoPE's
                rotation matmuls and the attention matmuls stay float): the default QDQ settings
                (every op, uint8 activations) lost accuracy badly on a ViT here;
  int8-dynamic  ONNX Runtime dynamic quantization of the same nodes (int8 weights, activations
                quantized at run time; ONNX Runtime only, TensorRT has no MatMulInteger).
In both int8 modes the MiniLM Y-Encoder's feed-forward MatMuls stay fp32, as for ExecuTorch
(export.quantize.FP32_LINEARS: outliers in their activations), and weights use 7 of their 8 bits
(`reduce_range`): ONNX Runtime's x86 kernels on CPUs without VNNI multiply uint8 activations by int8
weights into saturating int16 pairs (vpmaddubsw), and 7-bit weights keep those sums in range. On this
AVX2-only host full-range weights cost the shipped model's int8-dynamic artifact most of its accuracy
(X-Encoder worst cosine 0.9987 instead of 0.99990, top-1 label agreement 73% instead of 95%) and its
static int8 artifact 74% instead of 90%; on VNNI and Arm CPUs the 8th bit would buy little.
Static calibration is MinMax over the recorded calls, computed by `linear_ranges` and handed to
`quantize_static` as its calibration cache.

Then `onnxruntime.tools.convert_onnx_models_to_ort` writes `METHOD.ort` next to each file (fixed
optimizations for ARM, the mobile target; not for fp16 components, see convert_to_ort) and
`required_operators.config`, the operator list of a reduced ONNX Runtime build
(`--include_ops_by_config`). Parity runs through ONNX Runtime's CPU provider
on this host (runtimes/backends/onnxruntime.py). Note: that provider has fp16 kernels for few ops and
inserts casts to fp32 around the others, so an fp16 parity here is closer to fp32 than an fp16
accelerator (TensorRT, NNAPI, Core ML) will be. TensorRT on a Jetson: docs/jetson.md.

This file holds only the ONNX lowering; the flags, data, artifact, parity and report are the flow
every exporter shares (export/pipeline.py).
"""

from __future__ import annotations

import ast
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from edge_vljepa.contract import MethodSpec, build_contract
from edge_vljepa.models import method_modules
from export import pipeline
from export.artifact import ArtifactBuilder, ExportError
from export.quantize import FP32_LINEARS, quantized_program
from runtimes.artifact import file_output_names, method_file

QUANT_MODES = ("fp32", "fp16", "int8", "int8-dynamic")
QUANTIZED_OPS = ("MatMul", "Gemm", "Conv")
LINEAR = "torch.nn.modules.linear.Linear"  # in a node's class hierarchy: it comes from an nn.Linear
PROTOBUF_LIMIT = 2**31  # bytes; larger models need ONNX external data, which is not wired here
ORT_CONFIG = "required_operators.config"


def name_io(graph, spec: MethodSpec) -> None:
    """Give the graph's inputs and outputs the contract's names. Another value that already has one of
    those names (the exporter names values after ops, e.g. `embedding`) is renamed first."""
    wanted = {t.name for t in spec.inputs} | set(file_output_names(spec))
    io_values = [*graph.inputs, *graph.outputs]
    for value in [*graph.initializers.values(), *(v for node in graph for v in node.outputs)]:
        if value.name in wanted and all(value is not v for v in io_values):
            value.name = f"{value.name}_internal"
    for value, t in zip(graph.inputs, spec.inputs, strict=True):
        value.name = t.name
    for value, name in zip(graph.outputs, file_output_names(spec), strict=True):
        value.name = name


def linear_nodes(model) -> list[str]:
    """Names of the MatMul/Gemm/Conv nodes that come from nn.Linear layers (the exporter records each
    node's module class hierarchy and module names in its metadata): the nodes int8 quantizes, except
    those of export.quantize.FP32_LINEARS (BERT feed-forward layers, as for ExecuTorch)."""
    def meta(node, key: str) -> str:
        return next((p.value for p in node.metadata_props if p.key == key), "")

    def kept_fp32(node) -> bool:  # module scopes: [..., 'component...layer.0.output.dense', 'linear']
        scopes = ast.literal_eval(meta(node, "pkg.torch.onnx.name_scopes") or "[]")
        return any(FP32_LINEARS.search(scope) for scope in scopes)
    return [n.name for n in model.graph.node if n.op_type in QUANTIZED_OPS
            and LINEAR in meta(n, "pkg.torch.onnx.class_hierarchy") and not kept_fp32(n)]


def gemms_as_matmuls(model, nodes: list[str]) -> None:
    """Rewrite each Gemm of `nodes` (torch exports a Linear on a 2-D input, e.g. a pooled embedding's head,
    as Gemm) as MatMul + Add, the MatMul under the Gemm's name: ONNX Runtime's dynamic quantizer has no
    integer Gemm, and one left behind would stay fp32 in an artifact that says int8."""
    from onnx import helper, numpy_helper
    weights = {t.name: t for t in model.graph.initializer}
    rewritten = []
    for node in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if (node.op_type != "Gemm" or node.name not in nodes or node.input[1] not in weights
                or attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0):
            rewritten.append(node)
            continue
        w = numpy_helper.to_array(weights[node.input[1]])
        w_name = node.input[1] + ("_t" if attrs.get("transB", 0) else "")
        if attrs.get("transB", 0):  # a new initializer: the original may be shared (tied embeddings)
            model.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w.T), w_name))
        has_bias = len(node.input) > 2 and node.input[2]
        product = node.output[0] + "_matmul" if has_bias else node.output[0]
        matmul = helper.make_node("MatMul", [node.input[0], w_name], [product], name=node.name)
        matmul.metadata_props.extend(node.metadata_props)
        rewritten.append(matmul)
        if has_bias:
            rewritten.append(helper.make_node("Add", [product, node.input[2]], [node.output[0]],
                                              name=node.name + "_bias"))
    del model.graph.node[:]
    model.graph.node.extend(rewritten)
    used = {i for n in rewritten for i in n.input}
    kept = [t for t in model.graph.initializer if t.name in used]  # the transposed-away originals go
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)


def quantized_count(model) -> int:
    """Nodes of `model` that compute in int8: integer ops (dynamic) or float ops whose weight input is
    dequantized int8 (static QDQ)."""
    integer = ("MatMulInteger", "DynamicQuantizeMatMul", "ConvInteger", "QGemm", "QLinearMatMul",
               "QLinearConv")
    dequantized = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return sum(n.op_type in integer or (n.op_type in QUANTIZED_OPS and n.input[1] in dequantized)
               for n in model.graph.node)


def linear_ranges(model, nodes: list[str], calls: list[dict], path: Path) -> Path:
    """ONNX Runtime's MinMax calibration of the activations into and out of `nodes`, written to `path` as a
    calibration cache for `quantize_static`: one ONNX Runtime session that returns those tensors,
    min/max merged after every call. ONNX Runtime's own calibrator adds ReduceMin/ReduceMax to every
    MatMul, the attention matmuls included, in an unoptimized session that kept them all alive to the
    end of the graph: the paper X-Encoder's calibration passed 18 GB in its first call (the fp32 model
    is 1.2 GB) and was killed. Same ranges, so the same quantized model."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization.calibrate import (
        CalibrationMethod,
        TensorData,
        TensorsData,
        save_tensors_data,
    )

    wanted, weights = set(nodes), {t.name for t in model.graph.initializer}
    names = sorted({t for n in model.graph.node if n.name in wanted for t in [*n.input, *n.output]
                    if t and t not in weights})  # the activations in and out (QDQ wants both)
    n_outputs = len(model.graph.output)
    model.graph.output.extend(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
                              for name in names)
    try:
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    finally:
        del model.graph.output[n_outputs:]
    low, high = {}, {}
    for call in calls:
        for name, value in zip(names, session.run(names, call), strict=True):
            low[name] = min(low.get(name, np.inf), float(value.min()))
            high[name] = max(high.get(name, -np.inf), float(value.max()))
    ranges = {n: TensorData(lowest=np.float32(low[n]), highest=np.float32(high[n])) for n in names}
    save_tensors_data(TensorsData(CalibrationMethod.MinMax, ranges), path)
    return path


def export_method(module, spec: MethodSpec, mode: str, calls: list[dict], path: Path, opset: int) -> dict:
    """Write method `spec` of `module` in precision `mode` to `path`; return its node counts."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    example = pipeline.as_args(spec, calls[0])
    program = quantized_program(module, example, "fp16" if mode == "fp16" else "fp32", [])
    weights = sum(t.numel() * t.element_size() for t in program.state_dict.values())
    if weights >= PROTOBUF_LIMIT:
        raise ExportError(f"{spec.name} has {weights / 1e9:.1f} GB of {mode} weights, over ONNX's 2 GB "
                          "protobuf limit (external data is not wired here); export it with "
                          "--quant-component COMPONENT=fp16")
    with pipeline.quiet():
        onnx_program = torch.onnx.export(program, example, dynamo=True, opset_version=opset,
                                         external_data=False, optimize=True, verbose=False)
        name_io(onnx_program.model.graph, spec)
        model = onnx_program.model_proto
        nodes = linear_nodes(model)
        gemms_as_matmuls(model, nodes)
        if mode == "int8":
            with tempfile.TemporaryDirectory(prefix="edge-vljepa-calibration-") as tmp:
                ranges = linear_ranges(model, nodes, calls, Path(tmp) / "ranges.json")
                quantize_static(model, path, None, quant_format=QuantFormat.QDQ, per_channel=True,
                                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                                op_types_to_quantize=list(QUANTIZED_OPS), nodes_to_quantize=nodes,
                                calibration_cache_path=ranges, reduce_range=True,  # see the docstring
                                extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
        elif mode == "int8-dynamic":
            quantize_dynamic(model, path, per_channel=True, reduce_range=True,  # see the docstring
                             weight_type=QuantType.QInt8, op_types_to_quantize=list(QUANTIZED_OPS),
                             nodes_to_quantize=nodes)
        else:
            onnx.save(model, path)
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ExportError(f"{path.name} fails onnx.checker: {e}") from None
    saved = onnx.load(str(path), load_external_data=False)
    quantized = quantized_count(saved)
    if mode.startswith("int8") and quantized < len(nodes):
        raise ExportError(f"{spec.name}: ONNX Runtime's {mode} quantizer left {len(nodes) - quantized} of "
                          f"its {len(nodes)} Linear nodes in float; the artifact would not be {mode}")
    return {"nodes": len(saved.graph.node), "ops": dict(Counter(n.op_type for n in saved.graph.node)),
            "quantized_nodes": quantized}


def convert_to_ort(art: ArtifactBuilder) -> None:
    """METHOD.ort for every METHOD.onnx that is not fp16 (fixed optimizations, ARM target) and the
    operator config of a reduced ONNX Runtime build; records `ort_files` per component.

    fp16 components get no .ort: the conversion runs ONNX Runtime's optimizer with this host's CPU
    kernels, which lack fp16 for most ops, so it bakes in casts and fp32 copies of the weights (the
    default X-Encoder's .ort came out at 12.4 MB next to its 6.8 MB fp16 .onnx). Convert those on or
    for the target with the execution provider that runs fp16 there."""
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    entries = [e for e in art.manifest["components"].values() if e["quant"] != "fp16"]
    if not entries:
        return
    with tempfile.TemporaryDirectory(dir=art.dir) as tmp:
        tmp = Path(tmp)
        for entry in entries:
            for file in entry["method_files"].values():
                shutil.copyfile(art.path(file), tmp / file)
        try:
            with pipeline.quiet():
                convert_onnx_models_to_ort(tmp, optimization_styles=[OptimizationStyle.Fixed],
                                           target_platform="arm")
        except Exception as e:  # the converter raises whatever ONNX Runtime raised for the model
            raise ExportError(f"conversion to the ORT format failed: {type(e).__name__}: {e}") from None
        for entry in entries:
            entry["ort_files"] = {m: Path(f).stem + ".ort" for m, f in entry["method_files"].items()}
            for file in entry["ort_files"].values():
                shutil.move(tmp / file, art.path(file))
        config = (tmp / ORT_CONFIG).read_text().replace(f"{tmp.resolve()}/", "")  # no build-host paths
    art.path(ORT_CONFIG).write_text(config)
    art.manifest["ort_required_operators"] = ORT_CONFIG


class OnnxTarget(pipeline.Target):
    name = "onnxruntime"
    prog = "python -m export.to_onnx"
    description = ("Export the four VL-JEPA components to ONNX (one .onnx per contract method, plus ONNX "
                   "Runtime's mobile .ort format), as a self-describing artifact directory with a parity "
                   "report against PyTorch through ONNX Runtime.")
    runtime = "onnxruntime (python, CPUExecutionProvider)"
    quant_modes = QUANT_MODES
    requires = ("onnx", "onnxscript", "onnxruntime")  # torch.onnx's exporter needs onnxscript
    columns = ("nodes", "quantized", "ort MB")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--opset", type=int, default=18,
                            help="ONNX opset (18: TensorRT 8.6+ and ONNX Runtime Mobile parse it)")
        parser.add_argument("--no-ort", action="store_true",
                            help="skip the mobile .ort files and required_operators.config")

    def check(self, args, quant: dict[str, str]) -> None:
        if not 17 <= args.opset <= 21:
            raise ExportError(f"--opset {args.opset}: choose 17..21 (QDQ per-channel needs >= 13, the "
                              "exporter emits >= 17; TensorRT 10 parses up to 21)")

    def describe(self, args) -> str:
        return f"onnx opset {args.opset}" + ("" if args.no_ort else " + ort (mobile)")

    def lower(self, model, component, mode, calib, art, args) -> dict:
        modules = method_modules(model)
        files, info = {}, {}
        for spec in build_contract(model.cfg).for_component(component):
            files[spec.name] = method_file(spec.name, ".onnx")
            info[spec.name] = export_method(modules[spec.name], spec, mode,
                                            pipeline.calibration_calls(calib[spec.name]),
                                            art.path(files[spec.name]), args.opset)
        return {"method_files": files, "opset": args.opset, "graph": info}

    def finish(self, art, args) -> None:
        if not args.no_ort:
            convert_to_ort(art)

    def backend(self, artifact):
        from runtimes.backends.onnxruntime import OnnxRuntimeBackend
        return OnnxRuntimeBackend(artifact)

    def summary_row(self, info: dict, files: dict) -> tuple[str, ...]:
        ort = sum(files[f]["size"] for f in info.get("ort_files", {}).values())
        return (str(sum(g["nodes"] for g in info["graph"].values())),
                str(sum(g["quantized_nodes"] for g in info["graph"].values())),
                f"{ort / 1e6:.2f}" if ort else "-")


TARGET = OnnxTarget()


def build_parser():
    return pipeline.build_parser(TARGET)


def main(argv=None) -> int:
    return pipeline.main(TARGET, argv)


if __name__ == "__main__":
    sys.exit(main())
