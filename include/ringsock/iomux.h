/* ringsock — IIoMux (the event loop), ITimer, UIoExec and shutdown handlers. */
#ifndef RINGSOCK_IOMUX_H
#define RINGSOCK_IOMUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct IIoMux IIoMux;
typedef struct ITimer ITimer;

typedef struct UTimer {
    const struct UTimerVtbl *vtbl;
} UTimer;
struct UTimerVtbl {
    void (*TimerOnTimeout)(UTimer *self, ITimer *timer);
};

/* App-embedded; the engine keeps its queue entries elsewhere, so the struct holds
 * nothing but the table. */
typedef struct UIoExec {
    const struct UIoExecVtbl *vtbl;
} UIoExec;
struct UIoExecVtbl {
    void (*IoExec)(UIoExec *self, void *execContext);
};

typedef struct IShutdownHandler {
    const struct IShutdownHandlerVtbl *vtbl;
} IShutdownHandler;
struct IShutdownHandlerVtbl {
    void (*Shutdown)(IShutdownHandler *self);
    void (*ShutdownTimeout)(IShutdownHandler *self);
};

/* NULL, with the reason logged on stderr, when io_uring cannot be set up. */
IIoMux *IIoMux_Create(void);
void IIoMux_Delete(IIoMux *iomux);
void IIoMux_Run(IIoMux *iomux); /* returns after IIoMux_Terminate */
void IIoMux_Terminate(IIoMux *iomux);
void IIoMux_SetExec(IIoMux *iomux, UIoExec *exec, void *execContext);       /* loop thread */
void IIoMux_SetExecLocked(IIoMux *iomux, UIoExec *exec, void *execContext); /* any thread */
void IIoMux_CancelSetExec(IIoMux *iomux, UIoExec *exec);
void IIoMux_RegisterShutdownHandler(IIoMux *iomux, IShutdownHandler *handler); /* SIGINT/SIGTERM */
void IIoMux_ShutdownComplete(IIoMux *iomux, IShutdownHandler *handler);

/* Extension: the I/O backend this IIoMux runs on, "io_uring" or "epoll" (IIoMux_Create
 * falls back to epoll where io_uring cannot be set up; RINGSOCK_BACKEND forces either). */
const char *IIoMux_GetBackend(IIoMux *iomux);

ITimer *ITimer_Create(IIoMux *iomux, UTimer *owner);
void ITimer_Delete(ITimer *timer);
void ITimer_Start(ITimer *timer, unsigned timeoutMs); /* restarts a running timer */
void ITimer_Cancel(ITimer *timer);
bool ITimer_IsRunning(const ITimer *timer);

#ifdef __cplusplus
}
#endif
#endif
