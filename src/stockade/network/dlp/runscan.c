/* The built-in DLP sensors' digit-run prefilters and the HTTP query trigger, scanned by hand.
 *
 * Reports exactly the (expression, end offset) pairs Hyperscan reports in stream mode for these
 * expressions (runscan.py has their texts; tests/network/test_dlp_runscan.py holds the two to
 * the same matches); an end is the stream offset one past the match's last byte.
 *
 *   0 card general  (?:^|[^0-9A-Za-z_])[2-68]C{12,}[0-9][^0-9A-Za-z_]
 *   1 card brand    (?:^|[^0-9A-Za-z_])(?:4C{11,}|(?:50[123]|67[56])C{8,}
 *                   |(?:5893|6304)C{7,})[0-9][^0-9A-Za-z_]
 *                   (C: a card's run, [0-9 .\-\xa0\xc2]: digits and the separator bytes,
 *                   sensors.CARD_RUN_CLASS; the table CRN)
 *   2 SSN           (?:^|[^0-9A-Za-z_])[0-9]{3}[ \-][0-9]{2}[ \-][0-9]{4}[^0-9A-Za-z_]
 *   3 IBAN          (?:^|[^A-Za-z0-9])[A-Z]{2}[0-9]{2}[A-Z0-9 ]{10,38}[A-Z0-9][^A-Za-z0-9]
 *   4 phone NANP    (?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[ .\-])[2-9][0-9]{2}[ .\-][0-9]{4}
 *                   [^0-9A-Za-z_]
 *   5 phone E.164   \+[0-9][0-9 \-]{6,23}[0-9][^0-9A-Za-z_]
 *   6 query trigger [A-Z] \S*\?\S*[%+]   (single match: its first end only)
 *   7 JSON trigger  (?i)\\u00(?:3[0-9]|2[0de]|a0)   (single match: its first end only)
 *
 * The other built-in expressions (the e-mail prefilter, the SSN context words, the other
 * triggers) are literals or close to it, which Hyperscan scans fast; built with libhs
 * (RS_HS), a stream of them is scanned here too, with the system's libhs, so the engine makes
 * one call a segment. The two scans' hits come back merged in the order of their ends.
 *
 * Every match ends where a run closes: a number (card, SSN, phone) at a non-word byte after a
 * digit, an IBAN at a byte that is no letter or digit after a capital or digit, the query trigger
 * at a '%' or '+', the JSON trigger five bytes after a backslash. The loop looks only for those bytes; at one it reads back: fixed-length forms read
 * the bytes before, unbounded runs are read back once (what was read is kept per run, so no byte
 * is read back twice however long the run). The bytes before the stream are taken as NUL, which
 * stands for "^" (NUL is no word character, no space and in no run). Each position has LOOK
 * bytes before it to read: the state keeps the stream's last LOOK bytes, and where a call (or
 * its first LOOK bytes) ends, the open runs are read up to a few bytes from that end.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef RS_HS
#include <hs/hs.h>
#endif
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define LOOK 64
#define NONE UINT64_MAX
#define N_EXPR 8
#define RS_MORE ((size_t)1 << 62) /* rs_scan's answer: it stopped before the end */
#define SHRINK (1u << 16)          /* hit buffers past this many pairs are given back */

/* A growable array of (id, end) pairs. */
struct rs_pairs {
    uint64_t *p;
    size_t n, cap;
};

static int grow(struct rs_pairs *a, size_t need) {
    if (need <= a->cap)
        return 0;
    size_t cap = a->cap ? a->cap : 256;
    while (cap < need)
        cap *= 2;
    uint64_t *p = realloc(a->p, cap * 2 * sizeof *p);
    if (p == NULL)
        return -1;
    a->p = p;
    a->cap = cap;
    return 0;
}

static void trim(struct rs_pairs *a) {
    if (a->cap > SHRINK) {
        free(a->p);
        a->p = NULL;
        a->cap = 0;
    }
    a->n = 0;
}

