/* The per-frame path of `stockade sensor --pcap` in C: the pcap/pcapng reader (pcapfile.py), the
 * frame decoder (decode.py), the flow table (flows.py FlowTable) and TCP reassembly
 * (reassembly.py Stream), line for line. Where the Python flow table calls its hooks (a stream's
 * in-order bytes, a hole, the analysis of a flow, its end), this code appends an event to a list
 * the Python side replays in the same order (capture/fastpcap.py): the Python hooks never change
 * the state kept here, so the replay sees exactly what the reference's hooks saw.
 *
 * Every read of the capture is checked against the record's captured length, which is checked
 * against the file's size; every allocation is checked (a failure stops the run with an error). */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SP_MASK 0xFFFFFFFFu
#define SP_MAX_RECORD (1u << 24)
#define SP_MAX_TIMESTAMP 253402300799.0

enum { EV_DATA = 1, EV_GAP = 2, EV_ANALYZE = 3, EV_FINISH = 4, EV_DROP = 5, EV_COMMON = 6,
       EV_LINES = 7 };
enum { ST_CLOSED = 0, ST_RESET, ST_TIMEOUT, ST_EVICTED, ST_ACTIVE };
enum { TH_FIN = 1, TH_SYN = 2, TH_RST = 4, TH_ACK = 16 };

struct sp_cfg {
    uint64_t depth, ooo_limit, ooo_segments, memcap, max_flows;
    double tcp_idle, udp_idle, half_open_idle, linger;
    /* the common connection (see "the common connection" below): on when common is 1; the
       bytes all waiting flows may hold; runscan.c's whole-stream scan (rs_new, rs_scan_all,
       rs_free) with the engine's expression ids and database */
    uint64_t common, defer_cap;
    uintptr_t rs_new, rs_scan_all, rs_free, rs_ids, rs_db;
    /* lines 1: a common connection that needs no DLP in Python is written here as its JSON line
       (see "the common connection's line"); its ids start with id_run (FlowTable.connection_id) */
    uint64_t lines;
    char id_run[32];
};

struct sp_seg {
    uint32_t seq, len;
    uint64_t rank; /* arrival number: the place in reassembly.py's dict */
    uint8_t *data;
};

struct sp_due {
    uint64_t rank;
    uint32_t slot;
};

struct sp_stream {
    int started, keep_head;
    uint32_t next_seq;
    int64_t fin_seq;
    uint64_t headlen, delivered, past_depth, buffered, gaps;
    /* the held (out-of-order) segments, at most cfg.ooo_segments: slots in seg (free ones on
       the stack freeslots), their (seq << 32 | slot) sorted by seq in order (reassembly.py's
       _order: while draining, those not yet due), and drain's two heaps by rank */
    struct sp_seg *seg;
    uint32_t *freeslots;
    uint64_t *order;
    struct sp_due *now, *later;
    size_t nooo, nslots, nfree, norder, cap;
    uint64_t arrivals;
};

struct sp_peer {
    uint8_t ip[16];
    uint8_t iplen; /* 0: an empty slot */
    uint32_t na, nb;
    char *json;    /* the peer's JSON before its port (na bytes), then after it (nb) */
};

struct sp_flow;
struct sp_node {
    struct sp_flow *flow;
    int dir;
    struct sp_node *next;
};

struct sp_flow {
    uint8_t cip[16], sip[16];
    uint8_t iplen, proto, synack, payload, done, analyzed, evented, finished, self_pair;
    uint16_t cport, sport;
    uint8_t flags[2];
    double first, last;
    uint64_t bytes[2], packets[2], no;
    struct sp_stream st[2];
    struct sp_node node[2];
    struct sp_flow *prev, *next;
    /* while defer: its events wait here instead of going to Python (the common connection) */
    uint8_t defer;
    int8_t first_dir;   /* the direction that delivered first, -1 before */
    uint64_t alen[2];   /* each direction's bytes when the flow was analyzed */
    struct sp_dbuf { uint8_t *p; size_t n, cap; } dbuf[2];
    uint32_t *dev;      /* waiting events: len << 1 | dir for data, 0 for the analysis */
    size_t ndev, capdev;
};

/* decode.py _Datagram: a datagram being put together from its fragments */
struct sp_dgram {
    uint8_t key[40]; /* version, protocol (IPv4), source, destination, identification */
    double first;
    int64_t total; /* -1 until the last fragment came */
    int proto;
    uint8_t units[(65535 + 7) >> 3];
    uint8_t data[65535];
};

struct sp_run {
    const uint8_t *buf;
    uint64_t size;
    struct sp_cfg cfg;
    int64_t count, nframes;
    /* reader */
    int format; /* 0 unknown, 1 pcap, 2 pcapng */
    int started, ended, truncated, big, nano;
    uint64_t off;
    uint32_t linktype;
    uint32_t unsupported_link; /* pcapng: the last unsupported link type a frame came on */
    int64_t supported_frames;  /* pcapng: frames on a link type the decoder reads */
    double last_ts;
    uint64_t bad_timestamps;
    int ng_order_big;
    struct { uint32_t link; double tick; uint32_t snap; int64_t shift; } *ifaces;
    size_t nifaces, capifaces;
    /* IP datagrams being put together (decode.py Decoder._pending), oldest first */
    struct sp_dgram *pending[64];
    int npending;
    int last_proto;
    /* the last SLL frames' packets (decode.py Decoder._copies), as a hash and a length */
    struct { uint64_t hash, len; int out; } copies[32];
    int ncopies;
    /* decode stats */
    uint64_t dstat[11]; /* frames bytes ipv4 ipv6 tcp udp other fragments ipv4_options malformed
                           outgoing_skipped */
    /* flows */
    struct sp_node **buckets;
    size_t nbuckets, entries;
    struct sp_flow *head, *tail;
    uint64_t flow_no;
    int64_t memory;
    uint64_t deferred; /* bytes allocated by waiting flows (at most cfg.defer_cap) */
    double next_sweep;
    uint64_t fstat[7]; /* flows records evicted half_open_dropped memcap_evictions peak_flows
                          peak_memory */
    /* events */
    int64_t *ev;
    size_t nev, capev;
    uint8_t *data;
    size_t ndata, capdata;
    int oom;
    char err[200];
    /* the peers' JSON the lines are written with (sp_peer), by address */
    struct sp_peer *peers;
    size_t npeers;
};

enum { D_FRAMES, D_BYTES, D_IPV4, D_IPV6, D_TCP, D_UDP, D_OTHER, D_FRAG, D_OPTS, D_MALFORMED,
       D_OUTGOING };
enum { F_FLOWS, F_RECORDS, F_EVICTED, F_HALF_OPEN, F_MEMCAP, F_PEAK_FLOWS, F_PEAK_MEMORY };

/* ---------------------------------------------------------------- events */

static void sp_event(struct sp_run *r, int kind, int dir, uint64_t flow, int64_t a, int64_t b) {
    if (r->nev + 4 > r->capev) {
        size_t cap = r->capev ? r->capev * 2 : 4096;
        int64_t *ev = realloc(r->ev, cap * sizeof *ev);
        if (!ev) { r->oom = 1; return; }
        r->ev = ev;
        r->capev = cap;
    }
    int64_t *e = r->ev + r->nev;
    e[0] = kind | (dir << 8);
    e[1] = (int64_t)flow;
    e[2] = a;
    e[3] = b;
    r->nev += 4;
}

static int64_t sp_put(struct sp_run *r, const void *p, size_t n) {
    if (r->ndata + n > r->capdata) {
        size_t cap = r->capdata ? r->capdata : 65536;
        while (cap < r->ndata + n) cap *= 2;
        uint8_t *d = realloc(r->data, cap);
        if (!d) { r->oom = 1; return -1; }
        r->data = d;
        r->capdata = cap;
    }
    int64_t at = (int64_t)r->ndata;
    if (n) memcpy(r->data + r->ndata, p, n);
    r->ndata += n;
    return at;
}

/* ---------------------------------------------------------------- the common connection */
/* A TCP flow's events wait here (defer) while it may still be the common connection: clear
 * HTTP/1.x opened by the client, without a hole. At its end, common() decides it from the bytes
 * it kept and sends one EV_COMMON (the record's facts, the HTTP details, and the bytes of each
 * direction DLP must look at: those runscan's scan does not find quiet) instead of its events;
 * anything else (TLS, another protocol, an upgrade, a hole, a direction past DlpFeed's
 * unchecked stretch, too many events or bytes waiting) hands the waiting events to Python in
 * their order (undefer), and the flow goes on as before: fastpcap.py's replay stays the
 * reference. Each flow's events keep their order; only Python's hooks of different flows,
 * which share nothing that changes a record, see them later. */

#define SP_DEFER_DIR 65536u   /* analysis.py UNCHECKED_STRETCH: past it DlpFeed streams */
#define SP_DEFER_EVENTS 1024u /* waiting events per flow */

static void defer_free(struct sp_run *r, struct sp_flow *f) {
    for (int d = 0; d < 2; d++) {
        r->deferred -= f->dbuf[d].cap;
        free(f->dbuf[d].p);
        f->dbuf[d] = (struct sp_dbuf){NULL, 0, 0};
    }
    r->deferred -= f->capdev * sizeof *f->dev;
    free(f->dev);
    f->dev = NULL;
    f->ndev = f->capdev = 0;
    f->defer = 0;
}

/* the waiting events go to Python, in their order; the flow's later ones go there directly */
static void undefer(struct sp_run *r, struct sp_flow *f) {
    if (!f->defer) return;
    size_t off[2] = {0, 0};
    for (size_t i = 0; i < f->ndev; i++) {
        uint32_t e = f->dev[i];
        if (!e) {
            sp_event(r, EV_ANALYZE, 0, f->no, 0, 0);
            continue;
        }
        int d = (int)(e & 1);
        size_t len = e >> 1;
        int64_t at = sp_put(r, f->dbuf[d].p + off[d], len);
        sp_event(r, EV_DATA, d, f->no, at, (int64_t)len);
        off[d] += len;
    }
    defer_free(r, f);
}

/* room for one more waiting event (0), within the run's cap on waiting bytes (else -1) */
static int defer_grow_events(struct sp_run *r, struct sp_flow *f) {
    if (f->ndev < f->capdev) return 0;
    size_t c = f->capdev ? f->capdev * 2 : 32;
    if (r->deferred + (c - f->capdev) * sizeof *f->dev > r->cfg.defer_cap) return -1;
    uint32_t *q = realloc(f->dev, c * sizeof *q);
    if (!q) return -1;
    r->deferred += (c - f->capdev) * sizeof *q;
    f->dev = q;
    f->capdev = c;
    return 0;
}

/* room for n more bytes in b (0), within the run's cap on waiting bytes (else -1) */
static int defer_grow_bytes(struct sp_run *r, struct sp_dbuf *b, size_t n) {
    if (b->n + n <= b->cap) return 0;
    size_t c = b->cap ? b->cap : 2048;
    while (c < b->n + n) c *= 2;
    if (r->deferred + (c - b->cap) > r->cfg.defer_cap) return -1;
    uint8_t *q = realloc(b->p, c);
    if (!q) return -1;
    r->deferred += c - b->cap;
    b->p = q;
    b->cap = c;
    return 0;
}

/* keep one waiting event (and its bytes; len 0: the analysis): 0, or -1 when the flow stops
   waiting (undefer: the caller sends this event itself) */
static int defer_event(struct sp_run *r, struct sp_flow *f, int dir, const uint8_t *data,
                       size_t len) {
    struct sp_dbuf *b = &f->dbuf[dir];
    if (f->ndev >= SP_DEFER_EVENTS || b->n + len > SP_DEFER_DIR
        || defer_grow_events(r, f) || defer_grow_bytes(r, b, len)) {
        undefer(r, f);
        return -1;
    }
    if (len) {
        if (f->first_dir < 0) f->first_dir = (int8_t)dir;
        memcpy(b->p + b->n, data, len);
        b->n += len;
        f->dev[f->ndev++] = (uint32_t)(len << 1 | (size_t)dir);
    } else {
        f->alen[0] = f->dbuf[0].n;
        f->alen[1] = f->dbuf[1].n;
        f->dev[f->ndev++] = 0;
    }
    return 0;
}

