"""Checks of ios_demo/ that need no Swift compiler and no iOS SDK (neither exists on these machines).

- The C header compiles as C11 and as C++17 with -Wall -Wextra -Werror (what Swift's Clang importer and
  Objective-C++ need), with every C compiler found (gcc / cc, clang-14 / clang), and every function it
  declares has exactly the signature parsed here (a typed function pointer per prototype).
- The Swift package's module map names the header, and the header in the package is the core's header
  (a symbolic link into runtimes/native/include, or a byte-identical copy).
- Every .swift file parses without ERROR or MISSING nodes with the tree-sitter Swift grammar (PyPI:
  tree-sitter, tree-sitter-swift).
- Every C function the Swift code calls exists in the header and is called with as many arguments as
  the header declares; every EVJ_ constant it names exists.
- Package.swift takes ExecuTorch from the Swift package branch of the version the exporter pins, and
  force-loads the static libraries so that XNNPACK and Core ML register; the app's build files too.
- No TODO / FIXME / stub left in ios_demo/.
"""

from __future__ import annotations

import os
import plistlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEADER = ROOT / "runtimes" / "native" / "include" / "edge_vljepa.h"
IOS = ROOT / "ios_demo"
PACKAGE = IOS / "EdgeVLJEPA"
C_TARGET = PACKAGE / "Sources" / "CEdgeVLJEPA"
APP = IOS / "App"


def swift_files() -> list[Path]:
    files = sorted(p for p in IOS.rglob("*.swift") if ".build" not in p.parts)
    assert files, "no Swift sources under ios_demo/"
    return files


# ---- the C header ---------------------------------------------------------------------------------------

PROTOTYPE = re.compile(r"EVJ_API\s+(?P<ret>[^;()]*?)\b(?P<name>evj_[a-z_]+)\s*\((?P<params>[^;]*?)\)\s*;",
                       re.S)


