"""Training of the embedded `default` VL-JEPA model on the synthetic world (python -m edge_vljepa.train).

VL-JEPA (Chen et al., arXiv 2512.10942, section 3) trains the X-Encoder + Predictor to predict the
*embedding* of the answer: a bidirectional InfoNCE loss between predictor(video, query) and the
Y-Encoder embedding of the target text, and, separately, a light Y-Decoder that turns embeddings back
into text. Here, for a model that trains on a 2-core CPU in under an hour:

  data        clips of the world's TRAIN split (edge_vljepa.data.world.sample_clip) rendered on the fly
              at 128 px with random nuisances, a random window of `num_frames` frames at the model's
              fps, prepared exactly like inference (preprocess.prepare_frame + to_video_tensor).
  targets     per clip two queries: CAPTION_QUERY -> one of its train-template captions or its label,
              and one of its questions (colour, shape, action, direction, count, size) -> the answer.
  losses      bidirectional in-batch InfoNCE for both (equal texts in a batch are not negatives of
              each other), plus the same predictions scored against every train label and against the
              question's answer options (the classification and VQA tasks as softmaxes over their
              candidates: many more negatives per clip than a 32-clip batch holds).
  Y-Encoder   all-MiniLM-L6-v2, frozen (its real weights, edge_vljepa.pretrained); the mean-pooled
              backbone features of each text are computed once (TextFeatures), only the linear head
              trains, at a reduced learning rate (as the paper's Y-Encoder; at the full rate the targets
              collapsed together), its bias initialised to centre the features of the world's texts.
  Y-Decoder   teacher-forced on Y-Encoder embeddings of captions (world tokenizer, [CLS] ... [SEP]) with
              Gaussian noise on the input embedding (re-normalised); from `decoder_on_predicted` of the
              schedule on, half of its inputs are the predictor's (detached) caption embeddings.
  optimiser   AdamW, linear warm-up then cosine decay over `steps`, gradients clipped per group
              (embedding side, decoder); learnable temperature; bf16 autocast (fp32 losses).

Runs are reproducible: clip i of step s and every random draw of step s come from (seed, s) alone, so
`--resume` from RUN_DIR/checkpoint.pt (model, optimiser, step, text features) continues exactly
(same thread count assumed); `--until` and `--minutes` split a run into parts. `--export PATH` writes
the native safetensors checkpoint of everything except the frozen MiniLM backbone
(edge_vljepa.pretrained.load_model restores it) and labels.txt (the world's canonical labels) beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from edge_vljepa.cli import HelpFormatter
from edge_vljepa.config import CAPTION_QUERY, PRESETS, ConfigError, ModelConfig, get_preset
from edge_vljepa.data.render import RENDER_SIZE, render_frame
from edge_vljepa.data.world import (
    ANSWER_OPTIONS,
    combo_allowed,
    sample_clip,
    world_classes,
    world_labels,
)
from edge_vljepa.models import VLJEPA, build_model, parameter_counts
from edge_vljepa.models.layers import l2_normalize, masked_mean
from edge_vljepa.preprocess import PreprocessSpec, TextTokenizer, prepare_frame, to_video_tensor
from edge_vljepa.pretrained import load_minilm, uses_minilm
from edge_vljepa.weights import save_checkpoint

CHECKPOINT = "checkpoint.pt"


class TrainError(ValueError):
    """Bad training settings or an unusable run directory; the message says what to change."""


@dataclass(frozen=True)
class TrainSettings:
    """Everything that determines the trained weights (run controls like --minutes are not here)."""

    steps: int = 2000  # length of the cosine schedule
    batch_size: int = 32
    lr: float = 1e-3
    min_lr_ratio: float = 0.05  # final lr / peak lr
    warmup: int = 50
    weight_decay: float = 0.05
    y_head_lr_scale: float = 0.05  # the Y-Encoder head learns slower, or the targets collapse together
    temperature: float = 0.07  # initial InfoNCE temperature (learnable)
    decoder_noise: float = 0.5  # max noise-to-signal ratio on the Y-Decoder's input embedding
    decoder_on_predicted: float = 0.3  # schedule fraction after which half its inputs are predicted
    render_size: int = RENDER_SIZE  # frames are rendered at this size, then prepared to img_size
    clip_seconds: tuple[float, float] = (2.0, 4.0)  # clip length range; a random window is used
    bf16: bool = True  # bfloat16 autocast for the model's matmuls (~2x faster on AVX-512 BF16 CPUs)
    seed: int = 0

    def check(self, cfg: ModelConfig) -> None:
        for name in ("steps", "batch_size", "lr", "render_size"):
            if not getattr(self, name) > 0:
                raise TrainError(f"--{name.replace('_', '-')} must be > 0, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise TrainError(f"--batch-size must be >= 2 (InfoNCE needs negatives), got {self.batch_size}")
        if not 0 <= self.warmup < self.steps:
            raise TrainError(f"--warmup must be in [0, steps={self.steps}), got {self.warmup}")
        lo, hi = self.clip_seconds
        if not lo * cfg.fps >= cfg.x_encoder.num_frames or hi < lo:
            raise TrainError(f"--clip-seconds {lo:g} {hi:g}: clips must hold num_frames="
                             f"{cfg.x_encoder.num_frames} frames at {cfg.fps:g} fps, i.e. min >= "
                             f"{cfg.x_encoder.num_frames / cfg.fps:g} s, and max >= min")


# --- the world's classes --------------------------------------------------------------------

@lru_cache(maxsize=1)
def train_labels() -> tuple[str, ...]:
    """The labels of the classes the train split shows (no held-out combination): the label bank that
    training classifies against."""
    return tuple(label for cls, label in zip(world_classes(), world_labels(), strict=True)
                 if combo_allowed("train", *cls))


# --- inputs ---------------------------------------------------------------------------------

def video_tensor(frames_rgb, spec: PreprocessSpec) -> torch.Tensor:
    """RGB uint8 frames of any size -> the X-Encoder input (1, 3, T, S, S), as at inference."""
    return torch.from_numpy(to_video_tensor([prepare_frame(f, spec.img_size) for f in frames_rgb], spec))


def encode_texts(tokenizer: TextTokenizer, texts: list[str], what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and mask (n, max_len) int64 of `texts`, padded like the contract's inputs."""
    pairs = [tokenizer.encode(t, what=what) for t in texts]
    return (torch.from_numpy(np.concatenate([ids for ids, _ in pairs])),
            torch.from_numpy(np.concatenate([mask for _, mask in pairs])))


