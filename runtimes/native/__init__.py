"""The native core from Python: a ctypes binding over the C API (runtimes/native/include/edge_vljepa.h).

    from runtimes.native import NativeSession, library_path
    with NativeSession("artifacts/tiny-fp32") as s:
        s.set_policy("uniform", {"every_s": 1.0})
        for t, rgb in frames:                      # RGB uint8 (H, W, 3) numpy arrays
            s.process_frame(rgb, t)
        s.finish()
        events = s.events()                         # JSON lines, exactly edge_vljepa.streaming.events' schema
        print(s.summary_text())

Every failing call raises `NativeError` carrying the core's status name and its one-line message. Build the
library first with `python -m runtimes.native build` (or pass `library=` a built libedge_vljepa.so).
Imports nothing from export/ (layer order); numpy only.
"""

from __future__ import annotations

import ctypes
import json
import os
from pathlib import Path

import numpy as np

NATIVE_DIR = Path(__file__).resolve().parent
DEFAULT_BUILD_DIR = NATIVE_DIR / "build"

FORMATS = {"rgb": 0, "rgba": 1, "bgr": 2, "bgra": 3, "nv21": 4, "yuv_420_888": 5}


class NativeError(RuntimeError):
    """A failing C API call: `status` is the evj_status name (e.g. "EVJ_ERR_ARTIFACT"), the message one
    line."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


class Frame(ctypes.Structure):
    _fields_ = [
        ("format", ctypes.c_int32),
        ("width", ctypes.c_int32),
        ("height", ctypes.c_int32),
        ("timestamp_s", ctypes.c_double),
        ("planes", ctypes.c_void_p * 3),
        ("row_stride", ctypes.c_int32 * 3),
        ("pixel_stride", ctypes.c_int32 * 3),
        ("plane_size", ctypes.c_size_t * 3),
    ]


EVENT_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_void_p)


def library_path(build_dir: str | Path | None = None) -> Path:
    """Where the built core library is (EVJ_NATIVE_LIB overrides)."""
    if os.environ.get("EVJ_NATIVE_LIB"):
        return Path(os.environ["EVJ_NATIVE_LIB"])
    return Path(build_dir or DEFAULT_BUILD_DIR) / "libedge_vljepa.so"


_LIBS: dict[str, ctypes.CDLL] = {}


def load_library(path: str | Path | None = None) -> ctypes.CDLL:
    path = str(path or library_path())
    if path in _LIBS:
        return _LIBS[path]
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"native core library not found: {path}; build it with: python -m runtimes.native build"
        )
    lib = ctypes.CDLL(path)
    p, s, c = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
    sigs = {
        "evj_version": (c, []),
        "evj_executorch_version": (c, []),
        "evj_last_error": (c, []),
        "evj_status_name": (c, [s]),
        "evj_open": (s, [c, c, ctypes.POINTER(p)]),
        "evj_close": (s, [p]),
        "evj_session_error": (c, [p]),
        "evj_info_json": (s, [p, ctypes.POINTER(c)]),
        "evj_set_query": (s, [p, c]),
        "evj_set_labels": (s, [p, ctypes.POINTER(c), ctypes.c_size_t]),
        "evj_set_top_k": (s, [p, ctypes.c_int32]),
        "evj_set_policy": (s, [p, c, c]),
        "evj_set_stride": (s, [p, ctypes.c_int32]),
        "evj_set_skip": (s, [p, c]),
        "evj_set_threads": (s, [p, ctypes.c_int32]),
        "evj_set_event_callback": (s, [p, EVENT_CALLBACK, p]),
        "evj_next_event": (s, [p, ctypes.POINTER(c)]),
        "evj_process_frame": (s, [p, ctypes.POINTER(Frame)]),
        "evj_push_frame": (s, [p, ctypes.POINTER(Frame)]),
        "evj_process_pending": (s, [p, ctypes.c_int32, ctypes.POINTER(ctypes.c_int32)]),
        "evj_dropped_frames": (ctypes.c_int64, [p]),
        "evj_last_embedding": (
            s,
            [p, ctypes.POINTER(ctypes.POINTER(ctypes.c_float)), ctypes.POINTER(ctypes.c_size_t)],
        ),
        "evj_finish": (s, [p, c]),
        "evj_summary_text": (s, [p, ctypes.POINTER(c)]),
        "evj_summary_json": (s, [p, ctypes.POINTER(c)]),
        "evj_self_test": (s, [p, ctypes.POINTER(c)]),
    }
    for name, (restype, argtypes) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    _LIBS[path] = lib
    return lib


def _b(text: str | None) -> bytes | None:
    return None if text is None else text.encode("utf-8")


def rgb_frame(image: np.ndarray, t: float, fmt: str = "rgb") -> tuple[Frame, np.ndarray]:
    """An evj_frame over a packed (H, W, 3|4) uint8 image; keep the returned array alive during the call."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim != 3:
        raise ValueError(f"expected an (H, W, C) image, got shape {image.shape}")
    h, w, ch = image.shape
    f = Frame()
    f.format, f.width, f.height, f.timestamp_s = FORMATS[fmt], w, h, float(t)
    f.planes[0] = image.ctypes.data
    f.row_stride[0], f.pixel_stride[0], f.plane_size[0] = w * ch, ch, image.nbytes
    return f, image


