"""cffi build script of the DLP engine's hand-written prefilter scan (``_runscan``, see runscan.py).

Run by the project's install (setup.py ``cffi_modules``); by hand: ``python3 setup.py build_ext
--inplace``. Needs a C compiler and the Python headers; without them the engine leaves every
prefilter to Hyperscan. With Hyperscan's headers and library (libhyperscan-dev) it also scans the
other built-in expressions through libhs, so the engine makes one call a segment; without them
those stay with the Python binding."""

import ctypes.util
from pathlib import Path

from cffi import FFI

CDEF = """
struct rs_state {
    uint64_t pos;
    ...;
};
struct rs_db;
void rs_init(struct rs_state *s, const uint32_t *ids);
size_t rs_scan(struct rs_state *s, const uint8_t *data, size_t len, size_t start, uint64_t *out,
               size_t cap, size_t *next);
int rs_has_hs(void);
struct rs_db *rs_db_new(const char *const *exprs, const unsigned *flags, const unsigned *ids,
                        unsigned n, char *err, size_t errlen);
void rs_db_free(struct rs_db *d);
struct rs_state *rs_new(const uint32_t *ids, struct rs_db *db);
void rs_free(struct rs_state *s);
long long rs_scan_all(struct rs_state *s, const uint8_t *data, size_t len,
                      const uint64_t **pairs);
"""


def _hyperscan() -> bool:
    """Hyperscan's header and library are there (else the other expressions stay in Python)."""
    headers = any(Path(d, "hs", "hs.h").exists() for d in ("/usr/include", "/usr/local/include"))
    return headers and ctypes.util.find_library("hs") is not None


HYPERSCAN = _hyperscan()

# checked buffer copies and stack canaries: the scan reads bytes from hostile peers
HARDENING = ["-U_FORTIFY_SOURCE", "-D_FORTIFY_SOURCE=2", "-fstack-protector-strong"]

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "stockade.network.dlp._runscan",
    (Path(__file__).parent / "runscan.c").read_text(),
    extra_compile_args=["-O2", "-std=gnu11", "-Wall", *HARDENING],
    libraries=["hs"] if HYPERSCAN else [],
    define_macros=[("RS_HS", "1")] if HYPERSCAN else [],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
