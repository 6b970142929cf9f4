"""The VL-JEPA model: four components, and the one mapping from contract methods to module calls.

`method_modules(model)` gives, for every method of `edge_vljepa.contract`, a module whose forward
takes the contract's inputs in order and returns its outputs in order. The PyTorch reference
backend and every exporter use it, so a method is wired to the model in exactly one place.
"""

from __future__ import annotations

import torch
from torch import nn

from edge_vljepa.config import COMPONENTS, ModelConfig
from edge_vljepa.models.layers import init_weights
from edge_vljepa.models.predictor import Predictor
from edge_vljepa.models.x_encoder import XEncoder
from edge_vljepa.models.y_decoder import YDecoder
from edge_vljepa.models.y_encoder import YEncoder


class VLJEPA(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        x = cfg.x_encoder
        self.x_encoder = XEncoder(x)
        self.predictor = Predictor(cfg.predictor, x.embed_dim, x.num_tokens, cfg.embed_dim)
        self.y_encoder = YEncoder(cfg.y_encoder, cfg.embed_dim)
        self.y_decoder = YDecoder(cfg.y_decoder, cfg.embed_dim)


def build_model(cfg: ModelConfig, seed: int | None = 0) -> VLJEPA:
    """The model with deterministic random init (seed None: leave torch's RNG alone).

    Under `torch.device("meta")` nothing is allocated: the paper preset builds in milliseconds.
    """
    if seed is not None:
        torch.manual_seed(seed)
    model = VLJEPA(cfg)
    init_weights(model)
    return model.eval()


class _Method(nn.Module):
    """Exposes one method of a component as `forward`, outputs as a tuple in contract order."""

    def __init__(self, component: nn.Module, method: str):
        super().__init__()
        self.component, self.method = component, method

    def forward(self, *inputs):
        out = getattr(self.component, self.method)(*inputs)
        return out if isinstance(out, tuple) else (out,)


def method_modules(model: VLJEPA) -> dict[str, nn.Module]:
    return {
        "x_encoder": _Method(model.x_encoder, "forward"),
        "predictor": _Method(model.predictor, "forward"),
        "y_encoder": _Method(model.y_encoder, "forward"),
        "y_decoder_prefill": _Method(model.y_decoder, "prefill"),
        "y_decoder_step": _Method(model.y_decoder, "step"),
    }


def parameter_counts(model: VLJEPA) -> dict[str, dict[str, int]]:
    """Per component: all parameters, and parameters without token-embedding tables."""
    counts = {}
    for name in COMPONENTS:
        module = getattr(model, name)
        total = sum(p.numel() for p in module.parameters())
        embeddings = sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Embedding))
        counts[name] = {"total": total, "without_token_embeddings": total - embeddings}
    return counts
