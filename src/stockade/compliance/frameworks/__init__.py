"""Compliance frameworks (PCI DSS 4.0, HIPAA Security Rule, GDPR, NIST SP 800-190) mapped to check
IDs as data, and reports that show which requirements the stored results evidence."""

from stockade.compliance.frameworks.evaluate import Report, evaluate, latest
from stockade.compliance.frameworks.model import (
    FRAMEWORKS,
    Framework,
    Requirement,
    load,
    matches,
    parse,
)

__all__ = [
    "FRAMEWORKS",
    "Framework",
    "Report",
    "Requirement",
    "evaluate",
    "latest",
    "load",
    "matches",
    "parse",
]
