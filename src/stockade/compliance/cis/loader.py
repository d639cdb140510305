"""Loading benchmarks and custom checks from YAML (the format is described in docs/cis.md)."""

from __future__ import annotations

import dataclasses
import os
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from stockade.compliance.cis import operators
from stockade.compliance.cis.model import (
    Audit,
    Benchmark,
    Check,
    CheckType,
    Component,
    LauncherFlags,
    PathSpec,
    Test,
    Tests,
)
from stockade.config import parse_yaml
from stockade.model import ConfigError, Severity

BUILTIN = {
    "kubernetes": {"cis-1.12": "k8s-cis-1.12.yaml", "cis-1.11": "k8s-cis-1.11.yaml"},
    "docker": {"cis-1.6": "docker-cis-1.6.yaml"},
}
DEFAULT = {"kubernetes": "cis-1.12", "docker": "cis-1.6"}
_TEST_KEYS = {"flag", "path", "env", "key", "set", "default", "file_default"}
_AUDIT_KEYS = {
    "process",
    "files",
    "tree",
    "names",
    "document",
    "text",
    "containers",
    "command",
    "script",
    "timeout",
}


def builtin(platform: str, version: str | None = None) -> Benchmark:
    """A benchmark shipped in the package (``version`` like ``cis-1.12``; default the newest)."""
    versions = BUILTIN[platform]
    name = version or DEFAULT[platform]
    if not name.startswith("cis-"):
        name = f"cis-{name}"
    if name not in versions:
        raise ConfigError(f"no {platform} benchmark {version!r} (available: {', '.join(versions)})")
    return _builtin_file(versions[name])


@cache
def _builtin_file(name: str) -> Benchmark:
    """Parsed once per process: a benchmark is immutable data."""
    return parse_benchmark(_builtin_raw(name), name)


def _builtin_raw(name: str) -> dict[str, Any]:
    """A data file as a mapping, with ``extends:`` resolved (see :func:`_extend`)."""
    text = resources.files("stockade.compliance.cis").joinpath("data", name).read_text("utf-8")
    data = _yaml(text, name)
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: expected a mapping")
    if data.get("extends"):
        return _extend(_builtin_raw(str(data["extends"])), data, name)
    return data


def _extend(parent: dict[str, Any], child: dict[str, Any], where: str) -> dict[str, Any]:
    """An older benchmark version written as differences from a newer one: its own
    ``benchmark`` header, ``override`` (check id -> fields replaced) and ``add`` (checks appended
    to a section)."""
    import copy

    out = copy.deepcopy(parent)
    out["benchmark"] = child["benchmark"]
    overrides = dict(child.get("override") or {})
    for sec in out.get("sections") or []:
        for check in sec.get("checks") or []:
            if check.get("id") in overrides:
                check.update(overrides.pop(check["id"]))
        for extra in child.get("add") or []:
            if str(extra.get("section")) == str(sec.get("id")):
                sec["checks"].extend(copy.deepcopy(extra.get("checks") or []))
    if overrides:
        raise ConfigError(f"{where}: override names unknown checks: {', '.join(sorted(overrides))}")
    return out


def load_custom(path: Path, base: Benchmark) -> tuple[Check, ...]:
    """User checks from a YAML file or every ``*.yaml``/``*.yml`` in a directory; they may name
    the base benchmark's components and path variables."""
    files = sorted([*path.glob("*.yaml"), *path.glob("*.yml")]) if path.is_dir() else [path]
    if path.is_dir() and not files:
        raise ConfigError(f"--checks {path}: no .yaml files in this directory")
    checks: list[Check] = []
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--checks {f}: {exc.strerror}") from exc
        data = _yaml(text, str(f))
        if not isinstance(data, dict):
            raise ConfigError(f"{f}: expected a mapping with 'checks' or 'sections'")
        sections = data.get("sections")
        if sections is None:
            sections = [{"id": "custom", "title": "Custom checks", "checks": data.get("checks")}]
        checks.extend(_with_script_paths(c, f.parent) for c in _sections(sections, str(f), base))
    ids = [c.id for c in checks]
    clash = sorted(
        {i for i in ids if ids.count(i) > 1} | ({i for i in ids} & {c.id for c in base.checks})
    )
    if clash:
        raise ConfigError(f"--checks {path}: duplicate check ids: {', '.join(clash)}")
    return tuple(checks)


def _with_script_paths(check: Check, base_dir: Path) -> Check:
    """Script paths in a custom check file are relative to that file; the script must exist."""
    if check.audit is None or not check.audit.script:
        return check
    script = Path(check.audit.script)
    if not script.is_absolute():
        script = (base_dir / script).resolve()
    if not script.is_file() or not os.access(script, os.X_OK):
        raise ConfigError(f"check {check.id}: script {script} is missing or not executable")
    return dataclasses.replace(check, audit=dataclasses.replace(check.audit, script=str(script)))


