"""Real inputs for every contract method, recorded from the loop's own calls.

Frames come from real video files decoded by OpenCV and go through the product's own path
(resampling, windowing, preprocessing), then through a backend via the product's own calls
(predictor per query, label bank, decoder) while an `InputRecorder` keeps every method's inputs.
Int8 calibration (export/) and tensor parity (edge_vljepa.parity, runtimes.parity) both run on
what the loop really feeds each method. numpy only: no torch import.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edge_vljepa.config import CALIBRATION_QUERIES, COMPONENTS, ModelConfig
from edge_vljepa.data.video import VideoError, VideoFile
from edge_vljepa.parity import label_progress
from edge_vljepa.preprocess import PreprocessSpec, component_tokenizer, prepare_frame, to_video_tensor
from edge_vljepa.streaming import LabelBank, Resampler, WindowBuffer, greedy_decode, run_checked


def clip_windows(paths: list[Path], cfg: ModelConfig, max_windows: int) -> list[np.ndarray]:
    """Non-overlapping X-Encoder inputs (1, 3, T, S, S) from the videos, at most `max_windows`.
    Raises VideoError for an unreadable video or one shorter than a window."""
    spec = PreprocessSpec.from_config(cfg)
    windows: list[np.ndarray] = []
    for path in paths:
        resampler = Resampler(cfg.fps)
        buffer = WindowBuffer(spec.num_frames, spec.num_frames, cfg.fps)
        for t, frame in VideoFile(path):
            for k in resampler.push(t):
                window = buffer.push(k, resampler.time(k), prepare_frame(frame, spec.img_size))
                if window is not None:
                    windows.append(to_video_tensor(window.frames, spec))
            if len(windows) >= max_windows:
                return windows
    if not windows:
        raise VideoError(f"the videos are shorter than one window ({spec.num_frames} frames "
                         f"at {cfg.fps:g} fps)")
    return windows


class InputRecorder:
    """A backend wrapper that keeps a copy of every call's inputs, per method."""

    def __init__(self, backend):
        self.backend, self.contract = backend, backend.contract
        self.calls: dict[str, list[dict[str, np.ndarray]]] = defaultdict(list)

    def run(self, method: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls[method].append({k: np.array(v, copy=True) for k, v in inputs.items()})
        return self.backend.run(method, inputs)


def teacher_forced_steps(backend, embedding: np.ndarray, token_ids: list[int], cfg: ModelConfig) -> None:
    """Prefill from `embedding`, then one y_decoder_step per given token (realistic step inputs even
    when greedy decoding of an untrained decoder stops at once)."""
    d = cfg.y_decoder
    kv = run_checked(backend, "y_decoder_prefill", {"embedding": embedding[None]})["kv_cache"]
    for n, token in enumerate(token_ids[: d.max_new_tokens - 1], start=1):
        kv = run_checked(backend, "y_decoder_step", {"token": np.array([[token]], np.int64),
                                                     "position": np.array([d.prefix_len + n], np.int64),
                                                     "kv_cache": kv})["kv_cache"]


def parity_inputs(reference, cfg: ModelConfig, windows: list[np.ndarray], labels: list[str],
                  components=COMPONENTS):
    """The inputs tensor parity compares the two sides on: the loop's calls of every method on the
    first 4 windows with the calibration queries, 8 labels and 4 decodes; of those only what
    `components` read (the calls the others would need are not made)."""
    return record_inputs(reference, cfg, windows[:4], *loop_calls(components, labels[:8]))


def loop_calls(components, labels: list[str]) -> tuple[list[str], list[str], int, bool]:
    """(queries, labels, decodes, bank) for record_inputs: what `components` read, no more (an
    X-Encoder alone needs no predictor call, which dominates the paper preset's recording)."""
    queries = list(CALIBRATION_QUERIES) if {"predictor", "y_decoder"} & set(components) else []
    return queries, labels, 4 if "y_decoder" in components else 0, "y_encoder" in components


def reference_components(components) -> set[str]:
    """The components the reference runs to record and check `components` (see loop_calls): a
    predictor or decoder call needs X-Encoder (and predictor) outputs; the label bank, the Y-Encoder."""
    needed = set(components)
    if {"predictor", "y_decoder"} & needed:
        needed |= {"x_encoder", "predictor"}
    if "predictor" in needed:
        needed.add("y_encoder")
    return needed


def record_inputs(reference, cfg: ModelConfig, windows: list[np.ndarray], queries: list[str],
                  labels: list[str], decodes: int = 4,
                  bank: bool = True) -> dict[str, list[dict[str, np.ndarray]]]:
    """Run the reference over real windows the way the loop does; return each method's inputs.
    bank: embed `labels` (y_encoder calls); decodes: how many greedy + teacher-forced decodes."""
    rec = InputRecorder(reference)
    query_tok = component_tokenizer(cfg, "predictor")
    decoder_tok = component_tokenizer(cfg, "y_decoder")
    embeddings = []
    for video in tqdm(windows, desc="recording", unit="window", leave=False):
        visual = run_checked(rec, "x_encoder", {"video": video})["visual_tokens"]
        for query in queries:
            ids, mask = query_tok.encode(query, what="query")
            embeddings.append(run_checked(rec, "predictor", {
                "visual_tokens": visual, "query_ids": ids, "query_mask": mask})["embedding"][0])
    if bank:
        LabelBank.build(labels, rec, component_tokenizer(cfg, "y_encoder"), progress=label_progress)
    for i, embedding in enumerate(embeddings[:decodes]):
        greedy_decode(rec, embedding, cfg.y_decoder)
        teacher_forced_steps(rec, embedding, decoder_tok.ids(labels[i % len(labels)])[1:], cfg)
    return dict(rec.calls)
