/* The built-in DLP sensors' digit-run prefilters and the HTTP query trigger, scanned by hand.
 *
 * Reports exactly the (expression, end offset) pairs Hyperscan reports in stream mode for these
 * expressions (runscan.py has their texts; tests/network/test_dlp_runscan.py holds the two to
 * the same matches); an end is the stream offset one past the match's last byte.
 *
 *   0 card general  (?:^|[^0-9A-Za-z_])[2-68][0-9 \-]{12,}[0-9][^0-9A-Za-z_]
 *   1 card brand    (?:^|[^0-9A-Za-z_])(?:4[0-9 \-]{11,}|(?:50[123]|67[56])[0-9 \-]{8,}
 *                   |(?:5893|6304)[0-9 \-]{7,})[0-9][^0-9A-Za-z_]
 *   2 SSN           (?:^|[^0-9A-Za-z_])[0-9]{3}[ \-][0-9]{2}[ \-][0-9]{4}[^0-9A-Za-z_]
 *   3 IBAN          (?:^|[^A-Za-z0-9])[A-Z]{2}[0-9]{2}[A-Z0-9 ]{10,38}[A-Z0-9][^A-Za-z0-9]
 *   4 phone NANP    (?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[ .\-])[2-9][0-9]{2}[ .\-][0-9]{4}
 *                   [^0-9A-Za-z_]
 *   5 phone E.164   \+[0-9][0-9 \-]{6,23}[0-9][^0-9A-Za-z_]
 *   6 query trigger [A-Z] \S*\?\S*[%+]   (single match: its first end only)
 *
 * Every match ends where a run closes: a number (card, SSN, phone) at a non-word byte after a
 * digit, an IBAN at a byte that is no letter or digit after a capital or digit, the trigger at a
 * '%' or '+'. The loop looks only for those bytes; at one it reads back: fixed-length forms read
 * the bytes before, unbounded runs are read back once (what was read is kept per run, so no byte
 * is read back twice however long the run). The bytes before the stream are taken as NUL, which
 * stands for "^" (NUL is no word character, no space and in no run). Each position has LOOK
 * bytes before it to read: the state keeps the stream's last LOOK bytes, and where a call (or
 * its first LOOK bytes) ends, the open runs are read up to a few bytes from that end.
 */
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define LOOK 64
#define NONE UINT64_MAX
#define N_EXPR 7

struct rs_state {
    uint64_t pos; /* stream offset of the next byte */
    /* The run of [0-9 -] read so far: the bytes before c_from are read; c_open: the last of
     * them is in that run, which starts at c_start; general, brand: the least last-digit offset
     * a general or brand card match can end at in it (NONE: no start yet). */
    uint64_t c_from, c_start, general, brand;
    uint32_t c_open;
    /* The query trigger: the run of non-space bytes read up to q_from; q_open: the last byte
     * read is in it; q_lead: it follows "[A-Z] "; q_mark: it holds a '?'. */
    uint64_t q_from;
    uint32_t q_open, q_lead, q_mark, q_done;
    uint32_t ids[N_EXPR]; /* Hyperscan id reported per expression; UINT32_MAX: not wanted */
    uint8_t hist[LOOK];   /* the stream's last LOOK bytes (NUL before its start) */
};

enum {
    DIG = 1,    /* 0-9 */
    SEP = 2,    /* space or hyphen: in card and E.164 runs */
    WORD = 4,   /* [0-9A-Za-z_] */
    ALNUM = 8,  /* [0-9A-Za-z] */
    UP = 16,    /* A-Z */
    IRUN = 32,  /* [A-Z0-9 ] */
    SPACE = 64, /* \s: tab, LF, VT, FF, CR, space */
    NSEP = 128, /* NANP separator: space, dot, hyphen */
};

static uint8_t CLS[256];
static uint8_t PCT[256]; /* '%' and '+': where the trigger can end */

