/* The enforcer's NFQUEUE loop in C (see fastpath.py): the netlink socket, the wait, the parse of
 * queued packets, the answer for connections already decided, and the verdict, without a Python
 * object per packet. Python (fp_judge) is called only for packets that need a judgement.
 *
 * Netlink messages are written and read here directly (nfnetlink_queue, no library): a CONFIG
 * command binds the queue, the kernel sends one PACKET message per queued packet, and one VERDICT
 * message answers it (accept, with the packet mark when one is set). */

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/netlink.h>

#define FP_SUBSYS_QUEUE 3
#define FP_MSG_PACKET 0
#define FP_MSG_VERDICT 1
#define FP_MSG_CONFIG 2
#define FP_A_PACKET_HDR 1
#define FP_A_VERDICT_HDR 2
#define FP_A_MARK 3
#define FP_A_PAYLOAD 10
#define FP_A_CFG_CMD 1
#define FP_A_CFG_PARAMS 2
#define FP_A_CFG_QUEUE_MAXLEN 3
#define FP_CFG_CMD_BIND 1
#define FP_CFG_CMD_UNBIND 2
#define FP_COPY_PACKET 2
#define FP_NF_ACCEPT 1
#define FP_NETLINK_NETFILTER 12
#define FP_RCVBUF (4u << 20)
#define FP_BUFSIZE (0x10000 + 4096)
#define FP_SPIN_WANTED_NS 20000 /* a yield that took this long let another task run */

/* ct/packet mark bits (marks.py) the fast path reads */
#define FP_FIRST 0x40
#define FP_TCP_SYN 0x02
#define FP_TCP_FIN 0x01
#define FP_TCP_RST 0x04
#define FP_TCP_ACK 0x10

#define FP_TABLE 4096 /* decided flows remembered (a power of two); older ones are overwritten */

struct fp_key {
    uint8_t a[16], b[16]; /* the two ends, the lower (address, port) first */
    uint16_t pa, pb;
    uint8_t proto, used;
};

struct fp_slot {
    struct fp_key key;
    uint32_t mark;
};

struct fp_queue {
    int fd;
    uint16_t num;
    uint32_t seq;
    uint8_t *buf;
    struct fp_slot *table;
    uint64_t judged, fast, errors;
    uint64_t copied, copied_fast; /* clean segments' copies read by Python, and here (fp_copy) */
    /* the NFLOG socket of the clean segments' copies, read here (fp_copies_drain), or -1 */
    int copies_fd;
    uint8_t *copies_buf;
    uint64_t copies_lost; /* reads that found the socket had overflowed */
    /* the copies do not wake the loop while they keep coming (fp_run): read before each read of
     * the queue and at the latest copies_wait_ns after the last read that found some; busy: the
     * last read found some; due: when they are read next if nothing else wakes the loop */
    uint64_t copies_wait_ns, copies_due, copies_wakes;
    int copies_busy;
    /* the NFLOG socket of the connections' ends (FINs and RSTs that passed), read here, or -1 */
    int ends_fd;
    uint64_t ends_lost;
    /* the wait after a read (fp_run): poll without sleeping for up to spin_ns, adapted between 0
     * and spin_max_ns to what the waits show; spins that found a packet, spins that did not */
    uint64_t spin_max_ns, spin_ns, spin_hits, spin_misses, spin_yielded;
    /* after answering the head of an HTTP request whose body is still to come (fastpath_own.c),
     * the loop polls without sleeping for up to body_spin_ns: clients write the body apart from
     * the headers a few microseconds later, and a sleeping loop costs it a wake-up */
    uint64_t body_spin_ns;
    int body_expected;
    void *handle; /* the Python side, passed back to fp_judge */
    struct fp_own *own; /* the connections answered here from their first segment (own.c part) */
};

/* what the parse of one IP packet gives */
struct fp_head {
    struct fp_key key;
    uint8_t flags; /* TCP flags; 0 for UDP */
    uint8_t ok;    /* a TCP or UDP packet whose headers were read */
};

