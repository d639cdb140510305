"""The fast tar walker against ``tarfile`` (the reference reader) on the same layers.

Every archive here is read twice by :func:`read_layer`, once per reader; the two results (path
index, files read, skipped files, entry count) or the two errors must be the same.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable

import pytest

from stockade.model.errors import StockadeError
from stockade.scanning.imagewrite import compress, sha
from stockade.scanning.interface import LayerInfo
from stockade.scanning.layers import Limits, read_layer


def _info(name: str, kind: bytes = tarfile.REGTYPE, **fields: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, 0o755, 1_700_000_000
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def _tar(rows: list[tuple[tarfile.TarInfo, bytes]], fmt: int = tarfile.PAX_FORMAT, **kw) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, **kw) as tar:
        for info, data in rows:
            if info.isreg():
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def _everything(fmt: int) -> bytes:
    long_dir = "usr/lib/" + "/".join(f"segment-{i:02d}" for i in range(12))
    return _tar(
        [
            (_info("./"), b""),
            (_info("./var/lib/dpkg", tarfile.DIRTYPE), b""),
            (_info("./var/lib/dpkg/status"), b"Package: demo\nVersion: 1\n"),
            (
                _info("var/lib/dpkg/status-hard", tarfile.LNKTYPE, linkname="var/lib/dpkg/status"),
                b"",
            ),
            (_info("etc/os-release", tarfile.SYMTYPE, linkname="../usr/lib/os-release"), b""),
            (_info(long_dir, tarfile.DIRTYPE), b""),
            (_info(long_dir + "/libdemo.so.1"), b"\x7fELF" + bytes(2000)),
            (_info(long_dir + "/" + "n" * 150 + ".py"), b"print()\n"),
            (_info("opt/x", tarfile.SYMTYPE, linkname="/" + "t" * 200), b""),
            (_info("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3), b""),
            (_info("run/fifo", tarfile.FIFOTYPE), b""),
            (_info("usr/bin/tool", uid=2**40), b"#!/bin/sh\n" * 100),  # base-256 uid (GNU)
            (_info("usr/lib/.wh.gone"), b""),
            (_info("opt/app/.wh..wh..opq"), b""),
            (_info("home/caf\u00e9/r\u00e9sum\u00e9.txt"), b"unicode"),
            (_info("srv/empty.bin"), b""),
        ],
        fmt,
    )


def _read(
    tar: bytes,
    reader: str,
    wants: Callable[[str, int, int], bool],
    compression: str,
    max_file: int = 1500,
):
    blob = compress(tar, compression)
    layer = LayerInfo(digest=sha(blob), diff_id=sha(tar), media_type="", size=len(blob))
    try:
        result = read_layer(
            io.BytesIO(blob),
            layer,
            wants=wants,
            what="layer",
            limits=Limits(max_file_bytes=max_file),
            reader=reader,
        )
    except StockadeError as exc:
        return type(exc).__name__, exc.message.split(":")[0]
    index = result.index
    return (
        sorted(index.kinds.items()),
        sorted(index.links.items()),
        index.whiteouts,
        index.opaque,
        [(f.path, f.mode, f.size, f.data) for f in result.files],
        result.skipped,
        result.entries,
        result.pending_links,
        result.uncompressed_bytes,
    )


def _same(tar: bytes, wants=lambda p, m, s: True, compression: str = "none", max_file: int = 1500):
    fast = _read(tar, "fast", wants, compression, max_file)
    assert fast == _read(tar, "reference", wants, compression, max_file)
    return fast


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_every_kind_of_member_reads_the_same(fmt: int, compression: str) -> None:
    if fmt == tarfile.USTAR_FORMAT:  # no long names, no base-256 in plain ustar
        tar = _tar(
            [
                (_info("usr/" + "p" * 120 + "/file.txt"), b"ustar prefix"),  # name in the prefix
                (_info("var/lib/dpkg/status"), b"Package: x\n"),
                (_info("etc/passwd", tarfile.SYMTYPE, linkname="shadow"), b""),
            ],
            fmt,
        )
    else:
        tar = _everything(fmt)
    result = _same(tar, compression=compression)
    assert isinstance(result[0], list) and len(result[4]) >= 2  # it read files, not an error
    _same(tar, lambda p, m, s: p.endswith(("status", "status-hard")), compression)
    _same(tar, lambda p, m, s: "segment" in p, compression)
    _same(tar, lambda p, m, s: False, compression)


def test_hard_link_before_its_wanted_target_is_pending_in_both() -> None:
    tar = _tar(
        [
            (_info("a/target"), b"data"),
            (_info("b/link", tarfile.LNKTYPE, linkname="a/target"), b""),
        ]
    )
    result = _same(tar, lambda p, m, s: p == "/b/link")
    assert result[7] == [("/b/link", "/a/target", 0o100755)]


def test_pax_headers_global_and_per_member_apply_in_tarfiles_order() -> None:
    rows = [
        (_info("short", pax_headers={"path": "from/pax/path", "mtime": "1.5"}), b"x" * 10),
        (_info("dir/", tarfile.DIRTYPE, pax_headers={"path": "pax/dir///"}), b""),
        (_info("ln", tarfile.SYMTYPE, linkname="a", pax_headers={"linkpath": "pax/target"}), b""),
    ]
    tar = _tar(rows, pax_headers={"comment": "global header first"})
    result = _same(tar)
    assert ("/from/pax/path", "f") in result[0] and ("/pax/dir", "d") in result[0]


def _v7_directory() -> bytes:
    info = _info("olddir/", tarfile.AREGTYPE)
    return info.tobuf(format=tarfile.USTAR_FORMAT) + _tar([(_info("olddir/f"), b"v7")])


def _corrupt_after_first() -> bytes:
    tar = bytearray(_tar([(_info("a"), b"1"), (_info("b"), b"2"), (_info("c"), b"3")]))
    tar[1024 + 148 : 1024 + 156] = b"0000000\0"  # the second header's checksum is wrong
    return bytes(tar)


def _bad_mode_after_first() -> bytes:
    tar = bytearray(_tar([(_info("a"), b"1"), (_info("b"), b"2")], tarfile.USTAR_FORMAT))
    block = bytearray(tar[1024:1536])
    block[100:108] = b"9999999\0"  # not octal: tarfile ends the archive here
    block[148:156] = b"        "
    block[148:156] = b"%06o\0 " % (sum(block))
    tar[1024:1536] = block
    return bytes(tar)


def _unknown_type_with_data() -> bytes:
    odd = _info("weird", b"Z")
    odd.size = 700
    data = odd.tobuf(format=tarfile.USTAR_FORMAT) + b"z" * 700 + bytes(-700 % 512)
    return data + _tar([(_info("after"), b"read")])


def _chain_into_nothing() -> bytes:
    info = tarfile.TarInfo("././@PaxHeader")
    body = b"20 path=some/where\n"
    info.type, info.size = tarfile.XHDTYPE, len(body)
    return info.tobuf(format=tarfile.USTAR_FORMAT) + body + bytes(-len(body) % 512) + bytes(1024)


@pytest.mark.parametrize(
    "make",
    [
        _v7_directory,
        _corrupt_after_first,
        _bad_mode_after_first,
        _unknown_type_with_data,
        _chain_into_nothing,
        lambda: bytes(1024),  # an empty layer: only the end-of-archive blocks
        lambda: _everything(tarfile.GNU_FORMAT)[:3000],  # cut inside a header
        lambda: _everything(tarfile.PAX_FORMAT)[:2560],  # cut right after a header
        lambda: _tar([(_info("x"), b"y" * 600)])[:900],  # cut inside a file's data
        lambda: _tar([(_info("x"), b"y" * 600), (_info("z"), b"")])[:1100],  # inside its padding
    ],
)
def test_odd_and_broken_archives_end_or_fail_the_same(make: Callable[[], bytes]) -> None:
    tar = make()
    for compression in ("none", "gzip"):
        _same(tar, compression=compression)
        _same(tar, lambda p, m, s: False, compression)


def test_large_layer_with_many_members_reads_the_same() -> None:
    rows = [(_info(f"usr/share/doc/pkg{i}/copyright"), b"c" * (i % 3000)) for i in range(600)]
    rows += [(_info(f"usr/lib/lib{i}.so"), bytes(300_000 + i)) for i in range(8)]
    tar = _tar(rows)
    result = _same(tar, lambda p, m, s: p.endswith((".so", "7/copyright")), max_file=1 << 20)
    assert [f[2] for f in result[4] if f[0].endswith(".so")] == [300_000 + i for i in range(8)]


def test_number_fields_parse_as_tarfile_parses_them() -> None:
    import random

    from stockade.scanning.tarwalk import _nti

    rng = random.Random(19)
    fields = [b"0000644\0", b" 644 \0", b"\x80" + bytes(6) + b"\x01", b"\xff" * 8, b"\x1c7\0"]
    fields += [
        bytes(rng.choice(b" 01234579\0\x1c_+-\x80\xffa\xc3") for _ in range(8)) for _ in range(5000)
    ]
    for field in fields:
        try:
            expected: object = tarfile.nti(field)  # type: ignore[attr-defined]
        except tarfile.HeaderError:
            expected = "invalid"
        try:
            got: object = _nti(field)
        except ValueError:
            got = "invalid"
        assert got == expected, field


def test_entry_names_normalize_as_part_by_part() -> None:
    import random

    from stockade.model.errors import UnsafeImage
    from stockade.scanning.layers import normalize_name

    def by_parts(name: str) -> str:
        parts = []
        for part in name.split("/"):
            if part == "..":
                return "refused"
            if part not in ("", "."):
                parts.append(part)
        return "/" + "/".join(parts)

    rng = random.Random(19)
    pieces = ["/", ".", "..", "a", "b.c", ".wh.x", "//", "./", "x.", "usr"]
    for _ in range(20_000):
        name = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))
        try:
            got = normalize_name(name, "layer")
        except UnsafeImage:
            got = "refused"
        assert got == by_parts(name), name


def _old_gnu_sparse(origsize: bytes = b"%011o\0" % 5000, extended: bool = False) -> bytes:
    """An old GNU sparse member (type S): 100 data bytes at offset 4900 of a 5000-byte file."""
    info = _info("var/sparse.img")
    info.size = 512  # the data stored in the archive
    block = bytearray(info.tobuf(format=tarfile.GNU_FORMAT))
    block[156:157] = b"S"
    block[386:410] = b"%011o\0%011o\0" % (4900, 100)
    block[482] = 1 if extended else 0
    block[483:495] = origsize
    block[148:156] = b"        "
    block[148:156] = b"%06o\0 " % sum(block)
    body = bytes(block)
    if extended:
        body += bytes(512)  # one extension block with no further entries
    return body + b"s" * 100 + bytes(412) + _tar([(_info("after"), b"read")])


@pytest.mark.parametrize(
    "tar",
    [_old_gnu_sparse(), _old_gnu_sparse(extended=True), _old_gnu_sparse(origsize=b"zzzzzzzzzzz\0")],
)
def test_old_gnu_sparse_members_are_listed_not_read(tar: bytes) -> None:
    result = _same(tar, max_file=1 << 20)
    if isinstance(result[0], list) and ("/var/sparse.img", "f") in result[0]:
        assert result[5] == ["/var/sparse.img: a sparse file (old GNU tar format) is not read"]
        assert ("/after", "f") in result[0]
