"""Checkpoints: this project's native format, upstream layouts mapped by declarative key tables, and
models assembled from several upstream checkpoints. One module per step, each importing only the ones
above it:

  native.py    native .safetensors checkpoints (state + config metadata) and the strict key/shape fit
  formats.py   the upstream layouts, one declarative `KeyMap` each, in `FORMATS` (docs/weights.md)
  mapping.py   a checkpoint's names and shapes (safetensors, or torch .pt read weights-only), mapped
               through a KeyMap; `load_pretrained` loads one strictly
  derive.py    model config fields from tensor shapes and a Hugging Face config.json
  assemble.py  --checkpoint [COMPONENT=]PATH sources -> derived config -> loaded model, with provenance
  cli.py       `python -m edge_vljepa.weights inspect|assemble`

Everything public is importable from `edge_vljepa.weights` itself.
"""

from edge_vljepa.weights.assemble import (
    Opened,
    SourceSpec,
    assemble,
    assemble_from_args,
    base_config,
    covered,
    derive_config,
    file_sha256,
    open_sources,
    provenance,
    reassemble,
)
from edge_vljepa.weights.cli import main
from edge_vljepa.weights.formats import (
    BERT,
    EDGE_VLJEPA,
    EMBEDDINGGEMMA,
    FORMATS,
    LLAMA3,
    OPEN_VLJEPA,
    VJEPA2_HF,
    VJEPA2_NATIVE,
    KeyMap,
    LastLayers,
    Rule,
)
from edge_vljepa.weights.mapping import (
    COMPONENT_CLASSES,
    LoadReport,
    Mapping,
    Source,
    fit_mapping,
    left_at_init,
    load_pretrained,
    map_keys,
    open_source,
    recognise,
    target_module,
)
from edge_vljepa.weights.native import (
    FORMAT,
    CheckpointError,
    Fit,
    check_config,
    check_fit,
    config_differences,
    load_checkpoint,
    load_state,
    read_checkpoint,
    read_metadata,
    save_checkpoint,
)

__all__ = [
    "BERT", "COMPONENT_CLASSES", "EDGE_VLJEPA", "EMBEDDINGGEMMA", "FORMAT", "FORMATS", "LLAMA3",
    "OPEN_VLJEPA", "VJEPA2_HF", "VJEPA2_NATIVE", "CheckpointError", "Fit", "KeyMap", "LastLayers",
    "LoadReport", "Mapping", "Opened", "Rule", "Source", "SourceSpec", "assemble", "assemble_from_args",
    "base_config", "check_config", "check_fit", "config_differences", "covered", "derive_config",
    "file_sha256", "fit_mapping", "left_at_init", "load_checkpoint", "load_pretrained", "load_state",
    "main", "map_keys", "open_source", "open_sources", "provenance", "read_checkpoint", "read_metadata",
    "reassemble", "recognise", "save_checkpoint", "target_module",
]
