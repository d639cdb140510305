/* The kernel's first look at a segment (see clean.py): a tc classifier on the node's interfaces
 * (ingress) that marks a TCP segment CLEAN when nothing a built-in DLP sensor reports could be in
 * it, so that a connection whose verdict is final but for DLP can let it pass at once, a copy
 * going to the enforcer (NFLOG) for the sensors, instead of holding it for a trip to user space.
 *
 * Per direction of a connection (a map entry made at its SYN), in sequence order:
 *   - the digits of a run of card characters (digits and the separators a card, an SSN or a
 *     telephone number is written with) are counted across segments; a segment in which a run
 *     reaches 12 digits is not CLEAN, one in which it reaches 9 is not CLEAN_SHORT;
 *   - a decoding trigger (a byte such as '%', '+', '\\', '@', NUL, or one of the header words the
 *     DLP decoding acts on, followed across segments) ends CLEAN for the rest of the direction;
 *   - a segment out of sequence (a retransmission, a gap, an overlap) is never CLEAN, and after a
 *     gap or an overlap the direction never is again; a direction without an entry (its SYN
 *     came before the classifier, or the entry was evicted) never is.
 * The byte classes and the trigger words are generated from clean.py (the reference the tests
 * compare this program with on real packets). Built by setup.py (clang -target bpf) when clang
 * is there; the enforcer attaches it with tc.
 */

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define MARK_CLEAN 0x100       /* marks.CLEAN */
#define MARK_CLEAN_SHORT 0x200 /* marks.CLEAN_SHORT */
#define MARK_HEAD 0x1000       /* marks.HEAD */
#define RUN_LONG 12            /* clean.RUN_LONG */
#define RUN_SHORT 9            /* clean.RUN_SHORT */
#define STEP 8                /* bytes per bpf_loop turn: the verifier walks one turn */
#define SCAN_MAX 2047          /* longer (a GSO super-packet): never CLEAN */

struct dir_key {
    __u8 src[16], dst[16];
    __u16 sport, dport;
    __u32 family;
};

struct dir_state {
    __u32 next;  /* the sequence number the next in-order segment starts at */
    __u32 run;   /* digits in the run of card characters at the end of what was scanned */
    __u64 win;   /* the last 8 bytes scanned, lowercased (trigger words across segments) */
    __u32 loud;  /* no segment of this direction is CLEAN any more */
    __u32 head;  /* a client's direction (SYN without ACK) whose first data segment is to come */
};

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 65536);
    __type(key, struct dir_key);
    __type(value, struct dir_state);
} directions SEC(".maps");

#include "clean_tables.h" /* generated from clean.py: python3 -m stockade.firewall.enforce.clean */

struct scratch {
    __u8 b[2048];
};

struct { /* the payload, copied once per segment (the stack holds 512 bytes) */
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct scratch);
} payload SEC(".maps");

struct scan {
    __u32 len, run, flags, pad;
    __u64 win;
};

/* 1 when x == 0, else 0, without a branch (BPF has no conditional set) */
static __always_inline __u64 is_zero(__u64 x) { return 1 - ((x | -x) >> 63); }

/* Both bits of ``part`` (a window's last bytes) set: a trigger word, or text that hashes alike. */
static __always_inline __u64 word_bit(__u64 part) {
    __u64 a = (part * WORD_HASH_MUL0) >> WORD_HASH_SHIFT, b = (part * WORD_HASH_MUL1) >> WORD_HASH_SHIFT;
    return (WORD_BITS0[a >> 3] >> (a & 7)) & (WORD_BITS1[b >> 3] >> (b & 7)) & 1;
}

/* The payload's scratch copy and where turn ``turn`` starts in it (*base), or 0 when the turn
 * is past the ``len`` bytes (the loop stops). */
static __always_inline struct scratch *turn_bytes(__u64 turn, __u32 len, __u32 *base) {
    __u32 zero = 0;
    struct scratch *s = bpf_map_lookup_elem(&payload, &zero);
    *base = (__u32)turn * STEP;
    return s == 0 || *base >= len ? 0 : s;
}

/* Turn ``turn``: STEP bytes from turn * STEP; bytes past the payload change nothing. */
static long scan_turn(__u64 turn, void *ctx) {
    struct scan *st = ctx;
    __u32 base;
    struct scratch *s = turn_bytes(turn, st->len, &base);
    if (s == 0) return 1;
    __u64 left = st->len - base;
    __u64 run = st->run, win = st->win, flags = st->flags;
#pragma unroll
    for (__u64 j = 0; j < STEP; j++) {
        __u64 live = (j - left) >> 63; /* 1 for the payload's bytes */
        __u16 k = CLASSES[s->b[(base + j) & 2047]];
        __u64 card = (k >> 8) & 1, digit = (k >> 10) & 1;
        __u64 r = (run + digit) * card;
        __u64 w = (win << 8) | (k & 0xFF);
        __u64 hit = ((k >> 9) & 1) | word_bit(w & 0xFFFFFF) | word_bit(w & 0xFFFFFFFFFFFFFFULL) |
                    word_bit(w);
        __u64 f = (1 - ((r - RUN_LONG) >> 63)) | (1 - ((r - RUN_SHORT) >> 63)) << 1 | hit << 2;
        flags |= f & (0 - live);
        run ^= (run ^ r) & (0 - live);
        win ^= (win ^ w) & (0 - live);
    }
    /* (no masks here: bounding these for the verifier made its walk of the callback never
     * converge; kernel 6.18) */
    st->run = (__u32)run;
    st->win = win;
    st->flags = (__u32)flags;
    return 0;
}

