"""Paper-preset weights smoke run (not in CI): upstream layouts at full size, loaded and run on the CPU.

Writes random weights for the whole `paper` preset in the native upstream layouts, loads them with
`edge_vljepa.weights.load_pretrained`, runs one forward pass of each component and prints per
component: parameters, write / build / load / forward seconds and peak RSS.

  x_encoder  V-JEPA 2 ViT-L training .pt: {encoder, target_encoder, epoch}, `module.backbone.` keys,
             fused qkv, Conv3d patch embedding (written from a randomly initialised XEncoder, whose
             parameter names are the native ones)
  predictor  Llama-3.2-1B safetensors as released: all 16 layers, bf16, tied embeddings (written by
             transformers' LlamaForCausalLM); the Predictor keeps layers 8..15
  y_encoder  EmbeddingGemma-300M safetensors, fp32 (written by transformers' Gemma3TextModel)
  y_decoder  no upstream checkpoint exists: random init, forward only (prefill)

Every write and every load+forward runs in a fresh process, so memory is returned between
components and each peak RSS (resource.getrusage) belongs to its component alone. Needs
`transformers` (the dev extra) and ~6 GB of free disk; about 8 GiB of RAM at the peak.

    python scripts/paper_weights_smoke.py [--workdir DIR]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from edge_vljepa.config import ModelConfig, get_preset
from edge_vljepa.contract import build_contract
from edge_vljepa.models.predictor import Predictor
from edge_vljepa.models.x_encoder import XEncoder
from edge_vljepa.models.y_decoder import YDecoder
from edge_vljepa.models.y_encoder import YEncoder
from edge_vljepa.weights import load_pretrained

LLAMA_3_2_1B_LAYERS = 16
# contract method and module method run once per component
METHODS = {"x_encoder": ("x_encoder", "forward"), "predictor": ("predictor", "forward"),
           "y_encoder": ("y_encoder", "forward"), "y_decoder": ("y_decoder_prefill", "prefill")}


def build_component(cfg: ModelConfig, name: str) -> torch.nn.Module:
    """One component alone, wired as in edge_vljepa.models.VLJEPA (the whole model would need ~6 GB)."""
    x = cfg.x_encoder
    if name == "x_encoder":
        return XEncoder(x)
    if name == "predictor":
        return Predictor(cfg.predictor, x.embed_dim, x.num_tokens, cfg.embed_dim)
    if name == "y_encoder":
        return YEncoder(cfg.y_encoder, cfg.embed_dim)
    return YDecoder(cfg.y_decoder, cfg.embed_dim)


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux


# --- writers: one upstream layout each --------------------------------------------------------

def write_vjepa2_pt(cfg: ModelConfig, folder: Path) -> Path:
    x = cfg.x_encoder
    torch.manual_seed(1)
    state = {}
    for key, value in XEncoder(x).state_dict().items():
        if key == "patch_embed.proj.weight":  # Linear (D, C*t*p*p) -> Conv3d (D, C, t, p, p)
            value = value.reshape(x.embed_dim, x.in_chans, x.tubelet_size, x.patch_size, x.patch_size)
        state["module.backbone." + key] = value
    path = folder / "vitl.pt"
    torch.save({"encoder": state, "target_encoder": state, "epoch": 0}, path)  # shared storage: saved once
    return path


def write_llama(cfg: ModelConfig, folder: Path) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    p = cfg.predictor
    hf_cfg = LlamaConfig(
        hidden_size=p.hidden_size, num_hidden_layers=LLAMA_3_2_1B_LAYERS,
        num_attention_heads=p.num_attention_heads, num_key_value_heads=p.num_key_value_heads,
        intermediate_size=p.intermediate_size, rms_norm_eps=p.rms_norm_eps, vocab_size=p.vocab_size,
        max_position_embeddings=131072, tie_word_embeddings=True,
        rope_parameters=dict(rope_type="llama3", rope_theta=p.rope_theta, factor=p.rope_scaling_factor,
                             low_freq_factor=p.rope_low_freq_factor, high_freq_factor=p.rope_high_freq_factor,
                             original_max_position_embeddings=p.rope_original_max_position))
    torch.manual_seed(2)
    torch.set_default_dtype(torch.bfloat16)  # as released; halves the writer's memory
    model = LlamaForCausalLM(hf_cfg)
    path = folder / "Llama-3.2-1B"
    model.save_pretrained(path)
    return path


def write_embeddinggemma(cfg: ModelConfig, folder: Path) -> Path:
    from transformers import Gemma3TextConfig, Gemma3TextModel

    y = cfg.y_encoder
    layer_types = ["full_attention" if (i + 1) % y.sliding_window_pattern == 0 else "sliding_attention"
                   for i in range(y.num_hidden_layers)]
    hf_cfg = Gemma3TextConfig(
        hidden_size=y.hidden_size, num_hidden_layers=y.num_hidden_layers,
        num_attention_heads=y.num_attention_heads, num_key_value_heads=y.num_key_value_heads,
        head_dim=y.head_dim, intermediate_size=y.intermediate_size,
        vocab_size=y.vocab_size, rms_norm_eps=y.norm_eps,
        query_pre_attn_scalar=int(y.query_pre_attn_scalar),  # an int field in transformers' strict config
        sliding_window=y.sliding_window, layer_types=layer_types, use_bidirectional_attention=True,
        max_position_embeddings=2048,
        rope_parameters={"sliding_attention": dict(rope_type="default", rope_theta=y.rope_local_base_freq),
                         "full_attention": dict(rope_type="default", rope_theta=y.rope_theta)})
    torch.manual_seed(3)
    path = folder / "embeddinggemma-300m"
    Gemma3TextModel(hf_cfg).save_pretrained(path)
    return path


WRITERS = {"x_encoder": write_vjepa2_pt, "predictor": write_llama, "y_encoder": write_embeddinggemma}


def write(name: str, folder: str) -> tuple[str, float]:
    start = time.perf_counter()
    path = WRITERS[name](get_preset("paper"), Path(folder))
    return str(path), time.perf_counter() - start


# --- load + forward ---------------------------------------------------------------------------

def example_inputs(cfg: ModelConfig, method: str) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    out = []
    for spec in build_contract(cfg)[method].inputs:
        if spec.name.endswith("mask"):
            t = torch.zeros(spec.shape, dtype=torch.int64)
            t[:, : spec.shape[1] // 2] = 1
        elif spec.dtype == "int64":
            t = torch.randint(1000, 2000, spec.shape, generator=g)
        else:
            t = torch.randn(spec.shape, generator=g)
        out.append(t)
    return out


def load_and_run(name: str, path: str | None) -> dict:
    torch.set_grad_enabled(False)
    cfg = get_preset("paper")
    start = time.perf_counter()
    module = build_component(cfg, name).eval()
    row = {"component": name, "build_s": time.perf_counter() - start,
           "params": sum(p.numel() for p in module.parameters()), "load_s": None, "report": "random init"}
    if path is not None:
        start = time.perf_counter()
        row["report"] = load_pretrained(module, path).summary()
        row["load_s"] = time.perf_counter() - start
    contract_method, module_method = METHODS[name]
    inputs = example_inputs(cfg, contract_method)
    start = time.perf_counter()
    outputs = getattr(module, module_method)(*inputs)
    row["forward_s"] = time.perf_counter() - start
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    row["finite"] = all(bool(torch.isfinite(o).all()) for o in outputs)
    row["output"] = " ".join(str(tuple(o.shape)) for o in outputs)
    row["peak_rss_gib"] = peak_rss_gib()
    return row


def in_fresh_process(fn, *args):
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(fn, *args).result()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default=None,
                        help="folder for the temporary checkpoints (default: the system temp dir)")
    args = parser.parse_args(argv)
    print(f"paper preset weights smoke: torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"workdir {args.workdir or '(temporary)'}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as folder:
        for name in METHODS:
            path, write_s = None, None
            if name in WRITERS:
                print(f"{name}: writing ...", flush=True)
                path, write_s = in_fresh_process(write, name, folder)
            print(f"{name}: loading and running ...", flush=True)
            row = in_fresh_process(load_and_run, name, path)
            row["write_s"] = write_s
            print(f"{name}: {row['report']}; output {row['output']}, finite {row['finite']}", flush=True)
            rows.append(row)

    def seconds(v):
        return "-" if v is None else f"{v:.1f}"

    header = (f"{'component':10} {'params':>13} {'write s':>8} {'build s':>8} {'load s':>7} "
              f"{'forward s':>10} {'peak RSS GiB':>12}")
    print("\n" + header + "\n" + "-" * len(header))
    for r in rows:
        print(f"{r['component']:10} {r['params']:>13,} {seconds(r['write_s']):>8} "
              f"{seconds(r['build_s']):>8} {seconds(r['load_s']):>7} {seconds(r['forward_s']):>10} "
              f"{r['peak_rss_gib']:>12.2f}")
    total = sum(r["params"] for r in rows)
    print(f"{'total':10} {total:>13,}")
    ok = all(r["finite"] for r in rows)
    print(f"summary: {len(rows)} components, {total / 1e9:.2f}B parameters, outputs finite: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
