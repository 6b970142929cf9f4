"""The flow every exporter shares: flags, reference, real data, artifact directory, parity, report.

`python -m export.to_executorch`, `export.to_onnx` and `export.to_coreml` differ only in how one
component becomes file(s) and which runtime loads them; each defines a `Target` with that part and
calls `main(target, argv)`, which does the rest the same way for all of them:

  1. flags (the common ones here, the target's in `Target.add_arguments`); bad input exits 2 before
     any work and writes nothing;
  2. the PyTorch reference (a --checkpoint, the preset's shipped weights, or random init) and labels;
  3. real inputs of every contract method, recorded while the reference makes the streaming loop's
     calls on decoded video frames (export/calibration.py): calibration data and golden data;
  4. per component, `Target.lower` writes its file(s) into an ArtifactBuilder (a temporary directory
     renamed into place at the end: a failure half-way leaves nothing that looks complete);
  5. parity against the reference through the target's runtime on this host (edge_vljepa/parity.py), or
     the reason it cannot run here: the gates are every tensor tolerance, decode-event F1 and, for a
     model trained on the synthetic world, the drop of its ground-truth task metrics on held-out clips
     (edge_vljepa/task_gate.py); random weights (the tiny preset) have no tasks: tensor gates only;
  6. a summary; exit 0 (tolerances met, or parity cannot run here), 1 (written, but tolerances
     missed; the failures are listed), 2 (bad input or a failed export; nothing written).

`--quant auto` picks each component's precision before step 4: the cheapest whose gates pass
(export/auto.py). `--parity-only DIR` runs step 5 on an existing artifact (e.g. a Core ML one, on a
Mac, where Core ML can execute) and records the result in its manifest.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import logging
import os
import signal
import sys
import tempfile
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from edge_vljepa.cli import (
    HelpFormatter,
    add_model_arguments,
    exits_quietly_on_interrupt,
    quiet_known_library_noise,
)
from edge_vljepa.config import CAPTION_QUERY, ConfigError, resolve_config
from edge_vljepa.contract import MethodSpec, build_contract
from edge_vljepa.data.video import VideoError
from edge_vljepa.models import COMPONENTS
from edge_vljepa.parity import (
    TASK_TOLERANCES,
    decode_agreement,
    failures,
    label_agreement,
    latency_ms,
    task_bound,
    task_passes,
    tensor_parity,
)
from edge_vljepa.preprocess import TextTooLongError
from edge_vljepa.pretrained import shipped_checkpoint
from edge_vljepa.recording import clip_windows, loop_calls, parity_inputs, record_inputs, reference_components
from edge_vljepa.task_gate import heldout_clips, task_items, task_parity
from edge_vljepa.weights import CheckpointError
from export import auto
from export.artifact import ArtifactBuilder, ExportError, OutLock, check_out_dir
from export.calibration import stream_file, video_files
from export.reference import default_labels, model_and_reference, with_tokenizers
from runtimes.artifact import MANIFEST, Artifact, ArtifactError, file_sha256
from runtimes.backends import set_threads
from runtimes.backends.onnxruntime import OnnxRuntimeBackend
from runtimes.backends.pytorch import exported_from

quiet_known_library_noise()  # before a converter imports torchao
MAX_CALIBRATION_CALLS = 32  # per method, evenly spread over the recorded calls (e.g. 672 labels)
# threads of both sides while the latency table is measured: one fixed count, the same for both
LATENCY_THREADS = min(4, os.cpu_count() or 1)
INSTALL_EXPORT = 'pip install -e ".[export]"'


class Target:
    """What one exporter adds to the shared flow: its flags, checks, lowering and runtime."""

    name: str  # the manifest's `target`: which runtime loads the artifact (executorch, onnxruntime, coreml)
    prog: str  # python -m export.to_...
    description: str  # --help
    runtime: str  # what parity runs through on this host, for the report
    quant_modes: tuple[str, ...]
    requires: tuple[str, ...] = ()  # the converter's modules, checked before any work (INSTALL_EXPORT)
    columns: tuple[str, ...] = ()  # target-specific columns of the summary table

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Target-specific flags."""

    def check(self, args, quant: dict[str, str]) -> None:
        """Raise ExportError for a combination this target cannot export (before any work)."""

    def describe(self, args) -> str:
        return self.name

    def lower(self, model, component: str, mode: str, calib: dict[str, list[dict]], art: ArtifactBuilder,
              args) -> dict:
        """Write `component` in precision `mode` under `art.dir`; return its manifest entry:
        `method_files` ({method: file}) plus target-specific information."""
        raise NotImplementedError

    def finish(self, art: ArtifactBuilder, args) -> None:
        """After every component is written, before the manifest (e.g. derived mobile formats)."""

    def parity_unavailable(self, manifest: dict, out: Path) -> str | None:
        """Why the artifact at `out` cannot run on this host (recorded as the parity status), or None."""
        return None

    def backend(self, artifact: Artifact):
        """The runtime backend that runs the artifact (contract methods over numpy arrays)."""
        raise NotImplementedError

    def summary_row(self, info: dict, files: dict) -> tuple[str, ...]:
        """Values of `columns` for one component's manifest entry (`files`: the manifest's file list)."""
        return ()

    def notes(self, info: dict) -> list[str]:
        """Extra lines under a component's summary row."""
        return []


