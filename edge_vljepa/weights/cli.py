"""`python -m edge_vljepa.weights inspect|assemble`: check a checkpoint, or assemble several into one.

inspect PATH   names the format, the component it maps to and the presets (and the config derived from
               its shapes) it fits, and lists what does not fit. Exit 0 fits, 1 does not fit, 2 error.
assemble ...   builds the model from --checkpoint sources and writes one native .safetensors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from edge_vljepa.config import COMPONENTS, PRESETS, ConfigError, get_preset, load_config_file
from edge_vljepa.models import build_model
from edge_vljepa.weights.assemble import Opened, SourceSpec, assemble_from_args, base_config, derive_config
from edge_vljepa.weights.formats import FORMATS
from edge_vljepa.weights.mapping import (
    Mapping,
    Source,
    fit_mapping,
    left_at_init,
    mapped_components,
    open_source,
    recognise,
    target_module,
)
from edge_vljepa.weights.native import CheckpointError, save_checkpoint


def _describe_source(source: Source, mapping: Mapping) -> str:
    if source.kind == "safetensors":
        n = len(list(source.path.glob("*.safetensors"))) if source.path.is_dir() else 1
        return f"safetensors ({n} file{'s' if n > 1 else ''})"
    others = [s for s in source.shapes if s and s != mapping.section]
    text = "torch .pt read with weights_only=True"
    if mapping.section:
        text += f"; section {mapping.section!r}"
    if others:
        text += f"; other tensor sections: {', '.join(others)}"
    if source.other:
        text += f"; other entries: {', '.join(source.other[:8])}"
    return text


def _inspect(args) -> int:
    source = open_source(args.path)
    mapping = recognise(source, args.format, args.container)
    keymap = mapping.keymap
    print(f"file:    {args.path} ({_describe_source(source, mapping)})")
    print(f"format:  {keymap.name}: {keymap.description}")
    target = mapped_components(mapping)
    ignored = f"; {len(mapping.ignored)} ignored: {', '.join(mapping.ignored[:4])}" if mapping.ignored else ""
    print(f"maps to: {target} ({len(source.shapes.get(mapping.section, {}))} source tensors{ignored})")
    configs = {}
    if args.config is not None:
        configs[args.config.stem] = load_config_file(args.config)
    elif args.preset:
        configs[args.preset] = get_preset(args.preset)
    else:
        configs = {name: get_preset(name) for name in PRESETS}
        derived, notes = derive_config([Opened(SourceSpec(Path(args.path)), source, mapping)],
                                       base_config(None))
        if notes:  # a size the presets may not have: the config this file would be exported with
            configs["derived"] = derived
            for note in notes:
                print(f"derived: {note}")
            touched = [c for c in COMPONENTS if c in target.split(", ")]
            shown = {c: derived.to_dict()[c] for c in touched} | {"embed_dim": derived.embed_dim}
            print(f"config:  {json.dumps(shown)}")
            if args.write_config:
                Path(args.write_config).write_text(json.dumps(derived.to_dict(), indent=1) + "\n")
                print(f"wrote   {args.write_config} (pass it with --config)")
    results = {}
    for name, cfg in configs.items():
        with torch.device("meta"):
            module = target_module(build_model(cfg, seed=None), keymap)
        fitted, fit = fit_mapping(source, mapping, module)
        results[name] = fit
        notes = [n for n in (fitted.layer_note(),) if n]
        left = left_at_init(module, fitted)
        if left and fit.ok:
            notes.append(f"not in this format, left at init: {', '.join(left)}")
        verdict = "fits" if fit.ok else f"does not fit ({fit.counts()})"
        kind = "config" if name == "derived" else "preset"
        print(f"{kind} {name + ':':9}{verdict}" + (f"; {'; '.join(notes)}" if notes else ""))
    fitting = [n for n, f in results.items() if f.ok]
    if not fitting:
        closest = min(results, key=lambda n: results[n].problems)
        print(f"what does not fit {closest!r}:" + results[closest].details())
    print(f"summary: {keymap.name} -> {target}; fits: {', '.join(fitting) or 'no config'}")
    return 0 if fitting else 1


def main(argv: list[str] | None = None) -> int:
    formats = "\n".join(f"  {m.name:15} {m.description}" for m in FORMATS.values())
    parser = argparse.ArgumentParser(
        prog="python -m edge_vljepa.weights",
        description="Checkpoint tools: recognise upstream weight layouts and check them against the presets.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "inspect", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="say which format a checkpoint is, which component it maps to, which preset it fits",
        description="Recognise the layout of PATH (.safetensors file, folder of shards, or torch .pt read "
                    "with weights_only=True), name the model component it maps to, check it against "
                    "every preset (or --preset) and list the missing, unexpected and wrongly shaped keys. "
                    "Reads names and shapes only. Exit status: 0 fits, 1 does not fit, 2 error.",
        epilog=f"formats (docs/weights.md explains how to add one):\n{formats}")
    p.add_argument("path", help="checkpoint file or folder")
    p.add_argument("--format", choices=list(FORMATS), default=None,
                   help="source format (default: recognised from the keys)")
    p.add_argument("--container", default=None,
                   help="torch .pt: the entry holding the state dict (default: the format's preference, "
                        "e.g. target_encoder for V-JEPA 2)")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--preset", choices=list(PRESETS), default=None,
                       help="check only this preset (default: every preset, and the config derived from the "
                            "file's shapes and config.json)")
    model.add_argument("--config", type=Path, metavar="FILE.json", help="check only this model config")
    p.add_argument("--write-config", type=Path, metavar="FILE.json",
                   help="write the derived config (for --config of the exporters and runtimes.stream)")
    add_assemble_parser(sub)
    args = parser.parse_args(argv)
    try:
        if args.command == "assemble":
            return _assemble(args)
        return _inspect(args)
    except (CheckpointError, ConfigError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2


def add_assemble_parser(sub) -> None:
    p = sub.add_parser(
        "assemble", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="assemble upstream checkpoints into one native .safetensors",
        description="Build the model from --checkpoint sources (a whole-model file such as an Open-VLJEPA "
                    "best.pt, or COMPONENT=PATH per component), each loaded strictly, and write it as one "
                    "native checkpoint with its config and every source's sha256 in the metadata. The config "
                    "is derived from the sources' shapes and config.json on top of --preset (default: paper),"
                    " unless --config is given. Exit status: 0 written, 2 error (nothing written).")
    p.add_argument("--checkpoint", action="append", required=True, metavar="[COMPONENT=]PATH",
                   help="a checkpoint file or folder (repeatable)")
    p.add_argument("--random-weights", nargs="+", default=[], choices=COMPONENTS, metavar="COMPONENT",
                   help="components no checkpoint provides, left at random init on purpose")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--preset", choices=list(PRESETS), help="base of the derived config (default: paper)")
    model.add_argument("--config", type=Path, metavar="FILE.json", help="the model config (no derivation)")
    p.add_argument("--out", type=Path, required=True, help="the .safetensors file to write")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")


def _assemble(args) -> int:
    if args.out.exists() and not args.force:
        raise CheckpointError(f"{args.out} exists; pass --force to replace it")
    model, cfg, reports, sources, notes = assemble_from_args(args.checkpoint, args.random_weights,
                                                               args.preset, args.config)
    for note in notes:
        print(f"config:  {note}")
    for report in reports:
        print(f"loaded:  {report.summary()}")
    save_checkpoint(model, args.out, cfg, sources=json.dumps(sources))
    print(f"wrote {args.out} (config {cfg.name!r}; pass it with --checkpoint)")
    return 0
