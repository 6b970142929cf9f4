"""android_demo (issue 17) on the host: everything but the Android UI, Gradle and the NDK.

The Java class the app talks to (org.edgevljepa.NativeSession) and its plain-C JNI bridge are compiled here
with the JDK (javac, jni.h); the bridge is linked against the host build of the native core (the same
`python -m runtimes.native build` test_native.py uses, incremental in runtimes/native/build) by
android_demo/host/build_host.py; android_demo/host/HostStreamTest.java streams a real video's frames (decoded
by Python/OpenCV into raw files: Java has no video decoder here) through NativeSession and must give the
native CLI's events; wrong input must throw NativeException carrying the core's message. The Kotlin sources
are checked by the tree-sitter Kotlin grammar and the resource XML by xml.etree and aapt2 (Debian's
android-sdk-build-tools) when installed. A missing JDK, compiler or native core fails these tests; only the
tree-sitter and aapt2 checks skip, and only when the tool cannot be installed.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "android_demo"
NATIVE_SESSION = DEMO / "lib" / "src" / "main" / "java" / "org" / "edgevljepa" / "NativeSession.java"
RES = DEMO / "app" / "src" / "main" / "res"
MANIFEST = DEMO / "app" / "src" / "main" / "AndroidManifest.xml"
JNI_PREFIX = "Java_org_edgevljepa_NativeSession_"
POLICY = ("uniform", {"every_s": 1.0})


def _load_build_host():
    spec = importlib.util.spec_from_file_location("android_demo_build_host", DEMO / "host" / "build_host.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_host = _load_build_host()


# --- fixtures ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def host(native, tmp_path_factory):
    """(libedge_vljepa_jni.so, classes folder) built by android_demo/host/build_host.py."""
    out = tmp_path_factory.mktemp("android_host")
    try:
        return build_host.build_jni(native["build_dir"], out), build_host.compile_java(out)
    except build_host.BuildError as e:
        pytest.fail(str(e))


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A short synthetic-world video (MJPG .avi, 64x48, 8 fps, 15 s) and its frames as raw RGB and NV21 files
    with the timestamps the native CLI uses (the container's, as edge_vljepa's VideoFile reads them)."""
    from edge_vljepa.data.video import VideoFile
    from edge_vljepa.data.world import sample_stream
    from edge_vljepa.data.write import write_video
    out = tmp_path_factory.mktemp("android_video")
    path, _ = write_video(sample_stream("test", 0, seed=3, minutes=0.25), out, 64, 48, fmt="avi")
    times, rgb, nv21 = [], [], []
    for t, frame in VideoFile(path):
        times.append(t)
        rgb.append(frame.reshape(-1))
        nv21.append(to_nv21(frame))
    h, w = frame.shape[:2]
    np.concatenate(rgb).tofile(out / "frames.rgb")
    np.concatenate(nv21).tofile(out / "frames.nv21")
    (out / "times.txt").write_text("".join(f"{t!r}\n" for t in times))
    return {"path": path, "width": w, "height": h, "rgb": out / "frames.rgb", "nv21": out / "frames.nv21",
            "times": out / "times.txt", "count": len(times)}


