"""Model configuration: one frozen dataclass per VL-JEPA component, a top-level config, presets.

Reference: VL-JEPA (Chen et al., arXiv 2512.10942), V-JEPA 2 (facebookresearch/vjepa2), Llama-3.2,
EmbeddingGemma. Field names follow V-JEPA 2 / timm for the X-Encoder and Hugging Face for the text
models so checkpoints map without renaming.

This file holds *model* configuration only. Streaming / decode-policy settings live in
`edge_vljepa.streaming`, export settings in `export/`. No torch import: the contract and the
streaming loop (what a device runs) read these classes too.

Presets:
  tiny    random init, exports in seconds; the tests use it.
  default the glasses/phone-class model that is trained and shipped (issue: trained default model).
  paper   V-JEPA 2 ViT-L X-Encoder, 8 Llama-3.2-1B layers as Predictor, EmbeddingGemma-300M
          Y-Encoder, 1536-d shared embedding (paper section 3).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass


class ConfigError(ValueError):
    """An invalid configuration; the message says which field and how to fix it."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _positive(obj, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        _check(value > 0, f"{type(obj).__name__}.{name} must be > 0, got {value}")


def rope_split(head_dim: int) -> int:
    """Channels per axis (depth, height, width) of V-JEPA 2's 3D RoPE: 2 * ((head_dim // 3) // 2).

    The remaining head_dim - 3 * split channels are left unrotated, exactly as upstream.
    """
    return 2 * ((head_dim // 3) // 2)


@dataclass(frozen=True)
class XEncoderConfig:
    """V-JEPA 2 video ViT: tubelet patches, pre-norm blocks, GELU MLP, 3D RoPE, no absolute pos-embed.

    variant "vjepa2": V-JEPA 2 (vitl.pt, vith.pt, vitg.pt; the Hugging Face VJEPA2Model).
    variant "vjepa2.1": V-JEPA 2.1's encoder (facebookresearch/vjepa2 app/vjepa_2_1): a learned vector
      (video_mod_embed) added to every patch token; RoPE frequencies interleaved (w0, w0, w1, w1, ...)
      instead of V-JEPA 2's repeated table; row and column positions rescaled to the pretraining grid
      (256 px / patch_size: p * (grid - 1) / (side - 1)); the output norm is its last hierarchical norm.
    """

    img_size: int = 256
    patch_size: int = 16
    num_frames: int = 16
    tubelet_size: int = 2
    in_chans: int = 3
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    variant: str = "vjepa2"

    def __post_init__(self) -> None:
        _positive(self, "img_size", "patch_size", "num_frames", "tubelet_size", "in_chans",
                  "embed_dim", "depth", "num_heads", "mlp_ratio")
        _check(self.variant in ("vjepa2", "vjepa2.1"),
               f"XEncoderConfig.variant must be 'vjepa2' or 'vjepa2.1', got {self.variant!r}")
        _check(self.variant == "vjepa2" or self.img_size > self.patch_size,
               f"XEncoderConfig: variant 'vjepa2.1' rescales RoPE positions by the patch grid, which needs "
               f"img_size > patch_size (got {self.img_size} and {self.patch_size})")
        _check(self.img_size % self.patch_size == 0,
               f"XEncoderConfig.img_size ({self.img_size}) must be a multiple of patch_size "
               f"({self.patch_size}); e.g. img_size={self.img_size // self.patch_size * self.patch_size}")
        _check(self.num_frames % self.tubelet_size == 0,
               f"XEncoderConfig.num_frames ({self.num_frames}) must be a multiple of tubelet_size "
               f"({self.tubelet_size})")
        _check(self.embed_dim % self.num_heads == 0,
               f"XEncoderConfig.embed_dim ({self.embed_dim}) must be divisible by num_heads "
               f"({self.num_heads})")
        _check(rope_split(self.head_dim) > 0,
               f"XEncoderConfig head_dim ({self.head_dim}) is too small for 3D RoPE: need >= 6 "
               "channels per head (embed_dim / num_heads)")

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid (T', H', W') after tubelet patching."""
        side = self.img_size // self.patch_size
        return (self.num_frames // self.tubelet_size, side, side)

    @property
    def num_tokens(self) -> int:
        t, h, w = self.grid
        return t * h * w

    @property
    def mlp_hidden(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)


@dataclass(frozen=True)
class PredictorConfig:
    """Llama-style blocks run bidirectionally over [visual tokens; query tokens], mean-pooled."""

    hidden_size: int = 2048
    num_hidden_layers: int = 8
    num_attention_heads: int = 32
    num_key_value_heads: int = 8
    intermediate_size: int = 8192
    rms_norm_eps: float = 1e-5
    rope_theta: float = 500000.0
    # Llama-3 frequency scaling ("rope_type": "llama3"); factor None disables it.
    rope_scaling_factor: float | None = 32.0
    rope_low_freq_factor: float = 1.0
    rope_high_freq_factor: float = 4.0
    rope_original_max_position: int = 8192
    vocab_size: int = 128256
    max_query_len: int = 32
    tokenizer: str = "llama3"

    def __post_init__(self) -> None:
        _positive(self, "hidden_size", "num_hidden_layers", "num_attention_heads",
                  "num_key_value_heads", "intermediate_size", "vocab_size", "max_query_len")
        _check(self.hidden_size % self.num_attention_heads == 0,
               f"PredictorConfig.hidden_size ({self.hidden_size}) must be divisible by "
               f"num_attention_heads ({self.num_attention_heads})")
        _check(self.num_attention_heads % self.num_key_value_heads == 0,
               f"PredictorConfig.num_attention_heads ({self.num_attention_heads}) must be a multiple "
               f"of num_key_value_heads ({self.num_key_value_heads}) for grouped-query attention")
        _check(self.head_dim % 2 == 0, f"PredictorConfig head_dim ({self.head_dim}) must be even for RoPE")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


@dataclass(frozen=True)
class YEncoderConfig:
    """Text encoder + linear head + L2 norm.

    arch "bert": BERT/MiniLM (post-norm, learned positions), all-MiniLM-L6-v2 in the default model.
    arch "gemma3": Gemma 3 text encoder run bidirectionally, i.e. EmbeddingGemma (paper preset).
    """

    arch: str = "gemma3"
    hidden_size: int = 768
    num_hidden_layers: int = 24
    num_attention_heads: int = 3
    num_key_value_heads: int = 1
    head_dim: int = 256
    intermediate_size: int = 1152
    vocab_size: int = 262144
    max_text_len: int = 64
    norm_eps: float = 1e-6
    # bert only
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    # gemma3 only
    rope_theta: float = 1_000_000.0
    rope_local_base_freq: float = 10_000.0
    sliding_window: int = 512
    sliding_window_pattern: int = 6
    query_pre_attn_scalar: float = 256.0
    tokenizer: str = "gemma3"

    def __post_init__(self) -> None:
        _check(self.arch in ("bert", "gemma3"),
               f"YEncoderConfig.arch must be 'bert' or 'gemma3', got {self.arch!r}")
        _positive(self, "hidden_size", "num_hidden_layers", "num_attention_heads",
                  "num_key_value_heads", "head_dim", "intermediate_size", "vocab_size", "max_text_len")
        _check(self.num_attention_heads % self.num_key_value_heads == 0,
               f"YEncoderConfig.num_attention_heads ({self.num_attention_heads}) must be a multiple "
               f"of num_key_value_heads ({self.num_key_value_heads})")
        if self.arch == "bert":
            _check(self.num_attention_heads * self.head_dim == self.hidden_size,
                   f"YEncoderConfig (bert): num_attention_heads * head_dim must equal hidden_size "
                   f"({self.num_attention_heads} * {self.head_dim} != {self.hidden_size})")
            _check(self.num_key_value_heads == self.num_attention_heads,
                   "YEncoderConfig (bert): num_key_value_heads must equal num_attention_heads")
            _check(self.max_text_len <= self.max_position_embeddings,
                   f"YEncoderConfig.max_text_len ({self.max_text_len}) exceeds "
                   f"max_position_embeddings ({self.max_position_embeddings})")


@dataclass(frozen=True)
class YDecoderConfig:
    """Small causal Llama-style decoder; the embedding enters as `prefix_len` prefix vectors."""

    hidden_size: int = 512
    num_hidden_layers: int = 4
    num_attention_heads: int = 8
    num_key_value_heads: int = 4
    intermediate_size: int = 1536
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    vocab_size: int = 128256
    prefix_len: int = 4
    max_new_tokens: int = 32
    bos_token_id: int = 128000
    eos_token_id: int = 128001
    pad_token_id: int = 128004
    tie_word_embeddings: bool = True
    tokenizer: str = "llama3"

    def __post_init__(self) -> None:
        _positive(self, "hidden_size", "num_hidden_layers", "num_attention_heads",
                  "num_key_value_heads", "intermediate_size", "vocab_size", "prefix_len",
                  "max_new_tokens")
        _check(self.hidden_size % self.num_attention_heads == 0,
               f"YDecoderConfig.hidden_size ({self.hidden_size}) must be divisible by "
               f"num_attention_heads ({self.num_attention_heads})")
        _check(self.num_attention_heads % self.num_key_value_heads == 0,
               f"YDecoderConfig.num_attention_heads ({self.num_attention_heads}) must be a multiple "
               f"of num_key_value_heads ({self.num_key_value_heads})")
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            value = getattr(self, name)
            _check(0 <= value < self.vocab_size,
                   f"YDecoderConfig.{name} ({value}) must be in [0, vocab_size={self.vocab_size})")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def max_seq_len(self) -> int:
        """KV-cache length: prefix vectors, BOS, then generated tokens."""
        return self.prefix_len + 1 + self.max_new_tokens


@dataclass(frozen=True)
class ModelConfig:
    """The whole VL-JEPA model: four components and the shared embedding dimension."""

    name: str
    x_encoder: XEncoderConfig
    predictor: PredictorConfig
    y_encoder: YEncoderConfig
    y_decoder: YDecoderConfig
    embed_dim: int = 1536
    # Preprocessing the X-Encoder was trained with (frames per second, ImageNet normalisation).
    fps: float = 4.0
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __post_init__(self) -> None:
        _positive(self, "embed_dim", "fps")
        _check(len(self.mean) == self.x_encoder.in_chans and len(self.std) == self.x_encoder.in_chans,
               "ModelConfig.mean and std need one value per input channel")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        """Inverse of to_dict; unknown fields are an error naming them (no silent drops)."""
        parts = {"x_encoder": XEncoderConfig, "predictor": PredictorConfig,
                 "y_encoder": YEncoderConfig, "y_decoder": YDecoderConfig}
        kwargs = dict(d)
        for key, klass in parts.items():
            if key not in kwargs:
                raise ConfigError(f"model config is missing the section {key!r}")
            known = {f.name for f in dataclasses.fields(klass)}
            unknown = set(kwargs[key]) - known
            if unknown:
                raise ConfigError(f"unknown fields in {key}: {sorted(unknown)}")
            kwargs[key] = klass(**kwargs[key])
        unknown = set(kwargs) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown top-level model config fields: {sorted(unknown)}")
        for key in ("mean", "std"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


# The predictor's captioning query: what the default model was trained to answer with a caption, the
# streaming CLI's default query, and the query exporters calibrate and check parity with. "happening"
# is not in the world tokenizer: the model learnt this query as `[CLS] what is [UNK] ? [SEP]`. Any
# other wording changes its token ids, i.e. asks the trained model a question it never saw, so the
# text stays and runtimes.stream notes the [UNK] instead (a retrained model could use known words).
CAPTION_QUERY = "what is happening?"
# The captioning query and two of the world's questions: what the loop and VQA feed the predictor,
# and so what int8 calibration and tensor parity record.
CALIBRATION_QUERIES = (CAPTION_QUERY, "what colour is the object?", "which direction does it move?")

# The four components, in data-path order: file stems, config sections, manifest keys.
COMPONENTS = ("x_encoder", "predictor", "y_encoder", "y_decoder")


# --- presets ---------------------------------------------------------------------------------

# all-MiniLM-L6-v2's BERT WordPiece vocabulary (the Y-Encoder's), and the synthetic world's word-level
# tokenizer (edge_vljepa/data/tokenizer.py: 91 tokens, [PAD] 0, [CLS] 2 opens, [SEP] 3 closes a text)
# that the tiny and default Predictor and Y-Decoder use.
MINILM_VOCAB = 30522
WORLD = {"vocab_size": 128, "tokenizer": "world"}
WORLD_SPECIAL = {"bos_token_id": 2, "eos_token_id": 3, "pad_token_id": 0}


def _tiny() -> ModelConfig:
    return ModelConfig(
        name="tiny",
        x_encoder=XEncoderConfig(img_size=32, patch_size=8, num_frames=4, tubelet_size=2,
                                 embed_dim=64, depth=2, num_heads=2),  # head_dim 32: 10+10+10 rotated, 2 not
        predictor=PredictorConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                  num_key_value_heads=2, intermediate_size=128, rope_theta=10000.0,
                                  rope_scaling_factor=None, max_query_len=16, **WORLD),
        y_encoder=YEncoderConfig(arch="bert", hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                 num_key_value_heads=2, head_dim=16, intermediate_size=64,
                                 vocab_size=MINILM_VOCAB, max_text_len=16, norm_eps=1e-12,
                                 tokenizer="minilm"),
        y_decoder=YDecoderConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                 num_key_value_heads=2, intermediate_size=128, prefix_len=2,
                                 max_new_tokens=12, **WORLD, **WORLD_SPECIAL),
        embed_dim=32,
        fps=4.0,
    )


def _default() -> ModelConfig:
    # Glasses/phone class, ~5.7M trained parameters (< 25 MB fp32): a 6-layer ViT over 8 frames of
    # 96 px at 4 fps (4 x 6 x 6 = 144 tokens, 2 s per window), a 3-layer predictor and a 3-layer
    # decoder that speak the synthetic world's 91-token language (edge_vljepa.data.tokenizer), and the
    # real all-MiniLM-L6-v2 as frozen Y-Encoder (open vocabulary; only its head is trained).
    return ModelConfig(
        name="default",
        x_encoder=XEncoderConfig(img_size=96, patch_size=16, num_frames=8, tubelet_size=2,
                                 embed_dim=192, depth=6, num_heads=3),
        predictor=PredictorConfig(hidden_size=192, num_hidden_layers=3, num_attention_heads=3,
                                  num_key_value_heads=1, intermediate_size=512, rope_theta=10000.0,
                                  rope_scaling_factor=None, max_query_len=16, **WORLD),
        y_encoder=YEncoderConfig(arch="bert", hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                                 num_key_value_heads=12, head_dim=32, intermediate_size=1536,
                                 vocab_size=MINILM_VOCAB, max_text_len=32, norm_eps=1e-12,
                                 tokenizer="minilm"),
        y_decoder=YDecoderConfig(hidden_size=192, num_hidden_layers=3, num_attention_heads=3,
                                 num_key_value_heads=1, intermediate_size=512, prefix_len=4,
                                 max_new_tokens=20, **WORLD, **WORLD_SPECIAL),
        embed_dim=256,
        fps=4.0,
    )


def _paper() -> ModelConfig:
    return ModelConfig(
        name="paper",
        x_encoder=XEncoderConfig(),  # ViT-L/16, 256 px, 16 frames, tubelet 2
        predictor=PredictorConfig(),  # Llama-3.2-1B layers 8..15
        y_encoder=YEncoderConfig(),  # EmbeddingGemma-300M
        y_decoder=YDecoderConfig(),
        embed_dim=1536,
        fps=4.0,
    )


PRESETS = {"tiny": _tiny, "default": _default, "paper": _paper}


def get_preset(name: str) -> ModelConfig:
    """The named preset; an unknown name raises ConfigError listing the valid ones."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]()


def load_config_file(path) -> ModelConfig:
    """A ModelConfig from a JSON file of the dataclasses' fields (the form `ModelConfig.to_dict` and
    `python -m edge_vljepa.weights inspect --write-config` write). A section or field left out takes the
    dataclass default, i.e. the paper's value, so a file may hold only what differs from the paper;
    `name` defaults to the file's stem. Unknown fields are an error naming them."""
    from pathlib import Path

    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise ConfigError(f"--config {path}: cannot read it ({e.strerror or e})") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"--config {path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: expected a JSON object of ModelConfig fields")
    data = {"name": path.stem, **data}
    for section in COMPONENTS:
        data.setdefault(section, {})
    try:
        return ModelConfig.from_dict(data)
    except TypeError as e:
        raise ConfigError(f"--config {path}: {e}") from None
    except ConfigError as e:
        raise ConfigError(f"--config {path}: {e}") from None


def resolve_config(preset: str | None = None, config=None, default: str = "default") -> ModelConfig:
    """The one place a model config is chosen: --config FILE.json, else --preset NAME, else `default`."""
    if preset is not None and config is not None:
        raise ConfigError("--preset and --config both name a model; give one")
    if config is not None:
        return load_config_file(config)
    return get_preset(preset or default)
