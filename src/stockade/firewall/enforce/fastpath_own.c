/* Connections the compiled loop answers alone from their first segment (see fastpath.py).
 *
 * IPv4/TCP connections whose first client segment opens a protocol recognised here (an HTTP/1
 * request line, a whole TLS ClientHello record) between two ends the Python side says it may
 * answer for (a pair table, filled on demand per policy version through fp_advise): allowed once
 * the protocol is known when nothing in the bytes is looked for, else (DLP) every in-order segment
 * is scanned with the DLP engine's own Hyperscan expressions (its sensors' prefilters and the HTTP
 * decoding triggers) and answered here while nothing matches. The packets answered here are kept:
 * at the first thing Python must see (a match, a segment ending in a letter or digit, a segment out
 * of order, a FIN/RST, a direction past the DLP decoding's replay budget) the kept packets are
 * handed to Python in order, then the packet at hand, so Python's flow and DLP streams are exactly
 * what they would have been had it seen every packet. */

#ifndef FP_NO_HS
#include <hs/hs.h>
#endif

#define FP_OWN_FLOWS 16384                /* a power of two */
#define FP_PAIRS 4096                     /* a power of two */
#define FP_HELD_MAX (32u << 20)           /* allocated for kept packets (decoding.HELD_TOTAL) */
#define FP_DIR_MAX 65536u                 /* bytes per direction (decoding.DEFAULT_BUDGET) */
#define FP_IDLE_SECONDS 300               /* inspector.IDLE_SECONDS */
#define FP_END_GRACE 2                    /* inspector.END_GRACE: an ended flow is kept this long */
#define FP_SWEEP 8                        /* slots looked at per packet for flows to forget */
#define FP_SPARE_STREAMS 256              /* closed streams kept for reuse (reset, not freed) */
#define FP_MARK_ALLOW 0x2                 /* marks.ALLOW */
#define FP_REPLY 0x80                     /* marks.REPLY */
#define FP_END_COPY 0x80000000u           /* fastpath.END_COPY: a kept end, replayed as an end */
#define FP_DATA_COPY 0x40000000u          /* fastpath.DATA_COPY: a clean segment's copy */

/* why a connection went back to Python (fp_own_counts) */
#define FP_WHY_MATCH 0  /* a prefilter or decoding-trigger match (or a scan error) */
#define FP_WHY_ALNUM 1  /* a segment ending in a letter or digit (the DLP stream checks it) */
#define FP_WHY_ORDER 2  /* a segment out of order, or no payload */
#define FP_WHY_END 3    /* a FIN or RST (or SYN) reached the queue */
#define FP_WHY_LIMIT 4  /* past the decoding budget of a direction, or the memory for kept packets */
#define FP_WHY_SLOT 5   /* both slots of a new connection held live ones: it went to Python */

/* pair bits from Python (fastpath.PAIR_*) */
#define FP_PAIR_KNOWN 1
#define FP_PAIR_HTTP 2
#define FP_PAIR_TLS 4
#define FP_PAIR_SCAN 8  /* DLP: each segment scanned, the connection stays undecided */
#define FP_PAIR_ALLOW 16 /* nothing in the bytes to look for: allowed once the protocol is known */
#define FP_PAIR_CLEAN 32       /* the kernel's first look covers the sensors (clean.py) */
#define FP_PAIR_CLEAN_SHORT 64 /* ... with 9-digit sensors */
#define FP_MARK_SCAN 0x400       /* marks.SCAN: the verdict is final but for DLP */
#define FP_MARK_SCAN_SHORT 0x800 /* marks.SCAN_SHORT */

struct fp_pair {
    uint8_t client[4], server[4];
    uint16_t port;
    uint8_t bits;
};

struct fp_flow {
    struct fp_key key;
    uint8_t client[4];
    uint16_t cport;
    uint32_t next[2]; /* the next sequence number of the client (0) and of the server (1) */
    uint32_t bytes[2];
    long last;
    long ended; /* when both directions had ended (fins == 3) */
    uint8_t fins; /* directions whose FIN passed in the kernel (fp_own_end) */
    uint32_t scan; /* the SCAN bits of every answer (FP_MARK_SCAN*), from the pair's bits */
    uint8_t *held; /* records: uint32 length, uint32 mark, the packet, padded to 4 */
    uint32_t held_len, held_cap;
#ifndef FP_NO_HS
    hs_stream_t *hs[2];
#endif
};