struct head_scan {
    __u32 len, pad;
    __u64 state;
};

/* Turn ``turn`` of the request-line automaton (clean.head_automaton): STEP bytes, one table
 * lookup each, no branch (as scan_turn: the verifier walks one turn). */
static long head_turn(__u64 turn, void *ctx) {
    struct head_scan *h = ctx;
    __u32 base;
    struct scratch *s = turn_bytes(turn, h->len, &base);
    if (s == 0) return 1;
    __u64 left = h->len - base, state = h->state;
#pragma unroll
    for (__u64 j = 0; j < STEP; j++) {
        __u64 live = (j - left) >> 63;
        __u64 next = HEAD_TRANS[((state & 127) << 8) | s->b[(base + j) & 2047]];
        state ^= (state ^ next) & (0 - live);
    }
    h->state = state;
    return 0;
}

SEC("tc")
int stockade_clean(struct __sk_buff *skb) {
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end) return TC_ACT_OK;
    struct dir_key key = {};
    __u32 l4off, iplen, hdrs;
    struct tcphdr *tcp;
    if (eth->h_proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = (void *)(eth + 1);
        if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP || ip->ihl < 5) return TC_ACT_OK;
        if (ip->frag_off & bpf_htons(0x3FFF)) return TC_ACT_OK;
        l4off = sizeof(*eth) + ip->ihl * 4;
        iplen = bpf_ntohs(ip->tot_len);
        hdrs = ip->ihl * 4;
        __builtin_memcpy(key.src, &ip->saddr, 4);
        __builtin_memcpy(key.dst, &ip->daddr, 4);
        key.family = 4;
    } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = (void *)(eth + 1);
        if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_TCP) return TC_ACT_OK;
        l4off = sizeof(*eth) + sizeof(*ip6);
        iplen = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
        hdrs = sizeof(*ip6);
        __builtin_memcpy(key.src, &ip6->saddr, 16);
        __builtin_memcpy(key.dst, &ip6->daddr, 16);
        key.family = 6;
    } else {
        return TC_ACT_OK;
    }
    if (l4off > 120) return TC_ACT_OK;
    tcp = data + l4off;
    if ((void *)(tcp + 1) > end) return TC_ACT_OK;
    key.sport = tcp->source;
    key.dport = tcp->dest;
    __u32 seq = bpf_ntohl(tcp->seq);
    if (tcp->syn) { /* a (new) connection in this direction: its bytes start after the SYN */
        struct dir_state fresh = {.next = seq + 1, .head = !tcp->ack};
        bpf_map_update_elem(&directions, &key, &fresh, BPF_ANY);
        return TC_ACT_OK;
    }
    __u32 doff = tcp->doff * 4;
    if (doff < 20 || iplen <= hdrs + doff) return TC_ACT_OK; /* no payload: the kernel's */
    __u32 len = iplen - hdrs - doff;
    if (skb->len < l4off + doff + len) return TC_ACT_OK; /* shorter than it says: not judged */
    struct dir_state *st = bpf_map_lookup_elem(&directions, &key);
    if (st == 0 || st->loud) return TC_ACT_OK;
    if (seq != st->next) {
        /* a plain retransmission of bytes already scanned is not CLEAN (the enforcer judges
         * it) but changes nothing; a gap or an overlap ends CLEAN in this direction */
        if ((__s32)(st->next - (seq + len)) < 0) st->loud = 1;
        return TC_ACT_OK;
    }
    if (len > SCAN_MAX) {
        st->loud = 1;
        return TC_ACT_OK;
    }
    __u32 zero = 0;
    struct scratch *buf = bpf_map_lookup_elem(&payload, &zero);
    if (buf == 0) return TC_ACT_OK;
    __u64 n = len;
    asm volatile("%0 &= 0x7ff" : "+r"(n)); /* a bound the verifier sees (clang drops a plain &) */
    if (n < 1 || bpf_skb_load_bytes(skb, l4off + doff, buf->b, n) < 0) {
        st->loud = 1;
        return TC_ACT_OK;
    }
    struct scan sc = {.len = len, .run = st->run, .win = st->win};
    bpf_loop((len + STEP - 1) / STEP, scan_turn, &sc, 0);
    st->next = seq + len;
    st->run = sc.run;
    st->win = sc.win;
    if (st->head) { /* the first data segment of a client's direction: a request line? */
        st->head = 0;
        if (key.family == 4 && tcp->ack && !tcp->fin && !tcp->rst) {
            struct head_scan hs = {.len = len < HEAD_LIMIT ? len : HEAD_LIMIT};
            bpf_loop((hs.len + STEP - 1) / STEP, head_turn, &hs, 0);
            if (hs.state == HEAD_ACCEPT) skb->mark |= MARK_HEAD;
        }
    }
    if (sc.flags & 4) {
        st->loud = 1;
        return TC_ACT_OK;
    }
    if (!(sc.flags & 1)) skb->mark |= MARK_CLEAN;
    if (!(sc.flags & 2)) skb->mark |= MARK_CLEAN_SHORT;
    return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