class TextFeatures:
    """Mean-pooled features of the frozen Y-Encoder backbone, computed once per distinct text.

    `y_embedding(model, features)` finishes the Y-Encoder (trainable head, L2 norm), so the result
    equals model.y_encoder(ids, mask) while the backbone runs once per text, not once per step.
    New texts are computed in sorted order, so the cache (saved in run checkpoints) is reproducible.
    """

    def __init__(self, model: VLJEPA, chunk: int = 256):
        cfg = model.cfg.y_encoder
        self.backbone = model.y_encoder.backbone
        self.tokenizer = TextTokenizer(cfg.tokenizer, cfg.max_text_len)
        self.chunk = chunk
        self.index: dict[str, int] = {}
        self.rows: list[torch.Tensor] = []

    def __call__(self, texts: list[str]) -> torch.Tensor:
        """(n, hidden) features of `texts`."""
        new = sorted({t for t in texts if t not in self.index})
        for i in range(0, len(new), self.chunk):
            part = new[i:i + self.chunk]
            ids, mask = encode_texts(self.tokenizer, part, "text")
            used = int(mask.sum(1).max())  # trailing padding changes nothing (masked keys weigh 0)
            ids, mask = ids[:, :used], mask[:, :used]
            with torch.no_grad():
                pooled = masked_mean(self.backbone(ids, mask), mask)  # (n, D)
            for text, row in zip(part, pooled, strict=True):
                self.index[text] = len(self.rows)
                self.rows.append(row)
        return torch.stack([self.rows[self.index[t]] for t in texts]).to(self.device)

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    def state_dict(self) -> dict:
        rows = torch.stack(self.rows).cpu() if self.rows else torch.zeros(0)
        return {"texts": list(self.index), "features": rows}

    def load_state_dict(self, state: dict) -> None:
        self.index = {t: i for i, t in enumerate(state["texts"])}
        self.rows = list(state["features"].to(self.device))