def header_prototypes() -> dict[str, tuple[str, list[str]]]:
    """name -> (return type, parameter declarations) of every EVJ_API function in the header."""
    text = re.sub(r"/\*.*?\*/", " ", HEADER.read_text(), flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    out: dict[str, tuple[str, list[str]]] = {}
    for m in PROTOTYPE.finditer(text):
        params = " ".join(m["params"].split())
        plist = [] if params in ("", "void") else [p.strip() for p in params.split(",")]
        out[m["name"]] = (" ".join(m["ret"].split()), plist)
    return out


def test_header_prototypes_are_parsed():
    protos = header_prototypes()
    code = re.sub(r"/\*.*?\*/", " ", HEADER.read_text(), flags=re.S)
    declared = set(re.findall(r"\b(evj_[a-z_]+)\s*\(", code))
    declared.discard("evj_event_callback")  # the callback typedef, not a function
    assert set(protos) == declared, f"prototypes the regex missed: {sorted(declared - set(protos))}"
    assert {"evj_open", "evj_close", "evj_process_frame", "evj_next_event", "evj_finish",
            "evj_self_test"} <= set(protos)
    assert protos["evj_open"][1] == ["const char* artifact_dir", "const char* expected_contract_hash",
                                      "evj_session** out_session"]
    assert protos["evj_version"][1] == []


def header_types() -> set[str]:
    """The typedef names of the header (evj_session, evj_frame, evj_status, ...)."""
    return set(re.findall(r"\b(evj_[a-z_]+)\s*;", re.sub(r"\([^()]*\)", "", HEADER.read_text()))) & set(
        re.findall(r"typedef\s+(?:struct|enum)\s+(evj_[a-z_]+)", HEADER.read_text()))


def _pointer_declaration(name: str, ret: str, params: list[str]) -> str:
    """`RET (*p_NAME)(TYPES) = NAME;` with the parameter names dropped."""
    types = []
    for p in params:
        m = re.match(r"(.*?)([A-Za-z_][A-Za-z0-9_]*)$", p)
        assert m and m[1].strip(), f"cannot split the parameter '{p}' of {name}"
        types.append(m[1].strip())
    return f"  {ret} (*p_{name})({', '.join(types) or 'void'}) = {name};\n  (void)p_{name};\n"


def _probe_source(cplusplus: bool) -> str:
    body = "".join(_pointer_declaration(n, r, p) for n, (r, p) in sorted(header_prototypes().items()))
    ret_null = "nullptr" if cplusplus else "NULL"
    return (
        '#include "edge_vljepa.h"\n#include "edge_vljepa.h" /* include guard */\n#include <stddef.h>\n'
        "int main(void) {\n"
        f"{body}"
        "  evj_frame f = {EVJ_FORMAT_YUV_420_888, 2, 2, 0.0, {NULL, NULL, NULL}, {0, 0, 0}, {1, 2, 2},\n"
        "                 {4, 2, 1}};\n"
        "  (void)f;\n"
        f"  evj_event_callback cb = {ret_null};\n  (void)cb;\n"
        "  return EVJ_OK + EVJ_API_VERSION - 1;\n}\n"
    )


def _compilers() -> list[tuple[str, str]]:
    """(C compiler, C++ compiler) pairs found on this machine: gcc/cc and clang."""
    pairs = []
    for cc, cxx in (("gcc", "g++"), ("cc", "c++"), ("clang-14", "clang++-14"), ("clang", "clang++")):
        c_path, cxx_path = shutil.which(cc), shutil.which(cxx)
        if c_path and cxx_path and all(os.path.realpath(c_path) != os.path.realpath(p[0]) for p in pairs):
            pairs.append((c_path, cxx_path))
    return pairs


COMPILERS = _compilers()


@pytest.mark.skipif(not COMPILERS, reason="no C compiler on this machine")
@pytest.mark.parametrize("cc,cxx", COMPILERS, ids=[Path(c).name for c, _ in COMPILERS])
@pytest.mark.parametrize("lang", ["c11", "c++17"])
def test_header_compiles_warning_free(tmp_path, cc, cxx, lang):
    cplusplus = lang.startswith("c++")
    src = tmp_path / ("probe.cpp" if cplusplus else "probe.c")
    src.write_text(_probe_source(cplusplus))
    compiler = cxx if cplusplus else cc
    cmd = [compiler, f"-std={lang}", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{HEADER.parent}",
           "-c", str(src), "-o", str(tmp_path / "probe.o")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"


def test_module_map_names_the_core_header():
    modulemap = (C_TARGET / "include" / "module.modulemap").read_text()
    m = re.search(r"module\s+CEdgeVLJEPA\s*\{(?P<body>[^}]*)\}", modulemap)
    assert m, modulemap
    assert re.search(r'\bheader\s+"edge_vljepa\.h"', m["body"]), modulemap
    assert re.search(r"\bexport\s+\*", m["body"]), modulemap

    packaged = C_TARGET / "include" / "edge_vljepa.h"
    assert packaged.exists(), f"{packaged} is missing (or a dangling link)"
    if packaged.is_symlink():
        assert packaged.resolve() == HEADER.resolve(), f"{packaged} links to {os.readlink(packaged)}"
        assert not os.path.isabs(os.readlink(packaged)), "the link must be relative to work in any checkout"
    assert packaged.read_bytes() == HEADER.read_bytes(), "the package's header differs from the core's"


def test_package_compiles_the_core_sources():
    core = C_TARGET / "core"
    assert core.is_dir(), f"{core} is missing (or a dangling link)"
    if core.is_symlink():
        assert core.resolve() == (ROOT / "runtimes" / "native" / "src").resolve()
        assert not os.path.isabs(os.readlink(core))
    assert sorted(p.name for p in core.glob("*.cpp")) == sorted(
        p.name for p in (ROOT / "runtimes" / "native" / "src").glob("*.cpp"))
    package = (PACKAGE / "Package.swift").read_text()
    assert 'sources: ["core"]' in package and 'publicHeadersPath: "include"' in package
    assert "cxxLanguageStandard: .cxx17" in package


@pytest.mark.parametrize("layout", ["swiftpm", "include_dir"])
def test_json_shim_resolves_both_layouts(tmp_path, layout):
    """shim/nlohmann/json.hpp reaches nlohmann's header as its Swift package exposes it (<json.hpp>, the
    folder single_include/nlohmann on the search path) and as a plain include folder (<nlohmann/json.hpp>)."""
    compiler = shutil.which("g++") or shutil.which("clang++")
    if not compiler:
        pytest.skip("needs a C++ compiler")
    if layout == "swiftpm":
        found = tmp_path / "single_include" / "nlohmann" / "json.hpp"
    else:
        found = tmp_path / "include" / "nlohmann" / "json.hpp"
    found.parent.mkdir(parents=True)
    found.write_text(f"#define EVJ_JSON_LAYOUT_{layout.upper()} 1\n")
    search_dir = found.parent if layout == "swiftpm" else found.parent.parent
    src = tmp_path / "probe.cpp"
    marker = f"EVJ_JSON_LAYOUT_{layout.upper()}"
    src.write_text(f"#include <nlohmann/json.hpp>\nstatic_assert({marker} == 1, \"\");\n")
    # -nostdinc: only the shim and the fake layout are searched (not a system nlohmann install).
    cmd = [compiler, "-std=c++17", "-fsyntax-only", "-nostdinc", "-nostdinc++", "-Wall", "-Werror",
           f"-I{C_TARGET / 'shim'}", f"-I{search_dir}", str(src)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"


# ---- the Swift sources ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def swift_parser():
    import tree_sitter  # the dev extra installs both (pyproject.toml)
    import tree_sitter_swift
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_swift.language()))


def _walk(node):
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.children))


