"""The backend registry: an artifact directory in, the backend for its manifest's target out.

    backend = open_backend(Artifact("artifacts/default-int8"))   # sha256 + contract hash checked
    backend.run("x_encoder", {"video": video})                   # validated against the contract

Each target names the module and class that run it; the module is imported only when an artifact
of that target is opened, so a machine needs only the runtime it uses (ExecuTorch on a phone,
ONNX Runtime on a Jetson, Core ML on a Mac). A target whose module is absent from this build, or
whose runtime library is not installed, is a one-line `ArtifactError` that says what to install.
Every backend comes back wrapped in `CheckedBackend`, so all of its inputs and outputs are
validated against the contract in one place (`edge_vljepa.streaming.run_checked`), naming the
offending tensor. Backends load each component on its first use: the Y-Decoder costs no memory
until the first decode.
"""

from __future__ import annotations

import importlib

from edge_vljepa.cli import quiet_known_library_noise
from edge_vljepa.streaming import CheckedBackend
from runtimes.artifact import Artifact, ArtifactError

quiet_known_library_noise()  # before any runtime imports torchao

# manifest target -> (module, class, how to install its runtime)
TARGETS = {
    "executorch": ("runtimes.backends.executorch", "ExecuTorchBackend",
                   "pip install executorch==1.5.1 torch==2.13.0"),
    "onnxruntime": ("runtimes.backends.onnxruntime", "OnnxRuntimeBackend", "pip install onnxruntime"),
    "coreml": ("runtimes.backends.coreml", "CoreMLBackend", "pip install coremltools (runs on macOS only)"),
}


def backend_class(target: str) -> type:
    """The backend class of a manifest target, imported now."""
    if target not in TARGETS:
        raise ArtifactError(f"unknown artifact target {target!r}; this runtime knows {', '.join(TARGETS)}")
    module_name, class_name, install = TARGETS[target]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name == module_name:
            raise ArtifactError(f"this build has no {target} backend ({module_name} is missing); "
                                "update edge-vljepa or use an artifact of another target") from None
        raise ArtifactError(f"the {target} runtime is not installed (no module {e.name!r}): "
                            f"{install}") from None
    except ImportError as e:
        raise ArtifactError(f"the {target} runtime cannot be loaded ({e}): {install}") from None
    return getattr(module, class_name)


def open_backend(artifact: Artifact) -> CheckedBackend:
    """The backend that runs `artifact`, every call validated against its contract."""
    return CheckedBackend(backend_class(artifact.target)(artifact))


def set_threads(n: int) -> None:
    """One thread count for every runtime in this process: PyTorch, ExecuTorch's threadpool and the
    ONNX Runtime sessions opened afterwards (what side-by-side timings need to be comparable)."""
    import torch  # the reference's runtime; ExecuTorch's bindings need it too

    from runtimes.backends.onnxruntime import OnnxRuntimeBackend
    torch.set_num_threads(n)
    OnnxRuntimeBackend.threads = n
    try:
        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
        _unsafe_reset_threadpool(n)
    except ImportError:
        pass
