"""`python -m export.to_executorch`: quantized, delegated ExecuTorch artifacts with a parity report.

    python -m export.to_executorch --preset tiny --quant int8 --out artifacts/tiny-int8

One .pte per component (x_encoder, predictor, y_encoder, y_decoder; the decoder's two stateless
methods, y_decoder_prefill and y_decoder_step, live in one program), in a self-describing artifact
directory (export/artifact.py). Per component: the precision/quantization (export/quantize.py), the
delegate, and a delegation report (which ops the delegate took, which fell back to portable
kernels). Then parity against the PyTorch reference on real held-out frames (export/parity.py),
through the real ExecuTorch runtime, when the delegate can run on this host (XNNPACK); Core ML and
Vulkan programs lower here but cannot run here, and the manifest says "not run on this host".

Exit status: 0 when the artifact meets the tolerances (or parity could not run here), 1 when it was
written but misses them (the failures are listed), 2 for bad input (nothing written).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from edge_vljepa.config import CAPTION_QUERY, PRESETS, ConfigError, get_preset
from edge_vljepa.contract import build_contract
from edge_vljepa.models import COMPONENTS, method_modules
from edge_vljepa.preprocess import TextTooLongError
from edge_vljepa.weights import CheckpointError
from export.artifact import ArtifactBuilder, ExportError, check_out_dir
from export.calibration import clip_windows, parity_inputs, record_inputs, stream_file, video_files
from export.parity import decode_agreement, failures, label_agreement, latency_ms, tensor_parity
from export.quantize import QUANT_MODES, quantized_program
from export.reference import CALIBRATION_QUERIES, default_labels, reference_backend

BACKENDS = ("xnnpack", "coreml", "vulkan", "qnn")
RUNS_HERE = ("xnnpack",)  # the delegates this host's ExecuTorch runtime has registered
PT2E_BACKENDS = ("xnnpack",)  # backends with a PT2E quantizer wired here; others: fp32 / fp16
MAX_CALIBRATION_CALLS = 32  # per method, evenly spread over the recorded calls (e.g. 672 labels)


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
    # Linear layers only (`names`, export.quantize.quantized_linears): they hold the weights and the
    # FLOPs; a global config would also annotate the int64 index paths (masks, positions) and the small
    # norm/RoPE matmuls that must stay exact.
    config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=dynamic)
    quantizer = XNNPACKQuantizer()
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


def as_args(spec, inputs: dict[str, np.ndarray]) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(np.ascontiguousarray(inputs[t.name])) for t in spec.inputs)


def lower_component(model, component: str, mode: str, backend: str, calib: dict[str, list[dict]]):
    """(.pte bytes, per-method delegation report) of one component."""
    from executorch.exir import to_edge_transform_and_lower

    contract, modules = build_contract(model.cfg), method_modules(model)
    programs = {}
    for spec in contract.for_component(component):
        recorded = calib[spec.name]
        step = max(1, len(recorded) // MAX_CALIBRATION_CALLS)
        calls = [as_args(spec, c) for c in recorded[::step][:MAX_CALIBRATION_CALLS]]
        programs[spec.name] = quantized_program(modules[spec.name], calls[0], mode, calls,
                                                pt2e_quantizer if backend in PT2E_BACKENDS else None)
    edge = to_edge_transform_and_lower(programs, partitioner=partitioners(backend))
    report = {name: delegation_report(edge.exported_program(name).graph_module) for name in programs}
    return edge.to_executorch().buffer, report


def parse_overrides(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        component, _, mode = item.partition("=")
        if component not in COMPONENTS or mode not in QUANT_MODES:
            raise ExportError(f"--quant-component {item!r}: expected COMPONENT=MODE with COMPONENT in "
                              f"{', '.join(COMPONENTS)} and MODE in {', '.join(QUANT_MODES)}")
        out[component] = mode
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m export.to_executorch", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Export the four VL-JEPA components to ExecuTorch (.pte), quantized and delegated, as a "
                    "self-describing artifact directory with a parity report against PyTorch.")
    p.add_argument("--preset", default="default", choices=list(PRESETS), help="model preset")
    p.add_argument("--checkpoint", type=Path, help="native .safetensors (default: the preset's shipped "
                                                    "weights if any, else random weights)")
    p.add_argument("--backend", default="xnnpack", choices=BACKENDS, help="ExecuTorch delegate")
    p.add_argument("--quant", default="fp32", choices=QUANT_MODES, help="precision of every component")
    p.add_argument("--quant-component", action="append", default=[], metavar="COMPONENT=MODE",
                   help="per-component override, e.g. predictor=8da4w (repeatable)")
    p.add_argument("--calibration", type=Path, help="video file or folder of videos for int8 calibration "
                                                     "(default: synthetic-world validation clips)")
    p.add_argument("--calibration-windows", type=int, default=16, help="windows used to calibrate")
    p.add_argument("--parity-windows", type=int, default=20, help="held-out windows for parity")
    p.add_argument("--no-parity", action="store_true", help="skip the parity run (it is recorded as skipped)")
    p.add_argument("--out", type=Path, required=True, help="artifact directory to create")
    p.add_argument("--force", action="store_true", help="replace --out if it exists and is not empty")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = get_preset(args.preset)
        quant = {c: args.quant for c in COMPONENTS} | parse_overrides(args.quant_component)
        if args.backend not in PT2E_BACKENDS and set(quant.values()) - {"fp32", "fp16"}:
            raise ExportError(f"--backend {args.backend} supports fp32 and fp16 here; int8, int8-dynamic and "
                              f"8da4w are wired for {', '.join(PT2E_BACKENDS)}")
        if args.backend == "qnn":
            qnn_partitioner()
        if min(args.calibration_windows, args.parity_windows) < 1:
            raise ExportError("--calibration-windows and --parity-windows must be >= 1")
        check_out_dir(args.out, args.force)
        reference, checkpoint = reference_backend(cfg, args.checkpoint)
    except (ExportError, ConfigError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    print(f"preset      {cfg.name} ({checkpoint})")
    print(f"backend     executorch + {args.backend}")
    print("precision   " + ", ".join(f"{c} {q}" for c, q in quant.items()))
    print(f"out         {args.out}")
    start = time.perf_counter()
    labels = default_labels(cfg)
    try:
        with tempfile.TemporaryDirectory(prefix="edge-vljepa-data-") as tmp, \
                ArtifactBuilder(args.out, args.force, "executorch", cfg, checkpoint) as art:
            tmp = Path(tmp)
            print("data        recording calibration inputs (real decoded frames)...", flush=True)
            calib_windows = clip_windows(video_files(args.calibration, "validation", 8, tmp / "calibration"),
                                         cfg, args.calibration_windows)
            calib = record_inputs(reference, cfg, calib_windows, CALIBRATION_QUERIES, labels)
            t_data = time.perf_counter()
            for component in tqdm(COMPONENTS, desc="lowering", unit="component"):
                t = time.perf_counter()
                data, report = lower_component(reference.model, component, quant[component], args.backend,
                                               calib)
                art.path(f"{component}.pte").write_bytes(data)
                art.add_component(component, f"{component}.pte",
                                  [m.name for m in build_contract(cfg).for_component(component)],
                                  quant=quant[component], delegate=args.backend, delegation=report,
                                  export_s=round(time.perf_counter() - t, 2))
            t_lowered = time.perf_counter()
            art.add_shared(reference, labels, calib, quant)
            art.write_manifest()
            parity, failed = run_parity(args, art, reference, cfg, labels, quant, tmp)
            art.manifest["parity"] = parity
            art.manifest["timings_s"] = {"data": round(t_data - start, 1),
                                         "lowering": round(t_lowered - t_data, 1),
                                         "parity": round(time.perf_counter() - t_lowered, 1)}
            out = art.commit()
    except (ExportError, TextTooLongError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print_summary(out, art.manifest, time.perf_counter() - start)
    if failed:
        print("PARITY FAILED (the artifact was written; see manifest.json 'parity'):")
        for line in failed:
            print(f"  {line}")
        return 1
    return 0


def run_parity(args, art, reference, cfg, labels, quant, tmp: Path) -> tuple[dict, list[str]]:
    if args.no_parity:
        return {"status": "skipped (--no-parity)"}, []
    if args.backend not in RUNS_HERE:
        return {"status": f"not run on this host: the {args.backend} delegate cannot execute here; "
                          "run the artifact's parity on a device that has it"}, []
    from runtimes.artifact import Artifact
    from runtimes.executorch_backend import ExecuTorchBackend

    print("parity      held-out clips and a held-out stream through the ExecuTorch runtime...", flush=True)
    candidate = ExecuTorchBackend(Artifact(art.dir))
    windows = clip_windows(video_files(None, "test", 10, tmp / "parity"), cfg, args.parity_windows)
    recorded = parity_inputs(reference, cfg, windows, labels)
    tensors = tensor_parity(reference, candidate, recorded)
    latency = latency_ms(reference, candidate, recorded)
    tasks = {"labels": label_agreement(reference, candidate, cfg, windows, labels, CAPTION_QUERY),
             "decode_events": decode_agreement(reference, candidate, cfg, stream_file(tmp / "stream"),
                                               CAPTION_QUERY)}
    failed = failures(quant, tensors, tasks, build_contract(cfg))
    return {"status": "fail" if failed else "pass", "host": "executorch.runtime (python)", "tensors": tensors,
            "latency_ms": {"threads": torch.get_num_threads(), **latency}, "tasks": tasks,
            "failures": failed}, failed


def print_summary(out: Path, manifest: dict, seconds: float) -> None:
    parity = manifest["parity"]
    print(f"\n{'component':<12}{'quant':<14}{'size MB':>9}{'delegated':>11}{'portable':>10}  "
          f"{'worst cosine':>12}{'max abs':>11}")
    latency = parity.get("latency_ms", {})
    for component, info in manifest["components"].items():
        size = manifest["files"][info["file"]]["size"] / 1e6
        delegated = sum(r["delegated_nodes"] for r in info["delegation"].values())
        portable = sum(r["portable_nodes"] for r in info["delegation"].values())
        cos = mx = ""
        if "tensors" in parity:
            metrics = [m for method in info["methods"] for m in parity["tensors"][method]["outputs"].values()]
            cos, mx = f"{min(m['cosine'] for m in metrics):.6f}", f"{max(m['max_abs'] for m in metrics):.2e}"
        print(f"{component:<12}{info['quant']:<14}{size:>9.2f}{delegated:>11}{portable:>10}  "
              f"{cos:>12}{mx:>11}")
        for method, r in info["delegation"].items():
            if r["portable_ops"]:
                print(f"  {method}: portable fallbacks {r['portable_ops']}")
    if latency:
        print(f"\nmedian latency, ms ({latency['threads']} threads; eager PyTorch fp32 in the same run)")
        print(f"{'method':<20}{'executorch':>12}{'eager':>10}{'ratio':>8}")
        for method, t in latency.items():
            if method != "threads":
                print(f"{method:<20}{t['candidate']:>12.2f}{t['reference']:>10.2f}{t['ratio']:>8.2f}")
    if "tasks" in parity:
        lab, dec = parity["tasks"]["labels"], parity["tasks"]["decode_events"]
        print(f"top-1 label agreement {lab['top1_agreement']:.1%} on {lab['windows']} held-out windows; "
              f"decode events F1 {dec['f1']:.2f} ({dec['candidate_decodes']} vs {dec['reference_decodes']} "
              f"reference), caption agreement {dec['caption_agreement']:.1%}")
    print(f"parity      {parity['status']}")
    print(f"wrote {out} in {seconds:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