static void init_classes(void) {
    if (PCT['%'])
        return;
    for (int c = '0'; c <= '9'; c++)
        CLS[c] = DIG | WORD | ALNUM | IRUN;
    for (int c = 'A'; c <= 'Z'; c++)
        CLS[c] = WORD | ALNUM | UP | IRUN;
    for (int c = 'a'; c <= 'z'; c++)
        CLS[c] = WORD | ALNUM;
    CLS['_'] = WORD;
    CLS[' '] = SEP | IRUN | SPACE | NSEP;
    CLS['-'] = SEP | NSEP;
    CLS['.'] = NSEP;
    CLS['\t'] = CLS['\n'] = CLS['\v'] = CLS['\f'] = CLS['\r'] = SPACE;
    PCT['%'] = PCT['+'] = 1;
}

void rs_init(struct rs_state *s, const uint32_t *ids) {
    init_classes();
    memset(s, 0, sizeof *s);
    s->general = s->brand = NONE;
    memcpy(s->ids, ids, sizeof s->ids);
}

/* b[j] is the byte at stream offset at; B(x) the byte at stream offset x (x > at - LOOK). */
#define B(x) b[j - (size_t)(at - (x))]
#define ISD(x) (CLS[B(x)] & DIG)
#define D29(x) (B(x) >= '2' && B(x) <= '9')
#define EMIT(e)                              \
    do {                                     \
        if (s->ids[e] != UINT32_MAX) {       \
            out[2 * n] = s->ids[e];          \
            out[2 * n + 1] = at + 1;         \
            n++;                             \
        }                                    \
    } while (0)

/* Read the run of [0-9 -] back from offset q (in the run or not) to c_from, and keep what it
 * says about card starts. A start p needs a non-word byte before it; its brand prefix is read
 * forward and stops at the first non-digit, which the byte after q is when q ends a number (or
 * lies within the buffer when q is a checkpoint three bytes from the end). */
static void read_card_run(struct rs_state *s, const uint8_t *b, size_t j, uint64_t at,
                          uint64_t q) {
    if (q < s->c_from || q == NONE)
        return;
    uint64_t x = q + 1, general = NONE, brand = NONE;
    while (x > s->c_from && (CLS[B(x - 1)] & (DIG | SEP)))
        x--;
    /* x: the first byte of the run within [c_from, q] (q + 1 if q is not in a run) */
    const int continues = x == s->c_from && s->c_open;
    for (uint64_t p = q;; p--) {
        if (p < x || p == NONE)
            break;
        const uint8_t c = B(p);
        if ((CLS[c] & DIG) && !(CLS[B(p - 1)] & WORD)) {
            if (c >= '2' && c <= '8' && c != '7')
                general = p + 13;
            if (c == '4') {
                if (p + 12 < brand)
                    brand = p + 12;
            } else if (c == '5' || c == '6') {
                const uint8_t c1 = B(p + 1);
                if (c1 >= '0' && c1 <= '9') {
                    const uint8_t c2 = B(p + 2);
                    if ((c == '5' && c1 == '0' && c2 >= '1' && c2 <= '3') ||
                        (c == '6' && c1 == '7' && (c2 == '5' || c2 == '6'))) {
                        if (p + 11 < brand)
                            brand = p + 11;
                    } else if (c2 >= '0' && c2 <= '9') {
                        const uint8_t c3 = B(p + 3);
                        if (((c == '5' && c1 == '8' && c2 == '9' && c3 == '3') ||
                             (c == '6' && c1 == '3' && c2 == '0' && c3 == '4')) &&
                            p + 11 < brand)
                            brand = p + 11;
                    }
                }
            }
        }
        if (p == 0)
            break;
    }
    if (continues) {
        if (s->general != NONE)
            general = s->general; /* an earlier start in the same run */
        if (s->brand < brand)
            brand = s->brand;
    } else {
        s->c_start = x;
    }
    s->general = general;
    s->brand = brand;
    s->c_from = q + 1;
    s->c_open = (CLS[B(q)] & (DIG | SEP)) != 0;
}

