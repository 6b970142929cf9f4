"""Checkpoints: this project's native format, and upstream layouts mapped by declarative key tables.

Native: one .safetensors file holding the `VLJEPA` state dict (or any subset of components) plus
metadata: `format` = "edge-vljepa" and `config` = the ModelConfig as JSON, so a checkpoint names the
preset it belongs to and a mismatch is reported field by field (`save_checkpoint`, `load_checkpoint`).

Upstream layouts are described by one `KeyMap` each in `FORMATS` (docs/weights.md explains the
table, e.g. to add the official VL-JEPA layout once it is public, without touching model code):
  vjepa2-native   V-JEPA 2 training .pt (facebookresearch/vjepa2): fused qkv, `module.backbone.` prefix
  vjepa2-hf       V-JEPA 2 in Hugging Face layout (`VJEPA2Model`): split query/key/value -> fused qkv
  llama3          Llama-3.2 safetensors -> Predictor: its last `num_hidden_layers` layers, renumbered
  embeddinggemma  EmbeddingGemma / Gemma3TextModel safetensors -> Y-Encoder backbone
  bert            BertModel safetensors (all-MiniLM-L6-v2) -> Y-Encoder backbone
  edge-vljepa     this project's own keys, component-wise
A KeyMap holds regex rename rules, glob lists of source keys dropped on purpose (`ignore`) and of
model keys the format does not provide (`allow_missing`, e.g. the Predictor's visual_proj and
head), fused tensors, and layer selection. The patch embedding's load hook accepts Conv3d weights
as they are.

Loading is strict and lazy: `load_pretrained` maps names and shapes before reading any tensor data,
reports every missing, unexpected or wrongly shaped key in one CheckpointError, then copies the
tensors one at a time (a multi-GB checkpoint never sits in memory twice). safetensors files (or
folders of shards) are preferred; torch .pt files are read only with torch.load(weights_only=True),
never by unpickling arbitrary objects.

CLI: `python -m edge_vljepa.weights inspect PATH` names the format, the component it maps to and
the presets it fits, and lists what does not fit.
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import hashlib
import json
import math
import pickle
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from edge_vljepa.config import COMPONENTS, PRESETS, ConfigError, ModelConfig, get_preset, load_config_file
from edge_vljepa.models import VLJEPA, build_model
from edge_vljepa.models.predictor import Predictor
from edge_vljepa.models.x_encoder import XEncoder
from edge_vljepa.models.y_decoder import YDecoder
from edge_vljepa.models.y_encoder import YEncoder

FORMAT = "edge-vljepa"
COMPONENT_CLASSES: dict[str, type[nn.Module]] = {
    "x_encoder": XEncoder, "predictor": Predictor, "y_encoder": YEncoder, "y_decoder": YDecoder}


class CheckpointError(ValueError):
    """A checkpoint cannot be loaded into the model; the message lists every difference."""


# --- strict fit: missing / unexpected / wrongly shaped keys ----------------------------------

def _matches(key: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def _loadable_shape(shape) -> tuple[int, ...]:
    """A 5-D Conv3d tubelet weight (D, C, t, p, p) loads into the Linear patch embedding (D, C*t*p*p)."""
    shape = tuple(shape)
    return (shape[0], math.prod(shape[1:])) if len(shape) == 5 else shape


@dataclass(frozen=True)
class Fit:
    """How a checkpoint's keys fit a model: each list holds ready-to-print lines."""

    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    wrong: tuple[str, ...] = ()

    @property
    def problems(self) -> int:
        return len(self.missing) + len(self.unexpected) + len(self.wrong)

    @property
    def ok(self) -> bool:
        return self.problems == 0

    def counts(self) -> str:
        return (f"{len(self.missing)} missing, {len(self.unexpected)} unexpected, "
                f"{len(self.wrong)} wrong shapes")

    def details(self) -> str:
        def section(title, items):
            if not items:
                return ""
            shown = "\n    ".join(items[:20])
            more = f"\n    ... and {len(items) - 20} more" if len(items) > 20 else ""
            return f"\n  {title} ({len(items)}):\n    {shown}{more}"
        return (section("missing keys", self.missing) + section("unexpected keys", self.unexpected)
                + section("wrong shapes", self.wrong))


def check_fit(expected: dict[str, tuple[int, ...]], provided: dict[str, tuple[int, ...]],
              allow_missing: Iterable[str] = (), origin: dict[str, str] | None = None) -> Fit:
    """Compare model key shapes with checkpoint key shapes; `origin` names the source key of a renamed one."""
    origin = origin or {}

    def name(k):
        return f"{k} (from {origin[k]})" if k in origin and origin[k] != k else k

    missing = [k for k in expected if k not in provided and not _matches(k, allow_missing)]
    unexpected = [name(k) for k in provided if k not in expected]
    wrong = [f"{name(k)}: checkpoint {_loadable_shape(s)}, model {tuple(expected[k])}"
             for k, s in provided.items() if k in expected and _loadable_shape(s) != tuple(expected[k])]
    return Fit(tuple(missing), tuple(unexpected), tuple(wrong))


# --- native checkpoints -----------------------------------------------------------------------