/* The other expressions' database and what the streams of one engine share (one thread). */
struct rs_db {
#ifdef RS_HS
    hs_database_t *db;
    hs_scratch_t *scratch;
#endif
    struct rs_pairs hs, merged; /* the last call's libhs hits; both scans' hits merged */
    int failed;                 /* out of memory in a libhs callback */
};

struct rs_state {
    uint64_t pos; /* stream offset of the next byte */
    /* The card run (C) that starts at c_start, read from there up to c_from; general, brand:
     * the least last-digit offset a general or brand card match can end at in it (NONE: no
     * start yet). */
    uint64_t c_from, c_start, general, brand;
    /* run: the latest start of a [0-9 -] run (E.164); crun: of a card run (C); aadd: the latest
     * end of "[A-Z][A-Z][0-9][0-9]" (an IBAN's start; NONE: none yet), all at or before the
     * last byte scanned */
    uint64_t run, crun, aadd;
    /* The query trigger: the run of non-space bytes read up to q_from; q_open: the last byte
     * read is in it; q_lead: it follows "[A-Z] "; q_mark: it holds a '?'. */
    uint64_t q_from;
    uint32_t q_open, q_lead, q_mark, q_done;
    uint32_t j_done; /* the JSON trigger was reported (single match) */
    uint32_t ids[N_EXPR]; /* Hyperscan id reported per expression; UINT32_MAX: not wanted */
    uint8_t hist[LOOK];   /* the stream's last LOOK bytes (NUL before its start) */
    struct rs_db *db;     /* the engine's (NULL: none) */
#ifdef RS_HS
    hs_stream_t *hs;
#endif
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
static uint8_t CRN[256]; /* 1 in a card's run: 0-9, space, hyphen, dot, 0xa0, 0xc2 (UTF-8 NBSP) */
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
    for (const char *c = "0123456789 -.\xa0\xc2"; *c; c++)
        CRN[(uint8_t)*c] = 1;
    CLS['\t'] = CLS['\n'] = CLS['\v'] = CLS['\f'] = CLS['\r'] = SPACE;
    PCT['%'] = PCT['+'] = 1;
}

void rs_init(struct rs_state *s, const uint32_t *ids) {
    init_classes();
    memset(s, 0, sizeof *s);
    s->general = s->brand = s->aadd = NONE;
    memcpy(s->ids, ids, sizeof s->ids);
}

int rs_has_hs(void) {
#ifdef RS_HS
    return 1;
#else
    return 0;
#endif
}

