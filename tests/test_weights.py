"""Native checkpoints: round trip, and clear errors for checkpoints that do not fit."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from edge_vljepa.config import get_preset
from edge_vljepa.models import build_model
from edge_vljepa.weights import CheckpointError, load_checkpoint, load_state, save_checkpoint

CFG = get_preset("tiny")


def test_round_trip(tmp_path):
    a, b = build_model(CFG, seed=1), build_model(CFG, seed=2)
    save_checkpoint(a, tmp_path / "m.safetensors", CFG)
    meta = load_checkpoint(b, tmp_path / "m.safetensors", CFG)
    assert meta["format"] == "edge-vljepa"
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k


def test_checkpoint_of_another_preset_lists_config_differences(tmp_path):
    default = get_preset("default")
    save_file({"x": torch.zeros(1)}, str(tmp_path / "d.safetensors"),
              metadata={"format": "edge-vljepa", "config": default.to_json()})
    with pytest.raises(CheckpointError, match="x_encoder.img_size: checkpoint 96, preset 32"):
        load_checkpoint(build_model(CFG), tmp_path / "d.safetensors", CFG)


def test_strict_keys_and_shapes_are_all_reported():
    model = build_model(CFG)
    state = dict(model.state_dict())
    state.pop("predictor.head.weight")
    state["predictor.extra"] = torch.zeros(3)
    state["y_decoder.norm.weight"] = torch.zeros(5)
    with pytest.raises(CheckpointError) as e:
        load_state(model, state)
    msg = str(e.value)
    assert "missing keys (1)" in msg and "predictor.head.weight" in msg
    assert "unexpected keys (1)" in msg and "predictor.extra" in msg
    assert "wrong shapes (1)" in msg and "y_decoder.norm.weight: checkpoint (5,), model (64,)" in msg


def test_ignore_and_allow_missing_are_explicit():
    model = build_model(CFG)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("y_encoder.backbone.")}
    state["optimizer.step"] = torch.zeros(1)
    with pytest.raises(CheckpointError):
        load_state(model, state)
    load_state(model, state, ignore=("optimizer.*",), allow_missing=("y_encoder.backbone.*",))


@pytest.mark.parametrize("content", [b"", b"not a safetensors file at all" * 10])
def test_unreadable_files(tmp_path, content):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_checkpoint(build_model(CFG), path, CFG)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(build_model(CFG), tmp_path / "missing.safetensors", CFG)
