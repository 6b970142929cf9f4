"""Y-Encoder: text -> embedding in the shared space (labels, answers, retrieval queries).

A pretrained text encoder, mean pooling over real tokens, a linear head, L2 norm (VL-JEPA section 3).
Two backbones, chosen by `YEncoderConfig.arch`:
- "bert": BERT / MiniLM (post-norm layers, learned absolute positions, GELU); the default model uses
  the real all-MiniLM-L6-v2. Parameter names are Hugging Face `BertModel`'s under `backbone.`.
- "gemma3": the Gemma 3 text stack run bidirectionally, i.e. EmbeddingGemma-300M (paper preset):
  sandwich norms (pre and post around attention and MLP), Gemma RMSNorm (1 + weight), per-head
  q/k norms, GeGLU, embeddings scaled by sqrt(hidden), RoPE with a local base for sliding-window
  layers and a global base every `sliding_window_pattern`-th layer. Names follow `Gemma3TextModel`.
  Run bidirectionally, a sliding layer lets token i see token j iff |i - j| <= sliding_window // 2
  (transformers' EmbeddingGemma); a precomputed band bias enforces it only when `max_text_len` is longer
  than that reach (not in the paper preset: 64 tokens, reach 256).

Export constraints: static (1, max_text_len) inputs with an attention mask; additive mask bias;
precomputed position tables; the shared explicit attention.
"""

from __future__ import annotations

import torch
from torch import nn

from edge_vljepa.config import YEncoderConfig
from edge_vljepa.models.layers import (
    MASK_VALUE,
    GQAttention,
    LayerNorm,
    RMSNorm,
    SwiGLU,
    attention,
    l2_normalize,
    masked_mean,
    padding_bias,
    rope_inv_freq,
    rope_tables,
)

# --- BERT / MiniLM ---------------------------------------------------------------------------


class _BertEmbeddings(nn.Module):
    def __init__(self, cfg: YEncoderConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.LayerNorm = LayerNorm(cfg.hidden_size, eps=cfg.norm_eps)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        n = input_ids.shape[1]
        # Single-segment input: token type 0 everywhere, positions 0..n-1 (static slices).
        x = self.word_embeddings(input_ids) + self.position_embeddings.weight[:n]
        return self.LayerNorm(x + self.token_type_embeddings.weight[0])


class _BertSelfAttention(nn.Module):
    def __init__(self, cfg: YEncoderConfig):
        super().__init__()
        self.num_heads, self.head_dim = cfg.num_attention_heads, cfg.head_dim
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.key = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.value = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape

        def heads(t):  # (B, N, D) -> (B, H, N, Dh)
            return t.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

        out = attention(heads(self.query(x)), heads(self.key(x)), heads(self.value(x)),
                        self.head_dim ** -0.5, bias)
        return out.transpose(1, 2).reshape(b, n, d)


class _BertDenseNorm(nn.Module):
    """dense -> + residual -> LayerNorm (BertSelfOutput / BertOutput)."""

    def __init__(self, d_in: int, d_out: int, eps: float):
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)
        self.LayerNorm = LayerNorm(d_out, eps=eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class _BertAttention(nn.Module):
    def __init__(self, cfg: YEncoderConfig):
        super().__init__()
        self.self = _BertSelfAttention(cfg)
        self.output = _BertDenseNorm(cfg.hidden_size, cfg.hidden_size, cfg.norm_eps)

    def forward(self, x, bias):
        return self.output(self.self(x, bias), x)


class _BertIntermediate(nn.Module):
    def __init__(self, cfg: YEncoderConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.act = nn.GELU()

    def forward(self, x):
        return self.act(self.dense(x))


class _BertLayer(nn.Module):
    def __init__(self, cfg: YEncoderConfig):
        super().__init__()
        self.attention = _BertAttention(cfg)
        self.intermediate = _BertIntermediate(cfg)
        self.output = _BertDenseNorm(cfg.intermediate_size, cfg.hidden_size, cfg.norm_eps)

    def forward(self, x, bias):
        x = self.attention(x, bias)
        return self.output(self.intermediate(x), x)


class _BertStack(nn.Module):
    def __init__(self, cfg: YEncoderConfig):
        super().__init__()
        self.layer = nn.ModuleList(_BertLayer(cfg) for _ in range(cfg.num_hidden_layers))


class BertBackbone(nn.Module):
    def __init__(self, cfg: YEncoderConfig):
        super().__init__()
        self.embeddings = _BertEmbeddings(cfg)
        self.encoder = _BertStack(cfg)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(input_ids)
        bias = padding_bias(attention_mask)
        for layer in self.encoder.layer:
            x = layer(x, bias)
        return x  # (B, L, D)


# --- Gemma 3 / EmbeddingGemma ----------------------------------------------------------------

class _Gemma3Layer(nn.Module):
    def __init__(self, cfg: YEncoderConfig):
        super().__init__()
        d = cfg.hidden_size
        self.input_layernorm = RMSNorm(d, cfg.norm_eps, unit_offset=True)
        self.self_attn = GQAttention(d, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim,
                                     scale=cfg.query_pre_attn_scalar ** -0.5, qk_norm_eps=cfg.norm_eps)
        self.post_attention_layernorm = RMSNorm(d, cfg.norm_eps, unit_offset=True)
        self.pre_feedforward_layernorm = RMSNorm(d, cfg.norm_eps, unit_offset=True)
        self.mlp = SwiGLU(d, cfg.intermediate_size, act="gelu_tanh")
        self.post_feedforward_layernorm = RMSNorm(d, cfg.norm_eps, unit_offset=True)

    def forward(self, x, cos, sin, bias):
        h, _, _ = self.self_attn(self.input_layernorm(x), cos, sin, bias)
        x = x + self.post_attention_layernorm(h)
        return x + self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(x)))


