"""Fidelity: upstream layouts load through edge_vljepa.weights, and the re-implementations equal
independent reference implementations.

References: transformers' VJEPA2Model, LlamaForCausalLM, Gemma3TextModel (EmbeddingGemma: bidirectional)
and BertModel, built from small configs with random weights (no download), every parameter perturbed
so that biases and norm weights are not at their trivial init; and the real all-MiniLM-L6-v2 against
transformers + sentence-transformers. Each reference is written in its native layout (save_pretrained
safetensors; V-JEPA 2's training .pt dict with fused qkv and `module.backbone.` prefixes), loaded with
`load_pretrained`, and compared on random inputs in fp32: max abs error <= 1e-4. Two differently
shaped configs per component.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertModel,
    Gemma3TextConfig,
    Gemma3TextModel,
    LlamaConfig,
    LlamaForCausalLM,
    VJEPA2Config,
    VJEPA2Model,
)
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from edge_vljepa.config import PredictorConfig, XEncoderConfig, YEncoderConfig, get_preset
from edge_vljepa.models.layers import masked_mean, rope_inv_freq
from edge_vljepa.models.predictor import Predictor
from edge_vljepa.models.x_encoder import XEncoder
from edge_vljepa.models.y_encoder import YEncoder
from edge_vljepa.preprocess import TextTokenizer, minilm_model_dir
from edge_vljepa.weights import VJEPA2_HF, CheckpointError, load_pretrained, main, map_keys

ATOL = 1e-4
VOCAB = 100


def perturb(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model.eval()


def max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


def right_padded_mask(length: int, pads: int) -> torch.Tensor:
    mask = torch.ones(1, length, dtype=torch.long)
    mask[:, length - pads:] = 0
    return mask


# --- X-Encoder: V-JEPA 2 ---------------------------------------------------------------------

X_CONFIGS = {
    # head_dim 32: 3 x 10 rotated channels + 2 unrotated; grid 2 x 4 x 4
    "hd32-4frames-32px": dict(crop_size=32, patch_size=8, frames_per_clip=4, hidden_size=64,
                              num_attention_heads=2, num_hidden_layers=2, mlp_ratio=4.0, layer_norm_eps=1e-6),
    # head_dim 16: 3 x 4 rotated + 4 unrotated; grid 3 x 5 x 5 (off any power-of-two grid)
    "hd16-6frames-40px": dict(crop_size=40, patch_size=8, frames_per_clip=6, hidden_size=48,
                              num_attention_heads=3, num_hidden_layers=3, mlp_ratio=2.5, layer_norm_eps=1e-5),
}


def vjepa2_reference(kw: dict, seed: int) -> VJEPA2Model:
    cfg = VJEPA2Config(**kw, tubelet_size=2, pred_hidden_size=16, pred_num_hidden_layers=1,
                       pred_num_attention_heads=2, pred_num_mask_tokens=2, attn_implementation="eager")
    return perturb(VJEPA2Model(cfg), seed)


def native_vjepa2_encoder(hf: dict[str, torch.Tensor], depth: int) -> dict[str, torch.Tensor]:
    """The training checkpoint's encoder state, written here independently of the loader's tables."""
    p = "module.backbone."
    out = {}
    for w in ("weight", "bias"):
        out[f"{p}patch_embed.proj.{w}"] = hf[f"encoder.embeddings.patch_embeddings.proj.{w}"]  # Conv3d, 5-D
        out[f"{p}norm.{w}"] = hf[f"encoder.layernorm.{w}"]
    for i in range(depth):
        src, dst = f"encoder.layer.{i}.", f"{p}blocks.{i}."
        for w in ("weight", "bias"):
            qkv = [hf[f"{src}attention.{n}.{w}"] for n in ("query", "key", "value")]
            out[f"{dst}attn.qkv.{w}"] = torch.cat(qkv)
            out[f"{dst}attn.proj.{w}"] = hf[f"{src}attention.proj.{w}"]
            for n in ("norm1", "norm2", "mlp.fc1", "mlp.fc2"):
                out[f"{dst}{n}.{w}"] = hf[f"{src}{n}.{w}"]
    return {k: v.detach().clone() for k, v in out.items()}


@pytest.mark.parametrize("layout", ["vjepa2-hf", "vjepa2-native"])
@pytest.mark.parametrize("name", list(X_CONFIGS))
def test_x_encoder_equals_vjepa2(tmp_path, name, layout):
    kw = X_CONFIGS[name]
    ref = vjepa2_reference(kw, seed=1)
    if layout == "vjepa2-hf":
        ref.save_pretrained(tmp_path)  # model.safetensors: encoder.* and the V-JEPA 2 predictor.*
        path = tmp_path
    else:
        target = native_vjepa2_encoder(ref.state_dict(), kw["num_hidden_layers"])
        n = next(iter(target.values())).shape[0]
        target["module.backbone.pos_embed"] = torch.zeros(1, 4, n)  # stored by upstream, unused with RoPE
        online = {k: v + torch.randn_like(v) for k, v in target.items()}  # 'encoder' differs from the EMA one
        path = tmp_path / "vitl.pt"
        torch.save({"encoder": online, "target_encoder": target, "epoch": 3, "loss": 0.25,
                    "predictor": {"module.backbone.predictor_embed.weight": torch.zeros(2, n)},
                    "opt": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]}}, path)
    x_cfg = XEncoderConfig(img_size=kw["crop_size"], patch_size=kw["patch_size"],
                           num_frames=kw["frames_per_clip"], tubelet_size=2, embed_dim=kw["hidden_size"],
                           depth=kw["num_hidden_layers"],
                           num_heads=kw["num_attention_heads"], mlp_ratio=kw["mlp_ratio"],
                           norm_eps=kw["layer_norm_eps"])
    ours = XEncoder(x_cfg).eval()
    report = load_pretrained(ours, path)
    assert report.format == layout and report.component == "x_encoder" and not report.left_at_init
    if layout == "vjepa2-native":
        assert report.section == "target_encoder" and report.ignored == ("module.backbone.pos_embed",)
    video = torch.randn(2, 3, x_cfg.num_frames, x_cfg.img_size, x_cfg.img_size,
                        generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = ref(pixel_values_videos=video.permute(0, 2, 1, 3, 4), skip_predictor=True).last_hidden_state
        got = ours(video)
    assert got.shape == (2, x_cfg.num_tokens, x_cfg.embed_dim)
    assert max_err(got, want) <= ATOL


def test_incomplete_fused_qkv_is_reported():
    m = map_keys(VJEPA2_HF, {"encoder.layer.0.attention.query.weight": (4, 4),
                             "encoder.layer.0.attention.value.weight": (4, 4)})
    assert m.incomplete == ("blocks.0.attn.qkv.weight (fused from query, key, value: no key)",)
    assert not m.sources


# --- X-Encoder: V-JEPA 2.1 (ema_encoder) --------------------------------------------------------

def vjepa2_1_encoder_state(width: int, depth: int, mlp: int, patch: int, tubelet: int,
                           seed: int) -> dict[str, torch.Tensor]:
    """A random V-JEPA 2.1 encoder state in its training layout (module.backbone., Conv3d patch
    embeddings for video and images, modality vectors, four hierarchical output norms)."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=0.1, mean=0.0):
        return mean + scale * torch.randn(*shape, generator=g)

    state = {"patch_embed.proj.weight": rand(width, 3, tubelet, patch, patch),
             "patch_embed.proj.bias": rand(width),
             "patch_embed_img.proj.weight": rand(width, 3, 1, patch, patch),
             "patch_embed_img.proj.bias": rand(width),
             "video_mod_embed": rand(1, 1, width), "img_mod_embed": rand(1, 1, width)}
    for i in range(depth):
        for name, shape in (("attn.qkv", (3 * width, width)), ("attn.proj", (width, width)),
                            ("mlp.fc1", (mlp, width)), ("mlp.fc2", (width, mlp))):
            state[f"blocks.{i}.{name}.weight"] = rand(*shape)
            state[f"blocks.{i}.{name}.bias"] = rand(shape[0])
        for norm in ("norm1", "norm2"):
            state[f"blocks.{i}.{norm}.weight"] = rand(width, mean=1.0)
            state[f"blocks.{i}.{norm}.bias"] = rand(width)
    for i in range(4):
        state[f"norms_block.{i}.weight"] = rand(width, mean=1.0)
        state[f"norms_block.{i}.bias"] = rand(width)
    return {f"module.backbone.{k}": v for k, v in state.items()}