def save_checkpoint(model: nn.Module, path: str | Path, cfg: ModelConfig, **metadata: str) -> None:
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"format": FORMAT, "config": cfg.to_json(), **metadata})


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file; a clear CheckpointError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint ({e})") from None


def read_metadata(path: str | Path) -> dict[str, str]:
    """A safetensors file's metadata without its tensors (the config a native checkpoint names)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint ({e})") from None


def config_differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Human-readable list of fields where two config dicts differ (nested sections flattened)."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_differences(va, vb, f"{prefix}{key}.")
        elif va != vb and not (isinstance(va, (list, tuple)) and list(va) == list(vb or [])):
            out.append(f"{prefix}{key}: checkpoint {vb!r}, preset {va!r}")
    return out


def check_config(cfg: ModelConfig, metadata: dict[str, str], path: str | Path) -> None:
    """Raise CheckpointError if the checkpoint's stored config differs from `cfg`."""
    if "config" not in metadata:
        return
    try:
        stored = ModelConfig.from_dict(json.loads(metadata["config"]))
    except (json.JSONDecodeError, ConfigError, TypeError) as e:
        raise CheckpointError(f"{path}: unreadable config in checkpoint metadata ({e})") from None
    diffs = config_differences(cfg.to_dict(), stored.to_dict())
    diffs = [d for d in diffs if not d.startswith("name:")]
    if diffs:
        raise CheckpointError(f"{path} was saved for a different model than preset {cfg.name!r}:\n  "
                              + "\n  ".join(diffs))


def load_state(model: nn.Module, state: dict[str, torch.Tensor], ignore: tuple[str, ...] = (),
               source: str = "checkpoint", allow_missing: tuple[str, ...] = ()) -> None:
    """Copy `state` into `model` strictly.

    ignore: glob patterns of checkpoint keys that are dropped on purpose (e.g. optimizer state).
    allow_missing: glob patterns of model keys the checkpoint need not provide (e.g. a frozen
    component loaded from elsewhere). Everything else must match in name and shape.
    """
    state = {k: v for k, v in state.items() if not _matches(k, ignore)}
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    fit = check_fit(expected, {k: tuple(v.shape) for k, v in state.items()}, allow_missing)
    if not fit.ok:
        raise CheckpointError(f"{source} does not fit the model:" + fit.details())
    model.load_state_dict(state, strict=False)


def load_checkpoint(model: nn.Module, path: str | Path, cfg: ModelConfig,
                    allow_missing: tuple[str, ...] = ()) -> dict[str, str]:
    """Load a native checkpoint into `model` (built from `cfg`); returns the checkpoint's metadata.
    allow_missing: model key patterns the checkpoint need not hold (see `load_state`)."""
    state, metadata = read_checkpoint(path)
    if metadata.get("format", FORMAT) != FORMAT:
        raise CheckpointError(f"{path} is a {metadata['format']!r} checkpoint, not {FORMAT!r}")
    check_config(cfg, metadata, path)
    load_state(model, state, source=str(path), allow_missing=allow_missing)
    return metadata


# --- the mapping tables -----------------------------------------------------------------------

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
    description="V-JEPA 2 training checkpoint (facebookresearch/vjepa2 .pt): the encoder with native "
                "names, fused qkv, Conv3d patch embedding; read from 'target_encoder' (the EMA "
                "encoder the hub loads), else 'encoder'",
    component="x_encoder",
    detect=(_VJEPA2 + r"blocks\.\d+\.attn\.qkv\.weight",),
    rules=(
        Rule(_VJEPA2 + r"(patch_embed\.proj\.(?:weight|bias))", r"\1"),
        Rule(_VJEPA2 + r"(blocks\.\d+\.(?:norm1|norm2|attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)"
             r"\.(?:weight|bias))", r"\1"),
        Rule(_VJEPA2 + r"(norm\.(?:weight|bias))", r"\1"),
    ),
    ignore=("*pos_embed",),  # stored by some checkpoints, unused with RoPE (as upstream's hub loader)
    containers=("target_encoder", "encoder"),
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


# --- reading sources --------------------------------------------------------------------------

@dataclass
class Source:
    """A checkpoint's tensors without their data: shapes per section, and a reader.

    A safetensors file (or a folder of them) has one section, "". A torch .pt file has a section ""
    for its top-level tensors and one per top-level entry that is a dict of tensors.
    """

    path: Path
    kind: str
    shapes: dict[str, dict[str, tuple[int, ...]]]
    read: Callable[[str, str], torch.Tensor]
    other: tuple[str, ...] = ()  # top-level .pt entries without tensors (epoch, optimizer, ...)
    extras: dict | None = None  # their values (Open-VLJEPA's `config` dict: sizes shapes cannot tell)


