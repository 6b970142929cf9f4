"""`--quant auto`: per component, the cheapest precision whose gates pass (which artifact to ship).

For each component marked auto, with every other component left at the fp32 reference:
  1. lower it in each precision of the cheapest tier the target has (4- and 8-bit weights; then fp16;
     then fp32, tried only when nothing cheaper passes) into a scratch artifact, and measure its
     file size and its latency on this machine (median of the component's methods, LATENCY_THREADS);
  2. order the tier cheapest first: smallest file; files within SAME_SIZE of each other, the faster first;
  3. gate them in that order and keep the first that passes: its tensor tolerances, and when the task
     gate runs (trained weights of the synthetic world, all four components), the task metrics and
     decode-event F1 of the reference with this one component swapped in (edge_vljepa.parity).
What was tried, with every figure and why each candidate was refused, is returned for the manifest
(`quant_auto`) and the report; the exporter then lowers the chosen precisions and gates the whole
artifact like any other, so the combination is checked as well as each part.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edge_vljepa.config import CAPTION_QUERY
from edge_vljepa.contract import build_contract
from edge_vljepa.parity import event_agreement, failures, record_stream, tensor_parity
from edge_vljepa.streaming import DEFAULT_STRIDE, run_checked
from edge_vljepa.task_gate import TASKS, task_items, task_parity
from export.artifact import ArtifactBuilder, ExportError
from runtimes.artifact import MANIFEST, Artifact

SAME_SIZE = 1.05  # files within 5% of each other count as one size: the faster is cheaper
BITS = {"8da4w": 4, "palettize4": 4, "int8": 8, "int8-dynamic": 8, "8da8w": 8, "int8-weights": 8,
        "fp16": 16, "fp32": 32}  # nominal bits per weight: the search's tiers are {4, 8}, {16}, {32}
LATENCY_RUNS = 5


def tiers(modes: tuple[str, ...]) -> list[list[str]]:
    """The target's precisions in search tiers, cheapest first."""
    out: dict[int, list[str]] = {}
    for mode in modes:
        out.setdefault(max(8, BITS[mode]), []).append(mode)
    return [out[bits] for bits in sorted(out)]


def cheapest_first(rows: list[dict]) -> list[dict]:
    """Candidates (size_bytes, latency_ms) by size; a run of sizes within SAME_SIZE by latency."""
    rows = sorted(rows, key=lambda r: r["size_bytes"])
    out, group = [], []
    for row in rows:
        if group and row["size_bytes"] > SAME_SIZE * group[0]["size_bytes"]:
            out += sorted(group, key=lambda r: r["latency_ms"])
            group = []
        group.append(row)
    return out + sorted(group, key=lambda r: r["latency_ms"])


