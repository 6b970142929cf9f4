"""What every CLI shares (edge_vljepa/cli.py, edge_vljepa/outputs.py): --help defaults shown once and
true, Ctrl-C at start-up, the known library noise dropped and nothing else, output paths."""

from __future__ import annotations

import argparse
import logging

import pytest

from edge_vljepa.cli import HelpFormatter, quiet_known_library_noise, without_known_noise
from edge_vljepa.outputs import OutputError, check_output_dir, check_output_file


def cli_parsers():
    from edge_vljepa.data.__main__ import build_parser as data
    from experiments import bench, selective
    from export import pipeline, to_coreml, to_executorch, to_onnx
    from runtimes import parity, stream
    return {"stream": stream.build_parser(), "parity": parity.build_parser(), "data": data(),
            "bench": bench.build_parser(), "selective": selective.build_parser(),
            **{t.name: pipeline.build_parser(t)
               for t in (to_executorch.TARGET, to_onnx.TARGET, to_coreml.TARGET)}}


@pytest.mark.parametrize("name", ["stream", "parity", "data", "bench", "selective", "executorch",
                                  "onnxruntime", "coreml"])
def test_help_shows_each_default_once_and_never_none(name):
    text = cli_parsers()[name].format_help()
    assert "(default: None)" not in text and "(default: False)" not in text
    assert all(flag.count("(default") <= 1 for flag in text.split("\n  -"))


def test_the_help_formatter_keeps_true_defaults_and_the_helps_own():
    p = argparse.ArgumentParser(formatter_class=HelpFormatter)
    p.add_argument("--k", type=int, default=3, help="how many")
    p.add_argument("--w", help="weights (default: the shipped ones)")
    p.add_argument("--quiet", action="store_true", help="less output")
    text = " ".join(p.format_help().split())
    assert "how many (default: 3)" in text and "weights (default: the shipped ones) --quiet" in text
    assert "less output (default" not in text


def test_ctrl_c_while_an_exporter_starts_exits_quietly_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    from export import pipeline, to_executorch

    def interrupted(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(pipeline, "model_and_reference", interrupted)
    assert to_executorch.main(["--preset", "tiny", "--out", str(tmp_path / "art")]) == 130
    assert "Traceback" not in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # the lock was released and removed


def test_known_library_noise_is_dropped_and_new_messages_still_show(caplog):
    quiet_known_library_noise()
    caplog.set_level(logging.WARNING)
    so = "/venv/lib/python3.11/site-packages/torchao/_C_mxfp8.cpython-310-x86_64-linux-gnu.so"
    logging.getLogger("torchao").warning(f"Failed to load {so}: Could not load this library: {so}")
    logging.getLogger("torch.utils._pytree").warning(
        "%s is an Enum subclass and is now natively supported by torch.compile as an opaque value type. "
        "Calling register_constant() on Enum subclasses is deprecated and will be an error in a future "
        "release.",
        "<enum 'KernelPreference'>")
    assert caplog.records == []
    logging.getLogger("torchao").warning("Failed to load /x/torchao/_C_new_kernel.so: a new reason")
    logging.getLogger("torch.utils._pytree").warning("a new deprecation")
    assert [r.getMessage() for r in caplog.records] == [
        "Failed to load /x/torchao/_C_new_kernel.so: a new reason", "a new deprecation"]
    log = ("[cpuinfo_utils.cpp:71] Reading file /sys/devices/soc0/image_version\n"
           "[cpuinfo_utils.cpp:87] Failed to open midr file /sys/devices/soc0/image_version\n"
           "[cpuinfo_utils.cpp:125] CPU info and manual query on # of cpus dont match.\n"
           "[method.cpp:1] a real problem\n")
    assert without_known_noise(log) == "[method.cpp:1] a real problem\n"
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        quiet_known_library_noise()
        import importlib

        from executorch.extension.pybindings import portable_lib  # noqa: F401
        importlib.reload(portable_lib)  # its import-time warning
    assert not [w for w in caught if "experimental" in str(w.message)]


def test_output_checks(tmp_path):
    source = tmp_path / "in.mp4"
    source.write_bytes(b"video")
    with pytest.raises(OutputError, match="is the input"):
        check_output_file(tmp_path / "." / "in.mp4", inputs=[source])
    (tmp_path / "hard").hardlink_to(source)
    with pytest.raises(OutputError, match="is the input"):
        check_output_file(tmp_path / "hard", inputs=[source], force=True)
    assert check_output_file(tmp_path / "new.jsonl", inputs=[source]) == tmp_path / "new.jsonl"
    assert check_output_dir(tmp_path / "a" / "b", ["r.json"]) == tmp_path / "a" / "b"  # created later
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_output_dir(source / "sub")
