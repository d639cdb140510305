"""libyaml's parser and PyYAML's pure-Python one read every document alike, in both dialects
(plain YAML 1.1 and Kubernetes' go-yaml v2 scalars): the same values of the same types, the same
line numbers, the same errors on the same lines. The pure-Python loaders are the ones a PyYAML
built without libyaml gets; a child process that cannot import ``yaml._yaml`` builds them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support import require

ROOT = Path(__file__).resolve().parents[1]

SCALARS = [
    # integers in YAML 1.1's and Go's spellings
    *("0", "-0", "+12", "017", "09", "0o17", "0O17", "0o8", "0x1F", "0X1f", "0x", "0b101"),
    *("0B11", "-0b11", "1_000", "0_0", "18446744073709551615", "18446744073709551616"),
    *("-9223372036854775809", "1" * 40),
    # floats, infinities, not-a-number
    *("1.5", ".5", "0.0", "-0.0", "1e3", "0e0", "1.0e+3", "1e400", "6.8523015e+5", "0E+0"),
    *(".inf", "-.Inf", "+.INF", ".NaN", ".nan", "1_0.5"),
    # booleans and nulls
    *("y", "Y", "n", "N", "yes", "No", "ON", "off", "On", "true", "False", "TRUE"),
    *("~", "null", "Null", "NULL", "''"),
    # base 60, timestamps, odd words
    *("1:30", "190:20:30", "2024-01-01", "2024-02-30", "2001-12-14t21:59:43.10-05:00"),
    *("2001-12-14 21:59:43.10 -5", "=", "<<", "-", "0x_1F"),
    # quoted, tagged, block and flow
    *("'0o0'", '"y"', '"\\x41\\u00e9"', "!!str 12", "!!float 1", "!!int 0x10", "!!int abc"),
    *(
        "!!binary aGVsbG8=",
        "!!bool y",
        "!!timestamp x",
        "!!int ''",
        "!!set [a]",
        "|\n    two\n    lines\n",
        ">-\n    folded\n    text\n",
    ),
    *("[1, 0x10, y, ~, 1:30]", "{y: 1, 1: b, 0x10: c, 1.0: d, ~: e}", "{? [a]: 1}"),
]
DOCUMENTS = [
    *(f"k: {s}\n" for s in SCALARS),
    "a: &x {n: 1, m: [y, 0o7]}\nb: *x\nc: {<<: *x, n: 2}\n",
    "---\nfirst: 1\n...\n---\nsecond: [2]\n---\n",
    "# only a comment\n",
    "a: 1\na: 2\n",
    "a: [1, 2\n",  # unclosed
    "a: b: c\n",  # mapping value where none may be
    "\tk: v\n",
    "a: *nowhere\n",
    "[" * 120 + "]" * 120 + "\n",  # deeper than the limit
    "x: &a [*a]\n",  # an alias inside the node it names
]

CHILD = r"""
import json, sys
if sys.argv[1] == "pure":
    sys.modules["yaml._yaml"] = None  # as if PyYAML had been built without libyaml
import yaml.reader
from stockade import config
from stockade.model.errors import StockadeError

loaders = {config._Loader, config._KubeLoader}
pure = all(yaml.reader.Reader in c.__mro__ for c in loaders)
out = {"pure": pure, "results": []}
for text in json.load(sys.stdin):
    for kubernetes in (False, True):
        try:
            docs = config.parse_yaml_all(text, name="t", kubernetes=kubernetes)
            got = ["ok", [[repr(v), n.tag, n.start_mark.line, n.end_mark.line] for v, n in docs]]
        except StockadeError as exc:
            got = ["error", type(exc).__name__, exc.line]
        out["results"].append([text, kubernetes, got])
print(json.dumps(out))
"""


def _run(kind: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, kind],
        input=json.dumps(DOCUMENTS), capture_output=True, text=True, env=env, timeout=120,
        check=True,
    )  # fmt: skip
    return json.loads(done.stdout)


def test_libyaml_and_the_pure_python_parser_read_alike() -> None:
    require(yaml.__with_libyaml__, "PyYAML built without libyaml: nothing to compare")
    fast, pure = _run("libyaml"), _run("pure")
    assert (fast["pure"], pure["pure"]) == (False, True)
    assert len(fast["results"]) == 2 * len(DOCUMENTS)
    differ = [(f, p) for f, p in zip(fast["results"], pure["results"], strict=True) if f != p]
    assert not differ, differ
    # the table means something: both dialects, values and errors of every kind
    kinds = {(r[1], r[2][0], r[2][1] if r[2][0] == "error" else "") for r in fast["results"]}
    assert {(k, "ok", "") for k in (False, True)} <= kinds
    assert {"ConfigError", "InputError", "DocumentTooComplex"} <= {k[2] for k in kinds}
    plain = {r[0]: r[2] for r in fast["results"] if not r[1]}
    kube = {r[0]: r[2] for r in fast["results"] if r[1]}
    assert plain["k: 1:30\n"] != kube["k: 1:30\n"]  # base 60 is YAML 1.1's, not Go's
    assert plain["k: 0o17\n"] != kube["k: 0o17\n"]
