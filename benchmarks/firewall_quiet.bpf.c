/* A feasibility probe for a DLP "quiet" decision made before user space (issue 19; not part of
 * the enforcer): a tc classifier on each pod's host-side veth scans the TCP payload of IPv4
 * segments and sets packet mark QUIET_PROBE on a segment in which dlp.payment_card's prefilter
 * could not start (no run of 12 or more digits, spaces and dashes) and no HTTP decoding trigger
 * appears (triggers.py, approximated: '%', '+', NUL, "ent-enco", "fer-enco", "urlencod",
 * "ultipart", "h2c", "pri * h"). The benchmark's "/q" modes skip the queue for marked segments.
 *
 * What this does NOT do, and a real path would have to: follow each direction across segments
 * (a card or a trigger cut by a segment boundary, bytes the user-space streams then never see),
 * stop skipping once a direction showed a trigger, and cover the policy's other sensors. It
 * measures what a kernel-side decision would save and what the scan costs, nothing more.
 *
 * The verifier (kernel 6.18) refused a plain loop over the payload ("the sequence of 8193 jumps
 * is too complex", with or without 64-byte turns); bpf_loop over 16-byte turns with branchless
 * byte classes (a table: BPF has no conditional set) loads, and tc (iproute2 6.1, libbpf 1.1.2)
 * attaches it:
 *
 *   clang-14 -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu \
 *       -c benchmarks/firewall_quiet.bpf.c -o /tmp/firewall_quiet.bpf.o
 *   tc qdisc replace dev DEV clsact
 *   tc filter add dev DEV ingress bpf da obj /tmp/firewall_quiet.bpf.o sec tc
 */

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define QUIET_PROBE 0x100
#define SCAN_MAX 1500

struct scratch {
    unsigned char b[2048];
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct scratch);
} buf SEC(".maps");

static __always_inline __u64 tag(const char *s) {
    __u64 v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | (unsigned char)s[i];
    return v;
}

struct scan {
    __u32 len, run, over;
    __u64 bad, win;
};

/* byte classes (generated): 0x100 a card character (digit, space, dash), 0x200 a decoding
 * trigger on its own ('%', '+', NUL); the low 8 bits: the byte lowercased */
static const volatile __u16 CLASSES[256] = {
    0x200, 0x001, 0x002, 0x003, 0x004, 0x005, 0x006, 0x007, 0x008, 0x009, 0x00a, 0x00b,
    0x00c, 0x00d, 0x00e, 0x00f, 0x010, 0x011, 0x012, 0x013, 0x014, 0x015, 0x016, 0x017,
    0x018, 0x019, 0x01a, 0x01b, 0x01c, 0x01d, 0x01e, 0x01f, 0x120, 0x021, 0x022, 0x023,
    0x024, 0x225, 0x026, 0x027, 0x028, 0x029, 0x02a, 0x22b, 0x02c, 0x12d, 0x02e, 0x02f,
    0x130, 0x131, 0x132, 0x133, 0x134, 0x135, 0x136, 0x137, 0x138, 0x139, 0x03a, 0x03b,
    0x03c, 0x03d, 0x03e, 0x03f, 0x040, 0x061, 0x062, 0x063, 0x064, 0x065, 0x066, 0x067,
    0x068, 0x069, 0x06a, 0x06b, 0x06c, 0x06d, 0x06e, 0x06f, 0x070, 0x071, 0x072, 0x073,
    0x074, 0x075, 0x076, 0x077, 0x078, 0x079, 0x07a, 0x05b, 0x05c, 0x05d, 0x05e, 0x05f,
    0x060, 0x061, 0x062, 0x063, 0x064, 0x065, 0x066, 0x067, 0x068, 0x069, 0x06a, 0x06b,
    0x06c, 0x06d, 0x06e, 0x06f, 0x070, 0x071, 0x072, 0x073, 0x074, 0x075, 0x076, 0x077,
    0x078, 0x079, 0x07a, 0x07b, 0x07c, 0x07d, 0x07e, 0x07f, 0x080, 0x081, 0x082, 0x083,
    0x084, 0x085, 0x086, 0x087, 0x088, 0x089, 0x08a, 0x08b, 0x08c, 0x08d, 0x08e, 0x08f,
    0x090, 0x091, 0x092, 0x093, 0x094, 0x095, 0x096, 0x097, 0x098, 0x099, 0x09a, 0x09b,
    0x09c, 0x09d, 0x09e, 0x09f, 0x0a0, 0x0a1, 0x0a2, 0x0a3, 0x0a4, 0x0a5, 0x0a6, 0x0a7,
    0x0a8, 0x0a9, 0x0aa, 0x0ab, 0x0ac, 0x0ad, 0x0ae, 0x0af, 0x0b0, 0x0b1, 0x0b2, 0x0b3,
    0x0b4, 0x0b5, 0x0b6, 0x0b7, 0x0b8, 0x0b9, 0x0ba, 0x0bb, 0x0bc, 0x0bd, 0x0be, 0x0bf,
    0x0c0, 0x0c1, 0x0c2, 0x0c3, 0x0c4, 0x0c5, 0x0c6, 0x0c7, 0x0c8, 0x0c9, 0x0ca, 0x0cb,
    0x0cc, 0x0cd, 0x0ce, 0x0cf, 0x0d0, 0x0d1, 0x0d2, 0x0d3, 0x0d4, 0x0d5, 0x0d6, 0x0d7,
    0x0d8, 0x0d9, 0x0da, 0x0db, 0x0dc, 0x0dd, 0x0de, 0x0df, 0x0e0, 0x0e1, 0x0e2, 0x0e3,
    0x0e4, 0x0e5, 0x0e6, 0x0e7, 0x0e8, 0x0e9, 0x0ea, 0x0eb, 0x0ec, 0x0ed, 0x0ee, 0x0ef,
    0x0f0, 0x0f1, 0x0f2, 0x0f3, 0x0f4, 0x0f5, 0x0f6, 0x0f7, 0x0f8, 0x0f9, 0x0fa, 0x0fb,
    0x0fc, 0x0fd, 0x0fe, 0x0ff,
};

