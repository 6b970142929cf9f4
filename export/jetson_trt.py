"""`python -m export.jetson_trt`: TensorRT engines from an ONNX artifact, and their parity, on a Jetson.

    python -m export.jetson_trt artifacts/default-onnx-fp16 --out trt-fp16             # on the Jetson
    python -m export.jetson_trt artifacts/default-onnx-int8 --out trt-int8 --dry-run   # anywhere

TensorRT cannot be installed on the development machines, so nothing here has run against a real
TensorRT: on this host only `--dry-run` works (it writes and prints the commands); the board run
is written from trtexec's documented flags and output format and must be checked on a Jetson.

For each contract method of an `export.to_onnx` artifact it writes `commands.sh` with two trtexec
lines, one building the engine (`--saveEngine`) and one running it on the artifact's golden inputs
(`--loadInputs`, raw files in the contract's shapes and dtypes) and exporting its outputs
(`--exportOutput`, JSON). The ONNX files have static shapes, equal to the contract's (checked here),
and trtexec refuses `--shapes` for static models, so the shapes appear in each command's comment and
in the input files. Engines are built `--stronglyTyped` (TensorRT 10, JetPack 6.1+): TensorRT then
computes in exactly the precisions the ONNX graph states, which is what makes the fp16 engine keep
LayerNorm, RMSNorm and softmax in fp32 (export it with `--quant fp16`) and the int8 engine run the
S8S8 QDQ MatMuls in int8 and the rest in fp32 (export it with `--quant int8`). int8-dynamic uses
ONNX Runtime-only operators (MatMulInteger) and is refused.

Without --dry-run it runs the commands, compares each output with the golden output of the PyTorch
reference (cosine, max abs, SNR; tolerances from the manifest) and the median GPU compute time
trtexec reports, prints a table and writes `parity.json`. Exit: 0 pass, 1 tolerances missed,
2 bad input or trtexec missing/failing. Golden data is one recorded call per method (the first),
so this is a smaller check than the exporters' parity report; trtexec writes values with 6
significant digits, so max abs below ~1e-6 relative is not resolved.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from edge_vljepa.cli import HelpFormatter
from edge_vljepa.parity import compare
from runtimes.artifact import Artifact, ArtifactError, file_output_names

TRTEXEC_PATHS = ("/usr/src/tensorrt/bin/trtexec",)  # where JetPack installs it (not on PATH by default)
ENGINE_FLAGS = {"fp32": ["--stronglyTyped"], "fp16": ["--stronglyTyped"], "int8": ["--stronglyTyped"]}
MEDIAN = re.compile(r"GPU Compute Time:.*?median = ([0-9.]+) ms")


class JetsonError(RuntimeError):
    """Bad input or a failed TensorRT step; the message says what to do."""


def trtexec_path(given: str | None) -> str | None:
    if given:
        return given if Path(given).is_file() or shutil.which(given) else None
    return shutil.which("trtexec") or next((p for p in TRTEXEC_PATHS if Path(p).is_file()), None)


def check_shapes(path: Path, spec) -> None:
    """The ONNX file's inputs have the contract's static shapes (skipped if onnx is not installed)."""
    try:
        import onnx
    except ImportError:
        return
    graph = onnx.load(str(path), load_external_data=False).graph
    shapes = {i.name: tuple(d.dim_value for d in i.type.tensor_type.shape.dim) for i in graph.input}
    expected = {t.name: t.shape for t in spec.inputs}
    if shapes != expected:
        raise JetsonError(f"{path.name}: inputs {shapes} differ from the contract {expected}")


def plan(artifact: Artifact, out: Path, trtexec: str) -> list[dict]:
    """Per method: input files (golden inputs, contract shapes and dtypes) and the two trtexec commands."""
    golden = np.load(artifact.dir / artifact.manifest["golden"])
    steps = []
    for spec in artifact.contract:
        info = artifact.manifest["components"][spec.component]
        if info["quant"] not in ENGINE_FLAGS:
            raise JetsonError(f"{spec.component} is {info['quant']}: TensorRT has no kernels for ONNX "
                              "Runtime's dynamic quantization (MatMulInteger); export it with --quant int8 "
                              "or fp16")
        onnx_file = artifact.method_file(spec.name)
        check_shapes(onnx_file, spec)
        loads = []
        for t in spec.inputs:
            file = out / "inputs" / f"{spec.name}.{t.name}.bin"
            file.parent.mkdir(parents=True, exist_ok=True)
            golden[f"{spec.name}.in.{t.name}"].astype(t.dtype).tofile(file)
            loads.append(f"'{t.name}':{file}")
        engine, outputs = out / f"{spec.name}.plan", out / "outputs" / f"{spec.name}.json"
        outputs.parent.mkdir(parents=True, exist_ok=True)
        shapes = ", ".join(f"{t.name} {'x'.join(map(str, t.shape))} {t.dtype}" for t in spec.inputs)
        steps.append({
            "method": spec.name, "quant": info["quant"], "outputs": outputs,
            "comment": f"{spec.name} ({info['quant']}): {shapes}",
            "build": [trtexec, f"--onnx={onnx_file}", f"--saveEngine={engine}", *ENGINE_FLAGS[info["quant"]],
                      "--skipInference"],
            "run": [trtexec, f"--loadEngine={engine}", f"--loadInputs={','.join(loads)}",
                    f"--exportOutput={outputs}", "--warmUp=500", "--iterations=100"],
        })
    return steps


def write_script(steps: list[dict], out: Path) -> Path:
    lines = ["#!/usr/bin/env bash",
             "# TensorRT engines and their runs on the golden inputs (python -m export.jetson_trt)",
             "set -euo pipefail"]
    for step in steps:
        lines += ["", f"# {step['comment']}", shlex.join(step["build"]), shlex.join(step["run"])]
    script = out / "commands.sh"
    script.write_text("\n".join(lines) + "\n")
    script.chmod(0o755)
    return script


def run(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise JetsonError(f"{shlex.join(command)} failed (exit {result.returncode}):\n{tail}")
    return result.stdout


def read_outputs(path: Path, spec) -> dict[str, np.ndarray]:
    """trtexec --exportOutput JSON ([{name, dimensions "1x256", values}]) as contract-named arrays."""
    by_name = {o["name"]: o for o in json.loads(path.read_text())}
    arrays = {}
    for t, name in zip(spec.outputs, file_output_names(spec), strict=True):
        if name not in by_name:
            raise JetsonError(f"{path}: no output {name!r} (has {sorted(by_name)})")
        arrays[t.name] = np.asarray(by_name[name]["values"], dtype=np.float64).reshape(t.shape)
    return arrays


def parity(artifact: Artifact, steps: list[dict]) -> dict:
    golden = np.load(artifact.dir / artifact.manifest["golden"])
    tolerances = artifact.manifest["tolerances"]["tensor"]
    report, failed = {}, []
    for step in steps:
        run(step["build"])
        log = run(step["run"])
        spec = artifact.contract[step["method"]]
        median = MEDIAN.search(log)
        outputs = read_outputs(step["outputs"], spec)
        metrics = {name: compare(golden[f"{spec.name}.out.{name}"], value) for name, value in outputs.items()}
        report[spec.name] = {"quant": step["quant"], "median_ms": float(median.group(1)) if median else None,
                             "outputs": metrics}
        for name, m in metrics.items():
            for metric, bound in tolerances[step["quant"]].items():
                if (m[metric] > bound) if metric == "max_abs" else (m[metric] < bound):
                    failed.append(f"{spec.name}.{name} ({step['quant']}): {metric} {m[metric]:.6g}, "
                                  f"bound {bound}")
    return {"status": "fail" if failed else "pass", "host": "tensorrt (trtexec)", "methods": report,
            "failures": failed}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m export.jetson_trt",
                                formatter_class=HelpFormatter,
                                description="Build TensorRT engines from an export.to_onnx artifact with "
                                            "trtexec and check them against the artifact's golden outputs "
                                            "(on a Jetson).")
    p.add_argument("artifact", type=Path, help="artifact directory written by python -m export.to_onnx")
    p.add_argument("--out", type=Path, required=True, help="folder for engines, inputs, outputs, commands.sh")
    p.add_argument("--trtexec", help="trtexec binary (default: on PATH or /usr/src/tensorrt/bin/trtexec)")
    p.add_argument("--dry-run", action="store_true",
                   help="only write commands.sh and the inputs, and print them")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        artifact = Artifact(args.artifact)
        if artifact.target != "onnxruntime":
            raise JetsonError(f"{artifact.dir} is a {artifact.target!r} artifact; TensorRT builds from an "
                              "ONNX one (python -m export.to_onnx)")
        trtexec = trtexec_path(args.trtexec)
        if trtexec is None and not args.dry_run:
            raise JetsonError("trtexec not found: TensorRT runs on the Jetson (JetPack installs "
                              "/usr/src/tensorrt/bin/trtexec) and cannot be installed on this host; "
                              "use --dry-run here to write the commands")
        args.out.mkdir(parents=True, exist_ok=True)
        steps = plan(artifact, args.out, trtexec or "trtexec")
        script = write_script(steps, args.out)
        print(script.read_text())
        if args.dry_run:
            print(f"dry run: wrote {script} and the golden inputs; run it, or this command without "
                  "--dry-run, on the Jetson")
            return 0
        result = parity(artifact, steps)
    except (JetsonError, ArtifactError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    (args.out / "parity.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"{'method':<20}{'quant':<8}{'median ms':>10}  {'worst cosine':>12}{'max abs':>11}")
    for method, r in result["methods"].items():
        cos = min(m["cosine"] for m in r["outputs"].values())
        mx = max(m["max_abs"] for m in r["outputs"].values())
        median = f"{r['median_ms']:.3f}" if r["median_ms"] is not None else "?"
        print(f"{method:<20}{r['quant']:<8}{median:>10}  {cos:>12.6f}{mx:>11.2e}")
    print(f"parity      {result['status']} (golden inputs, TensorRT vs PyTorch reference)")
    for line in result["failures"]:
        print(f"  {line}")
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
