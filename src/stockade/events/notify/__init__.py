"""Telling people: notification targets (webhook, Slack, Teams, syslog, email, Alertmanager) as data,
delivery with retries and a dead-letter list. See docs/notifications.md.

The notifiers (``deliver``, ``send_test``, ``load_targets``) are imported on first use: the
controller imports the value types and the dead-letter list at its start and sends, or reads a
targets file, later if ever."""

from typing import Any

from stockade.events.notify.interface import Delivery, NotifyError, RetryPolicy, Target

__all__ = [
    "Delivery",
    "NotifyError",
    "RetryPolicy",
    "Target",
    "deliver",
    "load_targets",
    "send_test",
]


def __getattr__(name: str) -> Any:
    if name in ("deliver", "send_test"):
        from stockade.events.notify import dispatch

        return getattr(dispatch, name)
    if name == "load_targets":
        from stockade.events.notify.targets import load_targets

        return load_targets
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