def y_embedding(model: VLJEPA, features: torch.Tensor) -> torch.Tensor:
    """Backbone features (n, hidden) -> Y-Encoder embeddings (n, E), unit norm (YEncoder.forward's tail)."""
    return l2_normalize(model.y_encoder.head(features))


@dataclass
class Batch:
    """One training batch: B clips with their query targets and decoder captions."""

    video: torch.Tensor  # (B, 3, T, S, S)
    caption_targets: list[str]  # answer to CAPTION_QUERY: a train caption or the label
    labels: list[str]  # canonical labels
    questions: list[str]
    answers: list[str]
    options: list[list[str]]  # each question's answer options (the answer among them)
    decoder_captions: list[str]  # what the Y-Decoder learns to write for this clip


def step_rng(seed: int, step: int, stream: int) -> np.random.Generator:
    """The random numbers of one step: independent streams for data (0) and noise (1)."""
    return np.random.default_rng([seed, step, stream])


def make_batch(cfg: ModelConfig, settings: TrainSettings, step: int) -> Batch:
    """Batch `step`: train clips step*B .. step*B+B-1, each a random window rendered like inference."""
    rng = step_rng(settings.seed, step, 0)
    spec = PreprocessSpec.from_config(cfg)
    t, size = cfg.x_encoder.num_frames, settings.render_size
    videos, rows = [], []
    for b in range(settings.batch_size):
        clip = sample_clip("train", step * settings.batch_size + b, seed=settings.seed,
                           seconds=settings.clip_seconds, fps=cfg.fps)
        start = int(rng.integers(clip.num_frames - t + 1))
        frames = [cv2.cvtColor(render_frame(clip, f, size, size), cv2.COLOR_BGR2RGB)
                  for f in range(start, start + t)]
        videos.append(video_tensor(frames, spec))
        segment = clip.segments[0]
        captions = [c["text"] for c in segment.captions("train")]
        targets = [*captions, segment.label]
        qa = segment.questions()[rng.integers(len(segment.questions()))]
        rows.append((targets[rng.integers(len(targets))], segment.label, qa["question"], qa["answer"],
                     qa["options"], captions[rng.integers(len(captions))]))
    return Batch(torch.cat(videos), *map(list, zip(*rows, strict=True)))


class StepBatches(torch.utils.data.Dataset):
    """Batch `step` for each step index: lets DataLoader workers render batches ahead of the
    optimiser (each batch depends on its step alone, so workers change nothing in the result)."""

    def __init__(self, cfg: ModelConfig, settings: TrainSettings):
        self.cfg, self.settings = cfg, settings

    def __len__(self) -> int:
        return self.settings.steps

    def __getitem__(self, step: int) -> Batch:
        return make_batch(self.cfg, self.settings, step)


def batches(cfg: ModelConfig, settings: TrainSettings, start: int, stop: int, workers: int):
    """Batches start .. stop-1 in order, rendered in `workers` processes (0: in this one)."""
    if workers == 0:
        return (make_batch(cfg, settings, step) for step in range(start, stop))
    return iter(torch.utils.data.DataLoader(
        StepBatches(cfg, settings), batch_size=None, sampler=range(start, stop), num_workers=workers,
        prefetch_factor=4, collate_fn=lambda batch: batch))


# --- losses ---------------------------------------------------------------------------------

