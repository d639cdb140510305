"""Hostile configuration inputs through the real CLI: deep nesting, alias bombs, impossible dates.

Before the safe loader, ``[[[[...`` killed ``bench workloads`` (SIGSEGV, exit 139) and every other
reader answered with a traceback and exit 1 (the "findings" code). Each reader now refuses them with
one ``stockade: error: FILE:LINE: ...`` line: exit 3 for a document over a limit, exit 2 for an
impossible date in a configuration file (like any other bad value there).
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.support import require

DEPTH = 100_000


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stockade", *args], capture_output=True, text=True, timeout=120
    )


def flow_nesting() -> str:
    return "a: " + "[" * DEPTH + "]" * DEPTH + "\n"


def block_nesting() -> str:
    return "a:\n" + "- " * DEPTH + "1\n"  # compact block sequences: one level per "- "


def billion_laughs() -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


def deep_json() -> str:
    return '{"a": ' + "[" * DEPTH + "]" * DEPTH + "}"


# Each reader: how to run it on a file (the rest of the command line), and a document it accepts
# with an impossible date in it.
READERS: dict[str, tuple[Callable[[Path, Path], list[str]], str]] = {
    "ignore file": (
        lambda f, tmp: ["scan", "rootfs", str(tmp), "--ignore-file", str(f), "--db", db(tmp)],
        "ignore:\n  - id: CVE-2024-1\n    reason: r\n    expires: 2024-02-30\n",
    ),
    "firewall policy": (
        lambda f, tmp: ["policy", "apply", str(f), "--db", db(tmp)],
        "metadata: {name: p}\nspec:\n  groups:\n    - {name: 2024-02-30, selector: {namespace: x}}\n",
    ),
    "admission policy": (
        lambda f, tmp: ["admission", "policy", "set", str(f), "--db", db(tmp)],
        "metadata: {name: 2024-02-30}\nspec:\n  rules: []\n",
    ),
}


def db(tmp: Path) -> str:
    return str(tmp / "stockade.db")


def one_error_line(out: subprocess.CompletedProcess[str], prefix: str) -> str:
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"stockade: error: {prefix}"), out.stderr[-2000:]
    return lines[0]


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize(
    ("make", "line", "problem"),
    [
        (flow_nesting, 1, "nested deeper than 100 levels"),
        (block_nesting, 2, "nested deeper than 100 levels"),
        (billion_laughs, 2, "aliases expand the document"),
    ],
    ids=["flow", "block", "laughs"],
)
def test_config_readers_refuse_deep_and_exploding_documents(
    tmp_path: Path, reader: str, make: Callable[[], str], line: int, problem: str
) -> None:
    command, _ = READERS[reader]
    doc = tmp_path / "hostile.yaml"
    doc.write_text(make())
    out = run(*command(doc, tmp_path))
    message = one_error_line(out, f"{doc}:{line}: ")
    assert problem in message and out.returncode == 3


@pytest.mark.parametrize("reader", READERS)
def test_config_readers_reject_an_impossible_date_with_its_line(
    tmp_path: Path, reader: str
) -> None:
    command, text = READERS[reader]
    doc = tmp_path / "dated.yaml"
    doc.write_text(text)
    out = run(*command(doc, tmp_path))
    line = 1 + text.splitlines().index(next(x for x in text.splitlines() if "2024-02-30" in x))
    message = one_error_line(out, f"{doc}:{line}: ")
    assert "invalid date '2024-02-30': day is out of range for month" in message
    assert out.returncode == 3  # an input no reader could take (issue 11: exit 3, one line)


def test_vex_refuses_deep_json(tmp_path: Path) -> None:
    doc = tmp_path / "deep.json"
    doc.write_text(deep_json())
    out = run("scan", "rootfs", str(tmp_path), "--vex", str(doc), "--db", db(tmp_path))
    assert "nested deeper than 100 levels" in one_error_line(out, f"{doc}:1: ")
    assert out.returncode == 3


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("flow.yaml", flow_nesting, "nested deeper than 100 levels (line 1)"),
        ("block.yaml", block_nesting, "nested deeper than 100 levels (line 2)"),
        ("deep.json", deep_json, "nested deeper than 100 levels (line 1)"),
        (
            "laughs.yaml",
            lambda: "kind: Pod\nmetadata: {name: p}\n" + billion_laughs(),
            "aliases expand the document by more than 100000 nodes (line 4)",
        ),
        (
            # an unquoted impossible date is text to kubectl (go-yaml keeps a timestamp in an
            # untyped value as its text), but an explicit tag it cannot honour is an error
            "tagged.yaml",
            lambda: "kind: Pod\nmetadata:\n  name: p\n  annotations: {built: !!int 0x}\n",
            "invalid integer '0x': Kubernetes does not read it as one (line 4)",
        ),
        (
            # PyYAML's set and map constructors unpacked a sequence as pairs: a TypeError
            "set.yaml",
            lambda: "kind: Pod\nmetadata:\n  name: p\n  labels: !!set [a]\n",
            "invalid YAML: expected a mapping node, but found sequence (line 4)",
        ),
        (
            # a timestamp that does not match: AttributeError on None.groupdict
            "stamp.yaml",
            lambda: "kind: Pod\nmetadata:\n  name: p\n  annotations: {t: !!timestamp x}\n",
            "invalid date 'x' (line 4)",
        ),
    ],
    ids=["flow", "block", "json", "laughs", "tagged", "set", "timestamp"],
)
def test_bench_workloads_reports_hostile_manifests_as_errors(
    tmp_path: Path, name: str, make: Callable[[], str], reason: str
) -> None:
    (tmp_path / name).write_text(make())
    (tmp_path / "ok.yaml").write_text("kind: Pod\nmetadata: {name: fine}\nspec: {}\n")
    out = run("bench", "workloads", str(tmp_path), "-f", "json", "--db", db(tmp_path))
    assert out.returncode == 3 and "Traceback" not in out.stderr, out.stderr[-2000:]
    findings = json.loads(out.stdout)["findings"]
    errors = [f for f in findings if f["status"] == "ERROR"]
    assert [e["details"]["reason"] for e in errors] == [reason]
    assert any(f["resource"]["name"] == "fine" for f in findings)  # the other file is still read


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("!!bool x", "invalid boolean 'x'"),  # was a KeyError and a traceback
        ("!!timestamp x", "invalid date 'x'"),  # was an AttributeError
        ("!!int ''", "invalid integer ''"),  # was an IndexError
    ],
    ids=["bool", "timestamp", "int"],
)
def test_config_readers_reject_a_tag_the_text_cannot_take(
    tmp_path: Path, reader: str, value: str, problem: str
) -> None:
    command, _ = READERS[reader]
    doc = tmp_path / "tagged.yaml"
    doc.write_text(f"metadata: {{name: p}}\nbad: {value}\n")
    out = run(*command(doc, tmp_path))
    assert problem in one_error_line(out, f"{doc}:2: ")
    assert out.returncode == 3


def test_every_tag_on_every_kind_of_node_is_an_answer_or_one_error() -> None:
    """Each of the safe loader's tags on scalars, sequences and mappings, in both dialects: a
    value, or a StockadeError with the line; never another exception."""
    from yaml.constructor import SafeConstructor

    from stockade.config import parse_yaml_all
    from stockade.model.errors import StockadeError

    tags = sorted(t for t in SafeConstructor.yaml_constructors if t)
    bodies = ["x", "''", "y", "0x1", "2024-13-99", "~", "1.5", "a b", "[a]", "[[a, b]]"]
    bodies += ["[{a: 1}]", "[{a: 1, b: 2}]", "{a: 1}", "{a: [1]}"]
    leaks = []
    for tag in tags:
        for body in bodies:
            for kubernetes in (False, True):
                text = f"ok: 1\nk: !<{tag}> {body}\n"
                try:
                    parse_yaml_all(text, name="t", kubernetes=kubernetes)
                except StockadeError as exc:
                    if exc.line != 2:
                        leaks.append((text, kubernetes, str(exc)))
                except Exception as exc:  # any other exception is what this test looks for
                    leaks.append((text, kubernetes, repr(exc)))
    assert not leaks, leaks


# ---------------------------------------------------------------- names with a trailing newline
# ``$`` also matches before a final newline, so "web\n" passed the slug checks and travelled into
# kernel rule comments, events and registry paths.


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ('groups: [{name: "web\\n", selector: {namespace: x}}]', "group name 'web\\n'"),
        (
            "groups: [{name: web, selector: {namespace: x}}]\n"
            '  rules: [{name: "r\\n", from: [web], to: [any]}]',
            "rule name 'r\\n'",
        ),
        ('groups: [{name: web, selector: {dns: ["example.com\\n"]}}]', "not a DNS name"),
    ],
    ids=["group", "rule", "dns"],
)
def test_firewall_names_with_a_trailing_newline_are_rejected(
    tmp_path: Path, spec: str, fragment: str
) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(f"metadata: {{name: p}}\nspec:\n  {spec}\n")
    out = run("policy", "apply", str(policy), "--db", db(tmp_path))
    assert fragment in one_error_line(out, f"{policy}:") and out.returncode == 2


def test_dlp_sensor_id_with_a_trailing_newline_is_rejected(tmp_path: Path) -> None:
    sensors = tmp_path / "s.yaml"
    sensors.write_text('sensors:\n  - {id: "acme.customer\\n", pattern: "ACME-[0-9]{6}"}\n')
    out = run("dlp", "sensors", "--sensors", str(sensors))
    assert "id must be a dotted slug" in one_error_line(out, "") and out.returncode == 2


def test_image_reference_with_a_newline_in_the_repository_is_rejected(tmp_path: Path) -> None:
    out = run("sbom", "registry.invalid:5000/app\n:1.0", "--db", db(tmp_path))  # was a traceback
    assert "not a valid repository name" in one_error_line(out, "") and out.returncode == 2


# ---------------------------------------------------------------- the database's files


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_database_folder_file_wal_and_shm_are_private(tmp_path: Path) -> None:
    """Under the usual umask 022 SQLite made the database, its -wal and -shm 0644 (world-readable
    findings and events). The webhook keeps its connection open, so all four can be seen."""
    folder = tmp_path / "data" / "stockade"
    db_file = folder / "stockade.db"
    server = subprocess.Popen(
        [sys.executable, "-m", "stockade", "admission", "serve", "--host", "127.0.0.1",
         "--port", "0", "--cert-dir", str(tmp_path / "certs"), "--db", str(db_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: os.umask(0o022),
    )  # fmt: skip
    try:
        wal, shm = Path(f"{db_file}-wal"), Path(f"{db_file}-shm")
        deadline = time.monotonic() + 60
        while not (wal.exists() and shm.exists()) and server.poll() is None:
            assert time.monotonic() < deadline, "the webhook never opened its database"
            time.sleep(0.1)
        assert server.poll() is None, server.communicate()[1]
        assert mode(folder) == 0o700 and mode(folder.parent) == 0o755
        assert {p.name: mode(p) for p in (db_file, wal, shm)} == {
            "stockade.db": 0o600, "stockade.db-wal": 0o600, "stockade.db-shm": 0o600,
        }  # fmt: skip
    finally:
        server.terminate()
        server.communicate(timeout=30)


def test_an_existing_database_folder_is_left_as_the_user_made_it(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o750)
    folder.chmod(0o750)
    out = run("images", "--db", str(folder / "stockade.db"))
    assert out.returncode == 0, out.stderr
    assert mode(folder) == 0o750 and mode(folder / "stockade.db") == 0o600


# ---------------------------------------------------------------- database URL passwords

SECRET = "s3cr3t-Pa55word"


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def refused_without_the_password(out: subprocess.CompletedProcess[str], code: int) -> str:
    line = one_error_line(out, "")
    assert SECRET not in out.stderr + out.stdout and "***" in line and out.returncode == code
    return line


@pytest.mark.parametrize(
    ("url", "code", "fragment"),
    [
        (f"postgresql://u:{SECRET}@127.0.0.1:{{port}}/x", 3, "Connection refused"),
        (f"postgres://u:{SECRET}@127.0.0.1:{{port}}/x", 3, "Connection refused"),
        (f"postgresql://u:{SECRET}@127.0.0.1:notaport/x", 2, "not a database URL"),
        (f"nosuchdb://u:{SECRET}@127.0.0.1:{{port}}/x", 2, "cannot use database URL"),
    ],
    ids=["unreachable", "postgres-scheme", "bad-port", "unknown-driver"],
)
def test_database_url_password_never_appears_in_errors(url: str, code: int, fragment: str) -> None:
    out = run("images", "--db", url.format(port=free_loopback_port()))
    assert fragment in refused_without_the_password(out, code)


def test_wrong_postgresql_password_is_not_echoed() -> None:
    real = os.environ.get(
        "STOCKADE_TEST_PG", "postgresql://stockade:stockade@127.0.0.1:5432/stockade_test"
    )
    parts = urlsplit(real)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5432
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        require(False, f"PostgreSQL is not listening on {host}:{port} (./dev setup starts it)")
    netloc = f"{parts.username}:{SECRET}@{host}:{port}"
    out = run("images", "--db", urlunsplit(parts._replace(netloc=netloc)))
    assert "password authentication failed" in refused_without_the_password(out, 3)


# ---------------------------------------------------------------- JSON: orjson and the reference


def _parsed(text: str) -> str:
    """What parse_json answers for ``text``: the document's repr with every value's type, or the
    error's class and message."""
    from stockade.config import parse_json
    from stockade.model.errors import StockadeError

    try:
        doc = parse_json(text, name="doc.json", spared=frozenset({"events"}))
    except StockadeError as exc:
        return f"refused {type(exc).__name__}: {exc}"
    return _typed(doc)


