"""PostgreSQL and Redis from Debian, run inside a lab pod when they are installed."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import time
from pathlib import Path

from stockade.model.errors import EnforcementError
from stockade.network.netns import in_ns, run

DATA_ROOT = Path("/var/lib/stockade-lab")


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return Path(found[-1]) if found else None


def postgres_available() -> bool:
    """Debian's server binaries and the ``postgres`` user it runs as are both there."""
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return postgres_bin() is not None


def redis_bin() -> str | None:
    return shutil.which("redis-server")


def spawn_service(args: list[str], log: Path) -> int:
    """Start a long-lived service in its own session; returns its pid (no Popen object to
    outlive, the lab tracks services by pid)."""
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    return os.posix_spawnp(args[0], args, os.environ, file_actions=actions, setsid=True)


def start_postgres(
    netns: str, prefix: str, ipv4: str, ipv6: str, cert: Path, key: Path, port: int = 5432
) -> int:
    """initdb (once) under DATA_ROOT, then run postgres as user postgres in ``netns``; returns its pid."""
    binary = postgres_bin()
    if binary is None:
        raise EnforcementError("PostgreSQL is not installed")
    bindir = binary.parent
    pg = pwd.getpwnam("postgres")
    base = DATA_ROOT / f"{prefix}pg"
    data = base / "data"
    sock = base / "sock"
    if not (data / "PG_VERSION").exists():
        shutil.rmtree(base, ignore_errors=True)
        data.mkdir(parents=True)
        sock.mkdir()
        for p in (base, data, sock):
            os.chown(p, pg.pw_uid, pg.pw_gid)
        run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            timeout=120,
        )
        # lab traffic may come from any pod: trust inside the lab, TLS optional (sslmode decides)
        with open(data / "pg_hba.conf", "a", encoding="utf-8") as hba:
            hba.write("host all all 0.0.0.0/0 trust\nhost all all ::/0 trust\n")
    for name, src in (("server.crt", cert), ("server.key", key)):
        dst = data / name
        shutil.copyfile(src, dst)
        os.chown(dst, pg.pw_uid, pg.pw_gid)
        dst.chmod(0o600)
    args = in_ns(
        netns,
        "runuser",
        "-u",
        "postgres",
        "--",
        str(binary),
        "-D",
        str(data),
        "-c",
        f"listen_addresses={ipv4},{ipv6}",
        "-c",
        f"port={port}",
        "-c",
        f"unix_socket_directories={sock}",
        "-c",
        "ssl=on",
        "-c",
        "fsync=off",
        "-c",
        "max_connections=30",
        "-c",
        "shared_buffers=16MB",
    )
    pid = spawn_service(args, base / "postgres.log")
    _wait_port(netns, ipv4, port, 30)
    return pid


def start_redis(netns: str, prefix: str, ipv4: str, ipv6: str, port: int = 6379) -> int:
    binary = redis_bin()
    if binary is None:
        raise EnforcementError("redis-server is not installed")
    base = DATA_ROOT / f"{prefix}redis"
    base.mkdir(parents=True, exist_ok=True)
    conf = base / "redis.conf"
    conf.write_text(
        f'bind {ipv4} {ipv6}\nport {port}\nprotected-mode no\nsave ""\nappendonly no\n'
        f'daemonize no\ndir {base}\nlogfile ""\n',
        encoding="utf-8",
    )
    pid = spawn_service(in_ns(netns, binary, str(conf)), base / "redis.log")
    _wait_port(netns, ipv4, port, 15)
    return pid


def _wait_port(netns: str, ip: str, port: int, timeout: float, *, udp: bool = False) -> None:
    """Poll with ``ss`` in the namespace until something listens on the port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = run(
            in_ns(netns, "ss", "-Hlun" if udp else "-Hltn", f"sport = :{port}"), check=False
        ).stdout
        if out.strip():
            return
        time.sleep(0.1)
    raise EnforcementError(f"nothing listens on {ip or '*'}:{port} in {netns} after {timeout:.0f}s")


def remove_data(prefix: str) -> None:
    for name in (f"{prefix}pg", f"{prefix}redis"):
        shutil.rmtree(DATA_ROOT / name, ignore_errors=True)
