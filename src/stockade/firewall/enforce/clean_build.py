"""How the enforcer's tc classifier (clean.bpf.c, see clean.py) is built: the one clang command,
used by the project's install (setup.py) and by tcfilter.py when an install never built it.

Standard library only: setup.py loads this file by its path, before the package's dependencies
are installed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

SOURCE = Path(__file__).with_name("clean.bpf.c")


def clang() -> str | None:
    """The clang on the PATH (Debian's ``clang`` or ``clang-14``), or None."""
    return shutil.which("clang") or shutil.which("clang-14")


def command(compiler: str, out: Path, source: Path = SOURCE) -> list[str]:
    """The command that builds ``source`` into the BPF object ``out`` (libbpf-dev's headers;
    the asm/ headers live under the machine's multiarch include directory)."""
    arch = os.uname().machine
    multiarch = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}.get(arch, arch)
    return [
        compiler, "-O2", "-g", "-target", "bpf", f"-I/usr/include/{multiarch}",
        "-c", str(source), "-o", str(out),
    ]  # fmt: skip
