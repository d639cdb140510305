"""The Typer-free lane of ``stockade scan image`` takes only what it fully understands: anything
else is left to the Typer command (tests/scanning/test_rescan_fast_path.py runs both)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stockade.cli import scan_fast
from stockade.cli.scan_fast import parse, try_scan_image


def test_parse_takes_the_common_spellings() -> None:
    args = ["oci:/x:1", "--format", "json", "-o", "out.json", "--db=sqlite:///d", "--no-store"]
    assert parse([*args, "--fail-on", "high", "--ignore-unfixed", "--max-db-age=2d"]) == {
        "ref": "oci:/x:1",
        "fmt": "json",
        "output": "out.json",
        "db": "sqlite:///d",
        "store": False,
        "fail_on": "high",
        "ignore_unfixed": True,
        "max_db_age": "2d",
    }
    assert parse(["-f", "sarif", "img", "-f", "json"]) == {"ref": "img", "fmt": "json"}


@pytest.mark.parametrize(
    "args",
    [
        ["img", "--help"],
        ["img", "-h"],
        ["img", "--vex", "v.json"],
        ["img", "--ignore-file", "i.yaml"],
        ["img", "--platform", "linux/arm64"],
        ["img", "--controller", "https://c"],
        ["img", "--verify-key", "k.pem"],
        ["img", "-fjson"],  # Click's glued short option: left to Click
        ["img", "--ignore-unfixed=true"],
        ["img", "--format"],  # no value
        ["img", "other"],
        [],
        ["-"],
        ["img", "--", "x"],
    ],
)
def test_parse_declines_everything_else(args: list[str]) -> None:
    assert parse(args) is None


def test_the_lane_declines_with_an_option_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STOCKADE_REGISTRY_PASSWORD", "x")
    assert try_scan_image(["oci:/nowhere:1"]) is None


def test_the_lane_declines_with_an_ignore_file_in_the_current_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / scan_fast.DEFAULT_IGNORE_FILE).write_text("ignore: []\n")
    assert try_scan_image(["oci:/nowhere:1"]) is None


def test_an_error_is_left_to_the_typer_command(tmp_path: Path) -> None:
    # A missing image: the lane writes nothing and the Typer command reports it (exit 3).
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert try_scan_image([f"oci:{tmp_path / 'missing'}:1", "--db", db]) is None


def test_the_lane_follows_the_typer_command_it_stands_in_for() -> None:
    """Every option the lane takes is the Typer command's, with the same parameter and default,
    and every option the command reads from the environment makes the lane decline (besides
    STOCKADE_DB, which both read through open_store): a new option cannot be silently ignored."""
    import click
    import typer.main

    from stockade.cli.app import app

    root = typer.main.get_command(app)
    ctx = click.Context(root)
    scan = root.get_command(ctx, "scan")  # type: ignore[attr-defined]
    image = scan.get_command(ctx, "image")
    params = {p.name: p for p in image.params}
    for option, (name, _flag) in scan_fast._OPTIONS.items():
        assert option in params[name].opts + params[name].secondary_opts, option
    for name, default in scan_fast.DEFAULTS.items():
        assert params[name].default == default, name
    envvars = {p.envvar for p in image.params if p.envvar} - {"STOCKADE_DB"}
    assert envvars <= set(scan_fast._OPTION_ENV)
    assert set(scan_fast._OPTION_ENV) <= {p.envvar for p in image.params if p.envvar}
