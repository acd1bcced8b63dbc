/* The queen's host name, looked up one lookup at a time, off the loop.
 * curl's threaded resolver starts a thread per transfer and, with
 * CURLOPT_QUICK_EXIT, leaves it running when the transfer times out: with
 * a resolver slower than the beat period the threads piled up. Here one
 * heartbeat has at most one lookup running (getaddrinfo on a thread of
 * its own); a beat that needs the address waits for that lookup instead
 * of starting another, the answer is kept for a while, and curl gets it
 * through CURLOPT_RESOLVE (host:port:addr), so curl itself never resolves
 * the name and TLS still checks the host name. Loop thread only. */
#ifndef RBEE_HEARTBEAT_RESOLVE_H
#define RBEE_HEARTBEAT_RESOLVE_H

#include "../util/util.h"
#include "curl_lib.h"

struct event_base;
typedef struct rbee__hbres rbee__hbres;

/* How long a looked-up address is used before the next lookup. */
#define RBEE__HBRES_KEEP_MS 60000

/* A lookup ended (on the loop): 0, or a negative code with @p err saying
 * why. The callback may free the resolver. */
typedef void (*rbee__hbres_cb)(int rc, const char *err, void *userdata);

/* A resolver for the host of @p url; *out is NULL (and 0 returned) when
 * the host is a numeric address, which needs no lookup. */
RBEE_INTERNAL int rbee__hbres_new(rbee__hbres **out, struct event_base *base, const char *url,
                                  rbee__hbres_cb cb, void *userdata);
/* 0 with *list a new CURLOPT_RESOLVE list (the caller frees it) when an
 * address is at hand; RBEE__HBRES_PENDING when a lookup runs (started now
 * or earlier): the callback comes when it ends; else a negative code. */
#define RBEE__HBRES_PENDING 1
RBEE_INTERNAL int rbee__hbres_get(rbee__hbres *r, struct curl_slist **list);
/* Drop the kept address (the queen did not take a connection there). */
RBEE_INTERNAL void rbee__hbres_forget(rbee__hbres *r);
/* Never waits: a lookup in progress finishes alone on its thread. */
RBEE_INTERNAL void rbee__hbres_free(rbee__hbres *r);

#endif
