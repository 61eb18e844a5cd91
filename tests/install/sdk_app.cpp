/* An SDK application built against an installed ringsock with
 * `pkg-config --cflags --libs ringsock-sdk` (tests/install/sdk_install.sh): a TCP
 * connection carries "ok" from a client to a server, which prints it. */
#include "platform/platform.h"
#include "common/interface/socket.h"
#include "common/os/iomux.h"

#include <stdio.h>

class Server : public USocket
{
  public:
    IIoMux *iomux = nullptr;
    ISocket *conn = nullptr;
    char buf[2];
    void SocketListenResult(ISocket *const socket, const char *, word) override
    {
        socket->Accept(this);
    }
    void SocketAcceptComplete(ISocket *const socket) override
    {
        conn = socket;
        socket->Recv(buf, sizeof(buf));
    }
    void SocketRecvResult(ISocket *const, void *, size_t len) override
    {
        printf("%.*s\n", (int)len, buf);
        iomux->Terminate();
    }
    void SocketShutdown(ISocket *const, shutdownreason_t reason) override
    {
        printf("shutdown %d\n", reason);
        iomux->Terminate();
    }
    void SocketRecvCanceled(ISocket *const, void *) override {}
};

class Client : public USocket
{
  public:
    void SocketShutdown(ISocket *const, shutdownreason_t) override {}
    void SocketRecvCanceled(ISocket *const, void *) override {}
};

int main()
{
    IIoMux *iomux = IIoMux::Create();
    if (!iomux)
        return 2;
    ISocketProvider *tcp = CreateTCPSocketProvider();
    Server server;
    Client client;
    server.iomux = iomux;
    ISocket *listener = tcp->CreateSocket(iomux, &server, nullptr, false);
    listener->Bind("127.0.0.1", 0);
    listener->Listen();
    char addr[64];
    word port = 0;
    listener->GetLocalAddress(addr, sizeof(addr), &port);
    ISocket *c = tcp->CreateSocket(iomux, &client, nullptr, false);
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
    c->Connect(addr);
    c->Send("ok", 2);
    iomux->Run();
    delete c;
    delete server.conn;
    delete listener;
    delete tcp;
    delete iomux;
    return 0;
}
