"""Dependency rules (docs/design.md, layers): imports point one way, without cycles, and what a
device runs never imports torch.

Scans the source with `ast` (imports inside functions included), and checks that importing the
streaming loop and its inputs leaves torch unloaded (no indirect import through another module).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "edge_vljepa"
TORCH_FREE = sorted([*(PACKAGE / "streaming").glob("*.py"), *(PACKAGE / "data").glob("*.py"),
                     PACKAGE / "contract.py", PACKAGE / "config.py", PACKAGE / "preprocess.py",
                     PACKAGE / "parity.py", PACKAGE / "recording.py"])


def imported_modules(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", TORCH_FREE, ids=lambda p: str(p.relative_to(ROOT)))
def test_device_code_does_not_import_torch(path):
    bad = [name for name in imported_modules(path) if name == "torch" or name.startswith("torch.")]
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}; device code must stay torch-free"


def test_the_scan_sees_imports(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import numpy as np\nfrom torch import nn\n\n\n"
                      "def f():\n    import torch.nn.functional\n")
    assert imported_modules(sample) == ["numpy", "torch", "torch.nn.functional"]
    assert PACKAGE / "streaming" / "loop.py" in TORCH_FREE and PACKAGE / "data" / "video.py" in TORCH_FREE


def test_importing_device_code_leaves_torch_unloaded():
    modules = ["edge_vljepa.streaming", "edge_vljepa.data.video", "edge_vljepa.contract",
               "edge_vljepa.config", "edge_vljepa.preprocess", "edge_vljepa.parity", "edge_vljepa.recording"]
    code = f"import sys; import {', '.join(modules)}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- layers: edge_vljepa <- runtimes <- export <- experiments, scripts ------------------------------

LAYERS = {"edge_vljepa": 0, "runtimes": 1, "export": 2, "experiments": 3, "scripts": 3}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str, root: Path) -> bool:
    path = root.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def project_imports(path: Path, root: Path = ROOT) -> set[str]:
    """The project modules `path` imports (top-level and function-local), resolved to module names."""
    here = module_name(path, root)
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x
                package = here.split(".")[: len(here.split(".")) - node.level + (path.name == "__init__.py")]
                base = ".".join([*package, base] if base else package)
            names = [f"{base}.{alias.name}" if is_module(f"{base}.{alias.name}", root) else base
                     for alias in node.names]
        else:
            continue
        out |= {n for n in names if n.split(".")[0] in LAYERS}
    return out


def source_files(root: Path = ROOT) -> list[Path]:
    return sorted(p for top in LAYERS if (root / top).is_dir() for p in (root / top).rglob("*.py"))


def layer_violations(root: Path = ROOT) -> list[str]:
    """Every import that points up the layers: '<file> (layer) imports <module> (layer)'."""
    bad = []
    for path in source_files(root):
        mine = path.relative_to(root).parts[0]
        for name in sorted(project_imports(path, root)):
            theirs = name.split(".")[0]
            if LAYERS[theirs] > LAYERS[mine] or (theirs == "scripts" and mine != "scripts"):
                bad.append(f"{path.relative_to(root)} ({mine}) imports {name} ({theirs})")
    return bad


def import_cycles(root: Path = ROOT) -> list[list[str]]:
    """Cycles in the module import graph (a module importing a package counts as importing it)."""
    files = {module_name(p, root): p for p in source_files(root)}
    graph = {m: ({n if n in files else n.rsplit(".", 1)[0] for n in project_imports(p, root)} & set(files))
             - {m} for m, p in files.items()}
    graph = {m: {n for n in deps if not m.startswith(n + ".")} for m, deps in graph.items()}  # own package
    cycles, state = [], {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = "open"
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n, [*stack, n])
        state[m] = "done"

    for m in sorted(files):
        if m not in state:
            visit(m, [m])
    return cycles


def test_imports_point_one_way():
    assert layer_violations() == []


def test_no_import_cycles():
    assert import_cycles() == []


def test_the_layer_check_fails_on_a_wrong_arrow_and_a_cycle(tmp_path):
    for package, text in {"edge_vljepa": "from runtimes.artifact import Artifact\n",
                          "runtimes": "def f():\n    from export import pipeline\n",
                          "export": "from experiments.bench import main\n",
                          "experiments": "from export import a\n"}.items():
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
        (tmp_path / package / "a.py").write_text(text)
    assert layer_violations(tmp_path) == [
        "edge_vljepa/a.py (edge_vljepa) imports runtimes.artifact (runtimes)",
        "export/a.py (export) imports experiments.bench (experiments)",
        "runtimes/a.py (runtimes) imports export (export)"]
    (tmp_path / "experiments" / "b.py").write_text("from experiments import c\n")
    (tmp_path / "experiments" / "c.py").write_text("from experiments.b import x\n")
    assert import_cycles(tmp_path) == [["experiments.b", "experiments.c", "experiments.b"]]
