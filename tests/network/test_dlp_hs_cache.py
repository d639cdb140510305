"""The on-disk cache of compiled Hyperscan databases (stockade.network.dlp.hs_cache): a cached
engine finds exactly what a freshly compiled one finds; damaged, foreign or stale files are
rebuilt, never trusted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stockade.network.dlp import DlpEngine, hs_cache, runscan, sensor_from_dict
from stockade.network.dlp.engine import hyperscan_available
from stockade.network.dlp.sensors import BUILTIN_SENSORS
from tests.support import require

require(hyperscan_available(), "the hyperscan package is not installed")

TEXT = (
    b'{"card": "4111 1111 1111 1111", "ssn": "123-45-6789", "iban": "DE89370400440532013000"}\r\n'
    b"Content-Encoding: gzip\r\n" + b"x" * 200 + b" 5500-0000-0000-0004 end"
)


def _files(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.suffix == ".hsdb")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "hs"
    monkeypatch.setenv(hs_cache.ENV, str(d))
    # The built-in sensors' expressions are scanned by runscan.c where it is built: their
    # engine then has no database of the binding to cache. These tests are about that database.
    monkeypatch.setenv("STOCKADE_DLP_RUNSCAN", "0")
    return d


def test_with_runscan_only_what_it_does_not_scan_is_cached(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STOCKADE_DLP_RUNSCAN")
    require(runscan.compiled() is not None, "runscan.c is not built")
    DlpEngine()
    assert not cache.exists() or _files(cache) == []  # nothing left for the binding
    user = sensor_from_dict({"id": "dlp.acme", "pattern": r"ACME-[0-9]{6}"}, where="t")
    engine = DlpEngine([user, *BUILTIN_SENSORS])
    assert len(_files(cache)) == 1
    again = DlpEngine([user, *BUILTIN_SENSORS])
    data = TEXT + b" ACME-123456 "
    assert again.scan(data) == engine.scan(data)
    assert {m.sensor for m in engine.scan(data)} >= {"dlp.acme", "dlp.payment_card"}


def _compiles(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the databases compiled from here on (a cache hit compiles none)."""
    seen: list[int] = []
    real = hs_cache.load_or_compile

    def counting(hyperscan, key, mode, compile_db):  # type: ignore[no-untyped-def]
        def compiled():  # type: ignore[no-untyped-def]
            seen.append(mode)
            return compile_db()

        return real(hyperscan, key, mode, compiled)

    monkeypatch.setattr(hs_cache, "load_or_compile", counting)
    return seen


@pytest.mark.parametrize("backend", ["hs-stream", "hs-window"])
def test_cached_engine_finds_what_a_fresh_one_finds(
    cache: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = DlpEngine(backend=backend)
    assert len(_files(cache)) == 1
    compiles = _compiles(monkeypatch)
    cached = DlpEngine(backend=backend)
    assert compiles == []  # loaded, not compiled
    assert cached.always_scan == fresh.always_scan
    for split in (1, 7, 64, len(TEXT)):
        a, b = fresh.stream(), cached.stream()
        got_a, got_b = [], []
        for i in range(0, len(TEXT), split):
            got_a += a.feed(TEXT[i : i + split])
            got_b += b.feed(TEXT[i : i + split])
        got_a += a.close()
        got_b += b.close()
        assert got_a == got_b and len(got_a) >= 3
        assert a.triggered == b.triggered


def test_files_are_private(cache: Path) -> None:
    DlpEngine()
    (f,) = _files(cache)
    assert f.stat().st_mode & 0o777 == 0o600
    assert cache.stat().st_mode & 0o777 == 0o700
    assert not [p for p in cache.iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # truncated
        lambda b: b[:-100] + bytes(100),  # database bytes changed
        lambda b: b"garbage",
        lambda b: b"",
        lambda b: b.replace(b'"mode": 2', b'"mode": 1'),  # header says another mode
    ],
)
def test_a_damaged_file_is_rebuilt(cache: Path, damage, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    expected = DlpEngine().scan(TEXT)
    (f,) = _files(cache)
    good = f.read_bytes()
    f.write_bytes(damage(good))
    compiles = _compiles(monkeypatch)
    assert DlpEngine().scan(TEXT) == expected
    assert len(compiles) == 1
    assert f.read_bytes() == good  # rewritten whole


def test_a_file_others_can_write_is_not_trusted(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    DlpEngine()
    (f,) = _files(cache)
    f.chmod(0o666)
    compiles = _compiles(monkeypatch)
    DlpEngine()
    assert len(compiles) == 1
    assert f.stat().st_mode & 0o777 == 0o600


def test_a_symlink_is_not_followed(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    DlpEngine()
    (f,) = _files(cache)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(f.read_bytes())
    f.unlink()
    f.symlink_to(elsewhere)
    compiles = _compiles(monkeypatch)
    DlpEngine()
    assert len(compiles) == 1
    assert not f.is_symlink()


def test_other_sensors_get_their_own_file(cache: Path) -> None:
    DlpEngine()
    user = sensor_from_dict(
        {"id": "dlp.order", "title": "order", "patterns": [r"ORD-\d{6}"]}, where="test"
    )
    engine = DlpEngine([user])
    assert len(_files(cache)) == 2
    again = DlpEngine([user])
    assert again.scan(b"x ORD-123456 y") == engine.scan(b"x ORD-123456 y")


def test_off_and_unwritable_directories_still_compile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(hs_cache.ENV, "off")
    expected = DlpEngine().scan(TEXT)
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    monkeypatch.setenv(hs_cache.ENV, str(ro / "sub"))
    if os.geteuid() != 0:  # root writes anywhere; the path below is a file for everyone
        assert DlpEngine().scan(TEXT) == expected
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(hs_cache.ENV, str(blocker / "sub"))
    assert DlpEngine().scan(TEXT) == expected


def test_the_key_is_the_same_in_every_process(tmp_path: Path) -> None:
    """A key that changed from one process to the next would compile at every start (the repr
    of a nested code object holds its memory address)."""
    script = (
        "from stockade.network.dlp import engine, hs_cache\n"
        "parts = (engine.BUILTIN_SENSORS, engine.TRIGGERS)\n"
        "print(hs_cache.cache_key(engine.hyperscan, parts, engine.DlpEngine._compile))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "random"}
    keys = {
        subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        ).stdout
        for _ in range(3)
    }
    assert len(keys) == 1


def test_a_second_process_loads_instead_of_compiling(cache: Path) -> None:
    script = (
        "from stockade.network.dlp import DlpEngine, hs_cache\n"
        "real = hs_cache.load_or_compile\n"
        "seen = []\n"
        "def spy(h, key, mode, compile_db):\n"
        "    return real(h, key, mode, lambda: (seen.append(1), compile_db())[1])\n"
        "hs_cache.load_or_compile = spy\n"
        "DlpEngine()\n"
        "print(len(seen))\n"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    ]
    assert runs == ["1", "0"]
