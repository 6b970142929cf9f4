"""Peak RSS of one component, measured in a fresh process (`experiments.bench` spawns it).

A small module on purpose: the spawned process imports it to find `component_rss`, so everything it
imports at the top counts in the baseline. Each backend's module is imported inside the function,
before the baseline is sampled: the baseline holds the runtime library, the peak adds the component.
"""

from __future__ import annotations

from edge_vljepa.config import ModelConfig
from experiments.host import set_threads
from runtimes.memory import peak_rss_mb, rss_mb


def component_rss(directory: str | None, cfg_dict: dict, checkpoint: str | None, component: str,
                   inputs: dict, threads: int, runs: int) -> tuple[float, float]:
    """In a fresh process: (RSS once the runtime's modules are imported, the highest RSS sampled after
    loading `component` and after each of `runs` calls of its methods), MB (Linux /proc)."""
    set_threads(threads)
    if directory is None:
        from runtimes.backends.pytorch import PyTorchBackend  # noqa: PLC0415 (see the module docstring)
        baseline = rss_mb() or 0.0
        backend = PyTorchBackend(ModelConfig.from_dict(cfg_dict), checkpoint=checkpoint)
    else:
        from runtimes.artifact import Artifact
        from runtimes.backends import CheckedBackend, backend_class
        artifact = Artifact(directory)
        runtime = backend_class(artifact.target)  # the runtime library imported: part of the baseline
        baseline = rss_mb() or 0.0
        backend = CheckedBackend(runtime(artifact))
    peak = rss_mb() or peak_rss_mb()  # no /proc (macOS): ru_maxrss, the process peak
    for method, method_inputs in inputs.items():
        for _ in range(runs):
            backend.run(method, method_inputs)
            peak = max(peak, rss_mb() or peak_rss_mb())
    # sampled, not ru_maxrss: Linux keeps ru_maxrss across the fork + exec that spawns this process,
    # so it would report the parent's peak
    return baseline, peak
