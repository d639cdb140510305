"""Validators: the checksum and rule half of a DLP sensor.

A sensor's regex proposes a candidate; the validator named in the sensor decides whether the
candidate is real and may override the base score (an unseparated 9-digit SSN is much weaker
evidence than ``123-45-6789``). Validators are pure functions of the matched text.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass

# The checksum and the SSN number rules are shared with the masking gate (stockade.model.redact).
from stockade.model.redact import card_brand, digits_of, luhn_ok, ssn_number_ok


@dataclass(frozen=True, slots=True, kw_only=True)
class Validation:
    ok: bool
    score: float | None = None  # replaces the sensor's base score when set
    label: str | None = None  # e.g. the card brand
    context_before: bool = False  # valid only with a context word in the bytes before it


REJECT = Validation(ok=False)

Validator = Callable[[str], Validation]


def luhn_check_digit(partial: str) -> str:
    """The digit that makes ``partial + digit`` Luhn-valid."""
    for d in "0123456789":
        if luhn_ok(partial + d):
            return d
    raise AssertionError("unreachable: one digit always completes a Luhn sum")


# Published processor test numbers: real traffic never carries them, demos always do.
TEST_CARD_NUMBERS = frozenset(
    {
        "4111111111111111",
        "4012888888881881",
        "4222222222222",
        "5555555555554444",
        "5105105105105100",
        "378282246310005",
        "371449635398431",
        "6011111111111117",
        "6011000990139424",
        "3530111333300000",
        "3566002020360505",
        "30569309025904",
        "38520000023237",
    }
)


# Two adjacent digits one apart (mod 10): a step of a counting run.
_COUNTING_PAIRS = frozenset(f"{a}{(a + d) % 10}" for a in range(10) for d in (1, 9))


def _degenerate(number: str) -> bool:
    # One repeated digit, or a run counting up or down by one (turning at most once, as in
    # 6543210123456788, with at most one other step) is filler, not a PAN. 5454545454545454
    # turns at every digit: a published test number, kept.
    if len(set(number)) == 1:
        return True
    if number.endswith("00000000"):
        # Eight trailing zeros is a round number (81000000000000000 = 9 x 9000000000000000, a
        # scaled amount); a real PAN ends so with odds of 1e-8. Drops a few processor test
        # numbers such as 6304000000000000, which real traffic never carries.
        return True
    # A counting run has at most one other step: most numbers show two within a few digits.
    others = 0
    for i in range(len(number) - 1):
        if number[i : i + 2] not in _COUNTING_PAIRS:
            others += 1
            if others > 1:
                return False
    steps = [(int(b) - int(a)) % 10 for a, b in itertools.pairwise(number)]
    counting = [step for step in steps if step in (1, 9)]
    turns = sum(a != b for a, b in itertools.pairwise(counting))
    return len(counting) >= len(steps) - 1 and turns <= 1


def _card_digits(text: str) -> str:
    """``digits_of`` with a fast path for the shapes card candidates have: a plain run, or groups
    separated by spaces or hyphens."""
    compact = text.replace(" ", "").replace("-", "")
    if compact.isascii() and compact.isdigit():
        return compact
    return digits_of(text)


_DIGIT_VALUE = bytes.maketrans(b"0123456789", bytes(range(10)))
_DOUBLED_VALUE = bytes.maketrans(b"0123456789", bytes((0, 2, 4, 6, 8, 1, 3, 5, 7, 9)))


def _luhn(number: str) -> bool:
    """``luhn_ok`` summed over bytes in C (a quarter of its time on a 16-digit number)."""
    if not number.isascii():
        return luhn_ok(number)
    rev = number.encode()[::-1]
    total = sum(rev[0::2].translate(_DIGIT_VALUE)) + sum(rev[1::2].translate(_DOUBLED_VALUE))
    return total % 10 == 0


@functools.lru_cache(maxsize=4096)
def _brand(iin: str, length: int) -> Validation:
    # card_brand reads at most the first 6 digits (the IIN) and the length: cached on those
    # alone, never on a whole number, with the verdict object itself.
    brand = card_brand(iin.ljust(length, "0"))
    return REJECT if brand is None else Validation(ok=True, label=brand)


def payment_card(text: str) -> Validation:
    number = _card_digits(text)
    # Cheapest test first: Luhn rejects nine in ten random candidates.
    if not 12 <= len(number) <= 19 or not _luhn(number):
        return REJECT
    verdict = _brand(number[:6], len(number))
    if not verdict.ok or _degenerate(number):
        return REJECT
    return verdict


_SSN_ADVERTISING = frozenset({"078051120", "219099999", "123456789", "111111111"})


def us_ssn(text: str) -> Validation:
    number = digits_of(text)
    if not ssn_number_ok(number):
        return REJECT
    if number in _SSN_ADVERTISING or number.startswith("98765432") or _filler_groups(number):
        return REJECT
    if len(text) == 9:
        # Nine bare digits are everywhere (ids, amounts): only a key such as "ssn": before them
        # makes them an SSN.
        return Validation(ok=True, context_before=True)
    return Validation(ok=True)


def _filler_groups(number: str) -> bool:
    # 111-11-1111, 111-22-3333: every group one repeated digit is a placeholder.
    return all(len(set(group)) == 1 for group in (number[:3], number[3:5], number[5:]))


# ISO 13616 registry: total IBAN length per country.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


def iban_mod97(iban: str) -> int:
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97


def iban(text: str) -> Validation:
    compact = text.replace(" ", "").upper()
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact.isalnum():
        return REJECT
    if not compact[2:4].isdigit() or iban_mod97(compact) != 1:
        return REJECT
    return Validation(ok=True, label=compact[:2])


# File name extensions that are not top-level domains: "icon@2x.png" and "logo@3x.webp" are
# image names, not addresses. (.py, .sh, .so, .zip and the like are delegated domains and stay.)
_FILE_EXTENSIONS = frozenset(
    {
        "bmp", "bz2", "cfg", "class", "conf", "cpp", "css", "csv", "dll", "exe", "gif", "gz",
        "hpp", "htm", "html", "ico", "ini", "jar", "java", "jpeg", "jpg", "js", "json",
        "lock", "log", "map", "mjs", "png", "pyc", "scss", "svg", "tar", "tgz", "tif", "tiff",
        "toml", "ts", "tsx", "txt", "wasm", "webp", "whl", "xml", "xz", "yaml", "yml",
    }
)  # fmt: skip


def email(text: str) -> Validation:
    local, _, domain = text.rpartition("@")
    if not local or len(local) > 64 or len(domain) > 253:
        return REJECT
    if local[0] == "." or local[-1] == "." or ".." in local:
        return REJECT
    labels = domain.split(".")
    if any(not label or len(label) > 63 for label in labels) or not labels[-1].isalpha():
        return REJECT
    if labels[-1].lower() in _FILE_EXTENSIONS:
        return REJECT
    return Validation(ok=True)


def phone(text: str) -> Validation:
    number = digits_of(text)
    if text.startswith("+"):
        # E.164: country code never starts with 0, at most 15 digits.
        if not 8 <= len(number) <= 15 or number[0] == "0" or len(set(number)) == 1:
            return REJECT
        if number[0] == "1" and not _nanp_ok(number[1:]):
            return REJECT
        return Validation(ok=True, label="e164")
    if len(number) == 11 and number[0] == "1":
        number = number[1:]
    if len(number) != 10 or not _nanp_ok(number):
        return REJECT
    return Validation(ok=True, label="nanp")


def _nanp_ok(ten: str) -> bool:
    # NXX-NXX-XXXX with N in 2-9; N11 area codes are service codes, 555-0100..0199 are reserved
    # for fiction and documentation (the examples in RFCs, schemas and films).
    if len(ten) != 10 or ten[0] in "01" or ten[3] in "01":
        return False
    return ten[1:3] != "11" and not ten[3:8].startswith("55501")


def luhn(text: str) -> Validation:
    """Any digit string of 8+ digits passing mod 10 (for user sensors on non-card ids)."""
    number = digits_of(text)
    return Validation(ok=len(number) >= 8 and luhn_ok(number))


def accept(text: str) -> Validation:
    """For user sensors whose regex alone decides."""
    return Validation(ok=True)


VALIDATORS: dict[str, Validator] = {
    "luhn": luhn,
    "payment_card": payment_card,
    "us_ssn": us_ssn,
    "iban": iban,
    "email": email,
    "phone": phone,
    "none": accept,
}