class Temperature(nn.Module):
    """Learnable InfoNCE temperature, stored as log(1 / T) and capped at T = 0.01 (as CLIP)."""

    def __init__(self, temperature: float):
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))

    def forward(self) -> torch.Tensor:
        return self.log_scale.clamp(max=math.log(100.0)).exp()


def choice_loss(logits: torch.Tensor, answer: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Cross-entropy of picking `answer` (B,) among candidates by scaled cosine, logits (B, K): the
    task itself (classification over the label bank, discriminative VQA over the answer options).
    Returns the loss and the top-1 accuracy."""
    return F.cross_entropy(logits, answer), (logits.argmax(1) == answer).float().mean().item()


def info_nce(pred: torch.Tensor, target: torch.Tensor, texts: list[str],
             scale: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Bidirectional InfoNCE between pred (B, E) and target (B, E), both unit norm.

    Pairs whose target texts are equal (other than the diagonal) are not negatives: they are masked
    out of both softmaxes. Returns the loss and the video -> text top-1 accuracy.
    """
    logits = scale * pred @ target.T  # (B, B)
    same = torch.tensor([[a == b for b in texts] for a in texts], device=pred.device)
    logits = logits.masked_fill(same & ~torch.eye(len(texts), dtype=torch.bool, device=pred.device),
                                float("-inf"))
    labels = torch.arange(len(texts), device=pred.device)
    loss = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
    return loss, (logits.argmax(1) == labels).float().mean().item()


@dataclass
class Tokenizers:
    query: TextTokenizer  # the predictor's
    decoder: TextTokenizer  # the Y-Decoder's, [CLS] ... [SEP] within max_new_tokens + 1

    @classmethod
    def for_config(cls, cfg: ModelConfig) -> Tokenizers:
        return cls(TextTokenizer(cfg.predictor.tokenizer, cfg.predictor.max_query_len),
                   TextTokenizer(cfg.y_decoder.tokenizer, cfg.y_decoder.max_new_tokens + 1))


def noisy(embedding: torch.Tensor, max_ratio: float, rng: np.random.Generator) -> torch.Tensor:
    """Unit embeddings (n, E) plus Gaussian noise of norm ~U(0, max_ratio) each, re-normalised."""
    n, e = embedding.shape
    noise = torch.from_numpy(rng.standard_normal((n, e)).astype(np.float32)) / math.sqrt(e)
    ratio = torch.from_numpy(rng.uniform(0.0, max_ratio, size=(n, 1)).astype(np.float32))
    return l2_normalize(embedding + (ratio * noise).to(embedding.device))


def compute_loss(model: VLJEPA, temperature: Temperature, features: TextFeatures, tokenizers: Tokenizers,
                 batch: Batch, settings: TrainSettings, step: int) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of batch `step` and its parts. The model runs under bf16 autocast if set; the losses
    are computed in fp32. Five terms, weighted equally:
      caption, answer  bidirectional in-batch InfoNCE of the caption query / the question;
      label, option    the same predictions against every train label / the question's answer options;
      decoder          the Y-Decoder's teacher-forced cross-entropy on noisy (or predicted) embeddings.
    """
    b = batch.video.shape[0]
    device = next(model.parameters()).device
    rng = step_rng(settings.seed, step, 1)
    query_ids, query_mask = (t.to(device) for t in
                             encode_texts(tokenizers.query, [CAPTION_QUERY] * b + batch.questions, "query"))
    tokens, token_mask = (t.to(device) for t in  # (B, Ld)
                          encode_texts(tokenizers.decoder, batch.decoder_captions, "caption"))
    labels = train_labels()
    options = sorted({o for opts in batch.options for o in opts})
    texts = [*batch.caption_targets, *batch.answers, *batch.decoder_captions, *labels, *options]
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=settings.bf16):
        visual = model.x_encoder(batch.video.to(device, non_blocking=True))  # (B, N, Dx)
        # (2B, E): the caption query's predictions, then the questions'
        pred = model.predictor(visual.repeat(2, 1, 1), query_ids, query_mask).float()
        y = y_embedding(model, features(texts)).float()  # (3B + K + O, E)
        decoder_in = noisy(y[2 * b:3 * b].detach(), settings.decoder_noise, rng)  # (B, E)
        if step >= settings.decoder_on_predicted * settings.steps:
            decoder_in = torch.cat([pred[:b // 2].detach(), decoder_in[b // 2:]])
        logits = model.y_decoder(decoder_in, tokens[:, :-1]).float()  # (B, Ld-1, V): row i predicts token i+1
    scale = temperature()
    caption_loss, caption_acc = info_nce(pred[:b], y[:b], batch.caption_targets, scale)
    answer_loss, answer_acc = info_nce(pred[b:], y[b:2 * b], batch.answers, scale)

    y_labels, y_options = y[3 * b:3 * b + len(labels)], y[3 * b + len(labels):]  # (K, E), (O, E)
    label_index = {label: i for i, label in enumerate(labels)}
    label_loss, label_acc = choice_loss(scale * pred[:b] @ y_labels.T, torch.tensor(
        [label_index[label] for label in batch.labels], device=device))
    k = max(len(opts) for opts in batch.options)
    rows = torch.tensor([[options.index(o) for o in opts] + [0] * (k - len(opts)) for opts in batch.options],
                        device=device)
    valid = torch.tensor([[True] * len(opts) + [False] * (k - len(opts)) for opts in batch.options],
                         device=device)
    option_logits = scale * (y_options[rows] @ pred[b:, :, None])[..., 0]  # (B, k)
    option_loss, option_acc = choice_loss(option_logits.masked_fill(~valid, float("-inf")),
                                          torch.tensor([opts.index(a) for opts, a in
                                                        zip(batch.options, batch.answers, strict=True)],
                                                       device=device))

    targets = tokens[:, 1:].masked_fill(token_mask[:, 1:] == 0, -100)
    decoder_loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
    loss = caption_loss + answer_loss + label_loss + option_loss + decoder_loss
    return loss, {"loss": loss.item(), "caption": caption_loss.item(), "answer": answer_loss.item(),
                  "label": label_loss.item(), "option": option_loss.item(), "decoder": decoder_loss.item(),
                  "caption_acc": caption_acc, "answer_acc": answer_acc, "label_acc": label_acc,
                  "option_acc": option_acc, "temperature": 1.0 / scale.item()}


def lr_at(step: int, s: TrainSettings) -> float:
    """Linear warm-up to `lr`, then cosine decay to lr * min_lr_ratio at `steps`."""
    if step < s.warmup:
        return s.lr * (step + 1) / s.warmup
    progress = (step - s.warmup) / max(1, s.steps - s.warmup)
    return s.lr * (s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


# --- model parts ----------------------------------------------------------------------------

def trained_modules(model: VLJEPA) -> dict[str, list[nn.Module]]:
    """What the optimiser updates (everything but the frozen Y-Encoder backbone), in two groups whose
    gradients are clipped apart: the decoder's cross-entropy has much larger gradients than InfoNCE."""
    return {"embedding": [model.x_encoder, model.predictor, model.y_encoder.head],
            "decoder": [model.y_decoder]}


def checkpoint_module(model: VLJEPA) -> nn.Module:
    """A view of `model` whose state_dict is what a checkpoint stores (full VLJEPA key names):
    all of it except a MiniLM backbone, which edge_vljepa.pretrained loads from its package."""
    if not uses_minilm(model.cfg):
        return model
    view, y_encoder = nn.Module(), nn.Module()
    y_encoder.head = model.y_encoder.head
    view.x_encoder, view.predictor, view.y_encoder, view.y_decoder = (
        model.x_encoder, model.predictor, y_encoder, model.y_decoder)
    return view


def new_model(cfg: ModelConfig, seed: int) -> VLJEPA:
    """Random init from `seed`, MiniLM's real weights in the Y-Encoder backbone when it is MiniLM."""
    model = build_model(cfg, seed=seed)
    if uses_minilm(cfg):
        load_minilm(model)
    model.y_encoder.backbone.requires_grad_(False)
    return model


def centre_y_encoder(model: VLJEPA, features: TextFeatures) -> None:
    """Set the Y-Encoder head's bias so that it maps the mean backbone feature of the world's labels
    and answers to 0. Mean-pooled MiniLM features share a large common direction (the labels' pairwise
    cosine is ~0.96 through a random head), which would leave InfoNCE almost nothing to separate."""
    texts = world_labels() + sorted({option for options in ANSWER_OPTIONS.values() for option in options})
    with torch.no_grad():
        head = model.y_encoder.head
        head.bias.copy_(-head.weight @ features(texts).mean(0))


def make_optimizer(model: VLJEPA, temperature: Temperature, s: TrainSettings) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices only; the Y-Encoder head at `y_head_lr_scale` times
    the learning rate (each group's `lr_scale`)."""
    head = set(model.y_encoder.head.parameters())
    params = [p for group in trained_modules(model).values() for m in group for p in m.parameters()
              if p not in head]
    return torch.optim.AdamW([
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": s.weight_decay, "lr_scale": 1.0},
        {"params": [p for p in params if p.ndim < 2] + list(temperature.parameters()), "weight_decay": 0.0,
         "lr_scale": 1.0},
        {"params": list(head), "weight_decay": 0.0, "lr_scale": s.y_head_lr_scale},
    ], lr=s.lr, betas=(0.9, 0.98))


# --- the run --------------------------------------------------------------------------------

@dataclass
class TrainResult:
    model: VLJEPA
    step: int  # steps completed
    seconds: float  # wall time of this invocation
    history: list[dict[str, float]] = field(default_factory=list)  # per step of this invocation


def _save_run(path: Path, model: VLJEPA, temperature: Temperature, optimizer, features: TextFeatures,
              step: int, cfg: ModelConfig, settings: TrainSettings) -> None:
    state = {"step": step, "config": cfg.to_dict(), "settings": dataclasses.asdict(settings),
             "model": checkpoint_module(model).state_dict(), "temperature": temperature.state_dict(),
             "optimizer": optimizer.state_dict(), "text_features": features.state_dict()}
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a crash while saving never leaves a half-written checkpoint


def read_run(out: Path, device: str = "cpu") -> dict:
    """The run checkpoint in `out` (for --resume), its tensors on `device`; TrainError if there is none."""
    path = out / CHECKPOINT
    if not path.is_file():
        raise TrainError(f"--resume: no {CHECKPOINT} in {out}; start without --resume")
    return torch.load(path, weights_only=True, map_location=device)


def settings_from_dict(d: dict) -> TrainSettings:
    return TrainSettings(**{**d, "clip_seconds": tuple(d["clip_seconds"])})


def train(cfg: ModelConfig, settings: TrainSettings, out: Path | None = None, resume: bool = False,
          minutes: float | None = None, until: int | None = None, export: Path | None = None,
          checkpoint_every: int = 100, progress: bool = True, device: str = "cpu",
          workers: int = 0) -> TrainResult:
    """Train (or continue) a run; see the module docstring. Stops at `settings.steps`, at step
    `until`, or when `minutes` have passed, saving RUN_DIR/checkpoint.pt (if `out`) and `export`.
    `device` runs the model there (cpu or cuda); `workers` render batches in that many processes."""
    settings.check(cfg)
    if resume and out is None:
        raise TrainError("--resume needs --out RUN_DIR")
    model = new_model(cfg, settings.seed).train().to(device)
    temperature = Temperature(settings.temperature).to(device)
    optimizer = make_optimizer(model, temperature, settings)
    features, tokenizers = TextFeatures(model), Tokenizers.for_config(cfg)
    step = 0
    if not resume:
        centre_y_encoder(model, features)
    else:
        state = read_run(out, device)
        if state["config"] != cfg.to_dict() or settings_from_dict(state["settings"]) != settings:
            raise TrainError(f"--resume: {out / CHECKPOINT} belongs to another preset or settings")
        checkpoint_module(model).load_state_dict(state["model"])
        temperature.load_state_dict(state["temperature"])
        optimizer.load_state_dict(state["optimizer"])
        features.load_state_dict(state["text_features"])
        step = state["step"]
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    stop = min(settings.steps, until if until is not None else settings.steps)
    start_time = time.perf_counter()
    history = []
    bar = tqdm(total=stop, initial=step, desc="train", unit="step", disable=not progress, dynamic_ncols=True)
    for batch in batches(cfg, settings, step, stop, workers):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, settings) * group["lr_scale"]
        loss, metrics = compute_loss(model, temperature, features, tokenizers, batch, settings, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for group in trained_modules(model).values():
            torch.nn.utils.clip_grad_norm_([p for m in group for p in m.parameters()], 1.0)
        optimizer.step()
        step += 1
        history.append({"step": step, "lr": optimizer.param_groups[0]["lr"], **metrics})
        bar.update(1)
        bar.set_postfix(loss=f"{metrics['loss']:.2f}", label=f"{metrics['label_acc']:.2f}",
                        vqa=f"{metrics['option_acc']:.2f}", dec=f"{metrics['decoder']:.2f}")
        out_of_time = minutes is not None and time.perf_counter() - start_time > minutes * 60
        if out is not None and (step % checkpoint_every == 0 or step == stop or out_of_time):
            _save_run(out / CHECKPOINT, model, temperature, optimizer, features, step, cfg, settings)
        if out_of_time:
            break
    bar.close()
    model.eval().cpu()
    if export is not None:
        export.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(checkpoint_module(model), export, cfg, steps=str(step),
                        settings=json.dumps(dataclasses.asdict(settings)))
        (export.parent / "labels.txt").write_text("\n".join(world_labels()) + "\n")
    return TrainResult(model, step, time.perf_counter() - start_time, history)


# --- CLI ------------------------------------------------------------------------------------

SETTING_HELP = {
    "steps": "training steps: the length of the cosine schedule",
    "batch_size": "clips per step",
    "lr": "peak learning rate (AdamW)",
    "min_lr_ratio": "final learning rate as a fraction of --lr",
    "warmup": "linear warm-up steps",
    "weight_decay": "AdamW weight decay on weight matrices",
    "y_head_lr_scale": "learning-rate multiplier of the Y-Encoder head (a fast head collapses the targets)",
    "temperature": "initial InfoNCE temperature (learnable)",
    "decoder_noise": "maximum noise-to-signal ratio added to the Y-Decoder's input embeddings",
    "decoder_on_predicted": "fraction of the schedule after which half of the Y-Decoder's inputs are "
                            "predicted embeddings",
    "render_size": "render frames at this size (px) before preparing them to the model's img_size",
    "clip_seconds": "clip length range in seconds (MIN MAX); each step uses a random window",
    "bf16": "bfloat16 autocast for the forward pass (1 = on, 0 = off); the loss is computed in fp32",
    "seed": "seed of the data, the initialisation and the noise",
}


def _switch(text: str) -> bool:
    if text not in ("0", "1"):
        raise argparse.ArgumentTypeError(f"expected 0 or 1, got {text!r}")
    return text == "1"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m edge_vljepa.train", formatter_class=HelpFormatter,
        description="Train a VL-JEPA preset on the synthetic world's train split (bidirectional InfoNCE "
                    "on captions and answers, frozen MiniLM Y-Encoder, noisy-embedding Y-Decoder). "
                    "Settings left out on --resume are taken from the run's checkpoint.")
    p.add_argument("--preset", default="default", choices=list(PRESETS), help="model preset")
    for f in dataclasses.fields(TrainSettings):
        default = getattr(TrainSettings(), f.name)
        option, shown = f"--{f.name.replace('_', '-')}", default
        if isinstance(default, tuple):  # clip_seconds
            p.add_argument(option, type=float, nargs=2, metavar=("MIN", "MAX"), default=argparse.SUPPRESS)
            shown = " ".join(map(str, default))
        elif isinstance(default, bool):
            p.add_argument(option, type=_switch, metavar="{0,1}", default=argparse.SUPPRESS)
            shown = int(default)
        else:
            p.add_argument(option, type=type(default), default=argparse.SUPPRESS)
        p._actions[-1].help = f"{SETTING_HELP[f.name]} (default: {shown})"
    p.add_argument("--out", type=Path, help="run directory for resumable checkpoints")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly")
    p.add_argument("--checkpoint-every", type=int, default=100, help="steps between run checkpoints")
    p.add_argument("--minutes", type=float, help="time budget: stop (with a checkpoint) when it is spent")
    p.add_argument("--until", type=int, help="stop at this step (continue later with --resume)")
    p.add_argument("--export", type=Path,
                   help="write the trained model here (.safetensors) and labels.txt beside it")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="where the model trains; a GPU run renders its batches with --workers processes")
    p.add_argument("--workers", type=int, default=0,
                   help="processes that render batches ahead of the optimiser (0: render in this one; "
                        "on a 2-core CPU-only machine 0 is right)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads; on a shared 2-core machine 1 is fastest (2 threads next to any "
                        "other busy process were 5-20x slower per step, measured)")
    return p


