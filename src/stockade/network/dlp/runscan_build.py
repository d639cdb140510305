"""cffi build script of the DLP engine's hand-written prefilter scan (``_runscan``, see runscan.py).

Run by the project's install (setup.py ``cffi_modules``); by hand: ``python3 setup.py build_ext
--inplace``. Needs only a C compiler and the Python headers; without them the engine leaves every
prefilter to Hyperscan."""

from pathlib import Path

from cffi import FFI

CDEF = """
struct rs_state {
    uint64_t pos;
    ...;
};
void rs_init(struct rs_state *s, const uint32_t *ids);
size_t rs_scan(struct rs_state *s, const uint8_t *data, size_t len, size_t start, uint64_t *out,
               size_t cap, size_t *next);
"""

# checked buffer copies and stack canaries: the scan reads bytes from hostile peers
HARDENING = ["-U_FORTIFY_SOURCE", "-D_FORTIFY_SOURCE=2", "-fstack-protector-strong"]

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "stockade.network.dlp._runscan",
    (Path(__file__).parent / "runscan.c").read_text(),
    extra_compile_args=["-O2", "-std=gnu11", "-Wall", *HARDENING],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
