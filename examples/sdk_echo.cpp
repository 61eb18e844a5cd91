/* A TCP echo server written against the SDK's C++ classes (docs/sdk-cxx.md): every
 * connection gets back what it sends; SIGINT or SIGTERM stops it cleanly.
 *
 *   sdk-echo [--port P]     prints "listening on PORT" */
#include "platform/platform.h"
#include "common/interface/socket.h"
#include "common/os/iomux.h"

#include <set>
#include <stdio.h>

class Log : public IInstanceLog
{
    const char *GetAppName() const override
    {
        return "sdk-echo";
    }
    const char *GetAppDomain() const override
    {
        return "example";
    }
};

class Server;

/* One connection: receive what is there, send it back, receive again. */
class Connection : public USocket
{
  public:
    explicit Connection(Server *server) : server(server) {}
    void SocketAcceptComplete(ISocket *const socket) override;
    void SocketRecvResult(ISocket *const socket, void *buf, size_t len) override
    {
        socket->Send(buf, len); /* Send copies: the buffer is free again at once */
        socket->Recv(buffer, sizeof(buffer), true);
    }
    void SocketShutdown(ISocket *const socket, shutdownreason_t reason) override;
    void SocketRecvCanceled(ISocket *const socket, void *buf) override
    {
        (void)socket, (void)buf; /* the buffer is ours */
    }

    ISocket *socket = nullptr;

  private:
    Server *server;
    char buffer[16384];
};

class Server : public USocket, public IShutdownHandler
{
  public:
    Server(IIoMux *iomux, word port) : iomux(iomux)
    {
        tcp = CreateTCPSocketProvider();
        listener = tcp->CreateSocket(iomux, this, &log, false);
        listener->Bind(nullptr, port);
        listener->Listen();
        iomux->RegisterShutdownHandler(this);
    }
    ~Server()
    {
        for (Connection *c : connections) {
            delete c->socket;
            delete c;
        }
        delete listener;
        delete tcp;
    }
    void SocketBindResult(ISocket *const socket, const char *localAddr, word localPort) override
    {
        (void)socket, (void)localAddr;
        printf("listening on %u\n", localPort);
        fflush(stdout);
    }
    void SocketListenResult(ISocket *const socket, const char *remoteAddr, word remotePort) override
    {
        (void)remoteAddr, (void)remotePort;
        Connection *c = new Connection(this);
        connections.insert(c);
        socket->Accept(c);
    }
    void SocketShutdown(ISocket *const socket, shutdownreason_t reason) override
    {
        (void)socket;
        fprintf(stderr, "sdk-echo: listener closed: reason %d\n", reason);
        iomux->Terminate();
    }
    void SocketRecvCanceled(ISocket *const socket, void *buf) override
    {
        (void)socket, (void)buf;
    }
    void Shutdown() override /* SIGINT, SIGTERM */
    {
        iomux->ShutdownComplete(this);
    }
    void ShutdownTimeout() override {}
    void Ended(Connection *c)
    {
        connections.erase(c);
        delete c;
    }

  private:
    IIoMux *iomux;
    Log log;
    ISocketProvider *tcp;
    ISocket *listener;
    std::set<Connection *> connections;
};

void Connection::SocketAcceptComplete(ISocket *const s)
{
    socket = s;
    socket->Recv(buffer, sizeof(buffer), true);
}

void Connection::SocketShutdown(ISocket *const s, shutdownreason_t reason)
{
    (void)reason;
    delete s;
    socket = nullptr;
    server->Ended(this);
}

int main(int argc, char **argv)
{
    word port = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = (word)atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: sdk-echo [--port P]\n");
            return 2;
        }
    }
    IIoMux *iomux = IIoMux::Create();
    if (!iomux)
        return 1;
    Server *server = new Server(iomux, port);
    iomux->Run();
    delete server;
    delete iomux;
    return 0;
}
