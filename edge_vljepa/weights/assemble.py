"""Bring your own weights: a model config derived from checkpoints, and a model assembled from several.

Why: a user with upstream weights (V-JEPA 2, Llama-3.2, EmbeddingGemma, an Open-VLJEPA best.pt) should
get an artifact in one command, at whatever size those checkpoints have, without writing Python.

Sources are given as `PATH` (a whole-model checkpoint, or one whose format names its component) or
`COMPONENT=PATH`. `derive_config` reads names and shapes only (edge_vljepa.weights.derive); an
Open-VLJEPA best.pt's own `config` dict gives the input sizes it was trained with (frames, image size,
query and caption lengths); everything else (fps, tokenizers, the Y-Decoder) is the base config's
(--preset, default `paper`).

`assemble` then builds the model and loads every source strictly; a component no source covers is an
error unless it is listed as random. `provenance` records each source's files and sha256 for the
artifact manifest (`model.sources`) and the assembled checkpoint; `reassemble` rebuilds the model from
such a record when every file is still where it was, unchanged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_vljepa.config import COMPONENTS, ConfigError, ModelConfig, get_preset, load_config_file
from edge_vljepa.models import VLJEPA, build_model
from edge_vljepa.weights.derive import predictor_fields, x_encoder_fields, y_encoder_fields
from edge_vljepa.weights.mapping import LoadReport, Mapping, Source, load_pretrained, open_source, recognise
from edge_vljepa.weights.native import FORMAT, CheckpointError, read_metadata


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


# --- the config -------------------------------------------------------------------------------

# Fields about the inputs, not the weights: a derived component takes them from the base config
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
        found = {"x_encoder": x_encoder_fields(paper.x_encoder, shapes, hf),
                 "predictor": predictor_fields(paper.predictor, base.predictor.num_hidden_layers, shapes, hf,
                                         whole),
                 "y_encoder": y_encoder_fields(paper.y_encoder, shapes, hf)}
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


def weight_files(path: Path) -> list[Path]:
    """The files a source's tensors are read from: the file, or a folder's .safetensors shards."""
    return sorted(path.glob("*.safetensors")) if path.is_dir() else [path]


def provenance(opened: list[Opened], random: list[str] | tuple[str, ...] = ()) -> dict:
    """Per component: the source it came from (absolute path, format, files with their sha256), or
    'random weights'. `reassemble` rebuilds the model from it."""
    out = {}
    for item in opened:
        path = item.spec.path.resolve()
        record = {"source": str(path), "format": item.mapping.keymap.name,
                  "files": {str(f): file_sha256(f) for f in weight_files(path)}}
        for component in item.components:
            out[component] = record
    for component in random:
        out[component] = {"source": "random weights"}
    return {c: out[c] for c in COMPONENTS if c in out}


def base_config(preset: str | None) -> ModelConfig:
    """What a derived config starts from: --preset, else the paper's values."""
    return get_preset(preset or "paper")


def assemble_from_args(checkpoints: list[str], random: list[str] | tuple[str, ...] = (),
                       preset: str | None = None, config: str | Path | None = None,
                       check: Callable[[ModelConfig], object] | None = None):
    """The one path from --checkpoint / --random-weights / --preset / --config to a loaded model:
    (model, config, load reports, provenance, notes on where the config came from).
    --config is used as given; otherwise the config is derived from the sources on top of --preset.
    check: called with the config before the weights are read (minutes at paper size), so that what
    the caller needs besides the weights (e.g. the tokenizers the config names) fails first."""
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
    if check is not None:
        check(cfg)
    model, reports = assemble(cfg, opened, random)
    return model, cfg, reports, provenance(opened, random), notes



REASSEMBLE_HINT = ("put it back, or assemble the same sources into one file (python -m "
                   "edge_vljepa.weights assemble --checkpoint ... --out model.safetensors) and pass "
                   "--checkpoint model.safetensors")


def reassemble(sources: dict, cfg: ModelConfig) -> VLJEPA:
    """The model of `cfg` rebuilt from `provenance`'s record (an artifact manifest's `model.sources`):
    every source read again from its recorded path, once its files are checked to be the recorded ones
    with the recorded sha256; random components get the same init as at export (build_model's seed)."""
    paths, random, checked = [], [], set()
    for component, record in sources.items():
        if record.get("source") == "random weights":
            random.append(component)
            continue
        path, files = Path(record["source"]), record.get("files", {})
        if not path.exists():
            raise CheckpointError(f"the {component} was exported from {path}, which is not there now; "
                                  + REASSEMBLE_HINT)
        now = [str(f) for f in weight_files(path)]
        if set(now) != set(files):
            raise CheckpointError(f"the {component} source {path} changed: it holds {len(now)} weight files "
                                  f"now, the manifest records {len(files)}; " + REASSEMBLE_HINT)
        for file, sha256 in files.items():
            if file not in checked and file_sha256(Path(file)) != sha256:
                raise CheckpointError(f"the {component} source {file} changed since the export (its sha256 "
                                      f"is not the recorded {sha256[:12]}...); " + REASSEMBLE_HINT)
            checked.add(file)
        if path not in paths:
            paths.append(path)
    model, _ = assemble(cfg, open_sources([SourceSpec(p) for p in paths]), random)
    return model
