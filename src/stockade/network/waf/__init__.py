"""Virtual patching: WAF sensors as data, decoded and matched on HTTP requests (see docs/waf.md)."""

from __future__ import annotations

from .engine import WafEngine, WafMatch, WafStream
from .sensors import WafSensor, builtin_sensors, load_sensor_file, parse_sensors

__all__ = [
    "WafEngine",
    "WafMatch",
    "WafSensor",
    "WafStream",
    "builtin_sensors",
    "load_sensor_file",
    "parse_sensors",
]
