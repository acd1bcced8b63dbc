/* A raw-socket client for a worker's job streams, for tests that must know
 * a job was accepted before they act (send a signal, cancel) and then read
 * the stream to its end: POST with Accept: text/event-stream, wait for the
 * status line and headers, later read the (chunked) body to EOF. */
#ifndef RBEE_TEST_WORKER_STREAM_H
#define RBEE_TEST_WORKER_STREAM_H

#include <stddef.h>

typedef struct worker_stream {
  int fd;
  int status; /* HTTP status of the answer, 0 before the headers */
  int chunked;
  char job_id[64]; /* from X-Job-Id, "" if absent */
  char *raw;       /* everything read so far */
  size_t raw_len;
  size_t body_off; /* where the body starts in raw */
  char *body;      /* the decoded body, after worker_stream_finish */
  size_t body_len;
} worker_stream;

/* Connect, POST @p json to /v1/jobs asking for the stream, and wait up to
 * @p timeout_ms for the headers. 0 with s->status set (200 means the job
 * was accepted); -1 if no answer came. */
int worker_stream_post(worker_stream *s, int port, const char *json, const char *token,
                       int timeout_ms);
/* GET /v1/jobs/{id}/stream, same contract. */
int worker_stream_get(worker_stream *s, int port, const char *job_id, int timeout_ms);
/* Read until the server closes or a terminal marker arrived (and the
 * chunked body ended), up to @p timeout_ms; decode the body. 0, or -1 on
 * timeout (what came is still decoded). */
int worker_stream_finish(worker_stream *s, int timeout_ms);
/* Terminal markers in the decoded body ("data: [DONE]" ...), and the last
 * one's text ("[DONE]", "[CANCELLED]", "[ERROR] ..."): into @p last. */
int worker_stream_terminals(const worker_stream *s, char *last, size_t len);
void worker_stream_close(worker_stream *s);

#endif