def _typed(value: object) -> str:
    """``value`` written with the type of every scalar (1 and 1.0, -0.0 and 0 differ)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_typed(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_typed(v) for v in value) + "]"
    return f"{type(value).__name__}:{value!r}"


def _alike(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from stockade import config

    assert config.orjson is not None
    fast = _parsed(text)
    with monkeypatch.context() as m:
        m.setattr(config, "orjson", None)  # the reference: json.loads alone
        assert fast == _parsed(text), text[:200]


HOSTILE_JSON = [
    "NaN",
    '{"x": [Infinity, -Infinity]}',
    '{"x": 1e400}',
    '{"x": -1.7976931348623159e308}',
    '{"x": 123456789012345678901234567890}',  # orjson reads it as a float
    '{"x": 18446744073709551616}',
    '{"x": -9223372036854775809}',
    '{"x": 9223372036854775807, "y": -9223372036854775808, "z": 18446744073709551615}',
    '{"x": 999999999999999999}',  # 18 digits: orjson's, exactly
    "12345678901234567890",
    "-12345678901234567890",
    "[\n12345678901234567890,\t-12345678901234567890,\r 1]",
    '{"x":\t12345678901234567890}',
    '{"x": 1.12345678901234567890123, "y": 12345678901234567890.5, "z": 1e-12345678901234567890}',
    '{"card": "4111111111111111111"}',  # 19 digits in a string: the reference too
    '{"x": "\\ud800", "y": "\\udc00\\ud800"}',
    '{"x": "\\uD834\\uDD1E"}',
    '{"x": "\\u0000"}',
    '{"a": 1, "b": 2, "a": 3}',
    "\ufeff{}",
    '{"x": 1,}',
    '{"x": "\x01"}',
    "[01]",
    '{"x": -0, "y": -0.0, "z": 0e0}',
    "[" * 99 + "]" * 99,
    "[" * 101 + "]" * 101,
    "[" * 1100 + "]" * 1100,  # orjson stops at 1024 levels: the reference says it
    '{"events": ' + "[" * 150 + "]" * 150 + "}",  # spared: not walked
    '{"x": ' + "[" * 150 + "]" * 150 + "}",
    '{"x": 1} trailing',
    "",
    "   ",
    '"\\x"',
]


@pytest.mark.parametrize("text", HOSTILE_JSON, ids=lambda t: f"{t[:20]!r}({len(t)})")
def test_json_documents_read_alike_with_and_without_orjson(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """parse_json decodes with orjson where that gives json.loads's answer exactly: every
    document and every refusal (its class, message and line) stays the reference's."""
    _alike(text, monkeypatch)


