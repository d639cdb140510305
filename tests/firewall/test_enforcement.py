"""Real traffic through lab namespaces with the enforcer in the node namespace."""

from __future__ import annotations

import gc
import signal
import subprocess
import sys
import threading
import time

import pytest

from stockade.store import open_store
from stockade.store.records import list_events
from tests.firewall.conftest import EXAMPLES

pytestmark = [pytest.mark.root, pytest.mark.slow]

ORDERS = "http://10.77.0.11:8080/"
ORDERS_TLS = "https://10.77.0.11:8443/"
ORDERS_V6 = "http://[fd77::b]:8080/"
WORLD = "http://198.51.100.10:80/"
CARD = '{"customer": "alice", "card": "4111 1111 1111 1111"}'


def events(lab, kind: str, until=bool) -> list:
    """The stored events of ``kind`` once ``until(events)`` holds (5 s at most): the enforcer's
    event writer stores them a moment after the verdict."""
    deadline = time.monotonic() + 5
    while True:
        found = [e for e in list_events(open_store(lab.db), kind=kind)]
        if until(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def rules_present(lab) -> bool:
    nft = subprocess.run(
        ["ip", "netns", "exec", lab.node, "nft", "list", "table", "inet", "stockade"],
        capture_output=True,
        timeout=10,
    )
    ipt = subprocess.run(
        ["ip", "netns", "exec", lab.node, "iptables", "-S", "STOCKADE"],
        capture_output=True,
        timeout=10,
    )
    return nft.returncode == 0 or ipt.returncode == 0


# The enforcer's NFQUEUE loops (firewall/enforce/fastpath.py): the compiled one by default; the
# key cases run through the pure-Python reference loop too.
LOOPS = ["compiled", "python"]


@pytest.fixture
def loop(request, monkeypatch) -> str:
    kind = getattr(request, "param", "compiled")
    monkeypatch.setenv("STOCKADE_ENFORCER_FASTPATH", "1" if kind == "compiled" else "0")
    if kind == "compiled":
        from stockade.firewall.enforce import fastpath

        assert fastpath.compiled() is not None, "not built: python3 setup.py build_ext --inplace"
    return kind


@pytest.fixture
def protect(lab, enforcer, loop):
    lab.apply(EXAMPLES / "policy.yaml")
    return enforcer()


@pytest.mark.parametrize("loop", LOOPS, indirect=True)
def test_allowed_passes_denied_fails_fast(lab, protect, loop) -> None:
    assert lab.curl("payments", ORDERS)[:2] == (0, "200")
    assert lab.curl("payments", ORDERS_V6)[:2] == (0, "200")
    assert lab.curl("crm", "http://10.77.0.12:5432/", timeout=2)[0] in (
        7,
        28,
    )  # crm -> data: implicit deny
    rc, code, took = lab.curl("crm", ORDERS)
    assert rc == 7 and code == "000" and took < 1.5  # connection refused by a reset, not a timeout
    rc, _, took = lab.curl("world", ORDERS)
    assert rc == 7 and took < 1.5

    def by_rule(found: list) -> bool:
        return any(
            e.data["rule"] == "no-marketing-in-cde" and e.resource.name == "crm" for e in found
        )

    def implicit(found: list) -> bool:
        return any(e.data["rule"] is None and e.data["src_ip"] == "198.51.100.10" for e in found)

    blocked = events(
        lab, "firewall.blocked", until=lambda found: by_rule(found) and implicit(found)
    )
    assert by_rule(blocked)
    assert implicit(blocked)


@pytest.mark.parametrize("loop", LOOPS, indirect=True)
def test_card_in_clear_into_the_cde_is_blocked_but_not_over_tls(lab, protect, loop) -> None:
    # the lab (and its store) serves both loops' runs: only this run's events count
    before = {e.id for e in list_events(open_store(lab.db), kind="dlp.blocked")}
    rc, code, took = lab.curl("payments", ORDERS + "pay", "-d", CARD)
    assert (rc, code) == (0, "403") and took < 2.5  # answered by the enforcer, in the server's name
    assert answered(lab) == 1  # the request itself was dropped: it never reached orders
    assert lab.curl("payments", ORDERS + "pay", "-d", '{"card": "4111 1111 1111 1112"}')[:2] == (
        0,
        "200",
    )
    assert lab.curl("payments", ORDERS_TLS + "pay", "-d", CARD)[:2] == (0, "200")
    deadline = time.monotonic() + 5  # events are stored in batches
    while not (hits := [e for e in events(lab, "dlp.blocked") if e.id not in before]):
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(hits) == 1 and hits[0].data["evidence"] == "4111 **** **** 1111"
    stored = repr([e.to_dict() for e in list_events(open_store(lab.db))])
    assert "4111 1111 1111 1111" not in stored and "4111111111111111" not in stored


def test_monitor_mode_records_but_passes(lab, protect) -> None:
    assert lab.curl("crm", "http://198.51.100.10:80/anything")[:2] == (
        0,
        "200",
    )  # allowed by web-out
    # crm -> world:8080 is not allowed by any rule; both groups are in monitor mode
    out = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            lab.ns("crm"),
            "python3",
            "-c",
            "import socket; s=socket.create_connection(('198.51.100.10', 80), 3); s.close()",
        ],
        capture_output=True,
        timeout=10,
    )
    assert out.returncode == 0
    v = [e for e in events(lab, "firewall.violation")]
    assert v == [] or all(e.resource.name == "crm" for e in v)