/* The same for the trigger's run of non-space bytes, read back from offset q to q_from. */
static void read_query_run(struct rs_state *s, const uint8_t *b, size_t j, uint64_t at,
                           uint64_t q) {
    if (q < s->q_from || q == NONE)
        return;
    uint64_t x = q + 1;
    uint32_t mark = 0;
    while (x > s->q_from && !(CLS[B(x - 1)] & SPACE)) {
        x--;
        mark |= B(x) == '?';
    }
    if (x == s->q_from && s->q_open) {
        s->q_mark |= mark;
    } else {
        /* the run starts at x: after "[A-Z] "? (at the stream's start: no) */
        s->q_lead = x >= 2 && B(x - 1) == ' ' && (CLS[B(x - 2)] & UP);
        s->q_mark = mark;
    }
    s->q_from = q + 1;
    s->q_open = !(CLS[B(q)] & SPACE);
}

/* The byte b[j], at stream offset at, ends a run (prev: the class of the byte before it): report
 * what ends there. */
static size_t on_end(struct rs_state *s, const uint8_t *b, size_t j, uint64_t at, uint64_t *out,
                     size_t n) {
    const uint8_t c = b[j], cl = CLS[c], prev = CLS[b[j - 1]];
    const uint64_t q = at - 1;
    if ((prev & DIG) && !(cl & WORD)) {
        /* a number ends at q */
        read_card_run(s, b, j, at, q);
        if (s->general <= q)
            EMIT(0);
        if (s->brand <= q)
            EMIT(1);
        if (ISD(q - 1) && ISD(q - 2) && ISD(q - 3)) {
            const uint8_t s4 = CLS[B(q - 4)];
            if ((s4 & SEP) && ISD(q - 5) && ISD(q - 6) && (CLS[B(q - 7)] & SEP) && ISD(q - 8) &&
                ISD(q - 9) && ISD(q - 10) && !(CLS[B(q - 11)] & WORD))
                EMIT(2);
            if ((s4 & NSEP) && ISD(q - 5) && ISD(q - 6) && D29(q - 7)) {
                const uint8_t g = B(q - 8);
                if (((CLS[g] & NSEP) && ISD(q - 9) && ISD(q - 10) && D29(q - 11)) ||
                    (g == ')' && ISD(q - 9) && ISD(q - 10) && D29(q - 11) && B(q - 12) == '(') ||
                    (g == ' ' && B(q - 9) == ')' && ISD(q - 10) && ISD(q - 11) && D29(q - 12) &&
                     B(q - 13) == '('))
                    EMIT(4);
            }
        }
        /* E.164: the run starts with a digit right after a '+', 8-25 bytes back */
        const uint64_t len = q - s->c_start + 1;
        if (len >= 8 && len <= 25 && B(s->c_start - 1) == '+' && ISD(s->c_start))
            EMIT(5);
    }
    if ((prev & (DIG | UP)) && !(cl & ALNUM)) {
        /* an IBAN can end at q: a start (two capitals, two digits, after a byte that is no
         * letter or digit) 14 to 42 bytes back, all of it in [A-Z0-9 ] */
        uint64_t x = q;
        while (q - x < 42 && x > 0 && (CLS[B(x - 1)] & IRUN))
            x--;
        /* x: the run's first byte, or 42 back */
        for (uint64_t p = x; p + 14 <= q; p++) {
            if ((CLS[B(p)] & UP) && (CLS[B(p + 1)] & UP) && (CLS[B(p + 2)] & DIG) &&
                (CLS[B(p + 3)] & DIG) && !(CLS[B(p - 1)] & ALNUM)) {
                EMIT(3);
                break;
            }
        }
    }
    if (PCT[c] && !s->q_done) {
        read_query_run(s, b, j, at, q);
        if (s->q_lead && s->q_mark) {
            s->q_done = 1;
            EMIT(6);
        }
    }
    return n;
}

static inline int is_end(const uint8_t *b, size_t j) {
    return ((CLS[b[j - 1]] & (DIG | UP)) && !(CLS[b[j]] & ALNUM)) || PCT[b[j]];
}

#ifdef __SSE2__
/* 0xff where lo <= byte <= hi */
static inline __m128i in_range(__m128i v, char lo, char hi) {
    const __m128i t = _mm_sub_epi8(v, _mm_set1_epi8(lo));
    return _mm_cmpeq_epi8(_mm_min_epu8(t, _mm_set1_epi8((char)(hi - lo))), t);
}

