"""Writing self-describing artifact directories (docs/artifact-format.md), shared by every exporter.

An artifact directory holds one file per component (`x_encoder.pte`, `y_decoder.onnx`, ...), the
tokenizers, a label bank, golden inputs/outputs for an on-device self-test, and `manifest.json`:
format version, model preset and config, the contract and its hash, per-file sha256 and size,
quantization and delegate per component, tool versions, preprocessing spec, decode-policy
defaults, the parity tolerances and results.

Exports are built in a temporary sibling directory and renamed into place at the end, so a
failure half-way never leaves a directory that looks complete. Export writes only under --out and
beside it: `.NAME.lock` (an exclusive lock held for the export's whole life, so a second export to
the same place fails at once instead of deleting the first one's result), `.NAME.partial-*` (the
artifact being built), `.NAME.data-*` (calibration and parity videos) and, with --force,
`.NAME.old-*` (the replaced artifact, deleted once the new one is in place). The next export to the
same place removes what a killed one (SIGKILL, power loss) left of these and names it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from edge_vljepa.config import ModelConfig
from edge_vljepa.contract import build_contract
from edge_vljepa.parity import TASK_TOLERANCES, TOLERANCES, label_progress
from edge_vljepa.preprocess import TEXT_COMPONENTS, PreprocessSpec, component_tokenizer, tokenizer_file
from edge_vljepa.streaming import (
    DEFAULT_POLICY,
    DEFAULT_STRIDE,
    LabelBank,
    policy_defaults,
    run_checked,
    skip_defaults,
)
from runtimes.artifact import (
    FORMAT_VERSION,
    GOLDEN,
    LABEL_BANK,
    MANIFEST,
    file_sha256,
    path_size,
    tool_versions,
)


class ExportError(RuntimeError):
    """An export that cannot be done as asked; the message says why and what to do instead."""


def check_out_dir(out: Path, force: bool) -> None:
    """Refuse an --out that exists and is not empty, unless --force."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ExportError(f"--out {out} exists and is not empty; choose another directory or pass --force "
                          "to replace it")


LEFTOVERS = ("partial", "data", "old")  # .NAME.KIND-* beside --out: what an export creates there


class OutLock:
    """An exclusive, non-blocking lock on an export's --out (fcntl.flock on `.NAME.lock` beside it),
    held from before the first expensive step to the final rename. Taking it removes the leftovers
    of a killed export to the same place (`cleaned` lists them): with the lock held, no live export
    owns them. A context manager; `release` deletes the lock file."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.path = self.out.parent / f".{self.out.name}.lock"
        self.fd: int | None = None
        self.cleaned: list[Path] = []

    def acquire(self) -> OutLock:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_ino != os.stat(self.path).st_ino:  # released and deleted meanwhile
                raise BlockingIOError(errno.EAGAIN, "lock file replaced")
        except OSError as e:
            os.close(fd)
            if isinstance(e, BlockingIOError) or e.errno in (errno.EAGAIN, errno.EACCES, errno.ENOENT):
                raise ExportError(f"another export to {self.out} is running (it holds {self.path}); wait "
                                  "for it to finish or choose another --out") from None
            raise
        self.fd = fd
        parent, name = self.out.parent, self.out.name
        self.cleaned = [p for kind in LEFTOVERS for p in sorted(parent.glob(f".{name}.{kind}-*"))]
        for leftover in self.cleaned:
            shutil.rmtree(leftover, ignore_errors=True)
        return self

    def release(self) -> None:
        if self.fd is not None:
            self.path.unlink(missing_ok=True)  # while still held: a waiting export sees a new file
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> OutLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def user_mode(directory: Path) -> None:
    """Give a directory made by tempfile (mode 0700) the permissions of the user's umask."""
    umask = os.umask(0)
    os.umask(umask)
    directory.chmod(0o777 & ~umask)