typedef void *(*rs_new_fn)(const uint32_t *ids, void *db);
typedef long long (*rs_scan_all_fn)(void *state, const uint8_t *data, size_t len,
                                    const uint64_t **pairs);
typedef void (*rs_free_fn)(void *state);

static int is_alnum(uint8_t c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* DlpEngine.stretch(data) == [] through its runscan scan: no expression of the engine matches
   anywhere in data (scanned as one whole stream) and it does not end in a letter or digit */
static int quiet(struct sp_run *r, const uint8_t *data, size_t len) {
    if (len && is_alnum(data[len - 1])) return 0;
    void *state = ((rs_new_fn)r->cfg.rs_new)((const uint32_t *)r->cfg.rs_ids, (void *)r->cfg.rs_db);
    if (!state) return 0;
    const uint64_t *pairs = NULL;
    long long n = ((rs_scan_all_fn)r->cfg.rs_scan_all)(state, data, len, &pairs);
    ((rs_free_fn)r->cfg.rs_free)(state);
    return n == 0;
}

static int is_space(uint8_t c) { /* what \s and bytes.strip() take */
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static uint8_t ascii_lower(uint8_t c) { return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c; }

static const char *const METHODS[] = {
    "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE", "PROPFIND",
    "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK",
};

struct sp_http {
    const uint8_t *method, *path, *host;
    size_t nmethod, npath, nhost;
};

/* http1.request_header(client, "host"): over the lines after the first up to the empty one
   (within 4096 bytes), the last named "host" (white space around the name, any case), its value
   without trailing CRs and white space; *n = 0 for none (or an empty value: probe() skips it) */
static const uint8_t *request_host(const uint8_t *c, size_t len, size_t *n) {
    *n = 0;
    if (len > 4096) len = 4096;
    const uint8_t *lf = memchr(c, '\n', len);
    if (!lf) return NULL;
    size_t start = (size_t)(lf - c); /* the LF before the second line */
    size_t end = len;
    for (size_t i = start; i < len; i++) { /* _EMPTY_LINE: \n\r*(?:\n|\Z) */
        if (c[i] != '\n') continue;
        size_t j = i + 1;
        while (j < len && c[j] == '\r') j++;
        if (j == len || c[j] == '\n') {
            end = i + 1;
            break;
        }
    }
    const uint8_t *found = NULL;
    size_t nfound = 0;
    for (size_t i = start; i < end; i++) { /* \n[ \t\r\v\f]*host[ \t\r\v\f]*:([^\n]*) */
        if (c[i] != '\n') continue;
        size_t j = i + 1;
        while (j < end && c[j] != '\n' && is_space(c[j])) j++;
        if (j + 4 > end || ascii_lower(c[j]) != 'h' || ascii_lower(c[j + 1]) != 'o'
            || ascii_lower(c[j + 2]) != 's' || ascii_lower(c[j + 3]) != 't')
            continue;
        j += 4;
        while (j < end && c[j] != '\n' && is_space(c[j])) j++;
        if (j >= end || c[j] != ':') continue;
        size_t v = j + 1, w = v;
        while (w < end && c[w] != '\n') w++;
        found = c + v;
        nfound = w - v;
    }
    if (!found) return NULL;
    while (nfound && found[nfound - 1] == '\r') nfound--;
    while (nfound && is_space(found[nfound - 1])) nfound--;
    while (nfound && is_space(found[0])) { found++; nfound--; }
    *n = nfound;
    return found;
}

/* protocols.detect(client, server) is HTTP/1.x with full confidence, and no detector before it
   (TLS, SSH, gRPC, HTTP/2), no in-band upgrade and no hello check can say otherwise: a request
   line (http1._REQUEST, a method of METHODS, an origin-form or "*" target) and a status line
   (http1._STATUS, not 101), a client that opens with it, no "upgrade:" in the client's first
   4096 bytes (upgrades._http). The details are http1.probe()'s. Else 0: Python decides. */
static int http_common(const uint8_t *c, size_t nc, const uint8_t *s, size_t ns,
                       const uint8_t *cfull, size_t ncfull, struct sp_http *h) {
    size_t lim = nc < 512 ? nc : 512;
    const uint8_t *lf = memchr(c, '\n', lim);
    if (!lf) return 0;
    size_t len = (size_t)(lf - c);
    while (len && c[len - 1] == '\r') len--;
    size_t m = 0;
    while (m < len && c[m] >= 'A' && c[m] <= 'Z') m++;
    if (m < 3 || m > 10 || m >= len || c[m] != ' ') return 0;
    int known = 0;
    for (size_t i = 0; i < sizeof METHODS / sizeof *METHODS; i++)
        if (strlen(METHODS[i]) == m && !memcmp(METHODS[i], c, m)) known = 1;
    if (!known || len < m + 1 + 1 + 9) return 0;
    const uint8_t *tail = c + len - 9;
    if (memcmp(tail, " HTTP/1.", 8) || (tail[8] != '0' && tail[8] != '1')) return 0;
    const uint8_t *t = c + m + 1;
    size_t nt = (size_t)(tail - t);
    if (!nt) return 0;
    for (size_t i = 0; i < nt; i++)
        if (is_space(t[i])) return 0;
    if (t[0] == '/') { /* target_path: up to the first of ?;# (never empty: it starts with /) */
        size_t k = 0;
        while (k < nt && t[k] != '?' && t[k] != ';' && t[k] != '#') k++;
        h->npath = k;
    } else if (nt == 1 && t[0] == '*') {
        h->npath = 1;
    } else {
        return 0; /* absolute- or authority-form: Python */
    }
    h->method = c;
    h->nmethod = m;
    h->path = t;
    size_t n64 = ns < 64 ? ns : 64;
    if (n64 < 12 || memcmp(s, "HTTP/1.", 7) || (s[7] != '0' && s[7] != '1') || s[8] != ' '
        || s[9] < '1' || s[9] > '5' || s[10] < '0' || s[10] > '9' || s[11] < '0' || s[11] > '9')
        return 0;
    if (!(n64 == 12 || s[12] == ' ' || (s[12] == '\n' && n64 == 13))) return 0;
    if (!memcmp(s + 9, "101", 3)) return 0;
    size_t nup = ncfull < 4096 ? ncfull : 4096;
    static const char up[] = "upgrade:";
    for (size_t i = 0; i + 8 <= nup; i++) {
        size_t k = 0;
        while (k < 8 && ascii_lower(cfull[i + k]) == (uint8_t)up[k]) k++;
        if (k == 8) return 0;
    }
    h->host = request_host(c, nc, &h->nhost);
    return 1;
}

static void put_u32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }

/* ---------------------------------------------------------------- the common connection's line */
/* With cfg.lines (fastpcap.py: the caller writes JSON lines and tallies, nothing else), a common
 * connection whose two directions are quiet (no DLP in Python, so no finding and no decoding
 * note) is finished here: its record's JSON line, byte for byte the ConnectionRecord.json_line()
 * of the record fastpcap.py _common would build, goes to Python in an EV_LINES event that holds
 * every line written since the last other event (tests/network/test_pcap_common.py compares the
 * two paths' lines on every test capture). Nothing in a line can hold a card number or an SSN
 * the masking gate would have masked:
 *  - the id (UUID-shaped: the gate never reads one as a number), the times (connection.py _iso:
 *    tests/security/test_masking_gate.py holds them to the gate), the counts, and this code's
 *    literals (transport, protocol, flag letters, state, detail keys, the method's capital
 *    letters, the status's three digits);
 *  - each peer: for an address a workload owns, its JSON as Python wrote it through the gate
 *    (connection.peer_json_parts), registered with sp_peer (every such address, before the
 *    first frame and again whenever the identities change); any other address is "external"
 *    with the address as its name (Directory.lookup), written here as Python writes it: an
 *    IPv4 address in its dotted form (which the gate never changes: _DOTTED_QUAD), an IPv6 one
 *    compressed as ipaddress writes it (at most four hex digits between colons: never nine
 *    close digits), except an IPv4-mapped one (Python versions spell it differently), which
 *    goes to Python;
 *  - the path and the host: only when they hold no nine close digits (sp_close_digits, the
 *    gate's first test: without them it returns the text unchanged); else the connection goes
 *    to Python. */

#define SP_PEERS 32768u      /* slots of the peers' table (a power of two) */
#define SP_PEERS_KEPT 16384u /* addresses it holds at most (fastpcap.py PEERS_KEPT) */

/* redact.py _nine_close_digits(text.encode()) for text = p[0:n] decoded as latin-1 (a byte past
   ASCII becomes two bytes, neither a digit nor deleted): with the bytes that may stand between
   a number's digits deleted (" \t._-+%dDeE"), nine digits in a row. 0: the gate returns the
   text unchanged. */
int sp_close_digits(const uint8_t *p, size_t n) {
    int run = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c >= '0' && c <= '9') {
            if (++run == 9) return 1;
        } else if (!(c == ' ' || c == '\t' || c == '.' || c == '_' || c == '-' || c == '+'
                     || c == '%' || c == 'd' || c == 'D' || c == 'e' || c == 'E')) {
            run = 0;
        }
    }
    return 0;
}

static struct sp_peer *peer_slot(struct sp_peer *t, const uint8_t *ip, uint8_t len) {
    uint64_t h = 1469598103934665603ull ^ len; /* FNV-1a */
    for (uint8_t i = 0; i < len; i++) h = (h ^ ip[i]) * 1099511628211ull;
    size_t i = (size_t)(h ^ h >> 29) & (SP_PEERS - 1);
    while (t[i].iplen && !(t[i].iplen == len && !memcmp(t[i].ip, ip, len)))
        i = (i + 1) & (SP_PEERS - 1); /* at most half the slots are taken */
    return &t[i];
}

static const struct sp_peer *peer_find(const struct sp_run *r, const uint8_t *ip, uint8_t len) {
    if (!r->peers) return NULL;
    const struct sp_peer *p = peer_slot(r->peers, ip, len);
    return p->iplen ? p : NULL;
}

/* The JSON of the peer at ip (4 or 16 bytes): a before its port, b after it (replacing what it
   had; a NULL: Python writes its connections): 0, or -1 (a full table, no memory, a bad length:
   its connections go to Python). */
int sp_peer(struct sp_run *r, const uint8_t *ip, uint32_t len, const char *a, uint32_t na,
            const char *b, uint32_t nb) {
    if (len != 4 && len != 16) return -1;
    if (!r->peers && !(r->peers = calloc(SP_PEERS, sizeof *r->peers))) return -1;
    struct sp_peer *p = peer_slot(r->peers, ip, (uint8_t)len);
    if (!p->iplen && r->npeers >= SP_PEERS_KEPT) return -1;
    char *json = NULL;
    if (a) {
        if (!(json = malloc((size_t)na + nb + 1))) return -1;
        memcpy(json, a, na);
        memcpy(json + na, b, nb);
    } else {
        na = nb = 0;
    }
    if (p->iplen) {
        free(p->json);
    } else {
        memcpy(p->ip, ip, len);
        p->iplen = (uint8_t)len;
        r->npeers++;
    }
    p->json = json;
    p->na = na;
    p->nb = nb;
    return 0;
}

/* lines on (1) or off (0): off while the workloads own more addresses than the table holds */
void sp_set_lines(struct sp_run *r, int on) { r->cfg.lines = on ? 1 : 0; }

/* forget every peer (the identities changed) */
void sp_peers_clear(struct sp_run *r) {
    if (!r->peers) return;
    for (size_t i = 0; i < SP_PEERS; i++) free(r->peers[i].json);
    memset(r->peers, 0, SP_PEERS * sizeof *r->peers);
    r->npeers = 0;
}

/* An address as flows.py _ip_text writes it (inet_ntoa; ipaddress for IPv6: lowercase hex
   groups without leading zeros, the first longest run of two or more zero groups as "::"), into
   out (46 bytes at least): its length, or -1 for an IPv4-mapped IPv6 address (Python versions
   spell it differently: Python writes those lines) or a bad length. */