static int fp_attr(uint8_t *out, size_t room, uint16_t type, const void *data, uint16_t len) {
    size_t total = NLA_HDRLEN + len;
    size_t aligned = NLA_ALIGN(total);
    if (aligned > room) return -1;
    struct nlattr *a = (struct nlattr *)out;
    a->nla_len = (uint16_t)total;
    a->nla_type = type;
    memcpy(out + NLA_HDRLEN, data, len);
    memset(out + total, 0, aligned - total);
    return (int)aligned;
}

/* nlmsghdr + nfgenmsg for the queue; returns the header length */
static size_t fp_header(struct fp_queue *q, uint8_t *out, uint16_t msg, uint16_t flags) {
    struct nlmsghdr *h = (struct nlmsghdr *)out;
    h->nlmsg_type = (uint16_t)((FP_SUBSYS_QUEUE << 8) | msg);
    h->nlmsg_flags = (uint16_t)(NLM_F_REQUEST | flags);
    h->nlmsg_seq = ++q->seq;
    h->nlmsg_pid = 0;
    uint8_t *gen = out + NLMSG_HDRLEN;
    gen[0] = AF_UNSPEC;
    gen[1] = 0; /* NFNETLINK_V0 */
    uint16_t res = htons(q->num);
    memcpy(gen + 2, &res, 2);
    return NLMSG_HDRLEN + 4;
}

/* Send one CONFIG message and wait for the kernel's acknowledgement; 0 or -1 with errno. */
static int fp_config(struct fp_queue *q, uint16_t type, const void *data, uint16_t len) {
    uint8_t msg[128];
    size_t n = fp_header(q, msg, FP_MSG_CONFIG, NLM_F_ACK);
    int a = fp_attr(msg + n, sizeof msg - n, type, data, len);
    if (a < 0) { errno = EINVAL; return -1; }
    n += (size_t)a;
    ((struct nlmsghdr *)msg)->nlmsg_len = (uint32_t)n;
    uint32_t seq = q->seq;
    if (send(q->fd, msg, n, 0) < 0) return -1;
    for (int tries = 0; tries < 64; tries++) {
        ssize_t got = recv(q->fd, q->buf, FP_BUFSIZE, 0);
        if (got < 0) {
            if (errno == EINTR || errno == ENOBUFS) continue;
            return -1;
        }
        for (struct nlmsghdr *h = (struct nlmsghdr *)q->buf; NLMSG_OK(h, (size_t)got);
             h = NLMSG_NEXT(h, got)) {
            if (h->nlmsg_type == NLMSG_ERROR && h->nlmsg_seq == seq &&
                h->nlmsg_len >= NLMSG_LENGTH(sizeof(int))) {
                int err = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
                if (err) { errno = -err; return -1; }
                return 0;
            }
        }
    }
    errno = ETIMEDOUT;
    return -1;
}

struct fp_own;
static struct fp_own *fp_own_new(void);
static void fp_own_free(struct fp_own *o);