@contextlib.contextmanager
def quiet():
    """Silence the converters' chatter (torchvision-not-installed warnings, progress bars, 'consider
    pre-processing' hints) on stdout, stderr, logging and warnings; errors still raise."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


@contextlib.contextmanager
def one_line_errors(what: str):
    """A converter's own exception (torch.export, torch.onnx, coremltools, ExecuTorch) as an ExportError
    of one line, `what: Type: first line`, instead of a deep library traceback."""
    try:
        yield
    except ExportError:
        raise
    except Exception as e:
        first = next((line for line in str(e).splitlines() if line.strip()), "")
        raise ExportError(f"{what}: {type(e).__name__}: {first}") from None


def as_args(spec: MethodSpec, inputs: dict[str, np.ndarray]) -> tuple[torch.Tensor, ...]:
    """A recorded call as the positional tensors of the method's module (contract input order)."""
    return tuple(torch.from_numpy(np.ascontiguousarray(inputs[t.name])) for t in spec.inputs)


def calibration_calls(recorded: list[dict], limit: int = MAX_CALIBRATION_CALLS) -> list[dict]:
    """At most `limit` of a method's recorded calls, evenly spread (label banks record hundreds)."""
    step = max(1, len(recorded) // limit)
    return recorded[::step][:limit]


def parse_overrides(items: list[str], modes: tuple[str, ...]) -> dict[str, str]:
    out, modes = {}, (*modes, "auto")
    for item in items:
        component, _, mode = item.partition("=")
        if component not in COMPONENTS or mode not in modes:
            raise ExportError(f"--quant-component {item!r}: expected COMPONENT=MODE with COMPONENT in "
                              f"{', '.join(COMPONENTS)} and MODE in {', '.join(modes)}")
        out[component] = mode
    return out


def parse_tokenizers(items: list[str]) -> dict[str, str]:
    files = dict(item.partition("=")[::2] for item in items)
    bad = [item for item in items if "=" not in item or not all(item.partition("=")[::2])]
    if bad:
        raise ExportError(f"--tokenizer {bad[0]!r}: expected NAME=PATH, e.g. llama3=ckpt/Llama-3.2-1B")
    return files


def check_requirements(target: Target) -> None:
    """Import the target's converter modules first: a missing one is one line naming the pip command,
    not a bare ModuleNotFoundError after a minute of work."""
    for module in target.requires:
        try:
            importlib.import_module(module)
        except ImportError:
            raise ExportError(f"{module} is not installed; the {target.name} exporter needs it: "
                              f"{INSTALL_EXPORT}") from None


def build_parser(target: Target) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=target.prog, description=target.description,
                                formatter_class=HelpFormatter)
    add_model_arguments(p)
    p.add_argument("--checkpoint", action="append", default=[], metavar="[COMPONENT=]PATH",
                   help="weights (default: the preset's shipped weights if any, else random weights): one "
                        "native .safetensors, or upstream checkpoints assembled into the model, e.g. an "
                        "Open-VLJEPA best.pt plus x_encoder=vjepa2-vitl-fpc64-256/, or x_encoder=vitl.pt "
                        "predictor=Llama-3.2-1B/ "
                        "y_encoder=embeddinggemma-300m/ (repeatable; the config is derived from their shapes "
                        "and config.json on top of --preset, default paper, unless --config is given)")
    p.add_argument("--random-weights", nargs="+", default=[], choices=COMPONENTS, metavar="COMPONENT",
                   help="with upstream --checkpoint sources: components none of them provides, exported "
                        "untrained on purpose (e.g. y_decoder, which no public checkpoint has)")
    target.add_arguments(p)
    p.add_argument("--tokenizer", action="append", default=[], metavar="NAME=PATH",
                   help="tokenizer.json (or its folder) of a tokenizer the preset names, e.g. "
                        "llama3=ckpt/Llama-3.2-1B (repeatable; none can be downloaded here)")
    p.add_argument("--components", nargs="+", default=list(COMPONENTS), choices=COMPONENTS,
                   help="export only these (a partial artifact: benchmarks and tensor parity run on it; the "
                        "streaming loop and task parity need all four)")
    p.add_argument("--quant", default="fp32", choices=(*target.quant_modes, "auto"),
                   help="precision of every component; auto: per component the cheapest (smallest file, "
                        "then fastest here) whose gates pass, searched from the cheapest up (the table of "
                        "what was tried goes into the report and the manifest)")
    p.add_argument("--quant-component", action="append", default=[], metavar="COMPONENT=MODE",
                   help="per-component override, e.g. predictor=fp16 or predictor=auto (repeatable)")
    p.add_argument("--calibration", type=Path, help="video file or folder of videos for int8 calibration "
                                                     "(default: synthetic-world validation clips)")
    p.add_argument("--calibration-windows", type=int, default=16, help="windows used to calibrate")
    p.add_argument("--parity-windows", type=int, default=100,
                   help="held-out windows for label agreement and held-out clips for the task gate (each is "
                        "one eager and one artifact X-Encoder run: lower it for the paper preset)")
    p.add_argument("--no-parity", action="store_true", help="skip the parity run (it is recorded as skipped)")
    p.add_argument("--out", type=Path, help="artifact directory to create (required unless --parity-only)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists and is not empty")
    p.add_argument("--parity-only", type=Path, metavar="ARTIFACT",
                   help="run the parity of an existing artifact of this target against the PyTorch reference "
                        "and record it in its manifest (the preset comes from the artifact)")
    return p


