/* seccomp-run ERRNO PROGRAM [ARG...]: runs PROGRAM with io_uring blocked the way a
 * container's seccomp profile blocks it: io_uring_setup, io_uring_enter and
 * io_uring_register fail with ERRNO (EPERM: Docker's default profile; ENOSYS: a profile
 * written before io_uring, or a kernel without it). The filter outlives exec. */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define AUDIT_ARCH_HERE AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define AUDIT_ARCH_HERE AUDIT_ARCH_AARCH64
#else
#error "seccomp-run: add this architecture's AUDIT_ARCH"
#endif

int main(int argc, char **argv)
{
    int err = argc > 2 ? (strcmp(argv[1], "EPERM") == 0    ? EPERM
                          : strcmp(argv[1], "ENOSYS") == 0 ? ENOSYS
                                                           : 0)
                       : 0;
    if (!err) {
        fprintf(stderr, "usage: seccomp-run EPERM|ENOSYS PROGRAM [ARG...]\n");
        return 2;
    }
    unsigned ret_err = SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA);
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_HERE, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_register, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, ret_err),
    };
    struct sock_fprog prog = {.len = sizeof(f) / sizeof(f[0]), .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        perror("seccomp-run: installing the filter");
        return 2;
    }
    if (syscall(__NR_io_uring_setup, 4, NULL) != -1 || errno != err) {
        fprintf(stderr, "seccomp-run: the filter does not block io_uring_setup\n");
        return 2;
    }
    execvp(argv[2], argv + 2);
    perror("seccomp-run: exec");
    return 127;
}
