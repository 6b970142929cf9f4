"""The task gate: what a quantized artifact costs a user, in ground-truth task metrics.

Both sides, the artifact's backend and its fp32 reference, run the same held-out clips of the
synthetic world's test split (`python -m edge_vljepa.evaluate`'s clips: written as .mp4, decoded with
OpenCV, the centre window) through the contract methods, one call at a time as a device makes them,
each side with all of its own components (its Y-Encoder embeds every text, its Y-Decoder captions):

  classification top-1                    the caption query's prediction against every class's
                                          canonical label, right when it is the clip's true class
  classification top-1, paraphrased       the same over labels in wordings never used in training
  VQA accuracy                            the option closest to predictor(video, question)
  text-to-video R@1                       each test caption ranks all clips; a hit is a clip it describes
  caption CIDEr-D                         greedy Y-Decoder caption of the prediction against the clip's
                                          test captions

Per task: both sides' scores, the drop and its paired bootstrap interval (edge_vljepa.parity,
resampling clips); the verdict uses edge_vljepa.parity.TASK_TOLERANCES. The gate means something only
for a model trained on this world with real weights: random weights or a user's own model have no
ground truth here, and their agreement measures are reported instead (the exporter says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edge_vljepa.config import CAPTION_QUERY, ModelConfig
from edge_vljepa.data.world import Segment, world_classes, world_labels
from edge_vljepa.evaluate import cider_d, paraphrased_label_sets, read_test_clip, write_test_clips
from edge_vljepa.parity import TASK_TOLERANCES, paired_bootstrap
from edge_vljepa.preprocess import component_tokenizer
from edge_vljepa.streaming import LabelBank, greedy_decode, l2_normalize, run_checked

TASKS = ("classification top-1", "classification top-1, paraphrased labels", "VQA accuracy",
         "text-to-video R@1", "caption CIDEr-D")
RELATIVE = ("caption CIDEr-D",)  # gated on the drop relative to fp32's score


@dataclass
class Clip:
    """A held-out clip as both sides see it: the X-Encoder input and what the clip shows."""

    window: np.ndarray  # (1, 3, T, S, S)
    segment: Segment

    @property
    def cls(self) -> tuple[str, str, str]:
        return self.segment.subject.colour, self.segment.subject.shape, self.segment.action


def heldout_clips(cfg: ModelConfig, count: int, workdir: Path, seed: int = 0) -> list[Clip]:
    """Test clips 0..count-1 of `seed`, written under `workdir` and read back."""
    return [Clip(read_test_clip(path, segment, cfg).video.numpy(), segment)
            for path, segment in write_test_clips(workdir, count, seed, cfg.fps)]


def task_items(backend, cfg: ModelConfig, clips: list[Clip]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per task: (per-item scores, the clip index of each item) of `backend` on `clips`."""
    query_tok = component_tokenizer(cfg, "predictor")
    decoder_tok = component_tokenizer(cfg, "y_decoder")

    def predict(visual: np.ndarray, query: str) -> np.ndarray:
        ids, mask = query_tok.encode(query, what="query")
        return run_checked(backend, "predictor", {"visual_tokens": visual, "query_ids": ids,
                                                  "query_mask": mask})["embedding"][0]

    classes, canonical = world_classes(), world_labels()
    paraphrased = list(paraphrased_label_sets().values())
    captions = [[c["text"] for c in clip.segment.captions("test")] for clip in clips]
    questions = [clip.segment.questions() for clip in clips]
    options = [o for qs in questions for qa in qs for o in qa["options"]]
    texts = list(dict.fromkeys([*canonical, *(t for s in paraphrased for t in s),
                                *(t for c in captions for t in c), *options]))
    name = getattr(backend, "name", "backend")

    def progress(ts):
        return tqdm(ts, desc=f"task texts ({name})", unit="text", leave=False)
    bank = LabelBank.build(texts, backend, component_tokenizer(cfg, "y_encoder"), progress=progress)
    row = {t: i for i, t in enumerate(texts)}

    def embed(ts: list[str]) -> np.ndarray:  # (len(ts), E), unit norm
        return bank.embeddings[[row[t] for t in ts]]

    pred, vqa, vqa_clip, decoded = [], [], [], []
    for i, clip in enumerate(tqdm(clips, desc=f"task clips ({name})", unit="clip", leave=False)):
        visual = run_checked(backend, "x_encoder", {"video": clip.window})["visual_tokens"]
        pred.append(predict(visual, CAPTION_QUERY))
        for qa in questions[i]:
            answer = int(np.argmax(embed(qa["options"]) @ predict(visual, qa["question"])))
            vqa.append(qa["options"][answer] == qa["answer"])
            vqa_clip.append(i)
        decoded.append(decoder_tok.decode(greedy_decode(backend, pred[-1], cfg.y_decoder)))
    pred = l2_normalize(np.stack(pred))  # (n, E)
    truth = np.array([classes.index(clip.cls) for clip in clips])
    index = np.arange(len(clips))
    para = [(pred @ embed(s).T).argmax(1) == truth for s in paraphrased]
    queries = [(i, t) for i, caps in enumerate(captions) for t in caps]
    owners: dict[str, set[int]] = {}  # a caption -> the clips it describes
    for i, t in queries:
        owners.setdefault(t, set()).add(i)
    found = (embed([t for _, t in queries]) @ pred.T).argmax(1)  # the top clip of each caption
    hits = [int(f) in owners[t] for f, (_, t) in zip(found, queries, strict=True)]
    return {
        "classification top-1": ((pred @ embed(canonical).T).argmax(1) == truth, index),
        "classification top-1, paraphrased labels": (np.concatenate(para), np.tile(index, len(para))),
        "VQA accuracy": (np.array(vqa), np.array(vqa_clip)),
        "text-to-video R@1": (np.array(hits), np.array([i for i, _ in queries])),
        "caption CIDEr-D": (cider_d(decoded, captions), index),
    }


def task_parity(reference_items: dict, candidate_items: dict, clips: list[Clip],
                confidence: float = TASK_TOLERANCES["interval"]) -> dict:
    """Each task's scores on both sides, the drop and its paired bootstrap interval (task_items' output)."""
    metrics = {}
    for name in TASKS:
        (ref, groups), (cand, _) = reference_items[name], candidate_items[name]
        metrics[name] = paired_bootstrap(ref, cand, groups, relative=name in RELATIVE, confidence=confidence)
    return {"clips": len(clips), "held_out_combinations": sum(c.segment.held_out for c in clips),
            "metrics": metrics}