class ArtifactBuilder:
    """Collects files in a temporary directory next to `out`; `commit()` writes the manifest and
    renames the directory into place. Used as a context manager: an exception discards everything.
    `lock`: the OutLock the caller took on `out` before its first expensive step; without one, the
    builder takes it. `scratch`: a folder beside `out` for temporary data, removed at exit."""

    def __init__(self, out: Path, force: bool, target: str, cfg: ModelConfig, checkpoint: str | None,
                 lock: OutLock | None = None):
        check_out_dir(out, force)
        self.own_lock = lock is None
        self.lock = lock if lock is not None else OutLock(out).acquire()
        self.out, self.cfg, self.force = out, cfg, force
        self.dir = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
        user_mode(self.dir)
        self.scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.data-", dir=out.parent))
        contract = build_contract(cfg)
        self.manifest: dict = {
            "format_version": FORMAT_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "target": target,
            "model": {"preset": cfg.name, "config": cfg.to_dict(), "checkpoint": checkpoint,
                      "checkpoint_sha256": file_sha256(Path(checkpoint))
                      if checkpoint and Path(checkpoint).is_file() else None},
            "contract": contract.to_dict(),
            "contract_hash": contract.hash(),
            "preprocessing": PreprocessSpec.from_config(cfg).to_dict(),
            "tokenizers": {},
            "components": {},
            "files": {},
            "tools": tool_versions(),
        }

    def __enter__(self) -> ArtifactBuilder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)
        if exc_type is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
        if self.own_lock:
            self.lock.release()

    def path(self, name: str) -> Path:
        return self.dir / name

    def add_component(self, component: str, method_files: dict[str, str], **info) -> None:
        """Record a component whose files are already written under `self.dir`: `method_files` says
        which file holds each contract method (one .pte for all of them, or one .onnx each); `file`
        is recorded too when a single file holds them all."""
        entry: dict = {"methods": list(method_files), "method_files": method_files}
        if len(set(method_files.values())) == 1:
            entry["file"] = next(iter(method_files.values()))
        self.manifest["components"][component] = entry | info

    def add_tokenizers(self) -> None:
        """Copy each component's tokenizer.json into the artifact (components sharing one share the file)."""
        for component in TEXT_COMPONENTS:
            name = getattr(self.cfg, component).tokenizer
            path = tokenizer_file(name)
            stem = path.parent.name if path.stem == "tokenizer" else path.stem  # e.g. Llama-3.2-1B
            file = f"tokenizer_{name if name in ('minilm', 'world') else stem}.json"
            shutil.copyfile(path, self.path(file))
            self.manifest["tokenizers"][component] = file

    def add_arrays(self, file: str, arrays: dict[str, np.ndarray]) -> None:
        np.savez(self.path(file), **arrays)

    def add_shared(self, reference, labels: list[str], recorded: dict[str, list[dict]],
                   quant: dict[str, str]) -> None:
        """What every target's artifact carries besides its component files: tokenizers, the label
        bank (reference Y-Encoder embeddings of `labels`), golden inputs/outputs (the first recorded
        call of each method, for an on-device self-test), decode-policy defaults, tolerances.
        `quant` names the components the artifact holds; the label bank ranks predictor outputs."""
        self.add_tokenizers()
        if "predictor" in quant:
            bank = LabelBank.build(labels, reference, component_tokenizer(self.cfg, "y_encoder"),
                                   progress=label_progress)
            self.add_arrays(LABEL_BANK, {"labels": np.array(labels), "embeddings": bank.embeddings})
            self.manifest["label_bank"] = LABEL_BANK
        golden = {}
        contract = build_contract(self.cfg)
        for method, calls in recorded.items():
            if contract[method].component not in quant:
                continue
            golden |= {f"{method}.in.{k}": v for k, v in calls[0].items()}
            golden |= {f"{method}.out.{k}": v for k, v in run_checked(reference, method, calls[0]).items()}
        self.add_arrays(GOLDEN, golden)
        self.manifest |= {
            "golden": GOLDEN,
            "decode_policy_defaults": {"policy": DEFAULT_POLICY, "stride": DEFAULT_STRIDE,
                                       "params": policy_defaults(DEFAULT_POLICY), "skip": skip_defaults()},
            "tolerances": {"tensor": {m: TOLERANCES[m] for m in sorted(set(quant.values()))},
                           "task": TASK_TOLERANCES},
        }

    def write_manifest(self) -> None:
        """Hash every file (and directory, e.g. an .mlpackage) and write manifest.json (the directory is
        then loadable by a runtime)."""
        for f in sorted(self.dir.iterdir()):
            if f.name != MANIFEST:
                self.manifest["files"][f.name] = {"sha256": file_sha256(f), "size": path_size(f)}
        (self.dir / MANIFEST).write_text(json.dumps(self.manifest, indent=1) + "\n")

    def commit(self) -> Path:
        """Write the final manifest and move the directory to `out`. What is at `out` now is checked
        again (something may have appeared since the start): an empty directory is replaced; another
        one only with --force, moved aside first and deleted once the new artifact is in place."""
        self.write_manifest()
        old = None
        if self.out.exists() and self.force:
            old = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.old-", dir=self.out.parent))
            self.out.rename(old / self.out.name)
        try:
            self.dir.rename(self.out)  # replaces an empty directory, never a non-empty one
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                raise
            raise ExportError(f"--out {self.out} appeared during the export and is not empty; it was left "
                              "as it is (pass --force to replace it)") from None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.out

