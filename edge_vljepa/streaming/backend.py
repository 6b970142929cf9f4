"""The backend protocol: how the streaming loop calls a model, whatever runs it.

Every runtime (the PyTorch reference, ExecuTorch .pte, ONNX Runtime, Core ML) is one object with a
`contract` and a `run(method, inputs) -> outputs` over numpy arrays named as in
`edge_vljepa.contract` (docs/design.md, the contract). `run_checked` is the one place where inputs and
outputs are validated against the contract: the loop only ever calls it, and `CheckedBackend` (what the
runtime registry hands out) routes every call through it, so a backend that is fed or returns a wrong shape
or dtype fails at the call that produced it, naming the tensor.

No torch import: this is what a device runs.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from edge_vljepa.contract import Contract


class Backend(Protocol):
    """A model behind the component contract: stateless methods, batch 1, static shapes."""

    contract: Contract

    def run(self, method: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run contract method `method` on its named inputs; return its named outputs."""
        ...


def run_checked(backend: Backend, method: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`backend.run` with the inputs and outputs validated against the backend's contract.

    Raises `ContractError` naming the method and the offending tensor.
    """
    spec = backend.contract[method]
    spec.check_inputs(inputs)
    outputs = backend.run(method, inputs)
    spec.check_outputs(outputs)
    return outputs


class CheckedBackend:
    """A backend whose every `run` goes through `run_checked`, whoever calls it."""

    def __init__(self, backend: Backend):
        self.backend, self.contract = backend, backend.contract
        self.name: str = getattr(backend, "name", type(backend).__name__)

    def run(self, method: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return run_checked(self.backend, method, inputs)
