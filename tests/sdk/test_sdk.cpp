/* SDK applications on ringsock: echo over TCP, TLS (self-signed server certificate) and
 * StartTLS, UDP with IPaddr, timers and execs, deletes inside callbacks, the log. Each test
 * checks never-before-return (CALL/CALLBACK), exact bytes and callback order, and ends
 * with no descriptor and no memory left. */
#include "sdk_test.h"

#include <arpa/inet.h>
#include <atomic>
#include <signal.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <thread>
#include <time.h>

static unsigned long long now_ms()
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000;
}

/* ---- an echo server and a client, as SDK applications ------------------------------- */

/* One accepted connection: sends back whatever arrives, deletes itself at the end. */
class EchoConn : public USocket
{
  public:
    explicit EchoConn(int *ended, shutdownreason_t *reason) : ended(ended), reason(reason) {}
    void SocketAcceptComplete(ISocket *const s) override
    {
        CALLBACK("SocketAcceptComplete");
        socket = s;
        CALL(s->Recv(buf, sizeof(buf), true));
    }
    void SocketRecvResult(ISocket *const s, void *b, size_t len) override
    {
        CALLBACK("SocketRecvResult");
        cr_assert_eq(b, buf);
        CALL(s->Send(b, len)); /* the buffer may be reused as soon as Send returns */
        CALL(s->Recv(buf, sizeof(buf), true));
    }
    void SocketShutdown(ISocket *const s, shutdownreason_t r) override
    {
        CALLBACK("SocketShutdown");
        cr_assert(socket == nullptr || socket == s);
        *reason = r;
        (*ended)++;
        delete s;
        delete this;
    }
    void SocketRecvCanceled(ISocket *const, void *b) override
    {
        CALLBACK("SocketRecvCanceled");
        cr_assert_eq(b, buf);
    }

  private:
    ISocket *socket = nullptr;
    byte buf[4096];
    int *ended;
    shutdownreason_t *reason;
};

class EchoServer : public USocket
{
  public:
    ISocket *listener = nullptr;
    word port = 0;
    int accepted = 0, ended = 0;
    shutdownreason_t connReason = SOCKET_SHUTDOWN_NORMAL;
    bool down = false;

    std::string local;  /* a local socket's path, else empty */
    std::string target; /* what clients connect to */

    EchoServer(ISocketProvider *p, IIoMux *iomux, ISocketContext *ctx = nullptr,
               const char *localPath = nullptr)
    {
        listener = p->CreateSocket(iomux, this, nullptr, false, ctx);
        cr_assert_not_null(listener);
        local = localPath ? localPath : "";
        CALL(listener->Bind(localPath ? localPath : "127.0.0.1", 0));
        CALL(listener->Listen()); /* Listen takes effect before it returns */
        port = localPath ? 0 : sdk_port(listener);
        target = localPath ? local : sdk_addr(port);
    }
    ~EchoServer()
    {
        delete listener;
    }
    void SocketBindResult(ISocket *const s, const char *addr, word p) override
    {
        CALLBACK("SocketBindResult");
        cr_assert_eq(s, listener);
        cr_assert_str_eq(addr, local.empty() ? "127.0.0.1" : local.c_str());
        cr_assert_eq(p, port); /* 0 for local sockets */
    }
    void SocketListenResult(ISocket *const s, const char *addr, word) override
    {
        CALLBACK("SocketListenResult");
        if (local.empty())
            cr_assert_str_eq(addr, "127.0.0.1");
        accepted++;
        CALL(s->Accept(new EchoConn(&ended, &connReason)));
    }
    void SocketShutdown(ISocket *const, shutdownreason_t) override
    {
        CALLBACK("SocketShutdown");
        down = true;
    }
    void SocketRecvCanceled(ISocket *const, void *) override
    {
        cr_assert_fail("a listener has no receive");
    }
};

/* Sends len bytes in pieces, receives them back with exact-length receives. */
class EchoClient : public USocket
{
  public:
    ISocket *socket = nullptr;
    std::vector<std::string> events;
    std::vector<byte> out, in;
    size_t sendResults = 0, piece = 0;
    shutdownreason_t reason = SOCKET_SHUTDOWN_NORMAL;
    bool down = false, connected = false;

