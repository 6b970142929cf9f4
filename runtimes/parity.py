"""`python -m runtimes.parity`: an exported artifact and its reference side by side on the same frames.

    python -m runtimes.parity --artifacts artifacts/default-8da4w --video clip.mp4 [--reference pytorch|DIR]

The reference is the PyTorch model the artifact was exported from (`pytorch`, the default) or
another artifact directory of the same contract (e.g. fp32 against its 8da4w twin). Both run on
the same frames of --video (edge_vljepa/parity.py, the same measures the exporter records):
  - tensor parity per component: every method on the inputs the loop really feeds it (recorded on
    the first windows), worst cosine, max abs error and SNR per output;
  - labels: top-1 agreement and top-k overlap over non-overlapping windows, each side with its own
    X-Encoder and Predictor against the shipped label bank (as a device ranks), and top-1 agreement
    when the artifact ranks against a bank of its own Y-Encoder (custom labels); and top-1
    agreement over the streaming windows with the shipped bank;
  - decode events: each side runs the streaming loop with the artifact's decode defaults; precision,
    recall and F1 of the artifact's decode times against the reference's (matched within one
    window period), the mean time offset of the matches and their caption agreement.
The results are checked against the tolerances in the artifact's manifest and written under --out:
parity.json and report.html (tables, both embedding-change timelines with their decode events).
The gates here are the tensor tolerances and decode-event F1 (not for random weights, which have no
events to keep). A video of your own has no ground truth, so no task gate runs (the exporter's
task gate measures ground-truth task metrics on held-out clips of the synthetic world: `python -m
export.to_executorch --parity-only DIR`); label agreement is reported, not gated, on enough windows
to mean something: the non-overlapping windows when the video has --windows of them (default 100),
else all of the stream's windows, with how many of its disagreements are near-ties (labels closer
than the sides' measured perturbation). The decode-event result is printed first.

Exit status: 0 when the tolerances hold, 1 when they fail (listed), 2 for bad input (one line;
--out is checked before any work and existing reports are overwritten only with --force), 130 when
interrupted while starting.
"""

from __future__ import annotations

import argparse
import html
import io
import json
import sys
from pathlib import Path

import matplotlib
from tqdm import tqdm

from edge_vljepa.cli import HelpFormatter, exits_quietly_on_interrupt
from edge_vljepa.config import CAPTION_QUERY, ConfigError
from edge_vljepa.contract import ContractError
from edge_vljepa.data.video import VideoError, VideoFile
from edge_vljepa.outputs import OutputError, check_output_dir
from edge_vljepa.parity import (
    StreamRecord,
    agreement_text,
    event_agreement,
    failures,
    label_agreement,
    record_stream,
    stream_label_agreement,
    tensor_parity,
)
from edge_vljepa.preprocess import component_tokenizer
from edge_vljepa.recording import clip_windows, parity_inputs
from edge_vljepa.streaming import DEFAULT_POLICY, DEFAULT_STRIDE, POLICIES, LabelBank, PolicyError
from edge_vljepa.weights import CheckpointError
from runtimes.artifact import Artifact, ArtifactError
from runtimes.backends import open_backend
from runtimes.stream import read_labels

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)

COLOURS = {"reference": "#1f77b4", "artifact": "#ff7f0e"}
REPORT_FILES = ("parity.json", "report.html")
NO_TASK_GATE = ("no task gate ran: the video has no ground truth (label agreement and decode events are "
                "the measures here)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m runtimes.parity", formatter_class=HelpFormatter,
        description="Compare an exported artifact with its reference on the same video frames: tensor "
                    "parity per component, top-k label agreement, decode-event precision/recall/F1 with "
                    "time offsets, caption agreement. Writes parity.json and report.html (tables, both "
                    "embedding-change timelines and their decode events) under --out. Exit status 1 when "
                    "the tolerances in the artifact's manifest fail, 2 for bad input.")
    p.add_argument("--artifacts", type=Path, required=True, help="the artifact directory to check")
    p.add_argument("--video", type=Path, required=True, help="a video file both sides run on")
    p.add_argument("--reference", default="pytorch",
                   help="'pytorch' (the eager model the artifact was exported from) or another artifact "
                        "directory with the same contract")
    p.add_argument("--checkpoint", type=Path,
                   help="pytorch reference: its weights (default: the checkpoint the manifest records)")
    p.add_argument("--windows", type=int, default=100,
                   help="non-overlapping windows for label agreement; when the video has fewer, the label "
                        "verdict uses all of the stream's windows")
    p.add_argument("--labels", type=Path,
                   help="label list, one per line (default: the artifact's label bank)")
    p.add_argument("--top-k", type=int, default=5, help="k of the top-k label overlap")
    p.add_argument("--query", default=CAPTION_QUERY, help="the predictor's text query")
    p.add_argument("--out", type=Path, help="report directory (default: parity-<artifact directory name>)")
    p.add_argument("--force", action="store_true", help="overwrite the reports of an earlier run in --out")
    p.add_argument("--native", action="store_true",
                   help="compare the native core (runtimes/native, built with `python -m runtimes.native "
                        "build`) with the Python loop on this ExecuTorch artifact instead: the same events "
                        "and window embeddings; writes native.json under --out")
    p.add_argument("--policy", choices=list(POLICIES),
                   help="--native: the decode policy both sides run (default: the artifact's)")
    return p


