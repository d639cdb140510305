"""cffi build script of the enforcer's compiled NFQUEUE loop (``_fastpath``, see fastpath.py).

Run by the project's install (setup.py ``cffi_modules``); by hand: ``python3 setup.py build_ext
--inplace``. Needs a C compiler and the Python headers; with Hyperscan's headers and library
(libhyperscan-dev) the loop also scans DLP itself (fastpath_own.c), without them it leaves every
DLP segment to Python. Netlink is spoken directly."""

import ctypes.util
from pathlib import Path

from cffi import FFI

CDEF = """
struct fp_queue;
struct fp_queue *fp_open(uint16_t num, uint32_t maxlen);
struct fp_queue *fp_attach(int fd, uint16_t num);
void fp_detach(struct fp_queue *q);
void fp_close(struct fp_queue *q);
int fp_fd(struct fp_queue *q);
int fp_run(struct fp_queue *q, int other, int timeout_ms, uint32_t fail_mark);
int fp_dispatch(struct fp_queue *q, const uint8_t *buf, uint32_t len, uint32_t fail_mark);
int64_t fp_known(struct fp_queue *q, const uint8_t *pkt, uint32_t len, uint32_t mark);
void fp_forget_all(struct fp_queue *q);
void fp_set_handle(struct fp_queue *q, void *handle);
void fp_counts(struct fp_queue *q, uint64_t *out);
void fp_set_spin(struct fp_queue *q, uint32_t us);
void fp_set_body_spin(struct fp_queue *q, uint32_t us);
void fp_spin_counts(struct fp_queue *q, uint64_t *out);
int fp_dlp_load(struct fp_queue *q, const char *const *exprs, const unsigned int *flags,
                const unsigned int *ids, unsigned int n, char *err, size_t errlen);
void fp_own_counts(struct fp_queue *q, uint64_t *out);
int fp_app(const uint8_t *d, uint32_t n);
int fp_own_end(struct fp_queue *q, const uint8_t *pkt, uint32_t len);
int fp_set_ends(struct fp_queue *q, int fd);
void fp_copy_one(struct fp_queue *q, const uint8_t *pkt, uint32_t len, uint32_t mark);
int fp_set_copies(struct fp_queue *q, int fd, uint32_t wait_us);
extern "Python" int64_t fp_judge(void *handle, const uint8_t *pkt, uint32_t len, uint32_t mark);
extern "Python" int fp_advise(void *handle, const uint8_t *client, const uint8_t *server,
                              uint16_t port);
"""

HERE = Path(__file__).parent
SOURCE = "\n".join((HERE / name).read_text() for name in ("fastpath.c", "fastpath_own.c"))


def _hyperscan() -> bool:
    """Hyperscan's header and library are there (else the loop is built without DLP scanning)."""
    headers = any(Path(d, "hs", "hs.h").exists() for d in ("/usr/include", "/usr/local/include"))
    return headers and ctypes.util.find_library("hs") is not None


HYPERSCAN = _hyperscan()
# checked buffer copies and stack canaries: the loop parses packets from hostile peers, as root
HARDENING = ["-U_FORTIFY_SOURCE", "-D_FORTIFY_SOURCE=2", "-fstack-protector-strong"]

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "stockade.firewall.enforce._fastpath",
    SOURCE,
    extra_compile_args=["-O2", "-std=gnu11", *HARDENING],
    libraries=["hs"] if HYPERSCAN else [],
    define_macros=[] if HYPERSCAN else [("FP_NO_HS", "1")],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
