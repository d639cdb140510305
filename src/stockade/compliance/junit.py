"""The one JUnit XML writer: CIS runs, workload checks and framework reports all become
``testsuites`` > ``testsuite`` > ``testcase`` through it, so CI systems read them the same way.

XML 1.0 forbids most control characters, and manifests may contain them (YAML ``"\\x01"``): every
attribute and text is made XML-safe here.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Outcome = Literal["pass", "failure", "error", "skipped"]

_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def clean(text: str) -> str:
    """``text`` with characters XML cannot carry replaced by U+FFFD."""
    return _INVALID.sub("\ufffd", text)


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    suite: str
    classname: str
    name: str
    outcome: Outcome = "pass"
    message: str = ""
    type: str = ""  # of a failure: the severity
    text: str = ""  # body of the failure/error element, or system-out of a passing case


def junit_xml(name: str, cases: Iterable[Case], *, suites: Iterable[str] = ()) -> str:
    """``cases`` grouped by suite, in order of first appearance (``suites`` may name suites up
    front, so an empty one still appears); counts on every suite and on the root."""
    root = ET.Element("testsuites", name=name)
    by_suite: dict[str, ET.Element] = {s: ET.SubElement(root, "testsuite", name=s) for s in suites}
    counts: dict[str, dict[str, int]] = {s: _zero() for s in by_suite}
    for c in cases:
        if c.suite not in by_suite:
            by_suite[c.suite] = ET.SubElement(root, "testsuite", name=c.suite)
            counts[c.suite] = _zero()
        case = ET.SubElement(by_suite[c.suite], "testcase", classname=c.classname, name=c.name)
        n = counts[c.suite]
        n["tests"] += 1
        if c.outcome == "failure":
            el = ET.SubElement(case, "failure", message=c.message, type=c.type)
            el.text = c.text or None
            n["failures"] += 1
        elif c.outcome == "error":
            el = ET.SubElement(case, "error", message=c.message)
            el.text = c.text or None
            n["errors"] += 1
        elif c.outcome == "skipped":
            ET.SubElement(case, "skipped", message=c.message)
            n["skipped"] += 1
        elif c.text:
            ET.SubElement(case, "system-out").text = c.text
    total = _zero()
    for suite, n in counts.items():
        for k, v in n.items():
            by_suite[suite].set(k, str(v))
            total[k] += v
    for k, v in total.items():
        root.set(k, str(v))
    for el in root.iter():
        if el.text:
            el.text = clean(el.text)
        for key, value in el.attrib.items():
            el.set(key, clean(value))
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def _zero() -> dict[str, int]:
    return {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
