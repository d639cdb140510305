"""The shared vocabulary of Stockade. Imports nothing else from the project."""

from stockade.model.errors import (
    AdvisoryError,
    ConfigError,
    DigestMismatch,
    DocumentTooComplex,
    EnforcementError,
    ImageError,
    InputError,
    PacketError,
    RegistryError,
    StaleDataError,
    StockadeError,
    StoreError,
    UnsafeImage,
    UsageError,
)
from stockade.model.finding import Details, Event, Finding, Pillar, Status
from stockade.model.resource import ResourceRef
from stockade.model.severity import Severity

__all__ = [
    "AdvisoryError",
    "ConfigError",
    "Details",
    "DigestMismatch",
    "DocumentTooComplex",
    "EnforcementError",
    "Event",
    "Finding",
    "ImageError",
    "InputError",
    "PacketError",
    "Pillar",
    "RegistryError",
    "ResourceRef",
    "Severity",
    "StaleDataError",
    "Status",
    "StockadeError",
    "StoreError",
    "UnsafeImage",
    "UsageError",
]
