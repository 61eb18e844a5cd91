/* A ringsock DTLS-SRTP server port fed datagrams the input makes, from many source
 * addresses, before and after a real handshake.
 *
 * A ringsock DTLS-SRTP client reaches the server through a relay: a UDP socket of the
 * harness (source A) that forwards both ways, so the server's association for the client
 * is A's, and the harness can send as that peer too. With the SRTP keys exported from
 * the client, the harness protects RTP and RTCP packets the server's session accepts.
 *
 * Input: a selector byte (the server's receive), then operations:
 *   0 a datagram from A (before the handshake: the cookie path for A)
 *   1 a datagram from another source (127.0.0.2-9: cookie path, no association)
 *   2 an RTP packet (the input's header fields and payload), SRTP-protected, from A
 *   3 an RTCP packet, SRTCP-protected, from A
 *   4 the last protected packet again (replay)
 *   5 the handshake now (else it comes after the last operation)
 * Protected packets need the handshake; before it they go as they are. At most BURST
 * datagrams go before the handshake; after it, every BURST datagrams and at the end the
 * loop runs until the server has a marker the client sends (every datagram before it has
 * been through the port), or the association ended. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "srtp.h"

#define SOURCES 8
/* Datagrams in flight at most: more could overflow the server's receive buffer, and a
 * lost marker would look like a hang. */
#define BURST 8

static const char export_label[] = "EXTRACTOR-dtls_srtp";

struct run {
    struct fz_sock server, client;
    int relay, others[SOURCES];
    struct sockaddr_in server_addr, client_addr;
    bool client_known;
    unsigned marks_sent, marks_seen, burst; /* markers: RTP packets of SSRC 0xffffffff whose
                                               sequence numbers count them */
    struct rs_srtp *srtp;
    uint8_t last[2048];
    size_t last_len;
};

static ISocketProvider *udp;
static ISocketContext *sctx, *cctx;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_dtls: %s\n", what);
    abort();
}

static int udp_socket(uint32_t ip)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(ip)};
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        fail("a source socket");
    return fd;
}

static uint16_t port_of(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    return ntohs(a.sin_port);
}

static void to_server(struct run *r, int fd, const void *buf, size_t len)
{
    r->burst++;
    sendto(fd, buf, len, 0, (struct sockaddr *)&r->server_addr, sizeof(r->server_addr));
}

/* The relay: the client's datagrams to the server, the server's to the client; whatever
 * comes to the other sources is dropped. */
static bool relay_step(void *arg)
{
    struct run *r = arg;
    uint8_t buf[4096];
    struct sockaddr_in from;
    socklen_t flen = sizeof(from);
    ssize_t n;
    while ((n = recvfrom(r->relay, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen)) >= 0) {
        if (from.sin_port == r->server_addr.sin_port) {
            if (r->client_known)
                sendto(r->relay, buf, (size_t)n, 0, (struct sockaddr *)&r->client_addr,
                       sizeof(r->client_addr));
        } else {
            r->client_addr = from;
            r->client_known = true;
            to_server(r, r->relay, buf, (size_t)n);
        }
        flen = sizeof(from);
    }
    for (int i = 0; i < SOURCES; i++)
        while (recv(r->others[i], buf, sizeof(buf), 0) >= 0)
            ;
    return true;
}

static bool connected(void *arg)
{
    struct run *r = arg;
    return r->client.connected || r->client.ended;
}

static bool marked(void *arg)
{
    struct run *r = arg;
    return r->marks_seen == r->marks_sent || r->client.ended ||
           (r->server.child && r->server.child->ended);
}

static void server_recv(struct fz_sock *fs, const uint8_t *buf, size_t len)
{
    struct run *r = fs->ctx;
    /* An RTP packet (not RTCP, whose payload the input fills) of the marker SSRC: the
     * marker of that sequence number. */
    if (len >= 13 && buf[0] == 0x80 && buf[1] == 0 && memcmp(buf + 8, "\xff\xff\xff\xff", 4) == 0 &&
        buf[12] == 'M')
        r->marks_seen = (unsigned)buf[2] << 8 | buf[3];
}