class Memo:
    """The reference backend, its outputs of the methods upstream of a swapped-in component kept by
    input (each candidate re-runs the same clips; only the swapped component's outputs change)."""

    CACHED = ("x_encoder", "predictor", "y_encoder")

    def __init__(self, backend):
        self.backend, self.contract, self.name = backend, backend.contract, "pytorch"
        self.memo: dict[tuple, dict] = {}

    def run(self, method: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if method not in self.CACHED:
            return self.backend.run(method, inputs)
        digest = hashlib.sha1(b"".join(np.ascontiguousarray(v).tobytes() for v in inputs.values())).digest()
        key = (method, digest)
        if key not in self.memo:
            self.memo[key] = self.backend.run(method, inputs)
        return self.memo[key]


class Swapped:
    """The reference with the methods of one component run by a candidate backend."""

    def __init__(self, reference, candidate, component: str):
        self.reference, self.candidate, self.component = reference, candidate, component
        self.contract, self.name = reference.contract, f"{component} candidate"

    def run(self, method: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        side = self.candidate if self.contract[method].component == self.component else self.reference
        return side.run(method, inputs)


def component_latency_ms(backend, recorded: dict[str, list[dict]], methods: list[str]) -> float:
    """Sum over `methods` of the median time of one call on its first recorded input (after a warm-up)."""
    total = 0.0
    for method in methods:
        run_checked(backend, method, recorded[method][0])
        times = []
        for _ in range(LATENCY_RUNS):
            start = time.perf_counter()
            backend.run(method, recorded[method][0])
            times.append((time.perf_counter() - start) * 1e3)
        total += float(np.median(times))
    return total


def lower_alone(target, reference, component: str, mode: str, lower, calib, labels: list[str],
                directory: Path) -> Artifact:
    """A scratch artifact holding `component` alone in `mode` (a label bank of labels[:1] only: the gates
    bring theirs); lower(component, mode, art): the exporter's lowering (Target.lower, one-line errors)."""
    with ArtifactBuilder(directory, False, target.name, reference.cfg, None) as art:
        entry = lower(component, mode, art)
        art.add_component(component, entry.pop("method_files"), quant=mode, **entry)
        art.add_shared(reference, labels[:1], calib, {component: mode})
        return Artifact(art.commit())


class Search:
    """The gates every candidate meets, with the reference's side of each computed once."""

    def __init__(self, reference, recorded: dict[str, list[dict]], clips, stream: Path | None):
        self.reference = Memo(reference)
        self.cfg, self.recorded, self.clips, self.stream = reference.cfg, recorded, clips, stream
        self.contract = build_contract(self.cfg)
        self.task_gate = clips is not None
        if self.task_gate:
            print("auto        the fp32 reference's task metrics and decode events...", flush=True)
            self.ref_items = task_items(self.reference, self.cfg, clips)
            self.ref_stream = record_stream(self.reference, self.cfg, stream, CAPTION_QUERY)

    def gate(self, component: str, mode: str, candidate) -> dict:
        """The candidate's figures and the failures of its gates (tensor first, the rest when those pass)."""
        methods = [m.name for m in self.contract.for_component(component)]
        tensors = tensor_parity(self.reference, candidate, {m: self.recorded[m] for m in methods})
        metrics = [m for r in tensors.values() for m in r["outputs"].values()]
        row = {"worst_cosine": min(m["cosine"] for m in metrics),
               "max_abs": max(m["max_abs"] for m in metrics)}
        tasks: dict = {}
        failed = failures({component: mode}, tensors, tasks, self.contract)
        if not failed and self.task_gate:
            swapped = Swapped(self.reference, candidate, component)
            gate = task_parity(self.ref_items, task_items(swapped, self.cfg, self.clips), self.clips)
            stream = record_stream(swapped, self.cfg, self.stream, CAPTION_QUERY)
            tasks = {"task_gate": gate, "decode_events": event_agreement(
                self.ref_stream.decodes, stream.decodes, DEFAULT_STRIDE / self.cfg.fps)}
            failed = failures({component: mode}, tensors, tasks, self.contract)
            row |= {"task_drops": {name: gate["metrics"][name]["drop"] for name in TASKS},
                    "decode_f1": tasks["decode_events"]["f1"]}
        return row | {"verdict": "fail" if failed else "pass", "failures": failed}


def copy_component(directory: Path, component: str, art) -> dict:
    """Copy `component`'s files from the scratch artifact in `directory` into the ArtifactBuilder `art`;
    its manifest entry as Target.lower returns it (the chosen candidate is not lowered twice)."""
    entry = dict(json.loads((directory / MANIFEST).read_text())["components"][component])
    for file in set(entry["method_files"].values()):
        shutil.copyfile(directory / file, art.path(file))
    for key in ("methods", "file", "quant", "export_s"):
        entry.pop(key, None)
    return entry


def choose(target, reference, quant: dict[str, str], lower, calib, labels: list[str], search: Search,
           workdir: Path) -> tuple[dict[str, str], dict, dict[str, Path]]:
    """`quant` with every "auto" replaced by the cheapest precision whose gates pass; the evidence:
    {component: [one row per candidate, in the order tried]} plus how they were ordered and gated; and
    the scratch artifact of each chosen component."""
    chosen, tried, lowered = dict(quant), {}, {}
    for component in [c for c, mode in quant.items() if mode == "auto"]:
        methods = [m.name for m in search.contract.for_component(component)]
        rows = tried[component] = []
        for tier in tiers(target.quant_modes):
            candidates = []
            for mode in tqdm(tier, desc=f"auto {component}", unit="precision", leave=False):
                directory = workdir / f"{component}-{mode}"
                try:
                    artifact = lower_alone(target, reference, component, mode, lower, calib, labels,
                                           directory)
                except ExportError as e:
                    rows.append({"mode": mode, "verdict": "does not lower", "failures": [str(e)]})
                    continue
                backend = target.backend(artifact)
                size = sum(artifact.manifest["files"][f]["size"]
                           for f in set(artifact.manifest["components"][component]["method_files"].values()))
                latency = component_latency_ms(backend, search.recorded, methods)
                candidates.append({"mode": mode, "size_bytes": size, "latency_ms": round(latency, 3),
                                   "backend": backend, "directory": directory})
            for row in cheapest_first(candidates):
                backend, directory = row.pop("backend"), row.pop("directory")
                if chosen[component] != "auto":
                    row["verdict"] = "not tried (a cheaper one passed)"
                else:
                    row |= search.gate(component, row["mode"], backend)
                    if row["verdict"] == "pass":
                        chosen[component], lowered[component] = row["mode"], directory
                rows.append(row)
                del backend
                if lowered.get(component) != directory:
                    shutil.rmtree(directory, ignore_errors=True)
            if chosen[component] != "auto":
                break
        if chosen[component] == "auto":  # nothing passed, fp32 included: the whole artifact's gate says why
            chosen[component] = "fp32"
    gates = ("tensor tolerances, task metrics and decode-event F1 with this component swapped into the fp32 "
             "reference" if search.task_gate else "tensor tolerances only: no task gate, see the parity")
    evidence = {"chosen": {c: chosen[c] for c in tried}, "tried": tried, "gates": gates,
                "order": f"cheapest first: tiers {tiers(target.quant_modes)}, each by file size, files "
                         f"within {SAME_SIZE - 1:.0%} of each other by latency here; the first that passes"}
    return chosen, evidence, lowered


def format_table(evidence: dict) -> list[str]:
    """The report's table of what --quant auto tried, per component in the order tried."""
    lines = [f"{'component':<12}{'precision':<14}{'size MB':>9}{'ms':>9}{'cosine':>10}{'worst task drop':>28}"
             f"{'F1':>6}  verdict"]
    for component, rows in evidence["tried"].items():
        for row in rows:
            size = f"{row['size_bytes'] / 1e6:.2f}" if "size_bytes" in row else "-"
            ms = f"{row['latency_ms']:.2f}" if "latency_ms" in row else "-"
            cos = f"{row['worst_cosine']:.5f}" if "worst_cosine" in row else "-"
            drops = row.get("task_drops")
            worst = max(drops, key=drops.get) if drops else None
            drop = f"{drops[worst]:+.3f} {worst[:18]}" if worst else "-"
            f1 = f"{row['decode_f1']:.2f}" if "decode_f1" in row else "-"
            verdict = row["verdict"] + (f": {row['failures'][0]}" if row.get("failures") else "")
            lines.append(f"{component:<12}{row['mode']:<14}{size:>9}{ms:>9}{cos:>10}{drop:>28}{f1:>6}  "
                         f"{verdict}")
    lines.append("chosen      " + ", ".join(f"{c} {m}" for c, m in evidence["chosen"].items()))
    return lines
