"""The streaming selective-decoding loop: what a device runs (numpy, scikit-learn; no torch).

frames -> resample -> window -> backend x_encoder -> predictor -> label bank top-k -> decode policy
-> y_decoder greedy decoding when asked -> JSON-lines events (VL-JEPA paper section 4.6); a skip gate
(selective encoding) may let a window reuse the last embedding instead of running the encoder.
Backends (PyTorch reference, ExecuTorch, ONNX Runtime, Core ML) plug in through `Backend`.
"""

from edge_vljepa.streaming.backend import Backend, CheckedBackend, run_checked
from edge_vljepa.streaming.decode import decode_text, greedy_decode
from edge_vljepa.streaming.events import Event, EventWriter, read_events
from edge_vljepa.streaming.label_bank import LabelBank, l2_normalize
from edge_vljepa.streaming.loop import StreamSummary, run_stream
from edge_vljepa.streaming.policies import (
    DEFAULT_POLICY,
    DEFAULT_STRIDE,
    PAPER_RATE_HZ,
    POLICIES,
    ChangePoint,
    DecodeRequest,
    OfflineSegments,
    Online,
    Policy,
    PolicyError,
    Uniform,
    make_policy,
    policy_defaults,
    ward_segments,
)
from edge_vljepa.streaming.skip import SkipGate, skip_defaults
from edge_vljepa.streaming.window import LagGate, Resampler, Window, WindowBuffer

__all__ = [
    "DEFAULT_POLICY", "DEFAULT_STRIDE", "PAPER_RATE_HZ", "POLICIES", "Backend", "ChangePoint",
    "CheckedBackend", "DecodeRequest", "Event", "EventWriter", "LabelBank", "LagGate", "OfflineSegments",
    "Online", "Policy", "PolicyError", "Resampler", "SkipGate", "StreamSummary", "Uniform", "Window",
    "WindowBuffer", "decode_text", "greedy_decode", "l2_normalize", "make_policy", "policy_defaults",
    "read_events", "run_checked", "run_stream", "skip_defaults", "ward_segments",
]