/* The client sends a marker (an RTP packet of the SSRC the input cannot make; ringsock
 * protects it) and the loop runs until the server has it: every datagram sent before it
 * has been through the server's port. Without an association: the loop runs until the
 * client is connected instead (nothing tells that the port has read the rest). */
static void sync_server(struct run *r, struct fz_loop *l)
{
    r->burst = 0;
    if (!r->client.connected || r->client.ended)
        return;
    uint8_t mark[16] = {0x80, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 'M'};
    r->marks_sent++;
    if (getenv("RINGSOCK_FUZZ_VERBOSE"))
        fprintf(stderr, "fuzz_dtls: marker %u (%u seen)\n", r->marks_sent, r->marks_seen);
    mark[2] = (uint8_t)(r->marks_sent >> 8);
    mark[3] = (uint8_t)r->marks_sent;
    r->client.sends++;
    ISocket_Send(r->client.sock, mark, sizeof(mark));
    fz_run(l, marked, relay_step, r, 10000);
}

static void handshake(struct run *r, struct fz_loop *l)
{
    r->burst = 0;
    fz_run(l, connected, relay_step, r, 10000);
    if (!r->client.connected)
        return;
    const char *name = ISocket_GetSRTPProfile(r->client.sock);
    uint16_t profile = 0;
    for (uint16_t id = 1; id < 16 && name; id++)
        if (rs_srtp_profile_name(id) && strcmp(rs_srtp_profile_name(id), name) == 0)
            profile = id;
    uint8_t km[128];
    size_t len = rs_srtp_keying_length(profile);
    char err[128];
    if (!profile || len > sizeof(km) ||
        !ISocket_ExportKeyingMaterial(r->client.sock, export_label, NULL, 0, km, len) ||
        !(r->srtp = rs_srtp_new(profile, km, len, true, err, sizeof(err))))
        fail("no SRTP keys after the handshake");
}

/* An RTP or RTCP packet from the input, protected once there are keys. */
static void protected_packet(struct run *r, struct fz_in *in, bool rtcp)
{
    uint8_t *p = r->last;
    const uint8_t *payload;
    p[0] = 0x80 | (fz_u8(in) & 0x3f);
    p[1] = rtcp ? 200 + fz_u8(in) % 8 : fz_u8(in) & 0x7f;
    uint16_t seq = fz_u16(in);
    uint32_t ssrc = ((uint32_t)fz_u16(in) << 16 | fz_u16(in)) & 0x7fffffff;
    size_t n = fz_take(in, fz_u16(in) % 1200, &payload);
    if (rtcp) { /* length in 32-bit words minus one, then the sender's SSRC */
        n &= ~(size_t)3;
        p[2] = (uint8_t)((n / 4 + 1) >> 8);
        p[3] = (uint8_t)(n / 4 + 1);
        memcpy(p + 4, (uint8_t[]){ssrc >> 24, ssrc >> 16, ssrc >> 8, ssrc}, 4);
        memcpy(p + 8, payload, n);
        r->last_len = 8 + n;
    } else {
        p[2] = (uint8_t)(seq >> 8);
        p[3] = (uint8_t)seq;
        memcpy(p + 4, "\0\0\0\1", 4); /* timestamp */
        memcpy(p + 8, (uint8_t[]){ssrc >> 24, ssrc >> 16, ssrc >> 8, ssrc}, 4);
        memcpy(p + 12, payload, n);
        r->last_len = 12 + n;
    }
    if (r->srtp && rs_srtp_protect(r->srtp, p, &r->last_len, sizeof(r->last)) != RS_SRTP_OK)
        return;
    to_server(r, r->relay, p, r->last_len);
}

