"""The artifact format, owned here: file names, manifest keys, format version, and the reader.

docs/artifact-format.md is the specification (what a native reader on a phone implements, see
runtimes/native); this module is its Python implementation, and export/artifact.py writes it.

Every artifact backend (ExecuTorch, ONNX Runtime, Core ML) opens its directory through `Artifact`,
which refuses a tampered file (sha256 mismatch), a missing file, or a contract that does not match
the one derived from the manifest's own model config (an artifact of another preset, or an older
format); `check_contract` refuses an artifact of another model than the caller expects. Besides
the component files, the artifact gives the runtime what the loop needs: the preprocessing spec,
the tokenizers, the label bank and the decode-policy defaults. Runtimes never import
edge_vljepa.models: the manifest and the files are all they need.

A manifest entry can also be a directory (a Core ML `.mlpackage`): its sha256 is a tree hash over
every file inside (relative path and content), so a changed, added or removed file is detected.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
from pathlib import Path

import numpy as np

from edge_vljepa.config import ConfigError, ModelConfig
from edge_vljepa.contract import Contract, MethodSpec, build_contract
from edge_vljepa.preprocess import PreprocessSpec, TextTokenizer, component_tokenizer
from edge_vljepa.streaming import LabelBank

MANIFEST = "manifest.json"
FORMAT_VERSION = 1  # manifest "format_version"; a reader refuses any other
LABEL_BANK = "label_bank.npz"  # labels (N,) str, embeddings (N, E) f32: the reference Y-Encoder's bank
GOLDEN = "golden.npz"  # "METHOD.in.TENSOR" / "METHOD.out.TENSOR": one recorded call per method


TOOLS = ("edge-vljepa", "torch", "executorch", "torchao", "onnx", "onnxruntime", "coremltools", "numpy")


def tool_versions() -> dict[str, str]:
    """The manifest's "tools": the versions that made an artifact (a native ExecuTorch reader refuses a
    .pte of another executorch version); reports record the same."""
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for name in TOOLS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def component_file(component: str, suffix: str) -> str:
    """File name of a component holding all its methods (ExecuTorch: `x_encoder.pte`)."""
    return f"{component}{suffix}"


def method_file(method: str, suffix: str) -> str:
    """File name of one contract method (ONNX: `y_decoder_step.onnx`; Core ML: `.mlpackage`)."""
    return f"{method}{suffix}"


class ArtifactError(RuntimeError):
    """An artifact directory that cannot be used; the message names the file and the problem."""


def file_sha256(path: Path) -> str:
    """sha256 of a file; of a directory, the tree hash of `tree_sha256`."""
    if path.is_dir():
        return tree_sha256(path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_sha256(directory: Path) -> str:
    """sha256 over "relative/path sha256" lines of every file under `directory`, sorted by path
    (POSIX separators): stable across machines, and any changed, added or removed file changes it."""
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    lines = [f"{p.relative_to(directory).as_posix()} {file_sha256(p)}\n" for p in files]
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def path_size(path: Path) -> int:
    """Bytes of a file, or of every file under a directory."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def file_output_names(spec: MethodSpec) -> list[str]:
    """A method's output names inside a model file (.onnx, .mlpackage): the contract's names, except
    that an output named like an input (the decoder's `kv_cache`) is `NAME_out`, because ONNX and
    Core ML need every tensor name in a graph to be distinct. Backends map them back by position."""
    inputs = {t.name for t in spec.inputs}
    return [f"{t.name}_out" if t.name in inputs else t.name for t in spec.outputs]