    EchoClient(size_t len, size_t piece) : out(len), in(len), piece(piece)
    {
        h_fill(out.data(), len, 7);
    }
    void Start(ISocketProvider *p, IIoMux *iomux, const std::string &target,
               ISocketContext *ctx = nullptr, const char *serverName = nullptr)
    {
        socket = p->CreateSocket(iomux, this, nullptr, false, ctx);
        cr_assert_not_null(socket);
        CALL(socket->Connect(target.c_str(), serverName));
        /* Send straight after Connect: held until connected. */
        for (size_t off = 0; off < out.size(); off += piece)
            CALL(socket->Send(out.data() + off, std::min(piece, out.size() - off)));
        CALL(socket->Recv(in.data(), in.size()));
    }
    bool Echoed() const
    {
        return !events.empty() && events.back() == "recv";
    }
    void SocketConnectComplete(ISocket *const s) override
    {
        CALLBACK("SocketConnectComplete");
        cr_assert_eq(s, socket);
        cr_assert(events.empty(), "ConnectComplete after %s", events[0].c_str());
        events.push_back("connect");
        connected = true;
    }
    void SocketSendResult(ISocket *const s) override
    {
        CALLBACK("SocketSendResult");
        cr_assert_eq(s, socket);
        cr_assert(connected, "SocketSendResult before SocketConnectComplete");
        sendResults++;
    }
    void SocketRecvResult(ISocket *const s, void *b, size_t len) override
    {
        CALLBACK("SocketRecvResult");
        cr_assert_eq(s, socket);
        cr_assert_eq(b, in.data());
        cr_assert_eq(len, in.size(), "recvPartial=false gave %zu of %zu", len, in.size());
        events.push_back("recv");
    }
    void SocketShutdown(ISocket *const s, shutdownreason_t r) override
    {
        CALLBACK("SocketShutdown");
        cr_assert_eq(s, socket);
        events.push_back("shutdown");
        reason = r;
        down = true;
    }
    void SocketRecvCanceled(ISocket *const, void *b) override
    {
        CALLBACK("SocketRecvCanceled");
        cr_assert_eq(b, in.data());
        events.push_back("recv-canceled");
    }
};

/* Client and server over one provider pair: len bytes in pieces echo back exactly; the
 * client's Shutdown ends it NORMAL and the server's connection BY_PEER. */
static void echo_round(Loop &loop, ISocketProvider *p, ISocketContext *sctx, ISocketContext *cctx,
                       size_t len, size_t piece, const char *local = nullptr)
{
    EchoServer server(p, loop.iomux, sctx, local);
    EchoClient client(len, piece);
    client.Start(p, loop.iomux, server.target, cctx);
    cr_assert(loop.RunUntil([&] { return client.Echoed() || client.down; }, 10000),
              "no echo: %zu events", client.events.size());
    cr_assert(client.Echoed(), "client ended: reason %d", client.reason);
    cr_assert_eq(memcmp(client.in.data(), client.out.data(), len), 0, "echo differs");
    size_t sends = (len + piece - 1) / piece;
    cr_assert(loop.RunUntil([&] { return client.sendResults == sends; }));
    cr_assert_eq(client.sendResults, sends, "one SocketSendResult per Send");

    CALL(client.socket->Shutdown());
    cr_assert(loop.RunUntil([&] { return client.down && server.ended == 1; }));
    cr_assert_eq(client.reason, SOCKET_SHUTDOWN_NORMAL);
    cr_assert_eq(server.connReason, SOCKET_SHUTDOWN_BY_PEER);
    cr_assert_eq(server.accepted, 1);
    delete client.socket;
}

Test(sdk, tcp_echo)
{
    int fds = h_count_fds();
    {
        Loop loop;
        ISocketProvider *tcp = CreateTCPSocketProvider();
        echo_round(loop, tcp, nullptr, nullptr, 300000, 7000);
        delete tcp;
    }
    cr_assert_eq(h_count_fds(), fds, "descriptors leaked");
    h_check_leaks();
}

Test(sdk, tls_echo_self_signed)
{
    int fds = h_count_fds();
    {
        Loop loop;
        ISocketProvider *tcp = CreateTCPSocketProvider();
        ISocketProvider *tls = CreateTLSSocketProvider(tcp);
        ISocketContext *sctx = tls->CreateSocketContext(nullptr);
        ISocketContext *cctx = tls->CreateSocketContext(nullptr);
        CALL(cctx->SetVerifyPeer(false)); /* the server's certificate is self-signed */
        echo_round(loop, tls, sctx, cctx, 100000, 16000);
        delete cctx;
        delete sctx;
        delete tls;
        delete tcp;
    }
    cr_assert_eq(h_count_fds(), fds, "descriptors leaked");
    h_check_leaks();
}