/* Bit k set: b[j + k] may end a run (see is_end), for k < 16. */
static inline unsigned ends16(const uint8_t *b, size_t j) {
    const __m128i v = _mm_loadu_si128((const __m128i *)(b + j));
    const __m128i pv = _mm_loadu_si128((const __m128i *)(b + j - 1));
    const __m128i prev = _mm_or_si128(in_range(pv, '0', '9'), in_range(pv, 'A', 'Z'));
    const __m128i alnum = _mm_or_si128(_mm_or_si128(in_range(v, '0', '9'), in_range(v, 'A', 'Z')),
                                       in_range(v, 'a', 'z'));
    const __m128i pct = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('%')),
                                     _mm_cmpeq_epi8(v, _mm_set1_epi8('+')));
    return (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_andnot_si128(alnum, prev), pct));
}
#endif

/* Bytes b[from..to) at stream offsets pos..; b[from - LOOK..from) are the bytes before them.
 * Stops before a byte when fewer than N_EXPR hit pairs are left; returns the pairs written
 * (id, end in out) and sets *done to the index it stopped at. */
static size_t scan(struct rs_state *s, const uint8_t *b, size_t from, size_t to, uint64_t *out,
                   size_t cap, size_t n, size_t *done) {
    const uint64_t base = s->pos - from; /* stream offset of b[0] */
    size_t j = from;
#ifdef __SSE2__
    for (; j + 16 <= to; j += 16) {
        unsigned mask = ends16(b, j);
        while (mask) {
            const size_t k = j + (size_t)__builtin_ctz(mask);
            mask &= mask - 1;
            if (n + N_EXPR > cap) {
                s->pos = base + k;
                *done = k;
                return n;
            }
            n = on_end(s, b, k, base + k, out, n);
        }
    }
#endif
    for (; j < to; j++) {
        if (!is_end(b, j))
            continue;
        if (n + N_EXPR > cap)
            break; /* room for every pair one byte can end */
        n = on_end(s, b, j, base + j, out, n);
    }
    s->pos = base + j;
    *done = j;
    return n;
}

/* Where a call's buffer ends, read the open runs up to where the next buffer can reach back
 * (a brand prefix starting in the last three bytes is not known yet: it is read next time). */
static void checkpoint(struct rs_state *s, const uint8_t *b, size_t j, uint64_t at) {
    if (at >= 4)
        read_card_run(s, b, j, at, at - 4);
    if (at >= 1 && !s->q_done)
        read_query_run(s, b, j, at, at - 1);
}

/* Scan data[start..len) (start: where an earlier call that ran out of room stopped, else 0).
 * Writes up to cap pairs (id, end) to out (cap >= N_EXPR) and returns their number; *next is
 * where it stopped (len when done). */
size_t rs_scan(struct rs_state *s, const uint8_t *data, size_t len, size_t start, uint64_t *out,
               size_t cap, size_t *next) {
    size_t n = 0, done;
    const size_t head = len < LOOK ? len : LOOK;
    if (start < head) {
        /* the first bytes read history: scan them in a copy that holds both */
        uint8_t tmp[2 * LOOK];
        memcpy(tmp, s->hist, LOOK);
        memcpy(tmp + LOOK, data, head);
        n = scan(s, tmp, LOOK + start, LOOK + head, out, cap, n, &done);
        if (done < LOOK + head) {
            *next = done - LOOK;
            return n;
        }
        checkpoint(s, tmp, LOOK + head, s->pos);
        start = head;
    }
    if (start < len) {
        n = scan(s, data, start, len, out, cap, n, &done);
        if (done < len) {
            *next = done;
            return n;
        }
        checkpoint(s, data, len, s->pos);
    }
    if (len >= LOOK) {
        memcpy(s->hist, data + len - LOOK, LOOK);
    } else {
        memmove(s->hist, s->hist + len, LOOK - len);
        memcpy(s->hist + LOOK - len, data, len);
    }
    *next = len;
    return n;
}
