"""edge-vljepa: export-friendly VL-JEPA models and the streaming selective-decoding loop."""

__version__ = "0.1.0"