void fp_close(struct fp_queue *q) {
    if (q == NULL) return;
    fp_own_free(q->own);
    if (q->fd >= 0) {
        uint8_t cmd[4] = {FP_CFG_CMD_UNBIND, 0, 0, 0};
        struct timeval tv = {1, 0};
        setsockopt(q->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        fp_config(q, FP_A_CFG_CMD, cmd, sizeof cmd);
        close(q->fd);
    }
    free(q->buf);
    free(q->copies_buf);
    free(q->table);
    free(q);
}

static struct fp_queue *fp_new(int fd, uint16_t num) {
    struct fp_queue *q = calloc(1, sizeof *q);
    if (q == NULL) return NULL;
    q->fd = fd;
    q->num = num;
    q->copies_fd = -1;
    q->ends_fd = -1;
    q->buf = malloc(FP_BUFSIZE);
    q->table = calloc(FP_TABLE, sizeof *q->table);
    q->own = fp_own_new();
    if (q->buf == NULL || q->table == NULL || q->own == NULL) {
        q->fd = -1;
        fp_close(q);
        errno = ENOMEM;
        return NULL;
    }
    return q;
}

/* Bind queue ``num`` in the calling thread's network namespace: NULL and errno on failure. */
struct fp_queue *fp_open(uint16_t num, uint32_t maxlen) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, FP_NETLINK_NETFILTER);
    if (fd < 0) return NULL;
    struct sockaddr_nl addr = {.nl_family = AF_NETLINK};
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    unsigned int rcv = FP_RCVBUF;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof rcv) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    struct timeval tv = {2, 0}; /* configuration answers; the loop uses poll() */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);
    struct fp_queue *q = fp_new(fd, num);
    if (q == NULL) {
        close(fd);
        return NULL;
    }
    uint8_t cmd[4] = {FP_CFG_CMD_BIND, 0, 0, 0};
    uint8_t params[5];
    uint32_t range = htonl(0xFFFF);
    memcpy(params, &range, 4);
    params[4] = FP_COPY_PACKET;
    uint32_t qlen = htonl(maxlen);
    if (fp_config(q, FP_A_CFG_CMD, cmd, sizeof cmd) < 0 ||
        fp_config(q, FP_A_CFG_PARAMS, params, sizeof params) < 0 ||
        fp_config(q, FP_A_CFG_QUEUE_MAXLEN, &qlen, sizeof qlen) < 0) {
        int e = errno;
        /* the bind may have failed: do not unbind another process's queue */
        close(q->fd);
        q->fd = -1;
        fp_close(q);
        errno = e;
        return NULL;
    }
    return q;
}

/* For tests: the loop over an already open socket (a socketpair stands for the kernel). */
struct fp_queue *fp_attach(int fd, uint16_t num) { return fp_new(fd, num); }

void fp_detach(struct fp_queue *q) {
    if (q == NULL) return;
    q->fd = -1;
    fp_close(q);
}

int fp_fd(struct fp_queue *q) { return q->fd; }

static void fp_order(struct fp_key *k, const uint8_t *s, const uint8_t *d, int alen,
                     uint16_t sp, uint16_t dp) {
    int c = memcmp(s, d, alen);
    int swap = c > 0 || (c == 0 && sp > dp);
    memset(k, 0, sizeof *k);
    memcpy(k->a, swap ? d : s, alen);
    memcpy(k->b, swap ? s : d, alen);
    k->pa = swap ? dp : sp;
    k->pb = swap ? sp : dp;
    k->used = 1;
}

/* The addresses, ports and flags of an IPv4/IPv6 TCP or UDP packet (no options walked for IPv6:
 * a packet with extension headers is not "ok" and goes to Python, which reads them all). Lengths
 * as the inspector's decoder (capture/decode.py) takes them: the datagram ends at its length or at
 * the bytes captured, whichever comes first; a TCP header must lie whole within it. */
