"""The lab's DNS responder: answers its names, refuses others, ignores garbage."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from stockade.lab.dns import answer

RECORDS = {"orders.shop.svc.cluster.local": ["10.77.0.11", "fd77::b"]}


def _query(name: str, qtype: int, ident: int = 7) -> bytes:
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", qtype, 1)


def test_a_and_aaaa_answers() -> None:
    a = answer(_query("Orders.shop.svc.cluster.local", 1), RECORDS)
    assert (
        a is not None
        and a[:2] == b"\0\x07"
        and a[3] & 0x0F == 0
        and a[-4:] == bytes([10, 77, 0, 11])
    )
    aaaa = answer(_query("orders.shop.svc.cluster.local", 28), RECORDS)
    assert aaaa is not None and struct.unpack_from("!H", aaaa, 6)[0] == 1 and len(aaaa[-16:]) == 16


def test_unknown_name_is_nxdomain() -> None:
    r = answer(_query("db.data.svc.cluster.local", 1), RECORDS)
    assert r is not None and r[3] & 0x0F == 3 and struct.unpack_from("!H", r, 6)[0] == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_never_raises(data: bytes) -> None:
    answer(data, RECORDS)