def test_quarantine_isolates_and_lifting_restores(lab, protect) -> None:
    assert lab.curl("payments", ORDERS)[:2] == (0, "200")
    q = lab.cli("quarantine", "shop/orders", "--reason", "test")
    assert q.returncode == 0, q.stderr
    rc, _, _ = lab.curl("payments", ORDERS, timeout=2)
    assert rc == 28  # dropped: times out
    assert lab.cli("quarantine", "shop/orders", "--lift").returncode == 0
    assert lab.curl("payments", ORDERS)[:2] == (0, "200")
    kinds = [e.kind for e in list_events(open_store(lab.db), kind="firewall.quarantine*")]
    assert kinds == ["firewall.quarantine_lifted", "firewall.quarantined"]


def test_quarantine_works_without_the_enforcer(lab) -> None:
    try:
        assert lab.cli("quarantine", "shop/orders").returncode == 0
        assert lab.curl("payments", ORDERS, timeout=2)[0] == 28
        assert lab.curl("payments", ORDERS_V6, timeout=2)[0] == 28  # every address of the pod
    finally:
        assert lab.cli("quarantine", "shop/orders", "--lift").returncode == 0
    assert lab.curl("payments", ORDERS)[:2] == (0, "200")


def test_rules_are_gone_after_the_enforcer_stops(lab, protect) -> None:
    assert rules_present(lab)
    log = protect.stop(signal.SIGTERM)
    assert "rules removed" in log
    assert not rules_present(lab)
    assert lab.curl("crm", ORDERS)[:2] == (0, "200")  # nothing enforced any more


@pytest.mark.parametrize(("fail", "passes"), [("open", True), ("closed", False)])
def test_fail_open_or_closed_when_the_enforcer_dies(lab, enforcer, fail, passes) -> None:
    lab.apply(EXAMPLES / "policy.yaml")
    run = enforcer("--fail", fail)
    run.stop(signal.SIGKILL)  # no clean-up: the kernel rules stay, nothing answers the queue
    assert rules_present(lab)
    _, code, _ = lab.curl("payments", ORDERS, timeout=2)
    assert (code == "200") is passes
    assert lab.cli("enforcer", "--remove").returncode == 0
    assert not rules_present(lab)