/* Verification on (the default) refuses the self-signed certificate; the peer
 * certificate's fingerprint is the server context's. */
Test(sdk, tls_verification_and_fingerprint)
{
    {
        Loop loop;
        ISocketProvider *tcp = CreateTCPSocketProvider();
        ISocketProvider *tls = CreateTLSSocketProvider(tcp);
        ISocketContext *sctx = tls->CreateSocketContext(nullptr);
        ISocketContext *cctx = tls->CreateSocketContext(nullptr);
        size_t fplen = 0;
        const byte *fp = sctx->GetCertificateFingerprint(&fplen);
        cr_assert_not_null(fp);
        cr_assert_eq(fplen, 32u);
        {
            EchoServer server(tls, loop.iomux, sctx);
            EchoClient refused(10, 10);
            refused.Start(tls, loop.iomux, server.target, cctx, "localhost");
            cr_assert(loop.RunUntil([&] { return refused.down; }));
            cr_assert_eq(refused.reason, SOCKET_TLS_HANDSHAKE_FAILED, "reason %d", refused.reason);
            cr_assert_eq(refused.events.size(), 2u);
            cr_assert_str_eq(refused.events[0].c_str(), "recv-canceled");
            delete refused.socket;

            CALL(cctx->SetVerifyPeer(false));
            EchoClient ok(10, 10);
            ok.Start(tls, loop.iomux, server.target, cctx);
            cr_assert(loop.RunUntil([&] { return ok.Echoed() || ok.down; }));
            cr_assert(ok.Echoed());
            byte peer[32];
            cr_assert(ok.socket->GetPeerCertificateFingerprint(peer));
            cr_assert_eq(memcmp(peer, fp, 32), 0, "peer fingerprint is not the server's");
            delete ok.socket; /* delete without Shutdown: the server's side ends BY_PEER */
            cr_assert(loop.RunUntil([&] { return server.ended == 2; }));
        }
        delete cctx;
        delete sctx;
        delete tls;
        delete tcp;
    }
    h_check_leaks(); /* after the loop: deleted sockets go with their last completions */
}

Test(sdk, local_echo)
{
    int fds = h_count_fds();
    {
        Loop loop;
        ISocketProvider *local = CreateLocalSocketProvider();
        std::string name = "@ringsock-sdk-test-" + std::to_string(getpid());
        echo_round(loop, local, nullptr, nullptr, 200000, 10000, name.c_str());
        delete local;
    }
    cr_assert_eq(h_count_fds(), fds, "descriptors leaked");
    h_check_leaks();
}

/* SetUser: after it, the socket's callbacks go to the new user, with the same socket. */
class Named : public USocket
{
  public:
    const char *name;
    std::vector<std::string> *log;
    USocket *next = nullptr; /* SetUser to this in SocketConnectComplete */
    Named(const char *name, std::vector<std::string> *log) : name(name), log(log) {}
    void note(const char *what)
    {
        log->push_back(std::string(name) + " " + what);
    }
    void SocketConnectComplete(ISocket *const s) override
    {
        CALLBACK("SocketConnectComplete");
        note("connect");
        if (next)
            CALL(s->SetUser(next));
    }
    void SocketSendResult(ISocket *const) override
    {
        CALLBACK("SocketSendResult");
        note("sent");
    }
    void SocketShutdown(ISocket *const, shutdownreason_t) override
    {
        note("shutdown");
    }
    void SocketRecvCanceled(ISocket *const, void *) override
    {
        note("recv-canceled");
    }
};

Test(sdk, set_user_and_qos)
{
    {
        Loop loop;
        ISocketProvider *tcp = CreateTCPSocketProvider();
        EchoServer server(tcp, loop.iomux);
        std::vector<std::string> log;
        Named a("a", &log), b("b", &log);
        a.next = &b;
        ISocket *s = tcp->CreateSocket(loop.iomux, &a, nullptr, false);
        CALL(s->SetQoS(QOS_VOICE));
        CALL(s->Connect(server.target.c_str()));
        CALL(s->Send("x", 1));
        cr_assert(loop.RunUntil([&] { return log.size() == 2; }));
        cr_assert_str_eq(log[0].c_str(), "a connect");
        cr_assert_str_eq(log[1].c_str(), "b sent");
        CALL(s->Shutdown());
        cr_assert(loop.RunUntil([&] { return log.size() == 3; }));
        cr_assert_str_eq(log[2].c_str(), "b shutdown");
        delete s;
        cr_assert(loop.RunUntil([&] { return server.ended == 1; }));
        delete tcp;
    }
    h_check_leaks();
}

