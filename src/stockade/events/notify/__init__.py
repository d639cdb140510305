"""Telling people: notification targets (webhook, Slack, Teams, syslog, email, Alertmanager) as data,
delivery with retries and a dead-letter list. See docs/notifications.md."""

from stockade.events.notify.dispatch import deliver, send_test
from stockade.events.notify.interface import Delivery, NotifyError, RetryPolicy, Target
from stockade.events.notify.targets import load_targets

__all__ = [
    "Delivery",
    "NotifyError",
    "RetryPolicy",
    "Target",
    "deliver",
    "load_targets",
    "send_test",
]
