"""X-Encoder: the V-JEPA 2 video ViT (video clip -> visual tokens).

Reference: facebookresearch/vjepa2, src/models/vision_transformer.py and src/models/utils/modules.py
(PatchEmbed3D, Block, RoPEAttention, rotate_queries_or_keys). Module and parameter names are the
native ones (patch_embed.proj, blocks.N.attn.qkv, ...) so checkpoints map by prefix only.

Export constraints (docs/design.md, export rules):
- the tubelet Conv3d is written as reshape + Linear (no 5-D convolution in XNNPACK or the portable
  kernels); it loads Conv3d weights (D, C, t, p, p) and is numerically identical; every tensor in it
  stays at <= 6 dims for any batch size;
- 3D RoPE tables for the configured T' x H' x W' grid are precomputed non-persistent buffers;
- attention is the shared explicit matmul-softmax-matmul.

V-JEPA 2's RoPE quirk, copied exactly because checkpoints depend on it: each head's channels are
split into depth / height / width blocks of 2 * ((head_dim // 3) // 2) channels (the remainder is not
rotated); inside a block the rotation acts on interleaved pairs (x0, x1), (x2, x3), ... while the
frequency table is the half-size table *repeated* ([w0 .. w_{k-1}, w0 .. w_{k-1}]), not interleaved.
So channel j is rotated with frequency w_{j mod k} and partnered with channel j xor 1.

V-JEPA 2.1 (cfg.variant "vjepa2.1", app/vjepa_2_1/models in the same repository) differs in three
places, all here: the frequency table is interleaved (channel j uses w_{j // 2}); row and column
positions are rescaled to the pretraining grid of 256 / patch_size patches (upstream interpolate_rope);
a learned `video_mod_embed` is added to every patch token. Its output norm (norms_block.3) loads as
`norm`.
"""

from __future__ import annotations

import torch
from torch import nn

from edge_vljepa.config import XEncoderConfig, rope_split
from edge_vljepa.models.layers import LayerNorm, apply_rope, attention, rotation_matrix


def vjepa2_rope_tables(grid: tuple[int, int, int], head_dim: int,
                       pretrained_side: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin (N, head_dim) for tokens in (t, h, w) raster order, V-JEPA 2 layout (see module doc).

    pretrained_side: V-JEPA 2.1: rows and columns rescaled to a grid of this side, frequencies interleaved.
    """
    t, h, w = grid
    ids = torch.arange(t * h * w, dtype=torch.float64)
    axes = [ids // (h * w), (ids % (h * w)) // w, ids % w]  # frame, row, column of each token
    if pretrained_side is not None:
        axes[1] = axes[1] * (pretrained_side - 1) / (h - 1)
        axes[2] = axes[2] * (pretrained_side - 1) / (w - 1)
    split = rope_split(head_dim)
    omega = 1.0 / 10000 ** (torch.arange(split // 2, dtype=torch.float64) / (split / 2.0))  # (k,)
    cos, sin = [], []
    for pos in axes:
        freq = pos[:, None] * omega[None]  # (N, k)
        if pretrained_side is None:  # (N, 2k): V-JEPA 2 repeats the table
            cos.append(freq.cos().repeat(1, 2))
            sin.append(freq.sin().repeat(1, 2))
        else:  # V-JEPA 2.1 interleaves it
            cos.append(freq.cos().repeat_interleave(2, dim=1))
            sin.append(freq.sin().repeat_interleave(2, dim=1))
    rest = head_dim - 3 * split  # channels left unrotated: cos 1, sin 0
    cos.append(torch.ones(len(ids), rest, dtype=torch.float64))
    sin.append(torch.zeros(len(ids), rest, dtype=torch.float64))
    return torch.cat(cos, -1).float(), torch.cat(sin, -1).float()


class TubeletEmbed(nn.Module):
    """Conv3d(kernel = stride = (t, p, p)) as reshape + Linear; accepts Conv3d weights when loading."""

    def __init__(self, cfg: XEncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.proj = nn.Linear(cfg.in_chans * cfg.tubelet_size * cfg.patch_size ** 2, cfg.embed_dim)
        self._register_load_state_dict_pre_hook(self._from_conv3d)

    @staticmethod
    def _from_conv3d(state_dict, prefix, *args, **kwargs):
        key = prefix + "proj.weight"
        if key in state_dict and state_dict[key].dim() == 5:  # Conv3d (D, C, t, p, p) -> Linear (D, C*t*p*p)
            state_dict[key] = state_dict[key].flatten(1)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        c, t, p = self.cfg.in_chans, self.cfg.tubelet_size, self.cfg.patch_size
        gt, gh, gw = self.cfg.grid
        b = video.shape[0]
        x = video.reshape(b * c * gt, t, gh, p, gw, p)  # (B*C*T', t, H', p, W', p)
        x = x.permute(0, 2, 4, 1, 3, 5)  # (B*C*T', H', W', t, p, p)
        x = x.reshape(b, c, gt, gh * gw, t * p * p)  # (B, C, T', H'W', t*p*p)
        x = x.permute(0, 2, 3, 1, 4)  # (B, T', H'W', C, t*p*p): Conv3d weight order (C, t, p, p) inside
        x = x.reshape(b, gt * gh * gw, c * t * p * p)  # (B, N, C*t*p*p), tokens in (t, h, w) order
        return self.proj(x)


class RoPEAttention(nn.Module):
    def __init__(self, cfg: XEncoderConfig):
        super().__init__()
        self.num_heads, self.head_dim = cfg.num_heads, cfg.head_dim
        self.scale = cfg.head_dim ** -0.5
        self.qkv = nn.Linear(cfg.embed_dim, 3 * cfg.embed_dim, bias=cfg.qkv_bias)
        self.proj = nn.Linear(cfg.embed_dim, cfg.embed_dim)
        self.register_buffer("rotation", rotation_matrix(cfg.head_dim, interleaved=True), persistent=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape

        def heads(t):  # (B, N, D) -> (B, H, N, Dh)
            return t.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

        qkv = self.qkv(x)  # (B, N, 3D), fused rows [q; k; v]; slices, not split (split is not delegated)
        q, k, v = heads(qkv[..., :d]), heads(qkv[..., d:2 * d]), heads(qkv[..., 2 * d:])
        q, k = apply_rope(q, cos, sin, self.rotation), apply_rope(k, cos, sin, self.rotation)
        out = attention(q, k, v, self.scale)  # (B, H, N, Dh)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class MLP(nn.Module):
    def __init__(self, cfg: XEncoderConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.embed_dim, cfg.mlp_hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(cfg.mlp_hidden, cfg.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, cfg: XEncoderConfig):
        super().__init__()
        self.norm1 = LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.attn = RoPEAttention(cfg)
        self.norm2 = LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin):
        x = x + self.attn(self.norm1(x), cos, sin)
        return x + self.mlp(self.norm2(x))


class XEncoder(nn.Module):
    """video (B, C, T, H, W), normalised -> visual_tokens (B, N, D), N = T/t * H/p * W/p; B = 1 at export."""

    def __init__(self, cfg: XEncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = TubeletEmbed(cfg)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        v21 = cfg.variant == "vjepa2.1"
        self.video_mod_embed = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim)) if v21 else None
        cos, sin = vjepa2_rope_tables(cfg.grid, cfg.head_dim, 256 // cfg.patch_size if v21 else None)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(video)  # (1, N, D)
        if self.video_mod_embed is not None:
            x = x + self.video_mod_embed
        for block in self.blocks:
            x = block(x, self.rope_cos, self.rope_sin)
        return self.norm(x)