/* ALPN: SetALPNProcotols (the SDK's spelling) on both ends; the client's
 * SocketAcceptSelectedALPNProtocol sees the server's choice and may refuse it. */
class AlpnClient : public EchoClient
{
  public:
    bool accept;
    std::string seen;
    AlpnClient(bool accept) : EchoClient(10, 10), accept(accept) {}
    bool SocketAcceptSelectedALPNProtocol(ISocket *const s, const char *protocol) override
    {
        CALLBACK("SocketAcceptSelectedALPNProtocol");
        cr_assert_eq(s, socket);
        seen = protocol;
        return accept;
    }
};

Test(sdk, tls_alpn)
{
    {
        Loop loop;
        ISocketProvider *tcp = CreateTCPSocketProvider();
        ISocketProvider *tls = CreateTLSSocketProvider(tcp);
        ISocketContext *sctx = tls->CreateSocketContext(nullptr);
        ISocketContext *cctx = tls->CreateSocketContext(nullptr);
        static const char *const server_list[] = {"http/1.1", nullptr};
        static const char *const client_list[] = {"h2", "http/1.1", nullptr};
        CALL(sctx->SetALPNProcotols(server_list));
        CALL(cctx->SetALPNProcotols(client_list));
        CALL(cctx->SetVerifyPeer(false));
        {
            EchoServer server(tls, loop.iomux, sctx);
            AlpnClient refuses(false), takes(true);
            refuses.Start(tls, loop.iomux, server.target, cctx);
            takes.Start(tls, loop.iomux, server.target, cctx);
            cr_assert(loop.RunUntil([&] { return refuses.down && takes.Echoed(); }));
            cr_assert_str_eq(refuses.seen.c_str(), "http/1.1");
            cr_assert_eq(refuses.reason, SOCKET_ALPN_SELECTION_FAILED, "reason %d", refuses.reason);
            cr_assert_str_eq(takes.seen.c_str(), "http/1.1");
            cr_assert_str_eq(takes.socket->GetALPNProtocol(), "http/1.1");
            delete refuses.socket;
            delete takes.socket;
            cr_assert(loop.RunUntil([&] { return server.ended == 2; }));
        }
        delete cctx;
        delete sctx;
        delete tls;
        delete tcp;
    }
    h_check_leaks();
}

/* DTLS on the UDP provider: the bound socket reports the peer through SocketListenResult,
 * Accept gives it its own socket; one message echoes. */
Test(sdk, dtls_echo)
{
    int fds = h_count_fds();
    {
        Loop loop;
        ISocketProvider *udp = CreateUDPSocketProvider();
        ISocketContext *sctx = udp->CreateSocketContext(nullptr);
        ISocketContext *cctx = udp->CreateSocketContext(nullptr);
        CALL(sctx->EnableDTLS(false));
        CALL(cctx->EnableDTLS(false));
        CALL(cctx->SetVerifyPeer(false));
        echo_round(loop, udp, sctx, cctx, 1000, 1000);
        delete cctx;
        delete sctx;
        delete udp;
    }
    cr_assert_eq(h_count_fds(), fds, "descriptors leaked");
    h_check_leaks();
}

/* ---- StartTLS: a TCP connection upgraded on both sides -------------------------------- */

class Upgrader : public USocket
{
  public:
    ISocket *tcp = nullptr, *tls = nullptr;
    std::vector<std::string> events;
    byte buf[5];
    bool down = false;
    void SocketAcceptComplete(ISocket *const s) override
    {
        CALLBACK("SocketAcceptComplete");
        tcp = s;
        events.push_back("accept");
    }
    void SocketConnectComplete(ISocket *const s) override
    {
        CALLBACK("SocketConnectComplete");
        cr_assert_eq(s, tcp);
        events.push_back("connect");
    }
    void SocketUpgradeToTLSComplete(ISocket *const s) override
    {
        CALLBACK("SocketUpgradeToTLSComplete");
        cr_assert_eq(s, tls);
        events.push_back("upgraded");
        CALL(s->Recv(buf, sizeof(buf)));
        CALL(s->Send("hello", 5));
    }
    void SocketRecvResult(ISocket *const s, void *, size_t len) override
    {
        CALLBACK("SocketRecvResult");
        cr_assert_eq(s, tls);
        cr_assert_eq(len, 5u);
        events.push_back("recv");
    }
    void SocketShutdown(ISocket *const, shutdownreason_t r) override
    {
        events.push_back(std::string("shutdown ") + std::to_string(r));
        down = true;
    }
    void SocketRecvCanceled(ISocket *const, void *) override
    {
        events.push_back("recv-canceled");
    }
};