class NativeSession:
    """One evj_session: open an artifact directory, set up, feed frames, collect events."""

    def __init__(self, artifact_dir: str | Path, expected_contract_hash: str | None = None, library=None):
        self.lib = load_library(library)
        self._s = ctypes.c_void_p()
        self._check(
            self.lib.evj_open(_b(str(artifact_dir)), _b(expected_contract_hash), ctypes.byref(self._s))
        )

    def _check(self, status: int) -> None:
        if status != 0:
            raise NativeError(
                self.lib.evj_status_name(status).decode(),
                self.lib.evj_last_error().decode("utf-8", "replace"),
            )

    def _string(self, fn, *args) -> str | None:
        out = ctypes.c_char_p()
        self._check(fn(self._s, *args, ctypes.byref(out)))
        return None if out.value is None else out.value.decode("utf-8")

    # settings
    def set_query(self, query: str) -> None:
        self._check(self.lib.evj_set_query(self._s, _b(query)))

    def set_labels(self, labels: list[str]) -> None:
        arr = (ctypes.c_char_p * max(1, len(labels)))(*[_b(x) for x in labels])
        self._check(self.lib.evj_set_labels(self._s, arr, len(labels)))

    def set_top_k(self, k: int) -> None:
        self._check(self.lib.evj_set_top_k(self._s, k))

    def set_policy(self, name: str | None = None, params: dict | None = None) -> None:
        self._check(
            self.lib.evj_set_policy(self._s, _b(name), _b(json.dumps(params) if params is not None else None))
        )

    def set_stride(self, stride: int) -> None:
        self._check(self.lib.evj_set_stride(self._s, stride))

    def set_skip(self, params: dict | None = None) -> None:
        """Selective encoding (streaming.SkipGate's parameters); None: the artifact's defaults, else off."""
        self._check(self.lib.evj_set_skip(self._s, _b(json.dumps(params) if params is not None else None)))

    def set_threads(self, threads: int) -> None:
        self._check(self.lib.evj_set_threads(self._s, threads))

    def info(self) -> dict:
        return json.loads(self._string(self.lib.evj_info_json))

    # frames and events
    def process_frame(self, image: np.ndarray, t: float, fmt: str = "rgb") -> None:
        frame, _keep = rgb_frame(image, t, fmt)
        self._check(self.lib.evj_process_frame(self._s, ctypes.byref(frame)))

    def process_raw(self, frame: Frame) -> None:
        self._check(self.lib.evj_process_frame(self._s, ctypes.byref(frame) if frame is not None else None))

    def push_frame(self, image: np.ndarray, t: float, fmt: str = "rgb") -> None:
        frame, _keep = rgb_frame(image, t, fmt)
        self._check(self.lib.evj_push_frame(self._s, ctypes.byref(frame)))

    def process_pending(self, timeout_ms: int = 0) -> bool:
        done = ctypes.c_int32()
        self._check(self.lib.evj_process_pending(self._s, timeout_ms, ctypes.byref(done)))
        return bool(done.value)

    def dropped_frames(self) -> int:
        return int(self.lib.evj_dropped_frames(self._s))

    def events(self) -> list[str]:
        """All queued event lines (JSON), oldest first."""
        lines = []
        while (line := self._string(self.lib.evj_next_event)) is not None:
            lines.append(line)
        return lines

    def last_embedding(self) -> np.ndarray:
        data, dim = ctypes.POINTER(ctypes.c_float)(), ctypes.c_size_t()
        self._check(self.lib.evj_last_embedding(self._s, ctypes.byref(data), ctypes.byref(dim)))
        return np.ctypeslib.as_array(data, (dim.value,)).copy() if dim.value else np.zeros(0, np.float32)

    def finish(self, source_error: str | None = None) -> None:
        self._check(self.lib.evj_finish(self._s, _b(source_error)))

    def summary_text(self) -> str:
        return self._string(self.lib.evj_summary_text)

    def summary(self) -> dict:
        return json.loads(self._string(self.lib.evj_summary_json))

    def self_test(self) -> dict:
        report = ctypes.c_char_p()
        status = self.lib.evj_self_test(self._s, ctypes.byref(report))
        if status not in (0,):
            self._check(status)
        return json.loads(report.value.decode())

    def close(self) -> None:
        if self._s:
            self._check(self.lib.evj_close(self._s))

    def __enter__(self) -> NativeSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
