// SPDX-License-Identifier: MIT
// What the epoll baselines (epoll-echo, openssl-tls-echo) share: the listening socket, its
// port, signals through a signalfd, and how they die.
#ifndef RINGSOCK_PERF_BASELINE_H
#define RINGSOCK_PERF_BASELINE_H

#include <stdbool.h>

extern const char *baseline_name; // the program's name, for messages; main sets it

// Prints "NAME: WHAT: strerror(errno)" and exits with status 1.
void die(const char *what);
// "0".."65535"
bool baseline_valid_port(const char *port);
// A non-blocking listening TCP socket on ADDR:PORT (numeric; SO_REUSEADDR, SOMAXCONN);
// exits on failure.
int baseline_listen(const char *addr, const char *port);
// The port FD is bound to (for --port 0).
int baseline_bound_port(int fd);
// Blocks SIGINT and SIGTERM and returns a non-blocking signalfd that reports them; SIGPIPE
// is ignored. Signals through a signalfd: no race between a flag and epoll_wait.
int baseline_signalfd(void);

#endif
