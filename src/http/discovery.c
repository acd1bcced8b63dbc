/* GET /: a small discovery document. rbee-hive polls it right after it
 * spawns a worker (to learn the worker is up), so it is open like /health
 * and answers from the snapshot, whatever the worker's state. */
#include <cjson/cJSON.h>
#include <event2/http.h>

#include "http_internal.h"

void rbee__http_discovery(rbee__http *h, struct evhttp_request *req) {
  rbee__snapshot s;
  h->cfg.snapshot(&s, h->cfg.userdata);
  cJSON *o = cJSON_CreateObject();
  if (o == NULL) {
    rbee__http_reply_error(req, 500, "INTERNAL", "out of memory");
    return;
  }
  if (s.info != NULL && s.info->id != NULL)
    cJSON_AddStringToObject(o, "worker_id", s.info->id);
  cJSON_AddStringToObject(o, "worker_type", s.worker_type ? s.worker_type : "inference");
  if (s.info != NULL && s.info->model_id != NULL)
    cJSON_AddStringToObject(o, "model", s.info->model_id);
  cJSON_AddStringToObject(o, "status", rbee_status_str(s.status));
  cJSON_AddStringToObject(o, "health", rbee_health_str(s.health));
  cJSON *u = cJSON_AddObjectToObject(o, "urls");
  if (u != NULL) {
    cJSON_AddStringToObject(u, "health", "/health");
    cJSON_AddStringToObject(u, "ready", "/ready");
    cJSON_AddStringToObject(u, "info", "/info");
    cJSON_AddStringToObject(u, "jobs", "/v1/jobs");
    cJSON_AddStringToObject(u, "metrics", "/metrics");
  }
  rbee__http_reply_json(req, 200, o);
}