def test_digit_runs_in_strings_keep_the_orjson_path() -> None:
    """A hex id with 19 digits in a row (one batch in two holds one) is no integer token."""
    from stockade import config

    text = json.dumps({"id": "0193a1b2c31234567890123456789012", "at": "2026-12-05T18:08:53Z"})
    assert config._decoded_exactly(text) == json.loads(text)
    assert config._decoded_exactly('{"n": 12345678901234567890}') is config._NOT_DECODED


def _json_values() -> object:
    from hypothesis import strategies as st

    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text()
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
        max_leaves=30,
    )


def test_generated_json_reads_alike_with_and_without_orjson(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Generated documents (integers up to 70 bits, any float, any text), each written compact or
    not, ASCII or not, and cut or changed at one place (errors and their lines). Drawing a
    document costs ~20 times reading it: each one is checked in all four writings, and three
    of its writings changed."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    def written(value: object, ascii_only: bool, compact: bool) -> str:
        return json.dumps(
            value, ensure_ascii=ascii_only, separators=(",", ":") if compact else None
        )

    changes = st.tuples(
        st.booleans(),
        st.booleans(),
        st.integers(0, 10_000),
        st.sampled_from(["", "x", "]", "}", ",", '"', "-", "e9"]),
    )

    @settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_json_values(), st.lists(changes, min_size=3, max_size=3))
    def check(value: object, changed: list[tuple[bool, bool, int, str]]) -> None:
        for ascii_only in (True, False):
            for compact in (True, False):
                _alike(written(value, ascii_only, compact), monkeypatch)
        for ascii_only, compact, at, change in changed:
            text = written(value, ascii_only, compact)
            cut = at % (len(text) + 1)
            _alike(text[:cut] + change + text[cut + 1 :], monkeypatch)

    check()


