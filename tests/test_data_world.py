"""Tests of the synthetic video world (edge_vljepa/data): determinism, split rules, annotations,
rendering that matches the scene model, video files that read back, nuisance-only stretches, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import cv2
import numpy as np
import pytest

from edge_vljepa.data import world
from edge_vljepa.data.__main__ import main
from edge_vljepa.data.render import COLOUR_BGR, SKIN_BGR, render_clean, render_frame, render_video
from edge_vljepa.data.world import (
    ACTIONS,
    CAPTION_TEMPLATES,
    COLOURS,
    HELD_OUT_COMBOS,
    NUISANCES,
    SHAPES,
    sample_clip,
    sample_stream,
)
from edge_vljepa.data.write import write_video

FPS = 8.0


def clips(split: str, count: int, **kw) -> list[world.Video]:
    return [sample_clip(split, i, seed=0, fps=FPS, **kw) for i in range(count)]


def clip_with(split: str, predicate, **kw) -> world.Video:
    """The first clip of `split` whose segment satisfies `predicate`."""
    for i in range(500):
        video = sample_clip(split, i, seed=0, fps=FPS, **kw)
        if predicate(video.segments[0]):
            return video
    raise AssertionError("no such clip in the first 500")


@pytest.fixture(scope="module")
def stream() -> world.Video:
    return sample_stream("test", 0, seed=0, minutes=1.0, fps=FPS, nuisance=NUISANCES, stretch_prob=1.0)


# --- determinism -----------------------------------------------------------------------------------

def test_same_seed_same_video_and_pixels():
    a, b = sample_clip("train", 3, seed=7), sample_clip("train", 3, seed=7)
    assert a == b
    np.testing.assert_array_equal(render_video(a), render_video(b))
    assert sample_clip("train", 3, seed=8) != a
    assert sample_clip("train", 4, seed=7) != a
    assert sample_clip("validation", 3, seed=7) != a
    assert sample_stream("test", 1, minutes=0.5) == sample_stream("test", 1, minutes=0.5)


def test_frames_render_in_any_order(stream):
    frames = [40, 3, 200, 3]
    first = [render_frame(stream, f) for f in frames]
    again = [render_frame(stream, f) for f in reversed(frames)][::-1]
    for x, y in zip(first, again, strict=True):
        np.testing.assert_array_equal(x, y)


# --- split rules -----------------------------------------------------------------------------------

def test_held_out_combos_are_valid_and_leave_every_attribute_in_train():
    validation, test = HELD_OUT_COMBOS["validation"], HELD_OUT_COMBOS["test"]
    assert not validation & test
    for colour, shape, action in validation | test:
        assert colour in COLOURS and shape in SHAPES and action in ACTIONS
        assert action != "stay_still"
        assert not (action == "rotate" and shape in world.ROTATION_INVARIANT)
    for colour in COLOURS:
        assert any(world.combo_allowed("train", colour, s, a) for s in SHAPES for a in ACTIONS)
    for action in ACTIONS:
        assert sum(world.combo_allowed("train", c, s, action) for c in COLOURS for s in SHAPES) > 40


@pytest.mark.parametrize("split", world.SPLITS)
def test_splits_respect_held_out_combos_and_templates(split):
    videos = clips(split, 80) + [sample_stream(split, i, minutes=0.5) for i in range(2)]
    others = set().union(*(c for s, c in HELD_OUT_COMBOS.items() if s != split))
    own = HELD_OUT_COMBOS.get(split, frozenset())
    seen_own = False
    for video in videos:
        for segment in video.segments:
            combo = (segment.subject.colour, segment.subject.shape, segment.action)
            assert combo not in others
            seen_own |= combo in own
            templates = {c["template"] for c in segment.captions(split)}
            assert templates == {i for i, t in enumerate(CAPTION_TEMPLATES) if split in t.splits}
    assert seen_own == (split != "train")
    held_out_templates = {i for i, t in enumerate(CAPTION_TEMPLATES) if "train" not in t.splits}
    assert held_out_templates and not held_out_templates & set(world.caption_templates("train"))
    assert set(world.caption_templates("test")) - set(world.caption_templates("train"))


# --- annotations -----------------------------------------------------------------------------------

def test_stream_segments_tile_the_video_and_annotations_match(stream):
    ann = world.annotation(stream)
    segments = ann["segments"]
    assert segments[0]["start_frame"] == 0 and segments[-1]["end_frame"] == ann["num_frames"]
    assert ann["duration"] >= 60.0
    for prev, seg in zip(segments, segments[1:], strict=False):
        assert seg["start_frame"] == prev["end_frame"]
    for seg, segment in zip(segments, stream.segments, strict=True):
        length = seg["end"] - seg["start"]
        assert seg["start"] == seg["start_frame"] / FPS and seg["end"] == seg["end_frame"] / FPS
        assert 2.0 <= length <= min(10.0, ACTIONS[seg["action"]].max_seconds)
        subject = seg["subject"]
        assert seg["label"].startswith(f"{subject['colour']} {subject['shape']} ")
        assert seg["label"] == segment.label and seg["num_objects"] == 1 + len(seg["others"])
        for caption in seg["captions"]:
            assert subject["colour"] in caption["text"] and subject["shape"] in caption["text"]
        answers = {q["type"]: q["answer"] for q in seg["questions"]}
        assert answers["colour"] == subject["colour"] and answers["shape"] == subject["shape"]
        assert answers["count"] == world.COUNT_WORDS[seg["num_objects"] - 1]
        assert answers["action"] == ACTIONS[seg["action"]].label
        assert answers.get("direction") == ACTIONS[seg["action"]].direction
        for q in seg["questions"]:
            assert q["answer"] in q["options"]
        colours = [subject["colour"]] + [o["colour"] for o in seg["others"]]
        shapes = [subject["shape"]] + [o["shape"] for o in seg["others"]]
        assert len(set(colours)) == len(colours) and len(set(shapes)) == len(shapes)  # questions unambiguous
    json.dumps(ann)


def test_scene_persists_between_segments(stream):
    """Within a scene, every object a segment starts with is where the previous segment left it."""
    for prev, segment in zip(stream.segments, stream.segments[1:], strict=False):
        if segment.scene != prev.scene:
            continue
        before = {o.thing: (o.pose.x, o.pose.y, o.pose.radius) for o in prev.others}
        if not ACTIONS[prev.action].removes:
            before[prev.subject] = (prev.end.x, prev.end.y, prev.end.radius)
        after = {o.thing: (o.pose.x, o.pose.y, o.pose.radius) for o in segment.others}
        if not ACTIONS[segment.action].new_object:
            after[segment.subject] = (segment.start.x, segment.start.y, segment.start.radius)
        assert after == before


def test_vocabulary_covers_every_text(stream):
    vocab = set(world.vocabulary())
    assert {"slides", "spins", "hand", "?", ","} <= vocab
    for video in [stream, *clips("test", 30)]:
        for seg in world.annotation(video)["segments"]:
            texts = [seg["label"], *(c["text"] for c in seg["captions"])]
            for q in seg["questions"]:
                texts += [q["question"], *q["options"]]
            for text in texts:
                assert set(world.words(text)) <= vocab, text


# --- rendering matches the scene ---------------------------------------------------------------------

def colour_mask(img: np.ndarray, colour: str) -> np.ndarray:
    return np.abs(img.astype(int) - COLOUR_BGR[colour]).sum(axis=2) < 40


def test_rendered_motion_and_growth_follow_the_action():
    for action in ("move_left", "move_right", "move_up", "move_down", "grow", "shrink"):
        video = clip_with("train", lambda s, a=action: s.action == a, nuisance=())
        segment = video.segments[0]
        first, last = render_clean(video, 0), render_clean(video, video.num_frames - 1)
        m0, m1 = colour_mask(first, segment.subject.colour), colour_mask(last, segment.subject.colour)
        if action in ("grow", "shrink"):
            assert (m1.sum() > 1.5 * m0.sum()) == (action == "grow"), action
            continue
        dx, dy = world.DIRECTIONS[ACTIONS[action].direction]
        (y0, x0), (y1, x1) = np.argwhere(m0).mean(axis=0), np.argwhere(m1).mean(axis=0)
        assert (x1 - x0) * dx + (y1 - y0) * dy > 5, action  # pixels along the direction


def test_hand_visible_during_pick_up_and_gone_after():
    video = clip_with("train", lambda s: s.action == "pick_up", nuisance=())
    segment = video.segments[0]
    grasp = int(world.HAND_REACH_END * video.num_frames) + 1
    skin = [(np.abs(render_clean(video, f).astype(int) - SKIN_BGR).sum(axis=2) < 12).sum()
            for f in (0, grasp, video.num_frames - 1)]
    assert skin[1] > 100 and skin[0] < skin[1] and skin[2] < skin[1]
    assert colour_mask(render_clean(video, video.num_frames - 1), segment.subject.colour).sum() < 5


# --- nuisances -------------------------------------------------------------------------------------

def test_nuisances_never_change_the_meaning(stream):
    clean = sample_stream("test", 0, seed=0, minutes=1.0, fps=FPS, nuisance=(), stretch_prob=1.0)
    assert clean.segments == stream.segments and not clean.stretches
    assert stream.nuisance.enabled == NUISANCES


def test_nuisance_only_stretches_keep_the_caption(stream):
    assert len(stream.stretches) >= 2
    guard = world.STRETCH_GUARD_SECONDS * FPS
    for stretch in stream.stretches:
        segment = stream.segment_at(stretch.start_frame)
        assert segment.start_frame + guard <= stretch.start_frame
        assert stretch.start_frame < stretch.end_frame <= segment.end_frame - guard
        frames = range(stretch.start_frame - 1, stretch.end_frame + 1)  # one clean frame either side
        assert {stream.segment_at(f).label for f in frames} == {segment.label}
        captions = {json.dumps(stream.segment_at(f).captions("test")) for f in frames}
        assert len(captions) == 1
        # The stretch changes pixels, not the scene.
        f = (stretch.start_frame + stretch.end_frame) // 2
        without = replace(stream, stretches=())
        assert not np.array_equal(render_frame(stream, f), render_frame(without, f))
        np.testing.assert_array_equal(render_clean(stream, f), render_clean(without, f))
    ann = world.annotation(stream)
    for s in ann["nuisance_stretches"]:
        seg = ann["segments"][s["segment"]]
        assert seg["start"] <= s["start"] < s["end"] <= seg["end"]


# --- files -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["mp4", "avi"])
def test_written_video_reads_back(tmp_path, fmt):
    video = sample_clip("validation", 2, seconds=(2.0, 2.5), nuisance=())
    video_path, json_path = write_video(video, tmp_path, width=96, height=80, fmt=fmt)
    ann = json.loads(json_path.read_text())
    assert ann["video"] == video_path.name and (ann["width"], ann["height"]) == (96, 80)
    assert ann["num_frames"] == video.num_frames and ann["fps"] == video.fps
    capture = cv2.VideoCapture(str(video_path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    assert len(frames) == video.num_frames
    assert frames[0].shape == (80, 96, 3)
    error = np.abs(np.stack(frames).astype(int) - render_video(video, 96, 80)).mean()
    assert error < 6, error  # lossy codec, same picture


# --- CLI -------------------------------------------------------------------------------------------

def test_cli_writes_clips_and_index(tmp_path, capsys):
    out = tmp_path / "clips"
    args = ["clips", "--count", "2", "--out", str(out), "--seconds", "2", "2", "--size", "64",
            "--nuisance", "all"]
    assert main(args) == 0
    stdout = capsys.readouterr().out.splitlines()
    assert stdout[0].startswith("edge_vljepa.data command=clips") and stdout[-2].startswith("wrote 2 clips")
    index = json.loads((out / "index.json").read_text())
    assert [v["video"] for v in index["videos"]] == ["clip_000000.mp4", "clip_000001.mp4"]
    ann = json.loads((out / "clip_000001.json").read_text())
    assert ann["num_frames"] == 16 and all(ann["nuisance"][k]["enabled"] for k in NUISANCES)


@pytest.mark.parametrize("extra, message", [
    (["--count", "0"], "--count must be > 0"),
    (["--seconds", "3", "2"], "seconds must satisfy"),
    (["--size", "16"], "--size must be"),
    (["--fps", "-1"], "fps must be > 0"),
    (["--seed", "-1"], "seed and index must be >= 0"),
])
def test_cli_bad_values_are_one_line_errors(tmp_path, capsys, extra, message):
    assert main(["clips", "--out", str(tmp_path / "x"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_cli_refuses_non_empty_out_without_force(tmp_path, capsys):
    (tmp_path / "old.txt").write_text("x")
    args = ["streams", "--count", "1", "--minutes", "0.1", "--out", str(tmp_path)]
    assert main(args) == 2
    assert "pass --force" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0


def test_cli_argparse_errors_exit_2_and_vocab_prints(capsys):
    with pytest.raises(SystemExit) as e:
        main(["clips", "--out", "x", "--nuisance", "fog"])
    assert e.value.code == 2
    assert main(["vocab"]) == 0
    assert capsys.readouterr().out.split() == list(world.vocabulary())


def test_data_package_does_not_import_torch():
    code = ("import sys, edge_vljepa.data.world, edge_vljepa.data.render, edge_vljepa.data.write, "
            "edge_vljepa.data.__main__; sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