void fp_parse(const uint8_t *p, uint32_t len, struct fp_head *out) {
    memset(out, 0, sizeof *out);
    if (len < 20) return;
    uint8_t proto;
    uint32_t l4;
    const uint8_t *s, *d;
    int alen;
    if ((p[0] >> 4) == 4) {
        uint32_t ihl = (uint32_t)(p[0] & 0xF) * 4;
        uint16_t frag = (uint16_t)((p[6] << 8) | p[7]);
        uint32_t total = (uint32_t)((p[2] << 8) | p[3]);
        if (ihl < 20 || len < ihl || (frag & 0x3FFF)) return; /* fragments: Python counts them */
        if (total != 0 && total < ihl) return;
        if (total != 0 && total < len) len = total; /* 0: a TSO super-frame, as long as captured */
        proto = p[9];
        l4 = ihl;
        s = p + 12;
        d = p + 16;
        alen = 4;
    } else if ((p[0] >> 4) == 6) {
        if (len < 40) return;
        uint32_t plen = (uint32_t)((p[4] << 8) | p[5]);
        if (plen != 0 && 40 + plen < len) len = 40 + plen;
        proto = p[6];
        l4 = 40;
        s = p + 8;
        d = p + 24;
        alen = 16;
    } else {
        return;
    }
    if (proto == 6) {
        if (len < l4 + 20) return;
        uint32_t doff = (uint32_t)(p[l4 + 12] >> 4) * 4;
        if (doff < 20 || l4 + doff > len) return;
        out->flags = p[l4 + 13];
    } else if (proto == 17) {
        if (len < l4 + 8) return;
    } else {
        return;
    }
    uint16_t sp = (uint16_t)((p[l4] << 8) | p[l4 + 1]);
    uint16_t dp = (uint16_t)((p[l4 + 2] << 8) | p[l4 + 3]);
    fp_order(&out->key, s, d, alen, sp, dp);
    out->key.proto = proto;
    out->ok = 1;
}

/* all 32 bits: each table masks them to its own size */
static uint32_t fp_hash(const struct fp_key *k) {
    const uint8_t *b = (const uint8_t *)k;
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < sizeof *k; i++) h = (h ^ b[i]) * 16777619u;
    return h;
}

static struct fp_slot *fp_slot(struct fp_queue *q, const struct fp_key *k) {
    return &q->table[fp_hash(k) & (FP_TABLE - 1)];
}

/* The mark of a decided connection, or -1: the packet needs Python. A connection's first packet
 * here (FIRST), its SYN, FINs and RSTs always go to Python (new flows, ends), and forget it. */
int64_t fp_known(struct fp_queue *q, const uint8_t *pkt, uint32_t len, uint32_t mark) {
    struct fp_head h;
    fp_parse(pkt, len, &h);
    if (!h.ok) return -1;
    struct fp_slot *slot = fp_slot(q, &h.key);
    int same = memcmp(&slot->key, &h.key, sizeof h.key) == 0;
    if ((mark & FP_FIRST) || (h.flags & (FP_TCP_SYN | FP_TCP_FIN | FP_TCP_RST))) {
        if (same) memset(slot, 0, sizeof *slot);
        return -1;
    }
    return same ? (int64_t)slot->mark : -1;
}

/* Python decided the connection of this packet: its later packets are answered here. */
void fp_decided(struct fp_queue *q, const uint8_t *pkt, uint32_t len, uint32_t mark) {
    struct fp_head h;
    fp_parse(pkt, len, &h);
    if (!h.ok || mark == 0) return;
    struct fp_slot *slot = fp_slot(q, &h.key);
    slot->key = h.key;
    slot->mark = mark;
}

static void fp_own_forget(struct fp_own *o);

void fp_forget_all(struct fp_queue *q) {
    memset(q->table, 0, FP_TABLE * sizeof *q->table);
    fp_own_forget(q->own);
}

static int fp_verdict(struct fp_queue *q, uint32_t id, int has_mark, uint32_t mark) {
    uint8_t msg[64];
    size_t n = fp_header(q, msg, FP_MSG_VERDICT, 0);
    uint32_t hdr[2] = {htonl(FP_NF_ACCEPT), htonl(id)};
    n += (size_t)fp_attr(msg + n, sizeof msg - n, FP_A_VERDICT_HDR, hdr, sizeof hdr);
    if (has_mark) {
        uint32_t m = htonl(mark);
        n += (size_t)fp_attr(msg + n, sizeof msg - n, FP_A_MARK, &m, sizeof m);
    }
    ((struct nlmsghdr *)msg)->nlmsg_len = (uint32_t)n;
    while (send(q->fd, msg, n, 0) < 0) {
        if (errno != EINTR) return -1;
    }
    return 0;
}

/* Python's answer (fp_judge): the bits to add to the packet mark; FP_DECIDED set when every later
 * packet of the connection gets the same bits; negative: the callback failed. */