def test_discover_then_protect(lab, enforcer, tmp_path) -> None:
    text = (
        (EXAMPLES / "policy.yaml")
        .read_text()
        .replace("mode: protect", "mode: discover")
        .replace("mode: monitor", "mode: discover")
    )
    learn_policy = tmp_path / "discover.yaml"
    learn_policy.write_text(text.split("  rules:")[0])  # groups only: everything is learned
    assert lab.cli("policy", "apply", str(learn_policy)).returncode == 0
    run = enforcer()
    assert lab.curl("payments", ORDERS)[:2] == (0, "200")
    assert lab.curl("crm", WORLD)[:2] == (0, "200")
    assert lab.curl("payments", ORDERS_TLS)[:2] == (0, "200")
    run.stop()
    out = lab.cli(
        "policy", "export", "--learned", "--mode", "protect", "-o", str(tmp_path / "learned.yaml")
    )
    assert out.returncode == 0, out.stderr
    learned = (tmp_path / "learned.yaml").read_text()
    assert "proto.http" in learned and "proto.tls" in learned
    assert lab.cli("policy", "apply", str(tmp_path / "learned.yaml")).returncode == 0
    enforcer()
    assert lab.curl("payments", ORDERS)[:2] == (0, "200")
    assert lab.curl("crm", WORLD)[:2] == (0, "200")
    assert lab.curl("payments", ORDERS_TLS)[:2] == (0, "200")
    assert lab.curl("crm", ORDERS)[0] == 7  # never seen: blocked now
    assert lab.curl("payments", "http://198.51.100.10:80/")[0] == 7


def test_malformed_policy_leaves_the_running_one(lab, protect, tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (EXAMPLES / "policy.yaml")
        .read_text()
        .replace("ports: [tcp/5432, tcp/6379]", "ports: [tcp/5432, tcp/99999]")
    )
    out = lab.cli("policy", "apply", str(bad))
    assert out.returncode == 2 and f"{bad}:" in out.stderr and "99999" in out.stderr
    assert lab.curl("crm", ORDERS)[0] == 7  # still enforced
    diff = lab.cli("policy", "diff", str(EXAMPLES / "policy.yaml"))
    assert diff.returncode == 0 and "no changes" in diff.stdout


def test_a_changed_policy_is_reapplied_live(lab, protect, tmp_path) -> None:
    assert lab.curl("crm", ORDERS)[0] == 7
    opened = tmp_path / "open.yaml"
    opened.write_text(
        (EXAMPLES / "policy.yaml").read_text().replace("action: deny", "action: allow")
    )
    assert lab.cli("policy", "diff", str(opened)).returncode == 1
    assert lab.cli("policy", "apply", str(opened)).returncode == 0
    deadline = time.monotonic() + 10
    while lab.curl("crm", ORDERS)[1] != "200":
        assert time.monotonic() < deadline, "new policy not applied within 10 s"
        time.sleep(0.5)


def test_explain_names_the_rule(lab) -> None:
    lab.apply(EXAMPLES / "policy.yaml")
    out = lab.cli("policy", "explain", "marketing/crm", "shop/orders", "8080")
    assert out.returncode == 0 and "DENY" in out.stdout and "no-marketing-in-cde" in out.stdout
    out = lab.cli(
        "policy",
        "explain",
        "payments",
        "orders",
        "8080",
        "--proto",
        "proto.http",
        "--format",
        "json",
    )
    assert '"rule": "cde-api"' in out.stdout and '"action": "allow"' in out.stdout
    # the spellings a person types name the same protocols (not ones no rule names: a deny)
    spelled = lab.cli(
        "policy", "explain", "payments", "orders", "8080", "--l4", "TCP", "--proto", "HTTP",
        "--format", "json",
    )  # fmt: skip
    assert spelled.returncode == 0 and spelled.stdout == out.stdout
    for bad in (("--l4", "sctp"), ("--proto", "gopher")):
        wrong = lab.cli("policy", "explain", "payments", "orders", "8080", *bad)
        assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1, wrong.stderr
    assert lab.cli("policy", "explain", "nobody", "orders", "80").returncode == 2


