"""What every exporter starts from: the PyTorch reference backend, the label list, the queries."""

from __future__ import annotations

from pathlib import Path

from edge_vljepa.config import CAPTION_QUERY, ModelConfig
from edge_vljepa.pretrained import shipped_labels
from edge_vljepa.train import world_labels
from runtimes.pytorch_backend import PyTorchBackend

# The captioning query and two of the world's questions: what the loop and VQA feed the predictor.
CALIBRATION_QUERIES = [CAPTION_QUERY, "what colour is the object?", "which direction does it move?"]


def reference_backend(cfg: ModelConfig, checkpoint: Path | None) -> tuple[PyTorchBackend, str]:
    """The eager reference (a checkpoint, the shipped weights, or random init) and which it is."""
    backend = PyTorchBackend(cfg, checkpoint=str(checkpoint) if checkpoint else None)
    return backend, str(backend.weights)


def default_labels(cfg: ModelConfig) -> list[str]:
    """The label bank: the labels shipped with the preset's weights, else the world's canonical labels."""
    return shipped_labels(cfg.name) or world_labels()