int sp_ip_text(const uint8_t *ip, uint32_t len, char *out) {
    if (len == 4) return sprintf(out, "%u.%u.%u.%u", ip[0], ip[1], ip[2], ip[3]);
    if (len != 16) return -1;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    if (!memcmp(ip, mapped, 12)) return -1;
    unsigned g[8];
    for (int i = 0; i < 8; i++) g[i] = (unsigned)ip[2 * i] << 8 | ip[2 * i + 1];
    int best = -1, bestlen = 0;
    for (int i = 0; i < 8;) {
        if (g[i]) {
            i++;
            continue;
        }
        int j = i;
        while (j < 8 && !g[j]) j++;
        if (j - i > bestlen) {
            best = i;
            bestlen = j - i;
        }
        i = j;
    }
    if (bestlen < 2) best = -1;
    int n = 0;
    for (int i = 0; i < 8; i++) {
        if (i == best) {
            n += sprintf(out + n, i == 0 ? "::" : ":");
            i += bestlen - 1;
            continue;
        }
        n += sprintf(out + n, "%x", g[i]);
        if (i < 7) out[n++] = ':';
    }
    out[n] = 0;
    return n;
}

/* days since 1970-01-01 -> the proleptic Gregorian date (H. Hinnant's civil_from_days) */
static void civil(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* v in n decimal digits, zero-padded (v < 10^n); the end */
static char *zero_padded(char *p, unsigned v, int n) {
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + n;
}

/* connection.py _iso(ts): datetime.fromtimestamp(ts, UTC).isoformat(), the microseconds rounded
   half to even (Python's round(), nearbyint here) with their carry; its length, or -1 past what
   a datetime holds (Python writes that record) */
static int iso(double ts, char *out, size_t room) {
    if (!(ts >= 0.0 && ts <= SP_MAX_TIMESTAMP)) return -1;
    double whole, frac = modf(ts, &whole);
    double us = nearbyint(frac * 1e6);
    if (us >= 1e6) {
        whole += 1.0;
        us -= 1e6;
    }
    if (whole > SP_MAX_TIMESTAMP) return -1;
    int64_t secs = (int64_t)whole, y;
    unsigned m, d;
    civil(secs / 86400, &y, &m, &d); /* (a year of 1970 to 9999: four digits) */
    unsigned s = (unsigned)(secs % 86400);
    if (room < 33) return -1;
    char *p = out;
    p = zero_padded(p, (unsigned)y, 4);
    *p++ = '-';
    p = zero_padded(p, m, 2);
    *p++ = '-';
    p = zero_padded(p, d, 2);
    *p++ = 'T';
    p = zero_padded(p, s / 3600, 2);
    *p++ = ':';
    p = zero_padded(p, s / 60 % 60, 2);
    *p++ = ':';
    p = zero_padded(p, s % 60, 2);
    if (us > 0) {
        *p++ = '.';
        p = zero_padded(p, (unsigned)us, 6);
    }
    memcpy(p, "+00:00", 6);
    return (int)(p + 6 - out);
}

static void put_text(struct sp_run *r, const char *s) { sp_put(r, s, strlen(s)); }

static void put_dec(struct sp_run *r, uint64_t v) {
    char b[20];
    size_t n = sizeof b;
    do {
        b[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    sp_put(r, b + n, sizeof b - n);
}

/* json.encoder.encode_basestring_ascii of p[0:n] decoded as latin-1 (as json.dumps writes it) */
static void put_quoted(struct sp_run *r, const uint8_t *p, size_t n) {
    static const char hex[] = "0123456789abcdef";
    sp_put(r, "\"", 1);
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c >= ' ' && c <= '~' && c != '"' && c != '\\') continue;
        sp_put(r, p + from, i - from);
        from = i + 1;
        char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        size_t k = 2;
        switch (c) {
        case '"': e[1] = '"'; break;
        case '\\': e[1] = '\\'; break;
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        default: k = 6;
        }
        sp_put(r, e, k);
    }
    sp_put(r, p + from, n - from);
    sp_put(r, "\"", 1);
}

/* a peer's JSON: the registered one, else the external address's (connection.py _peer_json) */
static void put_peer(struct sp_run *r, const struct sp_peer *p, const char *ext, int next,
                     uint16_t port) {
    if (p) {
        sp_put(r, p->json, p->na);
        put_dec(r, port);
        sp_put(r, p->json + p->na, p->nb);
        return;
    }
    put_text(r, "{\"ip\": \"");
    sp_put(r, ext, (size_t)next);
    put_text(r, "\", \"port\": ");
    put_dec(r, port);
    put_text(r, ", \"kind\": \"external\", \"name\": \"");
    sp_put(r, ext, (size_t)next);
    put_text(r, "\"}");
}

static const char *const STATE_NAMES[] = {"closed", "reset", "timeout", "evicted", "active"};

/* flows.py _FLAG_TEXT: the letters of the flags seen, in the order S A P F R U E C */
static void put_flags(struct sp_run *r, uint8_t bits) {
    static const struct { uint8_t bit; char name; } names[] = {
        {TH_SYN, 'S'}, {TH_ACK, 'A'}, {0x08, 'P'}, {TH_FIN, 'F'},
        {TH_RST, 'R'}, {0x20, 'U'}, {0x40, 'E'}, {0x80, 'C'},
    };
    char b[10];
    size_t n = 0;
    b[n++] = '"';
    for (size_t i = 0; i < 8; i++)
        if (bits & names[i].bit) b[n++] = names[i].name;
    b[n++] = '"';
    sp_put(r, b, n);
}

static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static double get_f64(const uint8_t *p) {
    uint64_t bits = get_u64(p);
    double v;
    memcpy(&v, &bits, 8);
    return v;
}

static void put_f64(uint8_t *p, double v) {
    uint64_t bits;
    memcpy(&bits, &v, 8);
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(bits >> (8 * i));
}

/* What a line needs beyond the flow: its peers (registered, or external and spelled here) and
   its times. */
struct sp_line {
    const struct sp_peer *cp, *sp;
    char cext[48], sext[48], start[48], end[48];
    int ncext, nsext, nstart, nend;
};

/* Can the common connection f's line be written here (h: its HTTP details)? 0 when Python must
   write its record: an address whose JSON Python writes, a path or host with nine close digits,
   a time past a datetime's. */
static int lineable(const struct sp_run *r, const struct sp_flow *f, const struct sp_http *h,
                    struct sp_line *L) {
    L->cp = peer_find(r, f->cip, f->iplen);
    L->sp = peer_find(r, f->sip, f->iplen);
    L->ncext = L->cp ? 0 : sp_ip_text(f->cip, f->iplen, L->cext);
    L->nsext = L->sp ? 0 : sp_ip_text(f->sip, f->iplen, L->sext);
    if ((L->cp && !L->cp->json) || (L->sp && !L->sp->json) || L->ncext < 0 || L->nsext < 0
        || sp_close_digits(h->path, h->npath) || sp_close_digits(h->host, h->nhost))
        return 0;
    L->nstart = iso(f->first, L->start, sizeof L->start);
    L->nend = iso(f->last, L->end, sizeof L->end);
    return L->nstart >= 0 && L->nend >= 0;
}

/* Write f's JSON line (status: the three digits of its status line), ending in a newline,
   with "dlp": []; returns where the [] is, counted from the line's first byte. */
static size_t put_line(struct sp_run *r, const struct sp_flow *f, int state,
                       const struct sp_http *h, const uint8_t *status, const struct sp_line *L) {
    size_t from = r->ndata;
    put_text(r, "{\"id\": \"");
    put_text(r, r->cfg.id_run);
    char no[16]; /* the number in at least 12 hex digits ({number:012x}) */
    size_t k = sizeof no;
    for (uint64_t v = f->no; v || k > sizeof no - 12; v >>= 4) no[--k] = "0123456789abcdef"[v & 15];
    sp_put(r, no + k, sizeof no - k);
    put_text(r, "\", \"start\": \"");
    sp_put(r, L->start, (size_t)L->nstart);
    put_text(r, "\", \"end\": \"");
    sp_put(r, L->end, (size_t)L->nend);
    put_text(r, f->iplen == 4 ? "\", \"transport\": \"tcp\", \"ip_version\": 4, \"client\": "
                              : "\", \"transport\": \"tcp\", \"ip_version\": 6, \"client\": ");
    put_peer(r, L->cp, L->cext, L->ncext, f->cport);
    put_text(r, ", \"server\": ");
    put_peer(r, L->sp, L->sext, L->nsext, f->sport);
    put_text(r, ", \"protocol\": \"proto.http\", \"encrypted\": false, \"upgrade\": null, "
                "\"tls\": null, \"bytes\": {\"to_server\": ");
    put_dec(r, f->bytes[0]);
    put_text(r, ", \"to_client\": ");
    put_dec(r, f->bytes[1]);
    put_text(r, "}, \"packets\": {\"to_server\": ");
    put_dec(r, f->packets[0]);
    put_text(r, ", \"to_client\": ");
    put_dec(r, f->packets[1]);
    put_text(r, "}, \"tcp_flags\": {\"client\": ");
    put_flags(r, f->flags[0]);
    put_text(r, ", \"server\": ");
    put_flags(r, f->flags[1]);
    put_text(r, "}, \"state\": \"");
    put_text(r, STATE_NAMES[state]);
    put_text(r, "\", \"gaps\": 0, \"inspected_bytes\": ");
    put_dec(r, f->st[0].delivered + f->st[1].delivered);
    put_text(r, ", \"dlp\": ");
    size_t dlp = r->ndata - from;
    put_text(r, "[], \"details\": {\"http.method\": ");
    put_quoted(r, h->method, h->nmethod);
    put_text(r, ", \"http.path\": ");
    put_quoted(r, h->path, h->npath);
    if (h->nhost) {
        put_text(r, ", \"http.host\": ");
        put_quoted(r, h->host, h->nhost);
    }
    put_text(r, ", \"http.status\": ");
    put_quoted(r, status, 3);
    put_text(r, "}}\n");
    return dlp;
}

/* Write the common connection f's line when it can be (1; else 0: Python writes its record), in
   an EV_LINES event: its flow number is the count of lines, its bytes the earliest start and the
   latest end of their connections (two doubles, little-endian) and the lines; the last such
   event grows while nothing else comes after it. */
static int line(struct sp_run *r, const struct sp_flow *f, int state, const struct sp_http *h,
                const uint8_t *status) {
    struct sp_line L;
    if (!lineable(r, f, h, &L)) return 0;
    int64_t *last = r->nev ? r->ev + r->nev - 4 : NULL;
    int grow = last && (last[0] & 0xFF) == EV_LINES && (uint64_t)(last[2] + last[3]) == r->ndata;
    int64_t at = 0;
    if (!grow) {
        uint8_t span[16];
        put_f64(span, f->first);
        put_f64(span + 8, f->last);
        at = sp_put(r, span, sizeof span);
    }
    size_t from = r->ndata;
    put_line(r, f, state, h, status, &L);
    if (r->oom) return 1; /* the run stops: out of memory */
    int64_t size = (int64_t)(r->ndata - from);
    if (!grow) {
        sp_event(r, EV_LINES, 0, 1, at, 16 + size);
        return 1;
    }
    uint8_t *span = r->data + last[2];
    if (f->first < get_f64(span)) put_f64(span, f->first);
    if (f->last > get_f64(span + 8)) put_f64(span + 8, f->last);
    last[1]++;
    last[3] += size;
    return 1;
}

/* Is this finished flow the common connection? Then its EV_COMMON: the record's facts; method,
   path and host lengths (1, 2, 2 bytes), the status (3), the three strings; then per direction
   one byte, 1 when DLP must look at it (not quiet), followed for such a direction by the number
   of its pieces (4 bytes), their lengths (4 each) and its bytes: the pieces Python's DlpFeed
   would have been fed, in order (the first is the head the hello check passed, as decided).
   With cfg.lines and both directions quiet, its JSON line instead when line() can write it;
   with one loud, when its line can be written here, the event's direction is 1 and its bytes
   end with the line's length and where its "dlp": [] is (4 bytes each) and the line: Python
   puts the findings in (fastpcap.py _common_line). */
static int common(struct sp_run *r, struct sp_flow *f, int state, const uint8_t *facts,
                  size_t nfacts) {
    if (!f->defer || f->first_dir != 0 || f->st[0].gaps || f->st[1].gaps) return 0;
    const struct sp_dbuf *cb = &f->dbuf[0], *sb = &f->dbuf[1];
    if (!f->alen[0] || !f->alen[1] || f->alen[0] > cb->n || f->alen[1] > sb->n) return 0;
    struct sp_http h;
    if (!http_common(cb->p, f->alen[0], sb->p, f->alen[1], cb->p, cb->n, &h)) return 0;
    uint8_t loud[2] = {!quiet(r, cb->p, cb->n), !quiet(r, sb->p, sb->n)};
    if (r->cfg.lines && !loud[0] && !loud[1] && line(r, f, state, &h, sb->p + 9)) {
        defer_free(r, f);
        return 1;
    }
    uint8_t lens[8];
    lens[0] = (uint8_t)h.nmethod;
    lens[1] = (uint8_t)h.npath; lens[2] = (uint8_t)(h.npath >> 8);
    lens[3] = (uint8_t)h.nhost; lens[4] = (uint8_t)(h.nhost >> 8);
    memcpy(lens + 5, sb->p + 9, 3);
    int64_t at = sp_put(r, facts, nfacts);
    sp_put(r, lens, sizeof lens);
    sp_put(r, h.method, h.nmethod);
    sp_put(r, h.path, h.npath);
    if (h.nhost) sp_put(r, h.host, h.nhost);
    size_t size = nfacts + sizeof lens + h.nmethod + h.npath + h.nhost;
    struct sp_line L;
    int with_line = r->cfg.lines && lineable(r, f, &h, &L);
    for (int d = 0; d < 2; d++) {
        sp_put(r, &loud[d], 1);
        size++;
        if (!loud[d]) continue;
        uint32_t pieces = 0;
        for (size_t i = 0; i < f->ndev; i++)
            if (f->dev[i] && (int)(f->dev[i] & 1) == d) pieces++;
        uint8_t u[4];
        put_u32(u, pieces);
        sp_put(r, u, 4);
        for (size_t i = 0; i < f->ndev; i++) {
            if (!f->dev[i] || (int)(f->dev[i] & 1) != d) continue;
            put_u32(u, f->dev[i] >> 1);
            sp_put(r, u, 4);
        }
        sp_put(r, f->dbuf[d].p, f->dbuf[d].n);
        size += 4 + 4 * (size_t)pieces + f->dbuf[d].n;
    }
    if (with_line) {
        uint8_t u[8] = {0};
        int64_t head = sp_put(r, u, sizeof u);
        size_t from = r->ndata;
        size_t dlp = put_line(r, f, state, &h, sb->p + 9, &L);
        if (r->oom) return 1; /* the run stops: out of memory */
        put_u32(r->data + head, (uint32_t)(r->ndata - from));
        put_u32(r->data + head + 4, (uint32_t)dlp);
        size += sizeof u + (r->ndata - from);
    }
    defer_free(r, f);
    sp_event(r, EV_COMMON, with_line, f->no, at, (int64_t)size);
    return 1;
}

/* ---------------------------------------------------------------- reassembly (reassembly.py) */

static int64_t seq_diff(uint32_t a, uint32_t b) {
    uint32_t d = (a - b) & SP_MASK;
    return (d & 0x80000000u) ? (int64_t)d - 0x100000000LL : (int64_t)d;
}

struct sp_ctx { struct sp_run *r; struct sp_flow *f; int dir; };

static uint64_t held(const struct sp_stream *s) { return s->buffered + s->headlen; }

/* the first position in order whose seq is >= seq */
static size_t order_bound(const struct sp_stream *s, uint32_t seq) {
    size_t lo = 0, hi = s->norder;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if ((uint32_t)(s->order[mid] >> 32) < seq) lo = mid + 1; else hi = mid;
    }
    return lo;
}

