"""`python -m export.to_coreml`: Core ML ML programs (.mlpackage) per contract method.

    python -m export.to_coreml --preset tiny --quant palettize4 --ios 18 --out artifacts/tiny-coreml

One .mlpackage per contract method (`x_encoder`, `predictor`, `y_encoder`, `y_decoder_prefill`,
`y_decoder_step`; the manifest's `method_files`), converted from the method's `torch.export`
program (`run_decompositions({})`, then `coremltools.convert(convert_to="mlprogram")`; the
`torch.jit.trace` path breaks with numpy 2.4). Inputs and outputs carry the contract's names and
static shapes (int64 tensors become int32: Core ML has no int64; the decoder's returned cache is
`kv_cache_out`, see runtimes.artifact.file_output_names). The decoder's KV cache is an explicit input
and output, the same stateless methods as every other target, rather than Core ML state.

Precision per component:
  fp32          fp32 compute;
  fp16          the half-precision program (export/quantize.py): fp16 weights and compute, with
                LayerNorm, RMSNorm and softmax kept fp32 inside (a known failure of video
                transformers in fp16 on Core ML), fp32 I/O;
  int8-weights  fp16 as above, Linear weights int8 per channel (coremltools.optimize
                linear_quantize_weights; weights only, activations stay fp16);
  palettize4    fp16 as above, weights as 4-bit look-up tables (k-means, one table per 16 output
                channels, embedding tables grouped along their width; coremltools.optimize
                palettize_weights; an iOS 18 op set, so it needs --ios 18).
Tensors under 2048 elements (norm weights, biases) stay uncompressed.

Core ML cannot execute on Linux (`predict` is macOS-only), so here the exporter reports the
conversion, op counts and sizes, and records parity as "pending: run on a Mac" with the command to
run there (`python -m export.to_coreml --parity-only ARTIFACT`), which runs the shared parity report
through runtimes/backends/coreml.py. This file holds only the Core ML lowering; the flags, data,
artifact, parity and report are the flow every exporter shares (export/pipeline.py).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np

from edge_vljepa.contract import MethodSpec, build_contract
from edge_vljepa.models import method_modules
from export import pipeline
from export.artifact import ExportError
from export.quantize import quantized_program
from runtimes.artifact import file_output_names, method_file
from runtimes.backends.coreml import MAC_PARITY_COMMAND

QUANT_MODES = ("fp32", "fp16", "int8-weights", "palettize4")
IOS = ("17", "18")
PALETTE_GROUP = 16  # channels sharing one 16-entry look-up table


def compress(mlmodel, mode: str):
    """Weight compression of a converted fp16 model (coremltools.optimize); fp32/fp16 unchanged."""
    import coremltools.optimize.coreml as cto

    if mode == "int8-weights":
        config = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel")
        return cto.linear_quantize_weights(mlmodel, cto.OptimizationConfig(global_config=config))
    if mode == "palettize4":
        # One k-means worker (the default): a worker pool forked from this process deadlocked here.
        def config(axis=None):
            return cto.OpPalettizerConfig(mode="kmeans", nbits=4, granularity="per_grouped_channel",
                                          group_size=PALETTE_GROUP, channel_axis=axis)
        # coremltools skips a table whose rows are not a multiple of the group size (MiniLM's 30522-token
        # embedding, most of the Y-Encoder's bytes): group those along their width instead.
        tables = {op.inputs["x"].op.name for op in mlmodel._mil_program.functions["main"].operations
                  if op.op_type == "gather" and op.inputs["x"].op.op_type == "const"
                  and op.inputs["x"].shape[0] % PALETTE_GROUP}
        return cto.palettize_weights(mlmodel, cto.OptimizationConfig(
            global_config=config(), op_name_configs={name: config(1) for name in tables}))
    return mlmodel


def op_counts(mlmodel) -> dict[str, int]:
    """Operations of the ML program by type, nested blocks included."""
    counts: Counter = Counter()

    def walk(block) -> None:
        for op in block.operations:
            counts[op.type] += 1
            for inner in op.blocks:
                walk(inner)

    for function in mlmodel.get_spec().mlProgram.functions.values():
        for block in function.block_specializations.values():
            walk(block)
    return dict(counts)


def convert_method(module, spec: MethodSpec, mode: str, example: tuple, ios: str):
    """Method `spec` of `module` as a Core ML ML program in precision `mode`."""
    import coremltools as ct

    program = quantized_program(module, example, "fp32" if mode == "fp32" else "fp16", [])
    inputs = [ct.TensorType(name=t.name, shape=t.shape, dtype=np.int32 if t.dtype == "int64" else np.float32)
              for t in spec.inputs]
    outputs = [ct.TensorType(name=name) for name in file_output_names(spec)]
    with pipeline.quiet():
        # compute_precision FLOAT32 keeps the program's own dtypes: fp16 with fp32 norms and softmax
        mlmodel = ct.convert(program.run_decompositions({}), convert_to="mlprogram", inputs=inputs,
                             outputs=outputs, minimum_deployment_target=getattr(ct.target, f"iOS{ios}"),
                             compute_precision=ct.precision.FLOAT32, skip_model_load=True)
        return compress(mlmodel, mode)


class CoreMLTarget(pipeline.Target):
    name = "coreml"
    prog = "python -m export.to_coreml"
    description = ("Export the four VL-JEPA components to Core ML ML programs (.mlpackage per contract "
                   "method), as a self-describing artifact directory; parity runs on a Mac "
                   "(--parity-only), Core ML cannot execute on Linux.")
    runtime = "Core ML (coremltools predict, macOS)"
    quant_modes = QUANT_MODES
    requires = ("coremltools",)
    columns = ("ops",)

    def add_arguments(self, parser) -> None:
        parser.add_argument("--ios", default="18", choices=IOS, help="minimum deployment target (iOS/macOS "
                                                                     "op set); palettize4 needs 18")

    def check(self, args, quant: dict[str, str]) -> None:
        if args.ios == "17" and "palettize4" in quant.values():
            raise ExportError("palettize4 uses per-grouped-channel look-up tables, an iOS 18 op set: pass "
                              "--ios 18 (or use int8-weights for iOS 17)")
        if "auto" in quant.values() and sys.platform != "darwin":
            raise ExportError("--quant auto gates every candidate in Core ML, which runs only on macOS; run "
                              "it on a Mac or choose the precision")

    def describe(self, args) -> str:
        return f"coreml mlprogram, iOS {args.ios}"

    def lower(self, model, component, mode, calib, art, args) -> dict:
        modules = method_modules(model)
        files, ops = {}, {}
        for spec in build_contract(model.cfg).for_component(component):
            example = pipeline.as_args(spec, calib[spec.name][0])
            mlmodel = convert_method(modules[spec.name], spec, mode, example, args.ios)
            files[spec.name] = method_file(spec.name, ".mlpackage")
            with pipeline.quiet():
                mlmodel.save(str(art.path(files[spec.name])))
            ops[spec.name] = op_counts(mlmodel)
        return {"method_files": files, "ios": args.ios, "ops": ops}

    def parity_unavailable(self, manifest: dict, out: Path) -> str | None:
        if sys.platform != "darwin":
            command = MAC_PARITY_COMMAND.format(artifact=out)
            return f"pending: run on a Mac: {command} (Core ML cannot execute on {sys.platform})"
        return None

    def backend(self, artifact):
        from runtimes.backends.coreml import CoreMLBackend
        return CoreMLBackend(artifact)

    def summary_row(self, info: dict, files: dict) -> tuple[str, ...]:
        """Operations that compute (const ops, the weights, left out)."""
        return (str(sum(n for ops in info["ops"].values() for op, n in ops.items() if op != "const")),)


TARGET = CoreMLTarget()


def build_parser():
    return pipeline.build_parser(TARGET)


def main(argv=None) -> int:
    return pipeline.main(TARGET, argv)


if __name__ == "__main__":
    sys.exit(main())