def test_swift_sources_parse(swift_parser):
    problems = []
    for path in swift_files():
        tree = swift_parser.parse(path.read_bytes())
        for n in _walk(tree.root_node):
            if n.type == "ERROR" or n.is_missing:
                kind = "missing " + n.type if n.is_missing else "syntax error"
                row, col = n.start_point
                problems.append(f"{path.relative_to(ROOT)}:{row + 1}:{col + 1}: {kind}")
    assert not problems, "\n".join(problems)


def _code_without_comments(parser, path: Path) -> str:
    """The file's text with every comment blanked out (same length)."""
    data = bytearray(path.read_bytes())
    for n in _walk(parser.parse(bytes(data)).root_node):
        if "comment" in n.type:
            data[n.start_byte:n.end_byte] = b" " * (n.end_byte - n.start_byte)
    return data.decode()


def _c_calls(parser, path: Path) -> list[tuple[str, int, int]]:
    """(function, argument count, line) of every call of an evj_* function in a Swift file."""
    calls = []
    for n in _walk(parser.parse(path.read_bytes()).root_node):
        if n.type != "call_expression" or not n.children:
            continue
        callee = n.children[0]
        if callee.type != "simple_identifier" or not callee.text.decode().startswith("evj_"):
            continue
        suffix = next((c for c in n.children if c.type == "call_suffix"), None)
        assert suffix is not None, f"{path}:{n.start_point[0] + 1}: call without arguments?"
        n_args = 0
        for part in suffix.children:
            if part.type == "value_arguments":
                n_args += sum(1 for a in part.children if a.type == "value_argument")
            elif part.type == "lambda_literal":  # a trailing closure is one more argument
                n_args += 1
        calls.append((callee.text.decode(), n_args, n.start_point[0] + 1))
    return calls


def test_swift_calls_match_the_header(swift_parser):
    protos = header_prototypes()
    seen: dict[str, int] = {}
    problems = []
    for path in swift_files():
        calls = _c_calls(swift_parser, path)
        text = _code_without_comments(swift_parser, path)
        # Cross-check the grammar: every `evj_name(` in the code is a call tree-sitter found.
        by_regex = sorted(re.findall(r"\b(evj_[a-z_]+)\(", text))
        assert by_regex == sorted(name for name, _, _ in calls), f"{path}: regex and tree-sitter disagree"
        for name, n_args, line in calls:
            where = f"{path.relative_to(ROOT)}:{line}"
            if name in header_types():  # a C struct's zero initializer, e.g. evj_frame()
                if n_args != 0:
                    problems.append(f"{where}: {name}(...) with arguments: use the zero initializer")
                continue
            if name not in protos:
                problems.append(f"{where}: {name} is not in edge_vljepa.h")
            elif n_args != len(protos[name][1]):
                problems.append(f"{where}: {name} called with {n_args} arguments, "
                                f"declared with {len(protos[name][1])}")
            seen[name] = seen.get(name, 0) + 1
        identifiers = {n.text.decode() for n in _walk(swift_parser.parse(path.read_bytes()).root_node)
                       if n.type == "simple_identifier"}
        for const in sorted(i for i in identifiers if i.startswith("EVJ_")):
            if not re.search(rf"\b{const}\b", HEADER.read_text()):
                problems.append(f"{path.relative_to(ROOT)}: {const} is not in edge_vljepa.h")
    assert not problems, "\n".join(problems)
    # The Swift API covers the C API: every function of the header is used.
    assert sorted(set(protos) - set(seen)) == [], "C functions the Swift layer does not wrap"