#define FP_DECIDED (1LL << 32)
static int64_t fp_judge(void *handle, const uint8_t *pkt, uint32_t len, uint32_t mark);
static int fp_own_packet(struct fp_queue *q, const uint8_t *pkt, uint32_t len, uint32_t mark,
                         uint32_t *bits);

/* One PACKET message: answered from the table, else by Python; then the verdict. */
static int fp_packet(struct fp_queue *q, struct nlmsghdr *h, uint32_t fail_mark) {
    uint32_t id = 0, mark = 0, plen = 0;
    int have_id = 0;
    const uint8_t *payload = NULL;
    size_t off = NLMSG_HDRLEN + 4;
    while (off + NLA_HDRLEN <= h->nlmsg_len) {
        struct nlattr *a = (struct nlattr *)((uint8_t *)h + off);
        if (a->nla_len < NLA_HDRLEN || off + a->nla_len > h->nlmsg_len) break;
        const uint8_t *data = (const uint8_t *)a + NLA_HDRLEN;
        uint32_t dlen = a->nla_len - NLA_HDRLEN;
        switch (a->nla_type & NLA_TYPE_MASK) {
        case FP_A_PACKET_HDR:
            if (dlen >= 4) { memcpy(&id, data, 4); id = ntohl(id); have_id = 1; }
            break;
        case FP_A_MARK:
            if (dlen >= 4) { memcpy(&mark, data, 4); mark = ntohl(mark); }
            break;
        case FP_A_PAYLOAD:
            payload = data;
            plen = dlen;
            break;
        }
        off += NLA_ALIGN(a->nla_len);
    }
    if (!have_id) return 0;
    int64_t add = -1;
    uint32_t carried = 0; /* bits Python gave the packets of a connection handed back to it */
    if (payload != NULL) add = fp_known(q, payload, plen, mark);
    if (add < 0 && payload != NULL) {
        uint32_t own = 0;
        if (fp_own_packet(q, payload, plen, mark, &own)) add = own; /* answered here */
        else carried = own;
    }
    if (add >= 0) {
        q->fast++;
    } else {
        q->judged++;
        add = payload == NULL ? 0 : fp_judge(q->handle, payload, plen, mark);
        if (add >= 0) add |= carried;
        if (add < 0) { /* the callback raised: the fail mode decides */
            q->errors++;
            add = fail_mark;
        } else if (add & FP_DECIDED) {
            add &= 0xFFFFFFFFLL;
            fp_decided(q, payload, plen, (uint32_t)add);
        }
    }
    uint32_t bits = (uint32_t)add;
    return fp_verdict(q, id, bits != 0, mark | bits);
}

/* The messages of one read. */
int fp_dispatch(struct fp_queue *q, const uint8_t *buf, uint32_t len, uint32_t fail_mark) {
    int n = 0;
    /* signed: the kernel does not pad a message that ends with the packet, so the last step
     * of NLMSG_NEXT goes below zero, which must end the walk */
    int left = (int)len;
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
        if (h->nlmsg_type != ((FP_SUBSYS_QUEUE << 8) | FP_MSG_PACKET)) continue;
        if (h->nlmsg_len < NLMSG_HDRLEN + 4) continue;
        if (fp_packet(q, h, fail_mark) < 0) return -1;
        n++;
    }
    return n;
}

static uint64_t fp_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int fp_copies_drain(struct fp_queue *q);

/* Read and answer every message waiting: 1 if there was one, 0 if none, 2 on a signal, -1 with
 * errno on a socket error. */
static int fp_drain(struct fp_queue *q, uint32_t fail_mark) {
    int any = 0;
    for (;;) {
        /* the copies of clean segments that passed before the packet read next are read first:
         * a copy sent while the queue was being read belongs before what was queued after it */
        if (q->copies_fd >= 0 && fp_copies_drain(q) < 0) return -1;
        ssize_t got = recv(q->fd, q->buf, FP_BUFSIZE, MSG_DONTWAIT);
        if (got < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return any;
            if (errno == ENOBUFS) continue; /* the kernel dropped messages */
            if (errno == EINTR) return 2;
            return -1;
        }
        if (fp_dispatch(q, q->buf, (uint32_t)got, fail_mark) < 0) return -1;
        any = 1;
    }
}