struct fp_own {
    struct fp_pair pairs[FP_PAIRS];
    struct fp_flow flows[FP_OWN_FLOWS];
    size_t held; /* bytes allocated for kept packets (capacity, not use: what the memory costs) */
    uint64_t owned, handed, replayed, retransmitted;
    uint64_t why[6]; /* hand-backs by cause (FP_WHY_*) */
    uint32_t sweep;  /* the next slot the sweep looks at */
#ifndef FP_NO_HS
    hs_database_t *db;
    hs_scratch_t *scratch;
    hs_stream_t *spare[FP_SPARE_STREAMS];
    int spares;
#endif
};

static int fp_advise(void *handle, const uint8_t *client, const uint8_t *server, uint16_t port);

static struct fp_own *fp_own_new(void) { return calloc(1, sizeof(struct fp_own)); }

static void fp_own_drop(struct fp_own *o, struct fp_flow *f) {
#ifndef FP_NO_HS
    for (int d = 0; d < 2; d++) {
        if (f->hs[d] == NULL) continue;
        if (o->spares < FP_SPARE_STREAMS &&
            hs_reset_stream(f->hs[d], 0, NULL, NULL, NULL) == HS_SUCCESS)
            o->spare[o->spares++] = f->hs[d];
        else
            hs_close_stream(f->hs[d], o->scratch, NULL, NULL);
    }
#endif
    free(f->held);
    o->held -= f->held_cap;
    memset(f, 0, sizeof *f);
}

static void fp_own_forget(struct fp_own *o) {
    for (int i = 0; i < FP_OWN_FLOWS; i++)
        if (o->flows[i].key.used) fp_own_drop(o, &o->flows[i]);
    memset(o->pairs, 0, sizeof o->pairs);
#ifndef FP_NO_HS
    while (o->spares > 0) hs_close_stream(o->spare[--o->spares], o->scratch, NULL, NULL);
#endif
}

static void fp_own_free(struct fp_own *o) {
    if (o == NULL) return;
    fp_own_forget(o);
#ifndef FP_NO_HS
    if (o->scratch != NULL) hs_free_scratch(o->scratch);
    if (o->db != NULL) hs_free_database(o->db);
#endif
    free(o);
}

/* The DLP engine's expressions (fastpath.dlp_expressions), compiled for stream mode: 0, or -1
 * with the reason in ``err``. */
int fp_dlp_load(struct fp_queue *q, const char *const *exprs, const unsigned int *flags,
                const unsigned int *ids, unsigned int n, char *err, size_t errlen) {
#ifdef FP_NO_HS
    (void)q; (void)exprs; (void)flags; (void)ids; (void)n;
    snprintf(err, errlen, "built without Hyperscan");
    return -1;
#else
    struct fp_own *o = q->own;
    hs_database_t *db = NULL;
    hs_compile_error_t *cerr = NULL;
    if (hs_compile_multi(exprs, flags, ids, n, HS_MODE_STREAM, NULL, &db, &cerr) != HS_SUCCESS) {
        snprintf(err, errlen, "%s", cerr != NULL && cerr->message ? cerr->message : "compile");
        if (cerr != NULL) hs_free_compile_error(cerr);
        return -1;
    }
    hs_scratch_t *scratch = NULL;
    if (hs_alloc_scratch(db, &scratch) != HS_SUCCESS) {
        hs_free_database(db);
        snprintf(err, errlen, "no scratch space");
        return -1;
    }
    fp_own_forget(o); /* streams of an earlier database */
    if (o->scratch != NULL) hs_free_scratch(o->scratch);
    if (o->db != NULL) hs_free_database(o->db);
    o->db = db;
    o->scratch = scratch;
    return 0;
#endif
}

