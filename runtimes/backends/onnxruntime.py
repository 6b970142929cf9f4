"""The `onnxruntime` backend: contract methods run from .onnx (or mobile .ort) files through ONNX Runtime.

One model file per contract method (`x_encoder.onnx`, ..., `y_decoder_prefill.onnx`,
`y_decoder_step.onnx`; the manifest's `method_files`, and `ort_files` for the mobile format).
Sessions load lazily on first use, so the Y-Decoder costs no memory until the first decode. Inputs
carry the contract's names; outputs are mapped back by position, because a file names the decoder's
returned cache `kv_cache_out` (runtimes.artifact.file_output_names).
"""

from __future__ import annotations

import numpy as np

from runtimes.artifact import Artifact, ArtifactError

FORMATS = {"onnx": "method_files", "ort": "ort_files"}  # model format -> manifest listing of its files


class OnnxRuntimeBackend:
    name = "onnxruntime"
    threads: int | None = None  # intra-op threads of sessions created from now on (None: ORT's default)

    def __init__(self, artifact: Artifact, model_format: str = "onnx", providers: list[str] | None = None):
        """model_format "onnx" or "ort" (the mobile format a reduced ONNX Runtime build loads);
        providers: ONNX Runtime execution providers, default CPU."""
        if artifact.target != "onnxruntime":
            raise ArtifactError(f"{artifact.dir} is a {artifact.target!r} artifact, not an onnxruntime one")
        if model_format not in FORMATS:
            raise ArtifactError(f"unknown model format {model_format!r}; choose one of: {', '.join(FORMATS)}")
        try:
            import onnxruntime
        except ImportError:
            raise ArtifactError("onnxruntime is not installed: pip install onnxruntime") from None
        self.artifact, self.contract = artifact, artifact.contract
        self.model_format, self.providers = model_format, providers or ["CPUExecutionProvider"]
        self._ort = onnxruntime
        self._sessions: dict[str, object] = {}

    def _session(self, method: str):
        if method not in self._sessions:
            path = self.artifact.method_file(method, FORMATS[self.model_format])
            options = self._ort.SessionOptions()
            options.log_severity_level = 3  # errors only: ORT warns about every fp16 cast it inserts
            if self.threads:
                options.intra_op_num_threads = self.threads
            try:
                session = self._ort.InferenceSession(str(path), options, providers=self.providers)
            except Exception as e:  # ORT raises its own Fail/InvalidGraph/... types for unreadable models
                raise ArtifactError(f"cannot load {path} as an ONNX Runtime model ({type(e).__name__}: "
                                    f"{str(e).strip().splitlines()[0]})") from None
            spec = self.contract[method]
            names = [i.name for i in session.get_inputs()]
            if names != [t.name for t in spec.inputs] or len(session.get_outputs()) != len(spec.outputs):
                raise ArtifactError(f"{path}: inputs {names} and {len(session.get_outputs())} outputs do not "
                                    f"match the contract of {method}")
            self._sessions[method] = session
        return self._sessions[method]

    def run(self, method: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        spec = self.contract[method]
        feeds = {t.name: np.ascontiguousarray(inputs[t.name]) for t in spec.inputs}
        outputs = self._session(method).run(None, feeds)
        return {t.name: o for t, o in zip(spec.outputs, outputs, strict=True)}
