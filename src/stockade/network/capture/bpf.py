"""Capture filters in tcpdump's language, compiled by libpcap (through ctypes, no privileges).

One compiled :class:`Filter` serves both sources: its instructions are attached to a live packet
socket (``SO_ATTACH_FILTER``, the kernel filters), and ``match`` runs the same program in user
space for frames read from a file (``pcap_offline_filter``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

from stockade.model.errors import UsageError

MAX_FILTER = 4096  # characters: a filter expression longer than this is not a filter
SNAPLEN = 262144
PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF


class _Insn(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint),
    ]


class _Program(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_Insn))]


class _Header(ctypes.Structure):
    _fields_ = [
        ("tv_sec", ctypes.c_long),
        ("tv_usec", ctypes.c_long),
        ("caplen", ctypes.c_uint),
        ("len", ctypes.c_uint),
    ]


_lib: Any = None


def _libpcap() -> Any:
    global _lib
    if _lib is None:
        name = ctypes.util.find_library("pcap")
        if name is None:
            raise UsageError("--filter needs libpcap (Debian: libpcap0.8)")
        lib = ctypes.CDLL(name)
        lib.pcap_open_dead.restype = ctypes.c_void_p
        lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.pcap_compile.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(_Program),
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.c_uint,
        ]
        lib.pcap_geterr.restype = ctypes.c_char_p
        lib.pcap_geterr.argtypes = [ctypes.c_void_p]
        lib.pcap_close.argtypes = [ctypes.c_void_p]
        lib.pcap_freecode.argtypes = [ctypes.POINTER(_Program)]
        lib.pcap_offline_filter.argtypes = [
            ctypes.POINTER(_Program),
            ctypes.POINTER(_Header),
            ctypes.c_char_p,
        ]
        _lib = lib
    return _lib


class Filter:
    """``Filter("tcp port 80", linktype=1)``; ``UsageError`` when the expression is invalid."""

    def __init__(self, expression: str, *, linktype: int = 1) -> None:
        if len(expression) > MAX_FILTER or "\x00" in expression:
            raise UsageError("the capture filter is too long or holds a NUL byte")
        lib = _libpcap()
        self.expression = expression
        self.linktype = linktype
        self._program = _Program()
        handle = lib.pcap_open_dead(linktype, SNAPLEN)
        if not handle:
            raise UsageError(f"libpcap does not know link type {linktype}")
        try:
            rc = lib.pcap_compile(
                handle, ctypes.byref(self._program), expression.encode(), 1, PCAP_NETMASK_UNKNOWN
            )
            if rc != 0:
                why = lib.pcap_geterr(handle).decode(errors="replace")
                raise UsageError(f"bad capture filter: {why}")
        finally:
            lib.pcap_close(handle)
        n = self._program.bf_len
        self.instructions = ctypes.string_at(self._program.bf_insns, n * ctypes.sizeof(_Insn))
        self._header = _Header()

    def match(self, frame: bytes) -> bool:
        """Whether the program accepts ``frame`` (a whole captured frame of ``linktype``)."""
        h = self._header
        h.caplen = h.len = len(frame)
        return bool(_libpcap().pcap_offline_filter(ctypes.byref(self._program), h, frame))

    def close(self) -> None:
        if self._program.bf_insns:
            _libpcap().pcap_freecode(ctypes.byref(self._program))
            self._program = _Program()

    def __del__(self) -> None:
        self.close()
