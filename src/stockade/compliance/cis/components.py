"""Finding a benchmark's components on a node: which are running (or declared by a static pod
manifest or a systemd unit), with which flags, and where their files are."""

from __future__ import annotations

import configparser
import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from stockade.compliance.cis.model import Benchmark, Component, PathSpec, Test, Tests
from stockade.compliance.cis.node import FileProblem, Node, Process
from stockade.compliance.cis.systemd import read_service
from stockade.config import parse_json, parse_yaml
from stockade.model import StockadeError

_VAR = re.compile(r"\$\{(re:)?([a-z0-9_-]+)\.([a-z0-9_-]+)\}")
Flags = dict[str, list[str]]
# programs that read their own flags from a config file: (default path, variable naming another)
_LAUNCHER_CONFIG = {"k3s": ("/etc/rancher/k3s/config.yaml", "K3S_CONFIG_FILE")}
# where a launcher keeps its state: (flags naming it, its config file key, the default)
_LAUNCHER_DATA_DIR = {"k3s": (("--data-dir", "-d"), "data-dir", "/var/lib/rancher/k3s")}
# what makes k3s server start its embedded etcd before it has written the etcd config: flags or
# config file keys (a server joining another, --server, joins its etcd only if it has one: unknown)
_K3S_ETCD_INIT = ("cluster-init",)
# the launcher settings Stockade reads that may come from the environment (urfave/cli EnvVar)
_LAUNCHER_ENV = {
    "k3s": {
        "datastore-endpoint": "K3S_DATASTORE_ENDPOINT",
        "datastore-cafile": "K3S_DATASTORE_CAFILE",
        "datastore-certfile": "K3S_DATASTORE_CERTFILE",
        "datastore-keyfile": "K3S_DATASTORE_KEYFILE",
        "cluster-init": "K3S_CLUSTER_INIT",
    }
}
_SETTING = re.compile(r"\{setting:([a-z0-9-]+)\}")


@dataclass(slots=True)
class ComponentState:
    component: Component
    process: Process | None = None
    flags: Flags = field(default_factory=dict)
    source: str = ""  # where the flags came from, for evidence
    env: dict[str, str] = field(default_factory=dict)  # declared by a unit or manifest
    embedded: bool = False  # flags read from a launcher's (k3s's): the command line is partial
    launcher: str = ""  # the launcher's bin (``k3s server``) when embedded
    launcher_flags: Flags = field(default_factory=dict)  # what it sets before the user's flags
    # the launcher's data directory (k3s --data-dir), where its default paths move with it
    data_dir: str = ""
    # the config file a launcher writes for the embedded component, read instead of the flags
    launcher_config: str = ""
    absent_reason: str = ""  # why a component looked for is not there, when more than "absent"
    # (boolean flag, the argument after it): a command line the component refuses
    misread: list[tuple[str, str]] = field(default_factory=list)
    config_cache: dict[str, Any] | None = None

    @property
    def present(self) -> bool:
        return bool(self.source)

    def given(self, name: str) -> list[str] | None:
        """A flag's values: the command line's, else the launcher's own (k3s's)."""
        return self.flags.get(name) or self.launcher_flags.get(name)


def parse_flags(
    args: list[str] | tuple[str, ...],
    *,
    go_flags: bool = False,
    bool_flags: frozenset[str] = frozenset(),
    misread: list[tuple[str, str]] | None = None,
) -> Flags:
    """``--a=1 --b 2 -H x --bool`` into a map of flag to values (repeated flags keep all, in
    order). A one-letter flag written with its value attached (``-Htcp://0.0.0.0:2375``, as the
    pflag parser of dockerd and the Kubernetes components reads it) is also kept under ``-H``.
    ``go_flags``: the program parses with Go's flag package (etcd), which reads ``-auto-tls``
    as ``--auto-tls``. A flag in ``bool_flags`` takes its value only as ``--flag=value``, as pflag
    and Go's flag package read a boolean: in ``--profiling false`` it is true and ``false`` an
    argument the component rejects, which is added to ``misread`` as (flag, argument)."""
    flags: Flags = {}
    i = 0
    while i < len(args):
        tok = args[i]
        i += 1
        if not tok.startswith("-") or tok in ("-", "--"):
            continue
        if go_flags and not tok.startswith("--"):
            tok = "-" + tok
        name, eq, value = tok.partition("=")
        if not tok.startswith("--") and len(name) > 2 and tok[1].isalpha():
            flags.setdefault(tok[:2], []).append(tok[2:])
        if not eq:
            if name in bool_flags:
                value = "true"
                if misread is not None and i < len(args) and not args[i].startswith("-"):
                    misread.append((name, args[i]))
            elif i < len(args) and not args[i].startswith("-"):
                value = args[i]
                i += 1
            else:
                value = "true"
        flags.setdefault(name, []).append(value)
    return flags


