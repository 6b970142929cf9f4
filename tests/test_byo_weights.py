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

Per-component sources too: a V-JEPA 2.1 training .pt (ema_encoder), a LlamaForCausalLM folder and a
Gemma3TextModel folder, exported through the CLI, every artifact method compared with the upstream
forward, and runtimes.parity rebuilding its reference from the manifest's recorded sources. Sizes
derived from shapes alone: V-JEPA 2 ViT-H / ViT-g and V-JEPA 2.1 at their real sizes (names and shapes,
no tensors), BERT Y-Encoders.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch
import torch.nn.functional as F
from transformers import (
    BertConfig,
    BertModel,
    Gemma3TextConfig,
    Gemma3TextModel,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaModel,
    VJEPA2Config,
    VJEPA2Model,
)

from edge_vljepa.config import get_preset, load_config_file
from edge_vljepa.models import build_model
from edge_vljepa.preprocess import minilm_model_dir
from edge_vljepa.weights import (
    Opened,
    Source,
    SourceSpec,
    derive_config,
    fit_mapping,
    read_checkpoint,
    recognise,
)
from edge_vljepa.weights import main as weights_main
from tests.test_fidelity import vjepa2_1_encoder_state, vjepa2_1_reference

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


def test_a_missing_tokenizer_fails_before_the_weights_are_read(layouts, tmp_path, capsys, monkeypatch):
    """The paper base names the Llama-3 / Gemma-3 tokenizers: without --tokenizer the export says so in one
    line before assembling (minutes at the paper's size), not after."""
    import importlib

    from export import to_executorch
    assemble_module = importlib.import_module("edge_vljepa.weights.assemble")

    def never(*_):
        raise AssertionError("the weights were read before the tokenizers were checked")
    monkeypatch.setattr(assemble_module, "assemble", never)
    root, _ = layouts
    rc = to_executorch.main(["--checkpoint", str(root / "best.pt"),
                             "--checkpoint", f"x_encoder={root / 'vjepa2'}", "--random-weights", "y_decoder",
                             "--preset", "paper", "--no-parity", "--out", str(tmp_path / "art")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "tokenizer 'llama3' is not available on this machine" in err and "--tokenizer llama3=PATH" in err
    assert not (tmp_path / "art").exists()


# --- sizes derived from shapes: V-JEPA 2 / 2.1 at their real sizes (names and shapes only), BERT ------

def vit_shapes(width: int, depth: int, mlp: int, v21: bool) -> dict[str, tuple[int, ...]]:
    """The tensor shapes of a V-JEPA 2 (or 2.1) training checkpoint's encoder, no tensors."""
    p = "module.backbone."
    shapes = {f"{p}patch_embed.proj.weight": (width, 3, 2, 16, 16), f"{p}patch_embed.proj.bias": (width,)}
    for i in range(depth):
        for name, shape in (("attn.qkv", (3 * width, width)), ("attn.proj", (width, width)),
                            ("mlp.fc1", (mlp, width)), ("mlp.fc2", (width, mlp)),
                            ("norm1", (width,)), ("norm2", (width,))):
            shapes |= {f"{p}blocks.{i}.{name}.weight": shape, f"{p}blocks.{i}.{name}.bias": shape[:1]}
    norms = [f"norms_block.{i}" for i in range(4)] if v21 else ["norm"]
    shapes |= {f"{p}{n}.{w}": (width,) for n in norms for w in ("weight", "bias")}
    if v21:
        shapes |= {f"{p}video_mod_embed": (1, 1, width), f"{p}img_mod_embed": (1, 1, width),
                   f"{p}patch_embed_img.proj.weight": (width, 3, 1, 16, 16),
                   f"{p}patch_embed_img.proj.bias": (width,)}
    return shapes


@pytest.mark.parametrize("name, width, depth, mlp, heads, section", [
    ("vith", 1280, 32, 5120, 16, "target_encoder"),  # V-JEPA 2 ViT-H/16: 80 channels per head
    ("vitg", 1408, 40, 6144, 22, "target_encoder"),  # ViT-g/16: MLP 1408 * 48/11
    ("vjepa2_1_vitl_dist_vitG_384", 1024, 24, 4096, 16, "ema_encoder"),
    ("vjepa2_1_vitG_384", 1664, 48, 8192, 26, "target_encoder"),  # V-JEPA 2.1 ViT-G: MLP 1664 * 64/13
])
def test_vjepa2_sizes_derive_from_the_shapes_of_a_training_checkpoint(tmp_path, name, width, depth, mlp,
                                                                      heads, section):
    v21 = name.startswith("vjepa2_1")
    shapes = vit_shapes(width, depth, mlp, v21)
    source = Source(tmp_path / f"{name}.pt", "torch", {section: shapes, "encoder": shapes}, read=None)
    mapping = recognise(source)
    assert (mapping.keymap.name, mapping.section) == ("vjepa2-native", section)
    cfg, notes = derive_config([Opened(SourceSpec(source.path, "x_encoder"), source, mapping)], PAPER)
    x = cfg.x_encoder
    assert (x.embed_dim, x.depth, x.num_heads, x.mlp_hidden, x.patch_size, x.tubelet_size) == \
        (width, depth, heads, mlp, 16, 2)
    assert x.variant == ("vjepa2.1" if v21 else "vjepa2") and notes
    with torch.device("meta"):
        module = build_model(cfg, seed=None).x_encoder
    assert fit_mapping(source, mapping, module)[1].ok


def test_bert_y_encoder_sizes_derive_from_shapes_and_config_json(tmp_path, capsys):
    bert = BertModel(BertConfig(hidden_size=48, num_hidden_layers=3, num_attention_heads=4,
                                intermediate_size=80, max_position_embeddings=96, layer_norm_eps=1e-5,
                                vocab_size=100))
    bert.save_pretrained(tmp_path / "bert")
    out = tmp_path / "bert.json"
    assert weights_main(["inspect", str(tmp_path / "bert"), "--write-config", str(out)]) == 0
    assert "config derived: fits" in capsys.readouterr().out
    y = load_config_file(out).y_encoder
    assert (y.arch, y.hidden_size, y.num_hidden_layers, y.num_attention_heads, y.head_dim,
            y.intermediate_size, y.max_position_embeddings, y.norm_eps, y.vocab_size, y.tokenizer) == \
        ("bert", 48, 3, 4, 12, 80, 96, 1e-5, 100, "bert")
    # without config.json: BERT-base's 64 channels per head, BERT's LayerNorm eps
    (tmp_path / "bare").mkdir()
    shutil.copy(tmp_path / "bert" / "model.safetensors", tmp_path / "bare")
    assert weights_main(["inspect", str(tmp_path / "bare"), "--write-config", str(out)]) == 0
    y = load_config_file(out).y_encoder
    assert (y.num_attention_heads, y.head_dim, y.norm_eps) == (1, 48, 1e-12)
    # the real all-MiniLM-L6-v2 folder derives the default preset's Y-Encoder (text length aside)
    assert weights_main(["inspect", str(minilm_model_dir()), "--write-config", str(out)]) == 0
    default = get_preset("default").y_encoder
    assert dataclasses.replace(load_config_file(out).y_encoder, max_text_len=default.max_text_len) == default


# --- per-component sources: a V-JEPA 2.1 .pt, a Llama folder, an EmbeddingGemma folder ----------------

class ComponentReference(OpenVLJEPAReference):
    """The same composition from per-component sources: the X-Encoder is a V-JEPA 2.1 training .pt
    (test_fidelity's reference forward); the projections no upstream checkpoint has (visual_proj, the
    predictor head, the Y-Encoder head) are the assembled model's own, i.e. its random init."""

    def __init__(self, encoder_state):
        super().__init__()
        self.encoder_state = encoder_state

    def use_heads(self, model):
        self.vis_proj, self.out_proj = model.predictor.visual_proj, model.predictor.head
        self.projector = model.y_encoder.head
        return self

    def x_encoder(self, video):
        return vjepa2_1_reference(self.encoder_state, video, heads=2, patch=8, tubelet=2)


class ArtifactModel:
    """An artifact's methods called like the model's components (torch tensors in and out)."""

    def __init__(self, directory):
        from runtimes.artifact import Artifact
        from runtimes.backends import open_backend
        self.backend = open_backend(Artifact(directory))

    def run(self, method, **inputs):
        (out,) = self.backend.run(method, {k: v.numpy() for k, v in inputs.items()}).values()
        return torch.from_numpy(out)

    def x_encoder(self, video):
        return self.run("x_encoder", video=video)

    def predictor(self, visual, ids, mask):
        return self.run("predictor", visual_tokens=visual, query_ids=ids, query_mask=mask)

    def y_encoder(self, ids, mask):
        return self.run("y_encoder", input_ids=ids, attention_mask=mask)


@pytest.fixture(scope="module")
def components(tmp_path_factory):
    """vjepa2_1.pt (ema_encoder + encoder), llama/ (LlamaForCausalLM, 4 layers), gemma/ (Gemma3TextModel),
    and the reference they were written from."""
    root = tmp_path_factory.mktemp("components")
    state = vjepa2_1_encoder_state(width=128, depth=2, mlp=256, patch=8, tubelet=2, seed=5)
    torch.save({"ema_encoder": state, "encoder": {k: v + 1.0 for k, v in state.items()}, "epoch": 1},
               root / "vjepa2_1.pt")
    ref = ComponentReference(state)
    llama = LlamaForCausalLM(LlamaConfig(**LLAMA, rope_parameters=dict(LLAMA_ROPE),
                                         max_position_embeddings=8192 * 2))
    llama.model.embed_tokens, llama.model.norm = ref.embed_tokens, ref.norm
    for i, layer in enumerate(ref.layers):  # the reference's layers are the checkpoint's last KEEP
        llama.model.layers[LLAMA["num_hidden_layers"] - KEEP + i] = layer
    llama.save_pretrained(root / "llama")
    ref.gemma.save_pretrained(root / "gemma")
    return root, ref


def component_args(root):
    return ["--checkpoint", f"x_encoder={root / 'vjepa2_1.pt'}", "--checkpoint",
            f"predictor={root / 'llama'}", "--checkpoint", f"y_encoder={root / 'gemma'}",
            "--random-weights", "y_decoder"]


@pytest.fixture(scope="module")
def component_artifact(components, tmp_path_factory):
    pytest.importorskip("executorch")
    from export import to_executorch
    root, _ = components
    out = tmp_path_factory.mktemp("component-artifact") / "art"
    code = to_executorch.main([*component_args(root), "--preset", "tiny", "--no-parity", "--out", str(out)])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    from edge_vljepa.data.world import sample_stream
    from edge_vljepa.data.write import write_video
    path, _ = write_video(sample_stream("test", 0, seed=3, minutes=0.25), tmp_path_factory.mktemp("video"),
                          64, 48, fmt="avi")
    return path


def test_per_component_sources_export_and_each_component_equals_the_reference(components, component_artifact):
    """Sizes derived per source (no config.json for the .pt; the folders' config.json for heads, RoPE, Gemma's
    window), the manifest's sources, and every artifact method equal to the upstream reference (fp32)."""
    from argparse import Namespace

    from runtimes import parity
    from runtimes.artifact import Artifact
    root, ref = components
    artifact = Artifact(component_artifact)
    cfg, sources = artifact.cfg, artifact.manifest["model"]["sources"]
    x, p, y = cfg.x_encoder, cfg.predictor, cfg.y_encoder
    assert (x.variant, x.embed_dim, x.depth, x.num_heads) == ("vjepa2.1", 128, 2, 2)
    assert (p.hidden_size, p.num_hidden_layers, p.num_key_value_heads, p.rope_scaling_factor) == \
        (128, KEEP, 1, LLAMA_ROPE["factor"])
    assert (y.arch, y.hidden_size, y.head_dim, y.sliding_window) == \
        ("gemma3", 48, 16, GEMMA["sliding_window"])
    assert {c: s.get("format") for c, s in sources.items()} == {
        "x_encoder": "vjepa2-native", "predictor": "llama3", "y_encoder": "embeddinggemma", "y_decoder": None}
    assert list(sources["x_encoder"]["files"]) == [str((root / "vjepa2_1.pt").resolve())]
    # runtimes.parity's reference: re-assembled from the recorded sources (their random heads included)
    backend, text = parity.open_reference(Namespace(reference="pytorch", checkpoint=None), artifact)
    assert "assembled from x_encoder=" in text
    compare(ArtifactModel(component_artifact), cfg, ref.use_heads(backend.model))


def test_parity_reassembles_the_reference_from_the_recorded_sources(component_artifact, video, tmp_path,
                                                                    capsys):
    from runtimes import parity
    code = parity.main(["--artifacts", str(component_artifact), "--video", str(video), "--windows", "4",
                        "--out", str(tmp_path / "report")])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "reference   pytorch (eager, weights: assembled from x_encoder=" in out
    assert "parity      pass" in out
    tensors = json.loads((tmp_path / "report" / "parity.json").read_text())["tensors"]
    assert all(o["max_abs"] <= ATOL for m in tensors.values() for o in m["outputs"].values())


def test_exporter_parity_only_reassembles_the_reference(component_artifact, tmp_path, capsys):
    """`export.to_executorch --parity-only` measures against the model the artifact came from (its sources
    read again), not the preset's shipped or random weights."""
    import shutil

    from export import to_executorch
    copy = tmp_path / "art"
    shutil.copytree(component_artifact, copy)  # --parity-only writes its results into the manifest
    code = to_executorch.main(["--parity-only", str(copy), "--calibration-windows", "2",
                               "--parity-windows", "2"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "preset      derived (assembled from x_encoder=" in out
    tensors = json.loads((copy / "manifest.json").read_text())["parity"]["tensors"]
    assert all(o["max_abs"] <= ATOL for m in tensors.values() for o in m["outputs"].values())


def test_parity_names_a_moved_or_changed_source_in_one_line(components, component_artifact, video, tmp_path,
                                                            capsys):
    from runtimes import parity
    root, _ = components
    pt = str((root / "vjepa2_1.pt").resolve())

    def run_with(change):
        copy = tmp_path / f"art-{len(list(tmp_path.iterdir()))}"
        shutil.copytree(component_artifact, copy)
        manifest = json.loads((copy / "manifest.json").read_text())
        change(manifest["model"]["sources"]["x_encoder"])
        (copy / "manifest.json").write_text(json.dumps(manifest))
        code = parity.main(["--artifacts", str(copy), "--video", str(video), "--out", str(tmp_path / "r")])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
        return err

    def moved(record):
        record["source"] = str(tmp_path / "gone.pt")
        record["files"] = {str(tmp_path / "gone.pt"): record["files"][pt]}

    err = run_with(moved)
    assert f"the x_encoder was exported from {tmp_path / 'gone.pt'}, which is not there now" in err
    assert "--checkpoint model.safetensors" in err
    err = run_with(lambda record: record["files"].update({pt: "0" * 64}))
    assert f"the x_encoder source {pt} changed since the export" in err
    # the remedy the message names: the same sources assembled into one file, passed with --checkpoint
    assembled = tmp_path / "model.safetensors"
    assert weights_main(["assemble", *component_args(root), "--preset", "tiny", "--out", str(assembled)]) == 0
    from argparse import Namespace

    from runtimes.artifact import Artifact
    artifact = Artifact(component_artifact)
    a, _ = parity.open_reference(Namespace(reference="pytorch", checkpoint=None), artifact)
    b, text = parity.open_reference(Namespace(reference="pytorch", checkpoint=assembled), artifact)
    assert str(assembled) in text
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())


def test_an_export_from_a_checkpoint_that_does_not_fit_lists_the_keys(components, tmp_path, capsys):
    pytest.importorskip("executorch")
    from export import to_executorch
    root, _ = components
    tiny = tmp_path / "tiny.json"
    tiny.write_text(get_preset("tiny").to_json())
    code = to_executorch.main([*component_args(root), "--config", str(tiny), "--out", str(tmp_path / "art")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err, err
    assert "does not fit the x_encoder" in err and "wrong shapes" in err and "video_mod_embed" in err
    assert not (tmp_path / "art").exists()
