"""The process connector: datagrams laid out as the kernel sends them, and the live socket."""

from __future__ import annotations

import os
import struct
import subprocess
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stockade.runtime.procevents import EXEC, EXIT, FORK, ProcConnector, ProcEvent, parse
from tests.support import require


def datagram(what: int, body: bytes, *, idx: int = 1) -> bytes:
    event = struct.pack("=IIQ", what, 0, 123) + body
    cn = struct.pack("=IIIIHH", idx, 1, 0, 0, len(event), 0) + event
    return struct.pack("=IHHII", 16 + len(cn), 3, 0, 0, 0) + cn


def test_fork_exec_exit_are_read_with_what_the_kernel_gives() -> None:
    data = (
        datagram(FORK, struct.pack("=iiii", 10, 10, 11, 11))
        + datagram(EXEC, struct.pack("=ii", 11, 11))
        + datagram(EXIT, struct.pack("=iiIIii", 11, 11, 9, 17, 10, 10))
    )
    assert list(parse(data)) == [
        ProcEvent("fork", 11, 11, 10, 10),
        ProcEvent("exec", 11, 11),
        ProcEvent("exit", 11, 11, 10, 10, 9),
    ]


def test_other_connector_messages_and_short_data_are_skipped() -> None:
    assert list(parse(datagram(EXEC, struct.pack("=ii", 1, 1), idx=7))) == []
    assert list(parse(datagram(EXEC, struct.pack("=ii", 1, 1))[:30])) == []
    assert list(parse(struct.pack("=IHHII", 0, 3, 0, 0, 0) + bytes(40))) == []


@given(st.binary(max_size=512))
def test_any_bytes_parse_without_error(data: bytes) -> None:
    for ev in parse(data):
        assert ev.kind in ("fork", "exec", "exit")


@pytest.mark.root
def test_the_live_connector_sees_a_child_exec_and_exit() -> None:
    require(os.geteuid() == 0, "the process connector needs root")
    seen: list[ProcEvent] = []
    with ProcConnector() as conn:
        child = subprocess.Popen(["/bin/sleep", "0.05"])
        child.wait()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(
            e.kind == "exit" and e.pid == child.pid for e in seen
        ):
            seen += conn.read(0.2)
    kinds = [e.kind for e in seen if e.pid == child.pid]
    assert kinds[:1] == ["fork"] and "exec" in kinds and kinds[-1] == "exit"
    fork = next(e for e in seen if e.pid == child.pid and e.kind == "fork")
    assert fork.ptgid == os.getpid()
    assert conn.lost == 0