/* The database of the other expressions (n may be 0: none); NULL and a message on failure. */
struct rs_db *rs_db_new(const char *const *exprs, const unsigned *flags, const unsigned *ids,
                        unsigned n, char *err, size_t errlen) {
    struct rs_db *d = calloc(1, sizeof *d);
    if (d == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
#ifdef RS_HS
    if (n) {
        hs_compile_error_t *cerr = NULL;
        if (hs_compile_multi(exprs, flags, ids, n, HS_MODE_STREAM, NULL, &d->db, &cerr) !=
            HS_SUCCESS) {
            snprintf(err, errlen, "%s", cerr ? cerr->message : "hs_compile_multi failed");
            hs_free_compile_error(cerr);
            free(d);
            return NULL;
        }
        if (hs_alloc_scratch(d->db, &d->scratch) != HS_SUCCESS) {
            snprintf(err, errlen, "hs_alloc_scratch failed");
            hs_free_database(d->db);
            free(d);
            return NULL;
        }
    }
#else
    (void)exprs, (void)flags, (void)ids;
    if (n) {
        snprintf(err, errlen, "built without libhs");
        free(d);
        return NULL;
    }
#endif
    return d;
}

void rs_db_free(struct rs_db *d) {
    if (d == NULL)
        return;
#ifdef RS_HS
    if (d->scratch)
        hs_free_scratch(d->scratch);
    if (d->db)
        hs_free_database(d->db);
#endif
    free(d->hs.p);
    free(d->merged.p);
    free(d);
}

/* A stream's state (db: its engine's, kept alive by the caller); NULL if out of memory. */
struct rs_state *rs_new(const uint32_t *ids, struct rs_db *db) {
    struct rs_state *s = malloc(sizeof *s);
    if (s == NULL)
        return NULL;
    rs_init(s, ids);
    s->db = db;
#ifdef RS_HS
    if (db && db->db && hs_open_stream(db->db, 0, &s->hs) != HS_SUCCESS) {
        free(s);
        return NULL;
    }
#endif
    return s;
}

void rs_free(struct rs_state *s) {
    if (s == NULL)
        return;
#ifdef RS_HS
    if (s->hs)
        /* No callback (no expression is end-anchored), so no scratch: the engine's database
         * may already be gone when a stream is collected with it. */
        hs_close_stream(s->hs, NULL, NULL, NULL);
#endif
    free(s);
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

/* A card start at offset p (a digit after a non-word byte): lower general and brand to the
 * least offset a match from it can end at. The brand prefix is read forward and stops at the
 * first non-digit (the byte after the run's end, which the caller has). */
static void card_start(const uint8_t *b, size_t j, uint64_t at, uint64_t p, uint64_t *general,
                       uint64_t *brand) {
    const uint8_t c = B(p);
    if (c >= '2' && c <= '8' && c != '7')
        *general = p + 13;
    if (c == '4') {
        if (p + 12 < *brand)
            *brand = p + 12;
    } else if (c == '5' || c == '6') {
        const uint8_t c1 = B(p + 1);
        if (c1 >= '0' && c1 <= '9') {
            const uint8_t c2 = B(p + 2);
            if ((c == '5' && c1 == '0' && c2 >= '1' && c2 <= '3') ||
                (c == '6' && c1 == '7' && (c2 == '5' || c2 == '6'))) {
                if (p + 11 < *brand)
                    *brand = p + 11;
            } else if (c2 >= '0' && c2 <= '9') {
                const uint8_t c3 = B(p + 3);
                if (((c == '5' && c1 == '8' && c2 == '9' && c3 == '3') ||
                     (c == '6' && c1 == '3' && c2 == '0' && c3 == '4')) &&
                    p + 11 < *brand)
                    *brand = p + 11;
            }
        }
    }
}

/* Read the card run that starts at cs back from offset q (in it) to c_from, once, and
 * keep what it says about card starts. Called where a number ends (the byte after q is no
 * digit) or three bytes before a buffer's end (the bytes after q are there). */
static void read_card_run(struct rs_state *s, const uint8_t *b, size_t j, uint64_t at,
                          uint64_t q, uint64_t cs) {
    if (s->c_start != cs) {
        s->c_start = s->c_from = cs;
        s->general = s->brand = NONE;
    }
    if (q < s->c_from)
        return;
    uint64_t general = NONE, brand = s->brand;
    for (uint64_t x = q + 1; x > s->c_from;) {
        x--;
        if ((CLS[B(x)] & DIG) && !(CLS[B(x - 1)] & WORD))
            card_start(b, j, at, x, &general, &brand);
    }
    if (s->general == NONE)
        s->general = general; /* else an earlier start in the run */
    s->brand = brand;
    s->c_from = q + 1;
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

/* "\\" then u, 0, 0, d, c, caseless, ends the JSON trigger: \\u0030-\\u0039, \\u0020, \\u002d, \\u002e,
 * \\u00a0 (an escaped digit or card separator; what the decoding undoes) */
static inline int json_end(uint8_t u, uint8_t z1, uint8_t z2, uint8_t d, uint8_t c) {
    if ((u | 0x20) != 'u' || z1 != '0' || z2 != '0')
        return 0;
    if (d == '3')
        return c >= '0' && c <= '9';
    if (d == '2')
        return c == '0' || (c | 0x20) == 'd' || (c | 0x20) == 'e';
    return (d | 0x20) == 'a' && c == '0';
}

/* The byte b[j], at stream offset at, ends a run (prev: the class of the byte before it): report
 * what ends there. */
static size_t on_end(struct rs_state *s, const uint8_t *b, size_t j, uint64_t at, uint64_t *out,
                     size_t n, uint64_t cs, uint64_t es, uint64_t aadd) {
    const uint8_t c = b[j];
    const uint8_t cl = CLS[c], prev = CLS[b[j - 1]];
    const uint64_t q = at - 1;
    if ((prev & DIG) && !(cl & WORD)) {
        /* a number ends at q, in the card run that starts at cs (and the run of [0-9 -] that
         * starts at es) */
        const uint64_t len = q - cs + 1;
        if (len >= 12) { /* else too short for any card */
            read_card_run(s, b, j, at, q, cs);
            if (s->general <= q)
                EMIT(0);
            if (s->brand <= q)
                EMIT(1);
        }
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
        const uint64_t elen = q - es + 1;
        if (elen >= 8 && elen <= 25 && B(es - 1) == '+' && ISD(es))
            EMIT(5);
    }
    if ((prev & (DIG | UP)) && !(cl & ALNUM) && aadd != NONE && aadd + 39 >= q) {
        /* an IBAN can end at q: a start (two capitals, two digits, after a byte that is no
         * letter or digit; the latest such four end at aadd) 14 to 42 bytes back, all of it in
         * [A-Z0-9 ] */
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
    if (B(at - 5) == '\\' && !s->j_done &&
        json_end(B(at - 4), B(at - 3), B(at - 2), B(at - 1), c)) {
        s->j_done = 1;
        EMIT(7);
    }
    return n;
}

static inline int is_end(const uint8_t *b, size_t j, uint32_t j_done) {
    return ((CLS[b[j - 1]] & (DIG | UP)) && !(CLS[b[j]] & ALNUM)) || PCT[b[j]] ||
           (b[j - 5] == '\\' && !j_done);
}

/* After b[j] (at stream offset at): the latest run start and IBAN start (see rs_state). */
static inline void track(struct rs_state *s, const uint8_t *b, size_t j, uint64_t at) {
    const uint8_t cl = CLS[b[j]], prev = CLS[b[j - 1]];
    if ((cl & (DIG | SEP)) && !(prev & (DIG | SEP)))
        s->run = at;
    if (CRN[b[j]] && !CRN[b[j - 1]])
        s->crun = at;
    if ((cl & DIG) && (prev & DIG) && (CLS[b[j - 2]] & UP) && (CLS[b[j - 3]] & UP))
        s->aadd = at;
}

#ifdef __SSE2__
/* 0xff where lo <= byte <= hi */
static inline __m128i in_range(__m128i v, char lo, char hi) {
    const __m128i t = _mm_sub_epi8(v, _mm_set1_epi8(lo));
    return _mm_cmpeq_epi8(_mm_min_epu8(t, _mm_set1_epi8((char)(hi - lo))), t);
}

/* For b[j..j+16): bit k of ends: b[j + k] may end a run (see is_end; of esc: five bytes after
 * a backslash, where the JSON trigger ends); of runs: a run of [0-9 -] starts there; of cruns: a
 * card run; of aadd: "[A-Z][A-Z][0-9][0-9]" ends there. */
static inline void masks16(const uint8_t *b, size_t j, unsigned *ends, unsigned *esc,
                           unsigned *runs, unsigned *cruns, unsigned *aadd) {
    const __m128i v = _mm_loadu_si128((const __m128i *)(b + j));
    const __m128i v1 = _mm_loadu_si128((const __m128i *)(b + j - 1));
    const __m128i v2 = _mm_loadu_si128((const __m128i *)(b + j - 2));
    const __m128i v3 = _mm_loadu_si128((const __m128i *)(b + j - 3));
    const __m128i dig = in_range(v, '0', '9'), dig1 = in_range(v1, '0', '9');
    const __m128i up1 = in_range(v1, 'A', 'Z');
    const __m128i alnum = _mm_or_si128(_mm_or_si128(dig, in_range(v, 'A', 'Z')),
                                       in_range(v, 'a', 'z'));
    const __m128i pct = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('%')),
                                     _mm_cmpeq_epi8(v, _mm_set1_epi8('+')));
    const __m128i inrun = _mm_or_si128(dig, _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(' ')),
                                                         _mm_cmpeq_epi8(v, _mm_set1_epi8('-'))));
    const __m128i more = _mm_or_si128(
        _mm_cmpeq_epi8(v, _mm_set1_epi8('.')),
        _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8((char)0xa0)),
                     _mm_cmpeq_epi8(v, _mm_set1_epi8((char)0xc2))));
    const __m128i four = _mm_and_si128(_mm_and_si128(dig, dig1),
                                       _mm_and_si128(in_range(v2, 'A', 'Z'), in_range(v3, 'A', 'Z')));
    *ends = (unsigned)_mm_movemask_epi8(
        _mm_or_si128(_mm_andnot_si128(alnum, _mm_or_si128(dig1, up1)), pct));
    /* run starts: in the run, the byte before not (its bit shifted in; b[j - 1] by table) */
    const unsigned in = (unsigned)_mm_movemask_epi8(inrun);
    const unsigned cin = in | (unsigned)_mm_movemask_epi8(more);
    *runs = in & ~((in << 1) | ((CLS[b[j - 1]] & (DIG | SEP)) != 0));
    *cruns = cin & ~((cin << 1) | CRN[b[j - 1]]);
    *aadd = (unsigned)_mm_movemask_epi8(four);
    *esc = (unsigned)_mm_movemask_epi8(
        _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(b + j - 5)), _mm_set1_epi8('\\')));
}

