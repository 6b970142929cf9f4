"""Dependency rules (DESIGN section 2): what a device runs never imports torch.

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
                     PACKAGE / "contract.py", PACKAGE / "config.py", PACKAGE / "preprocess.py"])


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
               "edge_vljepa.config", "edge_vljepa.preprocess"]
    code = f"import sys; import {', '.join(modules)}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