class UpgradeListener : public USocket
{
  public:
    Upgrader *conn;
    explicit UpgradeListener(Upgrader *conn) : conn(conn) {}
    void SocketListenResult(ISocket *const s, const char *, word) override
    {
        CALL(s->Accept(conn));
    }
    void SocketShutdown(ISocket *const, shutdownreason_t) override {}
    void SocketRecvCanceled(ISocket *const, void *) override {}
};

Test(sdk, starttls_upgrade)
{
    int fds = h_count_fds();
    {
        Loop loop;
        ISocketProvider *tcp = CreateTCPSocketProvider();
        ISocketProvider *tls = CreateTLSSocketProvider(nullptr); /* upgrades only */
        ISocketContext *sctx = tls->CreateSocketContext(nullptr);
        ISocketContext *cctx = tls->CreateSocketContext(nullptr);
        CALL(cctx->SetVerifyPeer(false));
        Upgrader srv, cli;
        UpgradeListener lu(&srv);
        ISocket *l = tcp->CreateSocket(loop.iomux, &lu, nullptr, false);
        CALL(l->Bind("127.0.0.1", 0));
        CALL(l->Listen());
        cli.tcp = tcp->CreateSocket(loop.iomux, &cli, nullptr, false);
        CALL(cli.tcp->Connect(sdk_addr(sdk_port(l)).c_str()));
        cr_assert(loop.RunUntil([&] { return !srv.events.empty() && !cli.events.empty(); }));

        CALL(srv.tls = tls->UpgradeToTLSSocket(srv.tcp, loop.iomux, &srv, nullptr, true, sctx));
        CALL(cli.tls = tls->UpgradeToTLSSocket(cli.tcp, loop.iomux, &cli, nullptr, false, cctx));
        cr_assert(loop.RunUntil([&] { return srv.events.size() == 3 && cli.events.size() == 3; }));
        cr_assert_str_eq(srv.events[1].c_str(), "upgraded");
        cr_assert_str_eq(srv.events[2].c_str(), "recv");
        cr_assert_str_eq(cli.events[2].c_str(), "recv");
        cr_assert_eq(memcmp(srv.buf, "hello", 5), 0);
        cr_assert_eq(memcmp(cli.buf, "hello", 5), 0);
        /* Deleting the TLS sockets deletes the TCP ones they took over. */
        delete srv.tls;
        delete cli.tls;
        delete l;
        delete cctx;
        delete sctx;
        delete tls;
        delete tcp;
    }
    cr_assert_eq(h_count_fds(), fds, "descriptors leaked");
    h_check_leaks();
}

/* ---- UDP: SendTo and SocketRecvFromResult with IPaddr ---------------------------------- */

class Udp : public USocket
{
  public:
    ISocket *socket = nullptr;
    word port = 0;
    bool bound = false;
    std::vector<std::string> got;
    IPaddr from = {};
    word fromPort = 0;
    byte buf[64];
    void SocketBindResult(ISocket *const, const char *, word p) override
    {
        CALLBACK("SocketBindResult");
        port = p;
        bound = true;
    }
    void SocketRecvFromResult(ISocket *const s, void *b, size_t len, IPaddr a, word p) override
    {
        CALLBACK("SocketRecvFromResult");
        cr_assert_eq(b, buf);
        got.emplace_back(static_cast<char *>(b), len);
        from = a;
        fromPort = p;
        CALL(s->Recv(buf, sizeof(buf)));
    }
    void SocketSendResult(ISocket *const) override
    {
        CALLBACK("SocketSendResult");
        got.push_back("sent");
    }
    void SocketShutdown(ISocket *const, shutdownreason_t) override {}
    void SocketRecvCanceled(ISocket *const, void *) override {}
};

