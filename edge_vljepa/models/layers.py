"""Building blocks shared by the four components: attention, norms, RoPE, MLPs.

Export constraints respected everywhere (DESIGN section 4, measured with torch 2.13 + executorch 1.5.1):
- attention is explicit `softmax(q * scale @ k^T + bias) @ v`: `F.scaled_dot_product_attention` is not
  delegated to XNNPACK and was ~2x slower there; this is the one attention implementation;
- static shapes, batch 1 at export; masks enter as additive biases; no data-dependent control flow;
- every tensor has at most 6 dims; RoPE tables are precomputed non-persistent buffers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# Additive bias for masked attention positions. Finite (not -inf, not finfo.min) so that fp16 lowering
# cannot turn it into inf - inf = NaN; exp(-1e4) underflows to exactly 0 in fp32 and fp16.
MASK_VALUE = -1e4


def in_fp32(x: torch.Tensor) -> torch.Tensor:
    """x as float32; a no-op (no graph node) when it already is. Softmax and norms run in fp32 even in
    fp16 exports, a known failure point of video transformers in fp16 (TensorRT, Core ML)."""
    return x if x.dtype == torch.float32 else x.float()


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
              bias: torch.Tensor | None = None) -> torch.Tensor:
    """q (B, H, N, Dh), k/v (B, H, M, Dh), bias broadcastable to (B, H, N, M) -> (B, H, N, Dh)."""
    scores = (q * scale) @ k.transpose(-2, -1)  # (B, H, N, M)
    if bias is not None:
        scores = scores + bias.to(scores.dtype)
    probs = in_fp32(scores).softmax(dim=-1)
    return (probs if probs.dtype == v.dtype else probs.to(v.dtype)) @ v


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """Grouped-query attention: (B, Hkv, M, Dh) -> (B, Hkv * n_rep, M, Dh), each KV head shared by n_rep."""
    if n_rep == 1:
        return x
    b, h, m, d = x.shape
    return x[:, :, None].expand(b, h, n_rep, m, d).reshape(b, h * n_rep, m, d)


def padding_bias(mask: torch.Tensor) -> torch.Tensor:
    """Key padding mask (B, M) of 1 = keep, 0 = pad -> additive bias (B, 1, 1, M)."""
    return ((1.0 - mask.to(torch.float32)) * MASK_VALUE)[:, None, None, :]


def causal_bias(n: int) -> torch.Tensor:
    """(1, 1, n, n) additive bias letting position i attend to positions <= i."""
    keep = torch.ones(n, n, dtype=torch.bool).tril()
    return torch.where(keep, 0.0, MASK_VALUE)[None, None]


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the tokens where mask is 1: x (B, N, D), mask (B, N) -> (B, D)."""
    m = mask.to(x.dtype)[..., None]  # (B, N, 1)
    return (x * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)


class RMSNorm(nn.Module):
    """Llama RMSNorm (weight * x_hat); Gemma's variant scales by (1 + weight). Computed in fp32."""

    def __init__(self, dim: int, eps: float, unit_offset: bool = False):
        super().__init__()
        self.eps, self.unit_offset = eps, unit_offset
        self.weight = nn.Parameter(torch.zeros(dim) if unit_offset else torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = in_fp32(x)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        w = in_fp32(self.weight)
        out = h * (1.0 + w) if self.unit_offset else h * w
        return out if out.dtype == x.dtype else out.to(x.dtype)


class LayerNorm(nn.LayerNorm):
    """nn.LayerNorm (same parameters and state dict) computed in fp32 whatever the input dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32:
            return super().forward(x)
        return F.layer_norm(x.float(), self.normalized_shape, self.weight.float(), self.bias.float(),
                            self.eps).to(x.dtype)


# --- rotary position embeddings (Llama / Gemma layout: rotate_half, halves not pairs) ----------

def rope_inv_freq(head_dim: int, theta: float, scaling_factor: float | None = None,
                  low_freq_factor: float = 1.0, high_freq_factor: float = 4.0,
                  original_max_position: int = 8192) -> torch.Tensor:
    """Inverse frequencies (head_dim / 2,), with Llama-3's frequency scaling when scaling_factor is set."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    if scaling_factor is None:
        return inv_freq.float()
    low_wavelen = original_max_position / low_freq_factor
    high_wavelen = original_max_position / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_wavelen, inv_freq / scaling_factor, inv_freq)
    smooth = (original_max_position / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed = (1 - smooth) * scaled / scaling_factor + smooth * scaled
    medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return torch.where(medium, smoothed, scaled).float()


def rope_tables(positions: torch.Tensor, inv_freq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin tables (N, head_dim) for integer positions (N,): frequencies concatenated twice."""
    freqs = positions.to(torch.float64)[:, None] * inv_freq.to(torch.float64)[None]  # (N, Dh/2)
    emb = torch.cat([freqs, freqs], dim=-1)  # (N, Dh)
    return emb.cos().float(), emb.sin().float()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, H, N, Dh) with cos/sin (N, Dh)."""
    return x * cos + rotate_half(x) * sin


# --- Llama-style blocks (Predictor, Y-Decoder, Gemma encoder) --------------------------------

class SwiGLU(nn.Module):
    """Gated MLP: down(act(gate(x)) * up(x)); SiLU for Llama, tanh-GELU for Gemma (GeGLU)."""

    def __init__(self, dim: int, hidden: int, act: str = "silu"):
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=False)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)
        self.act = nn.SiLU() if act == "silu" else nn.GELU(approximate="tanh")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))