def open_source(path: str | Path) -> Source:
    """Open a .safetensors file, a folder of .safetensors shards, or a torch .pt file (weights only)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.is_dir():
        files = sorted(path.glob("*.safetensors"))
        if not files:
            raise CheckpointError(f"{path} is a folder without .safetensors files")
        return _safetensors_source(path, files)
    if path.suffix == ".safetensors":
        return _safetensors_source(path, [path])
    return _torch_source(path)


def _safetensors_source(path: Path, files: list[Path]) -> Source:
    handles, shapes = {}, {}
    for file in files:
        try:
            handle = safe_open(str(file), framework="pt")
            keys = list(handle.keys())
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{file} is not a readable safetensors file ({e})") from None
        for key in keys:
            if key in handles:
                raise CheckpointError(f"{path}: tensor {key!r} appears in more than one file")
            handles[key] = handle
            shapes[key] = tuple(handle.get_slice(key).get_shape())
    return Source(path, "safetensors", {"": shapes}, lambda section, key: handles[key].get_tensor(key))


def _torch_source(path: Path) -> Source:
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path} cannot be read as a weights-only torch checkpoint "
                              f"(torch.load(weights_only=True): {reason})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a dict of tensors")
    sections = {"": {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}}
    other = []
    for key, value in obj.items():
        if isinstance(value, dict) and value and all(isinstance(v, torch.Tensor) for v in value.values()):
            sections[str(key)] = value
        elif not isinstance(value, torch.Tensor):
            other.append(str(key))
    sections = {s: t for s, t in sections.items() if t}
    shapes = {s: {str(k): tuple(v.shape) for k, v in t.items()} for s, t in sections.items()}
    extras = {str(k): v for k, v in obj.items() if str(k) in other}
    return Source(path, "torch", shapes, lambda section, key: sections[section][key], tuple(other), extras)


# --- mapping keys -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Mapping:
    """Where every model key comes from, decided from names and shapes alone."""

    keymap: KeyMap
    section: str
    sources: dict[str, tuple[str, ...]]  # model key -> source key(s); several are concatenated on dim 0
    shapes: dict[str, tuple[int, ...]]  # model key -> shape of the mapped tensor
    ignored: tuple[str, ...]  # source keys dropped by the ignore list
    dropped: tuple[str, ...]  # source keys of layers the model does not keep (last_layers)
    unexpected: tuple[str, ...]  # source keys no rule maps, fused parts that do not fit, duplicates
    incomplete: tuple[str, ...]  # fused model keys with parts missing
    layers: tuple[int, int] | None = None  # (source layers, model layers) with last_layers

    def layer_note(self) -> str:
        if self.layers is None:
            return ""
        s, m = self.layers
        return (f"keeps layers {s - m}..{s - 1} of {s} as 0..{m - 1}" if s > m
                else f"uses all {s} layers" if s == m else f"has {s} layers, the model needs {m}")


def _layer_count(keys: Iterable[str], pattern: str) -> int:
    found = [int(m.group(1)) for k in keys if (m := re.match(pattern, k))]
    return max(found) + 1 if found else 0


def map_keys(keymap: KeyMap, shapes: dict[str, tuple[int, ...]], section: str = "",
             model_keys: Iterable[str] | None = None) -> Mapping:
    """Apply `keymap` to source key shapes; `model_keys` (component-relative) enable layer selection."""
    ignored = {k for k in shapes if _matches(k, keymap.ignore)}
    keys = [k for k in shapes if k not in ignored]
    offset, layers = 0, None
    if keymap.last_layers is not None and model_keys is not None:
        s = _layer_count(keys, keymap.last_layers.source)
        m = _layer_count(model_keys, keymap.last_layers.target)
        offset, layers = max(s - m, 0), (s, m)
    sources, out_shapes, origin, dropped, unexpected = {}, {}, {}, [], []
    parts: dict[str, dict[str, str]] = {}
    fuse_of: dict[str, tuple[str, ...]] = {}
    for key in keys:
        renamed = key
        if layers is not None and (lm := re.match(keymap.last_layers.source, key)):
            index = int(lm.group(1))
            if index < offset:
                dropped.append(key)
                continue
            renamed = key[:lm.start(1)] + str(index - offset) + key[lm.end(1):]
        rule = next((r for r in keymap.rules if re.fullmatch(r.pattern, renamed)), None)
        if rule is None:
            unexpected.append(f"{key} (no rule of format {keymap.name!r} maps it)")
            continue
        match = re.fullmatch(rule.pattern, renamed)
        target = match.expand(rule.target)
        if rule.fuse:
            part = match.group("part")
            parts.setdefault(target, {})[part] = key
            fuse_of[target] = rule.fuse
        elif target in sources:
            unexpected.append(f"{key} (maps to {target}, already given by {origin[target]})")
        else:
            sources[target], out_shapes[target], origin[target] = (key,), shapes[key], key
    incomplete = []
    for target, found in parts.items():
        order = fuse_of[target]
        absent = [p for p in order if p not in found]
        trailing = {shapes[k][1:] for k in found.values()}
        if absent:
            incomplete.append(f"{target} (fused from {', '.join(order)}: no {', '.join(absent)})")
        elif len(trailing) > 1:
            unexpected.append(f"{target}: parts {', '.join(found.values())} differ in shape "
                              f"{[shapes[k] for k in found.values()]}")
        else:
            sources[target] = tuple(found[p] for p in order)
            first = shapes[sources[target][0]]
            out_shapes[target] = (sum(shapes[k][0] for k in sources[target]), *first[1:])
    return Mapping(keymap, section, sources, out_shapes, tuple(k for k in shapes if k in ignored),
                   tuple(dropped), tuple(unexpected), tuple(incomplete), layers)


def recognise(source: Source, fmt: str | None = None, container: str | None = None) -> Mapping:
    """The format of `source` (or the named one) and its key mapping, without model-dependent parts.

    Candidates are the formats whose `detect` patterns all match; the one leaving the fewest source
    keys unmapped wins; a tie is an error asking for an explicit format.
    """
    if fmt is not None and fmt not in FORMATS:
        raise CheckpointError(f"unknown format {fmt!r}; known formats: {', '.join(FORMATS)}")
    if container is not None and container not in source.shapes:
        raise CheckpointError(f"{source.path} has no tensor section {container!r}; it has: "
                              f"{', '.join(repr(s) for s in source.shapes) or 'none'}")
    candidates = []
    for keymap in [FORMATS[fmt]] if fmt else FORMATS.values():
        section = container if container is not None else _section(source, keymap)
        shapes = source.shapes.get(section, {})
        if fmt or all(any(re.fullmatch(d, k) for k in shapes) for d in keymap.detect):
            candidates.append(map_keys(keymap, shapes, section))
    if not candidates:
        section = container if container is not None else next(iter(source.shapes), "")
        keys = sorted(source.shapes.get(section, {}))
        sections = (f"; tensor sections (--container): {', '.join(repr(s) for s in source.shapes)}"
                    if source.kind == "torch" else "")
        raise CheckpointError(f"{source.path}: no known format matches ({', '.join(FORMATS)}); first keys: "
                              f"{', '.join(keys[:5]) or 'none'}{sections}; add a KeyMap (docs/weights.md)")
    fewest = min(len(c.unexpected) for c in candidates)
    best = [c for c in candidates if len(c.unexpected) == fewest]
    if len(best) > 1:
        raise CheckpointError(f"{source.path} matches several formats equally well "
                              f"({', '.join(c.keymap.name for c in best)}); name one with --format")
    return best[0]


def _targets(mapping: Mapping) -> str:
    """The component a mapping fills, or the components a whole-model mapping touches."""
    return mapping.keymap.component or ", ".join(sorted({k.split(".", 1)[0] for k in mapping.sources}))


def _section(source: Source, keymap: KeyMap) -> str:
    return next((c for c in keymap.containers if c in source.shapes), "")


def _component_shapes(model: nn.Module, component: str | None,
                      touched: Iterable[str] = ()) -> dict[str, tuple[int, ...]]:
    """Shapes of the model keys a format fills: one component, or the components it touches."""
    state = model.state_dict()
    if component is None:
        roots = {k.split(".", 1)[0] for k in touched}
        return {k: tuple(v.shape) for k, v in state.items() if k.split(".", 1)[0] in roots}
    return {k: tuple(v.shape) for k, v in state.items()}


def target_module(model: nn.Module, keymap: KeyMap) -> nn.Module:
    """The module the format's keys are relative to: a component of `model`, `model` itself."""
    if keymap.component is None:
        if not isinstance(model, VLJEPA):
            raise CheckpointError(f"format {keymap.name!r} holds whole-model keys; pass the VLJEPA model, "
                                  f"not a {type(model).__name__}")
        return model
    if isinstance(model, VLJEPA):
        return getattr(model, keymap.component)
    klass = COMPONENT_CLASSES[keymap.component]
    if not isinstance(model, klass):
        raise CheckpointError(f"format {keymap.name!r} maps to the {keymap.component} ({klass.__name__}); "
                              f"got a {type(model).__name__}")
    return model