def error(e: Exception) -> int:
    print(f"error: {e}", file=sys.stderr)
    return 2


def _terminated(signum, frame):
    raise SystemExit(128 + signum)  # unwinds like Ctrl-C: the partial artifact directory is removed


@exits_quietly_on_interrupt
def main(target: Target, argv=None) -> int:
    args = build_parser(target).parse_args(argv)
    signal.signal(signal.SIGTERM, _terminated)
    try:
        check_requirements(target)
    except ExportError as e:
        return error(e)
    if args.parity_only is not None:
        return parity_only(target, args)
    lock = OutLock(args.out) if args.out is not None else None
    try:
        return export(target, args, lock)
    finally:
        if lock is not None:
            lock.release()


def export(target: Target, args, lock: OutLock | None) -> int:
    """Steps 1-6 of the module docstring; `lock` (on --out) is taken before the reference loads."""
    try:
        cfg = resolve_config(args.preset, args.config)
        overrides = parse_overrides(args.quant_component, target.quant_modes)
        components = [c for c in COMPONENTS if c in args.components]
        left_out = sorted(set(overrides) - set(components))
        if left_out:
            raise ExportError(f"--quant-component names {', '.join(left_out)}, which --components leaves out")
        quant = dict.fromkeys(components, args.quant) | overrides
        target.check(args, quant)
        if min(args.calibration_windows, args.parity_windows) < 1:
            raise ExportError("--calibration-windows and --parity-windows must be >= 1")
        if args.out is None:
            raise ExportError("--out is required (the artifact directory to create)")
        check_out_dir(args.out, args.force)
        lock.acquire()
        files = parse_tokenizers(args.tokenizer)

        def random_text(cfg) -> bool:  # text means nothing to the model: a stand-in tokenizer may do
            return ((not args.checkpoint and shipped_checkpoint(cfg.name) is None)
                    or {"predictor", "y_encoder"} <= set(args.random_weights))
        # checked before upstream weights are read (minutes at the paper's size): a missing one fails first
        reference, checkpoint, sources, config_notes = model_and_reference(
            args, lambda cfg: with_tokenizers(cfg, files, random_text(cfg)))
        random_weights = random_text(reference.cfg)
        cfg, tokenizer_notes = with_tokenizers(reference.cfg, files, random_weights)
        reference.cfg, reference.contract = cfg, build_contract(cfg)
        reference.release(set(COMPONENTS) - reference_components(quant))
    except (ExportError, ConfigError, CheckpointError) as e:
        return error(e)

    print(f"preset      {cfg.name} ({checkpoint})")
    print(f"target      {target.describe(args)}")
    print("precision   " + ", ".join(f"{c} {q}" for c, q in quant.items()))
    print(f"out         {args.out}")
    for leftover in lock.cleaned:
        print(f"cleaned     {leftover} (left by an interrupted export)")
    for note in config_notes:
        print(f"config      {note}")
    for component, source in (sources or {}).items():
        fmt = f" ({source['format']})" if "format" in source else ""
        print(f"weights     {component}: {source['source']}{fmt}")
    for note in tokenizer_notes:
        print(f"note        {note}")
    start = time.perf_counter()
    labels = default_labels(cfg)
    try:
        with ArtifactBuilder(args.out, args.force, target.name, cfg, checkpoint, lock=lock) as art:
            if sources is not None:
                art.manifest["model"]["sources"] = sources  # each component's file(s) and sha256
            tmp = art.scratch
            print("data        recording calibration inputs (real decoded frames)...", flush=True)
            n = args.calibration_windows
            videos = video_files(args.calibration, cfg, "validation", n, tmp / "calibration")
            calib_windows = clip_windows(videos, cfg, n)
            kept = calibration_calls(labels)  # the labels calibration keeps; add_shared embeds them all
            calib = record_inputs(reference, cfg, calib_windows, *loop_calls(quant, kept))
            gate = task_gate_reason(quant, random_weights, sources is not None)
            lowered = {}  # component -> the scratch artifact --quant auto chose it from
            if "auto" in quant.values():
                quant, art.manifest["quant_auto"], lowered = choose_auto(target, reference, quant, calib,
                                                                         labels, args, tmp, gate)
            t_data = time.perf_counter()
            for component in tqdm(quant, desc="lowering", unit="component"):
                t = time.perf_counter()
                if component in lowered:
                    entry = auto.copy_component(lowered[component], component, art)
                else:
                    entry = lower(target, args, reference, calib, component, quant[component], art)
                art.add_component(component, entry.pop("method_files"), quant=quant[component], **entry,
                                  export_s=round(time.perf_counter() - t, 2))
            with one_line_errors(f"the {target.name} export failed"):
                target.finish(art, args)
            t_lowered = time.perf_counter()
            art.add_shared(reference, labels, calib, quant)
            art.write_manifest()
            t_shared = time.perf_counter()
            reason = None if args.no_parity else target.parity_unavailable(art.manifest, args.out)
            parity, failed = run_parity(target, art.dir, reference, labels, quant, args, tmp, reason, gate,
                                        random_weights)
            art.manifest["parity"] = parity
            art.manifest["timings_s"] = {"data": round(t_data - start, 1),
                                         "lowering": round(t_lowered - t_data, 1),
                                         "label_bank_and_golden": round(t_shared - t_lowered, 1),
                                         "parity": round(time.perf_counter() - t_shared, 1)}
            out = art.commit()
    except (ExportError, ArtifactError, TextTooLongError, VideoError) as e:
        return error(e)
    return report(target, out, art.manifest, time.perf_counter() - start, failed)


