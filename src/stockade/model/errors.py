"""The error tree shared by every pillar.

    StockadeError                 exit 3 unless a subclass says otherwise
    ├── UsageError                exit 2: bad arguments or options
    ├── ConfigError               exit 2: a configuration or policy file is wrong
    ├── InputError                exit 3: an input the user named is unreadable or hostile
    │   ├── DocumentTooComplex    a YAML/JSON document nested too deep, too large or expanding
    │   ├── ImageError            an image is malformed, truncated, unsafe or unreachable
    │   │   ├── DigestMismatch    a blob's bytes do not hash to its digest
    │   │   └── UnsafeImage       path traversal, escaping symlink, decompression bomb
    │   ├── RegistryError         the registry answered with an error (401, 404, ...)
    │   ├── AdvisoryError         an advisory file cannot be imported
    │   └── PacketError           a capture file cannot be read
    ├── StoreError                exit 3: the database cannot be opened or migrated
    ├── StaleDataError            exit 3: the data needed to answer is missing or too old
    └── EnforcementError          exit 3: kernel rules could not be applied or removed

Every error carries a one-line message meant for the user; the CLI prints it as
``stockade: error: <message>`` and exits with ``exit_code``. An error about a file names it as
``subject`` and, when known, the 1-based ``line``: ``policy.yaml:14: <message>``. Third-party
exceptions are wrapped once, at the adapter that called the library, with the original as
``__cause__``.
"""

from __future__ import annotations


class StockadeError(Exception):
    """Root of every error Stockade raises on purpose."""

    exit_code: int = 3

    def __init__(
        self, message: str, *, subject: str | None = None, line: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.subject = subject
        self.line = line

    def __str__(self) -> str:
        if self.subject and self.line:
            return f"{self.subject}:{self.line}: {self.message}"
        if self.subject:
            return f"{self.subject}: {self.message}"
        return self.message


class UsageError(StockadeError):
    exit_code = 2


class ConfigError(StockadeError):
    exit_code = 2


class InputError(StockadeError):
    exit_code = 3


class DocumentTooComplex(InputError):
    """A YAML or JSON document over the loader's limits (nesting, size, alias expansion)."""


class ImageError(InputError):
    pass


class DigestMismatch(ImageError):
    pass


class UnsafeImage(ImageError):
    pass


class RegistryError(InputError):
    pass


class AdvisoryError(InputError):
    pass


class PacketError(InputError):
    pass


class StoreError(StockadeError):
    exit_code = 3


class StaleDataError(StockadeError):
    exit_code = 3


class EnforcementError(StockadeError):
    exit_code = 3