/* the offset of the highest set bit of mask (nonzero) in the block at stream offset at */
#define LAST(at, mask) ((at) + 31 - (uint64_t)__builtin_clz(mask))
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
        unsigned ends, esc, runs, cruns, aadd;
        masks16(b, j, &ends, &esc, &runs, &cruns, &aadd);
        if (!s->j_done)
            ends |= esc;
        while (ends) {
            const unsigned k = (unsigned)__builtin_ctz(ends);
            ends &= ends - 1;
            /* what starts and ends before b[j + k] */
            const unsigned before = (1u << k) - 1, r = runs & before, a = aadd & before;
            const unsigned cr = cruns & before;
            if (n + N_EXPR > cap) {
                if (r)
                    s->run = LAST(base + j, r);
                if (cr)
                    s->crun = LAST(base + j, cr);
                if (a)
                    s->aadd = LAST(base + j, a);
                s->pos = base + j + k;
                *done = j + k;
                return n;
            }
            n = on_end(s, b, j + k, base + j + k, out, n, cr ? LAST(base + j, cr) : s->crun,
                       r ? LAST(base + j, r) : s->run, a ? LAST(base + j, a) : s->aadd);
        }
        if (runs)
            s->run = LAST(base + j, runs);
        if (cruns)
            s->crun = LAST(base + j, cruns);
        if (aadd)
            s->aadd = LAST(base + j, aadd);
    }