/* the slot of the held segment at seq, or -1 (not while draining) */
static int64_t ooo_find(const struct sp_stream *s, uint32_t seq) {
    size_t i = order_bound(s, seq);
    if (i < s->norder && (uint32_t)(s->order[i] >> 32) == seq) return (int64_t)(uint32_t)s->order[i];
    return -1;
}

/* position in order of the segment earliest relative to next_seq (order not empty) */
static size_t ooo_earliest(const struct sp_stream *s) {
    size_t i = order_bound(s, (uint32_t)((s->next_seq + 0x80000000u) & SP_MASK));
    return i == s->norder ? 0 : i;
}

static void ooo_clear(struct sp_stream *s) {
    for (size_t i = 0; i < s->nslots; i++) {
        free(s->seg[i].data);
        s->seg[i].data = NULL;
    }
    s->nooo = s->nslots = s->nfree = s->norder = 0;
}

static void stream_free(struct sp_stream *s) {
    ooo_clear(s);
    free(s->seg);
    free(s->freeslots);
    free(s->order);
    free(s->now);
    free(s->later);
    s->seg = NULL;
    s->freeslots = NULL;
    s->order = NULL;
    s->now = s->later = NULL;
    s->cap = 0;
}

/* room for one more held segment; 0 when out of memory */
static int ooo_room(struct sp_stream *s) {
    if (s->nfree || s->nslots < s->cap) return 1;
    size_t cap = s->cap ? s->cap * 2 : 8;
    struct sp_seg *seg = realloc(s->seg, cap * sizeof *seg);
    if (seg) s->seg = seg;
    uint32_t *fs = realloc(s->freeslots, cap * sizeof *fs);
    if (fs) s->freeslots = fs;
    uint64_t *order = realloc(s->order, cap * sizeof *order);
    if (order) s->order = order;
    struct sp_due *now = realloc(s->now, cap * sizeof *now);
    if (now) s->now = now;
    struct sp_due *later = realloc(s->later, cap * sizeof *later);
    if (later) s->later = later;
    if (!seg || !fs || !order || !now || !later) return 0;
    s->cap = cap;
    return 1;
}

static void due_push(struct sp_due *h, size_t *n, struct sp_due v) {
    size_t i = (*n)++;
    while (i) {
        size_t up = (i - 1) / 2;
        if (h[up].rank <= v.rank) break;
        h[i] = h[up];
        i = up;
    }
    h[i] = v;
}

static struct sp_due due_pop(struct sp_due *h, size_t *n) {
    struct sp_due top = h[0], v = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t k = 2 * i + 1;
        if (k >= *n) break;
        if (k + 1 < *n && h[k + 1].rank < h[k].rank) k++;
        if (v.rank <= h[k].rank) break;
        h[i] = h[k];
        i = k;
    }
    if (*n) h[i] = v;
    return top;
}

static void drain(struct sp_ctx *c);

static void deliver(struct sp_ctx *c, const uint8_t *data, uint64_t len) {
    struct sp_run *r = c->r;
    struct sp_stream *s = &c->f->st[c->dir];
    uint64_t room = r->cfg.depth - s->delivered;
    if (len > room) {
        s->past_depth += len - room;
        len = room;
    }
    s->next_seq = (uint32_t)((s->next_seq + len) & SP_MASK);
    s->delivered += len;
    if (s->keep_head) s->headlen += len;
    if (len) {
        c->f->evented = 1;
        if (!c->f->defer || defer_event(r, c->f, c->dir, data, len)) {
            int64_t at = sp_put(r, data, len);
            sp_event(r, EV_DATA, c->dir, c->f->no, at, (int64_t)len);
        }
    }
    if (s->delivered >= r->cfg.depth && s->nooo) {
        ooo_clear(s);
        s->buffered = 0;
    }
}

/* move the held segments at or before next_seq from order to drain's heaps (Stream._due) */
static void due(struct sp_stream *s, size_t *nnow, size_t *nlater, int64_t at) {
    while (s->norder) {
        size_t i = ooo_earliest(s);
        uint64_t e = s->order[i];
        if (seq_diff((uint32_t)(e >> 32), s->next_seq) > 0) return;
        memmove(s->order + i, s->order + i + 1, (s->norder - i - 1) * sizeof *s->order);
        s->norder--;
        uint32_t slot = (uint32_t)e;
        struct sp_due v = {s->seg[slot].rank, slot};
        if ((int64_t)v.rank > at)
            due_push(s->now, nnow, v);
        else
            due_push(s->later, nlater, v);
    }
}

/* Stream._drain: the held segments in arrival order, walk after walk while one delivers */
static void drain(struct sp_ctx *c) {
    struct sp_run *r = c->r;
    struct sp_stream *s = &c->f->st[c->dir];
    if (!s->nooo || s->delivered >= r->cfg.depth) return;
    size_t nnow = 0, nlater = 0;
    int64_t at = -1;
    due(s, &nnow, &nlater, at);
    while (s->nooo && s->delivered < r->cfg.depth) {
        if (!nnow) {
            if (!nlater) break;
            struct sp_due *h = s->now; /* the next walk, from the start */
            s->now = s->later;
            s->later = h;
            nnow = nlater;
            nlater = 0;
            at = -1;
            continue;
        }
        struct sp_due v = due_pop(s->now, &nnow);
        at = (int64_t)v.rank;
        struct sp_seg g = s->seg[v.slot];
        s->seg[v.slot].data = NULL; /* popped before delivery (which may clear them all) */
        s->freeslots[s->nfree++] = v.slot;
        s->nooo--;
        s->buffered -= g.len;
        int64_t rel = seq_diff(g.seq, s->next_seq);
        if (rel + (int64_t)g.len > 0) {
            uint64_t skip = rel < 0 ? (uint64_t)(-rel) : 0;
            deliver(c, g.data + skip, g.len - skip);
            if (s->nooo) due(s, &nnow, &nlater, at);
        }
        free(g.data);
    }
}

static int first_buffered(struct sp_stream *s, uint32_t *out) {
    if (!s->norder) return 0;
    *out = (uint32_t)(s->order[ooo_earliest(s)] >> 32);
    return 1;
}

static void skip_to(struct sp_ctx *c, uint32_t seq) {
    struct sp_stream *s = &c->f->st[c->dir];
    int64_t missing = seq_diff(seq, s->next_seq);
    if (missing <= 0) {
        drain(c);
        return;
    }
    s->gaps++;
    s->next_seq = seq;
    c->f->evented = 1;
    undefer(c->r, c->f); /* a hole: never the common connection */
    sp_event(c->r, EV_GAP, c->dir, c->f->no, missing, 0);
    drain(c);
}

/* Stream.segment: the change in bytes held by the stream */
static int64_t segment(struct sp_ctx *c, uint32_t seq, const uint8_t *data, uint64_t length) {
    struct sp_run *r = c->r;
    struct sp_stream *s = &c->f->st[c->dir];
    int64_t before0 = -1;
    for (;;) {
        if (s->delivered >= r->cfg.depth) {
            s->past_depth += length;
            return before0 < 0 ? 0 : (int64_t)held(s) - before0;
        }
        if (!s->started) {
            s->next_seq = seq;
            s->started = 1;
        }
        int64_t rel = seq_diff(seq, s->next_seq);
        if (rel < 0) {
            if (rel + (int64_t)length <= 0)
                return before0 < 0 ? 0 : (int64_t)held(s) - before0;
            data += -rel;
            length -= (uint64_t)(-rel);
            seq = s->next_seq;
            rel = 0;
        }
        int64_t before = (int64_t)held(s);
        if (before0 < 0) before0 = before;
        if (rel == 0) {
            deliver(c, data, length);
            if (s->nooo) drain(c);
            return (int64_t)held(s) - before0;
        }
        int64_t i = ooo_find(s, seq);
        if (s->buffered + length > r->cfg.ooo_limit || (i < 0 && s->nooo >= r->cfg.ooo_segments)) {
            /* no room (bytes or segments): give up on the hole before the earliest data held
               (or this segment), then take the segment again (each round delivers at least one
               held segment) */
            uint32_t first;
            int have = first_buffered(s, &first);
            skip_to(c, (!have || seq_diff(seq, first) < 0) ? seq : first);
            continue;
        }
        if (i < 0 || s->seg[i].len < length) {
            if (i < 0 && !ooo_room(s)) {
                r->oom = 1;
                return 0;
            }
            uint8_t *copy = malloc(length ? length : 1);
            if (!copy) {
                r->oom = 1;
                return 0;
            }
            memcpy(copy, data, length);
            if (i < 0) {
                uint32_t slot = s->nfree ? s->freeslots[--s->nfree] : (uint32_t)s->nslots++;
                s->seg[slot] = (struct sp_seg){seq, (uint32_t)length, s->arrivals++, copy};
                size_t at = order_bound(s, seq);
                memmove(s->order + at + 1, s->order + at, (s->norder - at) * sizeof *s->order);
                s->order[at] = (uint64_t)seq << 32 | slot;
                s->norder++;
                s->nooo++;
                s->buffered += length;
            } else { /* a longer copy keeps the place */
                s->buffered += length - s->seg[i].len;
                free(s->seg[i].data);
                s->seg[i].data = copy;
                s->seg[i].len = (uint32_t)length;
            }
        }
        return (int64_t)held(s) - before0;
    }
}

