/* Plain UDP sockets, for the provider (dtls/udp_provider.c) and the DTLS layer that
 * runs over them. */
#ifndef RS_UDP_H
#define RS_UDP_H

#include "ringsock/socket.h"

ISocket *rs_udp_create_socket(IIoMux *iomux, USocket *user, IInstanceLog *log, bool useIPv6);

#endif
