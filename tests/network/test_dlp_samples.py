"""Big tables of real samples for every built-in sensor (presidio style): each row is a text
with a value that must be reported (hit) or must not (no hit). Public test numbers only: card
numbers published by payment processors, IBANs from the ISO 13616 registry examples."""

from __future__ import annotations

import pytest

from stockade.network.dlp import DlpEngine
from stockade.network.dlp.validators import card_brand, luhn_ok

ENGINE = DlpEngine()


def found(text: str, sensor: str) -> list[str]:
    return [m.masked for m in ENGINE.scan(text.encode()) if m.sensor == sensor]


def independent_luhn(number: str) -> bool:
    # Written differently from the product's: sum digit-wise via a lookup of doubled digits.
    doubled = [0, 2, 4, 6, 8, 1, 3, 5, 7, 9]
    total = sum(int(d) if i % 2 == 0 else doubled[int(d)] for i, d in enumerate(reversed(number)))
    return total % 10 == 0


# (text, masked evidence, brand)
CARD_HITS = [
    ('{"card":"4111 1111 1111 1111"}', "4111 **** **** 1111", "visa"),
    ("pan=4242424242424242&exp=12/29", "4242********4242", "visa"),
    ("visa debit 4000-0566-5566-5556", "4000-****-****-5556", "visa"),
    ("cc: 4012888888881881", "4012********1881", "visa"),
    ("old visa 4222222222222", "4222*****2222", "visa"),
    ("mastercard 5555 5555 5555 4444", "5555 **** **** 4444", "mastercard"),
    ("mc2 2223003122003222", "2223********3222", "mastercard"),
    ("card 2223 0000 4841 0010", "2223 **** **** 0010", "mastercard"),
    ("debit 5200828282828210", "5200********8210", "mastercard"),
    ("prepaid 5105105105105100", "5105********5100", "mastercard"),
    ("amex 3782 822463 10005", "3782 ****** *0005", "amex"),
    ("amex 371449635398431", "3714*******8431", "amex"),
    ("amex 3714-496353-98431", "3714-******-*8431", "amex"),
    ("discover 6011 1111 1111 1117", "6011 **** **** 1117", "discover"),
    ("discover 6011000990139424", "6011********9424", "discover"),
    ("discover debit 6011981111111113", "6011********1113", "discover"),
    ("jcb 3566 0020 2036 0505", "3566 **** **** 0505", "jcb"),
    ("jcb 3530111333300000", "3530********0000", "jcb"),
    ("diners 3056 930902 5904", "3056 ****** 5904", "diners"),
    ("diners 36227206271667", "3622******1667", "diners"),
    ("diners 3056930009020004", "3056********0004", "diners"),
    ("unionpay 6200000000000005", "6200********0005", "unionpay"),
    ("unionpay 6205500000000000004", "6205***********0004", "unionpay"),
    ("maestro 6759649826438453", "6759********8453", "maestro"),
    ("card_number='5454 5454 5454 5454'", "5454 **** **** 5454", "mastercard"),
    ("INSERT INTO payments VALUES ('5555-5555-5555-4444')", "5555-****-****-4444", "mastercard"),
    ("*3\r\n$3\r\nSET\r\n$6\r\ncard:1\r\n$15\r\n378282246310005\r\n", "3782*******0005", "amex"),
    ("<pan>4111111111111111</pan>", "4111********1111", "visa"),
    ("card=4111111111111111\n", "4111********1111", "visa"),
    ("qty 2 4111 1111 1111 1111", "4111 **** **** 1111", "visa"),
    # A value's own key decides (issue 13): another field's "id" does not veto it, and a key
    # that names the card keeps it.
    ('{"id":1,"number":"4111 1111 1111 1111"}', "4111 **** **** 1111", "visa"),
    ('{"card_id": "4111111111111111"}', "4111********1111", "visa"),
    ("cards 5454545454545454", "5454********5454", "mastercard"),
    # magnetic-stripe track 1 ("%B" PAN "^" name "^" expiry...) and track 2 (";" PAN "=" ...)
    ("%B4111111111111111^DOE/JOHN^25121010000000000000?", "4111********1111", "visa"),
    (";5555555555554444=25121010000000000?", "5555********4444", "mastercard"),
    # a point or a no-break space (U+00A0, UTF-8 here) between the groups, one kind throughout
    ("card 4111.1111.1111.1111", "4111.****.****.1111", "visa"),
    ("amex 3782.822463.10005.", "3782.******.*0005", "amex"),
    ("diners 3056.930902.5904", "3056.******.5904", "diners"),
    ("Karte: 4111\u00a01111\u00a01111\u00a01111", "4111\xa0****\xa0****\xa01111", "visa"),
    ("<td>5555\u00a05555\u00a05555\u00a04444</td>", "5555\xa0****\xa0****\xa04444", "mastercard"),
    ("amex 3782\u00a0822463\u00a010005", "3782\xa0******\xa0*0005", "amex"),
    # Maestro 56-59, 12 to 19 digits
    ("maestro 5641 8200 0000 0005", "5641 **** **** 0005", "maestro"),
    ("maestro 5937.2841.0963.5527.116", "5937.****.****.***7.116", "maestro"),
]