static int64_t acked(struct sp_ctx *c, uint32_t ack) {
    struct sp_stream *s = &c->f->st[c->dir];
    if (!s->started || s->delivered >= c->r->cfg.depth) return 0;
    int64_t ahead = seq_diff(ack, s->next_seq);
    if (ahead <= 0 ||
        (s->fin_seq >= 0 && ack == (uint32_t)((s->fin_seq + 1) & SP_MASK) && ahead == 1))
        return 0;
    int64_t before = (int64_t)held(s);
    uint32_t first;
    if (first_buffered(s, &first) && seq_diff(first, ack) < 0)
        skip_to(c, first);
    else
        skip_to(c, ack);
    return (int64_t)held(s) - before;
}

static int64_t stream_flush(struct sp_ctx *c) {
    struct sp_stream *s = &c->f->st[c->dir];
    int64_t before = (int64_t)held(s);
    while (s->nooo && s->delivered < c->r->cfg.depth) {
        uint32_t first;
        if (first_buffered(s, &first)) skip_to(c, first);
    }
    s->buffered = 0;
    ooo_clear(s);
    return (int64_t)held(s) - before;
}

static int64_t stream_release(struct sp_stream *s) {
    int64_t freed = (int64_t)held(s);
    s->headlen = 0;
    s->keep_head = 0;
    ooo_clear(s);
    s->buffered = 0;
    return freed;
}

/* ---------------------------------------------------------------- flow table (flows.py) */

static uint64_t key_hash(const uint8_t *src, uint16_t sport, const uint8_t *dst, uint16_t dport,
                         uint8_t len, uint8_t proto) {
    uint64_t h = 1469598103934665603ULL ^ len ^ ((uint64_t)proto << 8);
    for (int i = 0; i < len; i++) h = (h ^ src[i]) * 1099511628211ULL;
    for (int i = 0; i < len; i++) h = (h ^ dst[i]) * 1099511628211ULL;
    h = (h ^ sport) * 1099511628211ULL;
    h = (h ^ dport) * 1099511628211ULL;
    return h ^ (h >> 29);
}

/* the key of a flow's node: direction 0 is client -> server */
static void node_key(const struct sp_node *n, const uint8_t **src, uint16_t *sport,
                     const uint8_t **dst, uint16_t *dport) {
    const struct sp_flow *f = n->flow;
    if (n == &f->node[0]) {
        *src = f->cip; *sport = f->cport; *dst = f->sip; *dport = f->sport;
    } else {
        *src = f->sip; *sport = f->sport; *dst = f->cip; *dport = f->cport;
    }
}

static struct sp_node *lookup(struct sp_run *r, const uint8_t *src, uint16_t sport,
                              const uint8_t *dst, uint16_t dport, uint8_t len, uint8_t proto) {
    uint64_t h = key_hash(src, sport, dst, dport, len, proto);
    for (struct sp_node *n = r->buckets[h & (r->nbuckets - 1)]; n; n = n->next) {
        const struct sp_flow *f = n->flow;
        if (f->iplen != len || f->proto != proto) continue;
        const uint8_t *ns, *nd;
        uint16_t nsp, ndp;
        node_key(n, &ns, &nsp, &nd, &ndp);
        if (nsp == sport && ndp == dport && !memcmp(ns, src, len) && !memcmp(nd, dst, len))
            return n;
    }
    return NULL;
}

static void bucket_insert(struct sp_run *r, struct sp_node *n) {
    const uint8_t *s, *d;
    uint16_t sp, dp;
    node_key(n, &s, &sp, &d, &dp);
    uint64_t h = key_hash(s, sp, d, dp, n->flow->iplen, n->flow->proto);
    struct sp_node **b = &r->buckets[h & (r->nbuckets - 1)];
    n->next = *b;
    *b = n;
}

static void bucket_remove(struct sp_run *r, struct sp_node *n) {
    const uint8_t *s, *d;
    uint16_t sp, dp;
    node_key(n, &s, &sp, &d, &dp);
    uint64_t h = key_hash(s, sp, d, dp, n->flow->iplen, n->flow->proto);
    for (struct sp_node **p = &r->buckets[h & (r->nbuckets - 1)]; *p; p = &(*p)->next)
        if (*p == n) {
            *p = n->next;
            return;
        }
}

static int grow(struct sp_run *r) {
    size_t nb = r->nbuckets * 2;
    struct sp_node **b = calloc(nb, sizeof *b);
    if (!b) return -1;
    struct sp_node **old = r->buckets;
    size_t on = r->nbuckets;
    r->buckets = b;
    r->nbuckets = nb;
    for (size_t i = 0; i < on; i++) {
        struct sp_node *n = old[i];
        while (n) {
            struct sp_node *next = n->next;
            bucket_insert(r, n);
            n = next;
        }
    }
    free(old);
    return 0;
}

static void analyze(struct sp_run *r, struct sp_flow *f) {
    f->analyzed = 1;
    f->evented = 1;
    if (!f->defer || defer_event(r, f, 0, NULL, 0)) sp_event(r, EV_ANALYZE, 0, f->no, 0, 0);
    for (int d = 0; d < 2; d++) r->memory -= stream_release(&f->st[d]);
}

static void put_u64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }

static void finish(struct sp_run *r, struct sp_flow *f, int state) {
    if (f->done) return;
    f->done = 1;
    for (int d = 0; d < 2; d++) {
        struct sp_ctx c = {r, f, d};
        r->memory += stream_flush(&c);
    }
    if (!f->analyzed) analyze(r, f);
    int record = f->payload || f->synack;
    if (record) r->fstat[F_RECORDS]++;
    /* the record's facts: see fastpcap.py FACTS */
    uint8_t b[8 * 11 + 2 + 2 + 4 + 1 + 32];
    uint8_t *p = b;
    uint64_t tsbits;
    memcpy(&tsbits, &f->first, 8); put_u64(p, tsbits); p += 8;
    memcpy(&tsbits, &f->last, 8); put_u64(p, tsbits); p += 8;
    put_u64(p, f->bytes[0]); p += 8;
    put_u64(p, f->bytes[1]); p += 8;
    put_u64(p, f->packets[0]); p += 8;
    put_u64(p, f->packets[1]); p += 8;
    put_u64(p, f->st[0].gaps + f->st[1].gaps); p += 8;
    put_u64(p, f->st[0].delivered + f->st[1].delivered); p += 8;
    put_u64(p, f->st[0].delivered); p += 8;
    put_u64(p, f->st[1].delivered); p += 8;
    put_u64(p, f->no); p += 8;
    *p++ = f->flags[0];
    *p++ = f->flags[1];
    *p++ = (uint8_t)f->cport; *p++ = (uint8_t)(f->cport >> 8);
    *p++ = (uint8_t)f->sport; *p++ = (uint8_t)(f->sport >> 8);
    *p++ = f->proto;
    *p++ = f->iplen;
    *p++ = (uint8_t)state;
    memcpy(p, f->cip, 16); p += 16;
    memcpy(p, f->sip, 16); p += 16;
    f->finished = 1;
    if (record && common(r, f, state, b, (size_t)(p - b))) return;
    undefer(r, f);
    int64_t at = sp_put(r, b, (size_t)(p - b));
    sp_event(r, EV_FINISH, record, f->no, at, (int64_t)(p - b));
}

static void remove_flow(struct sp_run *r, struct sp_flow *f) {
    bucket_remove(r, &f->node[0]);
    r->entries--;
    if (!f->self_pair) {
        bucket_remove(r, &f->node[1]);
        r->entries--;
    }
    for (int d = 0; d < 2; d++) {
        r->memory -= stream_release(&f->st[d]);
        stream_free(&f->st[d]);
    }
    undefer(r, f); /* (a finished flow waits no more) */
    if (f->evented && !f->finished) sp_event(r, EV_DROP, 0, f->no, 0, 0);
    if (f->prev) f->prev->next = f->next; else r->head = f->next;
    if (f->next) f->next->prev = f->prev; else r->tail = f->prev;
    free(f);
}

static int cmp_last(const void *a, const void *b) {
    const struct sp_flow *x = *(struct sp_flow *const *)a, *y = *(struct sp_flow *const *)b;
    if (x->last < y->last) return -1;
    if (x->last > y->last) return 1;
    return x->no < y->no ? -1 : x->no > y->no; /* stable: creation order */
}

static void evict_flows(struct sp_run *r, struct sp_flow *keep) {
    uint64_t target = (uint64_t)((double)r->cfg.max_flows * 0.9);
    size_t n = 0;
    for (struct sp_flow *f = r->head; f; f = f->next) n++;
    struct sp_flow **all = malloc((n ? n : 1) * sizeof *all);
    if (!all) { r->oom = 1; return; }
    size_t k = 0;
    /* done, then half-open, then the rest by last activity */
    size_t ndone = 0, nhalf = 0, nrest = 0;
    for (struct sp_flow *f = r->head; f; f = f->next)
        if (f != keep && f->done) all[k++] = f;
    ndone = k;
    for (struct sp_flow *f = r->head; f; f = f->next)
        if (f != keep && !f->done && f->proto == 6 && !f->synack && !f->payload) all[k++] = f;
    nhalf = k - ndone;
    for (struct sp_flow *f = r->head; f; f = f->next)
        if (f != keep && !f->done && (f->synack || f->payload || f->proto != 6)) all[k++] = f;
    nrest = k - ndone - nhalf;
    qsort(all + ndone + nhalf, nrest, sizeof *all, cmp_last);
    for (size_t i = 0; i < k; i++) {
        if (r->entries / 2 <= target) break;
        struct sp_flow *f = all[i];
        if (i >= ndone + nhalf) {
            finish(r, f, ST_EVICTED);
            r->fstat[F_EVICTED]++;
        } else if (i >= ndone) {
            r->fstat[F_HALF_OPEN]++;
        }
        remove_flow(r, f);
    }
    free(all);
}

struct sp_held { struct sp_flow *f; uint64_t held; };

static int cmp_held(const void *a, const void *b) {
    const struct sp_held *x = a, *y = b;
    if (x->held != y->held) return x->held > y->held ? -1 : 1;
    return x->f->no < y->f->no ? -1 : x->f->no > y->f->no;
}

static void evict_memory(struct sp_run *r) {
    size_t n = 0;
    for (struct sp_flow *f = r->head; f; f = f->next) n++;
    struct sp_held *all = malloc((n ? n : 1) * sizeof *all);
    if (!all) { r->oom = 1; return; }
    size_t k = 0;
    for (struct sp_flow *f = r->head; f; f = f->next)
        all[k++] = (struct sp_held){f, held(&f->st[0]) + held(&f->st[1])};
    qsort(all, k, sizeof *all, cmp_held);
    for (size_t i = 0; i < k; i++) {
        if ((double)r->memory <= (double)r->cfg.memcap * 0.8) break;
        struct sp_flow *f = all[i].f;
        r->fstat[F_MEMCAP]++;
        for (int d = 0; d < 2; d++) {
            struct sp_ctx c = {r, f, d};
            r->memory += stream_flush(&c);
        }
        if (!f->analyzed) analyze(r, f);
    }
    free(all);
}

static void sweep(struct sp_run *r, double now) {
    r->next_sweep = now + 1.0;
    struct sp_flow *f = r->head;
    while (f) {
        struct sp_flow *next = f->next;
        double idle = now - f->last;
        if (f->done) {
            if (idle > r->cfg.linger) remove_flow(r, f);
        } else if (f->proto == 6 && !f->synack && !f->payload) {
            if (idle > r->cfg.half_open_idle) {
                r->fstat[F_HALF_OPEN]++;
                remove_flow(r, f);
            }
        } else if (idle > (f->proto == 6 ? r->cfg.tcp_idle : r->cfg.udp_idle)) {
            finish(r, f, ST_TIMEOUT);
            remove_flow(r, f);
        }
        f = next;
    }
}

/* flows.py answer_first: a connection seen without its SYN whose first packet goes from a
   service's port to an ephemeral one starts with the server's answer */
static int answer_first(uint16_t sport, uint16_t dport) {
    return (sport < 1024 && dport >= 1024) || (sport < 32768 && dport >= 32768);
}

