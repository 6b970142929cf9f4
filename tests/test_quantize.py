"""Which Linear layers the integer modes quantize (export/quantize.py)."""

from __future__ import annotations

from torch import nn

from edge_vljepa.config import get_preset
from edge_vljepa.models import build_model, method_modules
from export.quantize import FP32_LINEARS, quantized_linears


def test_bert_feed_forward_stays_fp32_and_everything_else_is_quantized():
    modules = method_modules(build_model(get_preset("tiny")))
    y_encoder = quantized_linears(modules["y_encoder"])
    linears = [n for n, m in modules["y_encoder"].named_modules() if isinstance(m, nn.Linear)]
    kept = sorted(set(linears) - set(y_encoder))
    layers = get_preset("tiny").y_encoder.num_hidden_layers
    assert len(kept) == 2 * layers and all(FP32_LINEARS.search(n) for n in kept)
    assert any(n.endswith("attention.output.dense") for n in y_encoder)  # attention stays quantized
    assert any(n.endswith("head") for n in y_encoder)
    for method in ("x_encoder", "predictor", "y_decoder_step"):  # no BERT feed-forward there
        assert quantized_linears(modules[method]) == [n for n, m in modules[method].named_modules()
                                                      if isinstance(m, nn.Linear)]


def test_onnx_int8_leaves_the_same_feed_forward_matmuls_unquantized():
    import torch

    from edge_vljepa.contract import build_contract
    from export import pipeline
    from export.to_onnx import linear_nodes
    cfg = get_preset("tiny")
    module = method_modules(build_model(cfg).eval())["y_encoder"]
    spec = build_contract(cfg)["y_encoder"]
    example = tuple(torch.from_numpy(t.example()) for t in spec.inputs)
    with pipeline.quiet():
        onnx_program = torch.onnx.export(torch.export.export(module, example, strict=False), example,
                                         dynamo=True, optimize=True, verbose=False)
    assert len(linear_nodes(onnx_program.model_proto)) == len(quantized_linears(module))


def test_pt2e_static_int8_quantizes_linear_inputs_and_outputs_only():
    """XNNPACK's quantizer would also quantize every `cat` (one scale shared by all its inputs), which
    rounded the predictor's query embeddings to ~0; only Linear inputs and outputs may carry q/dq."""
    import torch

    from edge_vljepa.contract import build_contract
    from export import pipeline
    from export.quantize import _pt2e
    from export.to_executorch import pt2e_quantizer
    cfg = get_preset("tiny")
    module = method_modules(build_model(cfg).eval())["predictor"]
    spec = build_contract(cfg)["predictor"]
    example = tuple(torch.from_numpy(t.example()) for t in spec.inputs)
    with pipeline.quiet():
        converted = _pt2e(module, example, pt2e_quantizer(False, quantized_linears(module)), [example])
    linear = torch.ops.aten.linear.default
    quantize = torch.ops.quantized_decomposed.quantize_per_tensor.default
    reshapes = {torch.ops.aten.view.default, torch.ops.aten.reshape.default, torch.ops.aten.transpose.int,
                torch.ops.aten.permute.default, quantize,
                torch.ops.quantized_decomposed.dequantize_per_tensor.default}  # pass a linear's output on

    def source(node):
        while node.target in reshapes:
            node = node.args[0]
        return node

    quantized = [n for n in converted.graph.nodes if n.target == quantize]
    assert quantized
    for node in quantized:
        readers = [u for dq in node.users for u in dq.users]
        feeds_linear = bool(readers) and all(u.target == linear for u in readers)
        assert source(node.args[0]).target == linear or feeds_linear, f"{node.args[0]} is quantized"
    assert torch.ops.aten.cat.default in {n.target for n in converted.graph.nodes}
