"""The `pytorch` reference backend: the eager `edge_vljepa.models` model behind the backend protocol.

Every other backend is compared against this one. Inputs and outputs are numpy arrays named as in the
contract and checked against it by `edge_vljepa.streaming.run_checked`, exactly as for the artifact
backends, so the streaming loop cannot tell them apart except by numerics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edge_vljepa.config import ModelConfig
from edge_vljepa.contract import build_contract
from edge_vljepa.models import method_modules
from edge_vljepa.pretrained import load_model, shipped_checkpoint
from edge_vljepa.weights import SourceSpec, assemble, open_sources, reassemble


class PyTorchBackend:
    name = "pytorch"

    def __init__(self, cfg: ModelConfig, checkpoint: str | None = None, model=None,
                 weights: str | None = None):
        """checkpoint None: the preset's shipped weights if it has them (default), else random init.
        model: an already loaded model of `cfg` (assembled from upstream checkpoints), named by `weights`."""
        self.cfg = cfg
        self.contract = build_contract(cfg)
        self.model = model.eval() if model is not None else load_model(cfg, checkpoint)
        self.weights = weights or checkpoint or shipped_checkpoint(cfg.name) or "random weights"
        self._methods = method_modules(self.model)

    def release(self, components) -> None:
        """Free the weights of `components` (an export of other components never runs them: the paper
        preset's predictor and Y-Encoder alone are 4.2 GB); running one of their methods then fails."""
        for component in components:
            setattr(self.model, component, None)
            for spec in self.contract.for_component(component):
                self._methods.pop(spec.name, None)

    def run(self, method: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if method not in self._methods:
            raise RuntimeError(f"{method}: its component was released from this reference backend")
        spec = self.contract[method]
        args = [torch.from_numpy(np.ascontiguousarray(inputs[t.name])) for t in spec.inputs]
        with torch.inference_mode():
            outputs = self._methods[method](*args)
        return {t.name: o.numpy() for t, o in zip(spec.outputs, outputs, strict=True)}


def exported_from(artifact, checkpoint: str | Path | None = None) -> tuple[PyTorchBackend, str]:
    """(reference backend, weights) of the model `artifact` (a runtimes.artifact.Artifact) was exported
    from: its upstream sources read again once they are checked to be the recorded files, or its recorded
    checkpoint; or `checkpoint`, a file of that model, instead. Raises CheckpointError or FileNotFoundError
    (one line) when they are gone."""
    model = artifact.manifest["model"]
    recorded = model.get("checkpoint")
    if model.get("sources"):  # exported from upstream checkpoints: the same sources again, or one file
        if checkpoint is None:
            net, weights = reassemble(model["sources"], artifact.cfg), str(recorded)
        else:
            net, weights = assemble(artifact.cfg, open_sources([SourceSpec(checkpoint)]))[0], str(checkpoint)
        return PyTorchBackend(artifact.cfg, model=net, weights=weights), weights
    if checkpoint is None and recorded not in (None, "random weights"):
        checkpoint = Path(recorded)
        if not checkpoint.is_file():
            raise FileNotFoundError(f"the artifact was exported from checkpoint {recorded}, which is not on "
                                    "this machine; pass it with --checkpoint")
    backend = PyTorchBackend(artifact.cfg, checkpoint=str(checkpoint) if checkpoint else None)
    return backend, str(backend.weights)