def lower(target: Target, args, reference, calib, component: str, mode: str, art: ArtifactBuilder) -> dict:
    """Target.lower with one-line errors and the converters' chatter silenced."""
    with one_line_errors(f"{component}: the {target.name} conversion failed"), quiet():
        return target.lower(reference.model, component, mode, calib, art, args)


def task_gate_reason(quant: dict[str, str], random_weights: bool, own_model: bool) -> str | None:
    """Why the task gate cannot run for this export (None: it runs)."""
    if set(quant) != set(COMPONENTS):
        return "labels, tasks and decode events need all four components"
    if random_weights:
        return ("random weights: they have no tasks to lose (labels and decode events are reported, not "
                "gated); the tensor gates decide")
    if own_model:
        return ("a model of your own: the synthetic world's held-out clips are not its ground truth; the "
                "agreement measures (labels, decode events) are reported")
    return None


def choose_auto(target: Target, reference, quant: dict[str, str], calib, labels: list[str], args, tmp: Path,
                gate: str | None) -> tuple[dict[str, str], dict, dict[str, Path]]:
    """--quant auto (export/auto.py): the chosen precisions, the evidence for the manifest and the scratch
    artifacts that hold the chosen components."""
    cfg = reference.cfg
    n = args.parity_windows
    windows = clip_windows(video_files(None, cfg, "test", min(n, 4), tmp / "auto-parity"), cfg, 4)
    recorded = parity_inputs(reference, cfg, windows, labels, quant)
    clips = None if gate else heldout_clips(cfg, n, tmp / "auto-tasks")
    threads = torch.get_num_threads()
    set_threads(LATENCY_THREADS)
    try:
        search = auto.Search(reference, recorded, clips, None if gate else stream_file(tmp / "auto-stream"))
        lowering = partial(lower, target, args, reference, calib)
        chosen, evidence, lowered = auto.choose(target, reference, quant, lowering, calib, labels, search,
                                                tmp / "auto")
    finally:
        set_threads(threads)
        OnnxRuntimeBackend.threads = None
    evidence["task_gate"] = gate or "ran"
    print("\n".join(["auto        what was tried, per component, in order:", *auto.format_table(evidence)]))
    return chosen, evidence, lowered


