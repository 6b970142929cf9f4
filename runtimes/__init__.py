"""Runtimes: backends that run the contract's methods, and the CLIs that run the streaming loop on them.

Backends implement `edge_vljepa.streaming.Backend` (`run(method, inputs) -> outputs`). `pytorch` is
the reference (the eager model); the artifact backends (ExecuTorch, ONNX Runtime, Core ML) load an
exported artifact directory and never import `edge_vljepa.models`; `backends.open_backend` picks one
by the manifest's target. CLIs: `stream` (the loop on a video or camera), `parity` (an artifact
against its reference), `selective` (the selective-decoding experiment).
"""