# Tests whose operator reads a comma-separated list: a flag given more than once is every value
# given, joined (pflag's string-slice and map flags append: --enable-admission-plugins,
# --authorization-mode, --feature-gates, --tls-cipher-suites).
_LIST_OPERATORS = frozenset({"has", "nothave", "valid_elements"})


def flag_fact(values: list[str], op: str) -> str | list[str]:
    """The fact a test reads from a flag given ``len(values)`` times, as the component reads it.

    Comparisons of one value (``eq``, ``gte``, ``bitmask``, presence) see the last value given,
    which is the one pflag and Go's flag package keep (``--anonymous-auth=true
    --anonymous-auth=false`` runs with false); list operators see every value as one
    comma-separated list; ``regex`` must hold for each value (every ``-H`` address)."""
    if len(values) == 1:
        return values[0]
    if op in _LIST_OPERATORS:
        return ",".join(values)
    if op == "regex":
        return list(values)
    return values[-1]


def _bin_matches(argv: tuple[str, ...], bin_words: list[str]) -> bool:
    if len(argv) < len(bin_words) or PurePosixPath(argv[0]).name != bin_words[0]:
        return False
    return list(argv[1 : len(bin_words)]) == bin_words[1:]


def parse_config(text: str, path: str) -> Any:
    """A config file as data: YAML (and so JSON), TOML or INI, chosen by its name."""
    name = path.lower()
    try:
        if name.endswith(".json"):
            return parse_json(text, name=path)
        if name.endswith(".toml"):
            return tomllib.loads(text)
        if name.endswith((".ini", ".cfg")):
            parser = configparser.ConfigParser(interpolation=None)
            parser.read_string(text)
            return {s: dict(parser[s]) for s in parser.sections()}
        return parse_yaml(text, name=path, kubernetes=True)[0]
    except StockadeError as exc:
        detail = f"line {exc.line}: {exc.message}" if exc.line else exc.message
        raise FileProblem(f"{path}: malformed config file ({detail})") from None
    except RecursionError:  # tomllib and configparser's callers recurse once per nesting level
        raise FileProblem(f"{path}: malformed config file (nested too deeply)") from None
    except (
        tomllib.TOMLDecodeError,
        configparser.Error,
    ) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FileProblem(f"{path}: malformed config file ({first})") from exc


def lookup(data: Any, dotted: str) -> list[str] | str | None:
    """The value at ``a.b.c`` as a fact: scalars as strings, lists as string lists. A numeric
    part indexes a list; ``*`` maps over a list (the result is a list)."""
    return fact_value(_walk(data, dotted.split(".")))


# Go's encoding/json compares a key with a field name ignoring ASCII case; of the other
# characters only the Kelvin sign and the long s fold to ASCII letters (k and s)
_GO_FOLD_SPECIAL = {"\u212a": "K", "\u017f": "S"}


def go_fold(key: str) -> str:
    """``key`` as Go's encoding/json compares it with an ASCII field name."""
    return "".join(c.upper() if c.isascii() else _GO_FOLD_SPECIAL.get(c, c) for c in key)