def run_parity(target: Target, directory: Path, reference, labels: list[str], quant: dict[str, str], args,
               tmp: Path, unavailable: str | None, gate: str | None,
               random_weights: bool) -> tuple[dict, list[str]]:
    """Tensor, latency and task parity of the artifact in `directory` against `reference`; `gate`: why
    the task gate cannot run (None: it runs)."""
    if args.no_parity:
        return {"status": "skipped (--no-parity)"}, []
    if unavailable:
        return {"status": unavailable}, []
    print(f"parity      held-out clips and a held-out stream through {target.runtime}...", flush=True)
    threads = torch.get_num_threads()
    set_threads(LATENCY_THREADS)  # both sides alike, whatever each runtime's default; before any session
    try:
        return _run_parity(target, directory, reference, labels, quant, args, tmp, gate, random_weights)
    finally:
        set_threads(threads)
        OnnxRuntimeBackend.threads = None  # sessions opened later: ONNX Runtime's default again


def _run_parity(target: Target, directory: Path, reference, labels: list[str], quant: dict[str, str], args,
                tmp: Path, gate: str | None, random_weights: bool) -> tuple[dict, list[str]]:
    """run_parity's measurements, with the thread count fixed."""
    cfg = reference.cfg
    artifact = Artifact(directory)
    candidate = target.backend(artifact)
    whole = set(quant) == set(COMPONENTS)
    n = args.parity_windows if whole else min(args.parity_windows, 4)  # partial: tensor parity only
    windows = clip_windows(video_files(None, cfg, "test", n, tmp / "parity"), cfg, n)
    contract = build_contract(cfg)
    recorded = parity_inputs(reference, cfg, windows, labels, quant)
    recorded = {method: calls for method, calls in recorded.items() if contract[method].component in quant}
    tensors = tensor_parity(reference, candidate, recorded)
    latency = latency_ms(reference, candidate, recorded)
    tasks = {}
    if whole:
        bank = artifact.label_bank()  # the reference's embeddings of `labels`, as shipped
        tasks = {"labels": label_agreement(reference, candidate, cfg, windows, bank, CAPTION_QUERY),
                 "decode_events": decode_agreement(reference, candidate, cfg, stream_file(tmp / "stream"),
                                                   CAPTION_QUERY),
                 "task_gate": {"not_run": gate}, "random_weights": random_weights}
        if gate is None:
            clips = heldout_clips(cfg, args.parity_windows, tmp / "tasks")
            tasks["task_gate"] = task_parity(task_items(reference, cfg, clips),
                                             task_items(candidate, cfg, clips), clips)
    failed = failures(quant, tensors, tasks, contract)
    return {"status": "fail" if failed else "pass", "host": target.runtime, "tensors": tensors,
            "latency_ms": {"threads": LATENCY_THREADS, **latency}, "tasks": tasks,
            "failures": failed}, failed


