"""The artifact writer's life cycle (export/artifact.py): one export per --out at a time, a final step
that never deletes what it did not create, the user's permissions, SIGKILL leftovers cleaned."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time

import pytest

from edge_vljepa.config import get_preset
from export import pipeline, to_executorch
from export.artifact import ArtifactBuilder, ExportError, OutLock
from tests.conftest import FAST_EXPORT

CFG = get_preset("tiny")


def build(out, force=False, lock=None, content="new"):
    with ArtifactBuilder(out, force, "executorch", CFG, None, lock=lock) as art:
        art.path("x.txt").write_text(content)
        return art.commit()


def test_a_second_export_to_the_same_place_fails_at_once(tmp_path):
    out = tmp_path / "art"
    with OutLock(out):
        with pytest.raises(ExportError, match="another export to .*art is running"):
            OutLock(out).acquire()
        with pytest.raises(ExportError, match="another export"):
            build(out)
    assert build(out) == out  # released at exit: the next export takes it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]  # no lock file or partial left behind


def test_a_second_export_process_fails_at_once_with_a_clear_line(tmp_path, capsys):
    out = tmp_path / "art"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from export.artifact import OutLock; l = OutLock(Path(sys.argv[1])); "
                               "l.acquire(); print('locked', flush=True); time.sleep(60)", str(out)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.perf_counter()
        assert to_executorch.main([*FAST_EXPORT, "--out", str(out), "--no-parity"]) == 2
        assert time.perf_counter() - start < 30  # before the data, the lowering and the parity
        err = capsys.readouterr().err
        assert err.startswith("error: another export to") and len(err.strip().splitlines()) == 1
        assert not out.exists()
    finally:
        holder.kill()
        holder.wait()


def test_commit_never_deletes_a_directory_it_did_not_create(tmp_path):
    out = tmp_path / "art"
    with pytest.raises(ExportError, match="appeared during the export"):
        with ArtifactBuilder(out, False, "executorch", CFG, None) as art:
            art.path("x.txt").write_text("new")
            out.mkdir()  # another program's result, written while this export ran
            (out / "theirs.txt").write_text("keep me")
            art.commit()
    assert (out / "theirs.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]


def test_force_replaces_the_old_artifact_after_the_new_one_is_in_place(tmp_path):
    out = tmp_path / "art"
    build(out, content="old")
    assert build(out, force=True, content="new") == out
    assert (out / "x.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]


def test_artifacts_get_the_users_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        out = build(tmp_path / "art")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "x.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((out / "manifest.json").stat().st_mode) == 0o644


def test_leftovers_of_a_killed_export_are_removed_and_named(tmp_path):
    out = tmp_path / "art"
    leftovers = [tmp_path / f".art.{kind}-k1ll3d" for kind in ("partial", "data", "old")]
    for d in leftovers:
        d.mkdir()
        (d / "big.bin").write_bytes(b"x" * 100)
    (tmp_path / ".other.partial-abc").mkdir()  # another --out's: not this export's to remove
    lock = OutLock(out)
    with lock:
        assert sorted(lock.cleaned) == sorted(leftovers)
        build(out, lock=lock)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.partial-abc", "art"]


def test_the_exporter_names_the_leftovers_it_removed(tmp_path, capsys, monkeypatch):
    (tmp_path / ".art.partial-k1ll3d").mkdir()

    def stop(*args, **kwargs):
        raise ExportError("stop after the start")
    monkeypatch.setattr(pipeline, "video_files", stop)
    assert to_executorch.main([*FAST_EXPORT, "--out", str(tmp_path / "art"), "--no-parity"]) == 2
    out = capsys.readouterr().out
    assert f"cleaned     {tmp_path / '.art.partial-k1ll3d'} (left by an interrupted export)" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_every_exporter_checks_its_converter_first(tmp_path, capsys, monkeypatch):
    from export import to_coreml, to_onnx
    targets = ((to_executorch, "executorch"), (to_onnx, "onnxscript"), (to_coreml, "coremltools"))
    for module, missing in targets:
        monkeypatch.setitem(sys.modules, missing, None)  # `import missing` now fails
        assert module.main(["--preset", "tiny", "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert err == (f"error: {missing} is not installed; the {module.TARGET.name} exporter needs it: "
                       "pip install -e \".[export]\"\n")
        monkeypatch.delitem(sys.modules, missing)
    assert not (tmp_path / "out").exists()


def test_latency_is_interleaved_with_fixed_threads_and_flags_a_loaded_machine(monkeypatch):
    from edge_vljepa.parity import latency_ms
    calls = []

    class Fake:
        def __init__(self, name):
            self.name = name

        def run(self, method, inputs):
            calls.append(self.name)
            return {}

    recorded = {"x_encoder": [{}]}
    monkeypatch.setattr(os, "getloadavg", lambda: (0.5, 0.5, 0.5))
    result = latency_ms(Fake("r"), Fake("c"), recorded, runs=3)
    assert calls == ["r", "c"] * 4  # a warm-up pair, then alternating
    assert result["reliable"] and result["load_average"] == 0.5
    monkeypatch.setattr(os, "getloadavg", lambda: (os.cpu_count() + 1.0, 0.5, 0.5))
    result = latency_ms(Fake("r"), Fake("c"), recorded, runs=3)
    assert not result["reliable"] and result["x_encoder"]["ratio"] > 0


def test_the_exporter_measures_latency_with_one_fixed_thread_count(tmp_path, monkeypatch, capsys):
    import torch
    threads = []
    real = pipeline.latency_ms

    def spy(reference, candidate, recorded, **kwargs):
        threads.append(torch.get_num_threads())
        return real(reference, candidate, recorded, **kwargs)
    monkeypatch.setattr(pipeline, "latency_ms", spy)
    monkeypatch.setattr(os, "getloadavg", lambda: (99.0, 0.5, 0.5))
    before = torch.get_num_threads()
    out = tmp_path / "art"
    assert to_executorch.main([*FAST_EXPORT, "--out", str(out), "--components", "x_encoder"]) == 0
    assert threads == [pipeline.LATENCY_THREADS] and torch.get_num_threads() == before
    latency = json.loads((out / "manifest.json").read_text())["parity"]["latency_ms"]
    assert latency["threads"] == pipeline.LATENCY_THREADS and latency["reliable"] is False
    assert "UNRELIABLE" in capsys.readouterr().out
