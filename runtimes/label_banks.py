"""Label banks cached on disk, so a stream does not embed the same labels again on every run.

Embedding 656 labels with the reference's Y-Encoder took 23 s (200 s on a loaded machine) before a
stream printed anything, and 20,000 custom labels nearly 10 minutes, on every run. A bank depends
only on the Y-Encoder's weights, its tokenizer and the labels, so it is kept under
`$XDG_CACHE_HOME/edge-vljepa/label-banks/` (default `~/.cache/...`), one .npz per key: a sha256 of
the weights' identity (the reference's Y-Encoder tensors, or the sha256 an artifact's manifest
records for its Y-Encoder file), the tokenizer and the labels. Embedding shows a progress bar once
it takes more than a second. A cache that cannot be written is skipped, never an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edge_vljepa.preprocess import TextTokenizer
from edge_vljepa.streaming import LabelBank
from runtimes.artifact import Artifact


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edge-vljepa" / "label-banks"


def progress(labels: list[str]):
    """A progress bar over labels being embedded, shown only when it takes more than a second."""
    return tqdm(labels, desc="embedding labels", unit="label", delay=1.0, leave=False)


def reference_weights_id(backend) -> str:
    """sha256 of the PyTorch reference's Y-Encoder tensors (names, shapes, dtypes and values)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(backend.model.y_encoder.state_dict().items()):
        digest.update(f"{name} {tuple(tensor.shape)} {tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def artifact_weights_id(artifact: Artifact) -> str:
    """The sha256s the manifest records for the artifact's Y-Encoder file(s)."""
    files = sorted(set(artifact.manifest["components"]["y_encoder"]["method_files"].values()))
    return ",".join(artifact.manifest["files"][f]["sha256"] for f in files)


def cached_bank(labels: list[str], backend, tokenizer: TextTokenizer, weights_id: str) -> LabelBank:
    """The bank of `labels` embedded by `backend`'s Y-Encoder: from the cache when this Y-Encoder
    (`weights_id`) and tokenizer embedded these labels before, else embedded now and cached."""
    key = hashlib.sha256(json.dumps({"weights": weights_id, "tokenizer": tokenizer.tokenizer.to_str(),
                                     "max_len": tokenizer.max_len, "labels": labels}).encode()).hexdigest()
    path = cache_dir() / f"{key[:32]}.npz"
    if path.is_file():
        try:
            bank = LabelBank.load(path)
            if bank.labels == labels:
                return bank
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache entry is rebuilt below
    bank = LabelBank.build(labels, backend, tokenizer, progress=progress)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as f:
            np.savez(f, labels=np.asarray(bank.labels, dtype=str), embeddings=bank.embeddings)
        os.replace(f.name, path)  # atomic: a concurrent reader never sees half a file
    except OSError:
        pass
    return bank