/* flows answered here from their first segment, handed back to Python, packets replayed, then
 * the hand-backs by cause (FP_WHY_*), then retransmissions answered here: 10 numbers */
void fp_own_counts(struct fp_queue *q, uint64_t *out) {
    out[0] = q->own->owned;
    out[1] = q->own->handed;
    out[2] = q->own->replayed;
    for (int i = 0; i < 6; i++) out[3 + i] = q->own->why[i];
    out[9] = q->own->retransmitted;
}

static long fp_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
    return (long)t.tv_sec;
}

static int fp_ws(uint8_t c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
static int fp_alnum(uint8_t c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* http1.METHODS but CONNECT (a tunnel: Python's) */
static const char *const FP_METHODS[] = {
    "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "PROPFIND",
    "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", NULL};

/* The request line as http1.probe reads it: ``METHOD SP target SP HTTP/1.[01]`` ending in LF
 * (CRs before it dropped) within the first 512 bytes. */
static int fp_http_request(const uint8_t *d, uint32_t n) {
    uint32_t lim = n < 512 ? n : 512, end = 0;
    while (end < lim && d[end] != '\n') end++;
    if (end == lim) return 0;
    while (end > 0 && d[end - 1] == '\r') end--;
    uint32_t m = 0;
    while (m < end && d[m] >= 'A' && d[m] <= 'Z') m++;
    if (m < 3 || m > 10 || m >= end || d[m] != ' ') return 0;
    int known = 0;
    for (const char *const *k = FP_METHODS; *k != NULL; k++)
        if (strlen(*k) == m && memcmp(*k, d, m) == 0) known = 1;
    if (!known) return 0;
    uint32_t t = m + 1;
    while (t < end && !fp_ws(d[t])) t++;
    if (t == m + 1 || t - m - 1 > 4096) return 0;
    if (end - t != 9 || memcmp(d + t, " HTTP/1.", 8) != 0) return 0;
    return d[t + 8] == '0' || d[t + 8] == '1';
}

/* An HTTP/1 request head that ends the segment (its blank line last) and announces a body
 * (``Content-Length`` above 0, no ``Expect``: such a client waits for the server's 100 before
 * it sends the body): the client writes the body next. */
static int fp_http_body_follows(const uint8_t *d, uint32_t n) {
    if (n < 4 || memcmp(d + n - 4, "\r\n\r\n", 4) != 0) return 0;
    static const char cl[] = "content-length:", ex[] = "expect:";
    int body = 0;
    for (uint32_t i = 0; i < n;) { /* each line */
        uint32_t e = i;
        while (e < n && d[e] != '\n') e++;
        uint32_t len = e - i;
        if (len >= sizeof ex - 1 && strncasecmp((const char *)d + i, ex, sizeof ex - 1) == 0)
            return 0;
        if (len > sizeof cl - 1 && strncasecmp((const char *)d + i, cl, sizeof cl - 1) == 0) {
            for (uint32_t k = i + sizeof cl - 1; k < e && d[k] != '\r'; k++)
                if (d[k] >= '1' && d[k] <= '9') body = 1;
        }
        i = e + 1;
    }
    return body;
}

/* A vector of ``width`` (1 or 2) length bytes at *pos within n: its start and length, *pos past
 * it; 0 when it does not fit (tls.py's _Reader.vec raising _Short). */
static int fp_vec(const uint8_t *d, uint32_t n, uint32_t *pos, int width, uint32_t *at,
                  uint32_t *len) {
    if (*pos + (uint32_t)width > n) return 0;
    uint32_t l = width == 1 ? d[*pos] : (uint32_t)(d[*pos] << 8 | d[*pos + 1]);
    *pos += (uint32_t)width;
    if (l > n - *pos) return 0;
    *at = *pos;
    *len = l;
    *pos += l;
    return 1;
}

/* The ClientHello body as tls.parse_client_hello walks it: version, random, session id, cipher
 * suites, compression methods, then (optional) the extensions, each within the declared length,
 * and inside SNI, ALPN and supported_versions their lists. 1 when it parses completely. */
static int fp_client_hello_body(const uint8_t *b, uint32_t n) {
    uint32_t pos = 34, at, len; /* legacy_version, random */
    if (n < pos) return 0;
    if (!fp_vec(b, n, &pos, 1, &at, &len) || !fp_vec(b, n, &pos, 2, &at, &len) ||
        !fp_vec(b, n, &pos, 1, &at, &len))
        return 0;
    if (pos == n) return 1; /* extensions are optional before TLS 1.2 */
    uint32_t ext_at, ext_len;
    if (!fp_vec(b, n, &pos, 2, &ext_at, &ext_len)) return 0;
    const uint8_t *e = b + ext_at;
    uint32_t ep = 0;
    while (ep < ext_len) {
        if (ext_len - ep < 2) return 0;
        uint32_t type = (uint32_t)(e[ep] << 8 | e[ep + 1]);
        ep += 2;
        uint32_t body_at, body_len;
        if (!fp_vec(e, ext_len, &ep, 2, &body_at, &body_len)) return 0;
        const uint8_t *x = e + body_at;
        uint32_t xp = 0, list_at, list_len, lp = 0;
        if (type == 0 || type == 16) { /* server_name, ALPN: a list with a 2-byte length */
            if (!fp_vec(x, body_len, &xp, 2, &list_at, &list_len)) return 0;
            const uint8_t *l = x + list_at;
            while (lp < list_len) {
                if (type == 0) { /* name type, then the name */
                    if (list_len - lp < 1) return 0;
                    lp += 1;
                }
                if (!fp_vec(l, list_len, &lp, type == 0 ? 2 : 1, &at, &len)) return 0;
            }
        } else if (type == 43) { /* supported_versions: 2-byte codes behind a 1-byte length */
            if (!fp_vec(x, body_len, &xp, 1, &list_at, &list_len)) return 0;
            if (list_len % 2) return 0;
        }
    }
    return 1;
}

/* A whole TLS handshake record that opens with a ClientHello of TLS 1.0-1.3 which parses as
 * tls.py parses it (the tests hold this to its answer). */
static int fp_tls_hello(const uint8_t *d, uint32_t n) {
    if (n < 11 || d[0] != 0x16 || d[1] != 3 || d[2] > 4 || d[5] != 1) return 0;
    uint32_t rec = (uint32_t)(d[3] << 8 | d[4]);
    uint32_t hs = (uint32_t)(d[6] << 16 | d[7] << 8 | d[8]);
    if (!(rec >= 4 && rec <= 16384 + 2048 && 5 + rec <= n && 4 + hs <= rec && d[9] == 3)) return 0;
    return fp_client_hello_body(d + 9, hs);
}

/* The protocol a connection's first client segment opens, as a pair bit (FP_PAIR_HTTP/TLS), or 0. */
int fp_app(const uint8_t *d, uint32_t n) {
    return fp_http_request(d, n) ? FP_PAIR_HTTP : fp_tls_hello(d, n) ? FP_PAIR_TLS : 0;
}

static uint8_t fp_pair_bits(struct fp_queue *q, const uint8_t *c, const uint8_t *s, uint16_t port) {
    uint32_t h = 2166136261u;
    for (int i = 0; i < 4; i++) h = (h ^ c[i]) * 16777619u;
    for (int i = 0; i < 4; i++) h = (h ^ s[i]) * 16777619u;
    h = ((h ^ port) * 16777619u) & (FP_PAIRS - 1);
    struct fp_pair *p = &q->own->pairs[h];
    if ((p->bits & FP_PAIR_KNOWN) && p->port == port && memcmp(p->client, c, 4) == 0 &&
        memcmp(p->server, s, 4) == 0)
        return p->bits;
    int bits = q->handle == NULL ? 0 : fp_advise(q->handle, c, s, port);
    if (bits <= 0) return 0; /* the callback failed: ask again next time */
    memcpy(p->client, c, 4);
    memcpy(p->server, s, 4);
    p->port = port;
    p->bits = (uint8_t)bits;
    return p->bits;
}

/* Hand a flow back to Python: its kept packets, in order (their answers went out already; a
 * block or a decision among them is carried to the packet at hand). */
static uint32_t fp_own_handback(struct fp_queue *q, struct fp_flow *f, int why) {
    struct fp_own *o = q->own;
    uint32_t bits = 0;
    uint32_t at = 0;
    o->handed++;
    o->why[why]++;
    while (at + 8 <= f->held_len) {
        uint32_t len, mark;
        memcpy(&len, f->held + at, 4);
        memcpy(&mark, f->held + at + 4, 4);
        const uint8_t *pkt = f->held + at + 8;
        at += 8 + ((len + 3) & ~3u);
        if (mark & FP_END_COPY) { /* an end the kernel copied: noted in its place, no verdict */
            (void)fp_judge(q->handle, pkt, len, mark);
            continue;
        }
        int64_t r = fp_judge(q->handle, pkt, len, mark);
        o->replayed++;
        if (r < 0) {
            q->errors++;
        } else {
            /* a block or a decision is carried; SCAN is the packet at hand's own to say */
            bits |= (uint32_t)(r & 0xFFFFFFFFLL) & ~(uint32_t)(FP_MARK_SCAN | FP_MARK_SCAN_SHORT);
            if (r & FP_DECIDED) fp_decided(q, pkt, len, (uint32_t)(r & 0xFFFFFFFFLL));
        }
    }
    fp_own_drop(o, f);
    return bits;
}

static int fp_keep(struct fp_own *o, struct fp_flow *f, const uint8_t *pkt, uint32_t len,
                   uint32_t mark) {
    uint32_t need = 8 + ((len + 3) & ~3u);
    uint32_t want = f->held_len + need;
    if (want > f->held_cap) {
        /* the first record alone, then doubling; where doubling would pass the cap, exactly
         * what is wanted: the cap bounds what is allocated, not only what is used */
        uint32_t cap = f->held_cap;
        while (cap < want) cap = cap ? cap * 2 : want;
        if (o->held - f->held_cap + cap > FP_HELD_MAX) cap = want;
        if (o->held - f->held_cap + cap > FP_HELD_MAX) return -1;
        uint8_t *grown = realloc(f->held, cap);
        if (grown == NULL) return -1;
        o->held = o->held - f->held_cap + cap;
        f->held = grown;
        f->held_cap = cap;
    }
    memcpy(f->held + f->held_len, &len, 4);
    memcpy(f->held + f->held_len + 4, &mark, 4);
    memcpy(f->held + f->held_len + 8, pkt, len);
    f->held_len = want;
    return 0;
}

#ifndef FP_NO_HS
static int fp_on_match(unsigned int id, unsigned long long from, unsigned long long to,
                       unsigned int flags, void *ctx) {
    (void)id; (void)from; (void)to; (void)flags;
    *(int *)ctx = 1;
    return 1; /* stop: Python takes the connection from here */
}
#endif

/* Scan one in-order segment of direction ``dir`` and keep it: -1 when nothing in it needs Python,
 * else why it does (FP_WHY_*). */
static int fp_own_take(struct fp_queue *q, struct fp_flow *f, int dir, const uint8_t *pkt,
                       uint32_t len, uint32_t mark, const uint8_t *data, uint32_t dlen) {
#ifdef FP_NO_HS
    (void)q; (void)f; (void)dir; (void)pkt; (void)len; (void)mark; (void)data; (void)dlen;
    (void)fp_keep; (void)fp_alnum;
    return FP_WHY_MATCH;
#else
    struct fp_own *o = q->own;
    if (f->bytes[dir] + dlen > FP_DIR_MAX) return FP_WHY_LIMIT;
    if (fp_alnum(data[dlen - 1])) return FP_WHY_ALNUM;
    if (f->hs[dir] == NULL && o->spares > 0) f->hs[dir] = o->spare[--o->spares];
    if (f->hs[dir] == NULL && hs_open_stream(o->db, 0, &f->hs[dir]) != HS_SUCCESS) {
        f->hs[dir] = NULL;
        return FP_WHY_MATCH;
    }
    int hit = 0;
    hs_error_t e = hs_scan_stream(f->hs[dir], (const char *)data, dlen, 0, o->scratch,
                                  fp_on_match, &hit);
    if (hit || e != HS_SUCCESS) return FP_WHY_MATCH;
    if (fp_keep(o, f, pkt, len, mark) < 0) return FP_WHY_LIMIT;
    f->bytes[dir] += dlen;
    return -1;
#endif
}

/* An unfragmented IPv4/TCP segment whose headers lie within the IP datagram, read as the
 * inspector's decoder (capture/decode.py) reads it: the datagram ends at its total length or at
 * the bytes captured, whichever comes first (a total of 0, a TSO super-frame: at the bytes). */
struct fp_seg {
    struct fp_key key;
    uint16_t sport, dport;
    uint32_t seq, ack, dlen;
    uint8_t flags;
    const uint8_t *data;
};

static int fp_own_parse(const uint8_t *p, uint32_t len, struct fp_seg *s) {
    if (len < 40 || p[0] >> 4 != 4 || p[9] != 6) return 0;
    uint32_t ihl = (uint32_t)(p[0] & 0xF) * 4;
    uint32_t total = (uint32_t)(p[2] << 8 | p[3]);
    if (ihl < 20 || ((p[6] << 8 | p[7]) & 0x3FFF) || (total != 0 && total < ihl)) return 0;
    if (total == 0 || total > len) total = len;
    if (total < ihl + 20) return 0;
    const uint8_t *t = p + ihl;
    uint32_t doff = (uint32_t)(t[12] >> 4) * 4;
    if (doff < 20 || ihl + doff > total) return 0;
    s->sport = (uint16_t)(t[0] << 8 | t[1]);
    s->dport = (uint16_t)(t[2] << 8 | t[3]);
    s->seq = (uint32_t)t[4] << 24 | (uint32_t)t[5] << 16 | (uint32_t)t[6] << 8 | t[7];
    s->ack = (uint32_t)t[8] << 24 | (uint32_t)t[9] << 16 | (uint32_t)t[10] << 8 | t[11];
    s->flags = t[13];
    s->data = t + doff;
    s->dlen = total - ihl - doff;
    fp_order(&s->key, p + 12, p + 16, 4, s->sport, s->dport);
    s->key.proto = 6;
    return 1;
}

/* A connection has two slots it may sit in (a slot and its neighbour): the one holding ``k``, or
 * NULL. */
static struct fp_flow *fp_own_find(struct fp_own *o, const struct fp_key *k) {
    uint32_t at = fp_hash(k) & (FP_OWN_FLOWS - 1);
    for (int i = 0; i < 2; i++) {
        struct fp_flow *f = &o->flows[at ^ (uint32_t)i];
        if (f->key.used && memcmp(&f->key, k, sizeof *k) == 0) return f;
    }
    return NULL;
}

static int fp_own_stale(const struct fp_flow *f, long now);

/* A slot for a new connection ``k``: a free one of its two, else one whose connection ended (in
 * its grace: forgotten, as after it; a replay of a closed connection would cost the new one its
 * latency) or went stale; NULL when both hold live connections: the new one is Python's (handing
 * a live one back, with every packet it kept, cost a long connection a stall). */
static struct fp_flow *fp_own_slot(struct fp_own *o, const struct fp_key *k, long now) {
    uint32_t at = fp_hash(k) & (FP_OWN_FLOWS - 1);
    for (int i = 0; i < 2; i++)
        if (!o->flows[at ^ (uint32_t)i].key.used) return &o->flows[at ^ (uint32_t)i];
    for (int i = 0; i < 2; i++) {
        struct fp_flow *f = &o->flows[at ^ (uint32_t)i];
        if (f->fins == 3 || fp_own_stale(f, now)) {
            fp_own_drop(o, f);
            return f;
        }
    }
    return NULL;
}

/* A FIN or RST of a connection that passed in the kernel (ends.py copies them to the enforcer):
 * once both directions ended, the flow is kept FP_END_GRACE seconds as Python keeps its own
 * (inspector.END_GRACE): a packet of it meanwhile goes to Python with the connection's kept
 * packets before it, so it is judged with its past; after that the sweep (or the packet) frees it,
 * and a later packet goes to Python alone, as one does after END_GRACE for Python's flows. */
int fp_own_end(struct fp_queue *q, const uint8_t *p, uint32_t len) {
    struct fp_seg s;
    if (!fp_own_parse(p, len, &s) || !(s.flags & (FP_TCP_FIN | FP_TCP_RST))) return 0;
    struct fp_flow *f = fp_own_find(q->own, &s.key);
    if (f == NULL) return 0;
    int dir = memcmp(f->client, p + 12, 4) == 0 && f->cport == s.sport ? 0 : 1;
    /* kept in its place among the packets: a hand-back replays it where Python would have seen it
     * (Python's flow then knows the end as the reference's does); without room, the connection
     * goes to Python now, the end after its packets */
    if (fp_keep(q->own, f, p, len, FP_END_COPY) < 0) {
        (void)fp_own_handback(q, f, FP_WHY_LIMIT);
        (void)fp_judge(q->handle, p, len, FP_END_COPY);
        return 1;
    }
    uint8_t before = f->fins;
    f->fins |= (s.flags & FP_TCP_RST) ? 3 : (uint8_t)(1 << dir);
    if (f->fins == 3 && before != 3) f->ended = fp_seconds();
    return 1;
}

/* An end read here (fp_set_ends): a connection answered here notes it; for the others Python's
 * end callback (fastpath.CompiledQueue, the inspector's end_seen) frees its flow after the grace. */
static void fp_end(struct fp_queue *q, const uint8_t *p, uint32_t len) {
    if (fp_own_end(q, p, len)) return;
    if (fp_judge(q->handle, p, len, FP_END_COPY) < 0) q->errors++;
}

/* An ended flow past its grace, or one idle past FP_IDLE_SECONDS: Python would have forgotten it. */
static int fp_own_stale(const struct fp_flow *f, long now) {
    return f->key.used &&
           ((f->fins == 3 && now - f->ended > FP_END_GRACE) || now - f->last > FP_IDLE_SECONDS);
}

/* A few slots per packet: the flows (and kept packets) Python would have forgotten are freed. */
static void fp_own_sweep(struct fp_own *o, long now) {
    for (int i = 0; i < FP_SWEEP; i++) {
        struct fp_flow *f = &o->flows[o->sweep++ & (FP_OWN_FLOWS - 1)];
        if (fp_own_stale(f, now)) fp_own_drop(o, f);
    }
}

/* 1: the packet is answered here (``*bits`` to add to its mark); 0: Python judges it, after any
 * kept packets of its connection (``*bits``: what they gave). */
static int fp_own_packet(struct fp_queue *q, const uint8_t *p, uint32_t len, uint32_t mark,
                         uint32_t *bits) {
    struct fp_own *o = q->own;
    *bits = 0;
    struct fp_seg s;
    if (!fp_own_parse(p, len, &s)) return 0;
    const struct fp_key k = s.key;
    const uint16_t sport = s.sport, dport = s.dport;
    const uint32_t seq = s.seq, ack = s.ack, dlen = s.dlen;
    const uint8_t flags = s.flags, *data = s.data;
    long now = fp_seconds();
    fp_own_sweep(o, now);
    struct fp_flow *f = fp_own_find(o, &k);
    if (f != NULL && fp_own_stale(f, now)) {
        fp_own_drop(o, f);
        f = NULL;
    }
    int same = f != NULL;
    if (mark & FP_FIRST) {
        if (same) fp_own_drop(o, f); /* a new connection on these ends: it starts afresh */
        /* without ACK the segment says nothing of where the server's bytes start (the
         * inspector then takes them from the server's first segment): Python's */
        if ((mark & FP_REPLY) || (flags & (FP_TCP_SYN | FP_TCP_FIN | FP_TCP_RST)) ||
            !(flags & FP_TCP_ACK) || dlen == 0)
            return 0;
        uint8_t pair = fp_pair_bits(q, p + 12, p + 16, dport);
        int app = fp_app(data, dlen);
        if (!(pair & app)) return 0;
        /* answered here (below) or not, the client's next segment is near */
        q->body_expected = app == FP_PAIR_HTTP && fp_http_body_follows(data, dlen);
        if (pair & FP_PAIR_ALLOW) {
            *bits = FP_MARK_ALLOW;
            fp_decided(q, p, len, FP_MARK_ALLOW);
            return 1;
        }
        if (!(pair & FP_PAIR_SCAN)) return 0;
#ifndef FP_NO_HS
        if (o->db == NULL) return 0;
#endif
        if (f == NULL) f = fp_own_slot(o, &k, now);
        if (f == NULL) { /* both its slots hold live connections: this one is Python's */
            o->why[FP_WHY_SLOT]++;
            return 0;
        }
        f->key = k;
        memcpy(f->client, p + 12, 4);
        f->cport = sport;
        f->next[0] = seq + dlen;
        f->next[1] = ack;
        f->last = now;
        f->scan = (pair & FP_PAIR_CLEAN ? FP_MARK_SCAN : 0) |
                  (pair & FP_PAIR_CLEAN_SHORT ? FP_MARK_SCAN_SHORT : 0);
        if (fp_own_take(q, f, 0, p, len, mark, data, dlen) < 0) {
            o->owned++;
            *bits = f->scan;
            return 1;
        }
        fp_own_drop(o, f); /* nothing kept yet: Python takes it from its first packet */
        return 0;
    }
    if (!same) return 0;
    if (f->fins == 3) { /* after its end, within the grace: Python judges it with its past */
        *bits = fp_own_handback(q, f, FP_WHY_END);
        return 0;
    }
    int dir = memcmp(f->client, p + 12, 4) == 0 && f->cport == sport ? 0 : 1;
    /* A clean segment's copy that also carries the FIN (a server closing as it answers): its
     * bytes are scanned here like any; its end reaches fp_own_end through the ends' group, as
     * the FINs that pass in the kernel do (the copy of its headers comes after it) */
    int copy_fin = (mark & FP_DATA_COPY) && (flags & (FP_TCP_SYN | FP_TCP_FIN | FP_TCP_RST)) ==
                   FP_TCP_FIN && dlen > 0 && seq == f->next[dir];
    if ((flags & (FP_TCP_SYN | FP_TCP_FIN | FP_TCP_RST)) && !copy_fin) {
        *bits = fp_own_handback(q, f, FP_WHY_END);
        return 0;
    }
    if (dlen > 0 && (int32_t)(f->next[dir] - (seq + dlen)) >= 0) {
        /* a retransmission of bytes already scanned and accepted: the reassembly drops it
         * (reassembly.Stream.segment), the answer stays; a loaded node's late verdicts make
         * TCP retransmit (tail loss probes) */
        o->retransmitted++;
        *bits = f->scan;
        return 1;
    }
    if (dlen == 0 || seq != f->next[dir]) {
        *bits = fp_own_handback(q, f, FP_WHY_ORDER);
        return 0;
    }
    int why = fp_own_take(q, f, dir, p, len, mark, data, dlen);
    if (why < 0) {
        f->next[dir] = seq + dlen;
        f->last = now;
        *bits = f->scan;
        return 1;
    }
    *bits = fp_own_handback(q, f, why);
    return 0;
}

/* For Python (fastpath.CompiledQueue.copy), the copies the caller reads itself. */
void fp_copy_one(struct fp_queue *q, const uint8_t *p, uint32_t len, uint32_t mark) {
    fp_copy(q, p, len, mark);
}

/* A clean segment that passed in the kernel (clean.py; its mark carries fastpath.DATA_COPY):
 * scanned and kept here when its connection is answered here, else read by Python, in its place
 * among the queued packets; no verdict to send. */
static void fp_copy(struct fp_queue *q, const uint8_t *p, uint32_t len, uint32_t mark) {
    if (fp_known(q, p, len, mark) >= 0) return; /* decided: nothing is read any more */
    uint32_t bits = 0;
    if (fp_own_packet(q, p, len, mark, &bits)) {
        q->copied_fast++;
        return;
    }
    q->copied++;
    if (fp_judge(q->handle, p, len, mark) < 0) q->errors++;
}