def go_json_view(value: Any) -> Any:
    """A YAML document as etcd decodes it (sigs.k8s.io/yaml, then Go's encoding/json): keys are
    visited in sorted order (the YAML-to-JSON step marshals maps with sorted keys) and folded
    (``Client-Transport-Security`` is ``client-transport-security``); of keys folding alike the
    last one wins, two objects merge key by key (decoding into the same struct), and a null
    leaves the field as it was."""
    if isinstance(value, list):
        return [go_json_view(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in sorted(value.items(), key=lambda kv: str(kv[0])):
        if item is None:
            continue
        folded, item = go_fold(str(key)), go_json_view(item)
        prev = out.get(folded)
        out[folded] = _merged(prev, item) if isinstance(prev, dict) else item
    return out


def _walk(cur: Any, parts: list[str]) -> Any:
    for i, part in enumerate(parts):
        if part == "*" and isinstance(cur, list):
            found = [_walk(item, parts[i + 1 :]) for item in cur]
            return [f for f in found if f is not None]
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return None
    return cur


def fact_value(value: Any) -> list[str] | str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return [str(fact_value(v)) for v in value]
    if isinstance(value, dict):
        return json.dumps(_hide_secrets(value), sort_keys=True)
    return str(value)


# keys whose values are key material: an EncryptionConfiguration's aescbc/aesgcm/secretbox keys
# hold the cluster's data encryption key in `secret`; evidence shows the structure, not the key
_SECRET_KEYS = frozenset({"secret"})


def _hide_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: "<hidden>" if str(k).lower() in _SECRET_KEYS else _hide_secrets(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_hide_secrets(v) for v in value]
    return value


class Resolver:
    """Component states and path variables for one benchmark on one node (cached)."""

    def __init__(self, benchmark: Benchmark, node: Node) -> None:
        self.benchmark = benchmark
        self.node = node
        self._states: dict[str, ComponentState] = {}
        self._bools: dict[str, frozenset[str]] = {}

    def state(self, name: str) -> ComponentState:
        if name not in self._states:
            comp = self.benchmark.component(name)
            if comp is None:
                raise KeyError(name)
            self._states[name] = self._find(comp)
        return self._states[name]

    def bool_flags(self, comp: str) -> frozenset[str]:
        """The component's flags the benchmark compares with true or false: booleans."""
        if comp not in self._bools:
            names = {
                name
                for check in self.benchmark.checks
                if check.audit is not None and check.audit.process == comp and check.tests
                for t in _tests_of(check.tests)
                if t.op in ("eq", "noteq") and str(t.value).lower() in ("true", "false")
                for name in t.flag
            }
            self._bools[comp] = frozenset(names)
        return self._bools[comp]

    def roles(self) -> set[str]:
        found: set[str] = set()
        for comp in self.benchmark.components:
            if not comp.optional and self.state(comp.name).present:
                found.update(comp.roles)
        return found

    def _find(self, comp: Component) -> ComponentState:
        absent = ""
        for bin_spec in comp.bins:
            words = bin_spec.split()
            for proc in self.node.processes:
                if not _bin_matches(proc.argv, words):
                    continue
                settings = self._launcher_settings(proc, words) if comp.launcher_disable else {}
                off = next(
                    (
                        name
                        for b, name in comp.launcher_disable
                        if b == bin_spec and (settings.get(name) or ["false"])[-1] == "true"
                    ),
                    "",
                )
                if off:
                    absent = absent or (
                        f"process {proc.pid} ({bin_spec}) runs with --{off}: "
                        f"no {comp.name} on this node"
                    )
                    continue
                if bin_spec in dict(comp.launcher_config):
                    found = self._from_launcher(comp, proc, bin_spec, words)
                    if not found.present:
                        absent = absent or found.absent_reason
                        continue
                    return found
                return self._from_process(comp, proc, bin_spec, words)
        state = ComponentState(component=comp, absent_reason=absent)
        if comp.manifest:
            self._from_manifest(state)
        if not state.present and comp.unit:
            self._from_unit(state)
        return state

    def _from_process(
        self, comp: Component, proc: Process, bin_spec: str, words: list[str]
    ) -> ComponentState:
        misread: list[tuple[str, str]] = []
        flags = parse_flags(
            proc.argv[len(words) :],
            go_flags=comp.go_flags,
            bool_flags=self.bool_flags(comp.name),
            misread=misread,
        )
        embedded = dict(comp.embedded).get(bin_spec)
        src = f"process {proc.pid} ({' '.join(words)})"
        launcher_flags: Flags = {}
        data_dir = ""
        if embedded:
            # k3s style: the component's own flags travel as --kube-apiserver-arg=key=value, from
            # k3s's config file first (k3s puts its values before the command line's), merged
            # with the flags k3s sets itself as k3s merges them (key+= appends to k3s's value)
            outer = flags
            from_file, files = self._launcher_config(proc, outer)
            given = [*from_file.get(embedded.lstrip("-"), []), *outer.get(embedded, [])]
            own = self._launcher_own(comp, proc, bin_spec, words)
            flags, launcher_flags = merge_launcher_args(own, given)
            src += "".join(f" and {f}" for f in files)
            data_dir = _data_dir(words[0], outer, from_file)
        return ComponentState(
            component=comp,
            process=proc,
            flags=flags,
            source=src,
            embedded=bool(embedded),
            launcher=bin_spec if embedded else "",
            launcher_flags=launcher_flags,
            data_dir=data_dir if embedded else "",
            misread=[] if embedded else misread,
        )

    def _launcher_own(
        self, comp: Component, proc: Process, bin_spec: str, words: list[str]
    ) -> dict[str, str]:
        """The flags the launcher starts the component with on this node: the data's sets whose
        conditions hold (a path k3s writes, one of its settings, its datastore)."""
        sets = dict(comp.launcher_flags).get(bin_spec, ())
        if not sets:
            return {}
        outer = parse_flags(proc.argv[len(words) :])
        from_file = self._launcher_config(proc, outer)[0]
        data_dir = _data_dir(words[0], outer, from_file)
        settings = self._launcher_settings(proc, words)

        def fill(text: str) -> str:
            text = text.replace("{data_dir}", data_dir)
            return _SETTING.sub(lambda m: (settings.get(m.group(1)) or [""])[-1], text)

        datastore = self._datastore(settings, data_dir, bin_spec)
        own: dict[str, str] = {}
        for entry in sets:
            if entry.exists and not self.node.exists(fill(entry.exists)):
                continue
            if entry.missing and self.node.exists(fill(entry.missing)):
                continue
            if entry.setting and (settings.get(entry.setting) or ["false"])[-1] != "true":
                continue
            if entry.datastore and entry.datastore != datastore:
                continue
            for name, value in entry.flags:
                if fill(value):
                    own[name.lstrip("-")] = fill(value)
        return own

    def _datastore(self, settings: Flags, data_dir: str, bin_spec: str) -> str:
        """Where k3s server keeps its data: "etcd" (embedded: it wrote its etcd config, or was
        told --cluster-init; or the other servers' etcd, with --disable-etcd), "external-etcd"
        (--datastore-endpoint http(s)://, which k3s hands the API server), or "kine" (SQLite by
        default, or a SQL endpoint, served to the API server on the unix socket kine.sock)."""
        if bin_spec != "k3s server":
            return ""
        endpoint = (settings.get("datastore-endpoint") or [""])[-1]
        if endpoint:
            return "external-etcd" if endpoint.startswith(("http://", "https://")) else "kine"
        # a server with --disable-etcd reaches the etcd of the servers it joined (through k3s's
        # local etcd load balancer, with the same client certificate)
        init = any(
            (settings.get(k) or ["false"])[-1] == "true" for k in (*_K3S_ETCD_INIT, "disable-etcd")
        )
        etcd = self.benchmark.component("etcd")
        config = dict(etcd.launcher_config).get(bin_spec, "") if etcd else ""
        if init or (config and self.node.exists(config.format(data_dir=data_dir))):
            return "etcd"
        return "kine"

    def _from_launcher(
        self, comp: Component, proc: Process, bin_spec: str, words: list[str]
    ) -> ComponentState:
        """A component the launcher runs inside itself only in some set-ups (k3s server's etcd,
        absent when k3s keeps its data in SQLite through kine or in an external datastore)."""
        flags = parse_flags(proc.argv[len(words) :])
        from_file, _ = self._launcher_config(proc, flags)
        settings = self._launcher_settings(proc, words)
        where = f"process {proc.pid} ({bin_spec})"
        if settings.get("datastore-endpoint", [""])[-1]:
            # the endpoint may carry credentials: it is not repeated
            reason = (
                f"{where} keeps its data in the external datastore --datastore-endpoint names: "
                f"no {comp.name} runs on this node"
            )
            return ComponentState(component=comp, absent_reason=reason)
        data_dir = _data_dir(words[0], flags, from_file)
        path = dict(comp.launcher_config)[bin_spec].format(data_dir=data_dir)
        init = [k for k in _K3S_ETCD_INIT if settings.get(k, ["false"])[-1] == "true"]
        if not self.node.exists(path) and not init:
            reason = (
                f"{where} keeps its data in SQLite through kine (no {path}, no --cluster-init): "
                f"no {comp.name} runs on this node"
            )
            return ComponentState(component=comp, absent_reason=reason)
        return ComponentState(
            component=comp,
            process=proc,
            source=f"{where}, embedded {comp.name}",
            embedded=True,
            launcher=bin_spec,
            launcher_config=path,
            data_dir=data_dir,
        )

    def _launcher_settings(self, proc: Process, words: list[str]) -> Flags:
        """A launcher's own settings by name without dashes: its environment's (k3s's install
        script keeps K3S_DATASTORE_ENDPOINT in k3s.service.env), then its config file's, then its
        command line's, the order in which k3s lets them override each other."""
        flags = parse_flags(proc.argv[len(words) :])
        from_file, _ = self._launcher_config(proc, flags)
        env = self.node.env_of(proc) or {}
        from_env = {
            name: [_env_setting(env[var])]
            for name, var in _LAUNCHER_ENV.get(PurePosixPath(proc.argv[0]).name, {}).items()
            if env.get(var)
        }
        return {**from_env, **from_file, **{k.lstrip("-"): v for k, v in flags.items()}}

    def _launcher_config(self, proc: Process, flags: Flags) -> tuple[Flags, list[str]]:
        """The settings of k3s's config file (``--config``/``-c``, ``$K3S_CONFIG_FILE`` or
        /etc/rancher/k3s/config.yaml) and its ``config.yaml.d/*.yaml`` drop-ins, in name order:
        a later file's key replaces an earlier one's values, ``key+`` appends to them."""
        launcher = _LAUNCHER_CONFIG.get(PurePosixPath(proc.argv[0]).name)
        if launcher is None:
            return {}, []
        default, env_name = launcher
        env = self.node.env_of(proc) or {}
        path = env.get(env_name) or (flags.get("--config") or flags.get("-c") or [default])[-1]
        files = [f for f in [path] if self.node.exists(f)]
        # k3s reads every *.yaml and *.yml of config.yaml.d (suffix in any case), in name order
        files += [
            f
            for f in sorted(self.node.expand(f"{path}.d/*"))
            if f.lower().endswith((".yaml", ".yml")) and not _is_dir(self.node, f)
        ]
        out: Flags = {}
        for f in files:
            try:
                data = parse_config(self.node.read_text(f), f)
            except FileProblem:
                continue  # k3s would not start with it; nothing to read
            for key, value in data.items() if isinstance(data, dict) else ():
                name = str(key)
                values = [
                    str(fact_value(v) or "")
                    for v in (value if isinstance(value, list) else [value])
                ]
                if name.endswith("+"):
                    out[name[:-1]] = out.get(name[:-1], []) + values
                else:
                    out[name] = values
        return out, files

    def _from_manifest(self, state: ComponentState) -> None:
        path = self._candidate(state.component, state.component.manifest)
        if not path:
            return
        try:
            doc = parse_config(self.node.read_text(path), path)
        except FileProblem:
            return  # a broken manifest is reported by the checks that read it
        spec = doc.get("spec") if isinstance(doc, dict) else None
        containers = spec.get("containers") if isinstance(spec, dict) else None
        if (
            not isinstance(containers, list)
            or not containers
            or not isinstance(containers[0], dict)
        ):
            return
        # a broken manifest (command as a string, args as a mapping) declares nothing usable
        argv = [
            str(a)
            for key in ("command", "args")
            if isinstance(containers[0].get(key), list)
            for a in containers[0][key]
        ]
        own = _component_args(argv, state.component)
        if own is None:
            return  # a shell script that does not visibly start the component declares nothing
        state.flags = parse_flags(
            own,
            go_flags=state.component.go_flags,
            bool_flags=self.bool_flags(state.component.name),
            misread=state.misread,
        )
        state.env = {
            str(e["name"]): str(e.get("value") or "")
            for e in containers[0].get("env") or ()
            if isinstance(e, dict) and isinstance(e.get("name"), str)
        }
        state.source = f"static pod manifest {path}"

    def _from_unit(self, state: ComponentState) -> None:
        path = self._candidate(state.component, state.component.unit)
        service = read_service(self.node, path) if path else None
        if service is None:
            return
        state.flags = parse_flags(
            list(service.argv[1:]),
            go_flags=state.component.go_flags,
            bool_flags=self.bool_flags(state.component.name),
            misread=state.misread,
        )
        state.env = service.env
        state.source = f"systemd unit {path}" + (" and drop-ins" if len(service.files) > 1 else "")

    def _candidate(self, comp: Component, key: str) -> str:
        """First existing candidate path (flags are unknown while the component is looked for)."""
        spec = comp.path_spec(key)
        for cand in spec.candidates if spec else ():
            if self.node.exists(cand):
                return cand
        return ""

    def environment(self, comp: str) -> tuple[dict[str, str] | None, str]:
        """The component's environment and where it was read: the running process's (None when
        it cannot be read), else the one its systemd unit or static pod manifest declares."""
        state = self.state(comp)
        if state.process is not None:
            env = self.node.env_of(state.process)
            return env, f"environment of pid {state.process.pid}"
        return state.env, f"environment of {state.source}"

    def flag(self, comp: str, names: tuple[str, ...]) -> tuple[str, list[str]] | None:
        """The values of a flag under any of its names (``--host`` and ``-H`` are one flag: a
        daemon given both listens on every address); the name is the first one given."""
        flags = self.state(comp).flags
        given = [n for n in names if n in flags]
        if not given:
            return None
        return given[0], [v for n in given for v in flags[n]]

    def launcher_flag(self, comp: str, names: tuple[str, ...]) -> tuple[str, list[str]] | None:
        """A flag the component's launcher sets itself (k3s starts the scheduler with
        --bind-address=127.0.0.1), which the user's own flags replace."""
        flags = self.state(comp).launcher_flags
        given = [n for n in names if n in flags]
        if not given:
            return None
        return given[0], [v for n in given for v in flags[n]]

    def config(self, comp: str) -> tuple[str, Any] | None:
        """The component's configuration (where, data): its config file with its drop-ins merged
        over it; None if it has neither; FileProblem if one is broken."""
        state = self.state(comp)
        if not state.component.config:
            return None
        if state.config_cache is None:
            if state.launcher_config:
                if not self.node.exists(state.launcher_config):
                    raise FileProblem(
                        f"{state.launcher} runs {comp} embedded but {state.launcher_config}, "
                        "which it writes at start-up, is missing"
                    )
                files = [state.launcher_config]
            else:
                paths = [
                    self.path(comp, key, allow_missing=True)
                    for key in state.component.config
                    if self._reads_config(state, key)
                ]
                files = [p for p in paths if p and self.node.exists(p)]
                files += self._dropins(state)
            if not files:
                return None
            data: Any = {}
            for f in files:
                doc = parse_config(self.node.read_text(f), f)
                if state.component.config_keys == "flag-names":
                    self._refuse_misspelt_keys(state.component, doc, f)
                data = _merged(data, doc)
            if state.component.config_keys == "go-json":
                data = go_json_view(data)
            state.config_cache = {"where": " + ".join(files), "data": data}
        return state.config_cache["where"], state.config_cache["data"]

    def config_value(self, comp: str, dotted: str) -> list[str] | str | None:
        """The value at ``dotted`` in the component's configuration, keys matched as the
        component matches them; None if unset or there is no configuration."""
        return fact_value(self.config_raw(comp, dotted))

    def config_raw(self, comp: str, dotted: str) -> Any:
        """The value at ``dotted`` as the file holds it (a YAML string stays a string)."""
        cfg = self.config(comp)
        if cfg is None:
            return None
        if self.state(comp).component.config_keys == "go-json":
            dotted = ".".join(
                p if p == "*" or p.isdigit() else go_fold(p) for p in dotted.split(".")
            )
        return _walk(cfg[1], dotted.split("."))

    def _refuse_misspelt_keys(self, comp: Component, doc: Any, path: str) -> None:
        """dockerd refuses a config file with a top-level key that is not one of its options
        spelled exactly ("the following directives don't match any configuration option"), though
        Go's JSON decoding would have taken ``Icc`` for ``icc``: such a file configures nothing."""
        known = self._config_keys(comp)
        for key in doc if isinstance(doc, dict) else ():
            name = str(key)
            if name in known:
                continue
            meant = [k for k in known if go_fold(k) == go_fold(name)]
            if meant:
                raise FileProblem(
                    f"{path}: {name!r} is not a {comp.name} option (options are matched "
                    f"case-sensitively: {meant[0]!r}); {comp.name} refuses to start with this "
                    f"file (the following directives don't match any configuration option: {name})"
                )

    def _config_keys(self, comp: Component) -> set[str]:
        """Top-level config keys the benchmark reads for ``comp`` (tests' ``path``, paths'
        ``config_key``)."""
        keys = {spec.config_key.split(".")[0] for _, spec in comp.paths if spec.config_key}
        for check in self.benchmark.checks:
            if check.audit is not None and check.audit.process == comp.name and check.tests:
                keys.update(t.path.split(".")[0] for t in _tests_of(check.tests) if t.path)
        return keys

    def _reads_config(self, state: ComponentState, key: str) -> bool:
        """Whether the component reads the config file ``key`` names: one whose command line is
        known reads a ``config_needs_flag`` file only when a flag names it (a kubelet without
        --config reads none, whatever lies at /var/lib/kubelet/config.yaml)."""
        spec = state.component.path_spec(key)
        if not state.component.config_needs_flag or spec is None:
            return True
        return any(state.given(name) for name in spec.flag)

    def _dropins(self, state: ComponentState) -> list[str]:
        """The ``*.conf`` files of the component's drop-in directory, in the order it reads them
        (only when its flag names one: the kubelet reads no directory unless --config-dir)."""
        spec = state.component.path_spec(state.component.config_dropins)
        given = [state.given(n)[-1] for n in spec.flag if state.given(n)] if spec else []  # type: ignore[index]
        if not given or not given[-1]:
            return []
        return sorted(self.node.expand(given[-1].rstrip("/") + "/*.conf"))

    def path(self, comp_name: str, key: str, *, allow_missing: bool = False) -> str:
        """Resolve ``${comp.key}``: flag, then config key, then env, then first existing
        candidate, then the first candidate as the default ("" when there is none)."""
        comp = self.benchmark.component(comp_name)
        spec = comp.path_spec(key) if comp else None
        if spec is None:
            if allow_missing:
                return ""
            raise KeyError(f"{comp_name}.{key}")
        return self._resolve(comp_name, spec)

    def _resolve(self, comp_name: str, spec: PathSpec) -> str:
        state = self.state(comp_name)
        cfg = None
        if spec.config_key:
            try:
                cfg = self.config(comp_name)
            except FileProblem:
                cfg = None
        file_only = cfg is not None and state.component.config_replaces_flags
        ignored = state.component.config_ignores_flags if cfg is not None else ()
        for name in () if file_only else [f for f in spec.flag if f not in ignored]:
            if state.given(name):
                return state.given(name)[-1]  # type: ignore[index]
        if cfg is not None:
            value = self.config_value(comp_name, spec.config_key)
            if isinstance(value, str) and value:
                return value
        if spec.env and not file_only:
            env = self.environment(comp_name)[0] or {}
            if env.get(spec.env):
                return env[spec.env]
        candidates = [_relocated(state, c) for c in spec.candidates]
        for cand in candidates:
            if self.node.exists(cand):
                return cand
        return candidates[0] if candidates else ""

    def unused(self, text: str) -> str:
        """Why a config file ``text`` names is not one its component reads ("" if it is): a
        kubelet started without --config reads no config file, whatever lies at
        /var/lib/kubelet/config.yaml."""
        for m in _VAR.finditer(text):
            comp = self.benchmark.component(m.group(2))
            if comp is None or m.group(3) not in comp.config:
                continue
            state = self.state(comp.name)
            if state.present and not self._reads_config(state, m.group(3)):
                spec = comp.path_spec(m.group(3))
                flags = " or ".join(spec.flag) if spec else m.group(3)
                return f"{comp.name} reads no config file: started without {flags} ({state.source})"
        return ""

    def unset(self, text: str) -> str:
        """Why ``text`` resolves to nothing: the flags and keys that would name the path."""
        reasons = []
        for m in _VAR.finditer(text):
            comp = self.benchmark.component(m.group(2))
            spec = comp.path_spec(m.group(3)) if comp else None
            if spec is None or self.path(m.group(2), m.group(3)):
                continue
            names = [*spec.flag, *([spec.config_key] if spec.config_key else [])]
            reasons.append(f"{' or '.join(names) or m.group(0)} is not set")
        return "; ".join(reasons) or f"{text} is not configured"

    def substitute(self, text: str) -> str:
        """Replace ``${comp.key}`` with a path (``${re:comp.key}``: regex-escaped)."""

        def one(m: re.Match[str]) -> str:
            value = self.path(m.group(2), m.group(3))
            return re.escape(value) if m.group(1) else value

        return _VAR.sub(one, text) if "${" in text else text


_SHELLS = frozenset({"sh", "bash", "ash", "dash"})
_SHELL_OPERATOR = frozenset(";|&<>()")


def _component_args(argv: list[str], comp: Component) -> list[str] | None:
    """The component's own arguments in a static pod's command and args: those after its binary
    when a wrapper starts it (``/go-runner --log-file=... /usr/local/bin/kube-apiserver
    --flags``; the wrapper's flags are not the component's), the words after the binary up to
    the first shell operator when a shell does (kops: ``/bin/sh -c "mkfifo /tmp/pipe; ... ;
    exec /usr/local/bin/kube-apiserver --flags > /tmp/pipe 2>&1"``; None when the script does
    not name the binary), else everything after the first word (the binary) or all of it (only
    ``args``, the image's entrypoint being the binary)."""
    names = {b.split()[0] for b in comp.bins}
    if len(argv) > 2 and PurePosixPath(argv[0]).name in _SHELLS and "-c" in argv[1:-1]:
        lexer = shlex.shlex(argv[argv.index("-c") + 1], posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        try:
            words = list(lexer)
        except ValueError:
            return None  # unbalanced quotes: the shell would not run it either
        starts = [i for i, w in enumerate(words) if PurePosixPath(w).name in names]
        if not starts:
            return None
        rest = words[starts[-1] + 1 :]
        end = next((i for i, w in enumerate(rest) if set(w) <= _SHELL_OPERATOR), len(rest))
        return rest[:end]
    for i, arg in enumerate(argv[1:], start=1):
        if not arg.startswith("-") and PurePosixPath(arg).name in names:
            return argv[i + 1 :]
    return argv[1:] if argv and not argv[0].startswith("-") else argv


def _relocated(state: ComponentState, path: str) -> str:
    """A candidate under the launcher's default data directory, moved to the one it runs with
    (k3s --data-dir=/srv/k3s keeps its certificates in /srv/k3s/server/tls)."""
    if not state.data_dir or not state.launcher:
        return path
    default = _LAUNCHER_DATA_DIR.get(state.launcher.split()[0], ((), "", ""))[2]
    if default and default != state.data_dir and path.startswith(default + "/"):
        return state.data_dir + path[len(default) :]
    return path


def _data_dir(launcher: str, flags: Flags, from_file: Flags) -> str:
    """Where a launcher keeps its state (k3s: --data-dir/-d, its config file's data-dir, or
    /var/lib/rancher/k3s)."""
    names, key, default = _LAUNCHER_DATA_DIR.get(launcher, ((), "", ""))
    data_dir = next((flags[n][-1] for n in names if n in flags), "")
    return (data_dir or (from_file.get(key) or [default])[-1]).rstrip("/")


def _env_setting(value: str) -> str:
    """An environment variable's value as a setting: a boolean as urfave/cli parses it
    (strconv.ParseBool: 1, t, T, TRUE, true, True) spelled true or false."""
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return "true"
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return "false"
    return value


def _is_dir(node: Node, path: str) -> bool:
    try:
        return node.stat(path).is_dir
    except FileProblem:
        return False  # read (and found broken) as a file, as k3s would


def merge_launcher_args(own: dict[str, str], extra: list[str]) -> tuple[Flags, Flags]:
    """The flags a launcher starts a component with, as k3s's GetArgs makes them from its own
    (``own``, name without dashes -> value) and the user's ``key=value`` args in order:
    ``key=v`` replaces the launcher's value (repeated, every value is passed), ``key+=v``
    appends to it and ``key-=v`` prepends. Returns (flags the user's args touched, flags left
    as the launcher set them)."""
    initial = dict(own)
    merged: dict[str, list[str]] = {}
    for raw in extra:
        arg, eq, value = raw.removeprefix("--").partition("=")
        value = value if eq else "true"
        name = arg.rstrip("-+")
        first = [initial.pop(name)] if name in initial else []
        before = merged.get(name, [])
        if arg.endswith("+"):
            merged[name] = [*first, *before, value]
        elif arg.endswith("-"):
            merged[name] = [value, *first, *before]
        else:
            merged[name] = [*before, value]
    return (
        {f"--{k}": v for k, v in merged.items()},
        {f"--{k}": [v] for k, v in initial.items()},
    )


def _tests_of(tests: Tests) -> list[Test]:
    out: list[Test] = []
    for item in tests.items:
        out += _tests_of(item) if isinstance(item, Tests) else [item]
    return out


def _merged(base: Any, over: Any) -> Any:
    """``over`` merged into ``base`` as a JSON merge patch: mappings merge key by key, anything
    else replaces (a drop-in's list replaces the config file's)."""
    if not isinstance(base, dict) or not isinstance(over, dict):
        return over if over is not None else base
    out = dict(base)
    for k, v in over.items():
        out[k] = _merged(out.get(k), v) if isinstance(v, dict) else v
    return out