def resolve_settings(args: argparse.Namespace) -> TrainSettings:
    """Settings given on the command line over the defaults, or over the checkpoint's on --resume
    (where a given setting must equal the checkpoint's)."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainSettings)
             if hasattr(args, f.name)}
    if "clip_seconds" in given:
        given["clip_seconds"] = tuple(given["clip_seconds"])
    if not args.resume:
        return TrainSettings(**given)
    stored = settings_from_dict(read_run(args.out)["settings"])
    differ = [f"--{k.replace('_', '-')} {v} (checkpoint: {getattr(stored, k)})"
              for k, v in given.items() if getattr(stored, k) != v]
    if differ:
        raise TrainError("--resume continues the run with its own settings; these differ: "
                         + ", ".join(differ))
    return stored


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.resume and args.out is None:
            raise TrainError("--resume needs --out RUN_DIR")
        if args.checkpoint_every <= 0 or (args.minutes is not None and args.minutes <= 0):
            raise TrainError("--checkpoint-every and --minutes must be > 0")
        if args.workers < 0:
            raise TrainError(f"--workers must be >= 0, got {args.workers}")
        if args.device == "cuda" and not torch.cuda.is_available():
            raise TrainError("--device cuda: this torch build sees no CUDA GPU; train with --device cpu")
        cfg = get_preset(args.preset)
        settings = resolve_settings(args)
        settings.check(cfg)
    except (TrainError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    counts = parameter_counts(build_model(cfg))
    print(f"preset {cfg.name}: " + ", ".join(f"{k} {v['total'] / 1e6:.2f}M" for k, v in counts.items())
          + (" (y_encoder backbone: frozen all-MiniLM-L6-v2)" if uses_minilm(cfg) else ""))
    print("settings: " + " ".join(f"{k}={v}" for k, v in dataclasses.asdict(settings).items()))
    print(f"run: out={args.out} resume={args.resume} minutes={args.minutes} until={args.until} "
          f"export={args.export} threads={args.threads} device={args.device} workers={args.workers}")
    result = train(cfg, settings, args.out, args.resume, args.minutes, args.until, args.export,
                   args.checkpoint_every, device=args.device, workers=args.workers)
    last = result.history[-20:]
    mean = {k: sum(h[k] for h in last) / len(last) for k in last[0]} if last else {}
    print(f"done: step {result.step}/{settings.steps} in {result.seconds / 60:.1f} min")
    if last:
        print(f"mean of the last {len(last)} steps: "
              + ", ".join(f"{k} {v:.3f}" for k, v in mean.items() if k not in ("step", "lr")))
    if args.export:
        print(f"exported {args.export} and {args.export.parent / 'labels.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