#define STEP 16 /* bytes per bpf_loop turn: the verifier walks one turn, not the whole payload */

/* 1 when x == 0, else 0, without a branch (BPF has no conditional set) */
static __always_inline __u64 is_zero(__u64 x) { return 1 - ((x | -x) >> 63); }

static long scan_step(__u64 turn, void *ctx) {
    struct scan *st = ctx;
    __u32 zero = 0;
    struct scratch *s = bpf_map_lookup_elem(&buf, &zero);
    if (s == 0) return 1;
    const __u64 t1 = tag("ent-enco"), t2 = tag("fer-enco"), t3 = tag("urlencod"),
                t4 = tag("ultipart");
    __u32 base = (__u32)turn * STEP;
    if (base >= st->len) return 1;
    __u32 left = st->len - base;
    __u32 run = st->run, over = st->over;
    __u64 bad = st->bad, win = st->win;
    for (__u32 j = 0; j < STEP; j++) {
        __u64 live = ((j - left) >> 31) & 1; /* 0 past the payload (left <= 2047) */
        __u16 k = CLASSES[s->b[(base + j) & 2047]];
        __u32 card = (__u32)(k >> 8) & 1;
        run = (run + 1) * card;
        over |= (__u32)(1 - ((run - 12) >> 31)) & (__u32)live; /* run >= RUN_LIMIT */
        win = (win << 8) | (k & 0xFF);
        __u64 hit = ((k >> 9) & 1) | is_zero(win ^ t1) | is_zero(win ^ t2) | is_zero(win ^ t3) |
                    is_zero(win ^ t4) | is_zero((win & 0xFFFFFF) ^ 0x683263) |
                    is_zero((win & 0xFFFFFFFFFFFFFF) ^ 0x707269202a2068);
        bad |= hit & live;
    }
    st->run = run;
    st->over = over;
    st->bad = bad;
    st->win = win;
    return 0;
}

SEC("tc")
int quiet(struct __sk_buff *skb) {
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP)) return TC_ACT_OK;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP || ip->ihl != 5) return TC_ACT_OK;
    if (ip->frag_off & bpf_htons(0x3FFF)) return TC_ACT_OK;
    struct tcphdr *tcp = (void *)(ip + 1);
    if ((void *)(tcp + 1) > end) return TC_ACT_OK;
    __u32 off = sizeof(*eth) + sizeof(*ip) + tcp->doff * 4;
    __u32 total = bpf_ntohs(ip->tot_len);
    if (total <= sizeof(*ip) + tcp->doff * 4) return TC_ACT_OK; /* no payload: the kernel's */
    __u32 len = total - sizeof(*ip) - tcp->doff * 4;
    if (len > SCAN_MAX) return TC_ACT_OK; /* a super-frame: not judged here */
    __u32 zero = 0;
    struct scratch *s = bpf_map_lookup_elem(&buf, &zero);
    if (s == 0) return TC_ACT_OK;
    __u64 n = len;
    asm volatile("%0 &= 0x7ff" : "+r"(n)); /* a bound the verifier sees (clang drops a plain &) */
    if (n < 1) return TC_ACT_OK;
    if (bpf_skb_load_bytes(skb, off, s->b, n) < 0) return TC_ACT_OK;
    struct scan st = {.len = len};
    bpf_loop((len + STEP - 1) / STEP, scan_step, &st, 0);
    if (!st.over && !st.bad) skb->mark |= QUIET_PROBE;
    return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