static struct sp_flow *new_flow(struct sp_run *r, double ts, const uint8_t *src, uint16_t sport,
                                const uint8_t *dst, uint16_t dport, uint8_t len, uint8_t proto,
                                int reverse, int *dir) {
    if (r->entries + 2 > r->nbuckets && grow(r)) { r->oom = 1; return NULL; }
    struct sp_flow *f = calloc(1, sizeof *f);
    if (!f) { r->oom = 1; return NULL; }
    f->no = ++r->flow_no;
    f->iplen = len;
    f->proto = proto;
    if (reverse) {
        memcpy(f->cip, dst, len); f->cport = dport;
        memcpy(f->sip, src, len); f->sport = sport;
    } else {
        memcpy(f->cip, src, len); f->cport = sport;
        memcpy(f->sip, dst, len); f->sport = dport;
    }
    f->first = f->last = ts;
    for (int d = 0; d < 2; d++) {
        f->st[d].keep_head = 1;
        f->st[d].fin_seq = -1;
    }
    f->self_pair = sport == dport && !memcmp(src, dst, len);
    f->defer = r->cfg.common == 1 && proto == 6 && !f->self_pair;
    f->first_dir = -1;
    f->node[0] = (struct sp_node){f, 0, NULL};
    f->node[1] = (struct sp_node){f, 1, NULL};
    if (f->self_pair) {
        /* flows.py stores the forward key, then the reverse: the same key, so the reverse wins */
        f->node[0].dir = reverse ? 0 : 1;
        bucket_insert(r, &f->node[0]);
        r->entries += 1;
    } else {
        bucket_insert(r, &f->node[0]);
        bucket_insert(r, &f->node[1]);
        r->entries += 2;
    }
    f->prev = r->tail;
    if (r->tail) r->tail->next = f; else r->head = f;
    r->tail = f;
    r->fstat[F_FLOWS]++;
    uint64_t n = r->entries / 2;
    if (n > r->fstat[F_PEAK_FLOWS]) r->fstat[F_PEAK_FLOWS] = n;
    if (n > r->cfg.max_flows) evict_flows(r, f);
    *dir = reverse ? 1 : 0;
    return f;
}

static void on_tcp(struct sp_run *r, double ts, const uint8_t *src, uint16_t sport,
                   const uint8_t *dst, uint16_t dport, uint8_t len, uint8_t flags, uint32_t seq,
                   uint32_t ack, const uint8_t *data, uint64_t length) {
    struct sp_node *n = lookup(r, src, sport, dst, dport, len, 6);
    struct sp_flow *f = n ? n->flow : NULL;
    int d = n ? n->dir : 0;
    if (f && f->done) {
        if ((flags & (TH_SYN | TH_ACK)) == TH_SYN) {
            remove_flow(r, f);
            f = NULL;
        } else {
            f->last = ts;
            return;
        }
    }
    if (!f) {
        if (flags & TH_RST) return;
        f = new_flow(r, ts, src, sport, dst, dport, len, 6,
                     (flags & (TH_SYN | TH_ACK)) == (TH_SYN | TH_ACK) ||
                         (!(flags & TH_SYN) && answer_first(sport, dport)),
                     &d);
        if (!f) return;
    }
    f->last = ts;
    f->packets[d]++;
    f->bytes[d] += length;
    f->flags[d] |= flags;
    struct sp_ctx me = {r, f, d}, peer = {r, f, 1 - d};
    struct sp_stream *s = &f->st[d], *ps = &f->st[1 - d];
    if (flags & TH_SYN) {
        s->next_seq = (seq + 1) & SP_MASK;
        s->started = 1;
        if (flags & TH_ACK) f->synack = 1;
        seq = (seq + 1) & SP_MASK;
    }
    int64_t h = 0;
    if (length) {
        f->payload = 1;
        h = segment(&me, seq, data, length);
    }
    if ((flags & TH_ACK) && ps->started) h += acked(&peer, ack);
    if (flags & TH_FIN) s->fin_seq = (int64_t)((seq + length) & SP_MASK);
    if (flags & TH_RST)
        finish(r, f, ST_RESET);
    else if ((f->flags[0] & TH_FIN) && (f->flags[1] & TH_FIN))
        finish(r, f, ST_CLOSED);
    else if (length && !f->analyzed) {
        if (s->delivered >= r->cfg.depth && ps->delivered >= r->cfg.depth) analyze(r, f);
    }
    if (h) {
        r->memory += h;
        if (r->memory > (int64_t)r->fstat[F_PEAK_MEMORY]) r->fstat[F_PEAK_MEMORY] = (uint64_t)r->memory;
        if (r->memory > (int64_t)r->cfg.memcap) evict_memory(r);
    }
    if (ts >= r->next_sweep) sweep(r, ts);
}

static void on_udp(struct sp_run *r, double ts, const uint8_t *src, uint16_t sport,
                   const uint8_t *dst, uint16_t dport, uint8_t len, const uint8_t *data,
                   uint64_t length) {
    struct sp_node *n = lookup(r, src, sport, dst, dport, len, 17);
    struct sp_flow *f = n ? n->flow : NULL;
    int d = n ? n->dir : 0;
    if (!f) {
        f = new_flow(r, ts, src, sport, dst, dport, len, 17, answer_first(sport, dport), &d);
        if (!f) return;
    }
    f->last = ts;
    f->packets[d]++;
    f->bytes[d] += length;
    if (length && !f->analyzed) {
        f->payload = 1;
        struct sp_stream *s = &f->st[d];
        struct sp_ctx me = {r, f, d};
        s->started = 1;
        r->memory += segment(&me, s->next_seq, data, length);
    }
    if (ts >= r->next_sweep) sweep(r, ts);
}

/* ---------------------------------------------------------------- decoding (decode.py) */

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint32_t rd32(const uint8_t *p, int big) {
    return big ? be32(p) : ((uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0]);
}
static uint16_t rd16(const uint8_t *p, int big) {
    return big ? be16(p) : (uint16_t)(p[1] << 8 | p[0]);
}

static void ipv4(struct sp_run *r, double ts, const uint8_t *b, uint64_t off, uint64_t end,
                 int depth);
static void ipv6(struct sp_run *r, double ts, const uint8_t *b, uint64_t off, uint64_t end,
                 int depth);

/* decode.py's overlays: IP in IP, IPv6 in IP, GRE, VXLAN (4789, 8472), Geneve (6081), at most
   SP_MAX_TUNNELS deep */
#define SP_MAX_TUNNELS 3
#define ETH_TEB 0x6558

/* decode.py FRAG_*: the datagrams waiting, how long one may wait, the longest */
#define SP_FRAG_PENDING 64
#define SP_FRAG_TIMEOUT 30.0
#define SP_FRAG_MAX 65535

static void drop_pending(struct sp_run *r, int i) {
    free(r->pending[i]);
    memmove(r->pending + i, r->pending + i + 1, (size_t)(r->npending - i - 1) * sizeof *r->pending);
    r->npending--;
}

/* decode.py Decoder._fragment: take one fragment; the whole datagram (to free by the caller,
   taken out of the table) once every byte of it arrived, else NULL */
static struct sp_dgram *fragment(struct sp_run *r, double ts, const uint8_t *key, int proto,
                                 uint64_t at, int more, const uint8_t *b, uint64_t off,
                                 uint64_t end) {
    uint64_t length = end > off ? end - off : 0;
    while (r->npending && !(r->pending[0]->first >= ts - SP_FRAG_TIMEOUT)) drop_pending(r, 0);
    int i;
    for (i = 0; i < r->npending; i++)
        if (!memcmp(r->pending[i]->key, key, 40)) break;
    struct sp_dgram *d = i < r->npending ? r->pending[i] : NULL;
    if (!length || at + length > SP_FRAG_MAX || (more && length % 8) ||
        (d && d->total >= 0 &&
         ((int64_t)(at + length) > d->total || (!more && (int64_t)(at + length) != d->total)))) {
        r->dstat[D_MALFORMED]++;
        return NULL;
    }
    if (!d) {
        if (r->npending >= SP_FRAG_PENDING) drop_pending(r, 0);
        d = malloc(sizeof *d);
        if (!d) { r->oom = 1; return NULL; }
        memcpy(d->key, key, 40);
        d->first = ts;
        d->total = -1;
        d->proto = -1;
        memset(d->units, 0, sizeof d->units);
        i = r->npending;
        r->pending[r->npending++] = d;
    }
    if (!more) d->total = (int64_t)(at + length);
    if (at == 0) d->proto = proto;
    for (uint64_t u = at >> 3, pos = at, stop = at + length; pos < stop; u++, pos += 8) {
        uint64_t n = stop - pos < 8 ? stop - pos : 8;
        if (!d->units[u]) {
            d->units[u] = 1;
            memcpy(d->data + pos, b + off + (pos - at), n);
        }
    }
    if (d->total < 0) return NULL;
    for (uint64_t u = 0; u < (uint64_t)((d->total + 7) >> 3); u++)
        if (!d->units[u]) return NULL;
    r->pending[i] = NULL;
    memmove(r->pending + i, r->pending + i + 1, (size_t)(r->npending - i - 1) * sizeof *r->pending);
    r->npending--;
    r->last_proto = d->proto;
    return d;
}

static void l4(struct sp_run *r, double ts, int proto, const uint8_t *src, const uint8_t *dst,
               uint8_t alen, const uint8_t *b, uint64_t off, uint64_t end, int depth);
static void ipv6_chain(struct sp_run *r, double ts, int nxt, const uint8_t *src,
                       const uint8_t *dst, const uint8_t *b, uint64_t off, uint64_t end,
                       int depth);

/* decode.py _ethernet: the EtherType after any 802.1Q/802.1ad tags (*etype) and where the
   payload starts; -1 when the frame is cut short */
static int64_t ethernet(const uint8_t *b, uint64_t off, uint64_t end, unsigned *etype) {
    if (off > end || end - off < 14) return -1;
    unsigned t = be16(b + off + 12);
    off += 14;
    while (t == 0x8100 || t == 0x88A8 || t == 0x9100) {
        if (off + 4 > end) return -1;
        t = be16(b + off + 2);
        off += 4;
    }
    *etype = t;
    return (int64_t)off;
}

/* decode.py Decoder._network: IPv4 or IPv6, also under an MPLS label stack or in a PPPoE
   session */
static void network(struct sp_run *r, double ts, unsigned etype, const uint8_t *b, uint64_t off,
                    uint64_t end, int depth) {
    uint64_t *st = r->dstat;
    if (off > end) { st[D_MALFORMED]++; return; }
    if (etype == 0x8847 || etype == 0x8848) { /* MPLS: labels to the bottom of the stack */
        for (;;) {
            if (end - off < 4) { st[D_MALFORMED]++; return; }
            off += 4;
            if (b[off - 2] & 1) break;
        }
        unsigned version = off < end ? b[off] >> 4 : 0;
        etype = version == 4 ? 0x0800 : version == 6 ? 0x86DD : 0;
    } else if (etype == 0x8864) { /* PPPoE session */
        if (end - off < 8) { st[D_MALFORMED]++; return; }
        if (b[off] != 0x11 || b[off + 1]) { st[D_OTHER]++; return; }
        uint64_t stop = off + 6 + be16(b + off + 4);
        if (stop < end) end = stop;
        off += 6;
        if (end < off || end - off < 2) { st[D_MALFORMED]++; return; }
        unsigned proto;
        if (b[off] & 1) { proto = b[off]; off += 1; }
        else { proto = be16(b + off); off += 2; }
        etype = proto == 0x0021 ? 0x0800 : proto == 0x0057 ? 0x86DD : 0;
    }
    if (etype == 0x0800)
        ipv4(r, ts, b, off, end, depth);
    else if (etype == 0x86DD)
        ipv6(r, ts, b, off, end, depth);
    else
        st[D_OTHER]++;
}

/* decode.py _nflog: where an NFLOG frame's NFULA_PAYLOAD starts (*start) and ends (*stop), the
   same offset twice when it has none; 0 when a TLV runs past the frame */
