"""In-band upgrades judged by what follows (issue 13): the judgement on every prefix of each
conversation in the shared table, and the passive sensor's record of the whole conversation."""

from __future__ import annotations

import pytest

from stockade.network.analysis import Inspectors
from stockade.network.protocols import detect
from stockade.network.protocols.upgrades import WINDOW, judge
from tests.network import frames as F
from tests.network.test_flows import _run
from tests.network.upgrade_cases import CASES, HELLO, Case


def _sides(turns: list[tuple[int, bytes]]) -> tuple[bytes, bytes]:
    client = b"".join(data for d, data in turns if d == 0)
    server = b"".join(data for d, data in turns if d == 1)
    return client, server


@pytest.mark.parametrize("name", sorted(CASES))
def test_judgement_at_the_end(name: str) -> None:
    case = CASES[name]
    got = judge(*_sides(case.turns), final=True)
    assert (got.state if got else None) == case.state
    if case.state == "encrypted":
        assert got is not None and got.kind == case.kind


@pytest.mark.parametrize("name", sorted(n for n in CASES if CASES[n].state is not None))
def test_undecided_until_what_follows_tells_then_never_changes(name: str) -> None:
    """Byte by byte through each turn: undecided until the deciding turn is complete, then the
    final answer; never the other answer on the way (the enforcer acts on the first one)."""
    case = CASES[name]
    for i, (d, data) in enumerate(case.turns):
        before = case.turns[:i]
        for cut in range(len(data) + 1):
            turns = [*before, (d, data[:cut])]
            got = judge(*_sides(turns))
            if got is None:  # nothing that names an upgrade yet: only the opening is cut short
                assert i == 0 and cut < len(data), (i, cut)
                continue
            if i < case.decides:
                assert got.state == "undecided", (i, cut, got)
            elif i > case.decides or cut == len(data):
                assert got.state == case.state, (i, cut, got)
            else:  # within the deciding turn: a hello may complete before the turn ends
                assert got.state in ("undecided", case.state), (i, cut, got)


@pytest.mark.parametrize("name", sorted(CASES))
def test_sensor_records_what_followed(name: str) -> None:
    case = CASES[name]
    packets = F.dialogue("10.0.0.1", "10.0.0.2", 40100, 5432, case.turns)
    (rec,), _, _ = _run(packets, Inspectors.default())
    assert rec.encrypted == case.encrypted, rec
    if case.state == "encrypted":
        assert rec.upgrade == case.kind
        if case.kind != "postgres-gssenc":
            assert rec.tls is not None and rec.tls.client_versions  # TLS facts after the upgrade
    assert detect(*_sides(case.turns)).encrypted == case.encrypted


def test_starttls_asked_but_no_hello_is_not_encrypted() -> None:
    """The old detectors took the request (or the server's yes) for encryption."""
    assert not detect(b"EHLO c\r\nSTARTTLS\r\n", b"220 mx ESMTP\r\n250 mx\r\n220 go\r\n").encrypted
    assert detect(
        b"EHLO c\r\nSTARTTLS\r\n" + HELLO, b"220 mx ESMTP\r\n250 mx\r\n220 go\r\n"
    ).encrypted
    # a hello the server never agreed to is no upgrade
    assert not detect(b"EHLO c\r\nSTARTTLS\r\n" + HELLO, b"220 mx ESMTP\r\n250 mx\r\n").encrypted


def test_harmless_commands_cannot_hold_the_judgement_forever() -> None:
    server = b"220 mx ESMTP\r\n" + b"250 ok\r\n" * 40
    assert judge(b"NOOP\r\n" * 10, server).state == "undecided"
    assert judge(b"NOOP\r\n" * 40, server).state == "clear"  # more commands than any client sends
    assert judge(b"EHLO " + b"x" * WINDOW, b"220 mx ESMTP\r\n").state == "clear"


def test_dlp_scans_the_clear_part_of_a_refused_upgrade() -> None:
    case: Case = CASES["smtp_starttls_refused_then_mail"]
    card = b"DATA\r\ncard 4111 1111 1111 1111\r\n.\r\n"
    packets = F.dialogue("10.0.0.1", "10.0.0.2", 40101, 25, [*case.turns, (0, card)])
    (rec,), _, _ = _run(packets, Inspectors.default())
    assert not rec.encrypted and "dlp.payment_card" in [h.match.sensor for h in rec.hits]


def _prefixes(data: bytes) -> list[bytes]:
    return sorted({data[:n] for n in (0, 1, 2, 3, 4, 5, 6, 9, 17, 40, len(data))})


def test_the_shortcut_for_clients_opening_with_a_letter_answers_as_every_probe() -> None:
    """``judge`` skips the other probes when the client opens with a letter and the server sent
    no greeting: on every conversation of the table, cut anywhere, both answers are the same."""
    from stockade.network.protocols.upgrades import _judge_all

    clients = {b"GET / HTTP/1.1\r\nUpgrade: TLS/1.2\r\n\r\n", b"EHLO x\r\nSTARTTLS\r\n", b"a1 OK"}
    servers = {b"HTTP/1.1 101 Switching\r\n\r\n", b"220 mail ESMTP\r\n", b"* OK ready\r\n",
               b"+OK\r\n", b"J\x00\x00\x00\x0a8.0.36\x00" + bytes(40)}  # fmt: skip
    for case in CASES.values():
        client, server = _sides(case.turns)
        clients.add(client)
        servers.add(server)
    checked = 0
    for client in clients:
        for c in _prefixes(client):
            for server in servers:
                for s in _prefixes(server):
                    for final in (False, True):
                        assert judge(c, s, final=final) == _judge_all(c, s, final), (c, s)
                        checked += 1
    assert checked > 10_000
