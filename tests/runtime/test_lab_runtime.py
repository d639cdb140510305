"""Process profiles on a real container (root): a profile learned in Discover, an unexpected
binary refused (fanotify) or killed (without it) in Protect with an event naming it, zero-drift
refusing or killing a binary copied into the running pod's root filesystem, and the built-in
suspicious list."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.runtime.conftest import cli, run_in_pod, start_watch

pytestmark = [pytest.mark.root, pytest.mark.slow]

KILLED = -9  # nsenter re-raises the signal that ended the command
# what the workload normally does: bash forks one sleep and execs the last one in place (each
# lives long enough for its executable to be read)
NORMAL = "/bin/sleep 0.3; /bin/sleep 0.2"


def _wait_for(watch, pred, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_discover_then_protect_kills_an_unexpected_binary(container_lab, tmp_path: Path) -> None:
    inv, state = container_lab
    profiles = tmp_path / "profiles.yaml"
    watch = start_watch(state, profiles)
    try:
        for _ in range(2):  # what the workload normally does; each lives long enough to be read
            assert run_in_pod(inv, ["/bin/bash", "-c", NORMAL]) == 0
        learned = tmp_path / "profiles.learned.yaml"
        assert _wait_for(watch, lambda: "/bin/sleep" in (
            learned.read_text() if learned.exists() else ""))  # fmt: skip
    finally:
        watch.stop()
    assert not [e for e in watch.events if e["kind"] != "process.unverified"], watch.events

    exported = cli("runtime", "profile", "export", "--profiles", str(profiles), "--learned",
                   "--mode", "protect")  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    text = exported.stdout
    assert "path: /bin/sleep" in text and "parent: /bin/bash" in text and "mode: protect" in text
    wanted = tmp_path / "orders.yaml"
    wanted.write_text(text)
    assert (
        cli("runtime", "profile", "diff", str(wanted), "--profiles", str(profiles)).returncode == 1
    )
    applied = cli("runtime", "profile", "apply", str(wanted), "--profiles", str(profiles))
    assert applied.returncode == 0, applied.stderr
    assert (
        cli("runtime", "profile", "diff", str(wanted), "--profiles", str(profiles)).returncode == 0
    )

    # where fanotify works (here), the exec is refused before anything of it runs
    watch = start_watch(state, profiles)
    try:
        assert "exec refusal on" in "".join(watch.stderr)
        assert run_in_pod(inv, ["/bin/bash", "-c", NORMAL]) == 0  # learned: runs
        code = run_in_pod(inv, ["/bin/bash", "-c", "/usr/bin/tail -f /dev/null; exit $?"])
        assert code == 126, code  # bash: Permission denied
        assert _wait_for(watch, lambda: "process.denied" in watch.kinds())
    finally:
        watch.stop()
    denied = [e for e in watch.events if e["kind"] == "process.denied"]
    assert [e["data"]["exe"] for e in denied] == ["/usr/bin/tail"], watch.events
    assert denied[0]["action"] == "deny" and denied[0]["data"]["reason"] == "not in the profile"
    assert "process.killed" not in watch.kinds()

    # without it, Protect kills right after the exec
    watch = start_watch(state, profiles, "--no-exec-gate")
    try:
        assert run_in_pod(inv, ["/bin/bash", "-c", NORMAL]) == 0
        started = time.monotonic()
        code = run_in_pod(inv, ["/bin/bash", "-c", "/usr/bin/tail -f /dev/null; exit $?"])
        assert code == 128 + 9, code  # bash saw its child killed
        assert time.monotonic() - started < 10
        assert _wait_for(watch, lambda: "process.killed" in watch.kinds())
    finally:
        watch.stop()
    killed = [e for e in watch.events if e["kind"] == "process.killed"]
    assert [e["data"]["exe"] for e in killed] == ["/usr/bin/tail"], watch.events
    event = killed[0]
    assert event["resource"]["name"] == "orders" and event["resource"]["namespace"] == "shop"
    assert event["mode"] == "protect" and event["action"] == "kill"
    assert event["data"]["parent"] == "/bin/bash" and len(event["data"]["sha256"]) == 64
    assert "/bin/sleep" not in {e["data"].get("exe") for e in watch.events}


def test_zero_drift_refuses_or_kills_a_binary_copied_into_the_running_pod(
    container_lab, tmp_path: Path
) -> None:
    inv, state = container_lab
    pod = inv.pod("orders")
    profiles = tmp_path / "profiles.yaml"
    zero = tmp_path / "zero.yaml"
    zero.write_text(
        "apiVersion: stockade.dev/v1\nkind: ProcessProfiles\nspec:\n  profiles:\n"
        "    - name: shop.orders\n      selector: {namespace: shop, pods: [orders]}\n"
        "      mode: protect\n      zeroDrift: true\n"
    )
    assert (
        cli("runtime", "profile", "apply", str(zero), "--profiles", str(profiles)).returncode == 0
    )
    dropped = Path(pod.root) / "tmp" / "dropped"
    shutil.copyfile(shutil.which("sleep") or "/bin/sleep", dropped)  # the host's, not the image's
    dropped.chmod(0o755)
    for extra, code, kind in (
        ((), 126, "process.denied"),
        (("--no-exec-gate",), 137, "process.killed"),
    ):
        watch = start_watch(state, profiles, *extra)
        try:
            # the image's own binaries run with nothing learned
            assert run_in_pod(inv, ["/bin/bash", "-c", NORMAL]) == 0
            assert run_in_pod(inv, ["/bin/bash", "-c", "/tmp/dropped 30; exit $?"]) == code
            assert _wait_for(watch, lambda: kind in watch.kinds())  # noqa: B023
        finally:
            watch.stop()
        hits = [e for e in watch.events if e["kind"] == kind]
        assert [e["data"]["exe"] for e in hits] == ["/tmp/dropped"], watch.events
        assert hits[0]["rule"] == "zero-drift" and hits[0]["data"]["reason"] == "not in the image"
        assert [e for e in watch.events if e["kind"] != kind] == [], watch.events
    dropped.unlink()


def test_a_package_manager_is_suspicious_in_every_mode(container_lab, tmp_path: Path) -> None:
    inv, state = container_lab
    profiles = tmp_path / "profiles.yaml"  # nothing applied: Discover, which learns nothing bad
    watch = start_watch(state, profiles)
    try:
        run_in_pod(inv, ["/bin/bash", "-c", "/usr/bin/dpkg --list >/dev/null; /bin/sleep 0.3"])
        assert _wait_for(watch, lambda: "process.suspicious" in watch.kinds())
    finally:
        watch.stop()
    hits = [e for e in watch.events if e["kind"] == "process.suspicious"]
    assert {e["rule"] for e in hits} == {"process.package_manager"}
    assert {e["mode"] for e in hits} == {"discover"} and hits[0]["data"]["parent"] == "/bin/bash"
    learned = tmp_path / "profiles.learned.yaml"
    assert "/usr/bin/dpkg" not in (learned.read_text() if learned.exists() else "")
    exes = {e["data"]["exe"] for e in hits}
    # dpkg --list execs dpkg-query in place: the process is read as one or the other (or both)
    assert exes and exes <= {"/usr/bin/dpkg", "/usr/bin/dpkg-query"}


def _zero_drift(mode: str) -> str:
    return (
        "apiVersion: stockade.dev/v1\nkind: ProcessProfiles\nspec:\n  profiles:\n"
        "    - name: shop.orders\n      selector: {namespace: shop, pods: [orders]}\n"
        f"      mode: {mode}\n      zeroDrift: true\n      files: [/app/*.json]\n"
    )


def test_writing_etc_passwd_in_the_pod_is_an_event_and_denied_in_protect(
    container_lab, tmp_path: Path
) -> None:
    inv, state = container_lab
    passwd = Path(inv.pod("orders").root) / "etc" / "passwd"
    before = passwd.read_bytes()
    assert before.startswith(b"root:x:0:0:")
    profiles, spec = tmp_path / "profiles.yaml", tmp_path / "p.yaml"
    write = "echo 'evil:x:0:0::/:/bin/bash' >> /etc/passwd; exit $?"

    spec.write_text(_zero_drift("monitor"))
    assert (
        cli("runtime", "profile", "apply", str(spec), "--profiles", str(profiles)).returncode == 0
    )
    watch = start_watch(state, profiles)
    try:
        assert "file monitoring on" in "".join(watch.stderr)
        assert run_in_pod(inv, ["/bin/bash", "-c", "/bin/cat /etc/passwd >/dev/null"]) == 0
        assert run_in_pod(inv, ["/bin/bash", "-c", write]) == 0  # Monitor: it happens
        assert _wait_for(watch, lambda: "file.violation" in watch.kinds())
    finally:
        watch.stop()
    hits = [e for e in watch.events if e["kind"].startswith("file.")]
    assert [(e["kind"], e["data"]["path"], e["data"]["exe"]) for e in hits] == [
        ("file.violation", "/etc/passwd", "/bin/bash")
    ], watch.events  # reading it raised nothing
    assert b"evil:x:0:0" in passwd.read_bytes()  # the pod's own copy (the overlay's upper layer)

    spec.write_text(_zero_drift("protect"))
    assert (
        cli("runtime", "profile", "apply", str(spec), "--profiles", str(profiles)).returncode == 0
    )
    after_monitor = passwd.read_bytes()
    watch = start_watch(state, profiles)
    try:
        assert run_in_pod(inv, ["/bin/bash", "-c", write]) == 1  # bash: Permission denied
        assert run_in_pod(inv, ["/bin/bash", "-c", "echo x >> /app/package.json; exit $?"]) == 1
        assert run_in_pod(inv, ["/bin/bash", "-c", "echo x > /tmp/scratch; exit $?"]) == 0
        assert _wait_for(watch, lambda: watch.kinds().count("file.denied") == 2)
    finally:
        watch.stop()
    assert passwd.read_bytes() == after_monitor and after_monitor.startswith(before)
    denied = [e for e in watch.events if e["kind"] == "file.denied"]
    assert [e["data"]["path"] for e in denied] == ["/etc/passwd", "/app/package.json"]
    assert {e["action"] for e in denied} == {"deny"}