def test_generated_numbers_read_alike_with_and_without_orjson(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Number tokens of up to 25 digits, with a fraction and an exponent or not: orjson's floats
    are correctly rounded, as Python's are. Ten tokens a draw, each in a document of its own (a
    19-digit integer sends its whole document to the reference, so it must not hide the others)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    digits = st.text("0123456789", min_size=1, max_size=25)

    def number(negative: bool, whole: str, fraction: str | None, exponent: int | None) -> str:
        token = ("-" if negative else "") + (whole.lstrip("0") or "0")
        if fraction is not None:
            token += "." + fraction
        if exponent is not None:
            token += f"e{exponent}"
        return token

    tokens = st.builds(number, st.booleans(), digits, st.none() | digits,
                       st.none() | st.integers(-400, 400))  # fmt: skip

    @settings(max_examples=300, deadline=None)
    @given(st.lists(tokens, min_size=10, max_size=10))
    def check(drawn: list[str]) -> None:
        for token in drawn:
            _alike(f'{{"n": {token}, "l": [{token}]}}', monkeypatch)

    check()


# -- node files read by the CIS benchmarks: nested past the decoders' recursion limit -------------


def _bench_node(tmp_path: Path) -> tuple[Path, Path]:
    """A node root whose dockerd container config and kubelet TOML config are nested 100 000 deep,
    and the process list that makes the benchmarks read them."""
    root = tmp_path / "root"
    folder = root / "var/lib/docker/containers/4f1c"
    folder.mkdir(parents=True)
    (folder / "config.v2.json").write_text(deep_json())
    (root / "etc").mkdir()
    (root / "etc/kubelet.toml").write_text("x = " + "[" * DEPTH + "]" * DEPTH + "\n")
    processes = [
        {"pid": 1, "cmdline": ["dockerd"]},
        {"pid": 2, "cmdline": ["kubelet", "--config", "/etc/kubelet.toml"]},
    ]
    procs = tmp_path / "ps.json"
    procs.write_text(json.dumps({"format": "stockade-processes/1", "processes": processes}))
    return root, procs


