"""Slow checks, selected with `python -m pytest -m slow` (CI skips them): the paper-size weights."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_paper_size_upstream_weights_load_and_run(tmp_path):
    """Every paper-preset component written in its upstream layout at full size (random weights),
    loaded strictly and run once on the CPU (scripts/paper_weights_smoke.py; ~8 GiB RAM, ~6 GB disk)."""
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "paper_weights_smoke.py"),
                          "--workdir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "outputs finite: True" in out.stdout
    assert "4 components" in out.stdout