@pytest.mark.parametrize(("text", "masked", "brand"), CARD_HITS)
def test_card_hits(text: str, masked: str, brand: str) -> None:
    data = text.encode()
    matches = [m for m in ENGINE.scan(data) if m.sensor == "dlp.payment_card"]
    assert [(m.masked, m.label) for m in matches] == [(masked, brand)]
    m = matches[0]
    value = data[m.start : m.end].decode()
    digits = "".join(c for c in value if c.isdigit())
    assert independent_luhn(digits) and card_brand(digits) == brand


CARD_MISSES = [
    ("luhn-invalid", '{"card":"4111 1111 1111 1112"}'),
    ("luhn-invalid plain", "cc 5555555555554445"),
    ("luhn-invalid track 1", "%B4111111111111112^DOE/JOHN^2512101?"),
    ("unix ms timestamp", '{"ts":1700000000000,"id":17}'),
    ("unix us timestamp", '{"ts_us":1700000000000000}'),
    ("unix ns timestamp", "ts=1732654123456789012"),
    ("order id key", '{"order_id":"4539578763621486"}'),
    ("invoice number", "invoice 4539 5787 6362 1486 paid"),
    ("tracking number", "tracking: 6011000990139424"),
    ("inside a longer digit run", "id=99411111111111111119"),
    ("16 digits inside 20", "12345678904111111111111111"),
    ("grouped run longer than a card", "4111 1111 1111 1111 1111 2222"),
    ("decimal fraction", "sum 22.378282246310005"),
    ("mixed separators", "4111-1111 1111-1111"),
    ("letters glued", "tokA4111111111111111"),
    ("hex digest", "sha=a4111111111111111b"),
    ("no known brand", "ref 1234567812345670"),
    ("all zeros", "0000 0000 0000 0000"),
    ("sequential", "1234567890123456"),
    ("phone E.164", "phone +14155552671"),
    ("phone intl", "tel 0044 20 7946 0958"),
    ("uuid", "550e8400-e29b-41d4-a716-446655440000"),
    ("ipv4 list", "10.0.0.1 10.0.0.2 10.0.0.3"),
    ("version string", "v4.111.1111.1111"),
    ("amex wrong length", "amex 3782 822463 1000"),
    ("visa wrong length", "visa 41111111111111"),
    # issue 13: digit runs inside identifiers and number lists are not card numbers
    ("uuid last group in a maestro range", "card 550e8400-e29b-41d4-a716-675912345674"),
    ("build number after a version", "version 1.2.13-4111111111111111"),
    ("svg path coordinates", 'card <path d="M 4111.11 1111.11 L 4111 1111 1111 1111"/>'),
    ("decimal with a card-like integer part", "divide 4502895892520.396581348110906909"),
    ("decimal after a grouped run", "card 4111 1111 1111 1111.5"),
    ("hex literal", "decd410 apply #4111111111111111"),
    ("negative number", "{-4111111111111111, 17}"),
    ("arn account id", "arn:aws:greengrass:us-west-2:675946970638:components"),
    ("json id key", '{"id": 4111111111111111}'),
    ("camelCase id key", '{"objectId": "4111111111111111"}'),
    ("round number", "multiply 9 9000000000000000 -> 81000000000000000"),
    ("counting run turning once", "add '6543210123456788' 0.5"),
    # points and no-break spaces between digits that are no card's groups
    ("dotted version", "release 4111.1111.1111.1111.2 tagged"),
    ("dotted version, short groups", "pkg 5.5555.5555.4444.1 build"),
    ("ipv4 addresses", "peers 41.111.111.111 55.55.55.55 4.111.111.1111"),
    ("ipv4 port list", "10.41.111.111:1111 41.11.11.111"),
    ("decimals", "x=4111.1111 y=1111.1111 z=4111.11111111111"),
    ("decimal with a point-grouped tail", "total 1.4111.1111.1111.1111"),
    ("mixed points and spaces", "4111.1111 1111.1111"),
    ("point grouped, luhn-invalid", "card 4111.1111.1111.1112"),
    ("no-break space grouped, luhn-invalid", "card 4111\u00a01111\u00a01111\u00a01112"),
    (
        "no-break space after 4 digits of a longer run",
        "ref 1234\u00a04111\u00a01111\u00a01111\u00a01111",
    ),
    ("maestro range, luhn-invalid", "debit 5600 0000 0000 0001"),
    ("maestro range, wrong length", "5712345678"),
    # Maestro 56-59 is read at 16-19 digits: 12-15 digit ids starting 56-59 are everywhere
    ("maestro 56-59 at 12 digits", "maestro 560000000003"),
    ("maestro 56-59 at 15 digits", "debit 5641 820000 00004"),
]