@pytest.mark.parametrize(
    ("benchmark", "check", "reason"),
    [
        (
            "docker",
            "docker.runtime.privileged",
            "config.v2.json: malformed JSON (nested too deeply)",
        ),
        (
            "k8s",
            "k8s.kubelet.anonymous_auth",
            "kubelet.toml: malformed config file (nested too deeply)",
        ),
    ],
)
def test_deeply_nested_node_files_are_results_not_a_crash(
    tmp_path: Path, benchmark: str, check: str, reason: str
) -> None:
    # RecursionError from json and tomllib ended the whole benchmark (traceback, exit 1)
    root, procs = _bench_node(tmp_path)
    args = ["bench", benchmark, "--root", str(root), "--processes", str(procs), "--no-store"]
    out = run(*args, "-f", "json")
    assert out.returncode in (0, 1) and "Traceback" not in out.stderr, out.stderr[-2000:]
    results = {r["id"]: r for r in json.loads(out.stdout)["results"]}
    assert results[check]["status"] == "ERROR"
    assert results[check]["details"]["reason"].endswith(reason), results[check]


def test_a_deeply_nested_process_list_is_one_error_line(tmp_path: Path) -> None:
    procs = tmp_path / "ps.json"
    procs.write_text("[" * DEPTH + "]" * DEPTH)
    out = run("bench", "k8s", "--root", str(tmp_path), "--processes", str(procs), "--no-store")
    assert out.returncode == 3
    assert one_error_line(out, "process list").endswith("is not valid JSON: nested too deeply")


