/* libcurl's multi-socket interface driven by a libevent loop: curl tells
 * which sockets to watch and when to wake it (CURLMOPT_SOCKETFUNCTION,
 * CURLMOPT_TIMERFUNCTION); libevent watches and calls
 * curl_multi_socket_action(). Nothing here blocks the loop. The multi
 * handle keeps the connection cache, so connections are reused between
 * transfers of the same easy handle. Loop thread only. */
#ifndef RBEE_HEARTBEAT_CURL_EVENT_H
#define RBEE_HEARTBEAT_CURL_EVENT_H

#include "../util/util.h"
#include "curl_lib.h"

struct event_base;
typedef struct rbee__curlev rbee__curlev;

/* A transfer ended; @p easy is already removed from the multi handle.
 * The callback may add a transfer or free the whole rbee__curlev. */
typedef void (*rbee__curlev_done_cb)(CURL *easy, CURLcode result, void *userdata);

RBEE_INTERNAL int rbee__curlev_new(rbee__curlev **out, struct event_base *base,
                                   rbee__curlev_done_cb done, void *userdata);
/* Start a transfer set up on @p easy; it runs as the loop turns. */
RBEE_INTERNAL int rbee__curlev_add(rbee__curlev *ce, CURL *easy);
/* Abandon a transfer in flight (its connection is closed); no callback. */
RBEE_INTERNAL void rbee__curlev_remove(rbee__curlev *ce, CURL *easy);
/* Free everything (transfers must have been removed). Accepts NULL. */
RBEE_INTERNAL void rbee__curlev_free(rbee__curlev *ce);

#endif