def test_swift_api_shape(swift_parser):
    sources = {p.name: p.read_text() for p in swift_files()}
    session = sources["VLJEPASession.swift"]
    assert re.search(r"\bpublic actor VLJEPASession\b", session)
    deinit = re.search(r"\bdeinit\s*\{(?P<body>[^}]*)\}", session)
    assert deinit and "evj_close(" in deinit["body"], "the session must be closed in deinit"
    assert "AsyncStream<Event>" in session
    for method in ("func apply(", "func process(pixelBuffer: CVPixelBuffer, time: Double)", "func finish(",
                   "func summary(", "func selfTest(", "func close("):
        assert method in session, method
    assert re.search(r"struct VLJEPAError: Error\b", sources["VLJEPAError.swift"])
    assert re.search(r"struct Event: Codable\b", sources["Events.swift"])
    # Frames: plane pointers only, no per-pixel Swift loop in the CVPixelBuffer code.
    frame_code = (PACKAGE / "Sources" / "EdgeVLJEPA" / "PixelFrame.swift")
    loops = [n for n in _walk(swift_parser.parse(frame_code.read_bytes()).root_node)
             if n.type in ("for_statement", "while_statement", "repeat_while_statement")]
    assert not loops, "PixelFrame.swift must not loop over pixels"
    for needed in ("kCVPixelFormatType_32BGRA", "kCVPixelFormatType_420YpCbCr8BiPlanarVideoRange",
                   "kCVPixelFormatType_420YpCbCr8BiPlanarFullRange", "CVPixelBufferGetBaseAddressOfPlane",
                   "CVPixelBufferGetBytesPerRowOfPlane", "EVJ_FORMAT_YUV_420_888", "EVJ_FORMAT_BGRA"):
        assert needed in frame_code.read_text(), needed
    camera = sources["CameraController.swift"]
    assert "alwaysDiscardsLateVideoFrames = true" in camera and ".bufferingNewest(1)" in camera


# ---- build files -------------------------------------------------------------------------------------------


def _pinned_executorch() -> str:
    m = re.search(r'"executorch==([0-9][0-9.]*)"', (ROOT / "pyproject.toml").read_text())
    assert m, "pyproject.toml pins no executorch version"
    return m[1]


def test_package_takes_the_pinned_executorch_and_force_loads():
    package = (PACKAGE / "Package.swift").read_text()
    version = _pinned_executorch()
    assert package.startswith("// swift-tools-version:5.9")
    dependency = (r'\.package\(url: "https://github\.com/pytorch/executorch\.git", branch: "swiftpm-'
                  + re.escape(version) + r'"\)')
    assert re.search(dependency, package), f"ExecuTorch must come from branch swiftpm-{version}"
    assert f'let executorchVersion = "{version}"' in package  # EVJ_EXECUTORCH_VERSION of the core
    for product in ("executorch", "backend_xnnpack", "backend_coreml", "kernels_optimized",
                    "kernels_quantized"):
        assert f'.product(name: "{product}", package: "executorch")' in package, product
    assert '.unsafeFlags(["-Wl,-all_load"])' in package
    assert ".iOS(.v17)" in package  # ExecuTorch's minimum
    xcconfig = (APP / "ExecuTorch.xcconfig").read_text()
    assert re.search(r"^OTHER_LDFLAGS = \$\(inherited\) -all_load$", xcconfig, re.M)


def test_app_project_and_info_plist():
    import yaml  # PyYAML: a dependency of executorch (the dev extra)
    project = yaml.safe_load((APP / "project.yml").read_text())
    target = project["targets"]["EdgeVLJEPADemo"]
    assert target["platform"] == "iOS" and target["type"] == "application"
    assert (APP / project["packages"]["EdgeVLJEPA"]["path"] / "Package.swift").exists()
    assert {"package": "EdgeVLJEPA", "product": "EdgeVLJEPA"} in target["dependencies"]
    assert all((APP / f).exists() for f in target["configFiles"].values())
    assert (APP / target["settings"]["base"]["INFOPLIST_FILE"]).exists()
    assert project["options"]["deploymentTarget"]["iOS"] == "17.0"
    for source in target["sources"]:
        assert source.get("optional") or (APP / source["path"]).exists(), source
    with (APP / "Info.plist").open("rb") as f:
        info = plistlib.load(f)
    assert info["NSCameraUsageDescription"].strip()
    assert info["UIFileSharingEnabled"] is True  # the event logs in Documents show in the Files app


def test_no_todo_or_stub_left():
    offenders = []
    for path in sorted(IOS.rglob("*")):
        if path.is_file() and not path.is_symlink() and ".build" not in path.parts:
            for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if re.search(r"\bTODO\b|\bFIXME\b|\bstub\b", line, re.I):
                    offenders.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
