"""Building blocks shared by the four components: attention, norms, RoPE, MLPs.

Export constraints respected everywhere (docs/design.md, export rules; measured with torch 2.13 +
executorch 1.5.1):
- attention is explicit `softmax(q * scale @ k^T + bias) @ v` on 3-D batched matmuls: SDPA is not
  delegated to XNNPACK (~2x slower there), and 4-D matmuls decompose with `expand` copies that fall
  back to portable kernels; grouped-query attention stacks each group's query heads instead of
  repeating keys/values (no expand); this is the one attention implementation;
- norms compute their means as a matmul with a constant (D, 1) vector and rotary embeddings rotate
  with a constant (Dh, Dh) matrix: XNNPACK delegates matmul, mul and rsqrt but not native_layer_norm,
  mean.dim, pow or select (measured: a LayerNorm lowered 0 of 2 nodes, this form 13 of 14);
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
    """q (B, H, N, Dh), k/v (B, Hkv, M, Dh), bias (B|1, 1, N|1, M) -> (B, H, N, Dh).

    Grouped-query attention when Hkv < H: query head h uses kv head h // (H / Hkv) (Llama's order).
    """
    b, h, n, d = q.shape
    hkv, m = k.shape[1], k.shape[2]
    rep = h // hkv
    q = q.reshape(b * hkv, rep * n, d)  # a group's query heads stacked along the rows
    scores = torch.bmm(q * scale, k.reshape(b * hkv, m, d).transpose(1, 2))  # (B*Hkv, rep*N, M)
    if bias is not None:
        if bias.shape[-2] > 1 and rep > 1:
            bias = bias.repeat(1, 1, rep, 1)  # (., 1, rep*N, M): rows follow the stacked heads
        scores = (scores.view(b, hkv, rep * n, m) + bias.to(scores.dtype)).view(b * hkv, rep * n, m)
    probs = in_fp32(scores).softmax(dim=-1)
    probs = probs if probs.dtype == v.dtype else probs.to(v.dtype)
    return torch.bmm(probs, v.reshape(b * hkv, m, d)).view(b, h, n, d)


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
    return (x * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)  # clamp_min: coremltools 9 fails in fp16


def _mean_vector(dim: int) -> torch.Tensor:
    return torch.full((dim, 1), 1.0 / dim)  # x @ it = mean over the last dim, as a delegable matmul


# The norms add eps before averaging, mean(x^2 + eps) = mean(x^2) + eps: coremltools 9 crashes fusing
# a scalar add that follows a matmul into a linear bias (optimize_linear: "tuple index out of range").


class RMSNorm(nn.Module):
    """Llama RMSNorm (weight * x_hat); Gemma's variant scales by (1 + weight). Computed in fp32."""

    def __init__(self, dim: int, eps: float, unit_offset: bool = False):
        super().__init__()
        self.eps, self.unit_offset = eps, unit_offset
        self.weight = nn.Parameter(torch.zeros(dim) if unit_offset else torch.ones(dim))
        self.register_buffer("mean_vector", _mean_vector(dim), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = in_fp32(x)
        h = h * torch.rsqrt((h * h + self.eps) @ in_fp32(self.mean_vector))
        w = in_fp32(self.weight)
        out = h * (1.0 + w) if self.unit_offset else h * w
        return out if out.dtype == x.dtype else out.to(x.dtype)


class LayerNorm(nn.LayerNorm):
    """nn.LayerNorm's parameters (same state dict keys) and numerics, computed in fp32 whatever the
    input dtype, with its means as matmuls (see the module docstring)."""

    def __init__(self, dim: int, eps: float):
        super().__init__(dim, eps=eps)
        self.register_buffer("mean_vector", _mean_vector(dim), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, mean = in_fp32(x), in_fp32(self.mean_vector)
        centred = h - h @ mean
        out = centred * torch.rsqrt((centred * centred + self.eps) @ mean)
        out = out * in_fp32(self.weight) + in_fp32(self.bias)
        return out if out.dtype == x.dtype else out.to(x.dtype)


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


def rotation_matrix(head_dim: int, interleaved: bool) -> torch.Tensor:
    """(Dh, Dh) weight W of a bias-free linear map giving each channel's signed rotary partner:
    rotate_half, out = [-x2, x1] (Llama, Gemma), or interleaved, each pair (a, b) -> (-b, a)
    (V-JEPA 2). Entries are 0 and +-1, so F.linear(x, W) is exact; as a Linear it is delegated."""
    w = torch.zeros(head_dim, head_dim)  # w[out, in]
    half = head_dim // 2
    for j in range(half):
        if interleaved:  # out[2j] = -x[2j+1], out[2j+1] = x[2j]
            w[2 * j, 2 * j + 1], w[2 * j + 1, 2 * j] = -1.0, 1.0
        else:  # out[j] = -x[j+half], out[j+half] = x[j]
            w[j, j + half], w[j + half, j] = -1.0, 1.0
    return w


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """x (B, H, N, Dh) with cos/sin (N, Dh) and a `rotation_matrix` (Dh, Dh)."""
    return x * cos + F.linear(x, rotation.to(x.dtype)) * sin


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
        self.register_buffer("rotation", rotation_matrix(head_dim, interleaved=False), persistent=False)

    def forward(self, x, cos, sin, bias=None, cache=None, write=None):
        b, n, _ = x.shape
        q = self.q_proj(x).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, N, Dh)
        k = self.k_proj(x).view(b, n, self.num_kv_heads, self.head_dim).transpose(1, 2)  # (B, Hkv, N, Dh)
        v = self.v_proj(x).view(b, n, self.num_kv_heads, self.head_dim).transpose(1, 2)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = apply_rope(q, cos, sin, self.rotation), apply_rope(k, cos, sin, self.rotation)
        if cache is not None:
            k = torch.where(write, k, cache[0])  # (1, Hkv, S, Dh)
            v = torch.where(write, v, cache[1])
        out = attention(q, k, v, self.scale, bias)
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


def llama_layers(cfg) -> nn.ModuleList:
    """The LlamaBlocks of a Predictor or Y-Decoder config (both use Hugging Face Llama field names)."""
    return nn.ModuleList(LlamaBlock(cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads,
                                    cfg.intermediate_size, cfg.rms_norm_eps)
                         for _ in range(cfg.num_hidden_layers))


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Truncated-normal(0, std) for Linear/Embedding weights, zero biases; norms keep their own init."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)
