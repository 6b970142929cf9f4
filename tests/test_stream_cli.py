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


@pytest.mark.parametrize("policy", ["uniform", "offline_segments", "online"])
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
