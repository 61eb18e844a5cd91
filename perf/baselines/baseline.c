// SPDX-License-Identifier: MIT
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "baseline.h"

#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

const char *baseline_name = "baseline";

void die(const char *what)
{
    fprintf(stderr, "%s: %s: %s\n", baseline_name, what, strerror(errno));
    exit(1);
}

static bool valid_port(const char *port) // "0".."65535"
{
    char *end;
    long n = strtol(port, &end, 10);
    return end != port && !*end && n >= 0 && n <= 65535;
}

void baseline_option(int opt, struct baseline_args *args, void (*usage)(FILE *))
{
    switch (opt) {
    case 'p':
        args->port = optarg;
        break;
    case 'a':
        args->addr = optarg;
        break;
    case 'h':
        usage(stdout);
        exit(0);
    default:
        usage(stderr);
        exit(2);
    }
}

void baseline_check_args(int argc, struct baseline_args *args, const char *default_port,
                         void (*usage)(FILE *))
{
    if (!args->addr)
        args->addr = "127.0.0.1";
    if (!args->port)
        args->port = default_port;
    if (optind != argc || !args->port) {
        usage(stderr);
        exit(2);
    }
    if (!valid_port(args->port)) {
        fprintf(stderr, "%s: bad port '%s'\n", baseline_name, args->port);
        exit(2);
    }
}

int baseline_listen(const char *addr, const char *port)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
        .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV,
    };
    struct addrinfo *res;
    int rc = getaddrinfo(addr, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "%s: %s:%s: %s\n", baseline_name, addr, port, gai_strerror(rc));
        exit(1);
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
        die("setsockopt(SO_REUSEADDR)");
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0)
        die("bind");
    freeaddrinfo(res);
    if (listen(fd, SOMAXCONN) < 0)
        die("listen");
    return fd;
}

int baseline_bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        die("getsockname");
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

void baseline_announce(int fd)
{
    printf("listening on %d\n", baseline_bound_port(fd));
    fflush(stdout);
}

int baseline_signalfd(void)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
        die("sigprocmask");
    signal(SIGPIPE, SIG_IGN);
    int fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        die("signalfd");
    return fd;
}
