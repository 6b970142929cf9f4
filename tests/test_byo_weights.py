"""Bring your own weights: upstream checkpoints at non-preset sizes -> derived config -> model -> artifact.

Small random transformers models (VJEPA2Model, LlamaModel, Gemma3TextModel) composed the way Open-VLJEPA
(github.com/dion-jy/open-vljepa, openvljepa/models/*.py) composes them: x_encoder = VJEPA2Model's
last_hidden_state; predictor = vis_proj, then the last Llama layers run bidirectionally over
[visual; query], final norm, masked mean over visual + real query tokens, out_proj; y_encoder =
Gemma3TextModel, masked mean, projector. Written in each layout (Hugging Face folders with config.json,
the best.pt `{"epoch", "model_state_dict", "loss", "config"}` without `x_encoder.model.*`), loaded through
the CLI, and each component compared with that reference forward in fp32 (1e-4). Our outputs are
L2-normalised inside the model; Open-VLJEPA normalises only where it compares (F.normalize in its eval),
so the reference is normalised before the comparison.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from transformers import Gemma3TextConfig, Gemma3TextModel, LlamaConfig, LlamaModel, VJEPA2Config, VJEPA2Model

from edge_vljepa.config import get_preset, load_config_file
from edge_vljepa.weights import main as weights_main
from edge_vljepa.weights import read_checkpoint

ATOL = 1e-4
PAPER = get_preset("paper")
# a ViT at no preset's size (width 96, depth 3, 3 heads), 32 px, 4 frames
VJEPA2 = dict(crop_size=32, patch_size=8, frames_per_clip=4, hidden_size=96, num_attention_heads=3,
              num_hidden_layers=3, mlp_ratio=2.0, layer_norm_eps=1e-6, tubelet_size=2)
# Llama with the paper's head_dim (64) and RoPE (what a best.pt without config.json is read with)
LLAMA = dict(hidden_size=128, num_attention_heads=2, num_key_value_heads=1, intermediate_size=160,
             num_hidden_layers=4, rms_norm_eps=PAPER.predictor.rms_norm_eps, vocab_size=128)
LLAMA_ROPE = dict(rope_type="llama3", rope_theta=PAPER.predictor.rope_theta,
                  factor=PAPER.predictor.rope_scaling_factor, low_freq_factor=1.0, high_freq_factor=4.0,
                  original_max_position_embeddings=8192)
KEEP = 2
GEMMA = dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=16,
             intermediate_size=64, vocab_size=30522,
             query_pre_attn_scalar=int(PAPER.y_encoder.query_pre_attn_scalar),
             rms_norm_eps=PAPER.y_encoder.norm_eps, sliding_window=PAPER.y_encoder.sliding_window)
EMBED = 24
DATA = {"num_frames": 4, "image_size": 32, "max_query_len": 8, "max_caption_len": 12}


def perturb(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model.eval()


class OpenVLJEPAReference(torch.nn.Module):
    """Open-VLJEPA's composition, written from its openvljepa/models/*.py with small random parts."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.vjepa2 = perturb(VJEPA2Model(VJEPA2Config(**VJEPA2, pred_hidden_size=16,
                                                       pred_num_hidden_layers=1,
                                                       pred_num_attention_heads=2, pred_num_mask_tokens=2,
                                                       attn_implementation="eager")), 1)
        llama = perturb(LlamaModel(LlamaConfig(**LLAMA, rope_parameters=dict(LLAMA_ROPE),
                                               max_position_embeddings=8192 * 2,
                                               attn_implementation="eager")), 2)
        self.embed_tokens, self.layers, self.norm = llama.embed_tokens, llama.layers[-KEEP:], llama.norm
        self.rotary_emb = llama.rotary_emb
        self.vis_proj = torch.nn.Linear(VJEPA2["hidden_size"], LLAMA["hidden_size"])
        self.out_proj = torch.nn.Linear(LLAMA["hidden_size"], EMBED)
        n = GEMMA["num_hidden_layers"]
        pattern = PAPER.y_encoder.sliding_window_pattern
        types = ["full_attention" if (i + 1) % pattern == 0 else "sliding_attention" for i in range(n)]
        y = PAPER.y_encoder
        rope = {"sliding_attention": dict(rope_type="default", rope_theta=y.rope_local_base_freq),
                "full_attention": dict(rope_type="default", rope_theta=y.rope_theta)}
        self.gemma = perturb(Gemma3TextModel(Gemma3TextConfig(**GEMMA, layer_types=types,
                                                              rope_parameters=rope,
                                                              use_bidirectional_attention=True,
                                                              max_position_embeddings=64,
                                                              attn_implementation="eager")), 3)
        self.projector = torch.nn.Linear(GEMMA["hidden_size"], EMBED)
        perturb(self, 4)

    def x_encoder(self, video):  # (B, C, T, H, W) as our model takes it; HF wants (B, T, C, H, W)
        out = self.vjepa2(pixel_values_videos=video.permute(0, 2, 1, 3, 4), skip_predictor=True)
        return out.last_hidden_state

    def predictor(self, vis, ids, mask):
        h = torch.cat([self.vis_proj(vis), self.embed_tokens(ids)], dim=1)
        full = torch.cat([torch.ones(1, vis.shape[1]), mask.float()], dim=1)
        n = h.shape[1]
        bias = ((1 - full) * torch.finfo(h.dtype).min)[:, None, None, :].expand(1, 1, n, n)
        pos = torch.arange(n)[None]
        pe = self.rotary_emb(h, pos)
        for layer in self.layers:
            out = layer(h, attention_mask=bias, position_ids=pos, position_embeddings=pe, use_cache=False)
            h = out[0] if isinstance(out, tuple) else out
        h = self.norm(h)
        pooled = (h * full[..., None]).sum(1) / full.sum(1, keepdim=True)
        return self.out_proj(pooled)

    def y_encoder(self, ids, mask):
        h = self.gemma(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
        m = mask[..., None].float()
        return self.projector((h * m).sum(1) / m.sum(1))


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    """The reference, written as an Open-VLJEPA best.pt + a V-JEPA 2 folder, and as three HF folders."""
    root = tmp_path_factory.mktemp("byo")
    ref = OpenVLJEPAReference()
    ref.vjepa2.save_pretrained(root / "vjepa2")
    state = {}
    for name, module in (("embed_tokens", ref.embed_tokens), ("norm", ref.norm), ("vis_proj", ref.vis_proj),
                         ("out_proj", ref.out_proj)):
        state |= {f"predictor.{name}.{k}": v for k, v in module.state_dict().items()}
    state |= {f"predictor.layers.{k}": v for k, v in ref.layers.state_dict().items()}
    state |= {f"y_encoder.model.{k}": v for k, v in ref.gemma.state_dict().items()}
    state |= {f"y_encoder.projector.{k}": v for k, v in ref.projector.state_dict().items()}
    config = {"encoder": {"model_name": "facebook/vjepa2-vitl-fpc64-256", "output_dim": None},
              "predictor": {"llama_name": "meta-llama/Llama-3.2-1B", "n_keep_layers": KEEP,
                            "proj_dim": EMBED},
              "y_encoder": {"model_name": "google/embeddinggemma-300m", "proj_dim": EMBED}, "data": DATA}
    torch.save({"epoch": 3, "model_state_dict": {k: v.clone() for k, v in state.items()}, "loss": 1.5,
                "config": config}, root / "best.pt")
    return root, ref


def assemble(tmp_path, *args):
    out = tmp_path / "model.safetensors"
    assert weights_main(["assemble", *args, "--random-weights", "y_decoder", "--preset", "tiny",
                         "--out", str(out)]) == 0
    state, meta = read_checkpoint(out)
    from edge_vljepa.config import ModelConfig
    from edge_vljepa.models import build_model
    cfg = ModelConfig.from_dict(json.loads(meta["config"]))
    model = build_model(cfg)
    model.load_state_dict(state)
    return model.eval(), cfg, json.loads(meta["sources"])


def compare(model, cfg, ref):
    g = torch.Generator().manual_seed(7)
    x = cfg.x_encoder
    video = torch.randn(1, 3, x.num_frames, x.img_size, x.img_size, generator=g)
    ids = torch.randint(1, cfg.predictor.vocab_size, (1, cfg.predictor.max_query_len), generator=g)
    qmask = torch.ones(1, cfg.predictor.max_query_len, dtype=torch.long)
    qmask[:, 5:] = 0
    tids = torch.randint(1, cfg.y_encoder.vocab_size, (1, cfg.y_encoder.max_text_len), generator=g)
    tmask = torch.ones(1, cfg.y_encoder.max_text_len, dtype=torch.long)
    tmask[:, 7:] = 0
    with torch.no_grad():
        vis_want, vis_got = ref.x_encoder(video), model.x_encoder(video)
        assert (vis_got - vis_want).abs().max() <= ATOL
        pred_want = F.normalize(ref.predictor(vis_want, ids, qmask), dim=-1)
        assert (model.predictor(vis_want, ids, qmask) - pred_want).abs().max() <= ATOL
        y_want = F.normalize(ref.y_encoder(tids, tmask), dim=-1)
        assert (model.y_encoder(tids, tmask) - y_want).abs().max() <= ATOL


def test_open_vljepa_best_pt_plus_vjepa2_folder_assembles_and_equals_the_reference(layouts, tmp_path, capsys):
    root, ref = layouts
    model, cfg, sources = assemble(tmp_path, "--checkpoint", str(root / "best.pt"),
                                   "--checkpoint", f"x_encoder={root / 'vjepa2'}")
    # sizes from the shapes (no preset has them), input sizes from best.pt's config
    assert (cfg.x_encoder.embed_dim, cfg.x_encoder.depth, cfg.x_encoder.num_heads) == (96, 3, 3)
    p = cfg.predictor
    assert (p.hidden_size, p.num_hidden_layers, p.num_key_value_heads) == (128, KEEP, 1)
    assert (cfg.y_encoder.arch, cfg.y_encoder.hidden_size, cfg.embed_dim) == ("gemma3", 48, EMBED)
    assert (cfg.x_encoder.num_frames, cfg.predictor.max_query_len, cfg.y_encoder.max_text_len) == (4, 8, 12)
    assert sources["predictor"]["format"] == "open-vljepa" and sources["x_encoder"]["format"] == "vjepa2-hf"
    assert sources["y_decoder"] == {"source": "random weights"}
    assert all(len(h) == 64 for s in sources.values() for h in s.get("files", {}).values())
    compare(model, cfg, ref)


def test_inspect_derives_a_config_for_a_non_preset_vit(layouts, tmp_path, capsys):
    root, _ = layouts
    out = tmp_path / "x.json"
    assert weights_main(["inspect", str(root / "vjepa2"), "--write-config", str(out)]) == 0
    text = capsys.readouterr().out
    assert "config derived: fits" in text and "summary: vjepa2-hf -> x_encoder; fits: derived" in text
    assert '"embed_dim": 96' in text
    cfg = load_config_file(out)
    assert cfg.x_encoder.embed_dim == 96 and cfg.x_encoder.num_heads == 3
    assert weights_main(["inspect", str(root / "vjepa2"), "--config", str(out)]) == 0


def test_a_missing_component_and_a_misfit_are_one_line_errors(layouts, tmp_path, capsys):
    root, _ = layouts
    out = str(tmp_path / "m.safetensors")
    assert weights_main(["assemble", "--checkpoint", str(root / "best.pt"), "--out", out]) == 2
    err = capsys.readouterr().err
    assert "no weights for x_encoder, y_decoder" in err and "--random-weights" in err and err.count("\n") == 1
    tiny = tmp_path / "tiny.json"
    tiny.write_text(get_preset("tiny").to_json())
    assert weights_main(["assemble", "--checkpoint", str(root / "best.pt"), "--checkpoint",
                         f"x_encoder={root / 'vjepa2'}", "--random-weights", "y_decoder",
                         "--config", str(tiny), "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "does not fit" in err and "wrong shapes" in err
    assert not (tmp_path / "m.safetensors").exists()


def test_one_command_export_and_stream(layouts, tmp_path, capsys):
    """best.pt + x_encoder=HF folder -> ExecuTorch artifact (fp32 parity) -> runtimes.stream --artifacts."""
    pytest.importorskip("executorch")
    from export import to_executorch
    from runtimes import stream
    root, _ = layouts
    out = tmp_path / "art"
    rc = to_executorch.main(["--checkpoint", str(root / "best.pt"),
                             "--checkpoint", f"x_encoder={root / 'vjepa2'}", "--random-weights", "y_decoder",
                             "--preset", "tiny", "--calibration-windows", "1",
                             "--parity-windows", "2", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    manifest = json.loads((out / "manifest.json").read_text())
    sources = manifest["model"]["sources"]
    assert sources["predictor"]["format"] == "open-vljepa"
    assert sources["y_decoder"] == {"source": "random weights"}
    assert manifest["model"]["config"]["x_encoder"]["embed_dim"] == 96
    tensors = manifest["parity"]["tensors"]
    assert all(o["max_abs"] <= ATOL for m in tensors.values() for o in m["outputs"].values())
    video = tmp_path / "clip.mp4"
    from edge_vljepa.data.__main__ import main as data_main
    assert data_main(["streams", "--split", "test", "--count", "1", "--minutes", "0.1", "--out",
                      str(tmp_path / "v"), "--force"]) == 0
    video = next((tmp_path / "v").glob("*.mp4"))
    assert stream.main(["--artifacts", str(out), "--video", str(video), "--quiet"]) == 0
