"""The native core (runtimes/native, issue 16): built once per session against the installed executorch wheel;
its GoogleTest suite through ctest; the native CLI against `python -m runtimes.stream --artifacts` event by
event on the same video for each decode policy; bad input through the CLI and the ctypes binding gives an
error code and one line, never a crash. A failed build fails these tests (nothing is skipped)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edge_vljepa.streaming import DEFAULT_POLICY, policy_defaults, read_events
from runtimes.artifact import file_sha256
from runtimes.stream import main as python_stream

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def video(tmp_path_factory):
    from edge_vljepa.data.__main__ import main as data_main

    out = tmp_path_factory.mktemp("native_video")
    assert (
        data_main(
            [
                "streams",
                "--split",
                "test",
                "--count",
                "1",
                "--minutes",
                "0.25",
                "--out",
                str(out),
                "--seed",
                "3",
                "--size",
                "64",
                "--format",
                "avi",
            ]
        )
        == 0
    )
    return next(out.glob("*.avi"))


def run_cli(native, *args, **kw):
    return subprocess.run(
        [str(native["cli"]), *map(str, args)], capture_output=True, text=True, timeout=300, **kw
    )


def test_ctest_passes(native, artifact):
    env = {**os.environ, "EVJ_TEST_ARTIFACT": str(artifact)}
    r = subprocess.run(
        ["ctest", "--output-on-failure", "--test-dir", str(native["build_dir"])],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


POLICIES = {
    "uniform": ["--policy", "uniform", "--every", "1.0"],
    "online": ["--policy", "online"],
    "offline_rate": ["--policy", "offline_segments"],
    "offline_segments": ["--policy", "offline_segments", "--segments", "3"],
    # every window (stride 1, 0.25 s), so that settle_s / 2 after a lead differs: on the test video the change
    # near 9 s follows a window 0.008 from r (> lead 0.05 x 0.1) and is decoded a window sooner; the recheck
    # windows are 0.28 (decoded again) and 0.17 (not: over threshold, under recheck) from the decoded one
    "changepoint": ["--policy", "changepoint", "--stride", "1", "--settle", "0.5", "--lead", "0.05",
                    "--recheck", "0.25"],
    # selective encoding: stable 1.9 lets every encoded window hold, so the pixel test and max_skip decide
    # (and changepoint's wants_embedding where it has an answer)
    "changepoint_skip": ["--policy", "changepoint", "--max-skip", "2", "--skip-stable", "1.9"],
    # the policy's hints at the defaults: settling windows reused though the gate's own tests would
    # encode them
    "changepoint_hints": ["--policy", "changepoint", "--max-skip", "1", "--skip-stable", "0.05",
                          "--skip-pixel", "0.01"],
    "uniform_skip": ["--policy", "uniform", "--max-skip", "3", "--skip-pixel", "0.05"],
}


@pytest.mark.parametrize("policy", list(POLICIES))
def test_native_cli_gives_the_python_loops_events(native, artifact, video, tmp_path, policy, capsys):
    py, nat = tmp_path / "py.jsonl", tmp_path / "native.jsonl"
    flags = ["--artifacts", artifact, "--video", video, *POLICIES[policy]]
    assert python_stream([*map(str, flags), "--events", str(py), "--quiet"]) == 0
    r = run_cli(native, *flags, "--events", nat, "--quiet")
    assert r.returncode == 0, r.stderr
    assert "windows      " in r.stdout and "stage        p50 ms    p90 ms" in r.stdout
    a, b = read_events(py), read_events(nat)
    assert len(a) == len(b) and len(a) > 10
    assert sum(e.decode for e in a) >= 1
    for x, y in zip(a, b, strict=True):
        assert (x.time, x.window, x.start, x.end, x.decode, x.text, x.span, x.reused) == (
            y.time,
            y.window,
            y.start,
            y.end,
            y.decode,
            y.text,
            y.span,
            y.reused,
        )
        assert x.topk[0][0] == y.topk[0][0]
        assert [s for _, s in x.topk] == pytest.approx([s for _, s in y.topk], abs=1e-4)
        assert set(y.ms) <= {"preprocess", "x_encoder", "predictor", "label_bank", "y_decoder"}
    if "skip" in policy:
        assert 0 < sum(e.reused for e in b) < len(b)
    keys = ["time", "window", "start", "end", "topk", "decode", "text", "span", "ms"]
    for line in nat.read_text().splitlines():  # exactly the schema of edge_vljepa/streaming/events.py
        event = json.loads(line)
        assert list(event) == keys + (["reused"] if event.get("reused") else [])


def _copy(artifact, tmp_path, name="a"):
    out = tmp_path / name
    shutil.copytree(artifact, out)
    return out


def _manifest(path, edit):
    m = json.loads((path / "manifest.json").read_text())
    edit(m)
    (path / "manifest.json").write_text(json.dumps(m))


def test_an_artifact_without_decode_defaults_runs_the_default_policy_on_both_sides(native, artifact, video,
                                                                                   tmp_path, capsys):
    """The policy an artifact gets when its manifest names none: edge_vljepa's DEFAULT_POLICY in Python,
    Artifact::default_policy in C++ (runtimes/native/src/artifact.h): one value."""
    a = _copy(artifact, tmp_path)
    _manifest(a, lambda m: m.pop("decode_policy_defaults"))
    header = f"policy    {DEFAULT_POLICY} "
    r = run_cli(native, "--artifacts", a, "--video", video, "--quiet")
    assert r.returncode == 0, r.stderr
    assert header in r.stdout
    assert python_stream(["--artifacts", str(a), "--video", str(video), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert header in out and str(policy_defaults(DEFAULT_POLICY)["threshold"]) in out


def _tampered(a):
    with open(a / "predictor.pte", "ab") as f:
        f.write(b"x")


def _truncated(a):
    with open(a / "x_encoder.pte", "r+b") as f:
        f.truncate(1000)
    _manifest(a, lambda m: m["files"]["x_encoder.pte"].update(sha256=file_sha256(a / "x_encoder.pte")))


BAD_ARTIFACTS = {
    "tampered": (_tampered, "sha256"),
    "truncated_pte": (_truncated, "x_encoder.pte"),
    "manifest_not_json": (lambda a: (a / "manifest.json").write_text("{ nope"), "not JSON"),
    "manifest_missing_key": (lambda a: _manifest(a, lambda m: m.pop("preprocessing")), "preprocessing"),
    "missing_file": (lambda a: (a / "y_decoder.pte").unlink(), "missing"),
    "another_executorch": (lambda a: _manifest(a, lambda m: m["tools"].update(executorch="0.7.0")), "0.7.0"),
    "another_contract": (
        lambda a: _manifest(
            a, lambda m: m["contract"]["methods"]["predictor"]["outputs"][0]["shape"].__setitem__(1, 7)
        ),
        "contract hash",
    ),
}


@pytest.mark.parametrize("case", list(BAD_ARTIFACTS))
def test_bad_artifacts_are_refused_with_one_line(native, artifact, video, tmp_path, case):
    damage, expected = BAD_ARTIFACTS[case]
    a = _copy(artifact, tmp_path)
    damage(a)
    r = run_cli(native, "--artifacts", a, "--video", video)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], r.stderr


def test_bad_cli_input_exits_2_like_python(native, artifact, video, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    cases = [
        (["--video", tmp_path / "nope.mp4"], "video file not found"),
        (["--video", video, "--query", "what " * 100], "this model accepts at most"),
        (["--video", video, "--labels", empty], "has no labels"),
        (["--video", video, "--labels", tmp_path / "missing.txt"], "label file not found"),
        (["--video", video, "--policy", "online", "--threshold", "5"], "threshold"),
        (["--video", video, "--top-k", "0"], "--top-k"),
    ]
    for args, expected in cases:
        r = run_cli(native, "--artifacts", artifact, *args)
        assert r.returncode == 2 and expected in r.stderr, (args, r.stderr)
        assert python_stream(["--artifacts", str(artifact), *map(str, args)]) == 2, args
    not_video = tmp_path / "not_a_video.mp4"
    not_video.write_text("hello")
    assert run_cli(native, "--artifacts", artifact, "--video", not_video).returncode == 2


def test_ctypes_binding_bad_input_never_crashes(native, artifact, tmp_path):
    """In a child process: the executorch Python extension and the wheel's C++ runtime are not loaded
    together."""
    code = textwrap.dedent(f"""
        import json, numpy as np
        from runtimes.native import NativeSession, NativeError, Frame
        out = {{}}
        def err(fn):
            try:
                fn()
            except NativeError as e:
                return [e.status, str(e)]
            return None
        s = NativeSession({str(artifact)!r}, library={str(native["library"])!r})
        out["self_test"] = s.self_test()["passed"]
        out["null_frame"] = err(lambda: s.process_raw(None))
        f = Frame(); f.format = 0; f.width = 64; f.height = 64; f.plane_size[0] = 100
        buf = np.zeros(100, np.uint8); f.planes[0] = buf.ctypes.data
        out["wrong_size"] = err(lambda: s.process_raw(f))
        out["long_query"] = err(lambda: s.set_query("what " * 200))
        out["empty_label"] = err(lambda: s.set_labels([""]))
        s.set_labels(["a red circle", "a blue square"])
        s.set_policy("uniform", {{"every_s": 1.0}})
        for i in range(24):
            s.process_frame(np.full((40, 48, 3), i * 10, np.uint8), i / 8)
        emb = s.last_embedding()
        s.finish()
        out["events"] = [json.loads(x) for x in s.events()]
        out["labels"] = sorted({{t["label"] for e in out["events"] for t in e["topk"]}})
        out["norm"] = float(np.linalg.norm(emb))
        s.close()
        out["after_close"] = err(lambda: s.set_query("x"))
        print(json.dumps(out))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["self_test"] is True
    for key, status in [
        ("null_frame", "EVJ_ERR_INVALID_ARGUMENT"),
        ("wrong_size", "EVJ_ERR_INVALID_ARGUMENT"),
        ("long_query", "EVJ_ERR_TEXT"),
        ("empty_label", "EVJ_ERR_TEXT"),
        ("after_close", "EVJ_ERR_CLOSED"),
    ]:
        assert out[key] is not None and out[key][0] == status and "\n" not in out[key][1], (key, out[key])
    assert len(out["events"]) == 5 and out["labels"] == ["a blue square", "a red circle"]
    assert out["norm"] == pytest.approx(1.0, abs=1e-5)


