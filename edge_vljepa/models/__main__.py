"""`python -m edge_vljepa.models --preset paper`: per-component parameter counts, built on the meta device."""

from __future__ import annotations

import argparse
import sys

import torch

from edge_vljepa.cli import HelpFormatter
from edge_vljepa.config import PRESETS, ConfigError, get_preset
from edge_vljepa.models import build_model, parameter_counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edge_vljepa.models", formatter_class=HelpFormatter,
        description="Print per-component parameter counts of a preset. The model is built on the meta "
                    "device, so no memory is allocated for weights (the paper preset is ~1.6B parameters).")
    parser.add_argument("--preset", default="paper", choices=list(PRESETS), help="model preset")
    args = parser.parse_args(argv)
    try:
        cfg = get_preset(args.preset)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with torch.device("meta"):
        model = build_model(cfg, seed=None)
    counts = parameter_counts(model)
    print(f"preset {cfg.name}: embed_dim {cfg.embed_dim}, {cfg.x_encoder.num_tokens} visual tokens "
          f"({cfg.x_encoder.num_frames} frames of {cfg.x_encoder.img_size} px)")
    print(f"{'component':<12}{'parameters':>16}{'w/o token embeddings':>24}")
    for name, c in counts.items():
        print(f"{name:<12}{c['total']:>16,}{c['without_token_embeddings']:>24,}")
    total = sum(c["total"] for c in counts.values())
    print(f"{'total':<12}{total:>16,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
