"""`python -m export.to_executorch`: quantized, delegated ExecuTorch artifacts with a parity report.

    python -m export.to_executorch --preset tiny --quant int8 --out artifacts/tiny-int8

One .pte per component (x_encoder, predictor, y_encoder, y_decoder; the decoder's two stateless
methods, y_decoder_prefill and y_decoder_step, live in one program), in a self-describing artifact
directory (export/artifact.py). Per component: the precision/quantization (export/quantize.py), the
delegate, and a delegation report (which ops the delegate took, which fell back to portable
kernels). Then parity against the PyTorch reference on real held-out frames (edge_vljepa/parity.py),
through the real ExecuTorch runtime, when the delegate can run on this host (XNNPACK); Core ML and
Vulkan programs lower here but cannot run here, and the manifest says "not run on this host".

This file holds only the ExecuTorch lowering; the flags, data, artifact, parity and report are the
flow every exporter shares (export/pipeline.py). Exit status: 0 when the artifact meets the
tolerances (or parity could not run here), 1 when it was written but misses them (the failures are
listed), 2 for bad input (nothing written).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from edge_vljepa.contract import build_contract
from edge_vljepa.models import method_modules
from export import pipeline
from export.artifact import ExportError
from export.quantize import QUANT_MODES, quantized_program
from runtimes.artifact import component_file

BACKENDS = ("xnnpack", "coreml", "vulkan", "qnn")
RUNS_HERE = ("xnnpack",)  # the delegates this host's ExecuTorch runtime has registered
PT2E_BACKENDS = ("xnnpack",)  # backends with a PT2E quantizer wired here; others: fp32 / fp16


def partitioners(backend: str) -> list:
    if backend == "xnnpack":
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        return [XnnpackPartitioner()]
    if backend == "coreml":
        from executorch.backends.apple.coreml.partition import CoreMLPartitioner
        return [CoreMLPartitioner()]
    if backend == "vulkan":
        from executorch.backends.vulkan.partitioner.vulkan_partitioner import VulkanPartitioner
        return [VulkanPartitioner()]
    return [qnn_partitioner()]


def qnn_partitioner():
    sdk = os.environ.get("QNN_SDK_ROOT")
    if not sdk or not Path(sdk).is_dir():
        raise ExportError("the qnn backend needs the Qualcomm AI Engine Direct SDK: install it and set "
                          "QNN_SDK_ROOT to its folder (e.g. /opt/qcom/aistack/qairt/2.x); "
                          "it cannot be downloaded here")
    from executorch.backends.qualcomm.partition.qnn_partitioner import QnnPartitioner
    from executorch.backends.qualcomm.serialization.qc_schema import QcomChipset
    from executorch.backends.qualcomm.utils.utils import (
        generate_htp_compiler_spec,
        generate_qnn_executorch_compiler_spec,
    )
    specs = generate_qnn_executorch_compiler_spec(soc_model=QcomChipset.SM8650,
                                                  backend_options=generate_htp_compiler_spec(use_fp16=True))
    return QnnPartitioner(specs)


def pt2e_quantizer(dynamic: bool, names: list[str]):
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    class LinearQuantizer(XNNPACKQuantizer):
        """XNNPACK's quantizer for the Linear pattern alone. Its `cat` annotator ignores the module-name
        filter, so with any module set it quantizes every concatenation, all inputs sharing one scale:
        the predictor's cat of projected visual tokens and query embeddings then rounded the far
        smaller query embeddings to ~0 (retrained default predictor, worst cosine 0.594 -> 0.999)."""

        SUPPORTED_PATTERNS = [p for p in XNNPACKQuantizer.SUPPORTED_PATTERNS if p.name == "linear"]

    # Linear layers only (`names`, export.quantize.quantized_linears): they hold the weights and the
    # FLOPs; a global config would also annotate the int64 index paths (masks, positions) and the small
    # norm/RoPE matmuls that must stay exact.
    config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=dynamic)
    quantizer = LinearQuantizer()
    for name in names:
        quantizer.set_module_name(name, config)
    return quantizer


def delegation_report(graph_module) -> dict:
    """Delegated vs. portable-kernel nodes of a lowered method, and which ops fell back."""
    from executorch.devtools.backend_debug import get_delegation_info
    info = get_delegation_info(graph_module)
    fallbacks = {b.op_type: b.non_delegated for b in info.delegation_by_operator.values() if b.non_delegated}
    return {"delegated_nodes": info.num_delegated_nodes, "portable_nodes": info.num_non_delegated_nodes,
            "delegated_subgraphs": info.num_delegated_subgraphs, "portable_ops": fallbacks}


def lower_component(model, component: str, mode: str, backend: str, calib: dict[str, list[dict]]):
    """(.pte bytes, per-method delegation report) of one component."""
    from executorch.exir import to_edge_transform_and_lower

    contract, modules = build_contract(model.cfg), method_modules(model)
    programs = {}
    for spec in contract.for_component(component):
        calls = [pipeline.as_args(spec, c) for c in pipeline.calibration_calls(calib[spec.name])]
        programs[spec.name] = quantized_program(modules[spec.name], calls[0], mode, calls,
                                                pt2e_quantizer if backend in PT2E_BACKENDS else None)
    edge = to_edge_transform_and_lower(programs, partitioner=partitioners(backend))
    report = {name: delegation_report(edge.exported_program(name).graph_module) for name in programs}
    return edge.to_executorch().buffer, report


class ExecuTorchTarget(pipeline.Target):
    name = "executorch"
    prog = "python -m export.to_executorch"
    description = ("Export the four VL-JEPA components to ExecuTorch (.pte), quantized and delegated, as a "
                   "self-describing artifact directory with a parity report against PyTorch.")
    runtime = "executorch.runtime (python)"
    quant_modes = QUANT_MODES
    requires = ("executorch", "torchao")  # the lowering and the quantizers
    columns = ("delegated", "portable")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--backend", default="xnnpack", choices=BACKENDS, help="ExecuTorch delegate")

    def check(self, args, quant: dict[str, str]) -> None:
        if args.backend not in PT2E_BACKENDS and set(quant.values()) - {"fp32", "fp16"}:
            raise ExportError(f"--backend {args.backend} supports fp32 and fp16 here; int8, int8-dynamic and "
                              f"8da4w are wired for {', '.join(PT2E_BACKENDS)}")
        if args.backend == "qnn":
            qnn_partitioner()

    def describe(self, args) -> str:
        return f"executorch + {args.backend}"

    def lower(self, model, component, mode, calib, art, args) -> dict:
        data, report = lower_component(model, component, mode, args.backend, calib)
        file = component_file(component, ".pte")
        art.path(file).write_bytes(data)
        methods = [m.name for m in build_contract(model.cfg).for_component(component)]
        return {"method_files": dict.fromkeys(methods, file), "delegate": args.backend, "delegation": report}

    def parity_unavailable(self, manifest: dict, out: Path) -> str | None:
        foreign = sorted({c["delegate"] for c in manifest["components"].values()} - set(RUNS_HERE))
        if foreign:
            return (f"not run on this host: the {', '.join(foreign)} delegate cannot execute here; "
                    "run the artifact's parity on a device that has it")
        return None

    def backend(self, artifact):
        from runtimes.backends.executorch import ExecuTorchBackend
        return ExecuTorchBackend(artifact)

    def summary_row(self, info: dict, files: dict) -> tuple[str, ...]:
        return (str(sum(r["delegated_nodes"] for r in info["delegation"].values())),
                str(sum(r["portable_nodes"] for r in info["delegation"].values())))

    def notes(self, info: dict) -> list[str]:
        return [f"{method}: portable fallbacks {r['portable_ops']}"
                for method, r in info["delegation"].items() if r["portable_ops"]]


TARGET = ExecuTorchTarget()


def build_parser():
    return pipeline.build_parser(TARGET)


def main(argv=None) -> int:
    return pipeline.main(TARGET, argv)


if __name__ == "__main__":
    sys.exit(main())
