/* The seed document's examples (common/interface/socket.htm, "ISocket - server" and
 * "ISocket - client"), as an SDK application. The function bodies are the seed's, with
 * the two fixes the seed itself needs: provider->Create(iomux, this, false) is
 * CreateSocket(iomux, this, nullptr, false) (the log comes before useIPv6), and
 * debug->HexDump is IDebug's hexdump. The class declarations, SocketRecvCanceled (which
 * USocket requires) and the test around them are ours. */
#include "sdk_test.h"

#include <arpa/inet.h>
#include <criterion/redirect.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>

static int remote_users_deleted;

class remoteUser : public USocket
{
  public:
    ~remoteUser() override
    {
        remote_users_deleted++;
    }
    void SocketAcceptComplete(ISocket *const socket) override;
    void SocketSendResult(ISocket *const socket) override;
    void SocketRecvResult(ISocket *const socket, void *buf, size_t len) override;
    void SocketShutdown(ISocket *const socket, shutdownreason_t reason) override;
    void SocketRecvCanceled(ISocket *const socket, void *buf) override
    {
        (void)socket, (void)buf; /* the buffer is a member */
    }

  private:
    ISocket *remoteSocket = nullptr;
    char buffer[1024];
};

class app : public USocket
{
  public:
    app(class IIoMux *iomux);
    void SocketBindResult(ISocket *const socket, const char *localAddr, word localPort) override;
    void SocketListenResult(ISocket *const socket, const char *remoteAddr,
                            word remotePort) override;
    void SocketShutdown(ISocket *const socket, shutdownreason_t reason) override;
    void SocketRecvCanceled(ISocket *const socket, void *buf) override
    {
        (void)socket, (void)buf;
    }

    IIoMux *iomux;
    ISocket *serverSocket;
};

// clang-format off
// (the seed's text as it is)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"

// ---- the seed's "ISocket - server", with CreateSocket for Create ----

// App with ISocket in server mode
app::app(class IIoMux * iomux)
    : iomux(iomux)
{
    ISocketProvider * provider = CreateTCPSocketProvider();
    this->serverSocket = provider->CreateSocket(iomux, this, nullptr, false);
    delete provider;

    this->serverSocket->Bind();
}

void app::SocketBindResult(ISocket * const socket, const char * localAddr, word localPort)
{
    this->serverSocket->Listen();
}

void app::SocketListenResult(ISocket * const socket, const char * remoteAddr, word remotePort)
{
    // Deny local connections...
    if (strcmp(remoteAddr, "127.0.0.1") == 0)
        this->serverSocket->Accept(nullptr);
    else
        this->serverSocket->Accept(new remoteUser());
}

void app::SocketShutdown(ISocket * const socket, shutdownreason_t reason)
{
    // If true, an error occured during a call to Bind() and SocketBindResult()
    if (this->serverSocket == nullptr)
        delete socket;
    else {
        delete this->serverSocket;
        this->serverSocket = nullptr;
    }
    this->iomux->Terminate();
}

// ---- the seed's "ISocket - client", with hexdump for HexDump ----

// remoteUser is subclassed from USocket
void remoteUser::SocketAcceptComplete(ISocket * const socket)
{
    this->remoteSocket = socket;
    this->remoteSocket->Recv(buffer, 1024);
    this->remoteSocket->Send("Hello world", 11);
}

void remoteUser::SocketSendResult(ISocket * const socket)
{
    printf("Data had been sent\n");
}

void remoteUser::SocketRecvResult(ISocket * const socket, void * buf, size_t len)
{
    printf("Received data\n");
    debug->hexdump(buf, len);
    this->remoteSocket->Recv(buffer, 1024);
}

void remoteUser::SocketShutdown(ISocket * const socket, shutdownreason_t reason)
{
    delete socket;
    delete this;
}

#pragma GCC diagnostic pop
// clang-format on

// ---- the test around them ----

