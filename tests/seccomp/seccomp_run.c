/* seccomp-run ERRNO PROGRAM [ARG...]: runs PROGRAM with io_uring blocked the way a
 * container's seccomp profile blocks it: io_uring_setup, io_uring_enter and
 * io_uring_register fail with ERRNO (EPERM: Docker's default profile; ENOSYS: a profile
 * written before io_uring, or a kernel without it). The filter outlives exec. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "block_io_uring.h"

#ifndef BLOCK_IO_URING_ARCH
#error "seccomp-run: add this architecture's AUDIT_ARCH to block_io_uring.h"
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
    if (block_io_uring(err) != 0) {
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
