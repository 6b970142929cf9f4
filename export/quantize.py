"""Precision and quantization of one contract method, as a `torch.export` program ready to lower.

Modes (measured on this machine, docs/design.md, export rules):
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
  8da8w         torchao: dynamic int8 activations with one scale per token (PT2E's int8-dynamic has one
                per tensor), per-channel int8 weights; the size of int8. Lowers to XNNPACK's dynamically
                quantized fully-connected kernels, like 8da4w.

In every integer mode the feed-forward Linears of BERT-family encoders (FP32_LINEARS: the Y-Encoder's
MiniLM) stay fp32: their GELU activations carry the outliers that int8 activations cannot represent
(Bondarenko et al., "Understanding and Overcoming the Challenges of Efficient Transformer
Quantization", EMNLP 2021). Measured on the shipped Y-Encoder (label texts, worst cosine of the
embedding, PT2E int8 static): every Linear int8 0.896; feed-forward down-projections fp32 0.982; both
feed-forward Linears fp32 0.995 (int8-dynamic 0.995). In 8da4w its attention Linears keep int8 weights
too (BERT_ATTENTION: 0.998; int4 there: 0.960). Its size is mostly the token-embedding table, which no mode
here quantizes, so this costs little.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable

import torch
from torch import nn

QUANT_MODES = ("fp32", "fp16", "int8", "int8-dynamic", "8da4w", "8da8w")
GROUP_SIZE = 32
BOUNDARY_LINEARS = ("patch_embed.proj", "visual_proj", "prefix_proj", "head")  # module name suffixes
FP32_LINEARS = re.compile(r"encoder\.layer\.\d+\.(intermediate|output)\.dense$")  # BERT feed-forward
BERT_ATTENTION = re.compile(r"encoder\.layer\.\d+\.attention\.")  # int8 weights in 8da4w, never int4


def quantized_linears(module: nn.Module) -> list[str]:
    """Names of the Linear layers an integer mode quantizes: all but FP32_LINEARS."""
    return [name for name, m in module.named_modules()
            if isinstance(m, nn.Linear) and not FP32_LINEARS.search(name)]


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


def _8da4w(module: nn.Module, group_size: int = GROUP_SIZE, qparams: str = "affine",
           int4: Callable[[str], bool] = lambda fqn: True) -> nn.Module:
    """8da4w as described above. The keywords exist for scripts/int8_label_agreement.py's variants:
    qparams "hqq_scale_only" (torchao's HQQ scales), int4(fqn) False keeps a Linear at int8 weights
    (all False: 8da8w, torchao's per-token dynamic int8)."""
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig, quantize_
    from torchao.quantization.granularity import PerAxis, PerGroup

    names = set(quantized_linears(module))

    def int8_weights(fqn: str) -> bool:
        return fqn.endswith(BOUNDARY_LINEARS) or BERT_ATTENTION.search(fqn) is not None or not int4(fqn)

    quantized = copy.deepcopy(module)
    quantize_(quantized, Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4,
                                                               weight_granularity=PerGroup(group_size),
                                                               intx_choose_qparams_algorithm=qparams),
              filter_fn=lambda m, fqn: (fqn in names and m.in_features % group_size == 0
                                        and not int8_weights(fqn)))
    quantize_(quantized, Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int8,
                                                               weight_granularity=PerAxis(0)),
              filter_fn=lambda m, fqn: fqn in names and int8_weights(fqn))
    return quantized


def quantized_program(module: nn.Module, example: tuple, mode: str, calibration: list[tuple],
                      pt2e_quantizer: Callable[[bool, list[str]], object] | None = None
                      ) -> torch.export.ExportedProgram:
    """`module` (a contract method, see edge_vljepa.models.method_modules) exported in `mode`.

    calibration: recorded input tuples of real data (int8 static). pt2e_quantizer(is_dynamic, names)
    builds the backend's PT2E quantizer for the Linear modules `names` (quantized_linears); backends
    without one support fp32 and fp16 only.
    """
    if mode not in QUANT_MODES:
        raise ValueError(f"unknown quantization {mode!r}; choose one of: {', '.join(QUANT_MODES)}")
    if mode == "fp32":
        return _export(module, example)
    if mode == "fp16":
        return _export(_Fp16(module), example)
    if mode == "8da4w":
        return _export(_8da4w(module), example)
    if mode == "8da8w":
        return _export(_8da4w(module, int4=lambda fqn: False), example)
    if pt2e_quantizer is None:
        raise ValueError(f"{mode} needs a PT2E quantizer for this backend")
    dynamic = mode == "int8-dynamic"
    if not dynamic and not calibration:
        raise ValueError("int8 (static) needs calibration inputs")
    calibration = calibration[:1] if dynamic else calibration  # dynamic: one pass to trace observers
    quantizer = pt2e_quantizer(dynamic, quantized_linears(module))
    return _export(_pt2e(module, example, quantizer, calibration), example)
