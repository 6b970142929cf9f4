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
import fnmatch
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

from edge_vljepa.config import PRESETS, ConfigError, ModelConfig, get_preset
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

FORMATS: dict[str, KeyMap] = {m.name: m for m in (VJEPA2_NATIVE, VJEPA2_HF, LLAMA3, EMBEDDINGGEMMA, BERT,
                                                  EDGE_VLJEPA)}


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
    return Source(path, "torch", shapes, lambda section, key: sections[section][key], tuple(other))


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
    presets = [args.preset] if args.preset else list(PRESETS)
    results = {}
    for name in presets:
        with torch.device("meta"):
            module = target_module(build_model(get_preset(name), seed=None), keymap)
        fitted, fit = fit_mapping(source, mapping, module)
        results[name] = fit
        notes = [n for n in (fitted.layer_note(),) if n]
        left = left_at_init(module, fitted)
        if left and fit.ok:
            notes.append(f"not in this format, left at init: {', '.join(left)}")
        verdict = "fits" if fit.ok else f"does not fit ({fit.counts()})"
        print(f"preset {name + ':':9}{verdict}" + (f"; {'; '.join(notes)}" if notes else ""))
    fitting = [n for n, f in results.items() if f.ok]
    if not fitting:
        closest = min(results, key=lambda n: results[n].problems)
        print(f"what does not fit preset {closest!r}:" + results[closest].details())
    print(f"summary: {keymap.name} -> {target}; fits: {', '.join(fitting) or 'no preset'}")
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
    p.add_argument("--preset", choices=list(PRESETS), default=None,
                   help="check only this preset (default: all)")
    args = parser.parse_args(argv)
    try:
        return _inspect(args)
    except (CheckpointError, ConfigError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