def native_main(args, out: Path) -> int:
    """--native: the core on the Python loop's frames and the CLI end to end, both gated."""
    from runtimes.native.parity import compare_native, format_result, write_result
    try:
        result = compare_native(args.artifacts, args.video, policy=args.policy, query=args.query,
                                labels=args.labels)
    except (ArtifactError, VideoError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_result(result))
    out.mkdir(parents=True, exist_ok=True)
    write_result(result, out / "native.json")
    print(f"wrote {out / 'native.json'}")
    return 1 if result["failures"] else 0


def open_reference(args, artifact: Artifact):
    """(backend, description) of --reference."""
    if args.reference != "pytorch":
        if args.checkpoint is not None:
            raise ValueError("--checkpoint is for --reference pytorch; an artifact brings its own weights")
        reference = Artifact(args.reference)
        reference.check_contract(artifact.contract, f"the artifact {artifact.dir}")
        return open_backend(reference), f"{reference.dir} ({reference.target}, {quant_text(reference)})"
    from runtimes.backends.pytorch import exported_from  # torch only for the reference
    backend, weights = exported_from(artifact, args.checkpoint)
    return backend, f"pytorch (eager, weights: {weights})"


def quant_text(artifact: Artifact) -> str:
    return ", ".join(f"{c} {i.get('quant', '?')}" for c, i in artifact.manifest["components"].items())


def label_verdict(tasks: dict, wanted: int) -> str:
    """Which label measure the verdict rests on: the non-overlapping windows when there were `wanted`
    of them (or at least as many as stream windows), else the stream's windows (all the video has)."""
    clips, stream = tasks["labels"]["windows"], tasks["stream_labels"]["windows"]
    return "labels" if clips >= min(wanted, stream) else "stream_labels"


