"""Stream events and their JSON-lines file: what the loop reports for every window and decode.

One JSON object per line:
  {"time": 2.5, "window": 8, "start": 1.5, "end": 3.5,
   "topk": [{"label": "cutting bread", "score": 0.81}, ...],
   "decode": true, "text": "a person cuts bread", "span": [6, 8],
   "ms": {"preprocess": 0.4, "x_encoder": 12.1, "predictor": 3.2, "label_bank": 0.1, "y_decoder": 40.3}}
time: stream seconds the event describes (a window's centre, or a decoded segment's midpoint);
start/end: the stream interval its embedding covers; span: the windows a decoded embedding covers
(null when nothing was decoded); ms: the stages that ran for it; "reused": true (present only then)
marks a window that reused the last embedding and labels (selective encoding, skip.py): no X-Encoder
ran for it. Events from different backends are
compared line by line for end-to-end parity (docs/design.md, parity).

The writer flushes every line, so a crash keeps the events written so far. No torch import.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Event:
    time: float  # s
    window: int
    start: float  # s
    end: float  # s
    topk: list[tuple[str, float]]  # (label, cosine score), best first; empty without a label bank
    decode: bool = False
    text: str | None = None
    span: tuple[int, int] | None = None  # first and last window (inclusive) of a decoded embedding
    ms: dict[str, float] = field(default_factory=dict)  # stage -> milliseconds
    reused: bool = False  # the last embedding stood for this window (selective encoding): no X-Encoder

    def to_json(self) -> str:
        d = {"time": self.time, "window": self.window, "start": self.start, "end": self.end,
             "topk": [{"label": label, "score": score} for label, score in self.topk],
             "decode": self.decode, "text": self.text,
             "span": list(self.span) if self.span is not None else None, "ms": self.ms}
        if self.reused:  # only then: files without selective encoding keep the original keys
            d["reused"] = True
        return json.dumps(d, ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> Event:
        d = json.loads(line)
        return cls(time=d["time"], window=d["window"], start=d["start"], end=d["end"],
                   topk=[(t["label"], t["score"]) for t in d["topk"]], decode=d["decode"],
                   text=d["text"], span=tuple(d["span"]) if d["span"] is not None else None,
                   ms=d["ms"], reused=d.get("reused", False))


class EventWriter:
    """Writes events to a new JSON-lines file, one flushed line each; a context manager.

    Usable directly as the loop's `on_event` callback: `run_stream(..., on_event=writer)`.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.file = self.path.open("w", encoding="utf-8")

    def __call__(self, event: Event) -> None:
        self.file.write(event.to_json() + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_events(path: str | Path) -> list[Event]:
    """All events of a JSON-lines file, in file order."""
    with Path(path).open(encoding="utf-8") as f:
        return [Event.from_json(line) for line in f if line.strip()]
