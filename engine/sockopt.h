/* Descriptor-level helpers every socket type uses: QoS marking and local addresses. */
#ifndef RS_SOCKOPT_H
#define RS_SOCKOPT_H

#include <stdint.h>
#include <sys/socket.h>

#include "ringsock/socket.h"

typedef void (*rs_addr_format_fn)(const struct sockaddr *sa, socklen_t len, char *out, size_t size,
                                  uint16_t *port);

/* DSCP through IP_TOS / IPV6_TCLASS (whichever the socket's family has) and
 * SO_PRIORITY. qos < 0: leave the socket as it is. */
void rs_fd_set_qos(int fd, int qos);
/* The descriptor's local address as text and port; "" and 0 when it has none. */
void rs_fd_local_address(int fd, rs_addr_format_fn format, char *out, unsigned size,
                         uint16_t *port);
/* Binds with the options Bind and BindReuse promise: SO_REUSEADDR + SO_REUSEPORT when
 * reuse is asked, dual-stack for IPv6. Returns 0 or an errno. */
int rs_fd_bind(int fd, const struct sockaddr *sa, socklen_t len, bool reuse);

#endif
