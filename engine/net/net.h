/* net.h: the io_uring HTTP server: listeners, one ring per worker thread,
 * connections, timeouts, the connection cap and graceful drain.
 *
 * Each worker thread owns a ring, its own SO_REUSEPORT listening socket (so
 * the kernel spreads connections), a provided-buffer ring for receives and
 * every connection it accepted: no state is shared between workers except
 * the process-wide connection count (an atomic add per accept and close,
 * never per request). The admin listener gets a worker of its own.
 */
#ifndef RECD_NET_H
#define RECD_NET_H

#include <sys/socket.h>
#include "core/srv.h"

struct net_server;

/* Parse "host:port", "[v6]:port" or "unix:/path". 0 or -EINVAL with err. */
int net_parse_addr(const char *text, struct sockaddr_storage *ss, socklen_t *len, char *err, size_t errlen);
/* Human form of a bound address ("127.0.0.1:8080", "[::1]:80", "unix:/p"). */
void net_format_addr(const struct sockaddr_storage *ss, socklen_t len, char *out, size_t outlen);

/* Bind the listeners and start the workers (srv->n_workers request
 * workers plus one admin worker when admin_listen is set). Fills
 * srv->bound_addr / bound_admin. -errno with err on failure. */
int net_start(struct recd_server *srv, struct net_server **out, char *err, size_t errlen);
/* Tell every worker to drain: stop accepting, finish what is in flight
 * (responses carry Connection: close), close idle connections. Safe to
 * call from the control thread at any time after net_start. */
void net_begin_drain(struct net_server *ns);
/* Wait for every worker to finish (they give up on stragglers after
 * drain_timeout_ms). */
void net_join(struct net_server *ns);
/* Join if not done, then close the listeners and wake-up fds and free.
 * Call after the updater stopped: it may still write the workers' fds. */
void net_free(struct net_server *ns);

#endif
