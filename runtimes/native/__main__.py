"""`python -m runtimes.native build [--sanitize] [--build-dir DIR] [--jobs N]`: configure and build the native
core (library, vljepa-stream CLI, GoogleTest tests and tools) against the installed executorch wheel, then
print where the library and the CLI are. CMake's and make's output is shown as it runs.

    python -m runtimes.native build                     # runtimes/native/build
    python -m runtimes.native build --sanitize          # ASan + UBSan, runtimes/native/build-asan

Exit status: 0 built, 2 a missing tool or a failed configure/build (one line on stderr after the
tool's output).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

NATIVE_DIR = Path(__file__).resolve().parent


class BuildError(RuntimeError):
    pass


def executorch_root() -> Path:
    try:
        import executorch
    except ImportError:
        raise BuildError("the executorch wheel is not installed: pip install executorch==1.5.1") from None
    return Path(list(executorch.__path__)[0])


def build(
    build_dir: Path | None = None,
    sanitize: bool = False,
    jobs: int = 1,
    build_type: str = "RelWithDebInfo",
    targets: list[str] | None = None,
    quiet: bool = False,
    fuzz: bool = False,
) -> dict[str, Path]:
    """Configure + build; returns {"library", "cli", "tests", "build_dir"}. Raises BuildError.
    fuzz: the libFuzzer targets of tests/fuzz (clang 14, ASan + UBSan) in build-fuzz, nothing else."""
    default = "build-fuzz" if fuzz else "build-asan" if sanitize else "build"
    build_dir = Path(build_dir or NATIVE_DIR / default)
    cmake = shutil.which("cmake")
    if cmake is None:
        raise BuildError("cmake not found: apt-get install cmake (or pip install cmake)")
    out = subprocess.DEVNULL if quiet else None
    configure = [
        cmake,
        "-S",
        str(NATIVE_DIR),
        "-B",
        str(build_dir),
        f"-DCMAKE_BUILD_TYPE={build_type}",
        f"-DEXECUTORCH_ROOT={executorch_root()}",
        f"-DEVJ_SANITIZE={'ON' if sanitize else 'OFF'}",
    ]
    if fuzz:
        clang = shutil.which("clang++-14") or shutil.which("clang++")
        if clang is None:
            raise BuildError("the fuzz targets need clang: apt-get install clang-14 libclang-rt-14-dev")
        configure += ["-DEVJ_FUZZ=ON", "-DEVJ_TESTS=OFF", f"-DCMAKE_CXX_COMPILER={clang}",
                      f"-DCMAKE_C_COMPILER={clang.replace('clang++', 'clang')}"]
        targets = [p.stem for p in sorted((NATIVE_DIR / "tests" / "fuzz").glob("*.cpp"))]  # only these
    print("$ " + " ".join(configure), flush=True)
    if subprocess.run(configure, stdout=out).returncode != 0:
        raise BuildError(f"cmake configure failed in {build_dir} (see the output above)")
    command = [cmake, "--build", str(build_dir), "-j", str(jobs)]
    for target in targets or []:
        command += ["--target", target]
    print("$ " + " ".join(command), flush=True)
    if subprocess.run(command, stdout=out).returncode != 0:
        raise BuildError(f"the build failed in {build_dir} (see the compiler output above)")
    return {
        "build_dir": build_dir,
        "library": build_dir / "libedge_vljepa.so",
        "cli": build_dir / "vljepa-stream",
        "tests": build_dir / "evj_tests",
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m runtimes.native",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Build the edge-vljepa native core (C++17, CMake) against the installed "
        "executorch wheel.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser(
        "build", formatter_class=argparse.ArgumentDefaultsHelpFormatter, help="configure and build"
    )
    b.add_argument(
        "--build-dir",
        type=Path,
        help="build folder (default: runtimes/native/build, or build-asan with --sanitize)",
    )
    b.add_argument(
        "--sanitize", action="store_true", help="build with AddressSanitizer + UndefinedBehaviorSanitizer"
    )
    b.add_argument("--fuzz", action="store_true", help="the libFuzzer targets (clang), in build-fuzz")
    b.add_argument("--jobs", type=int, default=1, help="parallel compile jobs")
    b.add_argument("--build-type", default="RelWithDebInfo", help="CMAKE_BUILD_TYPE")
    args = p.parse_args(argv)
    try:
        paths = build(args.build_dir, args.sanitize, args.jobs, args.build_type, fuzz=args.fuzz)
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.fuzz:
        fuzzers = sorted(p.name for p in paths["build_dir"].glob("fuzz_*") if p.is_file())
        print(f"fuzzers   {', '.join(fuzzers)} in {paths['build_dir']} (run one with -max_total_time=60)")
        return 0
    print(f"library   {paths['library']}")
    print(f"cli       {paths['cli']}")
    print(f"tests     {paths['tests']} (ctest --test-dir {paths['build_dir']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