/* Set the spin after the head of a request whose body follows, in microseconds (0: none). */
void fp_set_body_spin(struct fp_queue *q, uint32_t us) { q->body_spin_ns = (uint64_t)us * 1000u; }

/* Set the longest spin after a read, in microseconds (0: always sleep in poll). */
void fp_set_spin(struct fp_queue *q, uint32_t us) {
    q->spin_max_ns = q->spin_ns = (uint64_t)us * 1000u;
}

static void fp_copy(struct fp_queue *q, const uint8_t *p, uint32_t len, uint32_t mark);

#define FP_COPIES_BUFSIZE (256u << 10)
#define FP_NFULNL_MSG_PACKET 0x400 /* NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_PACKET */
#define FP_NFULA_MARK 2
#define FP_NFULA_PAYLOAD 9
#define FP_DATA_COPY_MARK 0x40000000u /* fastpath.DATA_COPY */

/* Read the clean segments' copies from ``fd`` here (an NFLOG socket bound to their group, see
 * ends.py): 0, or -1 with errno. */
/* The buffer both NFLOG sockets are read into (one at a time): 0, or -1 with errno ENOMEM. */
static int fp_nflog_buf(struct fp_queue *q) {
    if (q->copies_buf == NULL) q->copies_buf = malloc(FP_COPIES_BUFSIZE);
    if (q->copies_buf != NULL) return 0;
    errno = ENOMEM;
    return -1;
}

int fp_set_copies(struct fp_queue *q, int fd, uint32_t wait_us) {
    if (fp_nflog_buf(q) < 0) return -1;
    q->copies_fd = fd;
    q->copies_wait_ns = (uint64_t)wait_us * 1000u;
    q->copies_busy = 0;
    return 0;
}

static void fp_end(struct fp_queue *q, const uint8_t *p, uint32_t len);

/* Every packet waiting on an NFLOG socket, in the order the kernel sent them: the clean
 * segments' copies to fp_copy, the ends to fp_end. 1 when there was one, 0 when none, -1 with
 * errno. */
static int fp_nflog_drain(struct fp_queue *q, int fd, int ends) {
    int any = 0;
    for (;;) {
        ssize_t n = recv(fd, q->copies_buf, FP_COPIES_BUFSIZE, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return any;
            if (errno == EINTR) continue;
            if (errno == ENOBUFS) { /* lost: a copy's stream gets a hole; an end's flow idles out */
                if (ends)
                    q->ends_lost++;
                else
                    q->copies_lost++;
                continue;
            }
            return -1;
        }
        size_t off = 0, len = (size_t)n;
        any = 1;
        while (off + NLMSG_HDRLEN <= len) {
            struct nlmsghdr *h = (struct nlmsghdr *)(q->copies_buf + off);
            if (h->nlmsg_len < NLMSG_HDRLEN || off + h->nlmsg_len > len) break;
            if (h->nlmsg_type == FP_NFULNL_MSG_PACKET) {
                uint32_t mark = 0, plen = 0;
                const uint8_t *payload = NULL;
                size_t at = NLMSG_HDRLEN + 4; /* past the nfgenmsg */
                while (at + NLA_HDRLEN <= h->nlmsg_len) {
                    struct nlattr *a = (struct nlattr *)((uint8_t *)h + at);
                    if (a->nla_len < NLA_HDRLEN || at + a->nla_len > h->nlmsg_len) break;
                    const uint8_t *data = (const uint8_t *)a + NLA_HDRLEN;
                    uint32_t dlen = a->nla_len - NLA_HDRLEN;
                    if ((a->nla_type & NLA_TYPE_MASK) == FP_NFULA_MARK && dlen >= 4) {
                        memcpy(&mark, data, 4);
                        mark = ntohl(mark);
                    } else if ((a->nla_type & NLA_TYPE_MASK) == FP_NFULA_PAYLOAD) {
                        payload = data;
                        plen = dlen;
                    }
                    at += NLA_ALIGN(a->nla_len);
                }
                if (payload != NULL) {
                    if (ends)
                        fp_end(q, payload, plen);
                    else
                        fp_copy(q, payload, plen, mark | FP_DATA_COPY_MARK);
                }
            }
            off += NLMSG_ALIGN(h->nlmsg_len);
        }
    }
}

