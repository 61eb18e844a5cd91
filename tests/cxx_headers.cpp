// The public headers must compile as C++ (api.md); built whenever a C++ compiler exists.
#include <ringsock/socket.h>

static void on_shutdown(USocket *, ISocket *s, shutdownreason_t)
{
    ISocket_Delete(s);
}

int main()
{
    static const USocketVtbl vtbl = {nullptr, nullptr, nullptr, nullptr, on_shutdown,
                                     nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};
    USocket user = {&vtbl};
    (void)user;
    IPaddr a;
    return IPaddr_FromString(&a, "127.0.0.1") && IPaddr_IsV4(&a) ? 0 : 1;
}
