"""Upstream checkpoint layouts, one declarative `KeyMap` each (docs/weights.md explains the table).

  vjepa2-native   V-JEPA 2 / 2.1 training .pt (facebookresearch/vjepa2): fused qkv, `module.backbone.`
  vjepa2-hf       V-JEPA 2 in Hugging Face layout (`VJEPA2Model`): split query/key/value -> fused qkv
  llama3          Llama-3.2 safetensors -> Predictor: its last `num_hidden_layers` layers, renumbered
  embeddinggemma  EmbeddingGemma / Gemma3TextModel safetensors -> Y-Encoder backbone
  bert            BertModel safetensors (all-MiniLM-L6-v2) -> Y-Encoder backbone
  open-vljepa     Open-VLJEPA best.pt (predictor + Y-Encoder, the X-Encoder comes from its own file)
  edge-vljepa     this project's own keys, component-wise

A KeyMap holds regex rename rules, glob lists of source keys dropped on purpose (`ignore`) and of
model keys the format does not provide (`allow_missing`, e.g. the Predictor's visual_proj and head),
fused tensors, and layer selection. Adding a layout means adding one table here, not editing models.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_vljepa.weights.native import FORMAT


@dataclass(frozen=True)
class Rule:
    """A source key that fully matches `pattern` (a regex) becomes `target` (re.Match.expand syntax).

    fuse: the pattern has a named group `part`; the tensors whose `part` is fuse[0], fuse[1], ... are
    concatenated along dim 0, in that order, into the one target tensor (query, key, value -> qkv).
    """

    pattern: str
    target: str
    fuse: tuple[str, ...] = ()


@dataclass(frozen=True)
class LastLayers:
    """The model's M layers are the checkpoint's last M of S: source layer i -> model layer i - (S - M).

    source / target: regexes matched at the start of a source / model key, group 1 = layer index.
    Source layers below S - M are dropped (and reported).
    """

    source: str
    target: str


@dataclass(frozen=True)
class KeyMap:
    """One source layout: how its keys become the keys of one model component (or the whole model).

    component: "x_encoder" | "predictor" | "y_encoder" | "y_decoder"; targets are relative to it.
        None: the format holds several components and targets are full `VLJEPA` keys.
    detect: regexes that must each fully match some source key for the format to be considered.
    rules: tried in order, the first full match wins; a key no rule matches is "unexpected".
    ignore: glob patterns of source keys dropped on purpose (applied before the rules).
    allow_missing: glob patterns of (component-relative) model keys this format does not provide.
    containers: for torch .pt files holding a dict of state dicts: the entries to read, preferred first.
    last_layers: layer selection (see LastLayers).
    """

    name: str
    description: str
    component: str | None
    detect: tuple[str, ...]
    rules: tuple[Rule, ...]
    ignore: tuple[str, ...] = ()
    allow_missing: tuple[str, ...] = ()
    containers: tuple[str, ...] = ()
    last_layers: LastLayers | None = None


_VJEPA2 = r"(?:module\.)?(?:backbone\.)?"  # the training checkpoint's DDP and wrapper prefixes
_HF_VJEPA2 = r"(?:vjepa2\.)?encoder\."  # VJEPA2Model, or VJEPA2ForVideoClassification's `vjepa2.`
_LLAMA = r"(?:model\.)?"  # LlamaForCausalLM / Gemma3ForCausalLM prefix; absent in LlamaModel files
_BERT = r"(?:bert\.)?"  # BertFor* heads prefix; absent in BertModel files (all-MiniLM-L6-v2)

VJEPA2_NATIVE = KeyMap(
    name="vjepa2-native",
    description="V-JEPA 2 / 2.1 training checkpoint (facebookresearch/vjepa2 .pt): the encoder with native "
                "names, fused qkv, Conv3d patch embedding; read from 'ema_encoder' (V-JEPA 2.1) or "
                "'target_encoder' (the EMA encoder the hub loads), else 'encoder'. V-JEPA 2.1 "
                "(video_mod_embed; output norm norms_block.3) needs x_encoder variant 'vjepa2.1'",
    component="x_encoder",
    detect=(_VJEPA2 + r"blocks\.\d+\.attn\.qkv\.weight",),
    rules=(
        Rule(_VJEPA2 + r"(patch_embed\.proj\.(?:weight|bias))", r"\1"),
        Rule(_VJEPA2 + r"(blocks\.\d+\.(?:norm1|norm2|attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)"
             r"\.(?:weight|bias))", r"\1"),
        Rule(_VJEPA2 + r"(norm\.(?:weight|bias))", r"\1"),
        Rule(_VJEPA2 + r"(video_mod_embed)", r"\1"),  # V-JEPA 2.1
        Rule(_VJEPA2 + r"norms_block\.3\.(weight|bias)", r"norm.\1"),  # V-JEPA 2.1: the output norm
    ),
    # pos_embed: stored by some checkpoints, unused with RoPE (as upstream's hub loader). V-JEPA 2.1: the
    # image path (patch_embed_img, img_mod_embed) and the norms of the hierarchical outputs that
    # distillation uses (norms_block.0-2) are not part of the video encoder's output.
    ignore=("*pos_embed", "*patch_embed_img.proj.*", "*img_mod_embed", "*norms_block.[012].*"),
    containers=("ema_encoder", "target_encoder", "encoder"),
)

VJEPA2_HF = KeyMap(
    name="vjepa2-hf",
    description="V-JEPA 2 in Hugging Face layout (transformers VJEPA2Model): split query/key/value, "
                "fused into qkv; the V-JEPA 2 predictor and classifier heads are not used",
    component="x_encoder",
    detect=(_HF_VJEPA2 + r"layer\.\d+\.attention\.query\.weight",),
    rules=(
        Rule(_HF_VJEPA2 + r"embeddings\.patch_embeddings\.proj\.(weight|bias)", r"patch_embed.proj.\1"),
        Rule(_HF_VJEPA2 + r"layer\.(\d+)\.(norm1|norm2|mlp\.fc1|mlp\.fc2)\.(weight|bias)",
             r"blocks.\1.\2.\3"),
        Rule(_HF_VJEPA2 + r"layer\.(\d+)\.attention\.proj\.(weight|bias)", r"blocks.\1.attn.proj.\2"),
        Rule(_HF_VJEPA2 + r"layer\.(\d+)\.attention\.(?P<part>query|key|value)\.(weight|bias)",
             r"blocks.\1.attn.qkv.\3", fuse=("query", "key", "value")),
        Rule(_HF_VJEPA2 + r"layernorm\.(weight|bias)", r"norm.\1"),
    ),
    ignore=("predictor.*", "vjepa2.predictor.*", "pooler.*", "classifier.*"),
)

LLAMA3 = KeyMap(
    name="llama3",
    description="Llama-3.2 (Hugging Face safetensors) -> Predictor: token embeddings, the last "
                "num_hidden_layers decoder layers renumbered from 0, final norm; visual_proj and "
                "head are VL-JEPA's own and not in Llama",
    component="predictor",
    detect=(_LLAMA + r"layers\.\d+\.self_attn\.q_proj\.weight", _LLAMA + r"embed_tokens\.weight"),
    rules=(
        Rule(_LLAMA + r"embed_tokens\.weight", "embed_tokens.weight"),
        Rule(_LLAMA + r"layers\.(\d+)\.(input_layernorm|post_attention_layernorm|self_attn\.[qkvo]_proj"
             r"|mlp\.(?:gate|up|down)_proj)\.weight", r"layers.\1.\2.weight"),
        Rule(_LLAMA + r"norm\.weight", "norm.weight"),
    ),
    ignore=("lm_head.weight", "*rotary_emb.inv_freq"),
    allow_missing=("visual_proj.*", "head.*"),
    last_layers=LastLayers(source=_LLAMA + r"layers\.(\d+)\.", target=r"layers\.(\d+)\."),
)

EMBEDDINGGEMMA = KeyMap(
    name="embeddinggemma",
    description="EmbeddingGemma / Gemma3TextModel (Hugging Face safetensors) -> Y-Encoder backbone; "
                "the Y-Encoder head is VL-JEPA's own (sentence-transformers' Dense layers are not used)",
    component="y_encoder",
    detect=(_LLAMA + r"layers\.\d+\.pre_feedforward_layernorm\.weight",),
    rules=(
        Rule(_LLAMA + r"embed_tokens\.weight", "backbone.embed_tokens.weight"),
        Rule(_LLAMA + r"layers\.(\d+)\.(input_layernorm|post_attention_layernorm|pre_feedforward_layernorm"
             r"|post_feedforward_layernorm|self_attn\.(?:[qkvo]_proj|q_norm|k_norm)"
             r"|mlp\.(?:gate|up|down)_proj)\.weight", r"backbone.layers.\1.\2.weight"),
        Rule(_LLAMA + r"norm\.weight", "backbone.norm.weight"),
    ),
    ignore=("lm_head.weight",),
    allow_missing=("head.*",),
)

BERT = KeyMap(
    name="bert",
    description="BertModel (Hugging Face safetensors, e.g. all-MiniLM-L6-v2) -> Y-Encoder backbone; "
                "the BERT pooler is not used (mean pooling), the Y-Encoder head is VL-JEPA's own",
    component="y_encoder",
    detect=(_BERT + r"encoder\.layer\.\d+\.attention\.self\.query\.weight",),
    rules=(
        Rule(_BERT + r"(embeddings\.(?:word_embeddings|position_embeddings|token_type_embeddings|LayerNorm)"
             r"\.(?:weight|bias))", r"backbone.\1"),
        Rule(_BERT + r"(encoder\.layer\.\d+\.(?:attention\.self\.(?:query|key|value)|attention\.output\.dense"
             r"|attention\.output\.LayerNorm|intermediate\.dense|output\.dense|output\.LayerNorm)"
             r"\.(?:weight|bias))", r"backbone.\1"),
    ),
    ignore=("*embeddings.position_ids", "pooler.*", "bert.pooler.*", "cls.*"),
    allow_missing=("head.*",),
)

EDGE_VLJEPA = KeyMap(
    name=FORMAT,
    description="this project's own keys (save_checkpoint); loads the components the file holds",
    component=None,
    detect=(r"(?:x_encoder|predictor|y_encoder|y_decoder)\..+",),
    rules=(Rule(r"((?:x_encoder|predictor|y_encoder|y_decoder)\..+)", r"\1"),),
)

_OV_GEMMA = (r"y_encoder\.model\.(embed_tokens\.weight|norm\.weight|layers\.\d+\.(?:input_layernorm"
             r"|post_attention_layernorm|pre_feedforward_layernorm|post_feedforward_layernorm"
             r"|self_attn\.(?:[qkvo]_proj|q_norm|k_norm)|mlp\.(?:gate|up|down)_proj)\.weight)")
_OV_VJEPA2 = r"x_encoder\.model\." + _HF_VJEPA2

OPEN_VLJEPA = KeyMap(
    name="open-vljepa",
    description="Open-VLJEPA best.pt (github.com/dion-jy/open-vljepa, scripts/train.py): "
                "{epoch, model_state_dict, loss, config}; predictor.{embed_tokens, layers.N, norm, vis_proj, "
                "out_proj} = Llama-3.2 layers + projections, y_encoder.{model, projector} = EmbeddingGemma + "
                "projection; the frozen x_encoder.model.* (Hugging Face VJEPA2Model) is left out of the file "
                "and comes from its own checkpoint (--checkpoint x_encoder=PATH)",
    component=None,
    detect=(r"predictor\.vis_proj\.weight", r"y_encoder\.projector\.weight"),
    rules=(
        Rule(r"predictor\.(embed_tokens\.weight|norm\.weight|layers\.\d+\.(?:input_layernorm"
             r"|post_attention_layernorm|self_attn\.[qkvo]_proj|mlp\.(?:gate|up|down)_proj)\.weight)",
             r"predictor.\1"),
        Rule(r"predictor\.vis_proj\.(weight|bias)", r"predictor.visual_proj.\1"),
        Rule(r"predictor\.out_proj\.(weight|bias)", r"predictor.head.\1"),
        Rule(_OV_GEMMA, r"y_encoder.backbone.\1"),
        Rule(r"y_encoder\.projector\.(weight|bias)", r"y_encoder.head.\1"),
        # a file that kept the X-Encoder (not train.py's): the same names as vjepa2-hf under x_encoder.model.
        Rule(_OV_VJEPA2 + r"embeddings\.patch_embeddings\.proj\.(weight|bias)",
             r"x_encoder.patch_embed.proj.\1"),
        Rule(_OV_VJEPA2 + r"layer\.(\d+)\.(norm1|norm2|mlp\.fc1|mlp\.fc2)\.(weight|bias)",
             r"x_encoder.blocks.\1.\2.\3"),
        Rule(_OV_VJEPA2 + r"layer\.(\d+)\.attention\.proj\.(weight|bias)",
             r"x_encoder.blocks.\1.attn.proj.\2"),
        Rule(_OV_VJEPA2 + r"layer\.(\d+)\.attention\.(?P<part>query|key|value)\.(weight|bias)",
             r"x_encoder.blocks.\1.attn.qkv.\3", fuse=("query", "key", "value")),
        Rule(_OV_VJEPA2 + r"layernorm\.(weight|bias)", r"x_encoder.norm.\1"),
    ),
    # non-persistent buffers in some transformers versions; the V-JEPA 2 predictor is not used.
    # x_encoder.projector.* (encoder.output_dim set) has no counterpart here and is reported unexpected.
    ignore=("*rotary_emb.*", "*.embed_scale", "x_encoder.model.predictor.*", "x_encoder.model.pooler.*"),
    containers=("model_state_dict",),
)

FORMATS: dict[str, KeyMap] = {m.name: m for m in (VJEPA2_NATIVE, VJEPA2_HF, LLAMA3, EMBEDDINGGEMMA, BERT,
                                                  OPEN_VLJEPA, EDGE_VLJEPA)}

