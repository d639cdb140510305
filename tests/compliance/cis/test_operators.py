from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stockade.compliance.cis.operators import compare, validate
from stockade.model import ConfigError

CASES = [
    # op, actual, expected, result
    ("eq", "false", "false", True),
    ("eq", "False", "false", True),  # booleans ignore case
    ("eq", "true", "false", False),
    # a bool flag is read by Go's strconv.ParseBool: 1, t, T, TRUE, 0, f, F, FALSE too
    ("eq", "0", "false", True),
    ("eq", "F", "false", True),
    ("eq", "1", "true", True),
    ("eq", "t", "true", True),
    ("noteq", "0", "false", False),  # --use-service-account-credentials=0 is false
    ("noteq", "f", "false", False),
    ("noteq", "1", "false", True),
    ("eq", "false", "0", False),  # a port is no bool
    ("eq", "127.0.0.1", "127.0.0.1", True),
    ("eq", "0", "0", True),
    ("eq", "0s", "0", True),  # a Go duration of zero is zero
    ("noteq", "5m0s", "0", True),
    ("noteq", "0", "0", False),
    ("noteq", "info", "debug", True),
    ("gt", "5", "0", True),
    ("gt", "0", "0", False),
    ("gte", "30", "30", True),
    ("gte", "29", "30", False),
    ("gte", "abc", "30", False),  # not a number never satisfies an order
    ("lt", "3", "5", True),
    ("lte", "5", "5", True),
    ("lte", "6", "5", False),
    ("has", "Node,RBAC", "RBAC", True),
    ("has", "Node", "RBAC", False),
    ("nothave", "NodeRestriction,AlwaysAdmit", "AlwaysAdmit", False),
    ("nothave", "NodeRestriction", "AlwaysAdmit", True),
    ("regex", "unix:///var/run/docker.sock", "^(unix|fd)://", True),
    ("regex", "tcp://0.0.0.0:2375", "^(unix|fd)://", False),
    ("valid_elements", "TLS_A,TLS_B", "TLS_A,TLS_B,TLS_C", True),
    ("valid_elements", "TLS_A,TLS_X", "TLS_A,TLS_B", False),
    ("valid_elements", "", "TLS_A", False),
    ("bitmask", "600", "600", True),
    ("bitmask", "400", "600", True),
    ("bitmask", "0", "600", True),
    ("bitmask", "644", "600", False),
    ("bitmask", "700", "600", False),
    ("bitmask", "755", "755", True),
    ("bitmask", "2755", "755", False),  # setgid is a bit 755 does not allow
]


@pytest.mark.parametrize(("op", "actual", "expected", "result"), CASES)
def test_scalar_operators(op: str, actual: str, expected: str, result: bool) -> None:
    assert compare(op, actual, expected) is result


def test_lists_membership_and_every_element() -> None:
    assert compare("has", ["ALL", "NET_ADMIN"], "ALL")
    assert not compare("has", ["ALLX"], "ALL")  # membership, not substring, on lists
    assert compare("nothave", ["/srv", "/data"], ("/", "/etc"))
    assert not compare("nothave", ["/srv", "/etc"], ("/", "/etc"))
    assert compare("gte", ["8080", "2000"], "1024")
    assert not compare("gte", ["8080", "80"], "1024")
    assert compare("gte", [], "1024")  # nothing published: nothing privileged
    assert compare("regex", ["unix:///x", "fd://"], "^(unix|fd)://")
    assert not compare("regex", ["unix:///x", "tcp://0.0.0.0:2375"], "^(unix|fd)://")
    assert compare("valid_elements", ["TLS_A", "TLS_B"], "TLS_A,TLS_B")


def test_any_of_expected_values() -> None:
    assert compare("eq", "root:docker", ("root:docker", "root:root"))
    assert not compare("eq", "ops:docker", ("root:docker", "root:root"))


@given(st.integers(0, 0o7777), st.integers(0, 0o777))
def test_bitmask_means_no_extra_permission_bits(actual: int, allowed: int) -> None:
    ok = compare("bitmask", format(actual, "o"), format(allowed, "o"))
    assert ok == (actual | allowed == allowed)


@pytest.mark.parametrize(
    ("op", "value"), [("like", "x"), ("regex", "(unclosed"), ("bitmask", "rw-------")]
)
def test_validate_rejects_bad_operators(op: str, value: str) -> None:
    with pytest.raises(ConfigError):
        validate(op, value)
