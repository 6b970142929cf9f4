"""Precision and quantization of one contract method, as a `torch.export` program ready to lower.

Modes (measured on this machine, DESIGN section 4):
  fp32          the eager model as is.
  fp16          weights and activations in half; LayerNorm, RMSNorm and softmax stay in fp32 (the
                model code upcasts them when its input is not fp32); I/O stays fp32 (the contract).
  int8          PT2E static int8 (per-channel weights, per-tensor activations), calibrated on the
                recorded inputs of real frames; the quantizer is the backend's (XNNPACK's here).
  int8-dynamic  PT2E dynamic int8 activations, per-channel int8 weights; no calibration needed.
  8da4w         torchao: dynamic int8 activations, int4 weights in groups of 32 (Linear layers whose
                input width is a multiple of the group size); about half the size of int8. The
                projections in and out of a component's embedding spaces (BOUNDARY_LINEARS) keep int8
                per-channel weights: int4 there cost the most accuracy (predictor, random init:
                cosine 0.986 -> 0.996 with them at int8; measured by quantizing each group alone).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

QUANT_MODES = ("fp32", "fp16", "int8", "int8-dynamic", "8da4w")
GROUP_SIZE = 32
BOUNDARY_LINEARS = ("patch_embed.proj", "visual_proj", "prefix_proj", "head")  # module name suffixes


class _Fp16(nn.Module):
    """Runs a method in half precision behind the contract's fp32 inputs and outputs."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = copy.deepcopy(module).half()

    def forward(self, *inputs):
        inputs = [x.half() if x.is_floating_point() else x for x in inputs]
        return tuple(y.float() if y.is_floating_point() else y for y in self.module(*inputs))


def _export(module: nn.Module, example: tuple) -> torch.export.ExportedProgram:
    return torch.export.export(module, example, strict=False)


def _pt2e(module: nn.Module, example: tuple, quantizer, calibration: list[tuple]) -> nn.Module:
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    prepared = prepare_pt2e(_export(module, example).module(), quantizer)
    for inputs in calibration:
        prepared(*inputs)
    return convert_pt2e(prepared)


def _8da4w(module: nn.Module) -> nn.Module:
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig, quantize_
    from torchao.quantization.granularity import PerAxis, PerGroup

    def boundary(fqn: str) -> bool:
        return fqn.endswith(BOUNDARY_LINEARS)

    quantized = copy.deepcopy(module)
    quantize_(quantized, Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4,
                                                               weight_granularity=PerGroup(GROUP_SIZE)),
              filter_fn=lambda m, fqn: isinstance(m, nn.Linear) and m.in_features % GROUP_SIZE == 0
              and not boundary(fqn))
    quantize_(quantized, Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int8,
                                                               weight_granularity=PerAxis(0)),
              filter_fn=lambda m, fqn: isinstance(m, nn.Linear) and boundary(fqn))
    return quantized


def quantized_program(module: nn.Module, example: tuple, mode: str, calibration: list[tuple],
                      pt2e_quantizer: Callable[[bool], object] | None = None) -> torch.export.ExportedProgram:
    """`module` (a contract method, see edge_vljepa.models.method_modules) exported in `mode`.

    calibration: recorded input tuples of real data (int8 static). pt2e_quantizer(is_dynamic) builds
    the backend's PT2E quantizer; backends without one support fp32 and fp16 only.
    """
    if mode not in QUANT_MODES:
        raise ValueError(f"unknown quantization {mode!r}; choose one of: {', '.join(QUANT_MODES)}")
    if mode == "fp32":
        return _export(module, example)
    if mode == "fp16":
        return _export(_Fp16(module), example)
    if mode == "8da4w":
        return _export(_8da4w(module), example)
    if pt2e_quantizer is None:
        raise ValueError(f"{mode} needs a PT2E quantizer for this backend")
    dynamic = mode == "int8-dynamic"
    if not dynamic and not calibration:
        raise ValueError("int8 (static) needs calibration inputs")
    calibration = calibration[:1] if dynamic else calibration  # dynamic: one pass to trace observers
    return _export(_pt2e(module, example, pt2e_quantizer(dynamic), calibration), example)