class GQAttention(nn.Module):
    """Grouped-query self-attention with RoPE (Llama naming), optional per-head q/k RMSNorm (Gemma 3).

    With `cache` (2, Hkv, S, Dh) and `write` (S, 1) bool, the new keys/values (one position) are
    written into the fixed-size cache where `write` is True and attention runs over the whole cache
    (the bias masks positions not yet written). Returns the output and the keys/values it attended to.
    """

    def __init__(self, dim: int, num_heads: int, num_kv_heads: int, head_dim: int,
                 scale: float | None = None, qk_norm_eps: float | None = None):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, head_dim
        self.scale = head_dim ** -0.5 if scale is None else scale
        self.q_proj = nn.Linear(dim, num_heads * head_dim, bias=False)
        self.k_proj = nn.Linear(dim, num_kv_heads * head_dim, bias=False)
        self.v_proj = nn.Linear(dim, num_kv_heads * head_dim, bias=False)
        self.o_proj = nn.Linear(num_heads * head_dim, dim, bias=False)
        if qk_norm_eps is not None:
            self.q_norm = RMSNorm(head_dim, qk_norm_eps, unit_offset=True)
            self.k_norm = RMSNorm(head_dim, qk_norm_eps, unit_offset=True)
        else:
            self.q_norm = self.k_norm = None

    def forward(self, x, cos, sin, bias=None, cache=None, write=None):
        b, n, _ = x.shape
        q = self.q_proj(x).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, N, Dh)
        k = self.k_proj(x).view(b, n, self.num_kv_heads, self.head_dim).transpose(1, 2)  # (B, Hkv, N, Dh)
        v = self.v_proj(x).view(b, n, self.num_kv_heads, self.head_dim).transpose(1, 2)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            k = torch.where(write, k, cache[0])  # (1, Hkv, S, Dh)
            v = torch.where(write, v, cache[1])
        n_rep = self.num_heads // self.num_kv_heads
        out = attention(q, repeat_kv(k, n_rep), repeat_kv(v, n_rep), self.scale, bias)
        out = out.transpose(1, 2).reshape(b, n, self.num_heads * self.head_dim)  # (B, N, H * Dh)
        return self.o_proj(out), k, v


class LlamaBlock(nn.Module):
    """Pre-norm Llama decoder layer; bidirectional or causal depending only on the bias it is given."""

    def __init__(self, dim: int, num_heads: int, num_kv_heads: int, intermediate: int, eps: float):
        super().__init__()
        self.input_layernorm = RMSNorm(dim, eps)
        self.self_attn = GQAttention(dim, num_heads, num_kv_heads, dim // num_heads)
        self.post_attention_layernorm = RMSNorm(dim, eps)
        self.mlp = SwiGLU(dim, intermediate)

    def forward(self, x, cos, sin, bias=None, cache=None, write=None):
        h, k, v = self.self_attn(self.input_layernorm(x), cos, sin, bias, cache, write)
        x = x + h
        return x + self.mlp(self.post_attention_layernorm(x)), k, v


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Truncated-normal(0, std) for Linear/Embedding weights, zero biases; norms keep their own init."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)