class Gemma3Backbone(nn.Module):
    def __init__(self, cfg: YEncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(_Gemma3Layer(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.norm_eps, unit_offset=True)
        positions = torch.arange(cfg.max_text_len)
        for kind, theta in (("local", cfg.rope_local_base_freq), ("global", cfg.rope_theta)):
            cos, sin = rope_tables(positions, rope_inv_freq(cfg.head_dim, theta))
            self.register_buffer(f"rope_cos_{kind}", cos, persistent=False)
            self.register_buffer(f"rope_sin_{kind}", sin, persistent=False)
        reach, i = cfg.sliding_window // 2, positions
        band = torch.where((i[:, None] - i[None]).abs() <= reach, 0.0, MASK_VALUE)[None, None]  # (1, 1, L, L)
        self.register_buffer("sliding_bias", band if cfg.max_text_len - 1 > reach else None, persistent=False)

    def is_global(self, i: int) -> bool:
        return (i + 1) % self.cfg.sliding_window_pattern == 0

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.embed_tokens(input_ids)
        x = x * self.cfg.hidden_size ** 0.5
        bias = padding_bias(attention_mask)  # bidirectional
        for i, layer in enumerate(self.layers):
            kind = "global" if self.is_global(i) else "local"
            windowed = kind == "local" and self.sliding_bias is not None
            x = layer(x, getattr(self, f"rope_cos_{kind}"), getattr(self, f"rope_sin_{kind}"),
                      bias + self.sliding_bias if windowed else bias)  # (B, 1, L, L) or (B, 1, 1, L)
        return self.norm(x)


class YEncoder(nn.Module):
    """input_ids (B, L), attention_mask (B, L) -> embedding (B, E), unit norm."""

    def __init__(self, cfg: YEncoderConfig, embed_dim: int):
        super().__init__()
        self.cfg = cfg
        self.backbone = BertBackbone(cfg) if cfg.arch == "bert" else Gemma3Backbone(cfg)
        self.head = nn.Linear(cfg.hidden_size, embed_dim)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.backbone(input_ids, attention_mask)  # (B, L, D)
        return l2_normalize(self.head(masked_mean(h, attention_mask)))