def to_nv21(rgb: np.ndarray) -> np.ndarray:
    """Android NV21 bytes of an RGB frame: the Y plane, then V,U interleaved at half resolution."""
    h, w = rgb.shape[:2]
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).reshape(-1)  # Y (h*w), U (h*w/4), V (h*w/4)
    y, u, v = i420[:h * w], i420[h * w:h * w * 5 // 4], i420[h * w * 5 // 4:]
    vu = np.empty(u.size * 2, np.uint8)
    vu[0::2], vu[1::2] = v, u
    return np.concatenate([y, vu])


def run_java(host, mode, *args, timeout=600):
    lib, classes = host
    java = shutil.which("java") or str(build_host.jdk_home() / "bin" / "java")
    return subprocess.run([java, "-Xcheck:jni", "-cp", str(classes), "HostStreamTest", mode, "--lib",
                           str(lib), *map(str, args)], capture_output=True, text=True, timeout=timeout)


def frame_args(video, kind):
    return ["--frames", video[kind], "--times", video["times"], "--width", video["width"],
            "--height", video["height"]]


def java_stream(host, artifact, video, tmp_path, fmt, push=False):
    events = tmp_path / f"java-{fmt}{'-push' if push else ''}.jsonl"
    frames = frame_args(video, "rgb" if fmt == "rgb" else "nv21")
    r = run_java(host, "stream", "--artifact", artifact, *frames, "--format", fmt, "--query",
                 "what is happening?", "--policy", POLICY[0], "--params", json.dumps(POLICY[1]), "--top-k", 3,
                 "--events", events, *(["--push"] if push else []))
    assert r.returncode == 0, f"HostStreamTest stream --format {fmt} failed:\n{r.stdout}\n{r.stderr}"
    assert "WARNING" not in r.stderr, f"-Xcheck:jni reported a JNI misuse:\n{r.stderr}"
    printed = [json.loads(line.removeprefix("event ")) for line in r.stdout.splitlines()
               if line.startswith("event ")]
    written = [json.loads(line) for line in events.read_text().splitlines()]
    assert printed == written
    return written


@pytest.fixture(scope="module")
def cli_events(native, artifact, video, tmp_path_factory):
    events = tmp_path_factory.mktemp("android_cli") / "cli.jsonl"
    r = subprocess.run([str(native["cli"]), "--artifacts", str(artifact), "--video", str(video["path"]),
                        "--query", "what is happening?", "--policy", POLICY[0], "--every",
                        str(POLICY[1]["every_s"]), "--top-k", "3", "--events", str(events), "--quiet"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in events.read_text().splitlines()]


def key(e):
    """What must agree between two runs of the loop: timing and ms excluded."""
    return {"time": e["time"], "window": e["window"], "start": e["start"], "end": e["end"],
            "top1": e["topk"][0]["label"] if e["topk"] else None, "decode": e["decode"], "text": e["text"],
            "span": e["span"]}


def window_times(events):
    return [(e["window"], e["start"], e["end"], e["time"]) for e in events]


# --- (1) javac, (2) the host JNI library -----------------------------------------------------------------

def test_java_sources_compile_with_javac(tmp_path):
    classes = build_host.compile_java(tmp_path)
    for name in ("org/edgevljepa/NativeSession.class", "org/edgevljepa/NativeException.class",
                 "HostStreamTest.class"):
        assert (classes / name).is_file(), name
    assert not re.search(r"^import android\.", NATIVE_SESSION.read_text(), re.M), \
        "NativeSession must not import android.*"


def test_jni_library_builds_and_links_the_core(host, native):
    lib, _ = host
    ldd = subprocess.run(["ldd", str(lib)], capture_output=True, text=True, check=True).stdout
    assert "libedge_vljepa.so" in ldd and "not found" not in ldd, ldd


# --- (3) the same events as the native CLI ----------------------------------------------------------------

def test_rgb_frames_through_java_give_the_cli_events(host, artifact, video, tmp_path, cli_events):
    java = java_stream(host, artifact, video, tmp_path, "rgb")
    assert len(cli_events) >= 10 and any(e["decode"] for e in cli_events)
    assert [key(e) for e in java] == [key(e) for e in cli_events]


def test_pushed_frames_processed_one_by_one_give_the_same_events(host, artifact, video, tmp_path, cli_events):
    java = java_stream(host, artifact, video, tmp_path, "rgb", push=True)
    assert [key(e) for e in java] == [key(e) for e in cli_events]


def test_nv21_and_yuv_420_888_planes_give_the_cli_window_times(host, artifact, video, tmp_path, cli_events):
    nv21 = java_stream(host, artifact, video, tmp_path, "nv21")
    yuv = java_stream(host, artifact, video, tmp_path, "yuv420888", push=True)
    assert window_times(nv21) == window_times(cli_events)
    assert [e["decode"] for e in nv21] == [e["decode"] for e in cli_events]
    # the same YUV bytes as NV21 or as YUV_420_888 planes (direct buffers, pixel stride 2): the same events
    assert [key(e) for e in yuv] == [key(e) for e in nv21]
    assert [[t["score"] for t in e["topk"]] for e in yuv] == [[t["score"] for t in e["topk"]] for e in nv21]


# --- (4) wrong input raises NativeException with the core's message ----------------------------------------

def bad_golden_copy(artifact, tmp_path):
    """A copy whose golden x_encoder output is shifted by 0.5 (manifest re-hashed): fails its self-test."""
    from runtimes.artifact import file_sha256
    out = tmp_path / "bad-golden"
    shutil.copytree(artifact, out)
    golden = dict(np.load(out / "golden.npz"))
    golden["x_encoder.out.visual_tokens"] = golden["x_encoder.out.visual_tokens"] + 0.5
    np.savez(out / "golden.npz", **golden)
    manifest = json.loads((out / "manifest.json").read_text())
    golden_file = out / "golden.npz"
    manifest["files"]["golden.npz"] = {"sha256": file_sha256(golden_file), "size": golden_file.stat().st_size}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return out


def test_wrong_input_throws_native_exception_with_the_core_message(host, native, artifact, video, tmp_path):
    r = run_java(host, "errors", "--artifact", artifact, *frame_args(video, "rgb"), "--bad-golden",
                 bad_golden_copy(artifact, tmp_path))
    assert r.returncode == 0 and "all error cases passed" in r.stdout, f"{r.stdout}\n{r.stderr}"
    assert "WARNING" not in r.stderr, f"-Xcheck:jni reported a JNI misuse:\n{r.stderr}"
    results = dict(re.findall(r"^ok (\w+) (.*)$", r.stdout, re.M))
    expected_status = {"missing_artifact": "EVJ_ERR_ARTIFACT", "bad_frame_size": "EVJ_ERR_INVALID_ARGUMENT",
                       "bad_policy": "EVJ_ERR_INVALID_ARGUMENT", "query_after_close": "EVJ_ERR_CLOSED",
                       "frame_after_close": "EVJ_ERR_CLOSED", "self_test_fails": "EVJ_ERR_SELF_TEST",
                       "setting_during_stream": "EVJ_ERR_STATE"}
    for case, status in expected_status.items():
        expected = status + ": "
        assert results.get(case, "").startswith(expected), (case, results.get(case))
    assert "sometimes" in results["bad_policy"]  # the core names the unknown policy
    # the message is the core's own: the CLI prints the same one for the same missing artifact
    missing = Path(artifact).parent / "no-such-artifact"
    cli = subprocess.run([str(native["cli"]), "--artifacts", str(missing), "--video", str(video["path"])],
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 2
    assert cli.stderr.strip().splitlines()[-1] == "error: " + results["missing_artifact"].split(": ", 1)[1]


# --- (5) native methods <-> exported JNI symbols ------------------------------------------------------------

def declared_native_methods(source: str) -> list[str]:
    code = re.sub(r"/\*.*?\*/|//[^\n]*", "", source, flags=re.S)  # comments out
    return re.findall(r"\bnative\s+[\w\[\]<>.]+\s+(\w+)\s*\(", code)


def test_every_native_method_has_exactly_one_jni_symbol_and_vice_versa(host):
    lib, _ = host
    methods = declared_native_methods(NATIVE_SESSION.read_text())
    assert len(methods) >= 15, methods
    assert len(set(methods)) == len(methods), "overloaded native methods would need mangled symbol names"
    nm = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True,
                        check=True).stdout
    symbols = [line.split()[-1] for line in nm.splitlines() if line.split()[-1].startswith(JNI_PREFIX)]
    assert sorted(s[len(JNI_PREFIX):] for s in symbols) == sorted(methods)
    exported = {line.split()[-1] for line in nm.splitlines() if line.split()[1] == "T"}
    assert exported - set(symbols) <= {"JNI_OnLoad", "JNI_OnUnload"}, "exports more than the JNI entry points"


# --- (6) Kotlin parses, (7) resources are well-formed and compile, (8) no TODO/stub -------------------------

def kotlin_parser():
    try:
        import tree_sitter
        import tree_sitter_kotlin
    except ImportError:
        pip = [sys.executable, "-m", "pip", "install", "-q", "tree-sitter", "tree-sitter-kotlin"]
        r = subprocess.run(pip, capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"tree-sitter-kotlin cannot be installed here: {r.stderr.strip()[-300:]}")
        import tree_sitter
        import tree_sitter_kotlin
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_kotlin.language()))