@pytest.mark.parametrize(("why", "text"), CARD_MISSES, ids=[w for w, _ in CARD_MISSES])
def test_card_misses(why: str, text: str) -> None:
    assert found(text, "dlp.payment_card") == []


@pytest.mark.parametrize(
    ("data", "masked"),
    [
        (b"Karte 4111\xa01111\xa01111\xa01111;", "4111\xa0****\xa0****\xa01111"),
        (b"amex 3782\xa0822463\xa010005\n", "3782\xa0******\xa0*0005"),
    ],
)
def test_latin1_no_break_space_between_groups(data: bytes, masked: str) -> None:
    """A no-break space in Latin-1 (the byte A0 alone) separates groups as the UTF-8 one does;
    the two kinds in one number are two separators, no card."""
    assert [m.masked for m in ENGINE.scan(data)] == [masked]
    mixed = data.replace(b"\xa0", b"\xc2\xa0", 1)
    assert [m.masked for m in ENGINE.scan(mixed)] == []


def test_known_card_table_is_luhn_valid() -> None:
    for text, _, _ in CARD_HITS:
        digits = "".join(c for c in text if c.isdigit())
        assert any(
            independent_luhn(digits[i : i + n])
            for n in range(12, 20)
            for i in range(len(digits) - n + 1)
        )
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")


SSN_HITS = [
    ("ssn 536-90-4399", "***-**-4399"),
    ('{"ssn":"536 90 4399"}', "***-**-4399"),
    ("social security number: 536904399", "***-**-4399"),
    ("SSN=772-11-3456", "***-**-3456"),
    ("applicant 001-01-0001", "***-**-0001"),
    ("ssn 899-99-9998", "***-**-9998"),
]


@pytest.mark.parametrize(("text", "masked"), SSN_HITS)
def test_ssn_hits(text: str, masked: str) -> None:
    assert found(text, "dlp.us_ssn") == [masked]


