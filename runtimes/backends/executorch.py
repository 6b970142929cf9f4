"""The `executorch` backend: contract methods run from .pte files through ExecuTorch's Python runtime.

One .pte per component; a component's methods are named as in the contract (`y_decoder.pte` holds
`y_decoder_prefill` and `y_decoder_step`). Programs load lazily on first use, so the Y-Decoder costs
no memory until the first decode; whether this runtime has every delegate the manifest records
(XNNPACK here; Core ML, Vulkan, QNN only on their devices) is checked when the artifact is opened.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys

import numpy as np
import torch

from edge_vljepa.cli import without_known_noise
from runtimes.artifact import Artifact, ArtifactError

DELEGATE_BACKENDS = {"xnnpack": "XnnpackBackend", "coreml": "CoreMLBackend", "vulkan": "VulkanBackend",
                     "qnn": "QnnBackend"}  # manifest delegate -> ExecuTorch backend name


class ExecuTorchBackend:
    name = "executorch"

    def __init__(self, artifact: Artifact):
        if artifact.target != "executorch":
            raise ArtifactError(f"{artifact.dir} is a {artifact.target!r} artifact, not an executorch one")
        try:
            from executorch.runtime import Runtime
        except ImportError:
            raise ArtifactError("the executorch runtime is not installed: "
                                "pip install executorch==1.5.1") from None
        self.artifact, self.contract = artifact, artifact.contract
        self._runtime = Runtime.get()
        registry = self._runtime.backend_registry
        for component, info in artifact.manifest["components"].items():
            delegate = info.get("delegate")
            backend = DELEGATE_BACKENDS.get(delegate, delegate)
            if backend and not registry.is_available(backend):
                have = ", ".join(registry.registered_backend_names)
                raise ArtifactError(f"{artifact.dir}: {component} is delegated to {delegate}, which this "
                                    f"ExecuTorch runtime does not have (it has {have}); run it on a device "
                                    f"with {backend}")
        self._programs: dict[str, object] = {}
        self._methods: dict[str, object] = {}

    def _method(self, name: str):
        if name not in self._methods:
            component = self.artifact.component_of(name)
            with _loading(self.artifact.component_file(component)) as path:
                if component not in self._programs:
                    self._programs[component] = self._runtime.load_program(str(path))
                self._methods[name] = self._programs[component].load_method(name)
        return self._methods[name]

    def run(self, method: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        spec = self.contract[method]
        args = [torch.from_numpy(np.ascontiguousarray(inputs[t.name])) for t in spec.inputs]
        outputs = self._method(method).execute(args)
        return {t.name: o.numpy() for t, o in zip(spec.outputs, outputs, strict=True)}


@contextlib.contextmanager
def _loading(path):
    """Load from `path` with the runtime's log collected (it logs through sys.stderr): a failure becomes
    an ArtifactError with the log's reason (e.g. "File size is too small..."); a success passes it on,
    less the runtime's known noise."""
    log = io.StringIO()
    try:
        with contextlib.redirect_stderr(log):
            yield path
    except Exception as e:  # the runtime raises RuntimeError/ValueError for bad programs
        reason = "; ".join(re.sub(r"^\[[^\]]*\]\s*", "", line) for line in log.getvalue().splitlines())
        raise ArtifactError(f"cannot load {path} as an ExecuTorch program ({reason or e})") from None
    sys.stderr.write(without_known_noise(log.getvalue()))
