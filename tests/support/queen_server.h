/* A real test queen: an evhttp server on 127.0.0.1 with a kernel-chosen
 * port, in its own thread, that answers POSTs the way a queen would or
 * the way a broken one does, and records every request it gets. Used by
 * the heartbeat, lifecycle and sample tests.
 *
 * Threading: every function may be called from any thread; the server
 * runs its own event_base on its own thread. */
#ifndef RBEE_TEST_QUEEN_SERVER_H
#define RBEE_TEST_QUEEN_SERVER_H

#include <stddef.h>
#include <stdint.h>

typedef enum queen_mode {
  QUEEN_OK = 0,  /* 200 {"status":"ok","message":"heartbeat received"} */
  QUEEN_500,     /* 500 with a JSON error body */
  QUEEN_HANG,    /* accept, read the request, never answer (the
                    connection stays open until the server stops or
                    refuses) */
  QUEEN_GARBAGE, /* 200 with a body that is not an ack */
  QUEEN_REFUSE,  /* the port is closed: connections are refused (the port
                    stays reserved, so the same URL works again later) */
  QUEEN_SLOW,    /* answer 200 ok, but only after queen_server_set_slow_ms */
  QUEEN_404,     /* 404, as today's queen (no heartbeat route) does */
  QUEEN_405      /* 405 Method Not Allowed (a route that takes no POST) */
} queen_mode;

/* One recorded request: a deep copy, owned by the caller. */
typedef struct queen_request {
  char *method; /* "POST" */
  char *uri;    /* "/v1/worker-heartbeat" */
  size_t nheaders;
  char **names, **values; /* in arrival order */
  char *body;             /* NUL-terminated */
  size_t body_len;
  unsigned peer_port;     /* the client's port: same port = same connection */
  int64_t mono_us;        /* arrival, CLOCK_MONOTONIC */
  queen_mode mode;        /* how it was answered */
} queen_request;

typedef struct queen_server queen_server;

/* Start a queen answering in @p mode; NULL (and a line on stderr) when it
 * cannot listen. */
queen_server *queen_server_start(queen_mode mode);
/* Stop the thread, close every connection, free. Accepts NULL. */
void queen_server_stop(queen_server *q);

unsigned queen_server_port(const queen_server *q);
/* "http://127.0.0.1:<port>" (no trailing slash). */
const char *queen_server_url(const queen_server *q);

/* Switch mode; returns once the server applies it. Entering
 * QUEEN_REFUSE also closes every open connection, as a queen that went
 * down would. */
void queen_server_set_mode(queen_server *q, queen_mode mode);
void queen_server_set_slow_ms(queen_server *q, unsigned ms);
/* Require "Authorization: Bearer <token>" (NULL: none, the default): a
 * request without it is answered 401, as a queen with a token does. */
void queen_server_set_token(queen_server *q, const char *token);

/* Requests received so far. */
size_t queen_server_count(queen_server *q);
/* Block until at least @p n requests arrived: 0, or -1 after @p timeout_ms. */
int queen_server_wait(queen_server *q, size_t n, int timeout_ms);
/* A copy of request @p i (0-based), NULL when out of range. */
queen_request *queen_server_get(queen_server *q, size_t i);
void queen_request_free(queen_request *r);
/* The first value of header @p name (case-insensitive), NULL if absent. */
const char *queen_request_header(const queen_request *r, const char *name);

#endif