/* Every copy waiting, in the order the kernel sent them, to fp_copy: 0, or -1 with errno. */
static int fp_copies_drain(struct fp_queue *q) {
    int any = fp_nflog_drain(q, q->copies_fd, 0);
    if (any < 0) return -1;
    q->copies_busy = any && q->copies_wait_ns;
    if (q->copies_busy) q->copies_due = fp_now_ns() + q->copies_wait_ns;
    return 0;
}

/* Read the connections' ends from ``fd`` here too (the NFLOG socket of the ends' group, ends.py):
 * an end of a connection answered here is noted here (fp_own_end), the others go to Python's
 * end callback; 0, or -1 with errno. */
int fp_set_ends(struct fp_queue *q, int fd) {
    if (fp_nflog_buf(q) < 0) return -1;
    q->ends_fd = fd;
    return 0;
}

/* Serve the queue for up to ``timeout_ms``: wait, read, answer. Returns early (1) when ``other``
 * (a descriptor, or -1) is readable, or on a signal (2, the caller checks its stop flag); 0 when
 * the time is up; -1 with errno on a socket error.
 *
 * After packets were answered the loop polls without sleeping for up to spin_ns before it sleeps
 * again: in request/response traffic the next packet (the response, the rest of a message)
 * follows within tens of microseconds, and a sleeping thread costs a wake-up on its arrival. The
 * spin adapts like the kernel's haltpoll: one that finds nothing, followed by a long sleep,
 * halves it; a sleep that ends within the longest spin sets it back to the longest. */