@pytest.fixture(scope="module")
def sanitized():
    """The core built with AddressSanitizer + UndefinedBehaviorSanitizer (runtimes/native/build-asan)."""
    from runtimes.native.__main__ import BuildError
    from runtimes.native.__main__ import build as build_core
    try:
        return build_core(sanitize=True, jobs=int(os.environ.get("EVJ_BUILD_JOBS", "2")), quiet=True)
    except BuildError as e:
        pytest.fail(f"the sanitized build failed: {e}")


def test_the_suite_runs_clean_under_asan_and_ubsan(sanitized, artifact, video, tmp_path):
    """Once under ASan + UBSan: the GoogleTest suite, and the CLI streaming every policy and refusing bad
    input; any sanitizer report fails (halt_on_error, non-zero exit)."""
    env = {**os.environ, "EVJ_TEST_ARTIFACT": str(artifact),
           "ASAN_OPTIONS": "halt_on_error=1:detect_leaks=1",
           "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"}
    r = subprocess.run(["ctest", "--output-on-failure", "--test-dir", str(sanitized["build_dir"])],
                       capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    for policy, flags in POLICIES.items():
        r = run_cli(sanitized, "--artifacts", artifact, "--video", video, *flags, "--quiet",
                    "--events", tmp_path / f"{policy}.jsonl", env=env)
        assert r.returncode == 0 and "Sanitizer" not in r.stderr, (policy, r.stderr[-3000:])
    r = run_cli(sanitized, "--artifacts", tmp_path / "missing", "--video", video, env=env)
    assert r.returncode == 2 and "Sanitizer" not in r.stderr and r.stderr.count("\n") == 1, r.stderr


FUZZ_SECONDS = int(os.environ.get("EVJ_FUZZ_SECONDS", "20"))


def test_fuzz_targets_run_bounded_without_a_finding(artifact, tmp_path):
    """libFuzzer (ASan + UBSan) on every parser of untrusted files: the manifest, the label bank (.npz)
    and tokenizer.json, each for EVJ_FUZZ_SECONDS (20 by default), seeded with the artifact's own files."""
    from runtimes.native.__main__ import BuildError
    from runtimes.native.__main__ import build as build_core
    try:
        paths = build_core(fuzz=True, jobs=int(os.environ.get("EVJ_BUILD_JOBS", "2")), quiet=True)
    except BuildError as e:
        pytest.fail(f"the fuzz build failed: {e}")
    seeds = {"fuzz_manifest": ["manifest.json"], "fuzz_label_bank": ["label_bank.npz", "golden.npz"],
             "fuzz_tokenizer": [p.name for p in artifact.glob("tokenizer_*.json")]}
    for target, files in seeds.items():
        corpus = tmp_path / target
        corpus.mkdir()
        for name in files:
            shutil.copy(artifact / name, corpus / name)
        command = [str(paths["build_dir"] / target), f"-max_total_time={FUZZ_SECONDS}", "-rss_limit_mb=2048",
                   f"-artifact_prefix={tmp_path}/", str(corpus)]
        r = subprocess.run(command, capture_output=True, text=True, timeout=FUZZ_SECONDS + 300)
        assert r.returncode == 0, f"{target} found a crash:\n{r.stderr[-4000:]}"
        assert "Done" in r.stderr and "runs in" in r.stderr, r.stderr[-2000:]


def test_native_cli_ends_a_video_like_the_python_cli(native, artifact, tmp_path, capsys):
    """Same exit status and windows on the videos whose end is decided by their duration: a sparse file
    ends normally (0), the same file cut short broke mid-stream (1), a file shorter than one window has
    nothing to report (3)."""
    from tests.test_video import make_sparse, truncate, write_video
    dense = write_video(tmp_path / "dense.avi", "MJPG", 10.0, n=40)
    gaps = set(range(10, 20)) | set(range(25, 30))
    videos = {"sparse": (make_sparse(dense, tmp_path / "sparse.avi", gaps), 0),
              "cut": (truncate(make_sparse(dense, tmp_path / "cut.avi", gaps), 0.6), 1),
              "short": (write_video(tmp_path / "short.avi", "MJPG", 10.0, n=3), 3)}
    for name, (video, status) in videos.items():
        py, nat = tmp_path / f"{name}.py.jsonl", tmp_path / f"{name}.native.jsonl"
        assert python_stream(["--artifacts", str(artifact), "--video", str(video), "--events", str(py),
                              "--quiet"]) == status, name
        r = run_cli(native, "--artifacts", artifact, "--video", video, "--events", nat, "--quiet")
        assert r.returncode == status, (name, r.stderr)
        assert [e.time for e in read_events(py)] == [e.time for e in read_events(nat)], name
        if status == 3:
            assert "shorter than one window" in r.stderr and "no window" in r.stdout


def test_parity_native_gates_the_core_and_the_cli(native, artifact, video, tmp_path, capsys):
    from runtimes.parity import main as parity_main
    out = tmp_path / "report"
    code = parity_main(["--artifacts", str(artifact), "--video", str(video), "--native", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "NATIVE PARITY PASSED" in printed, printed
    result = json.loads((out / "native.json").read_text())
    for side in ("core", "cli"):
        r = result[side]
        assert r["windows"]["python"] == r["windows"]["native"] == r["windows"]["identical_times"] > 10
        assert r["top1"]["identical"] == r["top1"]["of"] and r["decodes"]["identical"]
        assert r["embeddings"]["compared"] == r["windows"]["python"]
        assert r["embeddings"]["worst_cosine"] >= 0.9999


def test_native_parity_failures_name_what_differs():
    from edge_vljepa.streaming import Event
    from runtimes.native.parity import compare_runs, failures
    events = [Event(0.5 * i + 1, i, 0.5 * i, 0.5 * i + 2, [("a", 0.9), ("b", 0.8)], decode=i == 2,
                    text="x" if i == 2 else None, span=(0, 2) if i == 2 else None) for i in range(4)]
    emb = np.eye(4, 8, dtype=np.float32)
    assert failures(compare_runs(events, emb, events, emb)) == []
    other = [*events[:1], Event(1.5, 1, 0.5, 2.5, [("b", 0.9)]), *events[2:]]
    bent = emb.copy()
    bent[3, 7] = 0.5
    found = failures(compare_runs(events, emb, other, bent))
    assert any("top-1 labels differ in 1 of 4" in f for f in found)
    assert any("worst window-embedding cosine" in f for f in found)


def test_bench_native_measures_both_sides(native, artifact, video, tmp_path, capsys):
    from experiments import bench
    assert bench.main(["native", "--artifacts", str(artifact), "--video", str(video), "--out", str(tmp_path),
                       "--name", "n"]) == 0
    report = (tmp_path / "n.md").read_text()
    for policy in ("changepoint", "online", "uniform", "offline_segments"):
        assert f"| {policy} | python |" in report and f"| {policy} | cli |" in report
    assert "| changepoint (artifact default) | core |" in report
    data = json.loads((tmp_path / "n.json").read_text())["figures"]
    for run in data["runs"]:
        assert run["native"]["windows"] == run["python"]["windows"] > 0
        assert 0 < run["native"]["peak_rss_mb"] < run["python"]["peak_rss_mb"]
    assert 0 < data["core"]["peak_rss_mb"] < data["runs"][0]["native"]["peak_rss_mb"]
    assert data["custom_labels"]["core"]["peak_rss_mb"] > 0


@pytest.mark.parametrize("fourcc,ext", [("XVID", "avi"), ("mp4v", "mp4"), ("MJPG", "avi")])
def test_cli_decodes_video_like_opencv_python(native, tmp_path, fourcc, ext):
    """vljepa-stream decodes with FFmpeg's libraries (Debian's 5.1 here), the Python loop with opencv-python's
    VideoCapture (its own FFmpeg): the same pixels, timestamps, frame rate and frame count, at a frame size
    that is not a multiple of 16 (bit-exact decoders; without them XVID differs by up to 2 levels)."""
    import cv2

    w, h, n, fps = 90, 70, 24, 12.5
    path = tmp_path / f"clip.{ext}"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    rng = np.random.default_rng(0)
    for i in range(n):  # sharp-edged coloured blocks: IDCT cases where FFmpeg's SIMD versions round apart
        frame = np.zeros((h, w, 3), np.uint8)
        for _ in range(30):
            x, y = rng.integers(0, w - 20), rng.integers(0, h - 20)
            frame[y:y + rng.integers(4, 20), x:x + rng.integers(4, 20)] = rng.integers(0, 256, 3)
        writer.write(np.roll(frame, 3 * i, axis=1))
    writer.release()

    done = subprocess.run([str(native["cli"].parent / "evj_decode"), str(path), str(tmp_path / "frames.bgr")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    cap = cv2.VideoCapture(str(path))
    frames, times = [], []
    while (read := cap.read())[0]:
        frames.append(read[1])
        times.append(cap.get(cv2.CAP_PROP_POS_MSEC) / 1e3)
    assert (info["width"], info["height"]) == (w, h) and len(frames) == n == len(info["times"])
    assert info["fps"] == pytest.approx(cap.get(cv2.CAP_PROP_FPS))
    assert info["frame_count"] == int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    np.testing.assert_allclose(info["times"], times, atol=1e-9)
    native_frames = np.fromfile(tmp_path / "frames.bgr", np.uint8).reshape(n, h, w, 3)
    np.testing.assert_array_equal(native_frames, np.stack(frames))


def test_cli_names_a_video_it_cannot_decode(native, tmp_path):
    bad = tmp_path / "noise.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    done = subprocess.run([str(native["cli"].parent / "evj_decode"), str(bad), str(tmp_path / "x.bgr")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: cannot read {bad} as a video") and done.stderr.count("\n") == 1
