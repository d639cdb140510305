"""Masking: evidence is reduced to what PCI DSS 3.4 allows to display before it leaves the engine.

Every masker keeps the candidate's separators so an operator recognises the shape, and never
reveals more than the first 4 and last 4 significant characters.
"""

from __future__ import annotations

from collections.abc import Callable

# Cards and SSNs are masked by the same functions as every other string that leaves Stockade.
from stockade.model.redact import keep_edges, mask_card, mask_ssn

Masker = Callable[[str], str]


def mask_card_text(text: str) -> str:
    """:func:`mask_card` on a candidate read from the stream (Latin-1 text, one character a
    byte): a UTF-8 no-break space between groups (the bytes C2 A0) is shown as the one
    character it is (``4111\xa0****\xa0****\xa01111``), not as ``Â`` and a no-break space."""
    return mask_card(text.replace("\xc2\xa0", "\xa0") if "\xc2" in text else text)


def mask_iban(text: str) -> str:
    """``DE89 3704 0044 0532 0130 00`` -> ``DE89 **** **** **** **30 00``."""
    return keep_edges(text, 4, 4, str.isalnum)


def mask_email(text: str) -> str:
    """``john.doe@example.com`` -> ``j***@example.com``."""
    local, _, domain = text.rpartition("@")
    return f"{local[:1]}***@{domain}"


def mask_phone(text: str) -> str:
    """Only the last 2 digits survive: ``+1 415 555 2671`` -> ``+* *** *** **71``."""
    return keep_edges(text, 0, 2, str.isdigit)


def mask_generic(text: str) -> str:
    """User sensors: last 4 characters when the value is long, nothing otherwise."""
    if len(text) >= 12:
        return "*" * (len(text) - 4) + text[-4:]
    return "*" * len(text)


def mask_full(text: str) -> str:
    return "*" * len(text)


MASKERS: dict[str, Masker] = {
    "card": mask_card_text,
    "ssn": mask_ssn,
    "iban": mask_iban,
    "email": mask_email,
    "phone": mask_phone,
    "generic": mask_generic,
    "full": mask_full,
}
