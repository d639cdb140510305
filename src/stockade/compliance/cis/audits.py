"""Gathering facts for a check: each audit kind yields fact sets (one per file, container or
process) that the tests then judge. Problems become :class:`AuditError` (the check is ERROR)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from stockade.compliance.cis.components import (
    Resolver,
    fact_value,
    flag_fact,
    lookup,
    parse_config,
)
from stockade.compliance.cis.model import Audit, Test
from stockade.compliance.cis.node import FileProblem
from stockade.compliance.cis.operators import Fact

_OUTPUT_LIMIT = 64 * 1024


class AuditError(Exception):
    """The audit could not run; the message says why."""


class NotApplicable(Exception):
    """The audit has nothing to look at on this node; the message says why."""


@dataclass(slots=True)
class FactSet:
    """Facts about one subject (a file, a container, a component)."""

    subject: str
    values: dict[str, Fact] = field(default_factory=dict)
    doc: Any = None  # structured data looked up by dotted ``key``/``path``

    def get(self, test: Test) -> tuple[Fact | None, str]:
        for name in (test.key, test.path):
            if not name:
                continue
            if name in self.values:
                return self.values[name], f"{name}={_show(self.values[name])}"
            if self.doc is not None:
                value = lookup(self.doc, name)
                if value is not None:
                    return value, f"{name}={_show(value)}"
        label = test.key or test.path or ",".join(test.flag) or test.env
        return None, f"{label} not set"


@dataclass(slots=True)
class ProcessFacts:
    """Flags, config file keys and environment of one component, in that order of precedence."""

    resolver: Resolver
    component: str
    subject: str = ""
    _config: tuple[str, Any] | None = None
    _loaded: bool = False

    def config(self) -> tuple[str, Any] | None:
        if not self._loaded:
            self._loaded = True
            try:
                self._config = self.resolver.config(self.component)
            except FileProblem as exc:
                raise AuditError(str(exc)) from exc
        return self._config

    def get(self, test: Test) -> tuple[Fact | None, str]:
        state = self.resolver.state(self.component)
        if state.misread and test.flag:
            flag, arg = state.misread[0]
            raise AuditError(
                f"{flag} {arg} ({state.source}): {flag} is a boolean flag and takes its value only "
                f"as {flag}={arg}; {self.component} reads {flag} as true and refuses the stray "
                f"argument {arg!r}, so it does not start with this command line"
            )
        # etcd reads its --config-file instead of its flags and environment
        file_only = state.component.config_replaces_flags and self.config() is not None
        # a flag the component ignores next to a config file (kube-scheduler --profiling)
        ignored = bool(set(test.flag) & set(state.component.config_ignores_flags))
        skip_flags = file_only or (ignored and self.config() is not None)
        if test.flag and not skip_flags:
            hit = self.resolver.flag(self.component, test.flag)
            if hit is not None:
                name, values = hit
                self._refuse_both(state.component.config_keys, name, test)
                value: Fact = flag_fact(values, test.op)
                return value, f"{name}={_show(value)} ({state.source})"
            hit = self.resolver.launcher_flag(self.component, test.flag)
            if hit is not None:
                name, values = hit
                value = flag_fact(values, test.op)
                return value, (
                    f"{name}={_show(value)} (not given: {state.launcher} starts "
                    f"{self.component} with it; {state.source})"
                )
        if test.path:
            cfg = self.config()
            if cfg is not None:
                value2 = self.resolver.config_value(self.component, test.path)
                self._refuse_quoted_bool(test, cfg[0])
                if value2 is not None and value2 != []:
                    return value2, f"{test.path}: {_show(value2)} (config {cfg[0]})"
        if test.env and not file_only:
            env, env_source = self.resolver.environment(self.component)
            if env is None:
                # unknown is not "unset": a missing variable could turn a PASS into a FAIL
                raise AuditError(f"{env_source} is not readable or was not captured")
            if test.env in env:
                return env[test.env], f"${test.env}={env[test.env]} ({env_source})"
        where = [state.source or "no process"]
        cfg = self.config() if test.path else None
        if cfg is not None:
            where.append(f"config {cfg[0]}")
        label = " / ".join(
            [*test.flag, *([test.path] if test.path else []), *([test.env] if test.env else [])]
        )
        unset = f"{label} not set ({'; '.join(where)})"
        # unset is not unknown: the component runs with its default, which the test names
        if cfg is not None and test.file_default is not None:
            return test.file_default, f"{unset}: the config file's default {test.file_default}"
        if cfg is None and test.default is not None:
            return test.default, f"{unset}: the default {test.default}"
        return None, unset

    def _refuse_quoted_bool(self, test: Test, where: str) -> None:
        """A boolean setting written as a string (``client-cert-auth: "true"``, ``"icc":
        "false"``): Go's JSON decoding of the components' config files refuses a string for a
        bool ("cannot unmarshal string into Go struct field ... of type bool"), so the component
        does not start with the file; reading the text as the boolean would pass or fail a
        configuration that runs nowhere."""
        expected = test.value if isinstance(test.value, tuple) else (test.value,)
        if test.op not in ("eq", "noteq") or not all(v in ("true", "false") for v in expected):
            return
        raw = self.resolver.config_raw(self.component, test.path)
        if isinstance(raw, str):
            raise AuditError(
                f"{test.path} is the string {raw!r} in {where}, where {self.component} reads a "
                "boolean: it refuses the file (cannot unmarshal string into a bool field)"
            )

    def _refuse_both(self, keys: str, flag: str, test: Test) -> None:
        """dockerd refuses to start when an option is given both as a flag and in daemon.json
        ("the following directives are specified both as a flag and in the configuration
        file"): neither value is the running daemon's."""
        if keys != "flag-names" or not test.path:
            return
        cfg = self.config()
        if cfg is not None and self.resolver.config_value(self.component, test.path) is not None:
            raise AuditError(
                f"{flag} is given on the command line ({self.subject}) and {test.path} in "
                f"{cfg[0]}: {self.component} refuses to start with both (the following "
                "directives are specified both as a flag and in the configuration file)"
            )


def _show(value: Fact) -> str:
    text = ",".join(value) if isinstance(value, list) else value
    return text if len(text) <= 200 else text[:197] + "..."


def gather(audit: Audit, resolver: Resolver) -> list[FactSet | ProcessFacts]:
    """Fact sets for an audit. Raises NotApplicable when there is nothing to audit and
    AuditError when something that exists cannot be read."""
    node = resolver.node
    try:
        if audit.process:
            state = resolver.state(audit.process)
            if not state.present:
                raise NotApplicable(f"{audit.process} is neither running nor declared on this node")
            return [ProcessFacts(resolver=resolver, component=audit.process, subject=state.source)]
        if audit.files:
            return _files(resolver, audit.files)
        if audit.tree:
            top = resolver.substitute(audit.tree)
            if not node.exists(top):
                raise NotApplicable(f"{top} does not exist")
            return [_stat(resolver, p) for p in node.walk(top, audit.names)] or _none(
                f"no {audit.names} under {top}"
            )
        if audit.document:
            return [_document(resolver, audit.document)]
        if audit.text:
            return [_text(resolver, audit.text)]
        if audit.containers:
            return _containers(resolver)
        if audit.command:
            return [_command(resolver, audit)]
    except FileProblem as exc:
        raise AuditError(str(exc)) from exc
    except KeyError as exc:
        raise AuditError(f"unknown path variable {exc}") from exc
    raise AuditError("audit has no source")


def _none(reason: str) -> list[FactSet | ProcessFacts]:
    raise NotApplicable(reason)


def _files(resolver: Resolver, patterns: tuple[str, ...]) -> list[FactSet | ProcessFacts]:
    paths: list[str] = []
    wanted: list[str] = []
    unset: list[str] = []
    for pattern in patterns:
        unused = resolver.unused(pattern)
        if unused:
            unset.append(unused)
            continue
        resolved = resolver.substitute(pattern)
        if not resolved:
            unset.append(resolver.unset(pattern))
            continue
        wanted.append(resolved)
        paths += resolver.node.expand(resolved)
    if not paths:
        raise NotApplicable(
            "; ".join([*([f"not found: {', '.join(wanted)}"] if wanted else []), *unset])
        )
    return [_stat(resolver, p) for p in dict.fromkeys(paths)]


def _stat(resolver: Resolver, path: str) -> FactSet:
    info = resolver.node.stat(path)
    return FactSet(
        subject=path,
        values={
            "mode": info.mode,
            "owner": info.owner,
            "path": path,
            "type": "dir" if info.is_dir else "file",
        },
    )


def _document(resolver: Resolver, pattern: str) -> FactSet:
    path = resolver.substitute(pattern)
    if not path:
        raise NotApplicable(resolver.unset(pattern))
    if not resolver.node.exists(path):
        raise NotApplicable(f"not found: {path}")
    doc = parse_config(resolver.node.read_text(path), path)
    return FactSet(subject=path, doc=doc)


def _text(resolver: Resolver, patterns: tuple[str, ...]) -> FactSet:
    paths: list[str] = []
    for pattern in patterns:
        paths += resolver.node.expand(resolver.substitute(pattern))
    if not paths:
        raise NotApplicable(f"not found: {', '.join(resolver.substitute(p) for p in patterns)}")
    text = "\n".join(resolver.node.read_text(p) for p in paths)
    return FactSet(subject=", ".join(paths), values={"text": text, "files": paths})


def _containers(resolver: Resolver) -> list[FactSet | ProcessFacts]:
    root = resolver.path("dockerd", "dataroot").rstrip("/") + "/containers"
    sets: list[FactSet | ProcessFacts] = []
    for cfg_path in resolver.node.expand(f"{root}/*/config.v2.json"):
        doc = _json_file(resolver, cfg_path)
        if not isinstance(doc, dict) or not isinstance(doc.get("State") or {}, dict):
            raise AuditError(f"{cfg_path}: not a container configuration")
        if not (doc.get("State") or {}).get("Running"):
            continue
        host_path = str(PurePosixPath(cfg_path).parent / "hostconfig.json")
        if resolver.node.exists(host_path):
            doc["HostConfig"] = _json_file(resolver, host_path)
            if not isinstance(doc["HostConfig"], dict):
                raise AuditError(f"{host_path}: not a container host configuration")
        sets.append(FactSet(subject=_container_name(doc), values=_derived(doc), doc=doc))
    if not sets:
        raise NotApplicable(f"no running containers under {root}")
    return sets


def _json_file(resolver: Resolver, path: str) -> Any:
    """A JSON file of dockerd's; malformed or nested past the decoder's limit: AuditError."""
    try:
        return json.loads(resolver.node.read_text(path))
    except json.JSONDecodeError as exc:
        raise AuditError(f"{path}: malformed JSON ({exc.msg} at line {exc.lineno})") from exc
    except RecursionError:
        raise AuditError(f"{path}: malformed JSON (nested too deeply)") from None


def _container_name(doc: dict[str, Any]) -> str:
    name = str(doc.get("Name") or "").lstrip("/")
    short = str(doc.get("ID") or "")[:12]
    return f"{name} ({short})" if name and short else name or short or "container"


def _mapping(value: Any) -> dict[str, Any]:
    """A JSON object field, or nothing when the file holds something else there."""
    return value if isinstance(value, dict) else {}


def _sequence(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _derived(doc: dict[str, Any]) -> dict[str, Fact]:
    """Facts that need more than a key lookup (mounts, port bindings, security options)."""
    host = _mapping(doc.get("HostConfig"))
    mounts = list(_mapping(doc.get("MountPoints")).values())
    sources = [str(m.get("Source", "")) for m in mounts if isinstance(m, dict)]
    sources += [str(b).split(":")[0] for b in _sequence(host.get("Binds"))]
    bindings = [
        b
        for bs in _mapping(host.get("PortBindings")).values()
        for b in _sequence(bs)
        if isinstance(b, dict)
    ]
    opts = [str(o) for o in _sequence(host.get("SecurityOpt"))]
    return {
        "mount_sources": sorted(set(sources)),
        "mount_propagation": [str(m.get("Propagation", "")) for m in mounts if isinstance(m, dict)],
        "host_ports": [str(b.get("HostPort") or "0") for b in bindings],
        "host_ips": [str(b.get("HostIp") or "0.0.0.0") for b in bindings],
        "security_opt": opts,
        "no_new_privileges": fact_value(
            any(
                o.replace("=", ":") in ("no-new-privileges", "no-new-privileges:true") for o in opts
            )
        )
        or "false",
        "selinux_label": fact_value(any(o.startswith(("label=", "label:")) for o in opts))
        or "false",
        "seccomp_unconfined": fact_value(
            any(o.replace("=", ":") == "seccomp:unconfined" for o in opts)
        )
        or "false",
    }


def _command(resolver: Resolver, audit: Audit) -> FactSet:
    if not resolver.node.live:
        raise NotApplicable("command audits run only on the live host, not on a --root tree")
    argv = [resolver.substitute(a) for a in audit.command]
    exe = shutil.which(argv[0])
    if exe is None:
        raise AuditError(f"command not found: {argv[0]}")
    try:
        done = subprocess.run(
            [exe, *argv[1:]], capture_output=True, timeout=audit.timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise AuditError(f"{argv[0]} did not finish within {audit.timeout:g} s") from exc
    except OSError as exc:
        raise AuditError(f"cannot run {argv[0]}: {exc.strerror}") from exc
    out = done.stdout[:_OUTPUT_LIMIT].decode("utf-8", errors="replace")
    return FactSet(
        subject=" ".join(argv), values={"output": out, "exit_code": str(done.returncode)}
    )


def run_script(script: str, timeout: float, root: str) -> tuple[int | None, str]:
    """Run a custom script check; returns (exit code or None on timeout, first output line)."""
    env = {**os.environ, "STOCKADE_ROOT": root}
    try:
        done = subprocess.run([script], capture_output=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        return None, f"did not finish within {timeout:g} s"
    except OSError as exc:
        raise AuditError(f"cannot run {script}: {exc.strerror}") from exc
    out = (done.stdout + done.stderr)[:_OUTPUT_LIMIT].decode("utf-8", errors="replace").strip()
    return done.returncode, out.splitlines()[0][:300] if out else ""
