"""Just enough ELF to find a section or map a virtual address to a file offset. Every offset and
size read from the file is checked against the data's length before use."""

from __future__ import annotations

import struct
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Segment:
    vaddr: int
    offset: int
    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Elf:
    big_endian: bool
    ptr_size: int
    sections: dict[str, Segment]
    loads: tuple[Segment, ...]

    def offset_of(self, vaddr: int, length: int) -> int | None:
        """File offset of ``length`` bytes at virtual address ``vaddr`` if a segment holds them."""
        for seg in (*self.sections.values(), *self.loads):
            if seg.vaddr <= vaddr and vaddr + length <= seg.vaddr + seg.size:
                return seg.offset + (vaddr - seg.vaddr)
        return None


def parse(data: bytes) -> Elf | None:
    """The section table and loadable segments of an ELF file, or None if it is not one."""
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] not in (1, 2) or data[5] not in (1, 2):
        return None
    is64 = data[4] == 2
    e = ">" if data[5] == 2 else "<"
    try:
        if is64:
            phoff, shoff = struct.unpack_from(e + "QQ", data, 0x20)
            phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from(
                e + "HHHHH", data, 0x36
            )
        else:
            phoff, shoff = struct.unpack_from(e + "II", data, 0x1C)
            phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from(
                e + "HHHHH", data, 0x2A
            )
        loads = tuple(_loads(data, e, is64, phoff, phentsize, phnum))
        sections = _sections(data, e, is64, shoff, shentsize, shnum, shstrndx)
    except struct.error:
        return None
    return Elf(big_endian=e == ">", ptr_size=8 if is64 else 4, sections=sections, loads=loads)


def _loads(data: bytes, e: str, is64: bool, off: int, entsize: int, num: int) -> list[Segment]:
    out: list[Segment] = []
    if entsize < (56 if is64 else 32):
        return out
    for i in range(min(num, 512)):
        base = off + i * entsize
        if base + entsize > len(data):
            break
        if is64:
            p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(e + "IIQQQQ", data, base)
        else:
            p_type, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(e + "IIIII", data, base)
        if p_type == 1 and p_offset + p_filesz <= len(data):  # PT_LOAD
            out.append(Segment(vaddr=p_vaddr, offset=p_offset, size=p_filesz))
    return out


def _sections(
    data: bytes, e: str, is64: bool, off: int, entsize: int, num: int, strndx: int
) -> dict[str, Segment]:
    if (
        entsize < (64 if is64 else 40)
        or num == 0
        or off + num * entsize > len(data)
        or strndx >= num
    ):
        return {}
    raw = []
    for i in range(min(num, 4096)):
        base = off + i * entsize
        if is64:
            name, sh_type, _, addr, offset, size = struct.unpack_from(e + "IIQQQQ", data, base)
        else:
            name, sh_type, _, addr, offset, size = struct.unpack_from(e + "IIIIII", data, base)
        raw.append((name, sh_type, addr, offset, size))
    _, _, _, str_off, str_size = raw[strndx]
    if str_off + str_size > len(data):
        return {}
    names = data[str_off : str_off + str_size]
    out: dict[str, Segment] = {}
    for name_off, sh_type, addr, offset, size in raw:
        if sh_type == 8 or name_off >= len(names):  # SHT_NOBITS has no bytes in the file
            continue
        end = names.find(b"\0", name_off)
        label = names[name_off : end if end >= 0 else len(names)].decode("latin-1")
        if offset + size <= len(data):
            out[label] = Segment(vaddr=addr, offset=offset, size=size)
    return out
