"""Predictor: (visual tokens, text query) -> predicted answer embedding.

Reference: VL-JEPA (arXiv 2512.10942) section 3: the last 8 layers of Llama-3.2-1B with the causal
mask switched off; input sequence = projected visual tokens, then the query tokens; mean pooling
over the non-pad tokens; a linear head to the shared embedding space. Layer and parameter names
follow Hugging Face `LlamaModel` (layers.N.self_attn.q_proj, ..., norm, embed_tokens) so the Llama
checkpoint maps by layer renumbering only.

Export constraints: static shapes (the query is right-padded to `max_query_len`, `query_mask` marks
real tokens); the padding mask is an additive bias; RoPE tables for the fixed sequence length are
precomputed buffers; the output is L2-normalised.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edge_vljepa.config import PredictorConfig
from edge_vljepa.models.layers import (
    RMSNorm,
    l2_normalize,
    llama_layers,
    masked_mean,
    padding_bias,
    rope_inv_freq,
    rope_tables,
)


class Predictor(nn.Module):
    """visual_tokens (B, N, Dx), query_ids (B, L), query_mask (B, L) -> embedding (B, E), unit norm."""

    def __init__(self, cfg: PredictorConfig, visual_dim: int, num_visual_tokens: int, embed_dim: int):
        super().__init__()
        self.cfg = cfg
        self.visual_proj = nn.Linear(visual_dim, cfg.hidden_size)
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = llama_layers(cfg)
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.head = nn.Linear(cfg.hidden_size, embed_dim)
        inv_freq = rope_inv_freq(cfg.head_dim, cfg.rope_theta, cfg.rope_scaling_factor,
                                 cfg.rope_low_freq_factor, cfg.rope_high_freq_factor,
                                 cfg.rope_original_max_position)
        cos, sin = rope_tables(torch.arange(num_visual_tokens + cfg.max_query_len), inv_freq)
        self.register_buffer("rope_cos", cos, persistent=False)  # (N + L, Dh)
        self.register_buffer("rope_sin", sin, persistent=False)

    def forward(self, visual_tokens: torch.Tensor, query_ids: torch.Tensor,
                query_mask: torch.Tensor) -> torch.Tensor:
        b, n, _ = visual_tokens.shape
        x = torch.cat([self.visual_proj(visual_tokens), self.embed_tokens(query_ids)], dim=1)  # (B, N+L, H)
        mask = F.pad(query_mask, (n, 0), value=1)  # (B, N+L): visual tokens are never padding
        bias = padding_bias(mask)  # (B, 1, 1, N+L): bidirectional, pad keys masked
        for layer in self.layers:
            x, _, _ = layer(x, self.rope_cos, self.rope_sin, bias)
        pooled = masked_mean(self.norm(x), mask)  # (B, H)
        return l2_normalize(self.head(pooled))
