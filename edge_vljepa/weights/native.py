"""Native checkpoints and the strict fit every load goes through.

Native: one .safetensors file holding the `VLJEPA` state dict (or any subset of components) plus
metadata: `format` = "edge-vljepa" and `config` = the ModelConfig as JSON, so a checkpoint names the
model it belongs to and a mismatch is reported field by field (`save_checkpoint`, `load_checkpoint`).
`check_fit` compares key shapes and lists every missing, unexpected and wrongly shaped key at once.
"""

from __future__ import annotations

import fnmatch
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from edge_vljepa.config import ConfigError, ModelConfig

FORMAT = "edge-vljepa"


class CheckpointError(ValueError):
    """A checkpoint cannot be loaded into the model; the message lists every difference."""


# --- strict fit: missing / unexpected / wrongly shaped keys ----------------------------------

def matches(key: str, patterns: Iterable[str]) -> bool:
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

    missing = [k for k in expected if k not in provided and not matches(k, allow_missing)]
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
    state = {k: v for k, v in state.items() if not matches(k, ignore)}
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

