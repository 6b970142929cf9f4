"""Model tests on the tiny preset: contract shapes, golden values, export, numerics of the building blocks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edge_vljepa.config import get_preset
from edge_vljepa.contract import build_contract
from edge_vljepa.models import build_model, method_modules, parameter_counts
from edge_vljepa.models.layers import apply_rope, rotation_matrix
from edge_vljepa.models.x_encoder import vjepa2_rope_tables
from runtimes.backends.pytorch import PyTorchBackend

CFG = get_preset("tiny")
CONTRACT = build_contract(CFG)
GOLDEN = Path(__file__).parent / "golden" / "tiny.json"


@pytest.fixture(scope="module")
def model():
    return build_model(CFG, seed=0)


def contract_inputs(method: str, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Valid, deterministic inputs for a method: random floats, in-vocabulary ids, sensible masks."""
    rng = np.random.default_rng(seed)
    arrays = []
    for spec in CONTRACT[method].inputs:
        if spec.name in ("query_mask", "attention_mask"):
            a = np.zeros(spec.shape, np.int64)
            a[:, : spec.shape[1] // 2] = 1
        elif spec.name == "position":
            a = np.array([CFG.y_decoder.prefix_len + 1], np.int64)
        elif spec.dtype == "int64":
            a = rng.integers(4, 90, size=spec.shape, dtype=np.int64)  # in both vocabularies
        elif spec.name == "embedding":
            a = rng.standard_normal(spec.shape).astype(np.float32)
            a /= np.linalg.norm(a)
        else:
            a = rng.standard_normal(spec.shape).astype(np.float32)
        arrays.append(torch.from_numpy(a))
    return tuple(arrays)


@pytest.mark.parametrize("method", list(CONTRACT.methods))
def test_contract_shapes_through_backend(method):
    backend = PyTorchBackend(CFG)
    spec = CONTRACT[method]
    inputs = {t.name: a.numpy() for t, a in zip(spec.inputs, contract_inputs(method), strict=True)}
    outputs = backend.run(method, inputs)
    assert list(outputs) == [t.name for t in spec.outputs]
    for t in spec.outputs:
        assert outputs[t.name].shape == t.shape and str(outputs[t.name].dtype) == t.dtype
        assert np.isfinite(outputs[t.name]).all()


def test_embeddings_are_unit_norm(model):
    mods = method_modules(model)
    with torch.no_grad():
        for method in ("predictor", "y_encoder"):
            (emb,) = mods[method](*contract_inputs(method))
            torch.testing.assert_close(emb.norm(dim=-1), torch.ones(1))


def golden_outputs(model) -> dict[str, list[float]]:
    mods = method_modules(model)
    out = {}
    with torch.no_grad():
        for method in CONTRACT.methods:
            first = mods[method](*contract_inputs(method))[0].flatten()
            out[method] = [round(float(v), 6) for v in first[:: max(1, first.numel() // 8)][:8]]
    return out


def test_golden_values_of_fixed_seed_tiny_model(model):
    """Catches any unintended change of architecture, init or numerics (regenerate only on purpose:
    python -c "from tests.test_models import write_golden; write_golden()")."""
    expected = json.loads(GOLDEN.read_text())
    actual = golden_outputs(model)
    for method in CONTRACT.methods:
        np.testing.assert_allclose(actual[method], expected[method], atol=1e-4, rtol=0, err_msg=method)


def write_golden() -> None:
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(golden_outputs(build_model(CFG, seed=0)), indent=1) + "\n")


@pytest.mark.parametrize("method", list(CONTRACT.methods))
def test_torch_export_static_shapes_matches_eager(model, method):
    module = method_modules(model)[method]
    inputs = contract_inputs(method)
    program = torch.export.export(module, inputs, strict=False)
    for node in program.graph.nodes:  # static: no symbolic sizes anywhere
        val = node.meta.get("val")
        if isinstance(val, torch.Tensor):
            assert all(isinstance(s, int) for s in val.shape), node
            assert val.dim() <= 6, f"{node} has {val.dim()} dims"
    ops = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert not any("scaled_dot_product" in op or "convolution" in op for op in ops), ops
    other = contract_inputs(method, seed=1)
    with torch.no_grad():
        for got, want in zip(program.module()(*other), module(*other), strict=True):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_kv_cached_decoding_equals_full_recomputation(model):
    dec = model.y_decoder
    p = CFG.y_decoder.prefix_len
    emb = contract_inputs("y_decoder_prefill")[0]
    tokens = [CFG.y_decoder.bos_token_id]
    with torch.no_grad():
        logits, cache = dec.prefill(emb)
        cached = [logits]
        for i in range(CFG.y_decoder.max_new_tokens - 1):
            tok = int(cached[-1].argmax()) if i % 2 else 4 + i  # mix greedy and forced tokens
            tokens.append(tok)
            logits, cache = dec.step(torch.tensor([[tok]]), torch.tensor([p + 1 + i]), cache)
            cached.append(logits)
        full = dec(emb, torch.tensor([tokens]))[0]  # (n, V), teacher forced, no cache
    assert full.shape[0] == len(cached) == CFG.y_decoder.max_new_tokens
    torch.testing.assert_close(torch.cat(cached), full, atol=1e-5, rtol=0)


def test_linear_patch_embedding_equals_conv3d(model):
    x = CFG.x_encoder
    conv = nn.Conv3d(x.in_chans, x.embed_dim, (x.tubelet_size, x.patch_size, x.patch_size),
                     stride=(x.tubelet_size, x.patch_size, x.patch_size))
    embed = build_model(CFG).x_encoder.patch_embed
    embed.load_state_dict({"proj.weight": conv.weight.detach().clone(),  # 5-D Conv3d weight
                           "proj.bias": conv.bias.detach().clone()})
    video = torch.randn(2, x.in_chans, x.num_frames, x.img_size, x.img_size)  # batch 2: training path too
    with torch.no_grad():
        want = conv(video).flatten(2).transpose(1, 2)  # (B, N, D), tokens in (t, h, w) order
        torch.testing.assert_close(embed(video), want, atol=1e-5, rtol=0)


def upstream_rotate_queries_or_keys(x, pos):
    """Verbatim logic of vjepa2 src/models/utils/modules.py::rotate_queries_or_keys (the reference)."""
    _, _, _, d = x.size()
    omega = torch.arange(d // 2, dtype=x.dtype)
    omega /= d / 2.0
    omega = 1.0 / 10000**omega
    freq = torch.einsum("..., f -> ... f", pos, omega)
    emb_sin = freq.sin().squeeze(-1).repeat(1, 1, 1, 2)
    emb_cos = freq.cos().squeeze(-1).repeat(1, 1, 1, 2)
    y = x.unflatten(-1, (-1, 2))
    y1, y2 = y.unbind(dim=-1)
    y = torch.stack((-y2, y1), dim=-1).flatten(-2)
    return (x * emb_cos) + (y * emb_sin)


def upstream_rope_3d(q, grid):
    """vjepa2 RoPEAttention.forward's rotation of q: separate_positions + per-axis rotation + concat."""
    t, h, w = grid
    head_dim = q.shape[-1]
    ids = torch.arange(t * h * w)
    frame = ids // (h * w)
    height = (ids - h * w * frame) // w
    width = (ids - h * w * frame) - w * height
    split = int(2 * ((head_dim // 3) // 2))
    parts, s = [], 0
    for pos in (1.0 * frame, 1.0 * height, 1.0 * width):
        parts.append(upstream_rotate_queries_or_keys(q[..., s:s + split], pos=pos))
        s += split
    parts.append(q[..., s:])
    return torch.cat(parts, dim=-1)


@pytest.mark.parametrize("grid,head_dim", [((2, 4, 4), 32), ((3, 2, 5), 64), ((1, 3, 3), 20)])
def test_vjepa2_rope_matches_upstream_layout(grid, head_dim):
    q = torch.randn(1, 2, grid[0] * grid[1] * grid[2], head_dim, dtype=torch.float64)
    cos, sin = vjepa2_rope_tables(grid, head_dim)
    ours = apply_rope(q, cos.double(), sin.double(), rotation_matrix(head_dim, interleaved=True))
    torch.testing.assert_close(ours, upstream_rope_3d(q, grid), atol=1e-6, rtol=0)


def test_padding_is_invisible(model):
    """Changing what sits in padded positions must not change the predictor or Y-Encoder output."""
    mods = method_modules(model)
    with torch.no_grad():
        for method, ids_index, mask_index in (("predictor", 1, 2), ("y_encoder", 0, 1)):
            inputs = list(contract_inputs(method))
            ref = mods[method](*inputs)[0]
            ids = inputs[ids_index].clone()
            ids[inputs[mask_index] == 0] = 7
            inputs[ids_index] = ids
            torch.testing.assert_close(mods[method](*inputs)[0], ref, atol=1e-6, rtol=0)
            inputs[ids_index][0, 0] += 1  # a real token: the output must move
            assert not torch.allclose(mods[method](*inputs)[0], ref, atol=1e-6)


def test_predictor_is_bidirectional(model):
    """A query token must influence every position (no causal mask): the pooled visual part changes."""
    mods = method_modules(model)
    vis, ids, mask = contract_inputs("predictor")
    captured = []
    hook = model.predictor.norm.register_forward_hook(lambda m, i, o: captured.append(o))
    with torch.no_grad():
        mods["predictor"](vis, ids, mask)
        ids2 = ids.clone()
        ids2[0, int(mask.sum()) - 1] += 1  # last real query token
        mods["predictor"](vis, ids2, mask)
    hook.remove()
    n = CFG.x_encoder.num_tokens
    assert not torch.allclose(captured[0][:, :n], captured[1][:, :n], atol=1e-7)


def test_paper_preset_parameter_counts_on_meta_device():
    cfg = get_preset("paper")
    with torch.device("meta"):
        model = build_model(cfg, seed=None)
    assert all(p.is_meta for p in model.parameters())
    counts = parameter_counts(model)
    assert 300e6 < counts["x_encoder"]["total"] < 308e6  # V-JEPA 2 ViT-L: 304M
    assert 485e6 < counts["predictor"]["without_token_embeddings"] < 495e6  # 8 Llama-3.2-1B layers: 490M
    assert 295e6 < counts["y_encoder"]["total"] < 310e6  # EmbeddingGemma-300M + head


def test_parameter_count_cli(capsys):
    from edge_vljepa.models.__main__ import main
    assert main(["--preset", "paper"]) == 0
    out = capsys.readouterr().out
    assert "303,885,312" in out and "491,820,544" in out