int fp_run(struct fp_queue *q, int other, int timeout_ms, uint32_t fail_mark) {
    uint64_t end = fp_now_ns() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000ull;
    /* the queue, the caller's descriptor, the copies (when they wake the loop), the ends; poll
     * leaves out a negative descriptor */
    struct pollfd fds[4] = {{.fd = q->fd, .events = POLLIN},
                            {.fd = other, .events = POLLIN},
                            {.fd = q->copies_fd, .events = POLLIN},
                            {.fd = q->ends_fd, .events = POLLIN}};
    uint64_t spin_until = 0; /* spinning while now < spin_until */
    uint64_t spun = 0;       /* the spin's last turn: a long gap since means the core was taken */
    int missed = 0;          /* the last spin found nothing */
    for (;;) {
        uint64_t now = fp_now_ns();
        int spinning = now < spin_until;
        /* While copies keep coming they do not wake the loop: each is read before the next
         * read of the queue (which is all their order needs) or when it is due; the first copy
         * after a quiet spell wakes it. A wake-up per copy cost a new connection about as much
         * as its trip through the queue (benchmarks/firewall_loops.py). */
        int lazy = q->copies_fd >= 0 && q->copies_busy;
        fds[2].fd = lazy ? -1 : q->copies_fd;
        int nfds = q->ends_fd >= 0 ? 4 : fds[2].fd >= 0 ? 3 : other >= 0 ? 2 : 1;
        uint64_t until = lazy && q->copies_due < end ? q->copies_due : end;
        int wait = spinning || now >= until ? 0 : (int)((until - now + 999999) / 1000000);
        int r = poll(fds, nfds, wait);
        if (r < 0) {
            if (errno == EINTR) return 2;
            return -1;
        }
        if (r == 0 && lazy && fp_now_ns() >= q->copies_due) { /* copies due: read them */
            q->copies_wakes++;
            if (fp_copies_drain(q) < 0) return -1;
            if (fp_now_ns() >= end) return 0;
            continue;
        }
        if (r == 0) {
            if (!spinning) {
                if (fp_now_ns() < end) continue; /* woken for copies that were read meanwhile */
                return 0;                        /* the time is up */
            }
            uint64_t t = fp_now_ns();
            if (t >= end) return 0;
            if (t < spin_until) {
                /* a task waiting for this core goes first; if one ran, the core is wanted:
                 * sleep rather than spin (the spin only fills a core's idle time) */
                sched_yield();
                uint64_t after = fp_now_ns();
                if (t - spun < FP_SPIN_WANTED_NS && after - t < FP_SPIN_WANTED_NS) {
                    spun = after;
                    continue;
                }
                q->spin_yielded++;
            }
            { /* the spin ran out: sleep next */
                q->spin_misses++;
                missed = 1;
                spin_until = 0;
            }
            continue;
        }
        /* the copies of clean segments (ends.py) that passed before the packets now queued are
         * read before those are judged (their streams in order): here when this loop reads
         * them, else by the caller, for whom the loop returns first */
        if (fds[2].fd >= 0 && (fds[2].revents & POLLIN) && fp_copies_drain(q) < 0) return -1;
        /* the ends, read when the kernel sends them (in batches): after the copies waiting,
         * which came before them (a connection's head and data before its FIN) */
        if (q->ends_fd >= 0 && (fds[3].revents & POLLIN)) {
            if (q->copies_fd >= 0 && fp_copies_drain(q) < 0) return -1;
            if (fp_nflog_drain(q, q->ends_fd, 1) < 0) return -1;
        }
        if (other >= 0 && (fds[1].revents & POLLIN)) return 1;
        if (fds[0].revents & POLLIN) {
            if (spinning) {
                q->spin_hits++;
            } else if (q->spin_max_ns) { /* adapt to how long this sleep was */
                uint64_t slept = fp_now_ns() - now;
                if (slept <= q->spin_max_ns) q->spin_ns = q->spin_max_ns;
                else if (missed) q->spin_ns /= 2;
                if (q->spin_ns < 2000) q->spin_ns = q->spin_max_ns / 8; /* keep probing */
            }
            missed = 0;
            int d = fp_drain(q, fail_mark); /* reads the copies before each packet */
            if (d < 0 || d == 2) return d;
            spun = fp_now_ns();
            spin_until = q->spin_ns ? spun + q->spin_ns : 0;
            if (q->body_expected) {
                q->body_expected = 0;
                if (q->body_spin_ns && spun + q->body_spin_ns > spin_until)
                    spin_until = spun + q->body_spin_ns;
            }
        } else if (fds[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
            errno = EIO;
            return -1;
        }
        if (fp_now_ns() >= end) return 0;
    }
}

void fp_set_handle(struct fp_queue *q, void *handle) { q->handle = handle; }

/* packets judged by Python, answered here, callback failures; clean copies read by Python, here */
void fp_counts(struct fp_queue *q, uint64_t *out) {
    out[0] = q->judged;
    out[1] = q->fast;
    out[2] = q->errors;
    out[3] = q->copied;
    out[4] = q->copied_fast;
    out[5] = q->copies_lost;
    out[6] = q->copies_wakes;
    out[7] = q->ends_lost;
}

/* the spin after a read: its longest and current length (ns), spins that found a packet, spins
 * that did not (of which: cut short because another task wanted the core) */
void fp_spin_counts(struct fp_queue *q, uint64_t *out) {
    out[0] = q->spin_max_ns;
    out[1] = q->spin_ns;
    out[2] = q->spin_hits;
    out[3] = q->spin_misses;
    out[4] = q->spin_yielded;
}