#endif
    for (; j < to; j++) {
        if (is_end(b, j, s->j_done)) {
            if (n + N_EXPR > cap)
                break; /* room for every pair one byte can end */
            n = on_end(s, b, j, base + j, out, n, s->crun, s->run, s->aadd);
        }
        track(s, b, j, base + j);
    }
    s->pos = base + j;
    *done = j;
    return n;
}

/* Where a call's buffer ends, read the open runs up to where the next buffer can reach back
 * (a brand prefix starting in the last three bytes is not known yet: it is read next time). */
static void checkpoint(struct rs_state *s, const uint8_t *b, size_t j, uint64_t at) {
    if (at >= 4 && CRN[b[j - 1]] && s->crun + 4 <= at)
        read_card_run(s, b, j, at, at - 4, s->crun);
    if (at >= 1 && !s->q_done)
        read_query_run(s, b, j, at, at - 1);
}

/* Scan data[start..len) (start: where an earlier call that ran out of room stopped, else 0).
 * Writes up to cap pairs (id, end) to out (cap >= N_EXPR) and returns their number, plus
 * RS_MORE if it ran out of room before the end; *next is where it stopped (len when done). */
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
            return n | RS_MORE;
        }
        checkpoint(s, tmp, LOOK + head, s->pos);
        start = head;
    }
    if (start < len) {
        n = scan(s, data, start, len, out, cap, n, &done);
        if (done < len) {
            *next = done;
            return n | RS_MORE;
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

#ifdef RS_HS
static int on_hs(unsigned int id, unsigned long long from, unsigned long long to,
                 unsigned int flags, void *ctx) {
    (void)from, (void)flags;
    struct rs_db *d = ctx;
    if (grow(&d->hs, d->hs.n + 1)) {
        d->failed = 1;
        return 1; /* stops the scan: the caller reports the failure */
    }
    d->hs.p[2 * d->hs.n] = id;
    d->hs.p[2 * d->hs.n + 1] = to;
    d->hs.n++;
    return 0;
}
#endif

/* Both scans of data: the hand-written one and (with a database) libhs's. Returns the number of
 * (id, end) pairs, in the order of their ends (libhs's first among equal ends), at *pairs;
 * -1 if out of memory or libhs failed (the stream is then unusable). */
long long rs_scan_all(struct rs_state *s, const uint8_t *data, size_t len, const uint64_t **pairs) {
    struct rs_db *d = s->db;
    size_t hn = 0;
#ifdef RS_HS
    if (s->hs) {
        trim(&d->hs);
        d->failed = 0;
        for (size_t at = 0; at < len;) { /* libhs takes an unsigned length */
            const size_t piece = len - at < (1u << 30) ? len - at : (1u << 30);
            if (hs_scan_stream(s->hs, (const char *)data + at, (unsigned)piece, 0, d->scratch,
                               on_hs, d) != HS_SUCCESS ||
                d->failed)
                return -1;
            at += piece;
        }
        hn = d->hs.n;
    }
#endif
    /* the hand-written scan's pairs go after libhs's, in the same buffer */
    struct rs_pairs *m = &d->merged;
    trim(m);
    size_t start = 0, next;
    for (;;) {
        if (grow(m, m->n + 4096))
            return -1;
        const size_t got = rs_scan(s, data, len, start, m->p + 2 * m->n, 4096, &next);
        m->n += got & ~RS_MORE;
        if (!(got & RS_MORE))
            break;
        start = next;
    }
    if (hn == 0) {
        *pairs = m->p;
        return (long long)m->n;
    }
    if (m->n == 0) {
        *pairs = d->hs.p;
        return (long long)hn;
    }
    for (size_t i = 1; i < hn; i++) {
        if (d->hs.p[2 * i + 1] < d->hs.p[2 * i - 1]) {
            /* libhs out of the order of ends: a stable sort of both (never seen) */
            if (grow(&d->hs, hn + m->n))
                return -1;
            memcpy(d->hs.p + 2 * hn, m->p, m->n * 2 * sizeof *m->p);
            const size_t total = hn + m->n;
            for (size_t x = 1; x < total; x++) {
                const uint64_t id = d->hs.p[2 * x], end = d->hs.p[2 * x + 1];
                size_t y = x;
                for (; y > 0 && d->hs.p[2 * y - 1] > end; y--) {
                    d->hs.p[2 * y] = d->hs.p[2 * y - 2];
                    d->hs.p[2 * y + 1] = d->hs.p[2 * y - 1];
                }
                d->hs.p[2 * y] = id;
                d->hs.p[2 * y + 1] = end;
            }
            *pairs = d->hs.p;
            return (long long)total;
        }
    }
    /* merge: libhs's pairs (in d->hs) and the hand-written ones (in m) into d->hs's head */
    const size_t total = hn + m->n;
    if (grow(&d->hs, total + hn))
        return -1;
    uint64_t *h = d->hs.p + 2 * total; /* a copy of libhs's pairs past the merged area */
    memcpy(h, d->hs.p, hn * 2 * sizeof *h);
    size_t a = 0, b = 0, o = 0;
    while (a < hn || b < m->n) {
        const uint64_t *src;
        if (b == m->n || (a < hn && h[2 * a + 1] <= m->p[2 * b + 1]))
            src = &h[2 * a++];
        else
            src = &m->p[2 * b++];
        d->hs.p[2 * o] = src[0];
        d->hs.p[2 * o + 1] = src[1];
        o++;
    }
    *pairs = d->hs.p;
    return (long long)total;
}
