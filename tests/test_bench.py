"""runtimes.bench: contract-shaped inputs and clear refusals (timings themselves are never asserted)."""

from __future__ import annotations

import numpy as np
import torch

from edge_vljepa.config import get_preset
from edge_vljepa.contract import build_contract
from edge_vljepa.models import build_model, method_modules
from runtimes import bench


def test_example_inputs_follow_the_contract_and_run_every_method():
    cfg = get_preset("tiny")
    modules = method_modules(build_model(cfg).eval())
    for spec in build_contract(cfg):
        args = bench.example_inputs(spec, torch.float16, "cpu")
        for t, a in zip(spec.inputs, args, strict=True):
            assert tuple(a.shape) == t.shape
            assert a.dtype == (torch.int64 if t.dtype == "int64" else torch.float16)
            if "mask" in t.name:
                assert bool((a == 1).all())
        with torch.inference_mode():
            out = modules[spec.name](*[a.float() if a.is_floating_point() else a for a in args])
        first = out[0] if isinstance(out, tuple) else out
        assert np.isfinite(first.numpy()).all()


def test_gpu_command_refuses_a_machine_without_cuda(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bench.main(["gpu", "--preset", "tiny"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