def error_nodes(node, found):
    if node.type == "ERROR" or node.is_missing:
        found.append((node.start_point[0] + 1, node.type, node.text.decode("utf-8", "replace")[:60]))
    for child in node.children:
        error_nodes(child, found)
    return found


def test_every_kotlin_file_parses_without_errors():
    parser = kotlin_parser()
    files = sorted(DEMO.rglob("*.kt")) + sorted(DEMO.rglob("*.kts"))
    assert len([f for f in files if f.suffix == ".kt"]) >= 4, files
    for f in files:
        tree = parser.parse(f.read_bytes())
        assert not tree.root_node.has_error, f"{f.relative_to(ROOT)}: {error_nodes(tree.root_node, [])[:5]}"


def resource_files():
    return [MANIFEST, *sorted(RES.rglob("*.xml"))]


def test_android_xml_is_well_formed_and_compiles_with_aapt2(tmp_path):
    for f in resource_files():
        ET.parse(f)  # raises on malformed XML
    ns = "{http://schemas.android.com/apk/res/android}"
    root = ET.parse(MANIFEST).getroot()
    assert {p.get(f"{ns}name") for p in root.iter("uses-permission")} >= {"android.permission.CAMERA"}
    debian = sorted(Path("/usr/lib/android-sdk/build-tools").glob("*/aapt2"))
    aapt2 = shutil.which("aapt2") or (str(debian[0]) if debian else None)
    if aapt2 is None:
        pytest.skip("aapt2 is not installed (Debian: apt-get install android-sdk-build-tools); "
                    "the XML was checked for well-formedness only")
    for f in sorted(RES.rglob("*.xml")):
        r = subprocess.run([aapt2, "compile", "-o", str(tmp_path), str(f)], capture_output=True, text=True)
        assert r.returncode == 0, f"aapt2 compile {f.relative_to(ROOT)}:\n{r.stderr}"


def test_no_todo_or_stub_in_android_demo():
    offenders = []
    for f in DEMO.rglob("*"):
        skipped = "build" in f.relative_to(DEMO).parts or f.suffix in {".so", ".class", ".jar"}
        if f.is_file() and not skipped:
            for n, line in enumerate(f.read_text(errors="replace").splitlines(), 1):
                if re.search(r"\bTODO\b|\bstub\b|\bFIXME\b", line, re.I):
                    offenders.append(f"{f.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
