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