def _yaml(text: str, where: str) -> Any:
    return parse_yaml(text, name=where)[0]


def parse_benchmark(data: Any, where: str) -> Benchmark:
    if not isinstance(data, dict) or not isinstance(data.get("benchmark"), dict):
        raise ConfigError(f"{where}: missing 'benchmark' header")
    head = data["benchmark"]
    comps = tuple(_component(n, c, where) for n, c in (data.get("components") or {}).items())
    bench = Benchmark(
        id=str(head.get("id", "")),
        title=str(head.get("title", "")),
        version=str(head.get("version", "")),
        platform=str(head.get("platform", "custom")),
        roles=tuple(data.get("roles") or ()),
        components=comps,
    )
    checks = _sections(data.get("sections") or [], where, bench)
    return Benchmark(
        id=bench.id,
        title=bench.title,
        version=bench.version,
        platform=bench.platform,
        roles=bench.roles,
        components=comps,
        checks=tuple(checks),
    )


def _component(name: str, data: Any, where: str) -> Component:
    if not isinstance(data, dict) or not data.get("bins"):
        raise ConfigError(f"{where}: component {name!r} needs 'bins'")
    paths = []
    for key, spec in (data.get("paths") or {}).items():
        if isinstance(spec, list):
            spec = {"candidates": spec}
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: component {name!r} path {key!r} must be a list or mapping")
        flag = spec.get("flag") or ()
        paths.append(
            (
                key,
                PathSpec(
                    flag=tuple([flag] if isinstance(flag, str) else flag),
                    config_key=str(spec.get("config_key", "")),
                    env=str(spec.get("env", "")),
                    candidates=tuple(str(c) for c in spec.get("candidates") or ()),
                ),
            )
        )
    return Component(
        name=name,
        roles=tuple(data.get("roles") or ()),
        bins=tuple(str(b) for b in data["bins"]),
        optional=bool(data.get("optional", False)),
        embedded=tuple((str(k), str(v)) for k, v in (data.get("embedded") or {}).items()),
        launcher_flags=_launcher_flags(data.get("launcher_flags"), f"{where}: component {name!r}"),
        launcher_config=tuple(
            (str(k), str(v)) for k, v in (data.get("launcher_config") or {}).items()
        ),
        launcher_disable=tuple(
            (str(k), str(v))
            for k, vs in (data.get("launcher_disable") or {}).items()
            for v in (vs if isinstance(vs, list) else [vs])
        ),
        manifest=str(data.get("manifest", "")),
        unit=str(data.get("unit", "")),
        config=_strs(data.get("config"), "config", f"{where}: component {name!r}"),
        config_replaces_flags=bool(data.get("config_replaces_flags", False)),
        config_keys=_config_keys(data.get("config_keys", "exact"), f"{where}: component {name!r}"),
        go_flags=bool(data.get("go_flags", False)),
        config_ignores_flags=_strs(
            data.get("config_ignores_flags"), "config_ignores_flags", f"{where}: component {name!r}"
        ),
        config_needs_flag=bool(data.get("config_needs_flag", False)),
        config_dropins=str(data.get("config_dropins", "")),
        paths=tuple(paths),
    )


def _config_keys(value: Any, here: str) -> str:
    if value not in ("exact", "go-json", "flag-names"):
        raise ConfigError(f"{here}: config_keys must be exact, go-json or flag-names")
    return str(value)


