"""The layer reader against crafted layers: formats, whiteouts, and every kind of hostile input."""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

import pytest
from tests.scanning.conftest import write_raw_oci

from stockade.model.errors import DigestMismatch, ImageError, UnsafeImage
from stockade.scanning.imagewrite import LAYER_MEDIA, compress, sha, tar_from_entries
from stockade.scanning.interface import LayerInfo
from stockade.scanning.inventory import build_inventory
from stockade.scanning.layers import Limits, detect_compression, read_layer

STATUS = b"Package: demo\nStatus: install ok installed\nVersion: 1.0\n"


def _read(tar: bytes, compression: str = "gzip", *, wants=None, limits: Limits | None = None, **kw):
    blob = compress(tar, compression)
    layer = LayerInfo(
        digest=kw.pop("digest", sha(blob)),
        diff_id=kw.pop("diff_id", sha(tar)),
        media_type=kw.pop("media_type", LAYER_MEDIA[compression]),
        size=len(blob),
    )
    return read_layer(
        io.BytesIO(blob),
        layer,
        wants=wants or (lambda p, m, s: p.endswith("status")),
        what="test-layer",
        limits=limits or Limits(),
        **kw,
    )


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_reads_wanted_files_and_records_shape(compression: str) -> None:
    tar = tar_from_entries(
        [
            ("d", "./var/lib/dpkg", b""),
            ("f", "./var/lib/dpkg/status", STATUS),
            ("f", "etc/hostname", b"box\n"),
            ("l", "etc/os-release", "../usr/lib/os-release"),
            ("h", "var/lib/dpkg/status.hard", "var/lib/dpkg/status"),
            ("c", "dev/null", b""),
            ("f", "usr/lib/.wh.gone", b""),
            ("f", "opt/app/.wh..wh..opq", b""),
        ]
    )
    result = _read(tar, compression, wants=lambda p, m, s: "status" in p)
    assert [(f.path, f.data) for f in result.files] == [
        ("/var/lib/dpkg/status", STATUS),
        ("/var/lib/dpkg/status.hard", STATUS),  # a hard link carries its target's bytes
    ]
    kinds = result.index.kinds
    assert kinds["/var/lib/dpkg"] == "d" and kinds["/etc/hostname"] == "f"
    assert (
        kinds["/etc/os-release"] == "l"
        and result.index.links["/etc/os-release"] == "../usr/lib/os-release"
    )
    assert kinds["/dev/null"] == "o"  # devices are recorded, never read
    assert result.index.whiteouts == ["/usr/lib/gone"]
    assert result.index.opaque == ["/opt/app"]
    assert result.uncompressed_bytes == len(tar)


def test_magic_bytes_win_over_the_media_type() -> None:
    tar = tar_from_entries([("f", "var/lib/dpkg/status", STATUS)])
    # A gzip blob labelled as plain tar is still read (as Docker and containerd do).
    result = _read(tar, "gzip", media_type=LAYER_MEDIA["none"])
    assert result.files[0].data == STATUS


@pytest.mark.parametrize(
    "name", ["../etc/passwd", "./../../x", "/../../etc/shadow", "a/../../b", "usr/../etc/x"]
)
def test_traversal_in_entry_names_is_refused(name: str) -> None:
    with pytest.raises(UnsafeImage, match="path traversal"):
        _read(tar_from_entries([("f", name, b"x")]))


def test_traversal_in_hard_link_target_is_refused() -> None:
    tar = tar_from_entries([("h", "var/lib/dpkg/status", "../../etc/shadow")])
    with pytest.raises(UnsafeImage, match="path traversal"):
        _read(tar)


def test_decompression_bomb_by_ratio() -> None:
    tar = tar_from_entries([("f", "zeros", b"\0" * (8 << 20))])
    limits = Limits(ratio_floor=1 << 20, max_ratio=50)
    with pytest.raises(UnsafeImage, match="expands more than 50x"):
        _read(tar, limits=limits)


def test_decompression_bomb_by_size() -> None:
    tar = tar_from_entries([("f", "random", os.urandom(3 << 20))])
    with pytest.raises(UnsafeImage, match="limit of 1048576 bytes"):
        _read(tar, limits=Limits(max_layer_bytes=1 << 20))


def test_too_many_entries() -> None:
    tar = tar_from_entries([("f", f"f{i}", b"") for i in range(50)])
    with pytest.raises(UnsafeImage, match="more than 10 entries"):
        _read(tar, limits=Limits(max_entries=10))


def test_per_file_cap_skips_the_file() -> None:
    tar = tar_from_entries([("f", "var/lib/dpkg/status", STATUS * 100)])
    result = _read(tar, limits=Limits(max_file_bytes=100))
    assert result.files == [] and "over the per-file limit" in result.skipped[0]


def test_truncated_gzip() -> None:
    tar = tar_from_entries([("f", "var/lib/dpkg/status", os.urandom(200_000))])
    blob = gzip.compress(tar)[:-5000]
    layer = LayerInfo(
        digest=sha(blob), diff_id=sha(tar), media_type=LAYER_MEDIA["gzip"], size=len(blob)
    )
    with pytest.raises(ImageError, match="truncated or corrupt gzip") as info:
        read_layer(io.BytesIO(blob), layer, wants=lambda *a: True, what="layer-x")
    assert str(info.value).startswith("layer-x: ")


