"""Generated reports: every benchmark and experiment writes NAME.md for people and NAME.json for
programs, side by side, with the command that made them, the machine and the tool versions.

Figures live in these generated files; the README links to them instead of copying numbers.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np

from experiments.host import describe

RUNS = Path.home() / "edge-vljepa-runs"  # where reports go unless --out names a folder: never the repository


def command_line(module: str, argv: list[str]) -> str:
    return shlex.join(["python", "-m", module, *argv])


def _plain(value):
    """JSON-ready: numpy scalars and arrays, tuples, NaN/inf (as null) and dataclass-like objects."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_report(out: Path, name: str, markdown: str, figures: dict, command: str) -> tuple[Path, Path]:
    """Write out/NAME.md and out/NAME.json ({"command", "machine", "figures"}); returns both paths."""
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / f"{name}.md", out / f"{name}.json"
    md.write_text(markdown)
    js.write_text(json.dumps({"command": command, "machine": describe(), "figures": _plain(figures)},
                             indent=1, allow_nan=False) + "\n")
    return md, js