/* An SDK client: records what happens to it. */
class Client : public USocket
{
  public:
    std::vector<std::string> events;
    shutdownreason_t reason = SOCKET_SHUTDOWN_NORMAL;
    bool down = false;
    void SocketConnectComplete(ISocket *const) override
    {
        CALLBACK("SocketConnectComplete");
        events.push_back("connect");
    }
    void SocketShutdown(ISocket *const, shutdownreason_t r) override
    {
        CALLBACK("SocketShutdown");
        events.push_back("shutdown");
        reason = r;
        down = true;
    }
    void SocketRecvCanceled(ISocket *const, void *) override
    {
        CALLBACK("SocketRecvCanceled");
        events.push_back("recv-canceled");
    }
};

static int raw_connect_from(const char *from, word port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {};
    a.sin_family = AF_INET;
    inet_pton(AF_INET, from, &a.sin_addr);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0, "bind %s: %m", from);
    a.sin_port = htons(port);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect: %m");
    return fd;
}

static bool readable(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, 0) == 1;
}

Test(sdk_seed, server_and_client_examples, .init = cr_redirect_stdout)
{
    int fds = h_count_fds();
    Capture cap;
    remote_users_deleted = 0;
    {
        Loop loop;
        app *a = new app(loop.iomux);
        word port = sdk_port(a->serverSocket);
        loop.RunFor(20); /* the example listens in SocketBindResult */

        /* From 127.0.0.1 the example denies: the client connects and the peer closes. */
        ISocketProvider *tcp = CreateTCPSocketProvider();
        Client denied;
        ISocket *c = tcp->CreateSocket(loop.iomux, &denied, nullptr, false);
        char in[16];
        CALL(c->Connect(sdk_addr(port).c_str()));
        CALL(c->Recv(in, sizeof(in), true)); /* the peer's close shows on a receive */
        cr_assert(loop.RunUntil([&] { return denied.down; }), "the denied client never ended");
        cr_assert_eq(denied.reason, SOCKET_SHUTDOWN_BY_PEER, "reason %d", denied.reason);
        cr_assert_eq(denied.events.size(), 3u);
        cr_assert_str_eq(denied.events[0].c_str(), "connect");
        cr_assert_str_eq(denied.events[1].c_str(), "recv-canceled");
        delete c;
        delete tcp;

        /* From 127.0.0.2 it accepts: "Hello world" comes, and what we send is dumped when
         * 1024 bytes are there. */
        int fd = raw_connect_from("127.0.0.2", port);
        char hello[11];
        size_t got = 0;
        cr_assert(loop.RunUntil([&] {
            while (got < sizeof(hello) && readable(fd)) {
                ssize_t r = read(fd, hello + got, sizeof(hello) - got);
                cr_assert_gt(r, 0);
                got += (size_t)r;
            }
            return got == sizeof(hello);
        }));
        cr_assert_eq(memcmp(hello, "Hello world", 11), 0);
        byte data[1024];
        h_fill(data, sizeof(data), 1);
        cr_assert_eq(write(fd, data, 1000), 1000);
        loop.RunFor(30); /* 1000 of 1024: no SocketRecvResult yet */
        cr_assert_eq(cap.rec.dumped.size(), 0u);
        cr_assert_eq(write(fd, data + 1000, 24), 24);
        cr_assert(loop.RunUntil([&] { return cap.rec.dumped.size() == 1024; }));
        cr_assert_eq(memcmp(cap.rec.dumped.data(), data, 1024), 0);

        /* The peer closes: the remote user deletes its socket and itself. */
        close(fd);
        cr_assert(loop.RunUntil([&] { return remote_users_deleted == 1; }));

        /* The server's Shutdown reaches app::SocketShutdown, which deletes it and ends Run. */
        CALL(a->serverSocket->Shutdown());
        cr_assert(loop.RunUntil([&] { return a->serverSocket == nullptr; }));
        delete a;
    }
    cr_assert_eq(h_count_fds(), fds, "descriptors leaked");
    fflush(stdout);
    cr_assert_stdout_eq_str("Data had been sent\nReceived data\n");
    h_check_leaks();
}
