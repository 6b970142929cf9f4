"""`python -m runtimes.stream` on real video files from the synthetic world, tiny preset, PyTorch backend."""

from __future__ import annotations

import io
import json

import pytest

from edge_vljepa.config import get_preset
from edge_vljepa.data.video import VideoFile
from edge_vljepa.data.world import sample_stream
from edge_vljepa.data.write import write_video
from edge_vljepa.models import build_model
from edge_vljepa.streaming import Event, read_events
from edge_vljepa.weights import save_checkpoint
from runtimes.stream import LiveView, main

CFG = get_preset("tiny")


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    out = tmp_path_factory.mktemp("video")
    path, _ = write_video(sample_stream("test", 0, seed=3, minutes=0.25), out, 64, 48, fmt="avi")
    return path


@pytest.fixture(scope="module")
def labels(tmp_path_factory):
    path = tmp_path_factory.mktemp("labels") / "labels.txt"
    path.write_text("red circle moving left\nblue square rotating\n\ngreen star growing\n")
    return path


def run(capsys, *argv):
    code = main([*map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("policy", ["uniform", "offline_segments", "online", "changepoint"])
def test_stream_writes_one_event_per_window_and_a_summary(capsys, tmp_path, video, labels, policy):
    events = tmp_path / "events.jsonl"
    code, out, err = run(capsys, "--video", video, "--preset", "tiny", "--policy", policy, "--labels", labels,
                         "--events", events, "--stride", 2, "--top-k", 2)
    assert code == 0, err
    source = VideoFile(video)
    last_t = (source.frame_count - 1) / source.fps  # 8 fps source, 4 fps model grid from t = 0
    model_frames = int(last_t * CFG.fps + 1e-6) + 1
    expected_windows = (model_frames - CFG.x_encoder.num_frames) // 2 + 1
    got = read_events(events)
    windows = [e for e in got if e.span is None or policy != "offline_segments"]
    assert len([e for e in got if not (policy == "offline_segments" and e.decode)]) == expected_windows
    assert all(len(e.topk) == 2 and e.topk[0][0] in labels.read_text() for e in windows)
    decodes = [e for e in got if e.decode]
    assert decodes and all(isinstance(e.text, str) for e in decodes)
    if policy == "uniform":  # 1 Hz on windows every 0.5 s
        assert len(decodes) == len(windows[::2])
    if policy == "offline_segments":
        assert len(decodes) == max(1, round(0.35 * (windows[-1].time - windows[0].time)))
    assert f"windows      {expected_windows}" in out and "real-time factor" in out
    assert "policy    " + policy in out
    for line in events.read_text().splitlines():
        assert set(json.loads(line)) >= {"time", "topk", "decode", "text", "ms"}


def test_selective_encoding_reuses_embeddings_and_keeps_every_window(capsys, tmp_path, video, labels):
    full, skipped = tmp_path / "full.jsonl", tmp_path / "skipped.jsonl"
    common = ["--video", video, "--preset", "tiny", "--policy", "uniform", "--labels", labels, "--quiet"]
    assert run(capsys, *common, "--events", full)[0] == 0
    # stable 1.9: every encoded window "holds", so the gate reuses up to max_skip windows in a row
    code, out, err = run(capsys, *common, "--events", skipped, "--max-skip", 2, "--skip-stable", 1.9,
                         "--skip-pixel", 1)
    assert code == 0, err
    a, b = read_events(full), read_events(skipped)
    assert [e.window for e in a] == [e.window for e in b]  # every window still gives an event
    pattern = "".join("R" if e.reused else "E" for e in b)
    assert pattern.startswith("EERERRE") and "RRR" not in pattern
    assert "skip      max_skip 2, stable 1.9, pixel 1: a change is seen at most 1 s late" in out
    assert f"{pattern.count('R')} reused (x_encoder on {pattern.count('E')})" in out
    code, _, err = run(capsys, *common, "--max-skip", -1)
    assert code == 2 and "max_skip" in err


def test_checkpoint_is_used(capsys, tmp_path, video, labels):
    ckpt = tmp_path / "tiny.safetensors"
    save_checkpoint(build_model(CFG, seed=5), ckpt, CFG)
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    common = ["--video", video, "--preset", "tiny", "--labels", labels]
    assert run(capsys, *common, "--events", a)[0] == 0
    assert run(capsys, *common, "--events", b, "--checkpoint", ckpt)[0] == 0
    assert run(capsys, *common, "--events", tmp_path / "c.jsonl")[0] == 0
    scores = [[e.topk for e in read_events(p)] for p in (a, b, tmp_path / "c.jsonl")]
    assert scores[0] != scores[1] and scores[0] == scores[2]  # the checkpoint, not chance, changed them


@pytest.mark.parametrize("make_args,message", [
    (lambda tmp, video: ["--video", tmp / "missing.mp4"], "not found"),
    (lambda tmp, video: ["--video", (tmp / "junk.mp4").write_bytes(b"x" * 1000) and tmp / "junk.mp4"],
     "cannot read"),
    (lambda tmp, video: ["--video", video, "--query", "what " * 40], "this model accepts at most 16"),
    (lambda tmp, video: ["--video", video, "--labels", tmp / "none.txt"], "label file not found"),
    (lambda tmp, video: ["--video", video, "--policy", "online", "--confirm", "0"], "confirm"),
])
def test_bad_input_is_one_clear_line(capsys, tmp_path, video, make_args, message):
    code, out, err = run(capsys, "--preset", "tiny", *make_args(tmp_path, video))
    assert code == 2
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_checkpoint_that_does_not_fit_lists_differences(capsys, tmp_path, video):
    other = get_preset("tiny").__class__.from_dict({**CFG.to_dict(), "embed_dim": 48})
    ckpt = tmp_path / "other.safetensors"
    save_checkpoint(build_model(other), ckpt, other)
    code, _, err = run(capsys, "--video", video, "--preset", "tiny", "--checkpoint", ckpt)
    assert code == 2 and "embed_dim: checkpoint 48, preset 32" in err


def test_unknown_preset_is_refused(capsys, video):
    with pytest.raises(SystemExit) as e:
        main(["--video", str(video), "--preset", "huge"])
    assert e.value.code == 2 and "invalid choice: 'huge'" in capsys.readouterr().err


def test_video_that_breaks_mid_stream_keeps_events(capsys, tmp_path, video):
    broken = tmp_path / "broken.avi"
    data = video.read_bytes()
    broken.write_bytes(data[: len(data) * 2 // 3])
    events = tmp_path / "events.jsonl"
    code, out, _ = run(capsys, "--video", broken, "--preset", "tiny", "--policy", "offline_segments",
                       "--events", events)
    assert code == 1 and "broke mid-stream" in out
    kept = read_events(events)
    assert len([e for e in kept if not e.decode]) > 5 and any(e.decode for e in kept)  # offline decodes ran


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_live_view_redraws_one_status_line_on_a_terminal():
    out = FakeTerminal()
    view = LiveView(out)
    for i in range(50):
        decode = i == 30
        view(Event(0.5 * i, i, 0.0, 1.0, [("red circle", 0.9)], decode=decode,
                   text="a red circle" if decode else None))
    view.clear()
    status, decode_text, status_after = out.getvalue().split("\n")  # the decode overwrites the status line
    assert status.count("\r") == 31 and "window 29" in status and "window 30" not in status
    assert status.endswith("\r\x1b[K   15.00s  red circle 0.90")
    assert decode_text.strip() == ">> 'a red circle'"
    assert status_after.count("\r") == 20 and status_after.endswith("\r\x1b[K")  # 19 windows, cleared


# --- faults a new user hit (issue 22) --------------------------------------------------------------

@pytest.fixture(autouse=True)
def label_cache(tmp_path, monkeypatch):
    """Every test gets its own label-bank cache (runtimes.label_banks), never the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def one_error_line(code, err, message, status=2):
    assert code == status, err
    assert err.startswith("error: ") and message in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err


def test_events_never_overwrite_the_input_or_an_existing_file(capsys, tmp_path, video):
    copy = tmp_path / "clip.avi"
    copy.write_bytes(video.read_bytes())
    size = copy.stat().st_size
    code, _, err = run(capsys, "--video", copy, "--preset", "tiny", "--events", copy)
    one_error_line(code, err, "is the input")
    (tmp_path / "link.avi").symlink_to(copy)
    code, _, err = run(capsys, "--video", tmp_path / "link.avi", "--preset", "tiny", "--events", copy)
    one_error_line(code, err, "is the input")
    assert copy.stat().st_size == size  # the video is intact

    events = tmp_path / "events.jsonl"
    events.write_text("precious\n")
    code, _, err = run(capsys, "--video", video, "--preset", "tiny", "--events", events)
    one_error_line(code, err, "exists; choose another path or pass --force")
    assert events.read_text() == "precious\n"
    code, _, err = run(capsys, "--video", video, "--preset", "tiny", "--events", events, "--force")
    assert code == 0, err
    assert read_events(events)


@pytest.mark.parametrize("where,message", [
    (lambda tmp: tmp / "missing" / "events.jsonl", "does not exist"),
    (lambda tmp: tmp, "is a directory"),
    (lambda tmp: (tmp / "file").write_text("x") and tmp / "file" / "events.jsonl", "is a file, not a folder"),
])
def test_events_path_that_cannot_be_written_fails_before_any_work(capsys, tmp_path, video, monkeypatch, where,
                                                                   message):
    import runtimes.stream
    monkeypatch.setattr(runtimes.stream, "reference_model", lambda args: pytest.fail("the model was loaded"))
    code, _, err = run(capsys, "--video", video, "--preset", "tiny", "--events", where(tmp_path))
    one_error_line(code, err, message)


def test_events_in_a_read_only_folder_fails_before_any_work(capsys, tmp_path, video, monkeypatch):
    import os

    import runtimes.stream
    monkeypatch.setattr(runtimes.stream, "reference_model", lambda args: pytest.fail("the model was loaded"))
    folder = tmp_path / "ro"
    folder.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: str(p) != str(folder) and real_access(p, mode))
    code, _, err = run(capsys, "--video", video, "--preset", "tiny", "--events", folder / "e.jsonl")
    one_error_line(code, err, "is not writable")


def test_a_video_shorter_than_one_window_warns_and_has_its_own_status(capsys, tmp_path):
    import cv2
    import numpy as np
    short = tmp_path / "short.avi"
    writer = cv2.VideoWriter(str(short), cv2.VideoWriter_fourcc(*"MJPG"), 8.0, (64, 48))
    for _ in range(4):  # 0.5 s; a tiny window is 4 frames at 4 fps = 1 s
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    code, out, err = run(capsys, "--video", short, "--preset", "tiny")
    assert code == 3
    assert "the video is shorter than one window of 1 s" in err
    assert "windows      0" in out and "real-time factor" not in out


def test_segments_is_validated_like_the_other_numbers(capsys, video):
    for value in (0, -3):
        code, _, err = run(capsys, "--video", video, "--preset", "tiny", "--policy", "offline_segments",
                           "--segments", value)
        one_error_line(code, err, "n_segments")


def test_label_file_errors_name_the_file(capsys, tmp_path, video):
    latin = tmp_path / "labels-latin1.txt"
    latin.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    code, _, err = run(capsys, "--video", video, "--preset", "tiny", "--labels", latin)
    one_error_line(code, err, f"label file {latin} is not UTF-8")
    code, _, err = run(capsys, "--video", video, "--preset", "tiny", "--labels", tmp_path)
    one_error_line(code, err, f"--labels {tmp_path} is a directory")


def test_out_of_vocabulary_words_are_named(capsys, video, labels):
    code, _, err = run(capsys, "--video", video, "--preset", "tiny", "--labels", labels,
                       "--query", "what is the zebra juggling?")
    assert code == 0, err
    assert "warning: the query has words the predictor does not know: 'zebra', 'juggling'" in err
    code, out, err = run(capsys, "--video", video, "--preset", "tiny", "--labels", labels)
    assert code == 0, err
    assert "query     'what is happening?' ('happening' reads as [UNK], as the model was trained with " in out
    assert "warning" not in err
    labels_oov = labels.parent / "labels-oov.txt"
    labels_oov.write_text("red circle\n\U0001f993 zebra\n")
    code, _, err = run(capsys, "--video", video, "--preset", "tiny", "--labels", labels_oov)
    assert code == 0, err
    assert "warning: 1 label(s) have words the Y-Encoder reads as [UNK]: '\U0001f993' in" in err


def test_a_crop_that_keeps_less_than_half_is_said_once(capsys, tmp_path, labels):
    wide, _ = write_video(sample_stream("test", 0, seed=3, minutes=0.05), tmp_path, 256, 32, fmt="avi")
    code, _, err = run(capsys, "--video", wide, "--preset", "tiny", "--labels", labels)
    assert code == 0, err
    assert err.count("centre crop keeps 12% of each frame's width") == 1


def test_help_shows_each_default_once_and_true(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "(default: None)" not in out and "(default: False)" not in out
    flags = out.split("\n  -")[1:]
    assert all(flag.count("(default") <= 1 for flag in flags)  # never twice per flag
    assert "(default: 3)" in out  # --top-k
    assert "exit status" in out.lower() and "3" in out


def test_ctrl_c_while_starting_exits_quietly_with_130(capsys, video, monkeypatch):
    import runtimes.stream

    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(runtimes.stream, "reference_model", interrupted)
    code, _, err = run(capsys, "--video", video, "--preset", "tiny")
    assert code == 130 and "Traceback" not in err


def test_the_reference_label_bank_is_cached_between_runs(capsys, tmp_path, video, labels, monkeypatch):
    from edge_vljepa.streaming import LabelBank
    built = []
    real_build = LabelBank.build.__func__
    monkeypatch.setattr(LabelBank, "build",
                        classmethod(lambda cls, *a, **k: built.append(1) or real_build(cls, *a, **k)))
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert run(capsys, "--video", video, "--preset", "tiny", "--labels", labels, "--events", first)[0] == 0
    assert built == [1]
    assert list((tmp_path / "cache" / "edge-vljepa" / "label-banks").glob("*.npz"))
    assert run(capsys, "--video", video, "--preset", "tiny", "--labels", labels, "--events", second)[0] == 0
    assert built == [1]  # the second run did not embed the labels again
    assert [e.topk for e in read_events(first)] == [e.topk for e in read_events(second)]
    labels2 = tmp_path / "labels2.txt"
    labels2.write_text(labels.read_text() + "yellow triangle\n")
    assert run(capsys, "--video", video, "--preset", "tiny", "--labels", labels2)[0] == 0
    assert built == [1, 1]  # other labels: another bank
