"""The label bank: a list of labels and their Y-Encoder embeddings, for cosine top-k.

VL-JEPA answers open-vocabulary classification, retrieval and discriminative VQA in embedding
space (paper sections 3-4): the predicted embedding is compared with the Y-Encoder embeddings of
the candidate texts, which are computed once (here, or at export time into an artifact) and never
need the Y-Decoder.

numpy only (no torch): a device loads the saved bank and runs `topk`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from edge_vljepa.preprocess import TextTokenizer
from edge_vljepa.streaming.backend import Backend, run_checked


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows of `x` scaled to unit length, float32 (a zero row stays zero)."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


class LabelBank:
    """Labels and their embeddings (K, E) float32, L2-normalised."""

    def __init__(self, labels: list[str], embeddings: np.ndarray):
        labels = [str(label) for label in labels]
        if not labels:
            raise ValueError("a label bank needs at least one label")
        duplicates = sorted(label for label, n in Counter(labels).items() if n > 1)
        if duplicates:
            raise ValueError(f"duplicate labels in the label bank: {duplicates}")
        embeddings = np.asarray(embeddings)
        if embeddings.ndim != 2 or embeddings.shape[0] != len(labels):
            raise ValueError(f"label embeddings must be ({len(labels)}, E), got {embeddings.shape}")
        self.labels = labels
        self.embeddings = l2_normalize(embeddings)  # (K, E)

    @classmethod
    def build(cls, labels: list[str], backend: Backend, tokenizer: TextTokenizer,
              progress: Callable[[list[str]], Iterable[str]] = iter) -> LabelBank:
        """Embed each label with the backend's `y_encoder` (tokenizer: the Y-Encoder's, max_text_len).
        progress: wraps the labels for iteration, e.g. a tqdm progress bar."""
        rows = []
        for label in progress(labels):
            ids, mask = tokenizer.encode(label, what="label")  # (1, Ly) int64 each
            out = run_checked(backend, "y_encoder", {"input_ids": ids, "attention_mask": mask})
            rows.append(out["embedding"][0])  # (E,)
        return cls(labels, np.stack(rows))

    @property
    def dim(self) -> int:
        return self.embeddings.shape[1]

    def topk(self, embedding: np.ndarray, k: int = 3) -> list[tuple[str, float]]:
        """The k labels most cosine-similar to `embedding` (E,), best first, with their scores."""
        embedding = np.asarray(embedding, dtype=np.float32).reshape(-1)
        if embedding.shape[0] != self.dim:
            raise ValueError(f"embedding has dimension {embedding.shape[0]}, the label bank {self.dim}")
        scores = self.embeddings @ l2_normalize(embedding)  # (K,)
        order = np.argsort(-scores, kind="stable")[:k]
        return [(self.labels[i], float(scores[i])) for i in order]

    def save(self, path: str | Path) -> None:
        """One .npz: `labels` (unicode array) and `embeddings` (K, E) float32; loads without pickle."""
        np.savez(path, labels=np.asarray(self.labels, dtype=str), embeddings=self.embeddings)

    @classmethod
    def load(cls, path: str | Path) -> LabelBank:
        with np.load(path, allow_pickle=False) as data:
            return cls(data["labels"].tolist(), data["embeddings"])
