"""A guard for the HTTP clients that download images and advisories: never follow a redirect that
leaves HTTPS. Registries and mirrors redirect blob and file downloads to storage hosts; a redirect to
``http://`` would send the request (and trust the answer) in clear, whatever the user asked for."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from stockade.model.errors import InputError


def refuse_https_downgrade(
    error: Callable[[str], InputError],
) -> Callable[[httpx.Response], None]:
    """An httpx response hook raising ``error(message)`` on a redirect from HTTPS to another scheme."""

    def hook(response: httpx.Response) -> None:
        if not response.has_redirect_location or response.request.url.scheme != "https":
            return
        try:
            target = response.request.url.join(response.headers["location"])
        except (httpx.InvalidURL, ValueError):
            return  # httpx refuses the redirect itself
        if target.scheme != "https":
            port = f":{target.port}" if target.port else ""
            shown = f"{target.scheme}://{target.host}{port}{target.path}"[:200]
            raise error(f"refusing a redirect from HTTPS to {shown} (plain or unknown scheme)")

    return hook
