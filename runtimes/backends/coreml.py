"""The `coreml` backend: contract methods run from .mlpackage files through Core ML (macOS only).

One ML program per contract method (`x_encoder.mlpackage`, ..., `y_decoder_step.mlpackage`; the
manifest's `method_files`); the decoder's KV cache is an explicit input and output, as in the
contract. Models load lazily on first use. Core ML executes only on Apple platforms: elsewhere the
backend refuses to start and names the command that runs an artifact's parity on a Mac. The macOS
path (coremltools `MLModel.predict`) cannot be exercised on the Linux development machines.
"""

from __future__ import annotations

import sys

import numpy as np

from runtimes.artifact import Artifact, ArtifactError, file_output_names

MAC_PARITY_COMMAND = "python -m export.to_coreml --parity-only {artifact}"  # on a Mac, with the export extra
COMPUTE_UNITS = ("ALL", "CPU_AND_NE", "CPU_AND_GPU", "CPU_ONLY")


def mac_only_message(artifact_dir) -> str:
    return (f"Core ML runs only on macOS (this host is {sys.platform}); run the parity of {artifact_dir} "
            f"on a Mac: {MAC_PARITY_COMMAND.format(artifact=artifact_dir)}")


class CoreMLBackend:
    name = "coreml"

    def __init__(self, artifact: Artifact, compute_units: str = "ALL"):
        """compute_units: which processors Core ML may use (ALL includes the Neural Engine)."""
        if artifact.target != "coreml":
            raise ArtifactError(f"{artifact.dir} is a {artifact.target!r} artifact, not a coreml one")
        if sys.platform != "darwin":
            raise ArtifactError(mac_only_message(artifact.dir))
        if compute_units not in COMPUTE_UNITS:
            raise ArtifactError(f"unknown compute units {compute_units!r}; choose one of: "
                                f"{', '.join(COMPUTE_UNITS)}")
        try:
            import coremltools
        except ImportError:
            raise ArtifactError("coremltools is not installed: pip install coremltools") from None
        self.artifact, self.contract = artifact, artifact.contract
        self._ct, self.compute_units = coremltools, compute_units
        self._models: dict[str, object] = {}

    def _model(self, method: str):
        if method not in self._models:
            path = self.artifact.method_file(method)
            try:
                self._models[method] = self._ct.models.MLModel(
                    str(path), compute_units=getattr(self._ct.ComputeUnit, self.compute_units))
            except Exception as e:  # coremltools raises RuntimeError/ValueError for unreadable packages
                raise ArtifactError(f"cannot load {path} as a Core ML model ({e})") from None
        return self._models[method]

    def run(self, method: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Core ML has no int64 tensors: integer inputs go in as int32 (the models declare them so)."""
        spec = self.contract[method]
        feeds = {t.name: np.ascontiguousarray(inputs[t.name], np.int32 if t.dtype == "int64" else np.float32)
                 for t in spec.inputs}
        outputs = self._model(method).predict(feeds)
        return {t.name: np.asarray(outputs[name]).astype(t.dtype).reshape(t.shape)
                for t, name in zip(spec.outputs, file_output_names(spec), strict=True)}