Test(sdk, udp_sendto_recvfrom)
{
    int fds = h_count_fds();
    {
        Loop loop;
        ISocketProvider *udp = CreateUDPSocketProvider();
        Udp a, b;
        a.socket = udp->CreateSocket(loop.iomux, &a, nullptr, false);
        b.socket = udp->CreateSocket(loop.iomux, &b, nullptr, false);
        delete udp;
        CALL(a.socket->Bind("127.0.0.1", 0));
        CALL(b.socket->Bind("127.0.0.1", 0));
        cr_assert(loop.RunUntil([&] { return a.bound && b.bound; }));
        CALL(b.socket->Recv(b.buf, sizeof(b.buf)));
        IPaddr dst = {};
        dst.w[5] = 0xffff; /* 127.0.0.1, IPv4-mapped */
        dst.b[12] = 127, dst.b[15] = 1;
        CALL(a.socket->SendTo("one", 3, dst, b.port));
        CALL(a.socket->SendTo("datagram two", 12, dst, b.port));
        cr_assert(loop.RunUntil([&] { return b.got.size() == 2 && a.got.size() == 2; }));
        cr_assert_str_eq(b.got[0].c_str(), "one");
        cr_assert_str_eq(b.got[1].c_str(), "datagram two");
        cr_assert(is_ip4(b.from) && ip_match(b.from, dst), "source is not 127.0.0.1");
        cr_assert_eq(b.fromPort, a.port);
        delete a.socket;
        delete b.socket;
    }
    cr_assert_eq(h_count_fds(), fds, "descriptors leaked");
    h_check_leaks();
}

/* ---- timers and execs ------------------------------------------------------------------ */

class Timed : public UTimer
{
  public:
    std::vector<std::pair<ITimer *, unsigned long long>> fired;
    void TimerOnTimeout(ITimer *t) override
    {
        CALLBACK("TimerOnTimeout");
        fired.emplace_back(t, now_ms());
    }
};

Test(sdk, timers)
{
    {
        Loop loop;
        Timed user;
        ITimer a(loop.iomux, &user), b(loop.iomux, &user), c(loop.iomux, &user);
        cr_assert_not(a.IsRunning());
        unsigned long long t0 = now_ms();
        CALL(a.Start(40));
        CALL(b.Start(10));
        CALL(c.Start(5));
        cr_assert(a.IsRunning());
        CALL(c.Cancel()); /* never fires */
        cr_assert_not(c.IsRunning());
        cr_assert(user.fired.empty(), "a timer fired inside Start");
        cr_assert(loop.RunUntil([&] { return user.fired.size() == 2; }));
        loop.RunFor(20);
        cr_assert_eq(user.fired.size(), 2u);
        cr_assert_eq(user.fired[0].first, &b);
        cr_assert_eq(user.fired[1].first, &a);
        cr_assert_geq(user.fired[0].second - t0, 10u);
        cr_assert_geq(user.fired[1].second - t0, 40u);
        cr_assert_not(a.IsRunning());
    }
    h_check_leaks();
}

/* A timer may outlive its loop. */
Test(sdk, timer_after_loop)
{
    Timed user;
    ITimer *t;
    {
        Loop loop;
        t = new ITimer(loop.iomux, &user);
        CALL(t->Start(1000));
    }
    delete t;
    cr_assert(user.fired.empty());
    h_check_leaks();
}

class Exec : public UIoExec
{
  public:
    std::vector<intptr_t> runs;
    std::atomic<int> count{0};
    void IoExec(void *ctx) override
    {
        CALLBACK("IoExec");
        runs.push_back((intptr_t)ctx);
        count++;
    }
};

Test(sdk, exec_order_cancel_and_locked)
{
    {
        Loop loop;
        Exec e, dropped;
        CALL(loop.iomux->SetExec(&e, (void *)1));
        CALL(loop.iomux->SetExec(&e, (void *)2));
        CALL(loop.iomux->SetExec(&dropped, (void *)9));
        CALL(loop.iomux->SetExec(&e, (void *)3));
        CALL(loop.iomux->CancelSetExec(&dropped));
        cr_assert(e.runs.empty(), "IoExec ran inside SetExec");
        cr_assert(loop.RunUntil([&] { return e.runs.size() == 3; }));
        cr_assert_eq(e.runs[0], 1);
        cr_assert_eq(e.runs[1], 2);
        cr_assert_eq(e.runs[2], 3);
        loop.RunFor(10);
        cr_assert(dropped.runs.empty());

        /* From other threads. */
        Exec locked;
        std::thread th([&] {
            for (intptr_t i = 0; i < 100; i++)
                loop.iomux->SetExecLocked(&locked, (void *)i);
        });
        cr_assert(loop.RunUntil([&] { return locked.count == 100; }));
        th.join();
        for (intptr_t i = 0; i < 100; i++)
            cr_assert_eq(locked.runs[(size_t)i], i);

        /* An exec destroyed with runs pending: they are dropped. */
        Exec *gone = new Exec;
        CALL(loop.iomux->SetExec(gone, nullptr));
        delete gone;
        loop.RunFor(10);
    }
    h_check_leaks();
}

