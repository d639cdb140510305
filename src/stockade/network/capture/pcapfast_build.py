"""cffi build script of the sensor's compiled capture-file path (``_pcapfast``, see fastpcap.py).

Run by the project's install (setup.py ``cffi_modules``); by hand: ``python3 setup.py build_ext
--inplace``. Needs a C compiler and the Python headers; without them ``sensor --pcap`` keeps its
pure-Python path."""

from pathlib import Path

from cffi import FFI

CDEF = """
struct sp_cfg {
    uint64_t depth, ooo_limit, ooo_segments, memcap, max_flows;
    double tcp_idle, udp_idle, half_open_idle, linger;
    uint64_t common, defer_cap;
    uintptr_t rs_new, rs_scan_all, rs_free, rs_ids, rs_db;
    uint64_t lines;
    char id_run[32];
};
struct sp_run;
struct sp_run *sp_new(const uint8_t *buf, uint64_t size, const struct sp_cfg *cfg, int64_t count);
int sp_step(struct sp_run *r, uint64_t max_events, uint64_t max_data);
int sp_flush(struct sp_run *r);
const int64_t *sp_events(struct sp_run *r, uint64_t *n);
const uint8_t *sp_data(struct sp_run *r, uint64_t *n);
void sp_taken(struct sp_run *r);
const char *sp_error(struct sp_run *r);
void sp_stats(struct sp_run *r, uint64_t *out);
void sp_free(struct sp_run *r);
int sp_peer(struct sp_run *r, const uint8_t *ip, uint32_t len, const char *a, uint32_t na,
            const char *b, uint32_t nb);
void sp_peers_clear(struct sp_run *r);
void sp_set_lines(struct sp_run *r, int on);
int sp_close_digits(const uint8_t *p, size_t n);
int sp_ip_text(const uint8_t *ip, uint32_t len, char *out);
"""

HERE = Path(__file__).parent
# checked buffer copies and stack canaries: the reader parses files from anywhere
HARDENING = ["-U_FORTIFY_SOURCE", "-D_FORTIFY_SOURCE=2", "-fstack-protector-strong"]

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "stockade.network.capture._pcapfast",
    (HERE / "pcapfast.c").read_text(),
    extra_compile_args=["-O2", "-std=gnu11", "-Wall", *HARDENING],
    libraries=["m"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
