"""The Typer-free lane of ``stockade sensor --pcap`` takes only what it fully understands, and
answers exactly as the Typer command does (output, messages, exit codes)."""

from __future__ import annotations

import ast
import inspect
import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import typer

from stockade.cli import sensor_fast
from stockade.cli.sensor import sensor_cmd
from stockade.cli.sensor_fast import parse, try_sensor_pcap
from stockade.cli.sensor_run import run_sensor
from stockade.lab.http_capture import write_http_capture

SRC = str(Path(sensor_fast.__file__).resolve().parents[2])


def _typer_options() -> dict[str, tuple[str, object]]:
    """Every option flag of the Typer command -> (parameter, default)."""
    out: dict[str, tuple[str, object]] = {}
    hints = typing.get_type_hints(sensor_cmd, include_extras=True)
    for name, param in inspect.signature(sensor_cmd).parameters.items():
        info = next(m for m in hints[name].__metadata__ if isinstance(m, typer.models.OptionInfo))
        # in Annotated, typer.Option's first argument is a declaration, kept as its "default"
        first = (info.default,) if isinstance(info.default, str) else ()
        for decl in (*first, *(info.param_decls or ())):
            for flag in decl.split("/"):
                out[flag] = (name, param.default)
        assert not isinstance(param.default, typer.models.OptionInfo)
    return out


def test_the_lanes_options_are_the_typer_commands() -> None:
    typer_options = _typer_options()
    for flag, (param, _convert) in sensor_fast._VALUE.items():
        assert typer_options[flag][0] == param
    for flag, (param, _value) in sensor_fast._FLAG.items():
        assert typer_options[flag][0] == param
    envvars = set()
    hints = typing.get_type_hints(sensor_cmd, include_extras=True)
    for name in inspect.signature(sensor_cmd).parameters:
        for m in hints[name].__metadata__:
            if isinstance(m, typer.models.OptionInfo) and m.envvar:
                envvars.update([m.envvar] if isinstance(m.envvar, str) else m.envvar)
    assert envvars == set(sensor_fast.OPTION_ENV)


def test_the_bodys_defaults_are_the_typer_commands() -> None:
    body = inspect.signature(run_sensor).parameters
    command = inspect.signature(sensor_cmd).parameters
    assert list(body) == list(command)
    assert {n: p.default for n, p in body.items()} == {n: p.default for n, p in command.items()}


def test_parse_takes_the_common_spellings() -> None:
    assert parse(["--pcap", "x.pcap", "--format=json", "--no-store", "--count", "5"]) == {
        "pcap": Path("x.pcap"),
        "fmt": "json",
        "store": False,
        "count": 5,
    }
    assert parse(["--pcap=x", "--db", "sqlite:///d", "--stream-depth", "2048", "--store"]) == {
        "pcap": Path("x"),
        "db": "sqlite:///d",
        "stream_depth": 2048,
        "store": True,
    }


@pytest.mark.parametrize(
    "args",
    [
        ["--pcap", "x", "--help"],
        ["--pcap", "x", "--lab"],
        ["--pcap", "x", "--iface", "eth0"],
        ["--pcap", "x", "--count", "many"],
        ["--pcap", "x", "--count"],
        ["--pcap", "x", "--pcap", "y"],
        ["--pcap", "x", "--tls-policy", "p.yaml"],
        ["--pcap", "x", "--no-store=1"],
        ["--format", "json"],  # no --pcap
        ["x.pcap"],
    ],
)
def test_parse_declines_the_rest(args: list[str]) -> None:
    assert parse(args) is None


def test_an_option_in_the_environment_leaves_it_to_typer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKADE_DB", "sqlite:///elsewhere.db")
    assert try_sensor_pcap(["--pcap", "x.pcap", "--no-store"]) is None


_RUN = """
import sys
sys.argv[0] = "stockade"
from stockade.cli import app, sensor_fast
if sys.argv.pop(1) == "typer":
    sensor_fast.try_sensor_pcap = lambda args: None
try:
    app.main(sys.argv[1:])
finally:
    print("modules:", sorted(m for m in ("pydantic", "typer._adapters", "typer", "rich")
                             if m in sys.modules),
          file=sys.stderr)
"""


def _stockade(lane: str, *args: str, cwd: Path) -> tuple[int, str, str, str]:
    env = {k: v for k, v in os.environ.items() if k not in sensor_fast.OPTION_ENV}
    env["PYTHONPATH"] = SRC
    out = subprocess.run(
        [sys.executable, "-c", _RUN, lane, "sensor", *args],
        capture_output=True, text=True, env=env, cwd=cwd, check=False,
    )  # fmt: skip
    stderr, _, modules = out.stderr.rpartition("modules: ")
    ids = re.sub(
        r'"id": "[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-([0-9a-f]{12})"', r'"id": "RUN-\1"', out.stdout
    )
    return out.returncode, ids, stderr, modules.strip()


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cap") / "http.pcap"
    write_http_capture(path, flows=40)
    return path


def test_the_lane_answers_as_the_typer_command(capture: Path, tmp_path: Path) -> None:
    cases: list[tuple[str, ...]] = [
        ("--pcap", str(capture), "--format", "json", "--no-store"),
        ("--pcap", str(capture), "--no-store"),
        ("--pcap", str(capture), "--format=json", "--no-store", "--fail-on", "low"),
        ("--pcap", str(capture), "--format", "json", "--no-store", "--stream-depth", "2048"),
        ("--pcap", str(capture), "--format", "json", "--no-store", "--count", "100"),
        ("--pcap", str(capture), "--format", "xml", "--no-store"),
        ("--pcap", str(capture), "--no-store", "--stream-depth", "10"),
        ("--pcap", str(tmp_path / "missing.pcap"), "--no-store"),
    ]
    truncated = tmp_path / "cut.pcap"
    truncated.write_bytes(capture.read_bytes()[:5000])
    cases.append(("--pcap", str(truncated), "--format", "json", "--no-store"))
    answers = []
    for args in cases:
        lane = _stockade("lane", *args, cwd=tmp_path)
        typed = _stockade("typer", *args, cwd=tmp_path)
        answers.append(lane)
        assert lane[:3] == typed[:3], args
        imported = ast.literal_eval(lane[3])
        assert "pydantic" not in imported and "typer._adapters" not in imported, args
        if lane[0] in (0, 1) and "json" in " ".join(args):  # (a table or an error needs Rich)
            assert imported == [], args  # neither Typer nor Rich
    code, out, err, _ = answers[2]  # the lane's own answer, as above
    assert code == 1 and out.count("\n") == 40 and "**** ****" in out  # cards found, masked
    assert not re.search(r"\b\d{4}([ -]?)\d{4}\1\d{4}\1\d{4}\b", out)
    for n, lane in enumerate(("lane", "typer")):  # and the store
        db = f"sqlite:///{tmp_path / f'{lane}.db'}"
        code, _, err, _ = _stockade(lane, "--pcap", str(capture), "--db", db, cwd=tmp_path)
        assert code == 0 and "stored 40 connections" in err, (n, err)
