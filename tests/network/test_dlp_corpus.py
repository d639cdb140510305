"""The built-in sensors on public text that holds no personal data (the false-positive corpus) and
on every supported format of the data they look for (the true-positive table). Both report their
counts in the terminal summary ("DLP corpus") and as junit properties.

The corpus: the committed files in fixtures/dlp_corpus (SVG, HTML, JSON, logs; provenance in its
README), the repository's JSON fixtures, the Python standard library of the running interpreter
and Go's source tree (golang-go is in .ci/apt-packages.txt). Digit-dense on purpose: decimal
arithmetic test vectors, hash and UUID fixtures, timestamps, versions, IP addresses, SVG paths.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

from stockade.network.dlp import DlpEngine
from stockade.network.dlp.validators import luhn_check_digit
from tests.network.dlp_report import report
from tests.support import require

ENGINE = DlpEngine()
REPO = Path(__file__).resolve().parents[2]
COMMITTED = Path(__file__).parent / "fixtures" / "dlp_corpus"
MAX_FILE = 2_000_000

# The documented handful: (corpus, path) -> {sensor: hits}. Each is data a DLP cannot tell from
# the real thing without knowing the file, so it stays reported rather than hidden.
KNOWN_HITS: dict[tuple[str, str], dict[str, int]] = {
    # tel: URIs with real-format numbers (+31-641044153, a Dutch mobile): a phone number in a
    # tel: URI is a phone number.
    ("python", "test/test_urlparse.py"): {"dlp.phone": 8},
    # Random operands of decimal division and addition test vectors: random 16-digit numbers, one
    # in ~15 of which passes Luhn in a card range (one more with Maestro's 56-59, and a shifted
    # operand, 5678901234560000, in the shift vectors).
    ("python", "test/decimaltestdata/ddDivide.decTest"): {"dlp.payment_card": 6},
    ("python", "test/decimaltestdata/ddAdd.decTest"): {"dlp.payment_card": 1},
    ("python", "test/decimaltestdata/ddShift.decTest"): {"dlp.payment_card": 1},
    # The same for tables of random 64-bit integers and field elements (three more, and two
    # random hash values in test_hash.py, in Maestro's 56-59).
    ("go", "math/rand/rng.go"): {"dlp.payment_card": 12},
    ("python", "test/test_hash.py"): {"dlp.payment_card": 2},
    ("go", "crypto/internal/edwards25519/field/fe_test.go"): {"dlp.payment_card": 2},
    ("go", "math/all_test.go"): {"dlp.payment_card": 1},
    # An instruction encoding printed in decimal in an assembler test comment.
    ("go", "cmd/asm/internal/asm/testdata/arm64.s"): {"dlp.payment_card": 1},
}


def _go_root() -> Path | None:
    go = shutil.which("go")
    if go is None:
        return None
    out = subprocess.run([go, "env", "GOROOT"], capture_output=True, text=True, check=False)
    root = Path(out.stdout.strip())
    return root if out.returncode == 0 and (root / "src").is_dir() else None


def _files(root: Path, *, suffix: str = "") -> Iterator[Path]:
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in ("site-packages", "__pycache__"))
        for name in sorted(names):
            path = Path(folder, name)
            if name.endswith(suffix) and not path.is_symlink() and path.is_file():
                yield path


def _corpora() -> dict[str, tuple[Path, list[Path]]]:
    go = _go_root()
    require(go is not None, "Go (golang-go) is not installed: its source tree is corpus")
    assert go is not None
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    fixtures = [p for p in _files(REPO / "tests", suffix=".json") if COMMITTED not in p.parents]
    return {
        "committed": (COMMITTED, [p for p in _files(COMMITTED) if p.name != "README.md"]),
        "fixtures": (REPO, fixtures),
        "python": (stdlib, list(_files(stdlib))),
        "go": (go / "src", list(_files(go / "src"))),
    }


def test_false_positive_corpus_is_silent(
    request: pytest.FixtureRequest, record_property: pytest.RecordProperty
) -> None:
    hits: dict[tuple[str, str], collections.Counter[str]] = {}
    addresses = files = size = 0
    for corpus, (root, paths) in _corpora().items():
        for path in paths:
            data = path.read_bytes()
            if len(data) > MAX_FILE or b"\0" in data[:4096]:
                continue  # binaries and giant generated tables: not text a service sends
            files += 1
            size += len(data)
            for m in ENGINE.scan(data):
                if m.sensor == "dlp.email":
                    addresses += 1  # real addresses (authors, RFC examples): not false alarms
                    continue
                key = (corpus, path.relative_to(root).as_posix())
                hits.setdefault(key, collections.Counter())[m.sensor] += 1
    unexpected = {k: dict(v) for k, v in hits.items() if dict(v) != KNOWN_HITS.get(k)}
    gone = sorted(set(KNOWN_HITS) - set(hits))
    total = sum(sum(c.values()) for c in hits.values())
    known = sum(sum(v.values()) for k, v in hits.items() if k not in unexpected)
    line = (
        f"DLP false-positive corpus: {files} files, {size / 1e6:.1f} MB, {total} hits "
        f"({known} documented in KNOWN_HITS, {total - known} new), {addresses} e-mail addresses"
    )
    record_property("dlp_fp_files", files)
    record_property("dlp_fp_megabytes", round(size / 1e6, 1))
    record_property("dlp_fp_hits", total)
    report(request.config, line)
    assert files > 5000 and size > 50e6, "the corpus shrank: a source went missing"
    assert unexpected == {} and gone == [], (unexpected, gone)


# The true-positive table ------------------------------------------------------------------------

# (brand, IIN prefix, lengths): every range the card validator knows, at every length it allows
# that a grouping exists for; bodies are seeded pseudo-random digits, completed by the check digit.
CARD_FORMATS = [
    ("visa", "4", (13, 16, 19)),
    ("mastercard", "51", (16,)),
    ("mastercard", "55", (16,)),
    ("mastercard", "2221", (16,)),
    ("mastercard", "2720", (16,)),
    ("amex", "34", (15,)),
    ("amex", "37", (15,)),
    ("discover", "6011", (16, 19)),
    ("discover", "644", (16,)),
    ("discover", "65", (16,)),
    ("discover", "622126", (16,)),
    ("jcb", "3528", (16,)),
    ("jcb", "3589", (16,)),
    ("diners", "36", (14,)),
    ("diners", "300", (14,)),
    ("diners", "3095", (14, 16)),
    ("unionpay", "62", (16, 17, 18, 19)),
    ("unionpay", "81", (16,)),
    ("mir", "2200", (16,)),
    ("maestro", "6759", (12, 16, 19)),
    ("maestro", "5018", (12, 13)),
    ("maestro", "6304", (16,)),
    ("maestro", "56", (16, 19)),
    ("maestro", "5799", (16,)),
    ("maestro", "58", (18,)),
    ("maestro", "59", (17,)),
]


def _layouts(number: str) -> list[str]:
    """The number plain, and grouped with each separator where a card layout exists."""
    n = len(number)
    if n in (14, 15):  # Diners 4-6-4, Amex 4-6-5
        groups = [number[:4], number[4:10], number[10:]]
    elif n >= 16:  # 4-4-4-4 and a last group of 1-3
        groups = [number[i : i + 4] for i in range(0, n, 4)]
    else:
        return [number]
    # every separator of sensors.CARD_SEPARATORS (UTF-8 text: the no-break space is C2 A0)
    return [number, *(sep.join(groups) for sep in (" ", "-", ".", "\u00a0"))]


def _card_rows() -> list[tuple[str, str, str]]:
    import random

    rng = random.Random(13)
    rows = []
    for brand, prefix, lengths in CARD_FORMATS:
        for length in lengths:
            body = prefix + "".join(
                rng.choice("0123456789") for _ in range(length - len(prefix) - 1)
            )
            number = body + luhn_check_digit(body)
            for shown in _layouts(number):
                rows.append((f"payment card: {shown}\n", "dlp.payment_card", brand))
    return rows


# (text, sensor, label or None). IBANs: ISO 13616 / national bank examples; phones: fictional
# numbers outside the 555-01xx block the validator reserves for fiction.
OTHER_ROWS: list[tuple[str, str, str | None]] = [
    ("ssn 536-90-4399", "dlp.us_ssn", None),
    ("SSN: 536 90 4399", "dlp.us_ssn", None),
    ('{"ssn": "772113456"}', "dlp.us_ssn", None),
    ("social security number 001-01-0001", "dlp.us_ssn", None),
    *[
        (f"iban {iban}", "dlp.iban", iban[:2])
        for iban in (
            "DE89370400440532013000",
            "DE89 3704 0044 0532 0130 00",
            "GB82WEST12345698765432",
            "FR1420041010050500013M02606",
            "NL91ABNA0417164300",
            "AT611904300234573201",
            "PL61109010140000071219812874",
            "SE4550000000058398257466",
            "DK5000400440116243",
            "FI2112345600000785",
            "IE29AIBK93115212345678",
            "PT50000201231234567890154",
            "LU280019400644750000",
            "GR1601101250000000012300695",
            "CH9300762011623852957",
            "ES9121000418450200051332",
            "IT60X0542811101000000123456",
            "BE68539007547034",
            "NO9386011117947",
        )
    ],
    ("email alice@example.com", "dlp.email", None),
    ("From: Bob <bob.smith+orders@mail.example.co.uk>", "dlp.email", None),
    ('{"contact":"o\'neil_x@sub.example.org"}', "dlp.email", None),
    ("phone +1 415 555 2671", "dlp.phone", "e164"),
    ("phone +14155552671", "dlp.phone", "e164"),
    ("tel +44 20 7946 0958", "dlp.phone", "e164"),
    ("mobile +49-30-901820-10", "dlp.phone", "e164"),
    ("tel:+33 1 42 68 53 00", "dlp.phone", "e164"),
    ("call (415) 555-2671", "dlp.phone", "nanp"),
    ("phone 415-555-2671", "dlp.phone", "nanp"),
    ("cell 415.555.2671", "dlp.phone", "nanp"),
    ("fax 1-415-555-2671", "dlp.phone", "nanp"),
    ("phone 415 555 2671", "dlp.phone", "nanp"),
]


def test_true_positive_table_is_found(
    request: pytest.FixtureRequest, record_property: pytest.RecordProperty
) -> None:
    rows = [*_card_rows(), *OTHER_ROWS]
    missed = []
    per_sensor: collections.Counter[str] = collections.Counter()
    for text, sensor, label in rows:
        got = [m for m in ENGINE.scan(text.encode()) if m.sensor == sensor]
        if len(got) == 1 and (label is None or got[0].label == label):
            per_sensor[sensor] += 1
        else:
            missed.append((text, sensor, label, [(m.masked, m.label) for m in got]))
    found = sum(per_sensor.values())
    detail = ", ".join(f"{s.removeprefix('dlp.')} {n}" for s, n in sorted(per_sensor.items()))
    report(request.config, f"DLP true-positive table: {found} of {len(rows)} found ({detail})")
    record_property("dlp_tp_rows", len(rows))
    record_property("dlp_tp_found", found)
    assert missed == []


def test_true_positive_table_through_coalescing_streams() -> None:
    """The sensor's streams scan segments together: the same findings, whatever the cuts."""
    for k, (text, _sensor, _label) in enumerate([*_card_rows(), *OTHER_ROWS]):
        data = text.encode()
        step = 1 + k % 7
        stream = ENGINE.stream(coalesce=1 + k % 40)
        got = [m for i in range(0, len(data), step) for m in stream.feed(data[i : i + step])]
        assert got + stream.close() == ENGINE.scan(data), text