/* An exec that outlives its loop (and one pending when the loop goes). */
Test(sdk, exec_after_loop)
{
    Exec e;
    {
        Loop loop;
        CALL(loop.iomux->SetExec(&e, nullptr));
    }
    cr_assert(e.runs.empty());
    h_check_leaks();
}

/* ---- deletes inside callbacks ---------------------------------------------------------- */

/* Deletes its socket in the callback named by when; nothing may follow. */
class Deleter : public USocket
{
  public:
    std::string when;
    ISocket *socket = nullptr;
    int after = 0;
    bool deleted = false;
    byte buf[16];
    explicit Deleter(const char *when) : when(when) {}
    void maybe(const char *cb, ISocket *s)
    {
        CALLBACK(cb);
        cr_assert_not(deleted, "%s after delete", cb);
        if (when == cb) {
            delete s;
            deleted = true;
        }
    }
    void SocketConnectComplete(ISocket *const s) override
    {
        maybe("connect", s);
    }
    void SocketSendResult(ISocket *const s) override
    {
        maybe("send", s);
    }
    void SocketRecvResult(ISocket *const s, void *, size_t) override
    {
        maybe("recv", s);
    }
    void SocketShutdown(ISocket *const s, shutdownreason_t) override
    {
        maybe("shutdown", s);
    }
    void SocketRecvCanceled(ISocket *const s, void *) override
    {
        maybe("recv-canceled", s);
    }
};

/* A port nothing listens on. */
static word closed_port()
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

Test(sdk, delete_inside_callbacks)
{
    int fds = h_count_fds();
    {
        Loop loop;
        ISocketProvider *tcp = CreateTCPSocketProvider();
        EchoServer server(tcp, loop.iomux);
        const char *whens[] = {"connect", "send", "recv"};
        std::vector<Deleter *> ds;
        for (const char *w : whens) {
            Deleter *d = new Deleter(w);
            ds.push_back(d);
            d->socket = tcp->CreateSocket(loop.iomux, d, nullptr, false);
            CALL(d->socket->Connect(server.target.c_str()));
            CALL(d->socket->Send("0123456789abcdef", 16));
            CALL(d->socket->Send("0123456789abcdef", 16)); /* a second result never comes */
            CALL(d->socket->Recv(d->buf, 8));
        }
        cr_assert(loop.RunUntil([&] {
            for (Deleter *d : ds)
                if (!d->deleted)
                    return false;
            return server.ended == 3;
        }));
        loop.RunFor(20); /* nothing more reaches the deleters */
        /* A refused connection, deleted in its SocketShutdown. */
        Deleter refused("shutdown");
        ISocket *s = tcp->CreateSocket(loop.iomux, &refused, nullptr, false);
        CALL(s->Connect(sdk_addr(closed_port()).c_str()));
        cr_assert(loop.RunUntil([&] { return refused.deleted; }));
        for (Deleter *d : ds)
            delete d;
        delete tcp;
    }
    cr_assert_eq(h_count_fds(), fds, "descriptors leaked");
    h_check_leaks();
}

/* A listener that accepts every connection with itself as the user. */
class Holder : public USocket
{
  public:
    ISocket *listener;
    word port;
    int accepted = 0, events = 0;
    Holder(ISocketProvider *p, IIoMux *iomux)
    {
        listener = p->CreateSocket(iomux, this, nullptr, false);
        CALL(listener->Bind("127.0.0.1", 0));
        CALL(listener->Listen());
        port = sdk_port(listener);
    }
    ~Holder()
    {
        delete listener;
    }
    void SocketListenResult(ISocket *const s, const char *, word) override
    {
        CALLBACK("SocketListenResult");
        accepted++;
        CALL(s->Accept(this));
    }
    void SocketAcceptComplete(ISocket *const) override
    {
        events++;
    }
    void SocketShutdown(ISocket *const, shutdownreason_t) override
    {
        events++;
    }
    void SocketRecvCanceled(ISocket *const, void *) override {}
};