static int nflog(const uint8_t *b, uint64_t off, uint64_t end, uint64_t *start, uint64_t *stop) {
    if (end - off < 4 || b[off + 1] != 0) return 0;
    off += 4;
    int big = -1;
    while (end - off >= 4) {
        if (big < 0) big = b[off + 2] == 0 && b[off + 3] != 0;
        unsigned length = rd16(b + off, big), kind = rd16(b + off + 2, big);
        if (length < 4 || length > end - off) return 0;
        if (kind == 9) {
            *start = off + 4;
            *stop = off + length;
            return 1;
        }
        off += (length + 3) & ~3u;
        if (off > end) off = end;
    }
    *start = *stop = end;
    return 1;
}

/* decode.py Decoder._inner: an Ethernet frame (ETH_TEB) or an IP packet a tunnel carries */
static void inner(struct sp_run *r, double ts, unsigned etype, const uint8_t *b, uint64_t off,
                  uint64_t end, int depth) {
    if (etype == ETH_TEB) {
        int64_t at = ethernet(b, off, end, &etype);
        if (at < 0) { r->dstat[D_MALFORMED]++; return; }
        off = (uint64_t)at;
    }
    network(r, ts, etype, b, off, end, depth);
}

/* decode.py Decoder._overlay: 0 when the datagram to a VXLAN or Geneve port holds no such header */
static int overlay(struct sp_run *r, double ts, unsigned port, const uint8_t *b, uint64_t off,
                   uint64_t end, int depth) {
    if (off > end || end - off < 8) return 0;
    unsigned etype;
    uint64_t in;
    if (port == 6081) {
        if (b[off] >> 6) return 0;
        in = off + 8 + (uint64_t)(b[off] & 0x3F) * 4;
        etype = be16(b + off + 2);
        if ((etype != ETH_TEB && etype != 0x0800 && etype != 0x86DD) || in > end) return 0;
    } else {
        if (!(b[off] & 0x08) || b[off + 7]) return 0;
        in = off + 8;
        etype = ETH_TEB;
    }
    inner(r, ts, etype, b, in, end, depth);
    return 1;
}

/* decode.py Decoder._gre: version 0, the optional checksum, key and sequence words */
static void gre(struct sp_run *r, double ts, const uint8_t *b, uint64_t off, uint64_t end,
                int depth) {
    uint64_t *st = r->dstat;
    if (off > end || end - off < 4) { st[D_MALFORMED]++; return; }
    unsigned flags = be16(b + off), etype = be16(b + off + 2);
    if (flags & 0x4007) { st[D_OTHER]++; return; }
    off += 4 + 4 * ((flags >> 15 & 1) + (flags >> 13 & 1) + (flags >> 12 & 1));
    if (off > end) { st[D_MALFORMED]++; return; }
    inner(r, ts, etype, b, off, end, depth);
}

static void l4(struct sp_run *r, double ts, int proto, const uint8_t *src, const uint8_t *dst,
               uint8_t alen, const uint8_t *b, uint64_t off, uint64_t end, int depth) {
    uint64_t *st = r->dstat;
    if (proto == 6) {
        if (off > end || end - off < 20) { st[D_MALFORMED]++; return; }
        const uint8_t *t = b + off;
        uint64_t hlen = (uint64_t)(t[12] >> 4) * 4;
        if (hlen < 20 || off + hlen > end) { st[D_MALFORMED]++; return; }
        st[D_TCP]++;
        on_tcp(r, ts, src, be16(t), dst, be16(t + 2), alen, t[13], be32(t + 4), be32(t + 8),
               b + off + hlen, end - off - hlen);
    } else if (proto == 17) {
        if (off > end || end - off < 8) { st[D_MALFORMED]++; return; }
        const uint8_t *u = b + off;
        uint64_t ulen = be16(u + 4);
        st[D_UDP]++;
        int64_t length = ulen >= 8 ? (int64_t)((end - off) < ulen ? (end - off) : ulen) - 8
                                   : (int64_t)(end - off) - 8;
        uint64_t n = (uint64_t)(length > 0 ? length : 0);
        unsigned dport = be16(u + 2);
        if (depth < SP_MAX_TUNNELS && (dport == 4789 || dport == 8472 || dport == 6081) &&
            overlay(r, ts, dport, b, off + 8, off + 8 + n, depth + 1))
            return;
        on_udp(r, ts, src, be16(u), dst, dport, alen, b + off + 8, n);
    } else if (depth < SP_MAX_TUNNELS && proto == 4) {
        ipv4(r, ts, b, off, end, depth + 1);
    } else if (depth < SP_MAX_TUNNELS && proto == 41) {
        ipv6(r, ts, b, off, end, depth + 1);
    } else if (depth < SP_MAX_TUNNELS && proto == 47) {
        gre(r, ts, b, off, end, depth + 1);
    } else {
        st[D_OTHER]++;
    }
}

static void ipv4(struct sp_run *r, double ts, const uint8_t *b, uint64_t off, uint64_t end,
                 int depth) {
    uint64_t *st = r->dstat;
    if (off > end || end - off < 20) { st[D_MALFORMED]++; return; }
    const uint8_t *ip = b + off;
    uint64_t ihl = (uint64_t)(ip[0] & 0x0F) * 4;
    if (ip[0] >> 4 != 4 || ihl < 20 || end - off < ihl) { st[D_MALFORMED]++; return; }
    st[D_IPV4]++;
    if (ihl > 20) st[D_OPTS]++;
    unsigned frag = be16(ip + 6) & 0x3FFF;
    if (frag) {
        st[D_FRAG]++;
        if (depth >= SP_MAX_TUNNELS) return; /* counted, not reassembled */
    }
    uint64_t total = be16(ip + 2);
    if (total) {
        if (total < ihl) { st[D_MALFORMED]++; return; }
        if (off + total < end) end = off + total;
    }
    if (frag) {
        uint8_t key[40] = {4, ip[9]};
        memcpy(key + 2, ip + 12, 8);
        memcpy(key + 10, ip + 4, 2);
        struct sp_dgram *d = fragment(r, ts, key, ip[9], (uint64_t)(frag & 0x1FFF) * 8,
                                      (frag & 0x2000) != 0, b, off + ihl, end);
        if (d) {
            uint8_t addr[8];
            memcpy(addr, ip + 12, 8);
            l4(r, ts, ip[9], addr, addr + 4, 4, d->data, 0, (uint64_t)d->total, depth + 1);
            free(d);
        }
        return;
    }
    l4(r, ts, ip[9], ip + 12, ip + 16, 4, b, off + ihl, end, depth);
}

static int ipv6_ext(int nxt) {
    return nxt == 0 || nxt == 43 || nxt == 60 || nxt == 135 || nxt == 139 || nxt == 140;
}

static void ipv6(struct sp_run *r, double ts, const uint8_t *b, uint64_t off, uint64_t end,
                 int depth) {
    uint64_t *st = r->dstat;
    if (off > end || end - off < 40) { st[D_MALFORMED]++; return; }
    const uint8_t *ip = b + off;
    if (ip[0] >> 4 != 6) { st[D_MALFORMED]++; return; }
    st[D_IPV6]++;
    uint64_t plen = be16(ip + 4);
    if (plen && off + 40 + plen < end) end = off + 40 + plen;
    ipv6_chain(r, ts, ip[6], ip + 8, ip + 24, b, off + 40, end, depth);
}

/* decode.py Decoder._ipv6_chain: the extension headers from off on, then the transport */
static void ipv6_chain(struct sp_run *r, double ts, int nxt, const uint8_t *src,
                       const uint8_t *dst, const uint8_t *b, uint64_t off, uint64_t end,
                       int depth) {
    uint64_t *st = r->dstat;
    while (ipv6_ext(nxt) || nxt == 44 || nxt == 51) {
        if (off + 8 > end) { st[D_MALFORMED]++; return; }
        if (nxt == 44) {
            st[D_FRAG]++;
            if (depth >= SP_MAX_TUNNELS) return; /* counted, not reassembled */
            unsigned at = be16(b + off + 2);
            uint8_t key[40] = {6};
            memcpy(key + 2, src, 16);
            memcpy(key + 18, dst, 16);
            memcpy(key + 34, b + off + 4, 4);
            struct sp_dgram *d = fragment(r, ts, key, b[off], at & 0xFFF8, at & 1, b, off + 8, end);
            if (d) {
                uint8_t addr[32];
                memcpy(addr, src, 16);
                memcpy(addr + 16, dst, 16);
                ipv6_chain(r, ts, r->last_proto, addr, addr + 16, d->data, 0, (uint64_t)d->total,
                           depth + 1);
                free(d);
            }
            return;
        }
        uint64_t hlen = nxt == 51 ? ((uint64_t)b[off + 1] + 2) * 4 : ((uint64_t)b[off + 1] + 1) * 8;
        nxt = b[off];
        off += hlen;
    }
    l4(r, ts, nxt, src, dst, 16, b, off, end, depth);
}