def answered(lab, *, expected: int = 1, within: float = 5.0) -> int:
    """Requests the post chain dropped because the enforcer answered them with a 403, read once
    it reaches ``expected`` (or after ``within`` seconds).

    The enforcer sends the 403 and only then gives the request's verdict to the kernel (so a 403
    that cannot be sent still leaves the plain reset): the client can have its answer, and this
    test its turn on the CPU, a moment before the request reaches the counting rule. Reading at
    once saw 0 on a loaded machine."""
    deadline = time.monotonic() + within
    while True:
        out = subprocess.run(
            ["ip", "netns", "exec", lab.node, "nft", "list", "chain", "inet", "stockade", "post"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        line = next(ln for ln in out.splitlines() if 'comment "answered"' in ln)
        count = int(line.split("packets ")[1].split()[0])
        if count >= expected or time.monotonic() > deadline:
            return count
        time.sleep(0.05)


def queued_packets(lab) -> int:
    out = subprocess.run(
        ["ip", "netns", "exec", lab.node, "iptables", "-w", "-L", "STOCKADE", "-v", "-x", "-n"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    return sum(int(line.split()[0]) for line in out.splitlines() if "NFQUEUE" in line)


@pytest.mark.parametrize("loop", LOOPS, indirect=True)
def test_only_segments_with_data_go_to_user_space(lab, protect, loop) -> None:
    before, copied = queued_packets(lab), _copied(lab)
    assert lab.curl("payments", ORDERS)[:2] == (0, "200")
    sent, copied = queued_packets(lab) - before, _copied(lab) - copied
    # The request and the response (headers and body may be two segments); the handshake, the
    # bare ACKs and the FINs of a connection allowed pending inspection stay in the kernel. The
    # request goes to user space (the protocol decides the verdict); the response, clean and
    # after a verdict final but for DLP, passes in the kernel with a copy (clean.py).
    assert sent >= 1 and 2 <= sent + copied <= 3, (sent, copied)
    # A connection the enforcer records (here denied) sends its SYN: refused at once.
    before = queued_packets(lab)
    rc, _, took = lab.curl("crm", ORDERS)
    assert rc == 7 and took < 1.5 and queued_packets(lab) - before >= 1


def test_enforcement_survives_a_failing_store_and_a_refused_policy(lab, monkeypatch, caplog):
    """The policy store away, then rules the kernel refuses: the policy in force stays enforced."""
    from stockade.firewall.enforce import nft
    from stockade.firewall.enforce.enforcer import Enforcer
    from stockade.firewall.policy.endpoints import Directory
    from stockade.firewall.policy.files import load_files
    from stockade.lab.inventory import load
    from stockade.model.errors import EnforcementError

    policy = load_files([EXAMPLES / "policy.yaml"])
    inv = load(lab.state)
    real_load = nft.load

    def refuse(node: str, text: str) -> None:  # the one fake: a kernel that refuses rules
        raise EnforcementError("nft rejected the rules: Error: refused for the test")

    steps = iter(["store away", "refused"])

    def poll():
        step = next(steps, None)
        if step == "store away":
            raise OSError("database is away")
        if step == "refused":
            monkeypatch.setattr(nft, "load", refuse)
            return policy
        monkeypatch.setattr(nft, "load", real_load)
        return None

    events: list = []
    enf = Enforcer(
        inv.node_netns,
        policy,
        Directory.from_identities(inv.directory()),
        nft.Settings(queue=9),
        emit=events.append,
        learn=lambda rows: None,
    )
    seen: dict = {}

    def traffic() -> None:
        time.sleep(1.5)  # both failures have happened (one poll every 0.3 s)
        seen["crm"] = lab.curl("crm", ORDERS)
        seen["payments"] = lab.curl("payments", ORDERS)
        enf.stop()

    thread = threading.Thread(target=traffic)
    thread.start()
    enf.run(duration=30, poll=poll, poll_every=0.3)
    thread.join(timeout=30)
    assert seen["crm"][0] == 7  # still reset by the rules in force
    assert seen["payments"][:2] == (0, "200")
    assert [e.kind for e in events].count("firewall.policy_rejected") == 1
    assert "database is away" in caplog.text and "stays in force" in caplog.text
    assert not rules_present(lab)  # and a clean stop still removes everything


def _in_process_enforcer(lab, queue: int, events: list, *, depth: int = 65536):
    from stockade.firewall.enforce import nft
    from stockade.firewall.enforce.enforcer import Enforcer
    from stockade.firewall.policy.endpoints import Directory
    from stockade.firewall.policy.files import load_files
    from stockade.lab.inventory import load

    inv = load(lab.state)
    return Enforcer(
        inv.node_netns,
        load_files([EXAMPLES / "policy.yaml"]),
        Directory.from_identities(inv.directory()),
        nft.Settings(queue=queue, depth=depth),
        emit=events.append,
        learn=lambda rows: None,
    )


def test_the_enforcer_keeps_its_start_up_objects_out_of_full_collections(lab) -> None:
    """Modules, the DLP engine and the policy are frozen once the rules are in: a full garbage
    collection (tens of milliseconds over them on a loaded node) never walks them on a packet's
    path; a policy swap drops the old verdict handler's flows, which freezing would otherwise keep."""
    from stockade.firewall.policy.files import load_files

    enf = _in_process_enforcer(lab, 11, [])
    seen: dict = {}

    def traffic() -> None:
        try:
            seen["frozen"] = gc.get_freeze_count()
            seen["code"] = lab.curl("payments", ORDERS)[:2]
            old = enf.inspector
            seen["flows_before"] = len(old._flows)
            enf.update(load_files([EXAMPLES / "policy.yaml"]))
            seen["flows_after"] = len(old._flows)
            seen["code_after"] = lab.curl("payments", ORDERS)[:2]
        finally:
            enf.stop()

    thread = threading.Thread(target=traffic)
    enf.run(duration=30, ready=thread.start)  # traffic once the rules are in
    thread.join(timeout=30)
    assert seen["frozen"] > 10_000 and gc.get_freeze_count() == 0  # unfrozen on the way out
    assert (seen["code"], seen["code_after"]) == ((0, "200"), (0, "200"))
    assert seen["flows_before"] >= 1 and seen["flows_after"] == 0


def test_finished_inspected_connections_free_their_flows_without_a_round_trip(lab) -> None:
    """A new connection per request must not pile up flows in the enforcer (memory, and garbage
    collections that walk them): the FINs stay in the kernel, their copies end the flows."""
    from stockade.firewall.enforce.inspector import END_GRACE

    enf = _in_process_enforcer(lab, 12, [])
    seen: dict = {}

    def traffic() -> None:
        try:
            before = queued_packets(lab)
            seen["codes"] = [lab.curl("payments", ORDERS)[:2] for _ in range(4)]
            seen["queued"] = queued_packets(lab) - before
            seen["flows"] = len(enf.inspector._flows)
            # or answered in the compiled loop from their first segments (fastpath_own.c)
            seen["owned"] = enf._queue.counts().get("owned", 0) if enf._queue else 0
            deadline = time.monotonic() + END_GRACE + 5  # expired at the next poll
            while enf.inspector._flows and time.monotonic() < deadline:
                time.sleep(0.1)
            seen["left"] = len(enf.inspector._flows)
        finally:
            enf.stop()

    thread = threading.Thread(target=traffic)
    enf.run(duration=30, ready=thread.start, poll_every=0.5)
    thread.join(timeout=30)
    assert seen["codes"] == [(0, "200")] * 4
    assert seen["queued"] <= 4 * 3  # data segments only: no FIN waited for a verdict
    assert (seen["flows"] >= 1 or seen["owned"] >= 1) and seen["left"] == 0


KEEPALIVE_CLIENT = """
import socket, sys
s = socket.create_connection(("10.77.0.11", 8080), 3)
def ask():
    s.sendall(b"GET / HTTP/1.1\\r\\nHost: orders\\r\\n\\r\\n")
    data = b""
    while b"\\r\\n\\r\\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    head, _, body = data.partition(b"\\r\\n\\r\\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\\r\\n")[0])
    while len(body) < length:
        body += s.recv(4096)
    return head.split()[1].decode()
print(ask(), ask(), flush=True)  # past the depth: the connection is decided in the kernel
sys.stdin.readline()
s.settimeout(2)
try:
    print(ask(), flush=True)
except (TimeoutError, OSError) as exc:
    print(type(exc).__name__, flush=True)
"""


def test_quarantine_cuts_a_connection_already_decided_in_the_kernel(lab) -> None:
    """A connection the kernel carries on its own (ct mark ALLOW, past the depth) is cut by a
    later quarantine: the quarantine table drops before the decided connections are accepted."""
    enf = _in_process_enforcer(lab, 13, [], depth=64)
    seen: dict = {}

    def traffic() -> None:
        client = subprocess.Popen(
            ["ip", "netns", "exec", lab.ns("payments"), "python3", "-c", KEEPALIVE_CLIENT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert client.stdout is not None and client.stdin is not None
            seen["before"] = client.stdout.readline().split()
            q = lab.cli("quarantine", "shop/orders", "--reason", "test")
            seen["quarantined"] = q.returncode
            client.stdin.write("go\n")
            client.stdin.flush()
            seen["after"] = client.stdout.readline().strip()
        finally:
            client.kill()
            client.communicate(timeout=10)  # reaps it and closes the pipes
            lab.cli("quarantine", "shop/orders", "--lift")
            enf.stop()

    thread = threading.Thread(target=traffic)
    enf.run(duration=60, ready=thread.start)
    thread.join(timeout=60)
    assert seen["before"] == ["200", "200"] and seen["quarantined"] == 0
    assert seen["after"] == "TimeoutError"


@pytest.mark.parametrize("loop", LOOPS, indirect=True)
def test_a_policy_change_judges_connections_decided_under_the_old_policy_again(
    lab, tmp_path, loop
) -> None:
    """A connection the kernel carries on its own (ct mark ALLOW) does not keep its decision after a
    policy change that no longer allows it: the decision's generation is old, the connection is
    classified again, and the implicit deny cuts it."""
    from stockade.firewall.policy.files import load_files

    narrowed = tmp_path / "policy.yaml"
    narrowed.write_text(
        (EXAMPLES / "policy.yaml")
        .read_text()
        .replace("ports: [tcp/8080, tcp/8443, tcp/8444]", "ports: [tcp/8443]")
    )
    enf = _in_process_enforcer(lab, 14, [], depth=64)
    seen: dict = {}

    def traffic() -> None:
        client = subprocess.Popen(
            ["ip", "netns", "exec", lab.ns("payments"), "python3", "-c", KEEPALIVE_CLIENT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert client.stdout is not None and client.stdin is not None
            seen["before"] = client.stdout.readline().split()
            enf.update(load_files([narrowed]))
            seen["new"] = lab.curl("payments", ORDERS)[:2]
            client.stdin.write("go\n")
            client.stdin.flush()
            seen["after"] = client.stdout.readline().strip()
        finally:
            client.kill()
            client.communicate(timeout=10)
            enf.stop()

    thread = threading.Thread(target=traffic)
    enf.run(duration=60, ready=thread.start)
    thread.join(timeout=60)
    assert seen["before"] == ["200", "200"]
    assert seen["new"][0] == 7  # a new connection is refused by the new rules
    assert seen["after"] in ("ConnectionResetError", "ConnectionError"), seen["after"]


# An ICMP echo reply nobody asked for: conntrack finds it invalid, so it never reaches the rules
# that judge new connections. Sent from one pod's raw socket, looked for by another's.
_ECHO_REPLY = r"""
import socket, struct, sys
def csum(b):
    b += b"\0" * (len(b) % 2)
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF
body = sys.argv[2].encode()
head = struct.pack("!BBHHH", 0, 0, 0, 0x5354, 1)
packet = struct.pack("!BBHHH", 0, 0, csum(head + body), 0x5354, 1) + body
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
for _ in range(3):
    sock.sendto(packet, (sys.argv[1], 0))
"""
_LISTEN = r"""
import socket, sys, time
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
sock.settimeout(0.2)
print("ready", flush=True)
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    try:
        data = sock.recv(4096)
    except TimeoutError:
        continue
    if sys.argv[1].encode() in data:
        print("arrived", flush=True)
        break
"""


def _echo_reply_arrives(lab, marker: str) -> bool:
    listener = subprocess.Popen(
        ["ip", "netns", "exec", lab.ns("orders"), sys.executable, "-c", _LISTEN, marker, "3"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
        subprocess.run(
            ["ip", "netns", "exec", lab.ns("crm"), sys.executable, "-c", _ECHO_REPLY,
             "10.77.0.11", f"{marker} card 4111 1111 1111 1111"],
            check=True, timeout=10,
        )  # fmt: skip
        out, _ = listener.communicate(timeout=10)
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()
    return "arrived" in out


def test_a_packet_conntrack_finds_invalid_is_dropped_not_let_through(lab, enforcer) -> None:
    """crm may not reach orders (the cde, in Protect); an ICMP echo reply without a request
    would pass every rule unjudged. Without the enforcer it arrives (the probe works); with it,
    it is dropped."""
    lab.apply(EXAMPLES / "policy.yaml")
    assert _echo_reply_arrives(lab, "before-rules")
    enforcer()
    assert not _echo_reply_arrives(lab, "under-rules")


# A keep-alive client in the payments pod: a clean request, then a POST whose body is written in
# pieces (TCP_NODELAY, a pause between writes: one segment each); prints the status codes.
_PIECES_CLIENT = r"""
import json, socket, sys, time
pieces = [p.encode("latin-1") for p in json.loads(sys.argv[1])]
s = socket.create_connection(("10.77.0.11", 8080), timeout=5)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
buf = b""
def status():
    global buf
    while b"\r\n\r\n" not in buf:
        more = s.recv(65536)
        if not more:
            return 0
        buf += more
    head, _, buf = buf.partition(b"\r\n\r\n")
    length = next((int(l.split(b":")[1]) for l in head.split(b"\r\n")
                   if l.lower().startswith(b"content-length")), 0)
    while len(buf) < length:
        more = s.recv(65536)
        if not more:
            break
        buf += more
    buf = buf[length:]
    return int(head.split()[1])
def post(parts):
    body = b"".join(parts)
    s.sendall(b"POST /pay HTTP/1.1\r\nHost: orders\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    for part in parts:
        time.sleep(0.002)  # one segment each (TCP_NODELAY), well within any batching of copies
        s.sendall(part)
    try:
        return status()
    except OSError:
        return -1
codes = [post([b'{"order": 1, "qty": 2}']), post([b'{"order": 2, "qty": 3}'])]
try:
    codes.append(post(pieces))
except OSError:
    codes.append(-1)
print(json.dumps(codes))
"""


def _wait_for_the_classifier(lab) -> None:
    """Until the enforcer attached the classifier (beside its loop: it starts enforcing first)."""
    from stockade.firewall.enforce import tcfilter

    deadline = time.monotonic() + 60
    while str(tcfilter.PREF) not in subprocess.run(
        ["tc", "-n", lab.node, "filter", "show", "dev", "vh-payments", "ingress"],
        capture_output=True, text=True, timeout=10,
    ).stdout:  # fmt: skip
        assert time.monotonic() < deadline, "the classifier was not attached"
        time.sleep(0.2)


def _copied(lab) -> int:
    """Clean segments the kernel let pass with a copy (the counters of nft.py's copy rules)."""
    out = subprocess.run(
        ["ip", "netns", "exec", lab.node, "nft", "list", "chain", "inet", "stockade", "inspecting"],
        capture_output=True, text=True, timeout=10, check=True,
    ).stdout  # fmt: skip
    return sum(
        int(line.split("packets ")[1].split()[0])
        for line in out.splitlines()
        if "log group" in line and "snaplen" in line
    )


@pytest.mark.parametrize("loop", LOOPS, indirect=True)
def test_clean_segments_pass_with_a_copy_and_a_card_cut_across_them_is_still_blocked(
    lab, protect, loop
) -> None:
    """Once a connection's verdict is final but for DLP, the segments the kernel's first look
    finds clean pass at once (clean.py). A card whose first digits end one of them still cannot
    pass: the run of card characters goes on into the next segment, which waits for its verdict,
    and the enforcer, which read the copy of the first, blocks it with a 403."""
    import json

    _wait_for_the_classifier(lab)
    before = _copied(lab)
    pieces = ['{"card": "4111 111', '1 1111 1111", "cvv": "123"}']
    proc = subprocess.run(
        ["ip", "netns", "exec", lab.ns("payments"), sys.executable, "-c", _PIECES_CLIENT,
         json.dumps(pieces)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [200, 200, 403]
    # the second request and the responses passed as clean segments, each with a copy
    assert _copied(lab) - before >= 3
    hits = events(lab, "dlp.blocked", until=lambda found: any(
        e.data.get("evidence") == "4111 **** **** 1111" and e.data.get("direction") == "request"
        for e in found
    ))  # fmt: skip
    assert any(e.data.get("evidence") == "4111 **** **** 1111" for e in hits)


def _heads_in_the_kernel(lab) -> int:
    """Connections' heads the kernel let pass between ends the enforcer answers alone (the
    counters of nft.py's own_* rules)."""
    out = subprocess.run(
        ["ip", "netns", "exec", lab.node, "nft", "list", "chain", "inet", "stockade", "inspecting"],
        capture_output=True, text=True, timeout=10, check=True,
    ).stdout  # fmt: skip
    return sum(
        int(line.split("packets ")[1].split()[0]) for line in out.splitlines() if "@own_" in line
    )


_NOT_HTTP = r"""
import socket, sys
s = socket.create_connection(("10.77.0.11", 8080), 3)
s.sendall(b"*1\r\n$4\r\nPING\r\n")
s.settimeout(3)
try:
    print(repr(s.recv(100)))
except OSError as exc:
    print(type(exc).__name__)
"""


@pytest.mark.parametrize("loop", LOOPS, indirect=True)
def test_a_head_passes_in_the_kernel_between_ends_the_enforcer_answers_alone(
    lab, protect, loop
) -> None:
    """Once the compiled loop has said it would answer the connections between two ends alone
    from an HTTP/1 request line, the kernel lets their heads pass at once (the classifier marks
    HEAD; nft.OWN_SETS), with a copy for the sensors. A head holding a card is not CLEAN and is
    blocked as before; bytes that are no request line take the trip and are judged as before.
    The pure-Python loop gives no pairs: every head takes the trip."""
    _wait_for_the_classifier(lab)
    time.sleep(0.5)  # the classifier attached, the enforcer gives pairs from now on
    order = ORDERS + "orders"
    json = ("-H", "Content-Type: application/json", "-d", '{"qty": 2}')  # curl's -d default
    # type, a form, is a decoding trigger: its head is not CLEAN (clean.py)
    assert lab.curl("payments", order, *json)[:2] == (0, "200")  # the pair: asked
    time.sleep(1.0)  # given to the kernel within 0.2 s
    before = _heads_in_the_kernel(lab)
    for _ in range(5):
        assert lab.curl("payments", order, *json)[:2] == (0, "200")
    heads = _heads_in_the_kernel(lab) - before
    assert heads == (5 if loop == "compiled" else 0)
    seen = {e.id for e in list_events(open_store(lab.db), kind="dlp.blocked")}
    rc, code, _ = lab.curl("payments", ORDERS + "pay", "-d", CARD)
    assert (rc, code) == (0, "403")
    hits = events(lab, "dlp.blocked", until=lambda found: any(e.id not in seen for e in found))
    assert [e.data["evidence"] for e in hits if e.id not in seen] == ["4111 **** **** 1111"]
    not_http = subprocess.run(
        ["ip", "netns", "exec", lab.ns("payments"), sys.executable, "-c", _NOT_HTTP],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    # refused (HTTP/1 and TLS only on this port): a reset, never the server's answer
    assert "HTTP" not in not_http.stdout and not_http.stdout.strip() in (
        "ConnectionResetError", "b''", "TimeoutError",
    ), not_http.stdout + not_http.stderr  # fmt: skip
    assert _heads_in_the_kernel(lab) - before == heads  # neither was let through as a head
    if loop == "compiled":
        # the same rules loaded again by another hand, without the pairs: the enforcer, which
        # nothing asks again, gives them to the new table (within 2 s)
        import re

        dump = subprocess.run(
            ["ip", "netns", "exec", lab.node, "nft", "list", "table", "inet", "stockade"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout  # fmt: skip
        bare = re.sub(r"(set own_\w+ \{[^}]*?)elements = \{[^}]*\}", r"\1", dump)
        assert "10.77.0.10 . 10.77.0.11 . 8080" in dump and "10.77.0.11 . 8080" not in bare
        subprocess.run(
            ["ip", "netns", "exec", lab.node, "nft", "-f", "-"],
            input="delete table inet stockade\n" + bare, text=True, timeout=10, check=True,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while "10.77.0.11 . 8080" not in subprocess.run(
            ["ip", "netns", "exec", lab.node, "nft", "list", "table", "inet", "stockade"],
            capture_output=True, text=True, timeout=10,
        ).stdout:  # fmt: skip
            assert time.monotonic() < deadline, "the pairs were not given to the new table"
            time.sleep(0.2)