def _launcher_flags(raw: Any, here: str) -> tuple[tuple[str, tuple[LauncherFlags, ...]], ...]:
    """``{bin: {flag: value}}`` or ``{bin: [{flags: {...}, exists|missing|setting|datastore}]}``:
    what a launcher passes the component before the user's flags, and when."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise ConfigError(f"{here}: launcher_flags must map a bin to {{flag: value}} or a list")
    out = []
    for b, sets in raw.items():
        entries = sets if isinstance(sets, list) else [{"flags": sets}]
        parsed = []
        for entry in entries:
            flags = entry.get("flags") if isinstance(entry, dict) else None
            if not isinstance(flags, dict) or set(entry) - _LAUNCHER_KEYS:
                raise ConfigError(
                    f"{here}: launcher_flags of {b!r}: each entry needs 'flags' ({{flag: value}}) "
                    f"and may have {', '.join(sorted(_LAUNCHER_KEYS - {'flags'}))}"
                )
            datastore = str(entry.get("datastore", ""))
            if datastore not in ("", "etcd", "external-etcd", "kine"):
                raise ConfigError(f"{here}: datastore must be etcd, external-etcd or kine")
            parsed.append(
                LauncherFlags(
                    flags=tuple((str(f), _scalar(v)) for f, v in flags.items()),
                    exists=str(entry.get("exists", "")),
                    missing=str(entry.get("missing", "")),
                    setting=str(entry.get("setting", "")),
                    datastore=datastore,
                )
            )
        out.append((str(b), tuple(parsed)))
    return tuple(out)


_LAUNCHER_KEYS = frozenset({"flags", "exists", "missing", "setting", "datastore"})


def _sections(sections: Any, where: str, bench: Benchmark) -> list[Check]:
    if not isinstance(sections, list):
        raise ConfigError(f"{where}: 'sections' must be a list")
    checks: list[Check] = []
    for sec in sections:
        if not isinstance(sec, dict) or not isinstance(sec.get("checks"), list):
            raise ConfigError(f"{where}: every section needs a 'checks' list")
        for raw in sec["checks"]:
            checks.append(_check(raw, sec, where, bench))
    return checks


def _check(raw: Any, sec: dict[str, Any], where: str, bench: Benchmark) -> Check:
    if not isinstance(raw, dict) or not raw.get("id") or not raw.get("title"):
        raise ConfigError(f"{where}: section {sec.get('id')}: every check needs 'id' and 'title'")
    cid = str(raw["id"])
    here = f"{where}: check {cid}"
    ctype = str(raw.get("type", "automated"))
    try:
        check_type = CheckType(ctype)
    except ValueError:
        raise ConfigError(
            f"{here}: type must be automated, manual or skip, not {ctype!r}"
        ) from None
    component = str(raw.get("component", sec.get("component", "")))
    if component and bench.component(component) is None:
        raise ConfigError(f"{here}: unknown component {component!r}")
    audit = _audit(raw.get("audit"), here, bench) if raw.get("audit") is not None else None
    tests = _tests(raw["tests"], here) if raw.get("tests") is not None else None
    if check_type is CheckType.AUTOMATED and audit is None:
        raise ConfigError(f"{here}: an automated check needs an 'audit'")
    if check_type is CheckType.AUTOMATED and tests is None and not (audit and audit.script):
        raise ConfigError(f"{here}: an automated check needs 'tests' (or a script audit)")
    try:
        severity = Severity.parse(str(raw.get("severity", sec.get("severity", "medium"))))
    except Exception as exc:  # Severity.parse raises UsageError; here it is a config problem
        raise ConfigError(f"{here}: {exc}") from None
    missing = str(raw.get("missing", sec.get("missing", "na")))
    if missing not in ("na", "fail"):
        raise ConfigError(f"{here}: missing must be 'na' or 'fail'")
    applies = _strs(raw.get("applies_if"), "applies_if", here)
    level = raw.get("level", sec.get("level", 1))
    if level not in (1, 2):
        raise ConfigError(f"{here}: level must be 1 or 2")
    refs = [*(sec.get("refs") or ()), *(raw.get("refs") or ())] if _lists(sec, raw) else None
    if refs is None:
        raise ConfigError(f"{here}: refs must be a list such as [pci-dss:2.2.1]")
    return Check(
        id=cid,
        benchmark_id=str(raw.get("cis", raw.get("benchmark_id", ""))),
        title=str(raw["title"]),
        section=f"{sec.get('id', '')} {sec.get('title', '')}".strip(),
        role=str(raw.get("role", sec.get("role", ""))),
        level=int(level),
        scored=bool(raw.get("scored", check_type is CheckType.AUTOMATED)),
        type=check_type,
        severity=severity,
        component=component,
        applies_if=applies,
        audit=audit,
        tests=tests,
        missing=missing,
        not_applicable_if=(
            _tests(raw["not_applicable_if"], here) if raw.get("not_applicable_if") else None
        ),
        launcher_tests=_launcher_tests(raw.get("launcher_tests"), here),
        remediation=str(raw.get("remediation", "")).strip(),
        refs=tuple(dict.fromkeys(str(r) for r in refs)),
    )


def _launcher_tests(raw: Any, here: str) -> tuple[tuple[str, Tests], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise ConfigError(f"{here}: launcher_tests must map a launcher bin to tests")
    return tuple((str(b), _tests(t, here)) for b, t in raw.items())


def _lists(*holders: dict[str, Any]) -> bool:
    return all(isinstance(h.get("refs") or [], list) for h in holders)


def _audit(raw: Any, here: str, bench: Benchmark) -> Audit:
    if not isinstance(raw, dict):
        raise ConfigError(f"{here}: 'audit' must be a mapping")
    unknown = set(raw) - _AUDIT_KEYS
    if unknown:
        raise ConfigError(f"{here}: unknown audit keys: {', '.join(sorted(unknown))}")
    kinds = [
        k
        for k in ("process", "files", "tree", "document", "text", "containers", "command", "script")
        if raw.get(k)
    ]
    if len(kinds) != 1:
        raise ConfigError(
            f"{here}: an audit needs exactly one of process, files, tree, document, text, "
            "containers, command, script"
        )
    if raw.get("process") and bench.component(str(raw["process"])) is None:
        raise ConfigError(f"{here}: unknown component {raw['process']!r}")
    command = raw.get("command") or []
    if isinstance(command, str):
        raise ConfigError(f"{here}: 'command' must be an argument list (no shell)")
    try:
        timeout = float(raw.get("timeout", 10))
    except (TypeError, ValueError):
        raise ConfigError(f"{here}: 'timeout' must be a number of seconds") from None
    return Audit(
        process=str(raw.get("process", "")),
        files=_strs(raw.get("files"), "files", here),
        tree=str(raw.get("tree", "")),
        names=str(raw.get("names", "")),
        document=str(raw.get("document", "")),
        text=_strs(raw.get("text"), "text", here),
        containers=bool(raw.get("containers", False)),
        command=_strs(command, "command", here),
        script=str(raw.get("script", "")),
        timeout=timeout,
    )


def _strs(value: Any, what: str = "value", here: str = "") -> tuple[str, ...]:
    """A string or a list of scalars, as strings; anything else is a configuration error."""
    if value is None or value == "" or value == []:
        return ()
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return (str(value),)
    if isinstance(value, list) and all(
        isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value
    ):
        return tuple(str(v) for v in value)
    raise ConfigError(f"{here}: {what} must be a string or a list of strings")


def _tests(raw: Any, here: str) -> Tests:
    if isinstance(raw, list):
        return Tests(combine="and", items=tuple(_item(i, here) for i in raw))
    if isinstance(raw, dict) and len(raw) == 1 and next(iter(raw)) in ("all", "any"):
        key, items = next(iter(raw.items()))
        if not isinstance(items, list) or not items:
            raise ConfigError(f"{here}: '{key}' needs a non-empty list of tests")
        return Tests(
            combine="and" if key == "all" else "or", items=tuple(_item(i, here) for i in items)
        )
    if isinstance(raw, dict):
        return Tests(combine="and", items=(_item(raw, here),))
    raise ConfigError(f"{here}: 'tests' must be a list, a test, or all:/any:")


def _item(raw: Any, here: str) -> Test | Tests:
    if isinstance(raw, dict) and len(raw) == 1 and next(iter(raw)) in ("all", "any"):
        return _tests(raw, here)
    if not isinstance(raw, dict):
        raise ConfigError(f"{here}: a test must be a mapping")
    ops = [k for k in raw if k not in _TEST_KEYS]
    for op in ops:
        if op not in operators.OPERATORS:
            raise ConfigError(f"{here}: unknown test key or operator {op!r}")
    if len(ops) > 1:
        raise ConfigError(f"{here}: one operator per test, got {', '.join(ops)}")
    for name in ("path", "env", "key"):
        if not isinstance(raw.get(name, ""), str):
            raise ConfigError(f"{here}: test '{name}' must be a string")
    if ops and not _scalar_or_list(raw[ops[0]]):
        raise ConfigError(f"{here}: the value of '{ops[0]}' must be a scalar or a list of scalars")
    test = Test(
        flag=_strs(raw.get("flag"), "flag", here),
        path=str(raw.get("path", "")),
        env=str(raw.get("env", "")),
        key=str(raw.get("key", "")),
        op=ops[0] if ops else "",
        value=_value(raw[ops[0]]) if ops else "",
        present=bool(raw.get("set", True)),
        file_default=_default(raw, "file_default", here),
        default=_default(raw, "default", here),
    )
    if not (test.flag or test.path or test.env or test.key):
        raise ConfigError(f"{here}: a test needs flag, path, env or key")
    if test.file_default is not None and not test.path:
        raise ConfigError(f"{here}: 'file_default' needs 'path' (the config file key)")
    if (test.file_default is not None or test.default is not None) and not test.op:
        raise ConfigError(f"{here}: a default needs an operator to compare it with")
    if test.op:
        try:
            operators.validate(test.op, test.value)
        except ConfigError as exc:
            raise ConfigError(f"{here}: {exc}") from None
    return test


def _default(raw: dict[str, Any], name: str, here: str) -> str | None:
    if name not in raw:
        return None
    if isinstance(raw[name], (list, dict)) or raw[name] is None:
        raise ConfigError(f"{here}: '{name}' must be a scalar")
    return _scalar(raw[name])


def _scalar_or_list(v: Any) -> bool:
    if isinstance(v, list):
        return all(not isinstance(x, (list, dict)) for x in v)
    return not isinstance(v, dict)


def _value(v: Any) -> str | tuple[str, ...]:
    """A test's value: a scalar, or a list of scalars (``_scalar_or_list`` checked it)."""
    if isinstance(v, list):
        return tuple(_scalar(x) for x in v)
    return _scalar(v)


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return "" if v is None else str(v)