static void operation(struct run *r, struct fz_in *in, uint8_t op, struct fz_loop *l)
{
    if (getenv("RINGSOCK_FUZZ_VERBOSE"))
        fprintf(stderr, "fuzz_dtls: operation %d\n", op % 6);
    if (r->burst >= BURST && op % 6 != 5) {
        if (!r->client.connected && !r->client.ended)
            return; /* no more before the handshake */
        sync_server(r, l);
    }
    const uint8_t *p;
    size_t n;
    switch (op % 6) {
    case 0:
        n = fz_take(in, fz_u16(in) % 1500, &p);
        to_server(r, r->relay, p, n);
        break;
    case 1: {
        int src = r->others[fz_u8(in) % SOURCES];
        n = fz_take(in, fz_u16(in) % 1500, &p);
        to_server(r, src, p, n);
        break;
    }
    case 2:
    case 3:
        protected_packet(r, in, op % 6 == 3);
        break;
    case 4:
        if (r->last_len)
            to_server(r, r->relay, r->last, r->last_len);
        break;
    case 5:
        if (!r->client.connected && !r->client.ended)
            handshake(r, l);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!udp) {
        udp = CreateUDPSocketProvider();
        sctx = ISocketProvider_CreateSocketContext(udp, fz_log());
        cctx = ISocketProvider_CreateSocketContext(udp, fz_log());
        ISocketContext_EnableDTLS(sctx, true);
        ISocketContext_EnableDTLS(cctx, true);
        fz_set_server_identity(sctx);
        ISocketContext_SetVerifyPeer(cctx, false);
    }
    struct fz_in in = {data, size};
    struct run r;
    memset(&r, 0, sizeof(r));
    struct fz_loop l;
    fz_loop_init(&l);
    uint8_t sel = fz_u8(&in);
    fz_sock_init(&r.server, &l, sel & 1 ? 64 : 2048, true);
    r.server.on_recv = server_recv;
    r.server.ctx = &r;
    fz_sock_init(&r.client, &l, 0, false);

    fz_sock_create(&r.server, udp, sctx);
    ISocket_Bind(r.server.sock, "127.0.0.1", 0);
    ISocket_Listen(r.server.sock);
    char a[64];
    uint16_t sport = 0;
    ISocket_GetLocalAddress(r.server.sock, a, sizeof(a), &sport);
    r.server_addr = (struct sockaddr_in){
        .sin_family = AF_INET, .sin_port = htons(sport), .sin_addr.s_addr = htonl(0x7f000001)};
    r.relay = udp_socket(0x7f000001);
    for (int i = 0; i < SOURCES; i++)
        r.others[i] = udp_socket(0x7f000002 + (uint32_t)i);
    fz_sock_create(&r.client, udp, cctx);
    char to[32];
    snprintf(to, sizeof(to), "127.0.0.1:%u", port_of(r.relay));
    ISocket_Connect(r.client.sock, to, NULL);

    while (in.n)
        operation(&r, &in, fz_u8(&in), &l);
    if (!r.client.connected && !r.client.ended)
        handshake(&r, &l);
    sync_server(&r, &l);
    if (getenv("RINGSOCK_FUZZ_VERBOSE"))
        fprintf(stderr, "fuzz_dtls: client %s (%s), server %s, %zu bytes in, markers %s\n",
                r.client.connected ? "connected" : "not connected",
                SocketShutdownReasonToStr(r.client.reason),
                r.server.child ? (r.server.child->ended ? "ended" : "associated") : "no peer",
                r.server.child ? r.server.child->received : 0,
                r.marks_seen == r.marks_sent ? "seen" : "not seen");

    if (r.srtp)
        rs_srtp_free(r.srtp);
    close(r.relay);
    for (int i = 0; i < SOURCES; i++)
        close(r.others[i]);
    fz_sock_free(&r.client);
    fz_sock_free(&r.server);
    fz_loop_fini(&l);
    return 0;
}
