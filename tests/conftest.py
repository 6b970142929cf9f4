"""Shared fixtures: one tiny ExecuTorch fp32 artifact per test session (exporting it takes tens of
seconds), used by the exporter tests and the runtime tests; one build of the native core, used by its
tests and the apps' host tests. Tests that modify an artifact copy it."""

from __future__ import annotations

import os

import pytest

from export import to_executorch

FAST_EXPORT = ["--preset", "tiny", "--calibration-windows", "2", "--parity-windows", "4"]


@pytest.fixture(scope="session")
def tiny_fp32_artifact(tmp_path_factory):
    """(exit status of the export, artifact directory) of `export.to_executorch --preset tiny` (fp32)."""
    out = tmp_path_factory.mktemp("et") / "tiny-fp32"
    return to_executorch.main([*FAST_EXPORT, "--out", str(out)]), out


@pytest.fixture(scope="session")
def artifact(tiny_fp32_artifact):
    """The directory of the tiny fp32 ExecuTorch artifact, whose export must have passed (a test module
    may define its own `artifact`)."""
    code, out = tiny_fp32_artifact
    assert code == 0, "the tiny ExecuTorch export failed"
    return out


@pytest.fixture(scope="session")
def tiny_onnx_fp32_artifact(tmp_path_factory):
    """(exit status, artifact directory) of `export.to_onnx --preset tiny` (fp32, with .ort files)."""
    from export import to_onnx
    out = tmp_path_factory.mktemp("onnx") / "tiny-fp32"
    return to_onnx.main([*FAST_EXPORT, "--out", str(out)]), out


@pytest.fixture(scope="session")
def native():
    """{"library", "cli", "tests", "build_dir"} of the native core built against the installed executorch
    wheel (incremental, in runtimes/native/build). A failed build fails the tests that need it."""
    from runtimes.native.__main__ import BuildError, build
    try:
        return build(jobs=int(os.environ.get("EVJ_BUILD_JOBS", "2")), quiet=True)
    except BuildError as e:
        pytest.fail(f"the native core could not be built: {e}")