def fit_mapping(source: Source, mapping: Mapping, module: nn.Module) -> tuple[Mapping, Fit]:
    """Redo the mapping against `module` (layer selection needs its layer count) and check the fit."""
    keymap = mapping.keymap
    state_keys = list(module.state_dict())
    mapping = map_keys(keymap, source.shapes.get(mapping.section, {}), mapping.section, state_keys)
    expected = _component_shapes(module, keymap.component, mapping.sources)
    origin = {t: ", ".join(s) for t, s in mapping.sources.items()}
    fit = check_fit(expected, mapping.shapes, keymap.allow_missing, origin)
    return mapping, Fit(fit.missing + mapping.incomplete, mapping.unexpected + fit.unexpected, fit.wrong)


def left_at_init(module: nn.Module, mapping: Mapping) -> tuple[str, ...]:
    """Model keys the format does not provide by design (allow_missing): they keep their initialisation."""
    expected = _component_shapes(module, mapping.keymap.component, mapping.sources)
    allowed = mapping.keymap.allow_missing
    return tuple(k for k in expected if k not in mapping.sources and _matches(k, allowed))


# --- loading ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class LoadReport:
    """What `load_pretrained` did."""

    path: str
    format: str
    section: str
    component: str  # the component loaded, or the components of a whole-model format
    loaded: int  # model tensors written
    ignored: tuple[str, ...]
    dropped: tuple[str, ...]
    left_at_init: tuple[str, ...]  # model keys the format does not provide (allow_missing)
    layers: str

    def summary(self) -> str:
        where = f" [{self.section}]" if self.section else ""
        parts = [f"{self.path}{where}: {self.format} -> {self.component}, {self.loaded} tensors loaded"]
        if self.layers:
            parts.append(self.layers)
        if self.ignored:
            parts.append(f"{len(self.ignored)} ignored")
        if self.left_at_init:
            parts.append(f"left at init: {', '.join(self.left_at_init)}")
        return "; ".join(parts)


