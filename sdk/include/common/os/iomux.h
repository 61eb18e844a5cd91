/* ringsock SDK headers — common/os/iomux.h: IIoMux (the event loop), UIoExec, ITimer and
 * UTimer, IShutdownHandler, with the SDK's signatures; they run on ringsock's C loop.
 * Not here (socket applications do not use them): the file-descriptor calls (FDAdd ...,
 * UIoContext), signal consumers, child-exit handlers, Lock/UnLock, ITimer::StartLocked/
 * CancelLocked, ITimerAbsolute. */
#ifndef RINGSOCK_SDK_IOMUX_H
#define RINGSOCK_SDK_IOMUX_H

#include "platform/platform.h"

class IShutdownHandler
{
  public:
    virtual void Shutdown() = 0;
    virtual void ShutdownTimeout() = 0;
};

/* Work handed to the loop: SetExec runs IoExec once, from the loop, per call. Destroying
 * a UIoExec drops its pending runs. */
class UIoExec
{
    friend struct RingsockSdkAccess;
    struct RingsockExecLink *link;

  public:
    UIoExec();
    UIoExec(const UIoExec &other);
    UIoExec &operator=(const UIoExec &other);
    virtual ~UIoExec();
    virtual void IoExec(void *execContext) = 0;
};

class IIoMux
{
  public:
    IIoMux();
    virtual ~IIoMux();
    /* NULL when no I/O backend can be set up (the reason is on stderr). locking is
     * accepted and ignored (SetExecLocked is always thread-safe); rlimitNoFile, when not
     * 0, raises the soft limit of open descriptors to it (at most the hard limit). */
    static IIoMux *Create(bool locking = true, unsigned rlimitNoFile = 0);

    virtual void Run() = 0;
    /* SIGINT and SIGTERM call Shutdown of every registered handler from the loop; Run
     * returns once each has called ShutdownComplete (ShutdownTimeout after a grace
     * period). */
    virtual void RegisterShutdownHandler(IShutdownHandler *shutdownHandler) = 0;
    virtual void SetExec(UIoExec *ioContext, void *execContext) = 0;       /* loop thread */
    virtual void SetExecLocked(UIoExec *ioContext, void *execContext) = 0; /* any thread */
    virtual void CancelSetExec(UIoExec *const ioContext) = 0;
    virtual void ShutdownComplete(IShutdownHandler *shutdownHandler) = 0;

    /* Extensions (not in the SDK's IIoMux). Terminate makes Run return (the SDK's
     * examples call it); GetBackend names the I/O backend: "io_uring" or "epoll". */
    virtual void Terminate() = 0;
    virtual const char *GetBackend() = 0;
};

template <class IoExecContext> class UIoExecSubclass : public UIoExec
{
    void IoExec(void *execContext)
    {
        IoExec(static_cast<IoExecContext *>(execContext));
    }

  public:
    virtual void IoExec(IoExecContext *execContext) = 0;
};

class ITimer;
class UTimer
{
  public:
    virtual void TimerOnTimeout(ITimer *timer) = 0;
};

/* A one-shot timer of an IIoMux: Start(ms) fires TimerOnTimeout once, no earlier than ms
 * after the call (a running timer restarts). It may outlive its IIoMux. */
class ITimer
{
    friend struct RingsockSdkAccess;
    UTimer *owner;
    struct RingsockTimerLink *link;

  public:
    ITimer(IIoMux *ioMux, UTimer *owner);
    ITimer(const ITimer &) = delete;
    ITimer &operator=(const ITimer &) = delete;
    ~ITimer();

    void Start(unsigned timeoutMs);
    void Cancel();
    bool IsRunning() const;
};

template <class ITimerSubclass> class UTimerSubclass : public UTimer
{
    void TimerOnTimeout(ITimer *timer)
    {
        TimerOnTimeout(static_cast<ITimerSubclass *>(timer));
    }

  public:
    virtual void TimerOnTimeout(ITimerSubclass *timer) = 0;
};

#endif
