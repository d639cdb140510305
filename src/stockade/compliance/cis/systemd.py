"""The command line and environment systemd gives a service, read from its unit file and drop-ins
as systemd reads them (systemd.unit(5), systemd.exec(5), systemd.service(5)):

- drop-ins (``NAME.service.d/*.conf``) from every unit directory are applied in file-name order,
  whichever directory they are in; a drop-in in ``/etc`` masks one of the same name in ``/run``
  or ``/usr/lib``;
- an empty ``Environment=``, ``EnvironmentFile=`` or ``ExecStart=`` resets what came before;
- variables read from ``EnvironmentFile=`` files override those set with ``Environment=``, the
  files in the order they are named (``-`` before the path: a missing file is no error);
- in ``ExecStart=``, a word that is exactly ``$VAR`` becomes the variable's value split at white
  space (zero or more arguments); ``${VAR}`` becomes the value as it is, inside one argument.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import PurePosixPath

from stockade.compliance.cis.node import FileProblem, Node

# highest priority first (systemd's system unit search path; /lib is /usr/lib on merged-usr hosts)
UNIT_DIRS = (
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
)
_BRACED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\$")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceCommand:
    argv: tuple[str, ...]
    env: dict[str, str]
    files: tuple[str, ...]  # the unit file and the drop-ins read, in the order applied


def read_service(node: Node, path: str) -> ServiceCommand | None:
    """What systemd runs for the unit file at ``path``; None when it runs nothing (no
    ``ExecStart=``, or the unit cannot be read: masked to /dev/null, say)."""
    try:
        main = node.read_text(path)
    except FileProblem:
        return None
    name = PurePosixPath(path).name
    dropins: dict[str, str] = {}
    for folder in UNIT_DIRS:
        for f in node.expand(f"{folder}/{name}.d/*.conf"):
            dropins.setdefault(PurePosixPath(f).name, f)
    files = [path, *(dropins[n] for n in sorted(dropins))]
    environment: dict[str, str] = {}
    env_files: list[str] = []
    exec_start = ""
    for f in files:
        try:
            text = main if f == path else node.read_text(f)
        except FileProblem:
            continue
        for key, value in unit_lines(text):
            if key == "Environment":
                if not value:
                    environment.clear()
                for item in _words(value) or []:
                    k, eq, v = item.partition("=")
                    if eq:
                        environment[k] = v
            elif key == "EnvironmentFile":
                if value:
                    env_files.append(value)
                else:
                    env_files.clear()
            elif key == "ExecStart":
                exec_start = value  # an empty ExecStart= in a drop-in resets the command
    env = dict(environment)
    for ref in env_files:
        env.update(_env_file(node, ref.removeprefix("-")))
    words = _words(exec_start.lstrip("-@+!:"))
    if not words:
        return None
    return ServiceCommand(argv=tuple(expand(words, env)), env=env, files=tuple(files))


def expand(words: list[str], env: dict[str, str]) -> list[str]:
    """ExecStart's words (already unquoted) with the environment substituted as systemd does."""
    argv: list[str] = []
    for word in words:
        if word.startswith("$") and word[1:2] not in ("{", "$"):
            value = env.get(word[1:])
            if value is not None:
                argv += _words(value) or value.split()
            continue
        argv.append(_BRACED.sub(lambda m: env.get(m.group(1), "") if m.group(1) else "$", word))
    return argv


def _words(text: str) -> list[str] | None:
    """Shell-like words with quotes removed; None if a quote is left open."""
    try:
        return shlex.split(text)
    except ValueError:
        return None


def unit_lines(text: str) -> list[tuple[str, str]]:
    """``(key, value)`` of each setting in a unit file's [Service] section (continued lines
    joined)."""
    out = []
    section = ""
    joined = re.sub(r"\\\n", " ", text)
    for line in joined.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if section != "Service" or not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        out.append((key.strip(), value.strip()))
    return out


def _env_file(node: Node, path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        text = node.read_text(path)
    except FileProblem:
        return out
    for line in re.sub(r"\\\n", "", text).splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if value[:1] in ('"', "'"):
            words = _words(value)
            value = words[0] if words and len(words) == 1 else value.strip("\"'")
        out[key.strip()] = value
    return out
