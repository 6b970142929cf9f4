"""Reading a checkpoint's names and shapes, mapping them through a KeyMap, and loading strictly.

`load_pretrained` maps names and shapes before reading any tensor data, reports every missing,
unexpected or wrongly shaped key in one CheckpointError, then copies the tensors one at a time (a
multi-GB checkpoint never sits in memory twice). safetensors files (or folders of shards) are
preferred; torch .pt files are read only with torch.load(weights_only=True), never by unpickling
arbitrary objects. The patch embedding's load hook accepts Conv3d weights as they are.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from edge_vljepa.models import VLJEPA
from edge_vljepa.models.predictor import Predictor
from edge_vljepa.models.x_encoder import XEncoder
from edge_vljepa.models.y_decoder import YDecoder
from edge_vljepa.models.y_encoder import YEncoder
from edge_vljepa.weights.formats import FORMATS, KeyMap
from edge_vljepa.weights.native import CheckpointError, Fit, check_fit, matches

COMPONENT_CLASSES: dict[str, type[nn.Module]] = {
    "x_encoder": XEncoder, "predictor": Predictor, "y_encoder": YEncoder, "y_decoder": YDecoder}

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
    ignored = {k for k in shapes if matches(k, keymap.ignore)}
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


def mapped_components(mapping: Mapping) -> str:
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
    return tuple(k for k in expected if k not in mapping.sources and matches(k, allowed))


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
    return LoadReport(str(path), mapping.keymap.name, mapping.section, mapped_components(mapping),
                      len(mapping.sources), mapping.ignored, mapping.dropped, left_at_init(module, mapping),
                      mapping.layer_note())