@exits_quietly_on_interrupt
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.windows < 1 or args.top_k < 1:
            raise ValueError("--windows and --top-k must be >= 1")
        out = args.out or Path(f"parity-{args.artifacts.resolve().name}")
        if args.native:
            check_output_dir(out, ("native.json",), inputs=[args.video, args.labels], force=args.force)
            return native_main(args, out)
        check_output_dir(out, REPORT_FILES, inputs=[args.video, args.labels], force=args.force)
        artifact = Artifact(args.artifacts)
        candidate = open_backend(artifact)
        reference, reference_text = open_reference(args, artifact)
        VideoFile(args.video)  # a missing or unreadable video fails before any work
        bank = None if args.labels else artifact.label_bank()
        labels = read_labels(args.labels) if args.labels else bank.labels
    except (ArtifactError, ConfigError, CheckpointError, ContractError, VideoError, FileNotFoundError,
            ValueError, OutputError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cfg = artifact.cfg
    decode = {"policy": DEFAULT_POLICY, "stride": DEFAULT_STRIDE, "params": {}} | artifact.decode_defaults
    print(f"artifact    {artifact.dir} ({artifact.target}, preset {cfg.name}; {quant_text(artifact)})")
    print(f"reference   {reference_text}")
    print(f"video       {args.video}")
    print(f"labels      {len(labels)}, top-{args.top_k}; query {args.query!r}")
    print(f"decoding    {decode['policy']} {decode['params']}, stride {decode['stride']}")
    print(f"tolerances  {artifact.manifest.get('tolerances', 'none recorded: the defaults')}")

    try:
        if bank is None:  # the streams' shared bank: the reference's embeddings of the given labels
            bank = LabelBank.build(labels, reference, component_tokenizer(cfg, "y_encoder"))
        results, runs = compare(args, artifact, reference, candidate, labels, bank, decode)
    except (VideoError, PolicyError, ArtifactError, ContractError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    quant = {c: info["quant"] for c, info in artifact.manifest["components"].items()}
    verdict = label_verdict(results["tasks"], args.windows)
    what = "stream windows" if verdict == "stream_labels" else "non-overlapping windows"
    results["tasks"][verdict]["what"] = what
    random_weights = artifact.manifest["model"].get("checkpoint") in (None, "random weights")
    gated = {"decode_events": results["tasks"]["decode_events"], "random_weights": random_weights}
    tolerances = artifact.manifest.get("tolerances")
    failed = failures(quant, results["tensors"], gated, artifact.contract, tolerances)
    results |= {"artifact": str(artifact.dir), "reference": reference_text, "video": str(args.video),
                "tolerances": artifact.manifest.get("tolerances"), "status": "fail" if failed else "pass",
                "failures": failed, "label_verdict": verdict, "task_gate": {"not_run": NO_TASK_GATE}}
    out.mkdir(parents=True, exist_ok=True)
    timelines = {side: timeline(run) for side, run in runs.items()}
    rows = tensor_rows(artifact, results["tensors"])
    (out / "parity.json").write_text(json.dumps(results | {"timelines": timelines}, indent=1) + "\n")
    (out / "report.html").write_text(report_html(results, rows, timelines))
    print_summary(results, rows)
    print(f"report      {out / 'report.html'}, {out / 'parity.json'}")
    if failed:
        print("PARITY FAILED:")
        for line in failed:
            print(f"  {line}")
        return 1
    print("parity      pass")
    return 0


def compare(args, artifact: Artifact, reference, candidate, labels: list[str], bank: LabelBank,
            decode: dict) -> tuple[dict, dict[str, StreamRecord]]:
    """All measures on the same frames; (results, the two stream runs)."""
    cfg = artifact.cfg
    steps = tqdm(total=4, desc="parity", unit="step")
    windows = clip_windows([args.video], cfg, args.windows)
    tensors = tensor_parity(reference, candidate, parity_inputs(reference, cfg, windows, labels))
    steps.update()
    label_result = label_agreement(reference, candidate, cfg, windows, bank, args.query, args.top_k)
    steps.update()
    runs = {}
    for side, backend in (("reference", reference), ("artifact", candidate)):
        runs[side] = record_stream(backend, cfg, args.video, args.query, decode["stride"], decode["policy"],
                                   decode["params"], bank)
        if runs[side].error:
            raise VideoError(f"the video broke mid-stream, parity needs all of it: {runs[side].error}")
        steps.update()
    steps.close()
    ref, art = runs["reference"], runs["artifact"]
    tasks = {"labels": label_result, "stream_labels": stream_label_agreement(ref, art, bank),
             "decode_events": event_agreement(ref.decodes, art.decodes, decode["stride"] / cfg.fps)}
    return {"tensors": tensors, "tasks": tasks}, runs


def timeline(run: StreamRecord) -> dict:
    return {"time": [e.time for e in run.windows], "change": [round(float(c), 6) for c in run.change()],
            "decodes": [{"time": t, "text": text} for t, text in run.decodes]}


def tensor_rows(artifact: Artifact, tensors: dict) -> list[dict]:
    """One row per method output: component, its quantization, the metrics and the manifest's bound."""
    bounds = artifact.manifest.get("tolerances", {}).get("tensor", {})
    rows = []
    for method, result in tensors.items():
        component = artifact.component_of(method)
        quant = artifact.manifest["components"][component]["quant"]
        tol = ", ".join(f"{k} {'<=' if k == 'max_abs' else '>='} {v:g}"
                        for k, v in bounds.get(quant, {}).items())
        rows += [{"component": component, "output": f"{method}.{name}", "quant": quant, "tolerance": tol, **m}
                 for name, m in result["outputs"].items()]
    return rows


def print_summary(results: dict, rows: list[dict]) -> None:
    print(f"\n{'component':<12}{'method.output':<32}{'cosine':>10}{'max abs':>11}{'SNR dB':>9}  tolerance")
    for r in rows:
        print(f"{r['component']:<12}{r['output']:<32}{r['cosine']:>10.6f}{r['max_abs']:>11.2e}"
              f"{r['snr_db']:>9.1f}  {r['quant']}: {r['tolerance']}")
    lab, dec = results["tasks"]["labels"], results["tasks"]["decode_events"]
    stream_lab = results["tasks"]["stream_labels"]
    print(f"decodes     reference {dec['reference_decodes']}, artifact {dec['candidate_decodes']}: "
          f"precision {dec['precision']:.2f}, recall {dec['recall']:.2f}, F1 {dec['f1']:.2f}; mean offset "
          f"{dec['mean_offset_s']:.2f} s; captions agree on {dec['caption_agreement']:.1%} of matches")
    print(f"labels      top-1 agreement {lab['top1_agreement']:.1%}, top-{lab['k']} overlap "
          f"{lab['topk_overlap']:.1%} on {lab['windows']} windows (shipped bank), "
          f"{lab['own_bank_top1_agreement']:.1%} with the artifact's own Y-Encoder bank; "
          f"{stream_lab['top1_agreement']:.1%} top-1 on {stream_lab['windows']} stream windows (one shared "
          "bank)")
    print(f"agreement   {agreement_text(results['tasks'][results['label_verdict']])} (reported, not gated)")
    print(f"task gate   {NO_TASK_GATE}")


def timeline_svg(timelines: dict[str, dict]) -> str:
    """Both embedding-change curves (cosine distance to the previous window) over time, and a row of
    decode marks per side, as inline SVG (matplotlib, like every report's plots)."""
    fig, (top, ticks) = plt.subplots(2, 1, figsize=(9.6, 3.4), sharex=True,
                                     gridspec_kw={"height_ratios": [3, max(1, len(timelines))]})
    for row, (side, tl) in enumerate(timelines.items()):
        top.plot(tl["time"], tl["change"], color=COLOURS[side], linewidth=1.2, alpha=0.8, label=side)
        ticks.vlines([d["time"] for d in tl["decodes"]], row - 0.35, row + 0.35, color=COLOURS[side],
                     linewidth=2)
    top.set_ylabel("1 - cos to the\nprevious window", fontsize=8)
    top.set_title("embedding change and decode events (captions in the table below)", fontsize=9)
    top.legend(fontsize=8, loc="upper right")
    ticks.set_yticks(range(len(timelines)), labels=list(timelines), fontsize=8)
    ticks.set_ylim(-0.6, len(timelines) - 0.4)
    ticks.set_xlabel("stream time (s)", fontsize=8)
    fig.tight_layout()
    svg = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none"}):  # text stays text (searchable, smaller)
        fig.savefig(svg, format="svg")
    plt.close(fig)
    return "<svg" + svg.getvalue().split("<svg", 1)[1]  # inline: without the XML prologue


def report_html(results: dict, rows: list[dict], timelines: dict[str, dict]) -> str:
    e = html.escape
    status = results["status"].upper()
    table = "".join(
        f"<tr><td>{e(r['component'])}</td><td>{e(r['output'])}</td><td>{e(r['quant'])}</td>"
        f"<td>{r['cosine']:.6f}</td><td>{r['max_abs']:.2e}</td><td>{r['snr_db']:.1f}</td>"
        f"<td>{e(r['tolerance'])}</td></tr>" for r in rows)
    lab, dec = results["tasks"]["labels"], results["tasks"]["decode_events"]
    stream_lab = results["tasks"]["stream_labels"]
    decodes = "".join(
        f"<tr><td>{e(side)}</td><td>{d['time']:.2f}</td><td>{e(str(d['text']))}</td></tr>"
        for side, tl in timelines.items() for d in tl["decodes"])
    failed = "".join(f"<li>{e(f)}</li>" for f in results["failures"]) or "<li>none</li>"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Parity {status}: {e(results['artifact'])}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:left}}</style></head><body>
