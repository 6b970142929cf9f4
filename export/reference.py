"""What every exporter starts from: the PyTorch reference backend, the label list, the tokenizers."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from edge_vljepa.config import ModelConfig, resolve_config
from edge_vljepa.data.world import world_labels
from edge_vljepa.preprocess import TEXT_COMPONENTS, tokenizer_file
from edge_vljepa.pretrained import shipped_labels
from edge_vljepa.weights import FORMAT, assemble_from_args, read_metadata
from export.artifact import ExportError
from runtimes.backends.pytorch import PyTorchBackend

STAND_IN_TOKENIZER = "minilm"  # for random weights whose own tokenizer is not on this machine

def reference_backend(cfg: ModelConfig, checkpoint: Path | None) -> tuple[PyTorchBackend, str]:
    """The eager reference (a checkpoint, the shipped weights, or random init) and which it is."""
    backend = PyTorchBackend(cfg, checkpoint=str(checkpoint) if checkpoint else None)
    return backend, str(backend.weights)


def is_native(checkpoints: list[str]) -> bool:
    """One plain PATH to this project's own .safetensors: the single-checkpoint path of old."""
    if len(checkpoints) != 1 or "=" in checkpoints[0] or not checkpoints[0].endswith(".safetensors"):
        return False
    return read_metadata(checkpoints[0]).get("format") == FORMAT if Path(checkpoints[0]).is_file() else True


def model_and_reference(args, check: Callable[[ModelConfig], object] | None = None
                        ) -> tuple[PyTorchBackend, str, dict | None, list[str]]:
    """The reference of --preset/--config and --checkpoint (one native file, or upstream sources that are
    assembled, the config derived from them unless --config is given): (backend, weights, provenance
    of each component or None, notes). check: called with the config before upstream weights are read
    (assemble_from_args)."""
    checkpoints = [str(c) for c in args.checkpoint or []]
    random = list(getattr(args, "random_weights", []) or [])
    if checkpoints and not is_native(checkpoints):
        model, cfg, _, sources, notes = assemble_from_args(checkpoints, random, args.preset, args.config,
                                                           check)
        weights = "assembled from " + ", ".join(checkpoints)
        return PyTorchBackend(cfg, model=model, weights=weights), weights, sources, notes
    if random:
        raise ExportError("--random-weights is for upstream checkpoints; without --checkpoint every "
                          "component of a preset without shipped weights is random")
    cfg = resolve_config(args.preset, args.config)
    backend, weights = reference_backend(cfg, Path(checkpoints[0]) if checkpoints else None)
    return backend, weights, None, []


def default_labels(cfg: ModelConfig) -> list[str]:
    """The label bank: the labels shipped with the preset's weights, else the world's canonical labels."""
    return shipped_labels(cfg.name) or world_labels()


def with_tokenizers(cfg: ModelConfig, files: dict[str, str],
                    random_weights: bool) -> tuple[ModelConfig, list[str]]:
    """`cfg` with each tokenizer it names resolved: `files` maps a name (llama3, gemma3) to its
    tokenizer.json or folder (--tokenizer NAME=PATH). A name that resolves nowhere is an error, unless
    the weights are random: then text means nothing to the model and the MiniLM WordPiece stands in
    (its ids fit every preset's vocabulary), which the returned notes say."""
    notes, parts = [], {}
    for component in TEXT_COMPONENTS:
        part = getattr(cfg, component)
        name = files.get(part.tokenizer, part.tokenizer)
        try:
            tokenizer_file(name)
        except FileNotFoundError as e:
            if not random_weights:
                raise ExportError(f"{e} with --tokenizer {part.tokenizer}=PATH") from None
            notes.append(f"{component}: tokenizer {part.tokenizer!r} is not on this machine; with random "
                         f"weights the {STAND_IN_TOKENIZER!r} tokenizer stands in (pass --tokenizer "
                         f"{part.tokenizer}=PATH for the real one)")
            name = STAND_IN_TOKENIZER
        parts[component] = dataclasses.replace(part, tokenizer=name)
    return dataclasses.replace(cfg, **parts), notes