def vjepa2_1_reference(state: dict[str, torch.Tensor], video: torch.Tensor, heads: int, patch: int,
                       tubelet: int, eps: float = 1e-6) -> torch.Tensor:
    """V-JEPA 2.1's video encoder forward, written from facebookresearch/vjepa2 app/vjepa_2_1/models
    (vision_transformer.py, utils/modules.py) with the hub's settings (use_rope, interpolate_rope,
    modality_embedding): Conv3d patches + video_mod_embed; per head, depth / height / width blocks of
    2 * ((head_dim // 3) // 2) channels rotated on (x0, x1) pairs with the *interleaved* frequency
    table (repeat_interleave), rows and columns rescaled to the 256 px pretraining grid; output
    norms_block[-1]."""
    def w(name):
        return state[f"module.backbone.{name}"]

    x = F.conv3d(video, w("patch_embed.proj.weight"), w("patch_embed.proj.bias"),
                 stride=(tubelet, patch, patch))
    _, d, _, gh, gw = x.shape
    x = x.flatten(2).transpose(1, 2) + w("video_mod_embed")
    n, head_dim = x.shape[1], d // heads
    ids = torch.arange(n, dtype=torch.float32)
    frame, row, col = ids // (gh * gw), (ids % (gh * gw)) // gw, ids % gw
    side = 256 // patch
    positions = (frame, row * (side - 1) / (gh - 1), col * (side - 1) / (gw - 1))
    block = 2 * ((head_dim // 3) // 2)

    def rotate(z, pos):  # (B, H, N, block)
        omega = 1.0 / 10000 ** (torch.arange(block // 2, dtype=torch.float32) / (block / 2.0))
        freq = pos[:, None] * omega[None]
        cos, sin = freq.cos().repeat_interleave(2, -1), freq.sin().repeat_interleave(2, -1)
        pairs = z.unflatten(-1, (-1, 2))
        partner = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
        return z * cos + partner * sin

    def rope(z):
        rotated = [rotate(z[..., a * block:(a + 1) * block], positions[a]) for a in range(3)]
        return torch.cat([*rotated, z[..., 3 * block:]], dim=-1)

    depth = len({k.split(".")[3] for k in state if ".blocks." in k})
    for i in range(depth):
        def p(name, i=i):
            return w(f"blocks.{i}.{name}")
        y = F.layer_norm(x, (d,), p("norm1.weight"), p("norm1.bias"), eps)
        q, k, v = F.linear(y, p("attn.qkv.weight"), p("attn.qkv.bias")).unflatten(-1, (3, heads, head_dim)) \
            .permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(rope(q), rope(k), v).transpose(1, 2).reshape(x.shape)
        x = x + F.linear(out, p("attn.proj.weight"), p("attn.proj.bias"))
        y = F.layer_norm(x, (d,), p("norm2.weight"), p("norm2.bias"), eps)
        x = x + F.linear(F.gelu(F.linear(y, p("mlp.fc1.weight"), p("mlp.fc1.bias"))),
                         p("mlp.fc2.weight"), p("mlp.fc2.bias"))
    return F.layer_norm(x, (d,), w("norms_block.3.weight"), w("norms_block.3.bias"), eps)


def test_x_encoder_equals_vjepa2_1_from_its_ema_encoder(tmp_path, capsys):
    """A V-JEPA 2.1 training .pt: `ema_encoder` is read (not `encoder`), the derived config says variant
    vjepa2.1 (2 heads of 64 channels from the width alone: no config.json), and the forward equals the
    2.1 reference; a V-JEPA 2 config refuses the file, and V-JEPA 2's RoPE table would not match."""
    ema = vjepa2_1_encoder_state(width=128, depth=2, mlp=256, patch=8, tubelet=2, seed=1)
    online = {k: v + 1.0 for k, v in ema.items()}
    path = tmp_path / "vjepa2_1_vitl.pt"
    torch.save({"ema_encoder": ema, "encoder": online, "epoch": 10,
                "predictor": {"module.backbone.mask_tokens.0": torch.zeros(1, 1, 8)}}, path)
    config = tmp_path / "x.json"
    assert main(["inspect", str(path), "--write-config", str(config)]) == 0
    assert "section 'ema_encoder'" in capsys.readouterr().out
    from edge_vljepa.config import load_config_file
    x_cfg = dataclasses.replace(load_config_file(config).x_encoder, img_size=32, num_frames=4)
    assert (x_cfg.variant, x_cfg.embed_dim, x_cfg.depth, x_cfg.num_heads, x_cfg.mlp_hidden) == \
        ("vjepa2.1", 128, 2, 2, 256)
    ours = XEncoder(x_cfg).eval()
    report = load_pretrained(ours, path)
    assert report.section == "ema_encoder" and report.format == "vjepa2-native"
    assert set(report.ignored) == {f"module.backbone.{k}" for k in (
        "patch_embed_img.proj.weight", "patch_embed_img.proj.bias", "img_mod_embed", "norms_block.0.weight",
        "norms_block.0.bias", "norms_block.1.weight", "norms_block.1.bias", "norms_block.2.weight",
        "norms_block.2.bias")}
    video = torch.randn(1, 3, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = vjepa2_1_reference(ema, video, heads=2, patch=8, tubelet=2)
        assert max_err(ours(video), want) <= ATOL
        from edge_vljepa.models.x_encoder import vjepa2_rope_tables
        ours.rope_cos, ours.rope_sin = vjepa2_rope_tables(x_cfg.grid, x_cfg.head_dim)  # V-JEPA 2's table
        assert max_err(ours(video), want) > 1e-3
    with pytest.raises(CheckpointError, match="video_mod_embed"):
        load_pretrained(XEncoder(dataclasses.replace(x_cfg, variant="vjepa2")), path)


# --- Predictor: the last Llama-3.2 layers, bidirectional -------------------------------------

P_CONFIGS = {
    # GQA 4 heads / 2 KV heads, 4 checkpoint layers, the Predictor keeps the last 2; 2 pad tokens
    "gqa2-keep2of4": dict(llama=dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                                     intermediate_size=96, num_hidden_layers=4, rms_norm_eps=1e-5),
                          keep=2, rope=dict(rope_type="default", rope_theta=10000.0),
                          visual=(6, 32), query_len=5, pads=2),
    # GQA 6 / 2 (3 heads per group), head_dim 16, llama3 frequency scaling that matters at these
    # positions (original context 16: low-, medium- and high-frequency bands all occur)
    "gqa3-llama3rope-keep2of3": dict(
        llama=dict(hidden_size=96, num_attention_heads=6, num_key_value_heads=2, intermediate_size=128,
                   num_hidden_layers=3, rms_norm_eps=1e-6),
        keep=2, rope=dict(rope_type="llama3", rope_theta=10000.0, factor=8.0, low_freq_factor=1.0,
                          high_freq_factor=4.0, original_max_position_embeddings=16),
        visual=(10, 24), query_len=4, pads=1),
}


def our_predictor_config(c: dict) -> PredictorConfig:
    ll, rope = c["llama"], c["rope"]
    scaled = rope["rope_type"] == "llama3"
    return PredictorConfig(
        hidden_size=ll["hidden_size"], num_hidden_layers=c["keep"],
        num_attention_heads=ll["num_attention_heads"], num_key_value_heads=ll["num_key_value_heads"],
        intermediate_size=ll["intermediate_size"], rms_norm_eps=ll["rms_norm_eps"],
        rope_theta=rope["rope_theta"], rope_scaling_factor=rope["factor"] if scaled else None,
        rope_low_freq_factor=rope.get("low_freq_factor", 1.0),
        rope_high_freq_factor=rope.get("high_freq_factor", 4.0),
        rope_original_max_position=rope.get("original_max_position_embeddings", 8192),
        vocab_size=VOCAB, max_query_len=c["query_len"])


def llama_reference(c: dict, seed: int) -> LlamaForCausalLM:
    cfg = LlamaConfig(**c["llama"], vocab_size=VOCAB, max_position_embeddings=64, tie_word_embeddings=True,
                      rope_parameters=dict(c["rope"]), attn_implementation="eager")
    return perturb(LlamaForCausalLM(cfg), seed)


def llama_hidden(llama, x: torch.Tensor, mask: torch.Tensor, bidirectional: bool = True) -> torch.Tensor:
    """transformers' Llama blocks + final norm over inputs_embeds x at positions 0..n-1.

    bidirectional: a 4-D additive mask (0 everywhere, pad keys -inf-like) replaces the causal mask;
    transformers uses a 4-D mask as given. Otherwise the 2-D padding mask, i.e. causal attention.
    """
    n = x.shape[1]
    if bidirectional:
        attention = torch.zeros(1, 1, n, n).masked_fill(mask[:, None, None, :] == 0, torch.finfo(x.dtype).min)
    else:
        attention = mask
    return llama(inputs_embeds=x, attention_mask=attention, position_ids=torch.arange(n)[None],
                 use_cache=False).last_hidden_state


def predictor_case(tmp_path, name: str):
    """Our Predictor loaded from a Llama checkpoint, the reference trimmed to the same layers, inputs."""
    c = P_CONFIGS[name]
    hf = llama_reference(c, seed=2)
    hf.save_pretrained(tmp_path)
    n_visual, visual_dim = c["visual"]
    ours = Predictor(our_predictor_config(c), visual_dim, n_visual, embed_dim=16).eval()
    report = load_pretrained(ours, tmp_path / "model.safetensors")
    ref = hf.model
    ref.layers = ref.layers[c["llama"]["num_hidden_layers"] - c["keep"]:]  # the Predictor's layers
    g = torch.Generator().manual_seed(3)
    visual = torch.randn(1, n_visual, visual_dim, generator=g)
    ids = torch.randint(1, VOCAB, (1, c["query_len"]), generator=g)
    query_mask = right_padded_mask(c["query_len"], c["pads"])
    return ours, ref, report, (visual, ids, query_mask)


def our_hidden(predictor: Predictor, inputs) -> torch.Tensor:
    """The Predictor's final-norm output (before pooling and head) for its public forward."""
    captured = []
    hook = predictor.norm.register_forward_hook(lambda m, i, o: captured.append(o))
    with torch.no_grad():
        predictor(*inputs)
    hook.remove()
    return captured[0]


@pytest.mark.parametrize("name", list(P_CONFIGS))
def test_predictor_equals_llama_blocks_bidirectional(tmp_path, name):
    c = P_CONFIGS[name]
    ours, ref, report, inputs = predictor_case(tmp_path, name)
    total, keep = c["llama"]["num_hidden_layers"], c["keep"]
    assert report.format == "llama3" and report.component == "predictor"
    assert report.layers == f"keeps layers {total - keep}..{total - 1} of {total} as 0..{keep - 1}"
    assert {k.split(".")[2] for k in report.dropped} == {str(i) for i in range(total - keep)}
    assert set(report.left_at_init) == {"visual_proj.weight", "visual_proj.bias", "head.weight", "head.bias"}
    visual, ids, query_mask = inputs
    mask = torch.cat([torch.ones(1, visual.shape[1], dtype=torch.long), query_mask], dim=1)
    real = mask[0].bool()
    with torch.no_grad():
        x = torch.cat([ours.visual_proj(visual), ref.embed_tokens(ids)], dim=1)  # same inputs_embeds
        want = llama_hidden(ref, x, mask)
    got = our_hidden(ours, inputs)
    assert max_err(got[:, real], want[:, real]) <= ATOL
    if c["rope"]["rope_type"] == "llama3":  # the scaling is exercised: without it the result moves
        unscaled = Predictor(dataclasses.replace(ours.cfg, rope_scaling_factor=None), visual.shape[2],
                             visual.shape[1], embed_dim=16).eval()
        unscaled.load_state_dict(ours.state_dict())
        assert max_err(our_hidden(unscaled, inputs)[:, real], want[:, real]) > 1e-3


def test_reference_llama_mask_is_really_bidirectional(tmp_path):
    """The 4-D zero mask removes causality in transformers' Llama: a late token moves position 0."""
    ours, ref, _, (visual, ids, query_mask) = predictor_case(tmp_path, "gqa2-keep2of4")
    mask = torch.cat([torch.ones(1, visual.shape[1], dtype=torch.long), query_mask], dim=1)
    last = int(mask.sum()) - 1
    with torch.no_grad():
        x = torch.cat([ours.visual_proj(visual), ref.embed_tokens(ids)], dim=1)
        x2 = x.clone()
        x2[:, last] += 1.0
        for bidirectional, moves in ((True, True), (False, False)):
            a, b = llama_hidden(ref, x, mask, bidirectional), llama_hidden(ref, x2, mask, bidirectional)
            assert ((a[:, 0] - b[:, 0]).abs().max().item() > 1e-3) == moves, bidirectional


def test_llama3_rope_frequencies_equal_transformers():
    """The paper preset's RoPE (Llama-3.2-1B: theta 5e5, llama3 scaling x32) equals transformers' llama3."""
    p = get_preset("paper").predictor
    cfg = LlamaConfig(hidden_size=p.hidden_size, num_attention_heads=p.num_attention_heads,
                      max_position_embeddings=131072,
                      rope_parameters=dict(rope_type="llama3", rope_theta=p.rope_theta,
                                           factor=p.rope_scaling_factor,
                                           low_freq_factor=p.rope_low_freq_factor,
                                           high_freq_factor=p.rope_high_freq_factor,
                                           original_max_position_embeddings=p.rope_original_max_position))
    want, attention_scaling = ROPE_INIT_FUNCTIONS["llama3"](cfg, "cpu")
    got = rope_inv_freq(p.head_dim, p.rope_theta, p.rope_scaling_factor, p.rope_low_freq_factor,
                        p.rope_high_freq_factor, p.rope_original_max_position)
    assert attention_scaling == 1.0
    torch.testing.assert_close(got, want, rtol=1e-5, atol=0)
    assert not torch.allclose(got, rope_inv_freq(p.head_dim, p.rope_theta), rtol=1e-3)


# --- Y-Encoder: EmbeddingGemma (Gemma 3, bidirectional) ----------------------------------------

G_CONFIGS = {
    # GQA 4 / 2, head_dim 16 = query_pre_attn_scalar, global layer every 2nd, EmbeddingGemma's RoPE bases
    "gqa2-hd16-pattern2": dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
                               num_key_value_heads=2, head_dim=16, intermediate_size=96,
                               query_pre_attn_scalar=16, rms_norm_eps=1e-6, rope=(1e6, 1e4),
                               sliding_window=512, pattern=2, text_len=10, pads=3),
    # MQA 3 / 1, head_dim 32 != query_pre_attn_scalar 24, heads * head_dim != hidden, every 3rd global
    "mqa-hd32-pattern3": dict(hidden_size=48, num_hidden_layers=4, num_attention_heads=3,
                              num_key_value_heads=1, head_dim=32, intermediate_size=64,
                              query_pre_attn_scalar=24, rms_norm_eps=1e-5, rope=(5e4, 100.0),
                              sliding_window=64, pattern=3, text_len=12, pads=4),
    # texts longer than the bidirectional window's reach (sliding_window // 2 = 8): the band mask counts
    "window-reach8-text14": dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                                 num_key_value_heads=1, head_dim=16, intermediate_size=48,
                                 query_pre_attn_scalar=16, rms_norm_eps=1e-6, rope=(1e6, 1e4),
                                 sliding_window=16, pattern=3, text_len=14, pads=1),
}


def gemma_case(tmp_path, name: str):
    c = G_CONFIGS[name]
    n = c["num_hidden_layers"]
    layer_types = ["full_attention" if (i + 1) % c["pattern"] == 0 else "sliding_attention" for i in range(n)]
    assert {"full_attention", "sliding_attention"} <= set(layer_types)
    global_theta, local_theta = c["rope"]
    names = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
             "intermediate_size", "query_pre_attn_scalar")
    arch = {k: c[k] for k in names}
    hf_cfg = Gemma3TextConfig(
        **arch, rms_norm_eps=c["rms_norm_eps"], vocab_size=VOCAB, max_position_embeddings=64,
        sliding_window=c["sliding_window"], layer_types=layer_types, use_bidirectional_attention=True,
        rope_parameters={"sliding_attention": dict(rope_type="default", rope_theta=local_theta),
                         "full_attention": dict(rope_type="default", rope_theta=global_theta)},
        attn_implementation="eager")
    ref = perturb(Gemma3TextModel(hf_cfg), seed=4)
    ref.save_pretrained(tmp_path)
    y_cfg = YEncoderConfig(arch="gemma3", **arch, vocab_size=VOCAB, max_text_len=c["text_len"],
                           norm_eps=c["rms_norm_eps"], rope_theta=global_theta,
                           rope_local_base_freq=local_theta, sliding_window=c["sliding_window"],
                           sliding_window_pattern=c["pattern"])
    ours = YEncoder(y_cfg, embed_dim=16).eval()
    report = load_pretrained(ours, tmp_path / "model.safetensors")
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(1, VOCAB, (1, c["text_len"]), generator=g)
    return ours, ref, report, ids, right_padded_mask(c["text_len"], c["pads"])


@pytest.mark.parametrize("name", list(G_CONFIGS))
def test_y_encoder_equals_embeddinggemma(tmp_path, name):
    ours, ref, report, ids, mask = gemma_case(tmp_path, name)
    assert report.format == "embeddinggemma" and report.left_at_init == ("head.weight", "head.bias")
    real = mask[0].bool()
    with torch.no_grad():
        want = ref(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
        got = ours.backbone(ids, mask)
        assert max_err(got[:, real], want[:, real]) <= ATOL
        assert max_err(masked_mean(got, mask), want[:, real].mean(1)) <= ATOL
        ids2 = ids.clone()
        ids2[0, int(mask.sum()) - 1] = (ids2[0, int(mask.sum()) - 1] + 1) % VOCAB  # last real token
        want2 = ref(input_ids=ids2, attention_mask=mask, use_cache=False).last_hidden_state
    assert (want2[:, 0] - want[:, 0]).abs().max().item() > 1e-3  # the reference is bidirectional too


# --- Y-Encoder: BERT / all-MiniLM-L6-v2 --------------------------------------------------------

B_CONFIGS = {
    "h32-2heads-2layers": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=64, layer_norm_eps=1e-12, max_position_embeddings=40,
                               text_len=10, pads=3),
    "h48-4heads-3layers": dict(hidden_size=48, num_hidden_layers=3, num_attention_heads=4,
                               intermediate_size=80, layer_norm_eps=1e-5, max_position_embeddings=24,
                               text_len=16, pads=5),
}


@pytest.mark.parametrize("name", list(B_CONFIGS))
def test_y_encoder_equals_bert(tmp_path, name):
    c = B_CONFIGS[name]
    arch = {k: c[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                              "max_position_embeddings")}
    ref = perturb(BertModel(BertConfig(**arch, layer_norm_eps=c["layer_norm_eps"], vocab_size=VOCAB,
                                       attn_implementation="eager")), seed=6)
    ref.save_pretrained(tmp_path)  # includes the pooler, which the format ignores on purpose
    heads = c["num_attention_heads"]
    y_cfg = YEncoderConfig(arch="bert", **arch, num_key_value_heads=heads, head_dim=c["hidden_size"] // heads,
                           vocab_size=VOCAB, max_text_len=c["text_len"], norm_eps=c["layer_norm_eps"])
    ours = YEncoder(y_cfg, embed_dim=16).eval()
    report = load_pretrained(ours, tmp_path / "model.safetensors")
    assert report.format == "bert" and set(report.ignored) == {"pooler.dense.weight", "pooler.dense.bias"}
    ids = torch.randint(1, VOCAB, (1, c["text_len"]), generator=torch.Generator().manual_seed(7))
    mask = right_padded_mask(c["text_len"], c["pads"])
    real = mask[0].bool()
    with torch.no_grad():
        want = ref(input_ids=ids, attention_mask=mask).last_hidden_state
        got = ours.backbone(ids, mask)
    assert max_err(got[:, real], want[:, real]) <= ATOL


SENTENCES = ("A person slices an onion on a wooden board.", "two dogs run across a snowy field",
             "What is the man holding in his left hand?", "open the fridge")


def test_real_all_minilm_l6_v2_equals_transformers_and_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    folder = minilm_model_dir()
    cfg = get_preset("default")
    ours = YEncoder(cfg.y_encoder, cfg.embed_dim).eval()
    report = load_pretrained(ours, folder / "model.safetensors")
    assert report.format == "bert" and report.left_at_init == ("head.weight", "head.bias")
    tokenizer = TextTokenizer(cfg.y_encoder.tokenizer, cfg.y_encoder.max_text_len)
    hf_tokenizer = AutoTokenizer.from_pretrained(folder)
    bert = BertModel.from_pretrained(folder).eval()
    st = SentenceTransformer(str(folder), device="cpu")
    for text in SENTENCES:
        ids, mask = (torch.from_numpy(a) for a in tokenizer.encode(text))
        encoded = hf_tokenizer(text, return_tensors="pt")
        assert encoded.input_ids[0].tolist() == ids[0, : int(mask.sum())].tolist()
        with torch.no_grad():
            pooled = masked_mean(ours.backbone(ids, mask), mask)  # padded to max_text_len
            want = bert(**encoded).last_hidden_state.mean(dim=1)  # unpadded
            st_embedding = st.encode([text], convert_to_tensor=True)  # mean pooling, then L2 norm
        assert max_err(pooled, want) <= ATOL, text
        assert max_err(F.normalize(pooled, dim=-1), st_embedding) <= ATOL, text


# --- strictness, refusal, and the inspect CLI -------------------------------------------------

def test_load_lists_every_problem_and_writes_nothing(tmp_path):
    from safetensors.torch import load_file, save_file
    c = P_CONFIGS["gqa2-keep2of4"]
    llama_reference(c, seed=8).save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    state.pop("model.layers.3.mlp.up_proj.weight")
    state["model.layers.3.self_attn.rotary.weight"] = torch.zeros(2)
    state["model.norm.weight"] = torch.zeros(3)
    save_file(state, tmp_path / "broken.safetensors")
    ours = Predictor(our_predictor_config(c), 32, 6, embed_dim=16)
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    with pytest.raises(CheckpointError) as e:
        load_pretrained(ours, tmp_path / "broken.safetensors")
    msg = str(e.value)
    assert "missing keys (1)" in msg and "layers.1.mlp.up_proj.weight" in msg
    assert "unexpected keys (1)" in msg and "model.layers.3.self_attn.rotary.weight (no rule" in msg
    assert "wrong shapes (1)" in msg
    assert "norm.weight (from model.norm.weight): checkpoint (3,), model (64,)" in msg
    assert all(torch.equal(v, before[k]) for k, v in ours.state_dict().items())


class NotATensor:
    """Pickled by reference: torch.load(weights_only=True) must refuse it."""


def test_pt_files_are_read_weights_only(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    state = {"module.backbone.blocks.0.attn.qkv.weight": torch.zeros(3)}
    torch.save({"encoder": state, "x": NotATensor()}, path)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_pretrained(XEncoder(get_preset("tiny").x_encoder), path)
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "weights-only" in err


def test_inspect_names_format_component_and_fitting_preset(capsys):
    assert main(["inspect", str(minilm_model_dir() / "model.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "format:  bert" in out and "maps to: y_encoder" in out
    assert "preset default: fits; not in this format, left at init: head.weight, head.bias" in out
    assert "summary: bert -> y_encoder; fits: default" in out


def test_inspect_lists_what_does_not_fit(tmp_path, capsys):
    # a Llama with the tiny preset's predictor shapes except the vocabulary (100 instead of 128)
    c = P_CONFIGS["gqa2-keep2of4"]
    c = dict(c, llama=dict(c["llama"], intermediate_size=128))
    llama_reference(c, seed=9).save_pretrained(tmp_path)
    assert main(["inspect", str(tmp_path), "--preset", "tiny"]) == 1
    out = capsys.readouterr().out
    assert "format:  llama3" in out and "maps to: predictor" in out
    assert "preset tiny:    does not fit (0 missing, 0 unexpected, 1 wrong shapes); keeps layers 2..3" in out
    want = "embed_tokens.weight (from model.embed_tokens.weight): checkpoint (100, 64), model (128, 64)"
    assert want in out


def test_inspect_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint" * 4)
    from safetensors.torch import save_file
    save_file({"foo.bar": torch.zeros(1)}, tmp_path / "other.safetensors")
    for path, words in ((tmp_path / "junk.safetensors", "not a readable safetensors"),
                        (tmp_path / "other.safetensors", "no known format matches"),
                        (tmp_path / "absent.pt", "does not exist")):
        assert main(["inspect", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and words in err, err


def test_inspect_help_explains(capsys):
    with pytest.raises(SystemExit) as e:
        main(["inspect", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "weights_only=True" in out and "Exit status" in out
    assert all(name in out for name in ("vjepa2-native", "vjepa2-hf", "llama3", "embeddinggemma", "bert"))


def test_a_whole_model_format_added_at_runtime_loads(tmp_path, monkeypatch):
    """The docs/weights.md recipe: a new layout is one KeyMap, no model code changes."""
    from safetensors.torch import save_file

    from edge_vljepa.models import build_model
    from edge_vljepa.weights import FORMATS, KeyMap, Rule

    release = KeyMap(
        name="vljepa-official", description="test layout", component=None,
        detect=(r"vision_encoder\.blocks\.\d+\.attn\.qkv\.weight",),
        rules=(Rule(r"vision_encoder\.(.+)", r"x_encoder.\1"),
               Rule(r"predictor\.vision_proj\.(weight|bias)", r"predictor.visual_proj.\1"),
               Rule(r"predictor\.(.+)", r"predictor.\1")),
        ignore=("optimizer.*",))
    monkeypatch.setitem(FORMATS, release.name, release)
    cfg = get_preset("tiny")
    source = build_model(cfg, seed=1)
    state = {}
    for key, value in source.state_dict().items():
        component, rest = key.split(".", 1)
        if component == "x_encoder":
            state["vision_encoder." + rest] = value
        elif component == "predictor":
            state["predictor." + rest.replace("visual_proj.", "vision_proj.")] = value
    state["optimizer.step"] = torch.zeros(1)
    save_file(state, tmp_path / "release.safetensors")
    model = build_model(cfg, seed=2)
    y_before = {k: v.clone() for k, v in model.y_encoder.state_dict().items()}
    report = load_pretrained(model, tmp_path / "release.safetensors")
    assert report.format == "vljepa-official" and report.component == "predictor, x_encoder"
    assert report.ignored == ("optimizer.step",)
    for name in ("x_encoder", "predictor"):
        for (k, a), b in zip(getattr(source, name).state_dict().items(),
                             getattr(model, name).state_dict().values(), strict=True):
            assert torch.equal(a, b), k
    assert all(torch.equal(v, y_before[k]) for k, v in model.y_encoder.state_dict().items())  # untouched