def parity_only(target: Target, args) -> int:
    """Parity of an existing artifact (e.g. Core ML on a Mac), written into its manifest.json."""
    try:
        if args.no_parity:
            raise ExportError("--parity-only runs the parity; drop --no-parity")
        artifact = Artifact(args.parity_only)
        if artifact.target != target.name:
            raise ExportError(f"{artifact.dir} is a {artifact.target!r} artifact, not a {target.name!r} one")
        unavailable = target.parity_unavailable(artifact.manifest, artifact.dir)
        if unavailable:
            raise ExportError(unavailable)
        model = artifact.manifest["model"]
        checkpoint = Path(args.checkpoint[0]) if args.checkpoint else None
        reference, weights = exported_from(artifact, checkpoint)
        if "sources" not in model and model["checkpoint_sha256"] != (
                file_sha256(Path(weights)) if Path(weights).is_file() else None):
            raise ExportError(f"the reference weights ({weights}) are not the ones {artifact.dir} was "
                              f"exported from ({model['checkpoint']}); pass that file with --checkpoint")
    except (ExportError, ArtifactError, ConfigError, CheckpointError, FileNotFoundError) as e:
        return error(e)
    print(f"preset      {artifact.cfg.name} ({weights})")
    print(f"artifact    {artifact.dir} ({target.describe(args)})")
    start = time.perf_counter()
    quant = {c: info["quant"] for c, info in artifact.manifest["components"].items()}
    labels = ([str(x) for x in np.load(artifact.dir / artifact.manifest["label_bank"])["labels"]]
              if "label_bank" in artifact.manifest else default_labels(artifact.cfg))
    random_weights = model["checkpoint"] in (None, "random weights")
    gate = task_gate_reason(quant, random_weights, "sources" in model)
    try:
        with tempfile.TemporaryDirectory(prefix="edge-vljepa-data-") as tmp:
            parity, failed = run_parity(target, artifact.dir, reference, labels, quant, args, Path(tmp), None,
                                        gate, random_weights)
    except (ExportError, ArtifactError, TextTooLongError) as e:
        return error(e)
    manifest = artifact.manifest | {"parity": parity}
    (artifact.dir / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return report(target, artifact.dir, manifest, time.perf_counter() - start, failed)


def report(target: Target, out: Path, manifest: dict, seconds: float, failed: list[str]) -> int:
    """Print the summary; the exit status (0 pass or not runnable here, 1 tolerances missed)."""
    print_summary(target, out, manifest, seconds)
    if failed:
        print("PARITY FAILED (the artifact was written; see manifest.json 'parity'):")
        for line in failed:
            print(f"  {line}")
        return 1
    return 0


def task_gate_lines(gate: dict, tolerances: dict) -> list[str]:
    """The task gate's table (each task on both sides, the drop, its interval, the bound, the verdict), or
    the line that says why it did not run."""
    if "metrics" not in gate:
        return [f"task gate   not run: {gate.get('not_run', 'not recorded')}"]
    tol = {**TASK_TOLERANCES, **tolerances.get("task", {})}
    lines = [f"task gate   {gate['clips']} held-out clips ({gate['held_out_combinations']} of combinations "
             f"never seen in training), artifact against fp32 PyTorch on the same clips; paired bootstrap "
             f"{tol['interval']:.0%} interval; pass: drop <= bound or the interval reaches 0",
             f"  {'task':<42}{'fp32':>8}{'artifact':>10}{'drop':>9}{'interval':>19}{'bound':>8}  verdict"]
    for name, m in gate["metrics"].items():
        low, high = m["interval"]
        unit = " rel" if m["relative"] else ""
        lines.append(f"  {name:<42}{m['reference']:>8.3f}{m['candidate']:>10.3f}{m['drop']:>+9.3f}"
                     f"{f'[{low:+.3f}, {high:+.3f}]':>19}{task_bound(m, tol):>5.2f}{unit:<4} "
                     f"{'pass' if task_passes(m, tol) else 'FAIL'}")
    return lines


def print_summary(target: Target, out: Path, manifest: dict, seconds: float) -> None:
    parity = manifest["parity"]
    print(f"\n{'component':<12}{'quant':<14}{'size MB':>9}" + "".join(f"{c:>11}" for c in target.columns)
          + f"  {'worst cosine':>12}{'max abs':>11}")
    for component, info in manifest["components"].items():
        size = sum(manifest["files"][f]["size"] for f in set(info["method_files"].values())) / 1e6
        cos = mx = ""
        if "tensors" in parity:
            metrics = [m for method in info["methods"] for m in parity["tensors"][method]["outputs"].values()]
            cos, mx = f"{min(m['cosine'] for m in metrics):.6f}", f"{max(m['max_abs'] for m in metrics):.2e}"
        extra = "".join(f"{v:>11}" for v in target.summary_row(info, manifest["files"]))
        print(f"{component:<12}{info['quant']:<14}{size:>9.2f}{extra}  {cos:>12}{mx:>11}")
        for line in target.notes(info):
            print(f"  {line}")
    latency = parity.get("latency_ms", {})
    if latency:
        print(f"\nmedian latency, ms ({latency['threads']} threads each; eager PyTorch fp32 in the same run, "
              "calls interleaved)")
        if latency.get("reliable") is False:
            print(f"UNRELIABLE: the load average reached {latency['load_average']:.1f} on "
                  f"{os.cpu_count()} cores while measuring; for figures, run python -m experiments.bench "
                  "artifacts on an idle machine")
        print(f"{'method':<20}{target.name:>12}{'eager':>10}{'ratio':>8}")
        for method, t in latency.items():
            if isinstance(t, dict):
                print(f"{method:<20}{t['candidate']:>12.2f}{t['reference']:>10.2f}{t['ratio']:>8.2f}")
    if parity.get("tasks") == {}:
        print("tasks       not run: labels, tasks and decode events need all four components")
    elif "tasks" in parity:
        lab, dec = parity["tasks"]["labels"], parity["tasks"]["decode_events"]
        print(f"top-1 label agreement {lab['top1_agreement']:.1%} on {lab['windows']} held-out windows with "
              f"the shipped label bank, {lab['own_bank_top1_agreement']:.1%} with a bank of the artifact's "
              f"own Y-Encoder (custom labels); reference top-1/top-2 margin p10 "
              f"{lab['reference_margin_p10']:.4f} (reported, not gated)")
        gated = "reported, not gated" if parity["tasks"].get("random_weights") else "gated"
        print(f"decode events F1 {dec['f1']:.2f} ({dec['candidate_decodes']} vs {dec['reference_decodes']} "
              f"reference), caption agreement {dec['caption_agreement']:.1%} ({gated})")
        gate = parity["tasks"].get("task_gate", {})
        print("\n".join(task_gate_lines(gate, manifest.get("tolerances", {}))))
    if "quant_auto" in manifest:
        print(f"\n--quant auto: what was tried, per component, in order ({manifest['quant_auto']['gates']})")
        print("\n".join(auto.format_table(manifest["quant_auto"])))
    print(f"parity      {parity['status']}")
    print(f"wrote {out} in {seconds:.1f} s")
