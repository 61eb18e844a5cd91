// The public headers must compile as C++ (api.md); built whenever a C++ compiler exists.
#include <ringsock/socket.h>

static void on_shutdown(USocket *, ISocket *s, shutdownreason_t)
{
    ISocket_Delete(s);
}

struct conn {
    int id;
    USocket user;
};

int main()
{
    static const USocketVtbl vtbl = {nullptr, nullptr, nullptr, nullptr, on_shutdown,
                                     nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};
    conn c = {7, {&vtbl}};
    USocket *user = &c.user;
    IPaddr a;
    bool found = RINGSOCK_CONTAINER_OF(user, conn, user)->id == 7; // the macro from socket.h, in C++
    return found && IPaddr_FromString(&a, "127.0.0.1") && IPaddr_IsV4(&a) ? 0 : 1;
}
