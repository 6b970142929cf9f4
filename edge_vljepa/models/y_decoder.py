"""Y-Decoder: embedding -> text, invoked only when the decode policy asks for it.

VL-JEPA (arXiv 2512.10942) uses "a lightweight text decoder"; here a small causal Llama-style
transformer conditioned on the embedding as a prefix: the embedding is projected to `prefix_len`
vectors at positions 0..P-1, BOS sits at position P, generated tokens follow.

Methods (see edge_vljepa.contract):
  forward(embedding, tokens)              teacher-forced logits for training and for the tests;
  prefill(embedding) -> logits, kv_cache  runs prefix + BOS, logits predict position P + 1;
  step(token, position, kv_cache)         one greedy step at `position` (a tensor, so one exported
                                          program serves every step) -> logits, kv_cache.
The KV cache is a fixed-size (layers, 2, kv_heads, max_seq_len, head_dim) tensor passed in and out
explicitly: stateless methods export the same way to ExecuTorch, ONNX and Core ML. The new keys and
values are written with a one-hot `where` at `position` and future positions are masked by a bias,
so every shape is static. Greedy decoding itself (argmax, EOS, max_new_tokens) is in
edge_vljepa.streaming.decode, shared by every backend.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edge_vljepa.config import YDecoderConfig
from edge_vljepa.models.layers import (
    MASK_VALUE,
    RMSNorm,
    causal_bias,
    llama_layers,
    rope_inv_freq,
    rope_tables,
)


class YDecoder(nn.Module):
    def __init__(self, cfg: YDecoderConfig, embed_dim: int):
        super().__init__()
        self.cfg = cfg
        self.prefix_proj = nn.Linear(embed_dim, cfg.prefix_len * cfg.hidden_size)
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = llama_layers(cfg)
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.lm_head = (None if cfg.tie_word_embeddings
                        else nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False))
        cos, sin = rope_tables(torch.arange(cfg.max_seq_len), rope_inv_freq(cfg.head_dim, cfg.rope_theta))
        self.register_buffer("rope_cos", cos, persistent=False)  # (S, Dh)
        self.register_buffer("rope_sin", sin, persistent=False)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        h = self.norm(h)
        return F.linear(h, self.embed_tokens.weight) if self.lm_head is None else self.lm_head(h)

    def _prefix(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.prefix_proj(embedding).view(embedding.shape[0], self.cfg.prefix_len, -1)  # (B, P, H)

    def _causal(self, x: torch.Tensor):
        """Run all layers causally over x (B, n, H) at positions 0..n-1; also return each layer's k, v."""
        n = x.shape[1]
        cos, sin, bias = self.rope_cos[:n], self.rope_sin[:n], causal_bias(n).to(x.device)
        kvs = []
        for layer in self.layers:
            x, k, v = layer(x, cos, sin, bias)
            kvs.append((k, v))
        return x, kvs

    def forward(self, embedding: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """embedding (B, E), tokens (B, n) starting with BOS -> logits (B, n, V), row i predicts token i+1."""
        x = torch.cat([self._prefix(embedding), self.embed_tokens(tokens)], dim=1)  # (B, P+n, H)
        h, _ = self._causal(x)
        return self.logits(h[:, self.cfg.prefix_len:])

    def prefill(self, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """embedding (1, E) -> logits (1, V) for position P+1, kv_cache (L, 2, Hkv, S, Dh)."""
        bos = torch.full((1, 1), self.cfg.bos_token_id, dtype=torch.long, device=embedding.device)
        x = torch.cat([self._prefix(embedding), self.embed_tokens(bos)], dim=1)  # (1, P+1, H)
        h, kvs = self._causal(x)
        pad = self.cfg.max_seq_len - x.shape[1]
        cache = torch.stack([torch.stack([k[0], v[0]]) for k, v in kvs])  # (L, 2, Hkv, P+1, Dh)
        return self.logits(h[:, -1]), F.pad(cache, (0, 0, 0, pad))  # cache (L, 2, Hkv, S, Dh)

    def step(self, token: torch.Tensor, position: torch.Tensor,
             kv_cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """token (1, 1) int64 at position (1,) int64 -> logits (1, V), updated kv_cache."""
        slots = torch.arange(self.cfg.max_seq_len, device=position.device)  # (S,)
        write = (slots == position)[:, None]  # (S, 1): the cache row this token fills
        bias = torch.where(slots <= position, 0.0, MASK_VALUE)[None, None, None]  # (1, 1, 1, S)
        cos, sin = self.rope_cos.index_select(0, position), self.rope_sin.index_select(0, position)  # (1, Dh)
        x = self.embed_tokens(token)  # (1, 1, H)
        caches = []
        for i, layer in enumerate(self.layers):
            x, k, v = layer(x, cos, sin, bias, kv_cache[i], write)
            caches.append(torch.stack([k[0], v[0]]))  # (2, Hkv, S, Dh)
        return self.logits(x[:, -1]), torch.stack(caches)
