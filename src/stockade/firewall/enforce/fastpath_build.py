"""cffi build script of the enforcer's compiled NFQUEUE loop (``_fastpath``, see fastpath.py).

Run by the project's install (setup.py ``cffi_modules``); by hand: ``python3 setup.py build_ext
--inplace``. Needs a C compiler and the Python headers, nothing else (netlink is spoken directly)."""

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
extern "Python" int64_t fp_judge(void *handle, const uint8_t *pkt, uint32_t len, uint32_t mark);
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "stockade.firewall.enforce._fastpath",
    (Path(__file__).with_name("fastpath.c")).read_text(),
    extra_compile_args=["-O2", "-std=gnu11"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
