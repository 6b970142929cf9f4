"""Opening an exported artifact directory: manifest, file integrity, contract hash.

Every artifact backend (ExecuTorch, ONNX Runtime, Core ML) opens its directory through `Artifact`,
which refuses a tampered file (sha256 mismatch), a missing file, or a contract that does not match
the one derived from the manifest's own model config (an artifact of another preset, or an older
format); `check_contract` refuses an artifact of another model than the caller expects. Besides
the component files, the artifact gives the runtime what the loop needs: the preprocessing spec,
the tokenizers, the label bank and the decode-policy defaults. Runtimes never import
edge_vljepa.models: the manifest and the files are all they need.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from edge_vljepa.config import ConfigError, ModelConfig
from edge_vljepa.contract import Contract, build_contract
from edge_vljepa.preprocess import PreprocessSpec, TextTokenizer, component_tokenizer
from edge_vljepa.streaming import LabelBank

MANIFEST = "manifest.json"


class ArtifactError(RuntimeError):
    """An artifact directory that cannot be used; the message names the file and the problem."""


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Artifact:
    def __init__(self, directory: str | Path, verify: bool = True):
        self.dir = Path(directory)
        path = self.dir / MANIFEST
        if not path.is_file():
            raise ArtifactError(f"{self.dir} is not an artifact directory: {MANIFEST} not found")
        try:
            self.manifest = json.loads(path.read_text())
            self.cfg = ModelConfig.from_dict(self.manifest["model"]["config"])
            p = self.manifest["preprocessing"]
            self.preprocess = PreprocessSpec(**{**p, "mean": tuple(p["mean"]), "std": tuple(p["std"])})
        except (json.JSONDecodeError, KeyError, TypeError, ConfigError) as e:
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
            if not path.is_file():
                raise ArtifactError(f"{self.dir}: file {name} listed in the manifest is missing")
            if file_sha256(path) != info["sha256"]:
                raise ArtifactError(f"{self.dir}: {name} does not match its sha256 in the manifest "
                                    "(modified or corrupted); re-export or restore it")

    def component_file(self, component: str) -> Path:
        try:
            return self.dir / self.manifest["components"][component]["file"]
        except KeyError:
            raise ArtifactError(f"{self.dir} has no {component!r} component") from None

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

    @property
    def decode_defaults(self) -> dict:
        """{"policy": name, "stride": model frames, "params": {...}} as exported; {} if not recorded."""
        return self.manifest.get("decode_policy_defaults", {})
