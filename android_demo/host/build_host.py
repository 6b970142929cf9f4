"""Host build of the Android JNI bridge, for tests on a machine without the Android SDK/NDK.

Compiles android_demo/lib/src/main/cpp/edge_vljepa_jni.c with the JDK's jni.h into libedge_vljepa_jni.so,
linked against the host build of the native core (libedge_vljepa.so from `python -m runtimes.native build`),
with the same version script as the Android build (only the JNI entry points exported), and compiles
NativeSession.java + NativeException.java + host/HostStreamTest.java with javac.

    python android_demo/host/build_host.py --core-dir runtimes/native/build --out /tmp/evj-jni
    java -cp /tmp/evj-jni/classes HostStreamTest stream --lib /tmp/evj-jni/libedge_vljepa_jni.so ...

Not part of the Gradle build (Gradle builds the same C file with the NDK through
lib/src/main/cpp/CMakeLists.txt).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEMO = HERE.parent
ROOT = DEMO.parent
CORE_INCLUDE = ROOT / "runtimes" / "native" / "include"
JNI_SOURCE = DEMO / "lib" / "src" / "main" / "cpp" / "edge_vljepa_jni.c"
JNI_MAP = DEMO / "lib" / "src" / "main" / "cpp" / "edge_vljepa_jni.map"
JAVA_SOURCES = [DEMO / "lib" / "src" / "main" / "java" / "org" / "edgevljepa" / "NativeSession.java",
                DEMO / "lib" / "src" / "main" / "java" / "org" / "edgevljepa" / "NativeException.java"]
HOST_TEST = HERE / "HostStreamTest.java"
CORE_LIB = "libedge_vljepa.so"
JNI_LIB = "libedge_vljepa_jni.so"


class BuildError(RuntimeError):
    """A tool is missing or a compile/link step failed; the message says which and shows its output."""


def jdk_home() -> Path:
    """The JDK of the `javac` on PATH (JAVA_HOME first), checked to have include/jni.h."""
    candidates = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]))
    javac = shutil.which("javac")
    if javac:
        candidates.append(Path(os.path.realpath(javac)).parent.parent)
    for home in candidates:
        if (home / "include" / "jni.h").is_file():
            return home
    raise BuildError("no JDK with include/jni.h found (install one, e.g. apt-get install "
                     "openjdk-17-jdk-headless, or set JAVA_HOME)")


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{what} failed ({' '.join(cmd)}):\n{proc.stdout}{proc.stderr}")


def build_jni(core_dir: Path, out: Path, cc: str | None = None) -> Path:
    """Compile and link libedge_vljepa_jni.so against core_dir/libedge_vljepa.so; returns its path."""
    core_dir = Path(core_dir).resolve()
    if not (core_dir / CORE_LIB).is_file():
        raise BuildError(f"{core_dir / CORE_LIB} does not exist: build the native core first "
                         "(python -m runtimes.native build)")
    cc = cc or os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise BuildError("no C compiler (gcc/cc) on PATH")
    home = jdk_home()
    out.mkdir(parents=True, exist_ok=True)
    lib = out / JNI_LIB
    _run([cc, "-std=c11", "-O2", "-g", "-fPIC", "-shared", "-Wall", "-Wextra", "-Werror",
          "-fvisibility=hidden",
          f"-I{home / 'include'}", f"-I{home / 'include' / 'linux'}", f"-I{CORE_INCLUDE}", str(JNI_SOURCE),
          f"-Wl,--version-script={JNI_MAP}", "-Wl,--no-undefined", f"-L{core_dir}", "-ledge_vljepa",
          f"-Wl,-rpath,{core_dir}", "-o", str(lib)], "linking the JNI library")
    return lib


def compile_java(out: Path) -> Path:
    """javac NativeSession, NativeException and HostStreamTest into out/classes; returns that folder."""
    javac = shutil.which("javac") or str(jdk_home() / "bin" / "javac")
    classes = out / "classes"
    classes.mkdir(parents=True, exist_ok=True)
    _run([javac, "-Xlint:all", "-Werror", "--release", "11", "-d", str(classes), *map(str, JAVA_SOURCES),
          str(HOST_TEST)], "javac")
    return classes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--core-dir", type=Path, default=ROOT / "runtimes" / "native" / "build",
                        help="folder holding the host build's libedge_vljepa.so")
    parser.add_argument("--out", type=Path, default=ROOT / "android_demo" / "host" / "build",
                        help="output folder (libedge_vljepa_jni.so, classes/)")
    args = parser.parse_args(argv)
    print(f"core      {args.core_dir}\nout       {args.out}\njdk       {jdk_home()}")
    try:
        lib = build_jni(args.core_dir, args.out)
        classes = compile_java(args.out)
    except BuildError as e:
        print(f"error: {e}")
        return 2
    print(f"built     {lib}\n          {classes}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
