"""`python -m experiments.bench gpu`: PyTorch CUDA latency of every contract method of a preset.

Random weights unless a checkpoint is given, in fp32, fp16 and bf16, batch 1 as in streaming:
median and p90 over CUDA-event timed runs after warm-up, the matmul FLOPs of one call
(torch.utils.flop_counter) and the TFLOP/s they achieve, peak GPU memory.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from edge_vljepa.config import ModelConfig
from edge_vljepa.contract import build_contract
from edge_vljepa.models import build_model, method_modules
from edge_vljepa.pretrained import load_model
from experiments.host import cpu_name, gpu_name
from experiments.reports import command_line

DTYPES = ("fp32", "fp16", "bf16")


def example_inputs(spec, torch_dtype, device) -> list:
    """Contract inputs of one method as tensors: floats random in `torch_dtype`, masks all ones,
    other integers (token ids, positions) zeros; shapes exactly the contract's."""
    rng = np.random.default_rng(0)
    args = []
    for t in spec.inputs:
        if t.dtype == "int64":
            array = np.ones(t.shape, np.int64) if "mask" in t.name else np.zeros(t.shape, np.int64)
            args.append(torch.from_numpy(array).to(device))
        else:
            args.append(torch.from_numpy(t.example(rng)).to(device, torch_dtype))
    return args


def gpu_latency(cfg: ModelConfig, dtypes: list[str], warmup: int, runs: int,
                checkpoint: Path | None = None) -> list[dict]:
    """One row per (method, dtype): median / p90 ms, GFLOP per call, TFLOP/s, peak memory GiB."""
    weights = (load_model(cfg, checkpoint) if checkpoint else build_model(cfg)).eval()
    rows = []
    for name in dtypes:
        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]
        model = copy.deepcopy(weights).to("cuda", dtype)
        modules = method_modules(model)
        for spec in build_contract(cfg):
            args = example_inputs(spec, dtype, "cuda")
            module = modules[spec.name]
            with torch.inference_mode():
                with FlopCounterMode(display=False) as counter:
                    module(*args)
                for _ in range(warmup):
                    module(*args)
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                times = []
                for _ in range(runs):
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                    module(*args)
                    end.record()
                    end.synchronize()
                    times.append(start.elapsed_time(end))
            median = float(np.median(times))
            flops = counter.get_total_flops()
            rows.append({"method": spec.name, "dtype": name, "median_ms": median,
                         "p90_ms": float(np.percentile(times, 90)), "gflop": flops / 1e9,
                         "tflops": flops / median / 1e9,
                         "peak_gib": torch.cuda.max_memory_allocated() / 2**30})
        del model, modules
        torch.cuda.empty_cache()
    return rows


def gpu_report(args, cfg: ModelConfig, rows: list[dict]) -> str:
    weights = f"checkpoint {args.checkpoint}" if args.checkpoint else "random weights"
    lines = [f"# PyTorch CUDA latency: model {cfg.name} ({weights})",
             "", f"Command: `{command_line('experiments.bench', args.argv)}`", "",
             f"Machine: {cpu_name()}, {gpu_name()}; torch {torch.__version__}", "",
             f"Batch 1, contract shapes, eager PyTorch (no compile, no CUDA graphs); {args.warmup} warm-up "
             f"and {args.runs} timed runs per method, CUDA events; GFLOP = matmul FLOPs of one call "
             "(torch.utils.flop_counter); TFLOP/s = GFLOP / median; peak = max GPU memory allocated while "
             "timing (weights of all components included).", "",
             "| method | dtype | median ms | p90 ms | GFLOP | TFLOP/s | peak GiB | speed-up vs fp32 |",
             "|---|---|---|---|---|---|---|---|"]
    fp32 = {r["method"]: r["median_ms"] for r in rows if r["dtype"] == "fp32"}
    order = [spec.name for spec in build_contract(cfg)]
    for r in sorted(rows, key=lambda r: (order.index(r["method"]), DTYPES.index(r["dtype"]))):
        speedup = f"{fp32[r['method']] / r['median_ms']:.2f}x" if r["method"] in fp32 else "-"
        lines.append(f"| {r['method']} | {r['dtype']} | {r['median_ms']:.2f} | {r['p90_ms']:.2f} | "
                     f"{r['gflop']:.1f} | {r['tflops']:.1f} | {r['peak_gib']:.2f} | {speedup} |")
    return "\n".join(lines) + "\n"
