"""write_atomically / AtomicFile on real files: the target is the old file or the whole new one."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stockade.model.atomicfile import AtomicFile, write_atomically


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_replaces_the_file_whole_with_a_new_inode(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old")
    with target.open("rb") as reader:  # a reader that opened the old file keeps reading it
        before = os.fstat(reader.fileno()).st_ino
        write_atomically(target, b"new content")
        assert reader.read() == b"old"
    assert target.read_bytes() == b"new content"
    assert target.stat().st_ino != before
    assert _entries(tmp_path) == ["state.json"]


def test_creates_a_missing_file(tmp_path: Path) -> None:
    write_atomically(tmp_path / "new", b"x", fsync=True, fsync_dir=True)
    assert (tmp_path / "new").read_bytes() == b"x"
    assert _entries(tmp_path) == ["new"]


def test_nothing_is_visible_until_commit(tmp_path: Path) -> None:
    target = tmp_path / "batch"
    target.write_bytes(b"old")
    with AtomicFile(target) as out:
        out.file.write(b"half of it")
        out.file.flush()
        assert target.read_bytes() == b"old"
        assert out.temp.parent == tmp_path and out.temp.name.startswith(".tmp-batch.")
        assert out.temp.read_bytes() == b"half of it"
        out.file.write(b", and the rest")
    assert target.read_bytes() == b"half of it, and the rest"
    assert _entries(tmp_path) == ["batch"]


def test_a_writer_failing_midway_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "batch"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), AtomicFile(target) as out:
        out.file.write(b"part")
        raise RuntimeError("the writer died")
    assert target.read_bytes() == b"old"
    assert _entries(tmp_path) == ["batch"]


def test_a_write_the_kernel_refuses_midway_leaves_the_old_file(tmp_path: Path) -> None:
    """A real short write: the file size limit (RLIMIT_FSIZE) stops the write at 4 KiB with
    EFBIG, in a child process so the limit does not outlive the test."""
    target = tmp_path / "capture"
    target.write_bytes(b"old")
    script = textwrap.dedent(
        f"""
        import errno, resource, signal, sys
        from stockade.model.atomicfile import write_atomically
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            write_atomically({str(target)!r}, bytes(65536), fsync=True)
        except OSError as exc:
            sys.exit(0 if exc.errno == errno.EFBIG else 4)
        sys.exit(5)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    done = subprocess.run([sys.executable, "-c", script], env=env, timeout=60, check=False)
    assert done.returncode == 0
    assert target.read_bytes() == b"old"
    assert _entries(tmp_path) == ["capture"]


def test_a_failed_rename_removes_the_temporary_and_raises(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    (target / "inside").write_bytes(b"")  # a folder that is not empty: rename over it fails
    with pytest.raises(OSError):
        write_atomically(target, b"data", fsync=True)
    assert _entries(tmp_path) == ["taken"]


def test_abort_drops_the_content(tmp_path: Path) -> None:
    target = tmp_path / "f"
    out = AtomicFile(target, mode=0o600)
    out.file.write(b"never")
    out.abort()
    out.abort()  # twice is harmless
    assert _entries(tmp_path) == []


@pytest.mark.parametrize("mode", [0o600, 0o644, 0o400])
def test_mode_is_exact_whatever_the_umask(tmp_path: Path, mode: int) -> None:
    old = os.umask(0o077)
    try:
        write_atomically(tmp_path / "key.pem", b"k", mode=mode)
        (tmp_path / "plain").write_bytes(b"old")
        write_atomically(tmp_path / "plain", b"p")
    finally:
        os.umask(old)
    assert (tmp_path / "key.pem").stat().st_mode & 0o777 == mode
    assert (tmp_path / "plain").stat().st_mode & 0o777 == 0o600  # 0o666 less the umask


def test_without_a_mode_the_umask_applies_as_for_open(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_atomically(tmp_path / "a", b"a")
        (tmp_path / "b").write_bytes(b"b")
    finally:
        os.umask(old)
    assert (tmp_path / "a").stat().st_mode & 0o777 == (tmp_path / "b").stat().st_mode & 0o777
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o644


def test_two_writers_of_one_file_do_not_meet(tmp_path: Path) -> None:
    target = tmp_path / "dropped"
    first, second = AtomicFile(target), AtomicFile(target)
    assert first.temp != second.temp
    first.file.write(b"1" * 100)
    second.file.write(b"2" * 50)
    first.commit()
    assert target.read_bytes() == b"1" * 100
    second.commit()
    assert target.read_bytes() == b"2" * 50
    assert _entries(tmp_path) == ["dropped"]
