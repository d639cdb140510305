"""Registry credentials, found the way each registry issues them.

Order, first that answers wins:

1. ``--username``/``--password``: basic credentials.
2. ``--auth-token`` (``$STOCKADE_REGISTRY_AUTH_TOKEN``): a base64 ``USER:PASSWORD`` authorization
   token, as AWS ECR's ``GetAuthorizationToken`` issues it (``AWS:<password>``); used as basic.
3. ``--aad-token`` (``$STOCKADE_ACR_AAD_TOKEN``): an Azure AD access token, exchanged by the
   registry's ``/oauth2/exchange`` for an ACR refresh token (see :mod:`.registry_tokens`).
4. The docker CLI config (``--registry-config``, else ``$DOCKER_CONFIG/config.json``, else
   ``~/.docker/config.json``): ``credHelpers[host]``, then ``credsStore``, then ``auths[host]``
   (``auth`` = base64 ``user:pass``, or ``username``/``password``; ``identitytoken`` = an OAuth2
   refresh token).

A helper is run as the docker credential-helper protocol says: ``docker-credential-NAME get`` with
the server URL on stdin, answering JSON ``{ServerURL, Username, Secret}``; the username ``<token>``
marks the secret as an identity (refresh) token. It gets ``$STOCKADE_CREDENTIAL_HELPER_TIMEOUT``
seconds (default 30) and 64 KiB of output. Secrets never reach a message, a log line or a repr.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from stockade.model.errors import ConfigError, RegistryError

# Docker Hub answers under several names; its credentials are kept under one legacy key.
HUB_HOSTS = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)
HUB_CONFIG_KEY = "https://index.docker.io/v1/"
HELPER_TIMEOUT_ENV = "STOCKADE_CREDENTIAL_HELPER_TIMEOUT"
_DEFAULT_HELPER_TIMEOUT = 30.0
_MAX_HELPER_OUTPUT = 64 * 1024
_MAX_CONFIG = 4 * 1024 * 1024
_HELPER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_NOT_FOUND = "credentials not found"  # the protocol's standard "no entry" message


@dataclass(frozen=True, slots=True)
class Credential:
    """One credential for a registry. ``kind``: ``basic`` (username and password),
    ``refresh_token`` (an OAuth2 refresh/identity token) or ``aad_token`` (an Azure AD access
    token for ACR's exchange)."""

    kind: str
    username: str
    secret: str = field(repr=False)
    source: str = ""

    def __repr__(self) -> str:
        return f"Credential(kind={self.kind!r}, username={self.username!r}, source={self.source!r})"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthOptions:
    """What the user said about credentials (see the module docstring for the order)."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    auth_token: str | None = field(default=None, repr=False)
    aad_token: str | None = field(default=None, repr=False)
    config: str | None = None  # a docker config.json, or the folder holding one


def resolve_credential(host: str, options: AuthOptions) -> Credential | None:
    """The credential for ``host`` (``HOST[:PORT]`` as the user named it), or None."""
    if options.username is not None:
        return Credential("basic", options.username, options.password or "", "--username")
    if options.auth_token:
        user, password = _decode_basic(options.auth_token)
        if user is None:
            raise ConfigError(
                "--auth-token is not a base64 USER:PASSWORD authorization token "
                "(as `aws ecr get-authorization-token` returns)"
            )
        return Credential("basic", user, password, "--auth-token")
    if options.aad_token:
        return Credential("aad_token", "", options.aad_token, "--aad-token")
    return from_docker_config(host, config_path(options.config))


def config_path(explicit: str | None) -> Path:
    if explicit:
        path = Path(explicit)
        return path / "config.json" if path.is_dir() else path
    base = os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    return Path(base) / "config.json"


def server_key(host: str) -> str:
    """The key the docker CLI files ``host``'s credentials under (and gives a helper)."""
    return HUB_CONFIG_KEY if host in HUB_HOSTS else host


def from_docker_config(host: str, path: Path) -> Credential | None:
    try:
        with path.open("rb") as fh:
            raw = fh.read(_MAX_CONFIG + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RegistryError(
            f"cannot read docker credentials: {exc.strerror}", subject=str(path)
        ) from exc
    if len(raw) > _MAX_CONFIG:
        raise RegistryError("cannot read docker credentials: file too large", subject=str(path))
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise RegistryError(
            "cannot read docker credentials: not valid JSON", subject=str(path)
        ) from exc
    if not isinstance(doc, dict):
        raise RegistryError("cannot read docker credentials: not a JSON object", subject=str(path))
    key = server_key(host)
    helpers = doc.get("credHelpers")
    if isinstance(helpers, dict):
        for name in (key, host):
            if isinstance(helpers.get(name), str):
                return run_helper(helpers[name], key, str(path))
    store = doc.get("credsStore")
    if isinstance(store, str) and store:
        found = run_helper(store, key, str(path))
        if found is not None:
            return found
    return _from_auths(doc.get("auths"), host, str(path))


def _from_auths(auths: object, host: str, where: str) -> Credential | None:
    if not isinstance(auths, dict):
        return None
    for key, entry in auths.items():
        if _bare(str(key)) not in _aliases(host) or not isinstance(entry, dict):
            continue
        user, password = None, ""
        if entry.get("auth"):
            user, password = _decode_basic(str(entry["auth"]))
            if user is None:
                raise RegistryError(f"malformed auth for {host}", subject=where)
        elif entry.get("username"):
            user, password = str(entry["username"]), str(entry.get("password", ""))
        token = entry.get("identitytoken")
        if isinstance(token, str) and token:
            return Credential("refresh_token", user or "", token, f"{where} identitytoken")
        if user is not None:
            return Credential("basic", user, password, where)
    return None


def _bare(key: str) -> str:
    return re.sub(r"^https?://", "", key).split("/", 1)[0]


def _aliases(host: str) -> set[str]:
    return set(HUB_HOSTS) if host in HUB_HOSTS else {host}


def _decode_basic(text: str) -> tuple[str | None, str]:
    try:
        user, sep, password = base64.b64decode(text.strip(), validate=True).decode().partition(":")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None, ""
    return (user, password) if sep and user else (None, "")


def helper_timeout() -> float:
    raw = os.environ.get(HELPER_TIMEOUT_ENV)
    if not raw:
        return _DEFAULT_HELPER_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 600:
        raise ConfigError(f"${HELPER_TIMEOUT_ENV} must be a number of seconds in (0, 600]")
    return value


def run_helper(name: str, server_url: str, where: str) -> Credential | None:
    """``docker-credential-NAME get`` for ``server_url``: a credential, or None when the helper
    has none for it."""
    if not _HELPER_NAME.match(name):
        raise RegistryError(f"invalid credential helper name {name[:40]!r}", subject=where)
    program = f"docker-credential-{name}"
    path = shutil.which(program)
    if path is None:
        raise RegistryError(
            f"credential helper {program} (named in the docker config) is not on PATH",
            subject=where,
        )
    code, out = _run_bounded([path, "get"], server_url.encode(), helper_timeout(), program)
    if code != 0:
        message = _first_line(out)
        if _NOT_FOUND in message.lower():
            return None
        raise RegistryError(f"credential helper {program} failed (exit {code}): {message}")
    try:
        doc = json.loads(out)
        user, secret = doc["Username"], doc["Secret"]
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise RegistryError(
            f"credential helper {program} answered something other than the protocol's JSON "
            "{ServerURL, Username, Secret}"
        ) from exc
    if not isinstance(user, str) or not isinstance(secret, str) or not secret:
        raise RegistryError(f"credential helper {program} answered an empty or non-text secret")
    if user == "<token>":
        return Credential("refresh_token", "", secret, program)
    return Credential("basic", user, secret, program)


def _first_line(out: bytes) -> str:
    text = out.decode("utf-8", "replace").strip().splitlines()
    line = "".join(ch for ch in (text[0] if text else "") if ch.isprintable())
    return (line[:120] + "...") if len(line) > 120 else (line or "no message")


def _run_bounded(args: list[str], stdin: bytes, timeout: float, what: str) -> tuple[int, bytes]:
    """Run ``args`` feeding ``stdin``; stdout and the exit code, within ``timeout`` seconds and
    ``_MAX_HELPER_OUTPUT`` bytes. The whole process group is killed on overrun."""
    try:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own group: a helper's children die with it
        )
    except OSError as exc:
        raise RegistryError(f"cannot run credential helper {what}: {exc.strerror}") from exc
    assert proc.stdin is not None and proc.stdout is not None
    deadline = time.monotonic() + timeout
    try:
        try:
            proc.stdin.write(stdin)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # it did not read its input: its answer says what it thinks
        out = _read_until(proc, deadline, what, timeout)
        try:
            code = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise RegistryError(
                f"credential helper {what} did not finish within {timeout:g}s"
            ) from None
        return code, out
    finally:
        if proc.poll() is None:
            _kill_group(proc)
        proc.stdout.close()


def _read_until(proc: subprocess.Popen[bytes], deadline: float, what: str, timeout: float) -> bytes:
    assert proc.stdout is not None
    parts: list[bytes] = []
    size = 0
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                raise RegistryError(f"credential helper {what} did not answer within {timeout:g}s")
            chunk = os.read(proc.stdout.fileno(), 1 << 16)
            if not chunk:
                return b"".join(parts)
            size += len(chunk)
            if size > _MAX_HELPER_OUTPUT:
                raise RegistryError(
                    f"credential helper {what} answered more than {_MAX_HELPER_OUTPUT} bytes"
                )
            parts.append(chunk)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