SSN_MISSES = [
    ("area 000", "ssn 000-12-3456"),
    ("area 666", "ssn 666-12-3456"),
    ("area 9xx", "ssn 900-12-3456"),
    ("area 999", "ssn 999-45-6789"),
    ("group 00", "ssn 123-00-4567"),
    ("serial 0000", "ssn 123-45-0000"),
    ("woolworth", "ssn 078-05-1120"),
    ("advertising 123-45-6789", "ssn 123-45-6789"),
    ("advertising 987-65-432x", "ssn 987-65-4321"),
    ("all same", "ssn 111-11-1111"),
    ("bare 9 digits without context", "value 536904399"),
    ("mixed separators", "ssn 536-90 4399"),
    ("phone shape", "ssn 415-555-2671"),
    ("zip+4", "zip 94105-1234"),
    ("inside a longer number", "ssn 1536-90-4399"),
    ("longer grouped run", "ssn 536-90-4399-12"),
    ("filler groups", "ssn : 111-22-3333"),
    ("glued to a word by a hyphen", "ssn a1-536-90-4399"),
]


@pytest.mark.parametrize(("why", "text"), SSN_MISSES, ids=[w for w, _ in SSN_MISSES])
def test_ssn_misses(why: str, text: str) -> None:
    assert found(text, "dlp.us_ssn") == []


IBAN_HITS = [
    ("iban DE89 3704 0044 0532 0130 00", "DE89 **** **** **** **30 00", "DE"),
    ("IBAN: DE89370400440532013000", "DE89**************3000", "DE"),
    ("GB82 WEST 1234 5698 7654 32", "GB82 **** **** **** **54 32", "GB"),
    ("to FR14 2004 1010 0505 0001 3M02 606", "FR14 **** **** **** **** ***2 606", "FR"),
    ("NL91ABNA0417164300", "NL91**********4300", "NL"),
    ("NO9386011117947", "NO93*******7947", "NO"),
    ("BE68 5390 0754 7034", "BE68 **** **** 7034", "BE"),
    ("CH9300762011623852957", "CH93*************2957", "CH"),
    ("ES9121000418450200051332", "ES91****************1332", "ES"),
    ("IT60X0542811101000000123456", "IT60*******************3456", "IT"),
]


@pytest.mark.parametrize(("text", "masked", "country"), IBAN_HITS)
def test_iban_hits(text: str, masked: str, country: str) -> None:
    matches = [m for m in ENGINE.scan(text.encode()) if m.sensor == "dlp.iban"]
    assert [(m.masked, m.label) for m in matches] == [(masked, country)]


IBAN_MISSES = [
    ("bad check digits", "DE89 3704 0044 0532 0130 01"),
    ("wrong length for country", "GB82 WEST 1234 5698 7654 3"),
    ("unknown country", "XX89370400440532013000"),
    ("lower case glued to a word", "myDE89370400440532013000"),
    ("too long", "DE8937040044053201300000"),
]


@pytest.mark.parametrize(("why", "text"), IBAN_MISSES, ids=[w for w, _ in IBAN_MISSES])
def test_iban_misses(why: str, text: str) -> None:
    assert found(text, "dlp.iban") == []


EMAIL_HITS = [
    ("contact alice@example.com today", "a***@example.com"),
    ('{"email":"john.doe+orders@mail.example.co.uk"}', "j***@mail.example.co.uk"),
    ("From: Bob <bob_smith@corp.example.org>", "b***@corp.example.org"),
    ("x=%22carol%40example.com%22 carol.w@example.net", "c***@example.net"),
]


@pytest.mark.parametrize(("text", "masked"), EMAIL_HITS)
def test_email_hits(text: str, masked: str) -> None:
    assert found(text, "dlp.email") == [masked]


EMAIL_MISSES = [
    ("no tld", "root@localhost"),
    ("double dot", "a..b@example.com"),
    ("leading dot", ".ab@example.com"),
    ("missing local", "@example.com"),
    ("digit tld", "foo@bar.c0m"),
    ("no domain dot", "alice@example"),
    ("retina image name", "icon@2x.png"),
    ("file name", "src=logo@3x.webp"),
]


