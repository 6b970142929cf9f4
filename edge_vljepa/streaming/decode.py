"""Greedy decoding of an embedding into text with the Y-Decoder, over the backend protocol.

VL-JEPA only decodes when text is needed (paper section 4.6, selective decoding). The Y-Decoder's
state is its KV cache, passed in and out explicitly (contract: y_decoder_prefill, y_decoder_step),
so this one loop drives every backend. Cache layout: the embedding's `prefix_len` = P prefix
vectors at positions 0..P-1, BOS at P; the n-th generated token (n = 1, 2, ...) sits at P + n.

numpy only (no torch): this is what a device runs.
"""

from __future__ import annotations

import numpy as np

from edge_vljepa.config import YDecoderConfig
from edge_vljepa.preprocess import TextTokenizer
from edge_vljepa.streaming.backend import Backend, run_checked


def greedy_decode(backend: Backend, embedding: np.ndarray, cfg: YDecoderConfig) -> list[int]:
    """Token ids generated from `embedding` (E,) by argmax, without EOS; at most cfg.max_new_tokens."""
    embedding = np.asarray(embedding, dtype=np.float32).reshape(1, -1)  # (1, E)
    out = run_checked(backend, "y_decoder_prefill", {"embedding": embedding})
    logits, kv_cache = out["logits"], out["kv_cache"]  # (1, V), (layers, 2, kv_heads, max_seq_len, hd)
    ids: list[int] = []
    for n in range(1, cfg.max_new_tokens + 1):
        token = int(np.argmax(logits[0]))  # the token at position P + n
        if token == cfg.eos_token_id:
            break
        ids.append(token)
        if n == cfg.max_new_tokens:
            break  # its logits would only predict a token past the limit
        out = run_checked(backend, "y_decoder_step", {
            "token": np.array([[token]], dtype=np.int64),  # (1, 1)
            "position": np.array([cfg.prefix_len + n], dtype=np.int64),  # (1,)
            "kv_cache": kv_cache})
        logits, kv_cache = out["logits"], out["kv_cache"]
    return ids


def decode_text(backend: Backend, embedding: np.ndarray, cfg: YDecoderConfig,
                tokenizer: TextTokenizer) -> str:
    """`greedy_decode` turned into text with the Y-Decoder's tokenizer (special tokens removed)."""
    return tokenizer.decode(greedy_decode(backend, embedding, cfg))