def load_pretrained(model: nn.Module, path: str | Path, fmt: str | None = None,
                    container: str | None = None) -> LoadReport:
    """Load an upstream checkpoint (any format in FORMATS) into `model` strictly.

    model: the whole VLJEPA, or the component module the format maps to (XEncoder, Predictor, ...).
    fmt: a FORMATS name; None recognises it from the keys. container: the .pt section to read.
    Raises CheckpointError listing every missing, unexpected or wrongly shaped key; nothing is
    written into the model unless everything fits.
    """
    source = open_source(path)
    mapping = recognise(source, fmt, container)
    module = target_module(model, mapping.keymap)
    mapping, fit = fit_mapping(source, mapping, module)
    where = f" [{mapping.section}]" if mapping.section else ""
    if not fit.ok:
        raise CheckpointError(f"{path}{where} ({mapping.keymap.name}) does not fit the "
                              f"{mapping.keymap.component or 'model'}:" + fit.details())
    for target, keys in mapping.sources.items():
        tensors = [source.read(mapping.section, k) for k in keys]
        tensor = tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim=0)
        module.load_state_dict({target: tensor}, strict=False)  # one at a time; load hooks apply
    return LoadReport(str(path), mapping.keymap.name, mapping.section, _targets(mapping),
                      len(mapping.sources), mapping.ignored, mapping.dropped, left_at_init(module, mapping),
                      mapping.layer_note())


# --- bring your own weights: configs derived from checkpoints, models assembled from several ----
#
# Bring your own weights: a model config derived from checkpoints, and a model assembled from several.
#
# Why: a user with upstream weights (V-JEPA 2, Llama-3.2, EmbeddingGemma, an Open-VLJEPA best.pt) should
# get an artifact in one command, at whatever size those checkpoints have, without writing Python.
#
# Sources are given as `PATH` (a whole-model checkpoint, or one whose format names its component) or
# `COMPONENT=PATH`. `derive_config` reads names and shapes only (no tensor data):
#
#   - sizes come from tensor shapes (widths, depths, vocabularies, MLP sizes, KV heads, the shared
#     embedding dimension from the heads);
#   - what shapes cannot tell (attention heads where q is square, RoPE theta and scaling, norm eps,
#     Gemma's window and layer pattern) comes from the Hugging Face `config.json` beside the weights when
#     there is one, else from the base config (--preset, default `paper`: the paper's values);
#   - an Open-VLJEPA best.pt's own `config` dict gives the input sizes it was trained with (frames, image
#     size, query and caption lengths);
#   - everything else (fps, tokenizers, the Y-Decoder) is the base config's.
#
# `assemble` then builds the model and loads every source strictly (edge_vljepa.weights); a component
# no source covers is an error unless it is listed as random. `provenance` records each source's file
# and sha256 for the artifact manifest and the assembled checkpoint.

# V-JEPA 2 encoders by width: (heads). ViT-L/16 and ViT-g/16 have 64 channels per head, ViT-H/16 80.
VJEPA2_HEADS = {1024: 16, 1280: 16, 1408: 22}


@dataclass(frozen=True)
class SourceSpec:
    """One --checkpoint: a path, and the component it is for (None: what its format says)."""

    path: Path
    component: str | None = None

    @classmethod
    def parse(cls, item: str) -> SourceSpec:
        name, sep, rest = str(item).partition("=")
        if sep and name in COMPONENTS:
            return cls(Path(rest), name)
        if sep and "/" not in name and not Path(item).exists():
            raise CheckpointError(f"--checkpoint {item!r}: {name!r} is not a component "
                                  f"({', '.join(COMPONENTS)}); use COMPONENT=PATH or PATH")
        return cls(Path(item))

    def __str__(self) -> str:
        return f"{self.component}={self.path}" if self.component else str(self.path)