@pytest.mark.parametrize(("why", "text"), EMAIL_MISSES, ids=[w for w, _ in EMAIL_MISSES])
def test_email_misses(why: str, text: str) -> None:
    assert found(text, "dlp.email") == []


PHONE_HITS = [
    ("phone: +1 415 555 2671", "+* *** *** **71", "e164"),
    ("mobile +44 20 7946 0958", "+** ** **** **58", "e164"),
    ("tel +14155552671", "+*********71", "e164"),
    ("call (415) 555-2671", "(***) ***-**71", "nanp"),
    ('"phone":"415-555-2671"', "***-***-**71", "nanp"),
    ("cell 415.555.2671", "***.***.**71", "nanp"),
    ("fax 1-415-555-2671", "*-***-***-**71", "nanp"),
    ("tel:+33 1 42 68 53 00", "+** * ** ** ** 00", "e164"),
]


@pytest.mark.parametrize(("text", "masked", "form"), PHONE_HITS)
def test_phone_hits(text: str, masked: str, form: str) -> None:
    matches = [m for m in ENGINE.scan(text.encode()) if m.sensor == "dlp.phone"]
    assert [(m.masked, m.label) for m in matches] == [(masked, form)]


PHONE_MISSES = [
    ("no context", "value 415-555-2671 here"),
    ("no context e164", "x +14155552671"),
    ("area code starts with 1", "phone 115-555-2671"),
    ("exchange starts with 0", "phone 415-055-2671"),
    ("N11 area", "phone 411-555-2671"),
    ("order key", '{"order": "415-555-2671"}'),
    ("part of a longer run", "phone 415-555-2671-99"),
    ("e164 too long", "phone +1234567890123456"),
    # issue 13: a context word nearby does not turn coordinates or fiction into a phone
    ("svg path coordinates", 'phone <path d="M 415 555 2671 L 10 10"/>'),
    ("svg path coordinates dotted", "phone path d='M 415.555.2671'"),
    ("reserved for fiction 555-01xx", "tel:+1-201-555-0123"),
    ("decimal after e164", "phone +1 415 555 2671.5"),
]


@pytest.mark.parametrize(("why", "text"), PHONE_MISSES, ids=[w for w, _ in PHONE_MISSES])
def test_phone_misses(why: str, text: str) -> None:
    assert found(text, "dlp.phone") == []


def test_test_card_numbers_can_be_ignored() -> None:
    strict = DlpEngine(ignore_test_cards=True)
    assert strict.scan(b"card 4111 1111 1111 1111") == []
    assert [m.masked for m in strict.scan(b"card 4539 5787 6362 1486")] == ["4539 **** **** 1486"]


def test_spans_are_exact() -> None:
    text = b'xx {"card":"5555-5555-5555-4444", "email":"alice@example.com"} yy'
    for m in ENGINE.scan(text):
        value = text[m.start : m.end].decode()
        assert value in ("5555-5555-5555-4444", "alice@example.com")


def test_the_card_run_class_is_digits_and_every_separator_byte() -> None:
    """``sensors.CARD_RUN_CLASS`` (the prefilters' runs, runscan.c's CRUN) holds exactly the
    digits and the bytes of ``sensors.CARD_SEPARATORS``; a card grouped with each is found."""
    import re

    from stockade.network.dlp.sensors import CARD_RUN_CLASS, CARD_SEPARATORS

    run = re.compile(CARD_RUN_CLASS.encode("latin-1"))
    members = {b for b in range(256) if run.fullmatch(bytes([b]))}
    assert members == set(b"0123456789") | {b for sep in CARD_SEPARATORS for b in sep}
    for sep in CARD_SEPARATORS:
        data = b"card " + sep.join([b"4111"] + [b"1111"] * 3) + b";"
        assert [m.masked for m in ENGINE.scan(data)] == [
            sep.decode("utf-8" if sep == b"\xc2\xa0" else "latin-1").join(
                ["4111", "****", "****", "1111"]
            )
        ]
