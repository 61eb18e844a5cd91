/* IIoMux, UIoExec and ITimer of the SDK over ringsock's C loop. */
#include "internal.h"

#include <sys/resource.h>

namespace ringsock_sdk
{

/* An IShutdownHandler's entry with the engine; freed with the loop (the engine may still
 * hold it while it calls the handlers). */
struct ShutdownLink {
    rsc::IShutdownHandler c; /* first: the engine hands back &c */
    ::IShutdownHandler *handler;
    ShutdownLink *next;
};

static void shutdown_fwd(rsc::IShutdownHandler *self)
{
    reinterpret_cast<ShutdownLink *>(self)->handler->Shutdown();
}

static void shutdown_timeout_fwd(rsc::IShutdownHandler *self)
{
    reinterpret_cast<ShutdownLink *>(self)->handler->ShutdownTimeout();
}

static const rsc::IShutdownHandlerVtbl shutdown_vtbl = {shutdown_fwd, shutdown_timeout_fwd};

IoMux::~IoMux()
{
    rsc::IIoMux_Delete(c);
    drop_unclaimed();
    while (handlers) {
        ShutdownLink *h = handlers;
        handlers = h->next;
        delete h;
    }
    std::lock_guard<std::mutex> g(execs_lock);
    for (RingsockExecLink *l = execs; l; l = l->next)
        l->mux = nullptr;
}

void IoMux::Run()
{
    rsc::IIoMux_Run(c);
}

void IoMux::Terminate()
{
    rsc::IIoMux_Terminate(c);
}

const char *IoMux::GetBackend()
{
    return rsc::IIoMux_GetBackend(c);
}

void IoMux::RegisterShutdownHandler(IShutdownHandler *handler)
{
    ShutdownLink *h = new ShutdownLink{{&shutdown_vtbl}, handler, handlers};
    handlers = h;
    rsc::IIoMux_RegisterShutdownHandler(c, &h->c);
}

void IoMux::ShutdownComplete(IShutdownHandler *handler)
{
    for (ShutdownLink *h = handlers; h; h = h->next)
        if (h->handler == handler)
            rsc::IIoMux_ShutdownComplete(c, &h->c);
}

void IoMux::attach(UIoExec *exec)
{
    RingsockExecLink *l = RingsockSdkAccess::link(exec);
    std::lock_guard<std::mutex> g(execs_lock);
    if (l->mux == this)
        return;
    /* An exec moves between loops only on the application's loop thread (its old loop
     * cannot then be attaching it concurrently). */
    if (l->mux) {
        std::lock_guard<std::mutex> old(l->mux->execs_lock);
        list_remove(l->mux->execs, l);
    }
    l->mux = this;
    list_push(execs, l);
}

void IoMux::forget(RingsockExecLink *l)
{
    rsc::IIoMux_CancelSetExec(c, &l->c);
    std::lock_guard<std::mutex> g(execs_lock);
    list_remove(execs, l);
    l->mux = nullptr;
}

void IoMux::SetExec(UIoExec *exec, void *execContext)
{
    attach(exec);
    rsc::IIoMux_SetExec(c, &RingsockSdkAccess::link(exec)->c, execContext);
}

void IoMux::SetExecLocked(UIoExec *exec, void *execContext)
{
    attach(exec);
    rsc::IIoMux_SetExecLocked(c, &RingsockSdkAccess::link(exec)->c, execContext);
}

void IoMux::CancelSetExec(UIoExec *const exec)
{
    rsc::IIoMux_CancelSetExec(c, &RingsockSdkAccess::link(exec)->c);
}

} // namespace ringsock_sdk

using ringsock_sdk::IoMux;

IIoMux::IIoMux() {}

IIoMux::~IIoMux() {}

IIoMux *IIoMux::Create(bool locking, unsigned rlimitNoFile)
{
    (void)locking; /* SetExecLocked is always thread-safe */
    if (rlimitNoFile) {
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rlimitNoFile) {
            rl.rlim_cur = rl.rlim_max < rlimitNoFile ? rl.rlim_max : rlimitNoFile;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
    }
    rsc::IIoMux *c = rsc::IIoMux_Create();
    return c ? new IoMux(c) : nullptr;
}

/* ---- UIoExec ------------------------------------------------------------------------- */

static void exec_fwd(rsc::UIoExec *self, void *execContext)
{
    reinterpret_cast<RingsockExecLink *>(self)->owner->IoExec(execContext);
}

static const rsc::UIoExecVtbl exec_vtbl = {exec_fwd};

UIoExec::UIoExec() : link(new RingsockExecLink{{&exec_vtbl}, this, nullptr, nullptr, nullptr}) {}

/* A copy is another exec: pending runs stay with the original. */
UIoExec::UIoExec(const UIoExec &other) : UIoExec()
{
    (void)other;
}

UIoExec &UIoExec::operator=(const UIoExec &other)
{
    (void)other;
    return *this;
}

UIoExec::~UIoExec()
{
    if (link->mux)
        link->mux->forget(link);
    delete link;
}

/* ---- ITimer --------------------------------------------------------------------------- */

struct RingsockTimerLink {
    rsc::UTimer c; /* first: the engine hands back &c */
    ::ITimer *timer;
    rsc::ITimer *t;
};

static void timer_fwd(rsc::UTimer *self, rsc::ITimer *t)
{
    (void)t;
    ::ITimer *timer = reinterpret_cast<RingsockTimerLink *>(self)->timer;
    RingsockSdkAccess::timer_owner(timer)->TimerOnTimeout(timer);
}

static const rsc::UTimerVtbl timer_vtbl = {timer_fwd};

ITimer::ITimer(IIoMux *ioMux, UTimer *owner)
    : owner(owner), link(new RingsockTimerLink{{&timer_vtbl}, this, nullptr})
{
    link->t = rsc::ITimer_Create(ringsock_sdk::c_mux(ioMux), &link->c);
}

ITimer::~ITimer()
{
    rsc::ITimer_Delete(link->t);
    delete link;
}

void ITimer::Start(unsigned timeoutMs)
{
    rsc::ITimer_Start(link->t, timeoutMs);
}

void ITimer::Cancel()
{
    rsc::ITimer_Cancel(link->t);
}

bool ITimer::IsRunning() const
{
    return rsc::ITimer_IsRunning(link->t);
}
