/* Holding a streaming connection's read side: evhttp 2.1 ends a reply
 * when it reads the client's EOF, but a client that half-closes (shutdown
 * SHUT_WR) after a whole request is owed its stream. While held, nothing
 * is read (one byte of ours in the input buffer at a read watermark of 1
 * suspends reading). A watch of our own on the socket sees the client's
 * end of sending (then @p on_fin: the stream writes something, which a
 * client that closed altogether answers with a reset) and, by peeks after
 * that, a reset (then evhttp may read it, and closes). Loop thread only. */
#ifndef RBEE_HTTP_READ_HOLD_H
#define RBEE_HTTP_READ_HOLD_H

struct event_base;
struct evhttp_request;

typedef struct rbee__read_hold rbee__read_hold;

/* After evhttp_send_reply_start. NULL (nothing held) on out of memory. */
rbee__read_hold *rbee__read_hold_new(struct event_base *base, struct evhttp_request *req,
                                     void (*on_fin)(void *arg), void *arg);
/* Once the reply has been written or the connection is closing (its
 * bufferevent still alive). Accepts NULL. */
void rbee__read_hold_free(rbee__read_hold *h);

#endif