@dataclass
class Opened:
    """A source opened and recognised: its mapping (names and shapes only) and the components it fills."""

    spec: SourceSpec
    source: Source
    mapping: Mapping

    @property
    def components(self) -> tuple[str, ...]:
        keymap = self.mapping.keymap
        if keymap.component is not None:
            return (keymap.component,)
        return tuple(c for c in COMPONENTS if any(k.startswith(c + ".") for k in self.mapping.sources))

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Mapped shapes as full model keys (component prefix added), source layer numbers kept."""
        prefix = f"{self.mapping.keymap.component}." if self.mapping.keymap.component else ""
        return {prefix + k: v for k, v in self.mapping.shapes.items()}

    def hf_config(self) -> dict:
        """The Hugging Face config.json in the source's folder (or beside its file), else {}."""
        path = self.spec.path
        file = (path if path.is_dir() else path.parent) / "config.json"
        try:
            data = json.loads(file.read_text()) if file.is_file() else {}
        except (OSError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{file}: unreadable ({e})") from None
        return data.get("text_config", data) if isinstance(data, dict) else {}

    def training_config(self) -> dict:
        """An Open-VLJEPA best.pt's `config` entry (a plain dict), else {}."""
        config = (self.source.extras or {}).get("config")
        return config if isinstance(config, dict) else {}


def open_sources(specs: list[SourceSpec]) -> list[Opened]:
    """Open and recognise every source; a component named twice is an error."""
    opened, seen = [], {}
    for spec in specs:
        source = open_source(spec.path)
        mapping = recognise(source)
        item = Opened(spec, source, mapping)
        if spec.component is not None and mapping.keymap.component not in (None, spec.component):
            raise CheckpointError(f"--checkpoint {spec}: the file is {mapping.keymap.name!r}, which maps "
                                  f"to the {mapping.keymap.component}, not the {spec.component}")
        if spec.component is not None and mapping.keymap.component is None:
            raise CheckpointError(f"--checkpoint {spec}: {mapping.keymap.name!r} holds whole-model keys "
                                  f"({', '.join(item.components)}); pass it without {spec.component}=")
        for component in item.components:
            if component in seen:
                raise CheckpointError(f"the {component} comes from two checkpoints: "
                                      f"{seen[component]} and {spec}")
            seen[component] = spec
        opened.append(item)
    return opened


# --- the config, from shapes ------------------------------------------------------------------

def _layers(shapes: dict, prefix: str) -> int:
    found = {int(m.group(1)) for k in shapes if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    return len(found)


def _first(shapes: dict, pattern: str) -> tuple[int, ...] | None:
    return next((v for k, v in shapes.items() if re.fullmatch(pattern, k)), None)


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


def _x_encoder(base, shapes: dict, hf: dict) -> dict:
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
        out["mlp_ratio"] = fc1[0] / width
    heads = hf.get("num_attention_heads") or VJEPA2_HEADS.get(width) or max(1, width // base.head_dim)
    out["num_heads"] = heads
    if "layer_norm_eps" in hf:
        out["norm_eps"] = hf["layer_norm_eps"]
    if "crop_size" in hf:
        out["img_size"] = hf["crop_size"]
    return out


def _predictor(base, keep: int, shapes: dict, hf: dict, whole_model: bool) -> dict:
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


def _y_encoder(base, shapes: dict, hf: dict) -> dict:
    embed = _first(shapes, r"y_encoder\.backbone\.embed_tokens\.weight")
    q_norm = _first(shapes, r"y_encoder\.backbone\.layers\.\d+\.self_attn\.q_norm\.weight")
    if embed is None or q_norm is None:
        return {}  # only Gemma 3 (EmbeddingGemma) backbones are derived; BERT needs --config or a preset
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


# Fields that are about the inputs, not the weights: a derived component takes them from the base config
# (--preset) or from a training config, its architecture fields not in the shapes from the paper's values.
INPUT_FIELDS = {"x_encoder": ("img_size", "num_frames"), "predictor": ("max_query_len", "tokenizer"),
                "y_encoder": ("max_text_len", "tokenizer")}
TRAINING_DATA = {"x_encoder": {"image_size": "img_size", "num_frames": "num_frames"},
                 "predictor": {"max_query_len": "max_query_len"},
                 "y_encoder": {"max_caption_len": "max_text_len"}}


def derive_config(opened: list[Opened], base: ModelConfig,
                  name: str = "derived") -> tuple[ModelConfig, list[str]]:
    """The config these sources need on top of `base` (which gives fps, tokenizers, input sizes, the
    Y-Decoder and any component no source describes), and a note per derived component saying where its
    values came from. A native edge-vljepa checkpoint carries its config: that one is used."""
    for item in opened:
        if item.mapping.keymap.name == FORMAT and item.source.kind == "safetensors":
            stored = _native_config(item.spec.path)
            if stored is not None:
                return stored, [f"{item.spec}: the config stored in the checkpoint"]
    paper = get_preset("paper")
    parts = {c: {} for c in COMPONENTS}
    embed_dim, notes = None, []
    data = {}
    for item in opened:
        data |= item.training_config().get("data", {})
    for item in opened:
        shapes, hf = item.shapes(), item.hf_config()
        whole = item.mapping.keymap.component is None
        found = {"x_encoder": _x_encoder(paper.x_encoder, shapes, hf),
                 "predictor": _predictor(paper.predictor, base.predictor.num_hidden_layers, shapes, hf,
                                         whole),
                 "y_encoder": _y_encoder(paper.y_encoder, shapes, hf)}
        for component, values in found.items():
            if values:
                parts[component] |= values
                rest = "its config.json" if hf else "the paper's values"
                notes.append(f"{component}: sizes from the tensor shapes of {item.spec}, other fields "
                             f"from {rest}")
        for key in ("predictor.head.weight", "y_encoder.head.weight"):
            if key in shapes:
                embed_dim = shapes[key][0]
    sections = {}
    try:
        for c in COMPONENTS:
            if not parts[c]:
                sections[c] = getattr(base, c)
                continue
            inputs = {f: getattr(getattr(base, c), f) for f in INPUT_FIELDS[c]}
            inputs |= {field: data[key] for key, field in TRAINING_DATA[c].items() if key in data}
            start = dataclasses.replace(getattr(paper, c), **inputs)
            sections[c] = dataclasses.replace(start, **parts[c])
        cfg = dataclasses.replace(base, name=name, embed_dim=embed_dim or base.embed_dim, **sections)
    except (ConfigError, TypeError) as e:
        raise CheckpointError(f"the checkpoints describe no valid model: {e}") from None
    if data:
        notes.append("input sizes (frames, image size, query and caption lengths) from the training config")
    return cfg, notes


def _native_config(path: Path) -> ModelConfig | None:
    text = read_metadata(path).get("config")
    return ModelConfig.from_dict(json.loads(text)) if text else None


# --- assembly ---------------------------------------------------------------------------------

def covered(opened: list[Opened], random: list[str] | tuple[str, ...] = ()) -> None:
    """Every component must come from a source or be asked for as random weights."""
    have = {c for item in opened for c in item.components}
    both = sorted(have & set(random))
    if both:
        raise CheckpointError(f"--random-weights {', '.join(both)}: a checkpoint already provides it")
    missing = [c for c in COMPONENTS if c not in have and c not in random]
    if missing:
        raise CheckpointError(f"no weights for {', '.join(missing)}: pass --checkpoint COMPONENT=PATH, or "
                              f"--random-weights {' '.join(missing)} to export it untrained")


def assemble(cfg: ModelConfig, opened: list[Opened], random: list[str] | tuple[str, ...] = (),
             seed: int = 0) -> tuple[VLJEPA, list[LoadReport]]:
    """The model of `cfg` with every source loaded strictly; `random` components keep their init."""
    covered(opened, random)
    model = build_model(cfg, seed=seed)
    reports = []
    for item in opened:
        target = getattr(model, item.spec.component) if item.spec.component else model
        reports.append(load_pretrained(target, item.spec.path))
    return model.eval(), reports


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def provenance(opened: list[Opened], random: list[str] | tuple[str, ...] = ()) -> dict:
    """Per component: the source it came from (format, files with their sha256), or 'random weights'."""
    out = {}
    for item in opened:
        path = item.spec.path
        files = sorted(path.glob("*.safetensors")) if path.is_dir() else [path]
        record = {"source": str(path), "format": item.mapping.keymap.name,
                  "files": {str(f): file_sha256(f) for f in files}}
        for component in item.components:
            out[component] = record
    for component in random:
        out[component] = {"source": "random weights"}
    return {c: out[c] for c in COMPONENTS if c in out}


def base_config(preset: str | None) -> ModelConfig:
    """What a derived config starts from: --preset, else the paper's values."""
    return get_preset(preset or "paper")


def assemble_from_args(checkpoints: list[str], random: list[str] | tuple[str, ...] = (),
                       preset: str | None = None, config: str | Path | None = None):
    """The one path from --checkpoint / --random-weights / --preset / --config to a loaded model:
    (model, config, load reports, provenance, notes on where the config came from).
    --config is used as given; otherwise the config is derived from the sources on top of --preset."""
    specs = [SourceSpec.parse(item) for item in checkpoints]
    opened = open_sources(specs)
    covered(opened, random)
    if config is not None:
        cfg, notes = load_config_file(config), [f"from {config}"]
    else:
        base = base_config(preset)
        cfg, notes = derive_config(opened, base)
        if dataclasses.replace(cfg, name=base.name) == base:
            cfg, notes = base, [f"preset {base.name!r} (the checkpoints have its sizes)"]
    model, reports = assemble(cfg, opened, random)
    return model, cfg, reports, provenance(opened, random), notes


# --- CLI --------------------------------------------------------------------------------------

def _describe_source(source: Source, mapping: Mapping) -> str:
    if source.kind == "safetensors":
        n = len(list(source.path.glob("*.safetensors"))) if source.path.is_dir() else 1
        return f"safetensors ({n} file{'s' if n > 1 else ''})"
    others = [s for s in source.shapes if s and s != mapping.section]
    text = "torch .pt read with weights_only=True"
    if mapping.section:
        text += f"; section {mapping.section!r}"
    if others:
        text += f"; other tensor sections: {', '.join(others)}"
    if source.other:
        text += f"; other entries: {', '.join(source.other[:8])}"
    return text


def _inspect(args) -> int:
    source = open_source(args.path)
    mapping = recognise(source, args.format, args.container)
    keymap = mapping.keymap
    print(f"file:    {args.path} ({_describe_source(source, mapping)})")
    print(f"format:  {keymap.name}: {keymap.description}")
    target = _targets(mapping)
    ignored = f"; {len(mapping.ignored)} ignored: {', '.join(mapping.ignored[:4])}" if mapping.ignored else ""
    print(f"maps to: {target} ({len(source.shapes.get(mapping.section, {}))} source tensors{ignored})")
    configs = {}
    if args.config is not None:
        configs[args.config.stem] = load_config_file(args.config)
    elif args.preset:
        configs[args.preset] = get_preset(args.preset)
    else:
        configs = {name: get_preset(name) for name in PRESETS}
        derived, notes = derive_config([Opened(SourceSpec(Path(args.path)), source, mapping)],
                                       base_config(None))
        if notes:  # a size the presets may not have: the config this file would be exported with
            configs["derived"] = derived
            for note in notes:
                print(f"derived: {note}")
            touched = [c for c in COMPONENTS if c in target.split(", ")]
            shown = {c: derived.to_dict()[c] for c in touched} | {"embed_dim": derived.embed_dim}
            print(f"config:  {json.dumps(shown)}")
            if args.write_config:
                Path(args.write_config).write_text(json.dumps(derived.to_dict(), indent=1) + "\n")
                print(f"wrote   {args.write_config} (pass it with --config)")
    results = {}
    for name, cfg in configs.items():
        with torch.device("meta"):
            module = target_module(build_model(cfg, seed=None), keymap)
        fitted, fit = fit_mapping(source, mapping, module)
        results[name] = fit
        notes = [n for n in (fitted.layer_note(),) if n]
        left = left_at_init(module, fitted)
        if left and fit.ok:
            notes.append(f"not in this format, left at init: {', '.join(left)}")
        verdict = "fits" if fit.ok else f"does not fit ({fit.counts()})"
        kind = "config" if name == "derived" else "preset"
        print(f"{kind} {name + ':':9}{verdict}" + (f"; {'; '.join(notes)}" if notes else ""))
    fitting = [n for n, f in results.items() if f.ok]
    if not fitting:
        closest = min(results, key=lambda n: results[n].problems)
        print(f"what does not fit {closest!r}:" + results[closest].details())
    print(f"summary: {keymap.name} -> {target}; fits: {', '.join(fitting) or 'no config'}")
    return 0 if fitting else 1


def main(argv: list[str] | None = None) -> int:
    formats = "\n".join(f"  {m.name:15} {m.description}" for m in FORMATS.values())
    parser = argparse.ArgumentParser(
        prog="python -m edge_vljepa.weights",
        description="Checkpoint tools: recognise upstream weight layouts and check them against the presets.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "inspect", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="say which format a checkpoint is, which component it maps to, which preset it fits",
        description="Recognise the layout of PATH (.safetensors file, folder of shards, or torch .pt read "
                    "with weights_only=True), name the model component it maps to, check it against "
                    "every preset (or --preset) and list the missing, unexpected and wrongly shaped keys. "
                    "Reads names and shapes only. Exit status: 0 fits, 1 does not fit, 2 error.",
        epilog=f"formats (docs/weights.md explains how to add one):\n{formats}")
    p.add_argument("path", help="checkpoint file or folder")
    p.add_argument("--format", choices=list(FORMATS), default=None,
                   help="source format (default: recognised from the keys)")
    p.add_argument("--container", default=None,
                   help="torch .pt: the entry holding the state dict (default: the format's preference, "
                        "e.g. target_encoder for V-JEPA 2)")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--preset", choices=list(PRESETS), default=None,
                       help="check only this preset (default: every preset, and the config derived from the "
                            "file's shapes and config.json)")
    model.add_argument("--config", type=Path, metavar="FILE.json", help="check only this model config")
    p.add_argument("--write-config", type=Path, metavar="FILE.json",
                   help="write the derived config (for --config of the exporters and runtimes.stream)")
    add_assemble_parser(sub)
    args = parser.parse_args(argv)
    try:
        if args.command == "assemble":
            return _assemble(args)
        return _inspect(args)
    except (CheckpointError, ConfigError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2


def add_assemble_parser(sub) -> None:
    p = sub.add_parser(
        "assemble", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="assemble upstream checkpoints into one native .safetensors",
        description="Build the model from --checkpoint sources (a whole-model file such as an Open-VLJEPA "
                    "best.pt, or COMPONENT=PATH per component), each loaded strictly, and write it as one "
                    "native checkpoint with its config and every source's sha256 in the metadata. The config "
                    "is derived from the sources' shapes and config.json on top of --preset (default: paper),"
                    " unless --config is given. Exit status: 0 written, 2 error (nothing written).")
    p.add_argument("--checkpoint", action="append", required=True, metavar="[COMPONENT=]PATH",
                   help="a checkpoint file or folder (repeatable)")
    p.add_argument("--random-weights", nargs="+", default=[], choices=COMPONENTS, metavar="COMPONENT",
                   help="components no checkpoint provides, left at random init on purpose")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--preset", choices=list(PRESETS), help="base of the derived config (default: paper)")
    model.add_argument("--config", type=Path, metavar="FILE.json", help="the model config (no derivation)")
    p.add_argument("--out", type=Path, required=True, help="the .safetensors file to write")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")


def _assemble(args) -> int:
    if args.out.exists() and not args.force:
        raise CheckpointError(f"{args.out} exists; pass --force to replace it")
    model, cfg, reports, sources, notes = assemble_from_args(args.checkpoint, args.random_weights,
                                                               args.preset, args.config)
    for note in notes:
        print(f"config:  {note}")
    for report in reports:
        print(f"loaded:  {report.summary()}")
    save_checkpoint(model, args.out, cfg, sources=json.dumps(sources))
    print(f"wrote {args.out} (config {cfg.name!r}; pass it with --checkpoint)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