static uint64_t fnv(uint64_t h, const uint8_t *p, uint64_t n) {
    for (uint64_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

/* decode.py Decoder._copy: is this SLL frame's IP packet (TTL or hop limit and checksum aside)
   the second copy of one of the last 32 SLL frames of the other direction? */
static int copy_seen(struct sp_run *r, int out, unsigned etype, const uint8_t *b, uint64_t off,
                     uint64_t end) {
    uint64_t h = 0xcbf29ce484222325ULL, n;
    if (etype == 0x0800 && end - off >= 20) {
        h = fnv(fnv(fnv(h, b + off, 8), b + off + 9, 1), b + off + 12, end - off - 12);
        n = end - off - 3;
    } else if (etype == 0x86DD && end - off >= 40) {
        h = fnv(fnv(h, b + off, 7), b + off + 8, end - off - 8);
        n = end - off - 1;
    } else {
        return 0;
    }
    for (int i = 0; i < r->ncopies; i++) {
        if (r->copies[i].out != out && r->copies[i].hash == h && r->copies[i].len == n) {
            memmove(r->copies + i, r->copies + i + 1, (size_t)(r->ncopies - i - 1) * sizeof *r->copies);
            r->ncopies--;
            return 1;
        }
    }
    if (r->ncopies == 32) { /* decode.py COPY_WINDOW: the oldest goes */
        memmove(r->copies, r->copies + 1, 31 * sizeof *r->copies);
        r->ncopies--;
    }
    r->copies[r->ncopies].hash = h;
    r->copies[r->ncopies].len = n;
    r->copies[r->ncopies].out = out;
    r->ncopies++;
    return 0;
}

static void frame(struct sp_run *r, double ts, uint32_t link, uint64_t off, uint64_t caplen) {
    uint64_t *st = r->dstat;
    const uint8_t *b = r->buf;
    st[D_FRAMES]++;
    st[D_BYTES] += caplen;
    uint64_t end = off + caplen;
    unsigned etype;
    if (link == 1) { /* Ethernet */
        int64_t at = ethernet(b, off, end, &etype);
        if (at < 0) { st[D_MALFORMED]++; return; }
        off = (uint64_t)at;
    } else if (link == 113) { /* Linux SLL */
        if (caplen < 16) { st[D_MALFORMED]++; return; }
        etype = be16(b + off + 14);
        int out = be16(b + off) == 4;
        off += 16;
        if (copy_seen(r, out, etype, b, off, end)) { st[D_OUTGOING]++; return; }
    } else if (link == 276) { /* Linux SLL2 */
        if (caplen < 20) { st[D_MALFORMED]++; return; }
        etype = be16(b + off);
        int out = b[off + 10] == 4;
        off += 20;
        if (copy_seen(r, out, etype, b, off, end)) { st[D_OUTGOING]++; return; }
    } else if (link == 101 || link == 228 || link == 229) {
        if (caplen < 1) { st[D_MALFORMED]++; return; }
        etype = (b[off] >> 4) == 4 ? 0x0800 : 0x86DD;
    } else if (link == 0 || link == 108) { /* BSD loopback: NULL, OpenBSD's LOOP */
        if (caplen < 4) { st[D_MALFORMED]++; return; }
        uint32_t family = rd32(b + off, 0);
        if (family > 0xFFFF) family >>= 24;
        etype = family == 2 ? 0x0800 : 0x86DD;
        off += 4;
    } else if (link == 239) { /* NFLOG */
        uint64_t start, stop;
        if (!nflog(b, off, end, &start, &stop)) { st[D_MALFORMED]++; return; }
        if (start == stop) { st[D_OTHER]++; return; }
        off = start;
        end = stop;
        etype = (b[off] >> 4) == 4 ? 0x0800 : 0x86DD;
    } else {
        st[D_OTHER]++;
        return;
    }
    network(r, ts, etype, b, off, end, 0);
}

/* ---------------------------------------------------------------- reading (pcapfile.py) */

static int supported(uint32_t link) {
    return link == 0 || link == 1 || link == 101 || link == 108 || link == 113 || link == 228 ||
           link == 229 || link == 239 || link == 276;
}

enum { R_FRAME = 0, R_END = 1, R_ERROR = 2 };

static int fail(struct sp_run *r, const char *msg) {
    snprintf(r->err, sizeof r->err, "%s", msg);
    return R_ERROR;
}

static double ts_check(struct sp_run *r, double ts) {
    if (ts >= 0.0 && ts <= SP_MAX_TIMESTAMP) {
        r->last_ts = ts;
        return ts;
    }
    r->bad_timestamps++;
    return r->last_ts;
}

/* pcapfile.py _clock: seconds per tick (if_tsresol) and seconds added (if_tsoffset) */
static double tsresol(struct sp_run *r, uint64_t off, uint64_t end, int64_t *shift) {
    int big = r->ng_order_big;
    double tick = 1e-6;
    *shift = 0;
    while (off + 4 <= end) {
        unsigned code = rd16(r->buf + off, big), length = rd16(r->buf + off + 2, big);
        if (code == 0) break;
        if (code == 9 && length >= 1 && off + 5 <= end) {
            unsigned v = r->buf[off + 4];
            tick = (v & 0x80) ? pow(2.0, -(double)(v & 0x7F)) : pow(10.0, -(double)v);
        } else if (code == 14 && length >= 8 && off + 12 <= end) {
            uint64_t hi = rd32(r->buf + off + 4 + (big ? 0 : 4), big);
            uint64_t lo = rd32(r->buf + off + 4 + (big ? 4 : 0), big);
            *shift = (int64_t)(hi << 32 | lo);
        }
        off += 4 + ((length + 3) & ~3u);
    }
    return tick;
}

/* the next frame: R_FRAME with *ts, *link, *off, *caplen; R_END; or R_ERROR (r->err) */
static int next_frame(struct sp_run *r, double *ts, uint32_t *link, uint64_t *foff, uint64_t *caplen) {
    const uint8_t *b = r->buf;
    uint64_t size = r->size;
    char msg[160];
    if (r->ended) return R_END;
    if (!r->started) {
        r->started = 1;
        if (size < 4) return fail(r, "not a pcap or pcapng file (too short)");
        static const uint8_t m[4][4] = {{0xd4, 0xc3, 0xb2, 0xa1}, {0xa1, 0xb2, 0xc3, 0xd4},
                                        {0x4d, 0x3c, 0xb2, 0xa1}, {0xa1, 0xb2, 0x3c, 0x4d}};
        int which = -1;
        for (int i = 0; i < 4; i++)
            if (!memcmp(b, m[i], 4)) which = i;
        if (which >= 0) {
            r->format = 1;
            r->big = which == 1 || which == 3;
            r->nano = which >= 2;
            if (size < 24) return fail(r, "pcap global header is truncated");
            /* pcapfile.py LINKTYPE_MASK: libpcap keeps an FCS length and its flag above */
            r->linktype = rd32(b + 20, r->big) & 0xFFFF;
            r->off = 24;
        } else if (!memcmp(b, "\x0a\x0d\x0d\x0a", 4)) {
            r->format = 2;
            r->off = 0;
        } else {
            return fail(r, "not a pcap or pcapng file (unknown magic)");
        }
    }
    if (r->format == 1) {
        uint64_t off = r->off;
        if (off >= size) { r->ended = 1; return R_END; }
        if (off + 16 > size) { r->truncated = 1; r->ended = 1; return R_END; }
        uint32_t sec = rd32(b + off, r->big), frac = rd32(b + off + 4, r->big);
        uint32_t cap = rd32(b + off + 8, r->big);
        if (cap > SP_MAX_RECORD) {
            snprintf(msg, sizeof msg, "corrupt record at byte %llu (length %u)",
                     (unsigned long long)off, cap);
            return fail(r, msg);
        }
        off += 16;
        if (off + cap > size) { r->truncated = 1; r->ended = 1; return R_END; }
        *ts = (double)sec + (double)frac * (r->nano ? 1e-9 : 1e-6);
        *link = r->linktype;
        *foff = off;
        *caplen = cap;
        r->off = off + cap;
        return R_FRAME;
    }
    for (;;) {
        uint64_t off = r->off;
        if (off >= size) { r->ended = 1; return R_END; }
        if (off + 12 > size) { r->truncated = 1; r->ended = 1; return R_END; }
        if (!memcmp(b + off, "\x0a\x0d\x0d\x0a", 4)) {
            if (!memcmp(b + off + 8, "\x4d\x3c\x2b\x1a", 4))
                r->ng_order_big = 0;
            else if (!memcmp(b + off + 8, "\x1a\x2b\x3c\x4d", 4))
                r->ng_order_big = 1;
            else {
                snprintf(msg, sizeof msg, "bad pcapng byte-order magic at byte %llu",
                         (unsigned long long)off);
                return fail(r, msg);
            }
            r->nifaces = 0;
        }
        int big = r->ng_order_big;
        uint32_t btype = rd32(b + off, big), blen = rd32(b + off + 4, big);
        if (blen < 12 || blen % 4 || blen > SP_MAX_RECORD) {
            snprintf(msg, sizeof msg, "corrupt pcapng block at byte %llu (length %u)",
                     (unsigned long long)off, blen);
            return fail(r, msg);
        }
        if (off + blen > size) { r->truncated = 1; r->ended = 1; return R_END; }
        uint64_t body = off + 8, bend = off + blen - 4;
        r->off = off + blen;
        if (btype == 1) {
            if (bend - body < 8) {
                snprintf(msg, sizeof msg, "short interface block at byte %llu", (unsigned long long)off);
                return fail(r, msg);
            }
            if (r->nifaces == r->capifaces) {
                size_t cap = r->capifaces ? r->capifaces * 2 : 4;
                void *p = realloc(r->ifaces, cap * sizeof *r->ifaces);
                if (!p) return fail(r, "out of memory");
                r->ifaces = p;
                r->capifaces = cap;
            }
            r->ifaces[r->nifaces].link = rd16(b + body, big);
            r->ifaces[r->nifaces].snap = rd32(b + body + 4, big);
            r->ifaces[r->nifaces].tick = tsresol(r, body + 8, bend, &r->ifaces[r->nifaces].shift);
            r->nifaces++;
        } else if (btype == 6 || btype == 2) {
            if (bend - body < 20) {
                snprintf(msg, sizeof msg, "short packet block at byte %llu", (unsigned long long)off);
                return fail(r, msg);
            }
            uint32_t iface, hi, lo, cap;
            if (btype == 6) {
                iface = rd32(b + body, big);
                hi = rd32(b + body + 4, big);
                lo = rd32(b + body + 8, big);
                cap = rd32(b + body + 12, big);
            } else {
                iface = rd16(b + body, big);
                hi = rd32(b + body + 4, big);
                lo = rd32(b + body + 8, big);
                cap = rd32(b + body + 12, big);
            }
            if (iface >= r->nifaces) {
                snprintf(msg, sizeof msg, "packet block at byte %llu names unknown interface %u",
                         (unsigned long long)off, iface);
                return fail(r, msg);
            }
            if (body + 20 + (uint64_t)cap > bend) {
                snprintf(msg, sizeof msg, "packet block at byte %llu overruns its block",
                         (unsigned long long)off);
                return fail(r, msg);
            }
            uint64_t ticks = (uint64_t)hi << 32 | lo;
            *ts = ts_check(r, (double)ticks * r->ifaces[iface].tick +
                                  (double)r->ifaces[iface].shift);
            *link = r->ifaces[iface].link;
            *foff = body + 20;
            *caplen = cap;
            return R_FRAME;
        } else if (btype == 3) {
            if (!r->nifaces || bend - body < 4) {
                snprintf(msg, sizeof msg, "simple packet block at byte %llu without an interface",
                         (unsigned long long)off);
                return fail(r, msg);
            }
            uint64_t wire = rd32(b + body, big), room = bend - body - 4;
            uint64_t snap = r->ifaces[0].snap ? r->ifaces[0].snap : SP_MAX_RECORD;
            uint64_t cap = wire < room ? wire : room;
            if (snap < cap) cap = snap;
            *ts = 0.0;
            *link = r->ifaces[0].link;
            *foff = body + 4;
            *caplen = cap;
            return R_FRAME;
        }
    }
}

/* ---------------------------------------------------------------- the interface (fastpcap.py) */

struct sp_run *sp_new(const uint8_t *buf, uint64_t size, const struct sp_cfg *cfg, int64_t count) {
    struct sp_run *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->buf = buf;
    r->size = size;
    r->cfg = *cfg;
    r->count = count;
    r->nbuckets = 1024;
    r->buckets = calloc(r->nbuckets, sizeof *r->buckets);
    if (!r->buckets) {
        free(r);
        return NULL;
    }
    return r;
}

/* Frames until the events reach max_events or max_data bytes: 0 more to come, 1 the capture
   ended (or the count was reached), 2 an error (sp_error), 3 out of memory. */
/* the capture ended (or the count was reached): 1, or 2 when every frame of a pcapng came on
   interfaces of link types the decoder does not read (sensor.py run_pcap) */
static int reader_end(struct sp_run *r) {
    if (r->unsupported_link && !r->supported_frames) {
        snprintf(r->err, sizeof r->err, "unsupported link type %u", r->unsupported_link);
        return 2;
    }
    return 1;
}

int sp_step(struct sp_run *r, uint64_t max_events, uint64_t max_data) {
    for (;;) {
        if (r->oom) return 3;
        if (r->nev / 4 >= max_events || r->ndata >= max_data) return 0;
        if (r->count >= 0 && r->nframes >= r->count) return reader_end(r);
        double ts;
        uint32_t link;
        uint64_t off, caplen;
        int got = next_frame(r, &ts, &link, &off, &caplen);
        if (got == R_END) return reader_end(r);
        if (got == R_ERROR) return 2;
        if (!supported(link)) {
            /* a pcap has one link type: refused; a pcapng's other interfaces (a USB bus, an
               nflog, a Bluetooth one next to the Ethernet ones) go on, their frames counted */
            if (r->format == 1) {
                snprintf(r->err, sizeof r->err, "unsupported link type %u", link);
                return 2;
            }
            r->unsupported_link = link;
        } else {
            r->supported_frames++;
        }
        frame(r, ts, link, off, caplen);
        r->nframes++;
    }
}

/* end of capture: every open flow becomes a record (FlowTable.flush) */
int sp_flush(struct sp_run *r) {
    while (r->head) {
        struct sp_flow *f = r->head;
        finish(r, f, ST_ACTIVE);
        remove_flow(r, f);
    }
    return r->oom ? 3 : 0;
}

const int64_t *sp_events(struct sp_run *r, uint64_t *n) {
    *n = r->nev / 4;
    return r->ev;
}

const uint8_t *sp_data(struct sp_run *r, uint64_t *n) {
    *n = r->ndata;
    return r->data;
}

void sp_taken(struct sp_run *r) {
    r->nev = 0;
    r->ndata = 0;
}

const char *sp_error(struct sp_run *r) { return r->err; }

/* decode stats (11), flow stats (7), then format, truncated, bad_timestamps, memory */
void sp_stats(struct sp_run *r, uint64_t *out) {
    for (int i = 0; i < 11; i++) out[i] = r->dstat[i];
    for (int i = 0; i < 7; i++) out[11 + i] = r->fstat[i];
    out[18] = (uint64_t)r->format;
    out[19] = (uint64_t)r->truncated;
    out[20] = r->bad_timestamps;
    out[21] = (uint64_t)r->memory;
}

void sp_free(struct sp_run *r) {
    if (!r) return;
    while (r->head) {
        struct sp_flow *f = r->head;
        for (int d = 0; d < 2; d++) {
            stream_free(&f->st[d]);
        }
        defer_free(r, f);
        r->head = f->next;
        free(f);
    }
    for (int i = 0; i < r->npending; i++) free(r->pending[i]);
    free(r->buckets);
    free(r->ifaces);
    free(r->ev);
    free(r->data);
    sp_peers_clear(r);
    free(r->peers);
    free(r);
}
