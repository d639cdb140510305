"""Data loss prevention: sensors as data, validators, and a stream engine per flow direction."""

from __future__ import annotations

from .engine import BACKENDS, DlpEngine, DlpStream, hyperscan_available
from .sensors import BUILTIN_SENSORS, Sensor, load_sensor_file, sensor_from_dict

__all__ = [
    "BACKENDS",
    "BUILTIN_SENSORS",
    "DlpEngine",
    "DlpStream",
    "Sensor",
    "hyperscan_available",
    "load_sensor_file",
    "sensor_from_dict",
]