def test_truncated_zstd() -> None:
    tar = tar_from_entries([("f", "var/lib/dpkg/status", os.urandom(200_000))])
    blob = compress(tar, "zstd")[:-5000]
    layer = LayerInfo(
        digest=sha(blob), diff_id=sha(tar), media_type=LAYER_MEDIA["zstd"], size=len(blob)
    )
    with pytest.raises(ImageError):
        read_layer(io.BytesIO(blob), layer, wants=lambda *a: True, what="layer-z")


def test_truncated_plain_tar_fails_the_diff_id() -> None:
    tar = tar_from_entries([("f", "a", os.urandom(50_000)), ("f", "b", os.urandom(50_000))])
    cut = tar[:60_000]
    layer = LayerInfo(
        digest=sha(cut), diff_id=sha(tar), media_type=LAYER_MEDIA["none"], size=len(cut)
    )
    with pytest.raises(ImageError):
        read_layer(io.BytesIO(cut), layer, wants=lambda *a: False, what="layer-t")


def test_garbage_is_not_a_layer() -> None:
    blob = b"this is not a tar at all" * 100
    layer = LayerInfo(
        digest=sha(blob), diff_id=sha(blob), media_type=LAYER_MEDIA["none"], size=len(blob)
    )
    with pytest.raises(ImageError, match="not a tar, gzip or zstd"):
        read_layer(io.BytesIO(blob), layer, wants=lambda *a: True, what="layer-g")


def test_blob_digest_mismatch() -> None:
    tar = tar_from_entries([("f", "var/lib/dpkg/status", STATUS)])
    with pytest.raises(DigestMismatch, match="blob digest mismatch"):
        _read(tar, digest="sha256:" + "0" * 64)


def test_diff_id_mismatch() -> None:
    tar = tar_from_entries([("f", "var/lib/dpkg/status", STATUS)])
    with pytest.raises(DigestMismatch, match="diff id mismatch"):
        _read(tar, diff_id="sha256:" + "1" * 64)


def test_unknown_media_type() -> None:
    tar = tar_from_entries([("f", "x", b"x")])
    with pytest.raises(ImageError, match="unknown layer media type"):
        _read(tar, media_type="application/vnd.example.weird")


def test_detect_compression() -> None:
    assert detect_compression(b"\x1f\x8b\x08") == "gzip"
    assert detect_compression(b"\x28\xb5\x2f\xfd") == "zstd"
    assert detect_compression(tar_from_entries([("f", "x", b"1")])[:512]) == "tar"
    assert detect_compression(b"PK\x03\x04" + b"\0" * 600) is None


# ---- the same failures through a whole image, as a user meets them ---------------------------


def _image(tmp_path: Path, tar: bytes, **kw) -> str:
    blob = compress(tar, "gzip")
    return write_raw_oci(tmp_path, [(blob, LAYER_MEDIA["gzip"])], diff_ids=[sha(tar)], **kw)


def test_image_with_missing_blob(tmp_path: Path, catalogers: list) -> None:
    ref = _image(tmp_path, tar_from_entries([("f", "x", b"1")]), skip_blobs=(0,))
    with pytest.raises(ImageError, match="missing blob sha256:") as info:
        build_inventory(ref, catalogers=catalogers)
    assert str(info.value).startswith(ref)


def test_image_with_corrupted_blob(tmp_path: Path, catalogers: list) -> None:
    tar = tar_from_entries([("f", "var/lib/dpkg/status", STATUS)])
    ref = _image(tmp_path, tar)
    blob_path = tmp_path / "blobs" / sha(compress(tar, "gzip")).replace(":", "/")
    data = bytearray(blob_path.read_bytes())
    data[-9] ^= 0xFF  # inside the gzip trailer: the CRC no longer matches
    blob_path.write_bytes(bytes(data))
    with pytest.raises(ImageError) as info:
        build_inventory(ref, catalogers=catalogers)
    assert "layer 1" in str(info.value)


def test_escaping_symlink_on_a_wanted_path(tmp_path: Path, catalogers: list) -> None:
    tar = tar_from_entries(
        [("d", "etc", b""), ("l", "etc/os-release", "../../../../host/etc/os-release")]
    )
    ref = _image(tmp_path, tar)
    with pytest.raises(UnsafeImage, match="escapes the image root"):
        build_inventory(ref, catalogers=catalogers)


def test_absolute_symlink_stays_inside_the_root(tmp_path: Path, catalogers: list) -> None:
    tar = tar_from_entries(
        [
            ("f", "usr/lib/os-release", 'ID=debian\nVERSION_ID="12"\n'),
            ("l", "etc/os-release", "/usr/lib/os-release"),
        ]
    )
    inv = build_inventory(_image(tmp_path, tar), catalogers=catalogers)
    assert inv.distro is not None and inv.distro.id == "debian"
    assert [(p.type, p.name, p.locations) for p in inv.packages] == [
        ("os", "debian", ("/etc/os-release",))
    ]


def test_config_that_is_not_json(tmp_path: Path, catalogers: list) -> None:
    ref = _image(tmp_path, tar_from_entries([("f", "x", b"1")]))
    (tmp_path / "index.json").write_text("{not json")
    with pytest.raises(ImageError, match="not valid JSON"):
        build_inventory(ref, catalogers=catalogers)


def test_unknown_tag(tmp_path: Path, catalogers: list) -> None:
    ref = _image(tmp_path, tar_from_entries([("f", "x", b"1")]))
    with pytest.raises(ImageError, match="no image tagged 'nope'"):
        build_inventory(ref.rsplit(":", 1)[0] + ":nope", catalogers=catalogers)