<h1>Parity {status}</h1>
<p>artifact <code>{e(results['artifact'])}</code><br>reference <code>{e(results['reference'])}</code><br>
video <code>{e(results['video'])}</code><br>
tolerances (manifest) <code>{e(json.dumps(results['tolerances']))}</code></p>
<h2>Failures</h2><ul>{failed}</ul>
<p>{e(NO_TASK_GATE)}; top-1 label agreement is reported, not gated.</p>
<h2>Tensors per component</h2>
<table><tr><th>component</th><th>method.output</th><th>quant</th><th>worst cosine</th><th>max abs</th>
<th>SNR dB</th><th>tolerance</th></tr>{table}</table>
<h2>Labels</h2><p>top-1 agreement {lab['top1_agreement']:.1%}, top-{lab['k']} overlap
{lab['topk_overlap']:.1%} on {lab['windows']} windows, ranked against the shipped label bank;
{lab['own_bank_top1_agreement']:.1%} when the artifact ranks against a bank of its own Y-Encoder
(custom labels);
top-1 agreement {stream_lab['top1_agreement']:.1%} on the {stream_lab['windows']} stream windows, both sides
ranking against one label bank (the artifact's precomputed embeddings, as on a device)</p>
<h2>Decode events</h2><p>reference {dec['reference_decodes']}, artifact {dec['candidate_decodes']}:
precision {dec['precision']:.2f}, recall {dec['recall']:.2f}, F1 {dec['f1']:.2f} (matched within one window
period); mean time offset {dec['mean_offset_s']:.2f} s; captions agree on {dec['caption_agreement']:.1%}
of the matches</p>
{timeline_svg(timelines)}
<table><tr><th>side</th><th>time s</th><th>caption</th></tr>{decodes}</table>
</body></html>
"""


if __name__ == "__main__":
    sys.exit(main())
