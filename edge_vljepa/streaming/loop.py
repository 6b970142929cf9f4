"""The streaming loop: frames in, events out, over any backend. One visible loop, named stages.

    read -> resample -> preprocess -> window -> skip? -> x_encoder -> predictor -> label_bank -> policy
         -> y_decoder (only when the policy asks) -> event

skip (selective encoding, skip.py, off unless a SkipGate with max_skip > 0 is given): a window the gate
lets through reuses the last embedding and its labels, no X-Encoder, Predictor or label bank call;
its event says "reused".

(VL-JEPA paper section 4.6: an embedding per window, selective decoding; the stage layout and the
timing summary at exit follow whisper.cpp's stream example.) The same code runs the PyTorch
reference and every exported backend, so their event streams can be compared line by line.

A source that raises mid-stream (a broken video, a camera that stops) ends the stream, it does not
lose it: the events already emitted stay emitted, the policy still finishes (offline decodes for
what was seen) and the error is reported in `StreamSummary.error` instead of being raised; the
caller decides the exit status. Ctrl-C (KeyboardInterrupt) ends a live stream the same way, with
`StreamSummary.interrupted` set. Errors of the backend, the policy or the callback are raised.

numpy only (no torch): this is what a device runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from edge_vljepa.config import ModelConfig
from edge_vljepa.preprocess import PreprocessSpec, TextTokenizer, prepare_frame, to_video_tensor
from edge_vljepa.streaming.backend import Backend, run_checked
from edge_vljepa.streaming.decode import decode_text
from edge_vljepa.streaming.events import Event
from edge_vljepa.streaming.label_bank import LabelBank
from edge_vljepa.streaming.policies import DecodeRequest, Policy
from edge_vljepa.streaming.skip import SkipGate
from edge_vljepa.streaming.window import LagGate, Resampler, WindowBuffer

STAGES = ("preprocess", "x_encoder", "predictor", "label_bank", "y_decoder")
BACKEND_STAGES = ("x_encoder", "predictor", "y_decoder")  # stages inside backend.run


@dataclass(frozen=True)
class StreamSummary:
    windows: int
    decodes: int
    source_frames: int  # frames read from the source
    dropped_frames: int  # live only: source frames the model needed, dropped because the loop lagged
    stream_s: float  # stream time sampled: model frames / fps
    wall_s: float  # the whole run, finish and decodes included
    backend_s: float  # inside backend.run (x_encoder, predictor, y_decoder)
    stage_ms: dict[str, tuple[float, float]]  # stage -> (p50, p90) ms per call, stages that ran
    error: str | None = None  # the source's error if it broke mid-stream
    interrupted: bool = False
    reused: int = 0  # windows that reused the last embedding (selective encoding): no X-Encoder call

    @property
    def encoded(self) -> int:
        """Windows the X-Encoder ran on."""
        return self.windows - self.reused

    @property
    def windows_per_s(self) -> float:
        return self.windows / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def realtime_factor(self) -> float:
        """Stream seconds per wall second (> 1: faster than real time)."""
        return self.stream_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def decodes_per_min(self) -> float:
        return 60 * self.decodes / self.stream_s if self.stream_s > 0 else 0.0

    @property
    def outside_backend_s(self) -> float:
        """Wall time not spent in backend calls: reading, preprocessing, label bank, policy, events."""
        return self.wall_s - self.backend_s

    def format(self) -> str:
        """The timing summary printed at exit."""
        # with no window the model never ran: reading frames alone says nothing of its speed
        speed = f"real-time factor {self.realtime_factor:.2f}x" if self.windows else "no window"
        lines = [
            f"windows      {self.windows} ({self.windows_per_s:.1f} windows/s)"
            + (f", {self.reused} reused (x_encoder on {self.encoded})" if self.reused else ""),
            f"stream       {self.stream_s:.2f} s in {self.wall_s:.2f} s wall ({speed})",
            f"decodes      {self.decodes} ({self.decodes_per_min:.1f} per minute)",
            f"frames       {self.source_frames} read, {self.dropped_frames} dropped",
            f"backend      {self.backend_s:.2f} s, outside backend {self.outside_backend_s:.2f} s",
            "stage        p50 ms    p90 ms",
        ]
        lines += [f"  {stage:<10} {p50:8.2f}  {p90:8.2f}" for stage, (p50, p90) in self.stage_ms.items()]
        if self.interrupted:
            lines.append("interrupted by the user")
        if self.error:
            lines.append(f"the source broke mid-stream: {self.error}")
        return "\n".join(lines)


@contextmanager
def _timed(ms: dict[str, float], stage: str, clock: Callable[[], float]) -> Iterator[None]:
    start = clock()
    yield
    ms[stage] = ms.get(stage, 0.0) + (clock() - start) * 1e3


def run_stream(frames: Iterable[tuple[float, np.ndarray]], backend: Backend, cfg: ModelConfig, *,
               query: str, query_tokenizer: TextTokenizer, decoder_tokenizer: TextTokenizer,
               policy: Policy, stride: int, label_bank: LabelBank | None = None, top_k: int = 3,
               on_event: Callable[[Event], None] | None = None, live: bool = False,
               max_lag_s: float = 0.5, preprocess: PreprocessSpec | None = None,
               skip: SkipGate | None = None,
               clock: Callable[[], float] = time.perf_counter) -> StreamSummary:
    """Run the loop over `frames`, (t seconds, RGB uint8 (H, W, 3) of any size) in time order.

    query: the predictor's text query, tokenized by `query_tokenizer` (the predictor's tokenizer,
    max_len = cfg.predictor.max_query_len); decoder_tokenizer: cfg.y_decoder.tokenizer's.
    stride: model frames between window starts. Every window gives one event; each request of the
    policy's `finish()` one more decode event after them. `live`: drop frames lagging the clock by
    more than `max_lag_s` (cameras); files are never dropped from. preprocess: the frame sampling
    and normalisation (an artifact's manifest records it); default: derived from `cfg`. skip: the
    selective-encoding gate (skip.py); None: the X-Encoder runs on every window.
    """
    wall_start = clock()
    spec = preprocess or PreprocessSpec.from_config(cfg)
    query_ids, query_mask = query_tokenizer.encode(query, what="query")  # (1, Lq) int64 each
    resampler = Resampler(spec.fps)
    buffer = WindowBuffer(spec.num_frames, stride, spec.fps)
    gate = LagGate(max_lag_s, clock) if live else None
    spans: list[tuple[float, float]] = []  # (start, end) s of each window, by index
    stage_ms: dict[str, list[float]] = {stage: [] for stage in STAGES}
    source_frames = decodes = 0
    prepare_ms = 0.0  # frame preparation since the last window, charged to its "preprocess"
    error, interrupted = None, False
    skip = skip or SkipGate()  # max_skip 0: never skips
    embedding, topk = None, []  # the last window's, reused while the gate skips

    def decode(request: DecodeRequest, ms: dict[str, float]) -> str:
        nonlocal decodes
        decodes += 1
        with _timed(ms, "y_decoder", clock):
            return decode_text(backend, request.embedding, cfg.y_decoder, decoder_tokenizer)

    def emit(event: Event) -> None:
        for stage, value in event.ms.items():
            stage_ms[stage].append(value)
        if on_event is not None:
            on_event(event)

    source = iter(frames)
    try:
        while True:
            # -- read: the next source frame; a broken source ends the stream, keeping what was seen
            try:
                t, frame = next(source)
            except StopIteration:
                break
            except Exception as exc:  # any source failure: reported, see the module docstring
                error = f"{type(exc).__name__}: {exc}"
                break
            source_frames += 1

            # -- resample: the model frames (grid times) this source frame fills, usually 0 or 1;
            #    a live source that lags the clock has its frames dropped
            slots = resampler.push(t)
            if not slots or (gate is not None and not gate.admit(t)):
                continue

            # -- preprocess (1/2): short-side resize + centre crop, once per used source frame
            start = clock()
            small = prepare_frame(frame, spec.img_size)  # (S, S, 3) uint8
            prepare_ms += (clock() - start) * 1e3

            for k in slots:
                # -- window: T model frames every `stride` model frames
                window = buffer.push(k, resampler.time(k), small)
                if window is None:
                    continue
                spans.append((window.start, window.end))
                ms, prepare_ms = {"preprocess": prepare_ms}, 0.0

                # -- skip: while the scene holds, the last embedding (and its labels) stands for this window
                with _timed(ms, "preprocess", clock):
                    reused = skip.reuse(window.frames, policy.wants_embedding(window.start, window.end))
                if not reused:
                    # -- preprocess (2/2): stack + normalise
                    with _timed(ms, "preprocess", clock):
                        video = to_video_tensor(window.frames, spec)  # (1, 3, T, S, S) float32

                    # -- x_encoder: clip -> visual tokens
                    with _timed(ms, "x_encoder", clock):
                        visual = run_checked(backend, "x_encoder",
                                             {"video": video})["visual_tokens"]  # (1, N, Dx)

                    # -- predictor: (visual tokens, query) -> the answer's embedding
                    with _timed(ms, "predictor", clock):
                        embedding = run_checked(backend, "predictor", {
                            "visual_tokens": visual, "query_ids": query_ids,
                            "query_mask": query_mask})["embedding"][0]  # (E,)
                    skip.encoded(embedding)

                    # -- label_bank: cosine top-k
                    if label_bank is not None:
                        with _timed(ms, "label_bank", clock):
                            topk = label_bank.topk(embedding, top_k)

                # -- policy, then y_decoder only when it asks
                request = policy.observe(window.index, window.start, window.end, embedding)
                text = decode(request, ms) if request is not None else None

                # -- event
                emit(Event(window.time, window.index, window.start, window.end, topk,
                           decode=request is not None, text=text,
                           span=request.span if request is not None else None, ms=ms, reused=reused))
    except KeyboardInterrupt:
        interrupted = True

    # -- end of stream: offline policies decide now, one decode event per request
    for request in policy.finish():
        ms = {}
        topk = []
        if label_bank is not None:
            with _timed(ms, "label_bank", clock):
                topk = label_bank.topk(request.embedding, top_k)
        text = decode(request, ms)
        first, last = request.span
        emit(Event(request.time, request.window, spans[first][0], spans[last][1], topk,
                   decode=True, text=text, span=request.span, ms=ms))

    backend_ms = sum(sum(stage_ms[stage]) for stage in BACKEND_STAGES)
    return StreamSummary(
        windows=len(spans), decodes=decodes, source_frames=source_frames,
        dropped_frames=gate.dropped if gate is not None else 0,
        stream_s=resampler.num_frames / spec.fps, wall_s=clock() - wall_start, backend_s=backend_ms / 1e3,
        stage_ms={stage: (float(np.percentile(v, 50)), float(np.percentile(v, 90)))
                  for stage, v in stage_ms.items() if v},
        error=error, interrupted=interrupted, reused=skip.reused)
