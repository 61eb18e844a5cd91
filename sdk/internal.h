/* Inside the SDK classes: ringsock's C API under the namespace rsc, next to the SDK's C++
 * classes of the same names (ISocket, IIoMux, IPaddr ...) in the global namespace.
 *
 * The C headers are included inside the namespace, with the system headers they include
 * first (their include guards keep them outside). Their functions keep C linkage: the
 * calls go to libringsock's symbols. The SDK header declares the four
 * Create*SocketProvider functions with C++ linkage, so its ::CreateTCPSocketProvider and
 * the C library's rsc::CreateTCPSocketProvider are two functions with two symbols. */
#ifndef RINGSOCK_SDK_INTERNAL_H
#define RINGSOCK_SDK_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mutex>

namespace ringsock_sdk
{
class IoMux;
}

namespace rsc
{
#include <ringsock/socket.h>
}

#include "common/interface/socket.h"
#include "common/os/iomux.h"

/* A UIoExec's entry with the engine: the C exec the loop runs, on one IIoMux's list so
 * that either may go first. */
struct RingsockExecLink {
    rsc::UIoExec c; /* first: the engine hands back &c */
    ::UIoExec *owner;
    class ringsock_sdk::IoMux *mux; /* the loop it was last set on; NULL once that is gone */
    RingsockExecLink *prev, *next;
};

/* What the library reads of the SDK classes' private parts. */
struct RingsockSdkAccess {
    static RingsockExecLink *link(::UIoExec *e)
    {
        return e->link;
    }
    static const char *app_name(const ::IInstanceLog *l)
    {
        return l->GetAppName();
    }
    static void *&engine_log(::IInstanceLog *l)
    {
        return l->engineLog;
    }
    static ulong64 flags(const ::IInstanceLog *l)
    {
        return l->logFlags;
    }
    static ::UTimer *timer_owner(::ITimer *t)
    {
        return t->owner;
    }
};

namespace ringsock_sdk
{

/* Intrusive doubly-linked lists of nodes with prev and next. */
template <class T> void list_push(T *&head, T *n)
{
    n->prev = nullptr;
    n->next = head;
    if (head)
        head->prev = n;
    head = n;
}

template <class T> void list_remove(T *&head, T *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    n->prev = n->next = nullptr;
}

class Socket;

/* The loop, with what the SDK objects on it need at its end. */
class IoMux final : public ::IIoMux
{
  public:
    explicit IoMux(rsc::IIoMux *c) : c(c) {}
    ~IoMux() override;
    void Run() override;
    void RegisterShutdownHandler(IShutdownHandler *handler) override;
    void SetExec(UIoExec *exec, void *execContext) override;
    void SetExecLocked(UIoExec *exec, void *execContext) override;
    void CancelSetExec(UIoExec *const exec) override;
    void ShutdownComplete(IShutdownHandler *handler) override;
    void Terminate() override;
    const char *GetBackend() override;

    /* Accepted sockets the application has not received yet: the engine may still free
     * theirs at IIoMux_Delete without a callback, and then their adapters go too. */
    void hold(Socket *s);
    void release(Socket *s);
    void drop_unclaimed(); /* after IIoMux_Delete freed their C sockets */

    rsc::IIoMux *const c;

    /* A UIoExec going away: its pending runs are dropped and the loop forgets it. */
    void forget(RingsockExecLink *l);

  private:
    void attach(UIoExec *exec);
    std::mutex execs_lock; /* SetExecLocked attaches from other threads */
    Socket *unclaimed = nullptr;
    struct ShutdownLink *handlers = nullptr;
    struct ::RingsockExecLink *execs = nullptr;
};

inline rsc::IIoMux *c_mux(::IIoMux *m)
{
    return m ? static_cast<IoMux *>(m)->c : nullptr;
}

/* The engine's log for an SDK log (NULL for NULL), with its flags brought up to date. */
rsc::IInstanceLog *c_log(::IInstanceLog *log);

} // namespace ringsock_sdk

#endif
