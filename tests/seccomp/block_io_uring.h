/* Blocks io_uring for the calling process and what it executes, as a container's seccomp
 * profile does: io_uring_setup, io_uring_enter and io_uring_register fail with err (EPERM:
 * Docker's default profile; ENOSYS: a profile written before io_uring, or a kernel without
 * it). For seccomp-run and test_reactor. BLOCK_IO_URING_ARCH is defined where it works. */
#ifndef RS_TEST_BLOCK_IO_URING_H
#define RS_TEST_BLOCK_IO_URING_H

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#if defined(__x86_64__)
#define BLOCK_IO_URING_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define BLOCK_IO_URING_ARCH AUDIT_ARCH_AARCH64
#endif

#ifdef BLOCK_IO_URING_ARCH
/* 0, or -1 with errno when the filter cannot be installed. */
static inline int block_io_uring(int err)
{
    unsigned ret_err = SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA);
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, BLOCK_IO_URING_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_register, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, ret_err),
    };
    struct sock_fprog prog = {.len = sizeof(f) / sizeof(f[0]), .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0 ? -1 : 0;
}
#endif

#endif
