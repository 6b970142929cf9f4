"""Model config fields from checkpoint shapes (and a Hugging Face config.json): no tensor data read.

Each function takes the mapped shapes of one source as full model keys (`x_encoder.blocks.0...`) and
returns the fields of its component it can tell, or {} when the source has none of that component:

  - sizes come from tensor shapes (widths, depths, vocabularies, MLP sizes, KV heads);
  - what shapes cannot tell (attention heads where q is square, RoPE theta and scaling, norm eps,
    Gemma's window and layer pattern) comes from `hf`, the config.json beside the weights, when there
    is one; else the caller's base values stay.
"""

from __future__ import annotations

import math
import re

from edge_vljepa.config import MINILM_VOCAB

# V-JEPA 2 / 2.1 encoders by width: heads. ViT-B/16, ViT-L/16, ViT-g/16 and ViT-G/16 have 64 channels
# per head, ViT-H/16 80 (facebookresearch/vjepa2, vit_base ... vit_gigantic_xformers).
VJEPA2_HEADS = {768: 12, 1024: 16, 1280: 16, 1408: 22, 1664: 26}


def _layers(shapes: dict, prefix: str) -> int:
    found = {int(m.group(1)) for k in shapes if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    return len(found)


def _first(shapes: dict, pattern: str) -> tuple[int, ...] | None:
    return next((v for k, v in shapes.items() if re.fullmatch(pattern, k)), None)


def mlp_ratio(hidden: int, width: int) -> float:
    """The ratio r with int(width * r) == hidden, as the ViTs size their MLP (ViT-g: 1408 * 48/11 = 6144);
    hidden / width alone can land a float ulp below and lose one channel."""
    ratio = hidden / width
    while int(width * ratio) < hidden:
        ratio = math.nextafter(ratio, math.inf)
    return ratio


def _rope(hf: dict, layer_type: str | None = None) -> dict:
    """RoPE parameters of a config.json: transformers 5 `rope_parameters` (per layer type for Gemma 3)
    or the older `rope_theta` + `rope_scaling`."""
    params = hf.get("rope_parameters")
    if isinstance(params, dict) and layer_type in params:
        params = params[layer_type]
    if isinstance(params, dict) and "rope_theta" in params:
        return params
    out = dict(hf.get("rope_scaling") or {})
    if "rope_theta" in hf:
        out["rope_theta"] = hf["rope_theta"]
    return out


def x_encoder_fields(base, shapes: dict, hf: dict) -> dict:
    """V-JEPA 2 / 2.1: width, depth, patch and tubelet sizes, MLP ratio, qkv bias, the 2.1 variant (its
    video_mod_embed); heads from config.json, else the V-JEPA 2 ViT of that width, else base.head_dim
    channels per head."""
    patch = _first(shapes, r"x_encoder\.patch_embed\.proj\.weight")
    if patch is None:
        return {}
    width = patch[0]
    out = {"embed_dim": width, "depth": _layers(shapes, "x_encoder.blocks."),
           "qkv_bias": "x_encoder.blocks.0.attn.qkv.bias" in shapes}
    if len(patch) == 5:
        out |= {"in_chans": patch[1], "tubelet_size": patch[2], "patch_size": patch[3]}
    fc1 = _first(shapes, r"x_encoder\.blocks\.0\.mlp\.fc1\.weight")
    if fc1:
        out["mlp_ratio"] = mlp_ratio(fc1[0], width)
    if "x_encoder.video_mod_embed" in shapes:
        out["variant"] = "vjepa2.1"
    heads = hf.get("num_attention_heads") or VJEPA2_HEADS.get(width) or max(1, width // base.head_dim)
    out["num_heads"] = heads
    if "layer_norm_eps" in hf:
        out["norm_eps"] = hf["layer_norm_eps"]
    if "crop_size" in hf:
        out["img_size"] = hf["crop_size"]
    return out


def predictor_fields(base, keep: int, shapes: dict, hf: dict, whole_model: bool) -> dict:
    """Llama layers: sizes, GQA heads, RoPE theta and llama3 scaling (config.json); a Llama checkpoint
    gives its last `keep` layers, a VL-JEPA checkpoint (whole_model) all it has."""
    embed = _first(shapes, r"predictor\.embed_tokens\.weight")
    if embed is None:
        return {}
    vocab, hidden = embed
    layers = _layers(shapes, "predictor.layers.")
    out = {"vocab_size": vocab, "hidden_size": hidden,
           # a Llama checkpoint: its last N layers (N from the base); a VL-JEPA checkpoint: all it has
           "num_hidden_layers": layers if whole_model else min(keep, layers)}
    heads = hf.get("num_attention_heads") or max(1, hidden // base.head_dim)
    out["num_attention_heads"] = heads
    k = _first(shapes, r"predictor\.layers\.\d+\.self_attn\.k_proj\.weight")
    if k:
        out["num_key_value_heads"] = max(1, k[0] // (hidden // heads))
    gate = _first(shapes, r"predictor\.layers\.\d+\.mlp\.gate_proj\.weight")
    if gate:
        out["intermediate_size"] = gate[0]
    if "rms_norm_eps" in hf:
        out["rms_norm_eps"] = hf["rms_norm_eps"]
    rope = _rope(hf)
    if "rope_theta" in rope:
        out["rope_theta"] = float(rope["rope_theta"])
        llama3 = rope.get("rope_type", rope.get("type")) == "llama3"
        out["rope_scaling_factor"] = float(rope["factor"]) if llama3 else None
        if llama3:
            out |= {"rope_low_freq_factor": float(rope.get("low_freq_factor", 1.0)),
                    "rope_high_freq_factor": float(rope.get("high_freq_factor", 4.0)),
                    "rope_original_max_position": int(rope.get("original_max_position_embeddings", 8192))}
    return out


def y_encoder_fields(base, shapes: dict, hf: dict) -> dict:
    """A Gemma 3 (EmbeddingGemma) or BERT (all-MiniLM) Y-Encoder backbone."""
    if _first(shapes, r"y_encoder\.backbone\.embeddings\.word_embeddings\.weight"):
        return _bert_fields(shapes, hf)
    embed = _first(shapes, r"y_encoder\.backbone\.embed_tokens\.weight")
    q_norm = _first(shapes, r"y_encoder\.backbone\.layers\.\d+\.self_attn\.q_norm\.weight")
    if embed is None or q_norm is None:
        return {}
    vocab, hidden = embed
    head_dim = q_norm[0]
    q = _first(shapes, r"y_encoder\.backbone\.layers\.\d+\.self_attn\.q_proj\.weight")
    k = _first(shapes, r"y_encoder\.backbone\.layers\.\d+\.self_attn\.k_proj\.weight")
    gate = _first(shapes, r"y_encoder\.backbone\.layers\.\d+\.mlp\.gate_proj\.weight")
    out = {"arch": "gemma3", "vocab_size": vocab, "hidden_size": hidden, "head_dim": head_dim,
           "num_hidden_layers": _layers(shapes, "y_encoder.backbone.layers."),
           "num_attention_heads": q[0] // head_dim, "num_key_value_heads": k[0] // head_dim,
           "intermediate_size": gate[0]}
    if "rms_norm_eps" in hf:
        out["norm_eps"] = hf["rms_norm_eps"]
    for key in ("sliding_window", "query_pre_attn_scalar"):
        if key in hf:
            out[key] = hf[key]
    types = hf.get("layer_types")
    if types and "full_attention" in types:
        out["sliding_window_pattern"] = types.index("full_attention") + 1
    elif "sliding_window_pattern" in hf:
        out["sliding_window_pattern"] = hf["sliding_window_pattern"]
    full, local = _rope(hf, "full_attention"), _rope(hf, "sliding_attention")
    if "rope_theta" in full:
        out["rope_theta"] = float(full["rope_theta"])
    if "rope_local_base_freq" in hf:
        out["rope_local_base_freq"] = float(hf["rope_local_base_freq"])
    elif "rope_theta" in local and local is not full:
        out["rope_local_base_freq"] = float(local["rope_theta"])
    return out


def _bert_fields(shapes: dict, hf: dict) -> dict:
    """BERT: sizes from the embeddings and layers; heads from config.json, else 64 channels per head
    (BERT-base; all-MiniLM-L6-v2 has 32, its folder's config.json says so); LayerNorm eps 1e-12 unless
    config.json says otherwise. Its tokenizer: the shipped MiniLM WordPiece when the vocabulary is that
    size (BERT uncased), else `bert` (--tokenizer bert=PATH)."""
    vocab, hidden = _first(shapes, r"y_encoder\.backbone\.embeddings\.word_embeddings\.weight")
    positions = _first(shapes, r"y_encoder\.backbone\.embeddings\.position_embeddings\.weight")
    types = _first(shapes, r"y_encoder\.backbone\.embeddings\.token_type_embeddings\.weight")
    mlp = _first(shapes, r"y_encoder\.backbone\.encoder\.layer\.\d+\.intermediate\.dense\.weight")
    heads = hf.get("num_attention_heads") or max(1, hidden // 64)
    out = {"arch": "bert", "vocab_size": vocab, "hidden_size": hidden,
           "num_hidden_layers": _layers(shapes, "y_encoder.backbone.encoder.layer."),
           "num_attention_heads": heads, "num_key_value_heads": heads, "head_dim": hidden // heads,
           "norm_eps": hf.get("layer_norm_eps", 1e-12),
           "tokenizer": "minilm" if vocab == MINILM_VOCAB else "bert"}
    if positions:
        out["max_position_embeddings"] = positions[0]
    if types:
        out["type_vocab_size"] = types[0]
    if mlp:
        out["intermediate_size"] = mlp[0]
    return out
