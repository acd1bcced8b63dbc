/* JSON replies and the contract's error object. */
#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "http_internal.h"

static const char *reason_phrase(int status) {
  switch (status) {
  case 200: return "OK";
  case 202: return "Accepted";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 409: return "Conflict";
  case 413: return "Payload Too Large";
  case 429: return "Too Many Requests";
  case 500: return "Internal Server Error";
  case 503: return "Service Unavailable";
  default: return "";
  }
}

void rbee__http_reply_json(struct evhttp_request *req, int status, cJSON *body) {
  struct evbuffer *buf = evbuffer_new();
  char *text = body ? cJSON_PrintUnformatted(body) : NULL;
  cJSON_Delete(body);
  if (buf == NULL || text == NULL) {
    cJSON_free(text);
    if (buf)
      evbuffer_free(buf);
    evhttp_send_error(req, 500, "out of memory");
    return;
  }
  evbuffer_add(buf, text, strlen(text));
  evbuffer_add(buf, "\n", 1);
  cJSON_free(text);
  struct evkeyvalq *h = evhttp_request_get_output_headers(req);
  evhttp_add_header(h, "Content-Type", "application/json");
  evhttp_add_header(h, "Cache-Control", "no-store");
  rbee__http_send(req, status, buf);
  evbuffer_free(buf);
}

void rbee__http_send(struct evhttp_request *req, int status, struct evbuffer *body) {
  if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
    /* HEAD: the headers a GET would get, Content-Length included, and no
     * body (evhttp would send it, desyncing a pipelining client). */
    char len[32];
    snprintf(len, sizeof len, "%zu", body ? evbuffer_get_length(body) : (size_t)0);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_remove_header(h, "Content-Length");
    evhttp_add_header(h, "Content-Length", len);
    evhttp_send_reply(req, status, reason_phrase(status), NULL);
    return;
  }
  evhttp_send_reply(req, status, reason_phrase(status), body);
}

void rbee__http_reply_error(struct evhttp_request *req, int status, const char *code,
                            const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  cJSON *o = cJSON_CreateObject();
  cJSON *e = cJSON_AddObjectToObject(o, "error");
  cJSON_AddStringToObject(e, "code", code);
  cJSON_AddStringToObject(e, "message", msg);
  rbee__http_reply_json(req, status, o);
}
