// SPDX-License-Identifier: MIT
// What the baselines built from this file (epoll-echo, uring-echo, openssl-tls-echo) share:
// their common options, the listening socket, its port, signals through a signalfd, and how
// they die.
#ifndef RINGSOCK_PERF_BASELINE_H
#define RINGSOCK_PERF_BASELINE_H

#include <stdbool.h>
#include <stdio.h>

extern const char *baseline_name; // the program's name, for messages; main sets it

// Prints "NAME: WHAT: strerror(errno)" and exits with status 1.
__attribute__((noreturn)) void die(const char *what);
// The options every baseline takes, for its getopt_long table and short-option string.
#define BASELINE_LONG_OPTIONS                                                                      \
    {"port", required_argument, NULL, 'p'}, {"addr", required_argument, NULL, 'a'},                \
    {                                                                                              \
        "help", no_argument, NULL, 'h'                                                             \
    }
#define BASELINE_SHORT_OPTIONS "p:a:h"
struct baseline_args {
    const char *addr; // --addr, default 127.0.0.1
    const char *port; // --port; NULL until given
};
// Handles an option getopt_long returned that is not the program's own: --port and --addr
// fill ARGS; --help prints USAGE on stdout and exits 0; anything else prints it on stderr and
// exits 2.
void baseline_option(int opt, struct baseline_args *args, void (*usage)(FILE *));
// After getopt_long: exits 2 (with USAGE on stderr) on arguments left over, a port that is
// missing (DEFAULT_PORT NULL) or not valid; a missing port becomes DEFAULT_PORT.
void baseline_check_args(int argc, struct baseline_args *args, const char *default_port,
                         void (*usage)(FILE *));
// A non-blocking listening TCP socket on ADDR:PORT (numeric; SO_REUSEADDR, SOMAXCONN);
// exits on failure.
int baseline_listen(const char *addr, const char *port);
// The port FD is bound to (for --port 0).
int baseline_bound_port(int fd);
// Prints "listening on PORT" (FD's port) on stdout and flushes it: what scripts wait for.
void baseline_announce(int fd);
// Blocks SIGINT and SIGTERM and returns a non-blocking signalfd that reports them; SIGPIPE
// is ignored. Signals through a signalfd: no race between a flag and epoll_wait.
int baseline_signalfd(void);

#endif
