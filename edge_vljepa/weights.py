"""Checkpoints: this project's native safetensors format, loaded with strict key and shape checking.

A native checkpoint is one .safetensors file holding the whole `VLJEPA` state dict (or any subset of
components) plus metadata: `format` = "edge-vljepa" and `config` = the ModelConfig as JSON, so a
checkpoint names the preset it belongs to and a mismatch is reported field by field.

Loading is strict: every missing, unexpected or wrongly shaped key is listed in one error; keys a
caller knowingly drops go in an explicit `ignore` list. Only safetensors is read here (no pickles).
Mapping of upstream layouts (V-JEPA 2, Llama-3.2, EmbeddingGemma) is the fidelity issue's work and
belongs in this module too.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from edge_vljepa.config import ConfigError, ModelConfig

FORMAT = "edge-vljepa"


class CheckpointError(ValueError):
    """A checkpoint cannot be loaded into the model; the message lists every difference."""


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
    def matches(key, patterns):
        return any(fnmatch.fnmatchcase(key, p) for p in patterns)

    state = {k: v for k, v in state.items() if not matches(k, ignore)}
    expected = model.state_dict()
    # Conv3d tubelet weights are accepted for the Linear patch embedding (reshaped by its load hook).
    shape_ok = {k: tuple(v.flatten(1).shape) if v.dim() == 5 else tuple(v.shape) for k, v in state.items()}
    missing = [k for k in expected if k not in state and not matches(k, allow_missing)]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k}: checkpoint {shape_ok[k]}, model {tuple(expected[k].shape)}"
             for k in state if k in expected and shape_ok[k] != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        def section(title, items):
            if not items:
                return ""
            shown = "\n    ".join(items[:20])
            more = f"\n    ... and {len(items) - 20} more" if len(items) > 20 else ""
            return f"\n  {title} ({len(items)}):\n    {shown}{more}"
        raise CheckpointError(f"{source} does not fit the model:" + section("missing keys", missing)
                              + section("unexpected keys", unexpected) + section("wrong shapes", wrong))
    model.load_state_dict(state, strict=False)


def load_checkpoint(model: nn.Module, path: str | Path, cfg: ModelConfig) -> dict[str, str]:
    """Load a native checkpoint into `model` (built from `cfg`); returns the checkpoint's metadata."""
    state, metadata = read_checkpoint(path)
    if metadata.get("format", FORMAT) != FORMAT:
        raise CheckpointError(f"{path} is a {metadata['format']!r} checkpoint, not {FORMAT!r}")
    check_config(cfg, metadata, path)
    load_state(model, state, source=str(path))
    return metadata
