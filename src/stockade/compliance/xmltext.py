"""XML 1.0 forbids most control characters, and manifests may contain them (YAML ``"\\x01"``)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def clean(text: str) -> str:
    """``text`` with characters XML cannot carry replaced by U+FFFD."""
    return _INVALID.sub("\ufffd", text)


def tostring(root: ET.Element) -> str:
    """Serialize with every attribute and text made XML-safe."""
    for el in root.iter():
        if el.text:
            el.text = clean(el.text)
        for key, value in el.attrib.items():
            el.set(key, clean(value))
    return ET.tostring(root, encoding="unicode", xml_declaration=True)
