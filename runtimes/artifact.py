"""Opening an exported artifact directory: manifest, file integrity, contract hash.

Every artifact backend (ExecuTorch, ONNX Runtime, Core ML) opens its directory through `Artifact`,
which refuses a tampered file (sha256 mismatch), a missing file, or a contract that does not match
the one derived from the manifest's own model config (an artifact of another preset, or an older
format). Runtimes never import edge_vljepa.models: the manifest and the files are all they need.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from edge_vljepa.config import ConfigError, ModelConfig
from edge_vljepa.contract import Contract, build_contract

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
        return self.dir / self.manifest["tokenizers"][component]
