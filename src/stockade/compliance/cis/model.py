"""The benchmark as data: components, checks, audits and tests (loaded by :mod:`.loader`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from stockade.model import Severity


class CheckType(StrEnum):
    AUTOMATED = "automated"  # audit and tests decide PASS/FAIL
    MANUAL = "manual"  # a person decides; the audit, if any, only gathers evidence (WARN)
    SKIP = "skip"  # listed for completeness, never evaluated (INFO)


@dataclass(frozen=True, slots=True, kw_only=True)
class PathSpec:
    """Where a component keeps a file: a process flag first, then a config key, then the first
    candidate that exists; ``candidates[0]`` is the default when none exists."""

    flag: tuple[str, ...] = ()
    config_key: str = ""
    env: str = ""
    candidates: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class LauncherFlags:
    """Flags a launcher (k3s) starts a component with, under conditions on the node: values may
    name ``{data_dir}`` (the launcher's data directory) and ``{setting:NAME}`` (one of its own
    settings; a flag whose value comes out empty is not passed)."""

    flags: tuple[tuple[str, str], ...]
    exists: str = ""  # only when this path exists (k3s 1.32+ writes 00-k3s-defaults.conf)
    missing: str = ""  # only when this path does not exist
    setting: str = ""  # only when this launcher setting is true (k3s --protect-kernel-defaults)
    # only with this datastore: "etcd" (embedded), "external-etcd" or "kine" (SQLite, SQL)
    datastore: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Component:
    """A program a benchmark audits (kube-apiserver, kubelet, dockerd).

    ``bins`` are command prefixes as they appear in a process list (``kube-apiserver``,
    ``hyperkube apiserver``); ``embedded`` maps a bin to the flag that carries this component's
    own flags inside it (``k3s server --kube-apiserver-arg=profiling=false``). ``declared`` names
    path keys whose files declare the command line when the process is not running: a static pod
    manifest (``manifest``) or a systemd unit with drop-ins (``unit``).
    """

    name: str
    roles: tuple[str, ...]
    bins: tuple[str, ...]
    optional: bool = False
    embedded: tuple[tuple[str, str], ...] = ()
    # flags a launcher starts the component with before the user's own (k3s server runs the
    # controller manager with --bind-address=127.0.0.1): bin -> the sets that apply on this node
    launcher_flags: tuple[tuple[str, tuple[LauncherFlags, ...]], ...] = ()
    # a launcher that runs the component inside itself and writes the config file it reads:
    # bin -> that file, ``{data_dir}`` being the launcher's data directory (k3s server's embedded
    # etcd reads {data_dir}/server/db/etcd/config); the component is there only when the file is
    # (or the launcher is told to start it: k3s --cluster-init)
    launcher_config: tuple[tuple[str, str], ...] = ()
    # launcher settings that keep it from running the component: (bin, setting name) pairs
    # (k3s server --disable-scheduler, --disable-etcd; --disable-kube-proxy, --disable-agent)
    launcher_disable: tuple[tuple[str, str], ...] = ()
    manifest: str = ""  # path key of a static pod manifest declaring the command
    unit: str = ""  # path key of a systemd unit declaring ExecStart
    # path keys of the component's own config files (kubelet config, daemon.json; the API
    # server's authorization and authentication configurations), merged in this order
    config: tuple[str, ...] = ()
    # a config file, when one is given, is read instead of the flags and the environment (etcd
    # ignores both once --config-file names a file)
    config_replaces_flags: bool = False
    # how the component matches its config file's keys: "exact" (Kubernetes components decode
    # case-sensitively), "go-json" (etcd: sigs.k8s.io/yaml turns the YAML into JSON with sorted
    # keys and Go's encoding/json matches them case-insensitively, the last match winning) or
    # "flag-names" (dockerd: a top-level key must be spelled as the flag is, or it refuses the file)
    config_keys: str = "exact"
    # flags the component ignores once a config file is given (kube-scheduler's deprecated
    # --profiling and --kubeconfig, most of kube-proxy's): the file's key, or its default, counts
    config_ignores_flags: tuple[str, ...] = ()
    go_flags: bool = False  # parses its command line with Go's flag package: -name is --name
    # reads a config file only when a flag names it (the kubelet's --config; daemon.json is read
    # from its default place without one)
    config_needs_flag: bool = False
    # path key of a drop-in directory whose *.conf files, in name order, are merged over the
    # config file (the kubelet's --config-dir)
    config_dropins: str = ""
    paths: tuple[tuple[str, PathSpec], ...] = ()

    def path_spec(self, key: str) -> PathSpec | None:
        for name, spec in self.paths:
            if name == key:
                return spec
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Audit:
    """What to read. Exactly one source kind is set; ``${component.key}`` variables are resolved
    against the node before reading."""

    process: str = ""  # component whose flags (and config file, and env) are read
    files: tuple[str, ...] = ()  # stat these paths (each must pass); globs allowed
    tree: str = ""  # stat every entry under this directory (optionally ``names`` filter)
    names: str = ""  # fnmatch pattern for ``tree``
    document: str = ""  # parse this YAML/JSON/TOML/INI file; tests look keys up by dotted path
    text: tuple[str, ...] = ()  # read and concatenate these files (globs allowed) as fact ``text``
    containers: bool = False  # one fact set per running Docker container
    command: tuple[str, ...] = ()  # argv; facts ``output`` and ``exit_code``
    script: str = ""  # a script path: exit 0 pass, 1 fail, other error
    timeout: float = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Test:
    """One comparison. ``flag``/``path``/``env``/``key`` say where the value comes from: a
    process flag overrides the config file key, which overrides the environment variable."""

    flag: tuple[str, ...] = ()
    path: str = ""
    env: str = ""
    key: str = ""
    op: str = ""  # "" means only presence is tested (see ``present``)
    value: str | tuple[str, ...] = ""
    present: bool = True  # set: false -> must be absent
    # What the component runs with when neither the flag nor the key is given: ``file_default``
    # when it reads a config file (the file format's own defaults, e.g. KubeletConfiguration's
    # anonymous auth off), ``default`` when it has none (its command-line defaults).
    file_default: str | None = None
    default: str | None = None

    def describe(self) -> str:
        sources = [*self.flag]
        if self.path:
            sources.append(f"{{.{self.path}}}")
        if self.env:
            sources.append(f"${self.env}")
        if self.key:
            sources.append(self.key)
        where = " or ".join(sources)
        if not self.present:
            return f"{where} is not set"
        if not self.op:
            return f"{where} is set"
        shown = ",".join(self.value) if isinstance(self.value, tuple) else self.value
        return f"{where} {self.op} {shown}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Tests:
    """Tests combined with ``and`` (all) or ``or`` (any); items may nest."""

    combine: str = "and"
    items: tuple[Test | Tests, ...] = ()

    def describe(self) -> str:
        parts = [i.describe() for i in self.items]
        if len(parts) == 1:
            return parts[0]
        joiner = " AND " if self.combine == "and" else " OR "
        return "(" + joiner.join(parts) + ")"


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    id: str  # stable slug: k8s.apiserver.anonymous_auth
    benchmark_id: str  # the benchmark's own numbering: 1.2.1
    title: str
    section: str  # "1.2 API Server"
    role: str  # node role the check belongs to
    level: int = 1
    scored: bool = True
    type: CheckType = CheckType.AUTOMATED
    severity: Severity = Severity.MEDIUM
    component: str = ""  # NOT_APPLICABLE when this component is absent
    applies_if: tuple[str, ...] = ()  # paths; NOT_APPLICABLE unless one exists
    audit: Audit | None = None
    tests: Tests | None = None
    missing: str = "na"  # a file audit with no file: "na" (NOT_APPLICABLE) or "fail"
    # tests that, when they hold on the audited facts, make the check NOT_APPLICABLE (an API
    # server reaching kine through a unix socket has no etcd connection to secure)
    not_applicable_if: Tests | None = None
    # launcher bin -> tests replacing ``tests`` when the component runs inside that launcher
    # (k3s server's embedded etcd runs as root: its data directory is root's, not etcd's)
    launcher_tests: tuple[tuple[str, Tests], ...] = ()
    remediation: str = ""
    refs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Benchmark:
    id: str  # cis-kubernetes-1.12
    title: str
    version: str
    platform: str  # kubernetes | docker | custom
    roles: tuple[str, ...] = ()
    components: tuple[Component, ...] = ()
    checks: tuple[Check, ...] = field(default=())

    def component(self, name: str) -> Component | None:
        for c in self.components:
            if c.name == name:
                return c
        return None
