"""Training and task evaluation, seconds-long: a small config trains a few steps on generated clips,
its loss falls on a fixed batch, a run resumes bit-exactly, the evaluation prints its table; and the
shipped `default` model loads and beats chance on a handful of held-out test clips."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from edge_vljepa import evaluate, train
from edge_vljepa.config import get_preset
from edge_vljepa.data.world import world_labels
from edge_vljepa.pretrained import load_model, shipped_checkpoint, shipped_labels
from edge_vljepa.weights import CheckpointError, read_checkpoint


@pytest.fixture(autouse=True)
def one_thread():
    """These models are small: one thread avoids OpenMP oversubscription on a busy 2-core machine
    (measured: 5 s instead of 40+ s for this file next to another busy process)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_config():
    """The default preset's structure (world tokenizer, 2 s clips at 4 fps -> 1 s here) at toy size,
    with the tiny preset's random BERT as Y-Encoder: trains and evaluates in seconds."""
    d, t = get_preset("default"), get_preset("tiny")
    small = dict(hidden_size=48, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                 intermediate_size=96)
    return dataclasses.replace(
        d, name="small",
        x_encoder=dataclasses.replace(d.x_encoder, img_size=32, num_frames=4, embed_dim=48, depth=1,
                                      num_heads=2),
        predictor=dataclasses.replace(d.predictor, **small),
        y_encoder=dataclasses.replace(t.y_encoder, max_text_len=32),
        y_decoder=dataclasses.replace(d.y_decoder, **small),
        embed_dim=32)


# bf16 autocast pays off only at real sizes; at toy size its overhead dominates
SETTINGS = train.TrainSettings(steps=4, batch_size=6, warmup=1, render_size=48, clip_seconds=(1.0, 2.0),
                               bf16=False)


def test_loss_decreases_on_a_fixed_batch():
    cfg = small_config()
    model = train.new_model(cfg, seed=0).train()
    temperature = train.Temperature(SETTINGS.temperature)
    optimizer = train.make_optimizer(model, temperature, SETTINGS)
    features, tokenizers = train.TextFeatures(model), train.Tokenizers.for_config(cfg)
    batch = train.make_batch(cfg, SETTINGS, step=0)
    assert batch.video.shape == (6, 3, 4, 32, 32)
    losses = []
    for _ in range(15):
        loss, parts = train.compute_loss(model, temperature, features, tokenizers, batch, SETTINGS, step=0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(parts["loss"])
    assert losses[-1] < 0.7 * losses[0], losses


def test_a_resumed_run_continues_bit_exactly(tmp_path):
    cfg = small_config()
    full = train.train(cfg, SETTINGS, out=tmp_path / "a", progress=False)
    first = train.train(cfg, SETTINGS, out=tmp_path / "b", until=2, progress=False)
    assert first.step == 2 and (tmp_path / "b" / train.CHECKPOINT).is_file()
    # the rest rendered by DataLoader workers: the same batches, so the same run
    rest = train.train(cfg, SETTINGS, out=tmp_path / "b", resume=True, progress=False, workers=2)
    assert [h["loss"] for h in rest.history] == [h["loss"] for h in full.history[2:]]
    for (name, a), b in zip(full.model.state_dict().items(), rest.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(train.TrainError, match="another preset or settings"):
        train.train(cfg, dataclasses.replace(SETTINGS, lr=1e-2), out=tmp_path / "b", resume=True,
                    progress=False)


def test_export_loads_strictly_and_evaluation_prints_metrics(tmp_path, capsys):
    cfg = small_config()
    export = tmp_path / "model.safetensors"
    train.train(cfg, dataclasses.replace(SETTINGS, steps=2), export=export, progress=False)
    assert (tmp_path / "labels.txt").read_text().splitlines() == world_labels()
    model = load_model(cfg, export)

    clips = [evaluate.read_test_clip(path, segment, cfg)
             for path, segment in evaluate.write_test_clips(tmp_path / "clips", 6, seed=0, fps=cfg.fps)]
    assert clips[0].video.shape == (1, 3, 4, 32, 32)
    rows, examples = evaluate.evaluate_tasks(model, clips)
    print(evaluate.format_table(rows))
    names = {r.name for r in rows}
    assert {"classification top-1, canonical labels", "text-to-video R@5, held-out-template captions",
            "VQA accuracy, all questions", "captioning (predicted embedding): CIDEr-D"} <= names
    assert "classification top-1, paraphrased labels (template 6)" in names
    assert all(0.0 <= r.chance_all <= 1.0 for r in rows if "CIDEr" not in r.name)
    assert len(examples) == 6 and "CIDEr-D" in capsys.readouterr().out

    state, metadata = read_checkpoint(export)
    del state["predictor.head.weight"]
    save_file(state, str(tmp_path / "partial.safetensors"), metadata)
    with pytest.raises(CheckpointError, match="predictor.head.weight"):
        load_model(cfg, tmp_path / "partial.safetensors")


@pytest.mark.parametrize("argv, message", [
    (["--clips", "3"], "--clips must be >= 5"),
    (["tasks", "--preset", "tiny"], "ships no trained weights"),
])
def test_evaluate_cli_rejects_bad_input_in_one_line(argv, message, capsys):
    assert evaluate.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv, message", [
    (["--steps", "0"], "--steps must be > 0"),
    (["--resume"], "--resume needs --out"),
    (["--clip-seconds", "1", "1"], "clips must hold num_frames=8"),
])
def test_train_cli_rejects_bad_input_in_one_line(argv, message, capsys):
    assert train.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_shipped_default_model_beats_chance(tmp_path):
    """On the first 32 clips of the evaluation's test set (half of them held-out combinations) the
    shipped model scored 0.72 video -> caption top-1 (chance 1/32) and 0.82 VQA (chance 0.20)."""
    cfg = get_preset("default")
    checkpoint = shipped_checkpoint("default")
    assert checkpoint is not None and checkpoint.stat().st_size <= 25 * 2**20
    assert shipped_labels("default") == world_labels()
    model = load_model(cfg)
    clips = [evaluate.read_test_clip(path, segment, cfg)
             for path, segment in evaluate.write_test_clips(tmp_path, 32, seed=0, fps=cfg.fps)]
    embedder = evaluate.Embedder(model)
    visual = embedder.visual(clips)
    n = len(clips)
    pred = embedder.predict(visual, list(range(n)), [train.CAPTION_QUERY] * n)
    captions = embedder.texts([c.segment.captions("test")[0]["text"] for c in clips])
    assert (evaluate.top1(pred, captions) == np.arange(n)).mean() >= 0.5  # 16x chance
    questions = [(i, qa) for i, c in enumerate(clips) for qa in c.segment.questions()]
    answers = embedder.predict(visual, [i for i, _ in questions], [qa["question"] for _, qa in questions])
    correct = [qa["options"][int(evaluate.top1(a[None], embedder.texts(qa["options"]))[0])] == qa["answer"]
               for (_, qa), a in zip(questions, answers, strict=True)]
    chance = np.mean([1 / len(qa["options"]) for _, qa in questions])
    assert np.mean(correct) >= max(0.7, 3 * chance)