# -- a key written twice in one mapping: PyYAML kept the last value without a word ----------------

_TWO_RULES = """apiVersion: stockade.dev/v1
kind: FirewallPolicy
metadata: {name: shop}
spec:
  groups:
    - {name: cde, selector: {namespace: shop}, mode: protect}
    - {name: marketing, selector: {namespace: marketing}, mode: protect}
  rules:
    - {name: no-marketing-in-cde, from: [marketing], to: [cde], action: deny}
  rules:
    - {name: cde-api, from: [cde], to: [cde], ports: [tcp/8080]}
"""


def test_a_policy_key_written_twice_is_refused_with_both_lines(tmp_path: Path) -> None:
    # the second ``rules:`` silently dropped the deny rule of the first
    policy = tmp_path / "policy.yaml"
    policy.write_text(_TWO_RULES)
    out = run("policy", "apply", str(policy), "--db", db(tmp_path))
    assert out.returncode == 2
    line = one_error_line(out, f"{policy}:10: ")
    assert line.endswith("invalid YAML: key 'rules' repeated (first at line 8)"), line


def test_a_manifest_key_written_twice_is_an_error_result(tmp_path: Path) -> None:
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
        "    - name: c\n      image: nginx:1\n"
        "      securityContext: {privileged: true, privileged: false}\n"
    )
    out = run("bench", "workloads", str(manifest), "--no-store", "-f", "json")
    assert out.returncode == 3 and "Traceback" not in out.stderr, out.stderr[-2000:]
    errors = [r for r in json.loads(out.stdout)["findings"] if r["status"] == "ERROR"]
    assert errors and "key 'privileged' repeated (first at line 8)" in json.dumps(errors), errors


@pytest.mark.parametrize(
    "text",
    [
        "base: &b {x: 1}\nc:\n  <<: *b\n  x: 2\n",  # a merge key's values may be overridden
        "- {a: 1}\n- {a: 1}\n",  # the same key in two mappings
    ],
)
def test_keys_that_are_not_repeated_still_read(text: str) -> None:
    from stockade.config import parse_yaml

    for kubernetes in (False, True):
        assert parse_yaml(text, name="f", kubernetes=kubernetes)[0] is not None


# -- the sensor's --identities file goes through the same bounded readers -------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        # yaml.safe_load shared the aliases; turning the label into text then never ended
        (billion_laughs() + "workloads:\n  - {name: w, labels: {a: *l9}}\n", "aliases expand"),
        ("workloads: " + "[" * DEPTH + "]" * DEPTH + "\n", "nested deeper than 100 levels"),
        ('{"workloads": ' + "[" * DEPTH + "]" * DEPTH + "}", "nested deeper than 100 levels"),
    ],
    ids=["laughs", "deep-yaml", "deep-json"],
)
def test_hostile_identities_files_are_one_error_line(
    tmp_path: Path, text: str, problem: str
) -> None:
    identities = tmp_path / "pods.yaml"
    identities.write_text(text)
    capture = tmp_path / "empty.pcap"
    capture.write_bytes(bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000"))
    started = time.monotonic()
    out = run("sensor", "--pcap", str(capture), "--no-store", "--identities", str(identities))
    assert time.monotonic() - started < 30
    assert out.returncode == 3
    assert problem in one_error_line(out, f"{identities}:")
