"""build_inventory on the real sample image: every source form, merge semantics, layer cache."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pytest

from stockade.lab.samples import SampleImage, sample_layers
from stockade.model.errors import DigestMismatch, ImageError
from stockade.scanning.imagewrite import Layer, image_config, write_docker_archive, write_oci_layout
from stockade.scanning.inventory import build_inventory
from stockade.store import Store
from tests.scanning.conftest import layer_of
from tests.scanning.simple_catalogers import DpkgStatus, PythonMetadata, all_catalogers

SITE = "/usr/local/lib/python3.11/site-packages"


def _names(inv, kind: str) -> set[tuple[str, str]]:
    return {(p.name, p.version) for p in inv.packages if p.type == kind}


def test_every_local_form_gives_the_same_inventory(sample: SampleImage, catalogers: list) -> None:
    results = [build_inventory(ref, catalogers=catalogers) for ref in sample.refs()]
    first = results[0]
    assert first.image is not None and len(first.image.layers) == 5
    assert first.distro is not None and (first.distro.id, first.distro.version_id) == (
        "debian",
        "12",
    )
    for other in results[1:]:
        assert {(p.type, p.name, p.version, p.locations, p.layer) for p in other.packages} == {
            (p.type, p.name, p.version, p.locations, p.layer) for p in first.packages
        }
        assert other.image is not None and other.image.config_digest == first.image.config_digest
        assert [la.diff_id for la in other.image.layers] == [
            la.diff_id for la in first.image.layers
        ]


def test_sample_content_and_whiteouts(sample: SampleImage, catalogers: list) -> None:
    inv = build_inventory(sample.refs()[0], catalogers=catalogers)
    debs = _names(inv, "deb")
    assert len(debs) == 23 and ("bash", next(v for n, v in debs if n == "bash")) in debs
    python = _names(inv, "python")
    assert ("six", "1.16.0") in python  # from the egg-info
    assert ("requests", "2.31.0") in python
    assert not any(n == "attrs" for n, _ in python)  # whited out by layer 5
    npm = {(p.name, p.version, p.locations[0]) for p in inv.packages if p.type == "npm"}
    nested = "/app/node_modules/debug/node_modules/ms/package.json"
    assert ("ms", "2.1.2", nested) in npm  # put in the opaque directory by layer 5
    assert ("ms", "2.0.0", nested) not in npm  # hidden by the opaque directory
    assert ("ms", "2.1.3", "/app/node_modules/ms/package.json") in npm
    layers = [la.diff_id for la in inv.image.layers]
    by_name = {(p.type, p.name, p.version): p.layer for p in inv.packages}
    assert by_name[("deb", "bash", next(v for n, v in debs if n == "bash"))] == layers[0]
    assert by_name[("python", "six", "1.16.0")] == layers[1]
    assert by_name[("npm", "lodash", "4.17.21")] == layers[2]
    assert by_name[("npm", "ms", "2.1.2")] == layers[4]
    # /etc/os-release is a symlink to ../usr/lib/os-release, resolved inside the image
    assert by_name[("os", "debian", "12")] == layers[0]


def test_layer_is_the_first_one_with_the_package(tmp_path: Path) -> None:
    status = "Package: demo\nStatus: install ok installed\nVersion: 1.0\n"
    other = "Package: other\nStatus: install ok installed\nVersion: 2.0\n"
    base = layer_of(("f", "var/lib/dpkg/status", status))
    # layer 2 rewrites the status file with one more package: demo stays dated to layer 1
    upper = layer_of(("f", "var/lib/dpkg/status", status + "\n" + other))
    path = write_docker_archive(tmp_path / "a.tar", [base, upper], repo_tag="t/x:1")
    inv = build_inventory(f"docker-archive:{path}", catalogers=[DpkgStatus()])
    got = {(p.name, p.layer) for p in inv.packages}
    assert got == {("demo", base.diff_id), ("other", upper.diff_id)}


@pytest.mark.parametrize(
    ("upper_entries", "visible"),
    [
        ([("f", f"{SITE[1:]}/.wh.pkg-1.0.dist-info", b"")], False),  # whiteout of the dir
        ([("f", f"{SITE[1:]}/.wh..wh..opq", b"")], False),  # opaque parent
        ([("f", "usr/local/lib/.wh.python3.11", b"")], False),  # whiteout of an ancestor
        ([("f", "usr/local/lib/python3.11", b"not a dir any more")], False),  # ancestor replaced
        ([("f", f"{SITE[1:]}/.wh.other-2.0.dist-info", b"")], True),  # unrelated whiteout
        ([("f", f"{SITE[1:]}/pkg-1.0.dist-info/.wh.RECORD", b"")], True),  # sibling deleted only
    ],
)
def test_whiteout_semantics(tmp_path: Path, upper_entries: list, visible: bool) -> None:
    meta = "Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n\n"
    base = layer_of(
        ("f", f"{SITE[1:]}/pkg-1.0.dist-info/METADATA", meta),
        ("f", f"{SITE[1:]}/pkg-1.0.dist-info/RECORD", ""),
    )
    upper = layer_of(*upper_entries)
    path = write_oci_layout(tmp_path / "img", [("t", [base, upper], None)])
    inv = build_inventory(f"oci:{path}:t", catalogers=[PythonMetadata()])
    assert bool(inv.packages) is visible


def test_opaque_dir_keeps_its_own_layer_content(tmp_path: Path) -> None:
    meta = "Metadata-Version: 2.1\nName: {n}\nVersion: 1.0\n\n"
    base = layer_of(("f", f"{SITE[1:]}/old-1.0.dist-info/METADATA", meta.format(n="old")))
    upper = layer_of(
        ("f", f"{SITE[1:]}/.wh..wh..opq", b""),
        ("f", f"{SITE[1:]}/new-1.0.dist-info/METADATA", meta.format(n="new")),
    )
    path = write_oci_layout(tmp_path / "img", [("t", [base, upper], None)])
    inv = build_inventory(f"oci:{path}:t", catalogers=[PythonMetadata()])
    assert [p.name for p in inv.packages] == ["new"]


def test_cache_reuse_and_shared_base_layer(
    sample: SampleImage, tmp_path: Path, sqlite_store: Store
) -> None:
    ref = sample.refs()[2]
    cold = build_inventory(ref, catalogers=all_catalogers(), store=sqlite_store)
    assert (cold.read_layers, cold.cached_layers) == (5, 0)
    warm = build_inventory(ref, catalogers=all_catalogers(), store=sqlite_store)
    assert (warm.read_layers, warm.cached_layers) == (0, 5)
    assert warm.packages == cold.packages and warm.distro == cold.distro
    # the same layers through another container format hit the same cache rows
    other_form = build_inventory(sample.refs()[0], catalogers=all_catalogers(), store=sqlite_store)
    assert other_form.read_layers == 0
    # an image that shares the Debian base layer reads only its own new layer
    base = Layer(tar=sample_layers()[0].tar, compression="none")  # same diff id, no recompression
    extra = layer_of(
        ("f", "var/lib/dpkg/status", "Package: x\nStatus: install ok installed\nVersion: 9\n")
    )
    derived = write_oci_layout(tmp_path / "derived", [("t", [base, extra], None)])
    inv = build_inventory(f"oci:{derived}:t", catalogers=all_catalogers(), store=sqlite_store)
    assert (inv.read_layers, inv.cached_layers) == (1, 1)
    assert _names(inv, "deb") == {("x", "9")}  # the upper status file replaced the base one
    assert inv.distro is not None and inv.distro.id == "debian"  # os-release from the cached base


def test_cataloger_version_is_part_of_the_cache_key(sample: SampleImage, any_store: Store) -> None:
    ref = sample.refs()[3]
    build_inventory(ref, catalogers=[DpkgStatus()], store=any_store)
    assert build_inventory(ref, catalogers=[DpkgStatus()], store=any_store).read_layers == 0

    class DpkgV2(DpkgStatus):
        version = 2

    assert build_inventory(ref, catalogers=[DpkgV2()], store=any_store).read_layers == 5


def test_warm_scan_reads_no_blob(sample: SampleImage, tmp_path: Path, sqlite_store: Store) -> None:
    """Every layer cached: the layer blobs may even be gone, only manifest and config are read."""
    copy = tmp_path / "img"
    shutil.copytree(sample.oci_dir, copy)
    ref = f"oci:{copy}:1"
    cold = build_inventory(ref, catalogers=all_catalogers(), store=sqlite_store)
    for layer in cold.image.layers:
        (copy / "blobs" / layer.digest.replace(":", "/")).unlink()
    warm = build_inventory(ref, catalogers=all_catalogers(), store=sqlite_store)
    assert warm.read_layers == 0 and warm.packages == cold.packages
    with pytest.raises(ImageError, match="missing blob"):
        build_inventory(ref, catalogers=all_catalogers())  # without the cache the loss shows


def test_docker_archive_config_without_diff_ids(tmp_path: Path) -> None:
    layers = [layer_of(("f", "x", b"1"))]
    path = write_docker_archive(
        tmp_path / "d.tar", layers, repo_tag="x/y:1", config=b'{"rootfs": {}}'
    )
    with pytest.raises(ImageError, match=r"no rootfs\.diff_ids"):
        build_inventory(f"docker-archive:{path}", catalogers=all_catalogers())


def test_docker_archive_config_digest_mismatch(tmp_path: Path) -> None:
    layers = [layer_of(("f", "x", b"1"))]
    path = write_docker_archive(tmp_path / "d.tar", layers, repo_tag="x/y:1")
    # rewrite the archive with the config changed but still stored under its old name
    with tarfile.open(path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(path, "w") as tar:
        for member, data in members:
            if member.name.endswith(".json") and member.name != "manifest.json":
                data = data.replace(b'"amd64"', b'"arm64"')
            tar.addfile(member, io.BytesIO(data))
    with pytest.raises(DigestMismatch, match="config"):
        build_inventory(f"docker-archive:{path}", catalogers=all_catalogers())


def test_layer_count_mismatch(tmp_path: Path) -> None:
    layers = [layer_of(("f", "x", b"1")), layer_of(("f", "y", b"2"))]
    config = image_config(layers[:1])
    path = write_docker_archive(tmp_path / "d.tar", layers, repo_tag="x/y:1", config=config)
    with pytest.raises(ImageError, match="2 layers, the config 1 diff ids"):
        build_inventory(f"docker-archive:{path}", catalogers=all_catalogers())


def test_not_an_archive(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"\x1f\x8b" + b"junk" * 100)
    with pytest.raises(ImageError, match="compressed"):
        build_inventory(f"docker-archive:{junk}", catalogers=all_catalogers())
    junk.write_bytes(b"junk" * 1000)
    with pytest.raises(ImageError, match="not a readable tar"):
        build_inventory(f"docker-archive:{junk}", catalogers=all_catalogers())
    with pytest.raises(ImageError, match="no such file"):
        build_inventory(f"docker-archive:{tmp_path / 'none.tar'}", catalogers=all_catalogers())
    with pytest.raises(ImageError, match=r"no index\.json"):
        build_inventory(f"oci:{tmp_path}", catalogers=all_catalogers())


def test_wanted_hard_link_to_an_unwanted_file(tmp_path: Path) -> None:
    """The tar stores the bytes under the first name; a wanted second name still gets them."""
    status = "Package: linked\nStatus: install ok installed\nVersion: 3\n"
    layer = layer_of(
        ("f", "srv/blob", status),
        ("h", "var/lib/dpkg/status", "srv/blob"),
    )
    path = write_oci_layout(tmp_path / "img", [("t", [layer], None)])
    inv = build_inventory(f"oci:{path}:t", catalogers=[DpkgStatus()])
    assert [(p.name, p.locations) for p in inv.packages] == [("linked", ("/var/lib/dpkg/status",))]
    assert inv.skipped == ()


def test_symlinked_wanted_file_is_read_once_and_cached(tmp_path: Path, sqlite_store: Store) -> None:
    """A wanted symlink to a file no cataloger reads: its bytes are fetched once and cached."""
    status = "Package: via-link\nStatus: install ok installed\nVersion: 4\n"
    base = layer_of(("f", "data/real-status", status))
    upper = layer_of(("l", "var/lib/dpkg/status", "/data/real-status"))
    path = write_oci_layout(tmp_path / "img", [("t", [base, upper], None)])
    ref = f"oci:{path}:t"
    cold = build_inventory(ref, catalogers=[DpkgStatus()], store=sqlite_store)
    assert [(p.name, p.layer) for p in cold.packages] == [("via-link", upper.diff_id)]
    for blob in (path / "blobs/sha256").iterdir():
        if blob.name in (base.blob_digest()[7:], upper.blob_digest()[7:]):
            blob.unlink()
    warm = build_inventory(ref, catalogers=[DpkgStatus()], store=sqlite_store)
    assert warm.read_layers == 0 and warm.packages == cold.packages


def test_oci_archive_given_as_docker_archive(sample: SampleImage, catalogers: list) -> None:
    """`skopeo copy ... oci-archive:x.tar` output has no manifest.json: it is read as a layout."""
    inv = build_inventory(f"docker-archive:{sample.oci_tar}", catalogers=catalogers)
    assert len(inv.packages) == len(
        build_inventory(sample.refs()[0], catalogers=catalogers).packages
    )


def test_unreadable_cache_row_is_a_miss(sample: SampleImage, sqlite_store: Store) -> None:
    from sqlalchemy import update

    from stockade.scanning.tables import layer_cache

    ref = sample.refs()[2]
    cold = build_inventory(ref, catalogers=all_catalogers(), store=sqlite_store)
    with sqlite_store.begin() as conn:
        second = layer_cache.c.diff_id == cold.image.layers[1].diff_id
        conn.execute(update(layer_cache).where(second).values(data=b"not zlib"))
    again = build_inventory(ref, catalogers=all_catalogers(), store=sqlite_store)
    assert (again.read_layers, again.cached_layers) == (1, 4)
    assert again.packages == cold.packages
    assert build_inventory(ref, catalogers=all_catalogers(), store=sqlite_store).read_layers == 0


class _Recorder:
    def __init__(self) -> None:
        self.tasks: dict[int, list] = {}

    def task(self, description: str, total: int | None = None) -> object:
        handle = len(self.tasks)
        self.tasks[handle] = [description, total, 0, False]
        return handle

    def advance(self, handle: object, amount: int = 1) -> None:
        self.tasks[handle][2] += amount  # type: ignore[index]

    def finish(self, handle: object) -> None:
        self.tasks[handle][3] = True  # type: ignore[index]


def test_observer_sees_every_layer_byte(sample: SampleImage) -> None:
    recorder = _Recorder()
    inv = build_inventory(sample.refs()[2], catalogers=all_catalogers(), observer=recorder)
    sizes = [layer.size for layer in inv.image.layers]
    assert [t[1] for t in recorder.tasks.values()] == sizes
    assert [t[2] for t in recorder.tasks.values()] == sizes  # compressed bytes streamed
    assert all(t[3] for t in recorder.tasks.values())


def test_warm_rescan_on_the_fast_sqlite_path(
    sample: SampleImage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows written through SQLAlchemy are read through sqlite3 and back; a warm re-scan in a
    fresh process does not import SQLAlchemy at all."""
    import subprocess
    import sys

    from stockade.store import open_store

    # no template of a new store (stockade.store.template): this one migrates through SQLAlchemy
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    url = f"sqlite:///{tmp_path / 'cache.db'}"
    ref = sample.refs()[0]
    slow = open_store(url)
    assert slow.sqlite_path is None
    cold = build_inventory(ref, catalogers=all_catalogers(), store=slow)
    slow.close()
    fast = open_store(url)
    assert fast.sqlite_path is not None
    warm = build_inventory(ref, catalogers=all_catalogers(), store=fast)
    assert warm.read_layers == 0 and warm.packages == cold.packages
    other = build_inventory(sample.refs()[2], catalogers=[DpkgStatus()], store=fast)  # writes
    assert other.read_layers == 5 and not fast.engine_started
    fast.close()
    from stockade.store.db import Store as _Store
    from stockade.store.db import _create_engine

    through_sqlalchemy = _Store(_create_engine(url))  # SQLAlchemy reads the rows sqlite3 wrote
    again = build_inventory(sample.refs()[2], catalogers=[DpkgStatus()], store=through_sqlalchemy)
    assert again.read_layers == 0 and again.packages == other.packages
    through_sqlalchemy.close()
    code = (
        "import sys\n"
        "from stockade.store import open_store\n"
        "from stockade.scanning.inventory import build_inventory\n"
        "from tests.scanning.simple_catalogers import all_catalogers\n"
        f"inv = build_inventory({ref!r}, catalogers=all_catalogers(), store=open_store({url!r}))\n"
        "assert inv.read_layers == 0, inv.read_layers\n"
        "assert 'sqlalchemy' not in sys.modules\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {"PYTHONPATH": f"{root / 'src'}:{root}", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_many_symlinked_wanted_files_in_one_layer(tmp_path: Path) -> None:
    meta = "Metadata-Version: 2.1\nName: p{i}\nVersion: 1.{i}\n\n"
    base = layer_of(*[("f", f"data/m{i}", meta.format(i=i)) for i in range(3)])
    links = layer_of(
        *[("l", f"{SITE[1:]}/p{i}-1.{i}.dist-info/METADATA", f"/data/m{i}") for i in range(3)],
        ("l", f"{SITE[1:]}/gone-1.0.dist-info/METADATA", "/data/missing"),  # dangling: ignored
    )
    path = write_oci_layout(tmp_path / "img", [("t", [base, links], None)])
    inv = build_inventory(f"oci:{path}:t", catalogers=[PythonMetadata()])
    assert sorted((p.name, p.version, p.layer) for p in inv.packages) == [
        (f"p{i}", f"1.{i}", links.diff_id) for i in range(3)
    ]


def test_layers_are_cached_in_one_write_and_kept_when_a_later_layer_fails(tmp_path: Path) -> None:
    import sqlite3

    from stockade.model.errors import UnsafeImage
    from stockade.scanning.imagewrite import tar_from_entries
    from stockade.store import open_store

    url = f"sqlite:///{tmp_path / 'cache.db'}"
    open_store(url).close()  # created and migrated: opened again, it is on the sqlite3 fast path
    sqlite_store = open_store(url)
    assert sqlite_store.sqlite_path is not None

    status = b"Package: demo\nStatus: install ok installed\nVersion: 1.0\n"
    good = [
        Layer(tar=tar_from_entries([("f", f"var/lib/dpkg/status{i}", status)])) for i in range(3)
    ]
    bad = Layer(tar=tar_from_entries([("f", "../escape", b"x")]))
    commits: list[str] = []

    def rows() -> int:
        conn = sqlite3.connect(str(sqlite_store.sqlite_path))
        try:
            return conn.execute("SELECT count(*) FROM scan_layer_cache").fetchone()[0]
        finally:
            conn.close()

    path = write_docker_archive(tmp_path / "bad.tar", [*good, bad], repo_tag="x/y:1")
    with pytest.raises(UnsafeImage, match="path traversal"):
        build_inventory(f"docker-archive:{path}", catalogers=all_catalogers(), store=sqlite_store)
    assert rows() == 3  # the layers read before the hostile one are cached all the same

    connect = sqlite_store.sqlite_connect

    def counting_connect():
        conn = connect()
        if conn is not None:
            conn.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
        return conn

    sqlite_store.sqlite_connect = counting_connect  # type: ignore[method-assign]
    fresh = [Layer(tar=tar_from_entries([("f", f"srv/f{i}", b"x")])) for i in range(4)]
    path = write_docker_archive(tmp_path / "good.tar", fresh, repo_tag="x/z:1")
    inv = build_inventory(f"docker-archive:{path}", catalogers=all_catalogers(), store=sqlite_store)
    sqlite_store.close()
    assert inv.read_layers == 4 and rows() == 7
    assert commits == ["COMMIT"]  # four new rows, one transaction
