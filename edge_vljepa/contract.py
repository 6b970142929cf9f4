"""The component I/O contract: every exported method, its tensor names, static shapes and dtypes.

Declared once here and derived from a `ModelConfig` (docs/design.md, the contract). Export takes its example
inputs and tensor names from it, runtimes validate inputs and outputs against it and name the
offending tensor, tests parametrize over it, and artifact manifests store it with `contract_hash`.

Methods (batch 1, static shapes):
  x_encoder          video (1, C, T, H, W) f32                      -> visual_tokens (1, N, Dx)
  predictor          visual_tokens, query_ids (1, Lq) i64, query_mask -> embedding (1, E), L2-normalised
  y_encoder          input_ids (1, Ly) i64, attention_mask (1, Ly)  -> embedding (1, E), L2-normalised
  y_decoder_prefill  embedding (1, E)                               -> logits (1, V), kv_cache
  y_decoder_step     token (1, 1) i64, position (1,) i64, kv_cache  -> logits (1, V), kv_cache
kv_cache is (layers, 2, kv_heads, max_seq_len, head_dim): the decoder's whole state, passed in
and out explicitly so every backend (ExecuTorch, ONNX, Core ML) runs the same stateless methods.

No torch import: the streaming loop on a device uses this module.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np

from edge_vljepa.config import ModelConfig

CONTRACT_VERSION = 1


class ContractError(ValueError):
    """A tensor does not match the contract; the message names the method and the tensor."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name: "float32" | "int64"

    def check(self, method: str, value) -> None:
        """Raise ContractError unless `value` (numpy-like) has this spec's shape and dtype."""
        shape = tuple(getattr(value, "shape", ()))
        dtype = str(getattr(value, "dtype", type(value).__name__)).replace("torch.", "")
        if shape != self.shape:
            raise ContractError(f"{method}: tensor {self.name!r} has shape {shape}, "
                                f"the contract expects {self.shape}")
        if dtype != self.dtype:
            raise ContractError(f"{method}: tensor {self.name!r} has dtype {dtype}, "
                                f"the contract expects {self.dtype}")

    def example(self, rng: np.random.Generator | None = None) -> np.ndarray:
        """A valid array for this spec (zeros, or random values from `rng`)."""
        if rng is None:
            return np.zeros(self.shape, dtype=self.dtype)
        if self.dtype == "int64":
            return rng.integers(0, 2, size=self.shape, dtype=np.int64)
        return rng.standard_normal(self.shape).astype(self.dtype)


@dataclass(frozen=True)
class MethodSpec:
    name: str
    component: str  # x_encoder | predictor | y_encoder | y_decoder
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def check_inputs(self, arrays: dict) -> None:
        _check_named(self.name, self.inputs, arrays, "input")

    def check_outputs(self, arrays: dict) -> None:
        _check_named(self.name, self.outputs, arrays, "output")


def _check_named(method: str, specs: tuple[TensorSpec, ...], arrays: dict, kind: str) -> None:
    expected = [s.name for s in specs]
    missing = [n for n in expected if n not in arrays]
    extra = [n for n in arrays if n not in expected]
    if missing or extra:
        raise ContractError(f"{method}: {kind} tensors {sorted(arrays)} do not match the contract "
                            f"{expected} (missing {missing}, unexpected {extra})")
    for spec in specs:
        spec.check(method, arrays[spec.name])


@dataclass(frozen=True)
class Contract:
    methods: dict[str, MethodSpec]

    def __getitem__(self, name: str) -> MethodSpec:
        if name not in self.methods:
            raise ContractError(f"unknown method {name!r}; the contract has {list(self.methods)}")
        return self.methods[name]

    def __iter__(self):
        return iter(self.methods.values())

    def for_component(self, component: str) -> list[MethodSpec]:
        return [m for m in self if m.component == component]

    def to_dict(self) -> dict:
        return {"version": CONTRACT_VERSION,
                "methods": {name: asdict(m) for name, m in self.methods.items()}}

    def hash(self) -> str:
        """sha256 of the canonical JSON form; stable across runs and machines."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def _t(name: str, *shape: int, dtype: str = "float32") -> TensorSpec:
    return TensorSpec(name, tuple(int(s) for s in shape), dtype)


def build_contract(cfg: ModelConfig) -> Contract:
    x, p, y, d = cfg.x_encoder, cfg.predictor, cfg.y_encoder, cfg.y_decoder
    visual = _t("visual_tokens", 1, x.num_tokens, x.embed_dim)
    embedding = _t("embedding", 1, cfg.embed_dim)
    kv_cache = _t("kv_cache", d.num_hidden_layers, 2, d.num_key_value_heads, d.max_seq_len, d.head_dim)
    logits = _t("logits", 1, d.vocab_size)
    methods = [
        MethodSpec("x_encoder", "x_encoder",
                   (_t("video", 1, x.in_chans, x.num_frames, x.img_size, x.img_size),), (visual,)),
        MethodSpec("predictor", "predictor",
                   (visual, _t("query_ids", 1, p.max_query_len, dtype="int64"),
                    _t("query_mask", 1, p.max_query_len, dtype="int64")), (embedding,)),
        MethodSpec("y_encoder", "y_encoder",
                   (_t("input_ids", 1, y.max_text_len, dtype="int64"),
                    _t("attention_mask", 1, y.max_text_len, dtype="int64")), (embedding,)),
        MethodSpec("y_decoder_prefill", "y_decoder", (embedding,), (logits, kv_cache)),
        MethodSpec("y_decoder_step", "y_decoder",
                   (_t("token", 1, 1, dtype="int64"), _t("position", 1, dtype="int64"), kv_cache),
                   (logits, kv_cache)),
    ]
    return Contract({m.name: m for m in methods})
