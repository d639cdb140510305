"""Client TLS contexts for the notifiers: the system's trust store or a named CA file, certificate
verification and host names always checked, an optional client certificate (mutual TLS)."""

from __future__ import annotations

import ssl

from stockade.events.notify.interface import NotifyError


def client_context(
    ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None
) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if cert_file:
            context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        # A missing or unreadable file: no retry will find it.
        reason = getattr(exc, "strerror", None) or " ".join(str(exc).split())
        raise NotifyError(f"cannot load TLS files: {reason}", retryable=False) from None
    return context