class Artifact:
    def __init__(self, directory: str | Path, verify: bool = True):
        self.dir = Path(directory)
        path = self.dir / MANIFEST
        if not path.is_file():
            raise ArtifactError(f"{self.dir} is not an artifact directory: {MANIFEST} not found")
        try:
            self.manifest = json.loads(path.read_text())
            version = self.manifest.get("format_version")
            if version != FORMAT_VERSION:
                raise ArtifactError(f"{path}: artifact format version {version!r}, this runtime reads "
                                    f"version {FORMAT_VERSION}; re-export it with this edge-vljepa")
            self.cfg = ModelConfig.from_dict(self.manifest["model"]["config"])
            p = self.manifest["preprocessing"]
            self.preprocess = PreprocessSpec(**{**p, "mean": tuple(p["mean"]), "std": tuple(p["std"])})
        except (ValueError, AttributeError, KeyError, TypeError, ConfigError) as e:  # JSON, UTF-8, keys
            raise ArtifactError(f"{path} is not a valid manifest ({e})") from None
        self.contract: Contract = build_contract(self.cfg)
        if self.contract.hash() != self.manifest.get("contract_hash"):
            raise ArtifactError(f"{self.dir}: the contract hash in the manifest does not match its model "
                                f"config (preset {self.cfg.name!r}); re-export it with this version")
        if verify:
            self.verify_files()

    @property
    def target(self) -> str:
        return self.manifest["target"]

    def check_contract(self, expected: Contract, what: str) -> None:
        """Refuse this artifact unless it implements `expected` (`what`: who expects it, for the message)."""
        have, want = self.contract.hash(), expected.hash()
        if have != want:
            raise ArtifactError(f"{self.dir} is an artifact of preset {self.cfg.name!r} (contract hash "
                                f"{have[:12]}), but {what} needs contract hash {want[:12]}; use an artifact "
                                "exported for it")

    def verify_files(self) -> None:
        for name, info in self.manifest["files"].items():
            path = self.dir / name
            if not path.exists():
                raise ArtifactError(f"{self.dir}: file {name} listed in the manifest is missing")
            if file_sha256(path) != info["sha256"]:
                raise ArtifactError(f"{self.dir}: {name} does not match its sha256 in the manifest "
                                    "(modified or corrupted); re-export or restore it")

    def component_file(self, component: str) -> Path:
        """The file holding all of a component's methods (ExecuTorch: one .pte per component)."""
        try:
            return self.dir / self.manifest["components"][component]["file"]
        except KeyError:
            raise ArtifactError(f"{self.dir} has no single file for the {component!r} component") from None

    def method_file(self, method: str, kind: str = "method_files") -> Path:
        """The file that holds contract method `method` (manifest: components.C.method_files), or
        another per-method listing of the component such as `ort_files` (ONNX Runtime's mobile format)."""
        component = self.component_of(method)
        try:
            return self.dir / self.manifest["components"][component][kind][method]
        except KeyError:
            raise ArtifactError(f"{self.dir}: the manifest lists no {kind} entry for {method!r}") from None

    def component_of(self, method: str) -> str:
        return self.contract[method].component

    def tokenizer(self, component: str) -> Path:
        try:
            return self.dir / self.manifest["tokenizers"][component]
        except KeyError:
            raise ArtifactError(f"{self.dir} has no tokenizer for {component!r} in its manifest") from None

    def text_tokenizer(self, component: str) -> TextTokenizer:
        """The text component's tokenizer from the artifact's own tokenizer.json, at its contract length."""
        return component_tokenizer(self.cfg, component, self.tokenizer(component))

    def label_bank(self) -> LabelBank:
        """The labels the artifact was exported with and their reference Y-Encoder embeddings."""
        if "label_bank" not in self.manifest:
            raise ArtifactError(f"{self.dir} has no label bank; pass a label file")
        return LabelBank.load(self.dir / self.manifest["label_bank"])

    def golden(self) -> dict[str, dict[str, dict]]:
        """{method: {"in": {tensor: array}, "out": {tensor: array}}} from the golden file."""
        if "golden" not in self.manifest:
            raise ArtifactError(f"{self.dir} has no golden inputs in its manifest")
        out: dict[str, dict[str, dict]] = {}
        with np.load(self.dir / self.manifest["golden"]) as g:
            for key in g.files:
                method, side, tensor = key.split(".", 2)
                out.setdefault(method, {"in": {}, "out": {}})[side][tensor] = g[key]
        return out

    @property
    def decode_defaults(self) -> dict:
        """{"policy": name, "stride": model frames, "params": {...}} as exported; {} if not recorded."""
        return self.manifest.get("decode_policy_defaults", {})