/* TLS connections accepted but still in their handshake when the loop goes: the engine
 * frees them, and their adapters go with them. */
Test(sdk, loop_deleted_with_unclaimed_accepts)
{
    int fds = h_count_fds();
    {
        Loop *loop = new Loop;
        ISocketProvider *tcp = CreateTCPSocketProvider();
        ISocketProvider *tls = CreateTLSSocketProvider(tcp);
        Holder *server = new Holder(tls, loop->iomux);
        /* Plain TCP clients that never speak TLS: accepted, then stuck in the handshake. */
        std::vector<ISocket *> cs;
        std::vector<EchoClient *> users;
        for (int i = 0; i < 3; i++) {
            users.push_back(new EchoClient(1, 1));
            cs.push_back(tcp->CreateSocket(loop->iomux, users.back(), nullptr, false));
            users.back()->socket = cs.back();
            CALL(cs.back()->Connect(sdk_addr(server->port).c_str()));
        }
        cr_assert(loop->RunUntil([&] { return server->accepted == 3; }));
        loop->RunFor(20);
        cr_assert_eq(server->events, 0, "a handshake with a TCP client completed");
        for (ISocket *c : cs)
            delete c;
        delete server;
        delete loop;
        for (EchoClient *u : users)
            delete u;
        delete tls;
        delete tcp;
    }
    cr_assert_eq(h_count_fds(), fds, "descriptors leaked");
    h_check_leaks();
}

/* ---- the log ---------------------------------------------------------------------------- */

Test(sdk, socket_log_reaches_debug)
{
    Capture cap;
    {
        Loop loop;
        TestLog quiet("quiet"), loud("loud", LOG_TCP);
        ISocketProvider *tcp = CreateTCPSocketProvider();
        Deleter a("shutdown"), b("shutdown");
        ISocket *sa = tcp->CreateSocket(loop.iomux, &a, &quiet, false);
        ISocket *sb = tcp->CreateSocket(loop.iomux, &b, &loud, false);
        CALL(sa->Connect("not an address"));
        CALL(sb->Connect("not an address"));
        cr_assert(loop.RunUntil([&] { return a.deleted && b.deleted; }));
        cr_assert(cap.rec.contains("loud tcp"), "no LOG_TCP line from the loud log");
        cr_assert_not(cap.rec.contains("quiet"), "a line without LOG_TCP");

        /* SetLogFlags reaches the sockets; Log is the SDK's inline one. */
        cap.rec.lines.clear();
        quiet.SetLogFlags(LOG_TCP | LOG_APP);
        Deleter c("shutdown");
        ISocket *sc = tcp->CreateSocket(loop.iomux, &c, &quiet, false);
        CALL(sc->Connect("still not an address"));
        cr_assert(loop.RunUntil([&] { return c.deleted; }));
        cr_assert(cap.rec.contains("quiet tcp"));
        quiet.Log(LOG_APP, "app line %d", 42);
        cr_assert(cap.rec.contains("quiet@test.example: app line 42"));
        delete tcp;
    }
    h_check_leaks();
}

/* ---- shutdown handlers ------------------------------------------------------------------- */

class Stopper : public IShutdownHandler, public UTimer
{
  public:
    IIoMux *iomux = nullptr;
    int shutdowns = 0, timeouts = 0;
    void Shutdown() override
    {
        CALLBACK("Shutdown");
        shutdowns++;
        CALL(iomux->ShutdownComplete(this));
    }
    void ShutdownTimeout() override
    {
        timeouts++;
    }
    void TimerOnTimeout(ITimer *) override
    {
        cr_assert_eq(raise(SIGTERM), 0);
    }
};

/* SIGTERM calls Shutdown from the loop; once it completes, Run returns. */
Test(sdk, shutdown_handler)
{
    {
        Loop loop;
        Stopper s;
        s.iomux = loop.iomux;
        CALL(loop.iomux->RegisterShutdownHandler(&s));
        ITimer kick(loop.iomux, &s);
        CALL(kick.Start(5));
        cr_assert(loop.RunUntil([&] { return s.shutdowns == 1; }, 3000));
        cr_assert_eq(s.timeouts, 0);
    }
    h_check_leaks();
}
