/* JSON of worker info, heartbeat envelope and queen ack (cJSON). Parsing is
 * strict on the contract's fields and tolerant of unknown ones. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rbee/heartbeat.h"
#include "rbee/info.h"
#include "rbee/timestamp.h"
#include "../util/util.h"

cJSON *rbee_worker_info_to_cjson(const rbee_worker_info *info) {
  if (info == NULL || !info->id || !info->model_id || !info->device ||
      !info->implementation || !info->version)
    return NULL;
  cJSON *o = cJSON_CreateObject();
  if (o == NULL)
    return NULL;
  /* Contract order: id, model_id, device, port, status, implementation, version. */
  if (!cJSON_AddStringToObject(o, "id", info->id) ||
      !cJSON_AddStringToObject(o, "model_id", info->model_id) ||
      !cJSON_AddStringToObject(o, "device", info->device) ||
      !cJSON_AddNumberToObject(o, "port", info->port) ||
      !cJSON_AddStringToObject(o, "status", rbee_status_str(info->status)) ||
      !cJSON_AddStringToObject(o, "implementation", info->implementation) ||
      !cJSON_AddStringToObject(o, "version", info->version)) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

/* Print @p o compactly into a malloc'd string owned by the caller. */
static int print_to(char **out, cJSON *o) {
  char *s = o ? cJSON_PrintUnformatted(o) : NULL;
  cJSON_Delete(o);
  if (s == NULL)
    return rbee__error_set(RBEE_ENOMEM, NULL);
  /* cJSON's allocator is malloc here, but hand out memory from ours. */
  *out = rbee__strdup(s);
  cJSON_free(s);
  return *out ? 0 : rbee__error_set(RBEE_ENOMEM, NULL);
}

int rbee_worker_info_to_json(char **out, const rbee_worker_info *info) {
  if (out == NULL || info == NULL || !info->id || !info->model_id || !info->device ||
      !info->implementation || !info->version)
    return rbee__error_set(RBEE_EINVAL, "worker info: missing field");
  return print_to(out, rbee_worker_info_to_cjson(info));
}

/* A required string member: present, a string, valid UTF-8. */
static int get_string(const cJSON *obj, const char *what, const char *name, char **out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
  if (v == NULL)
    return rbee__error_set(RBEE_EPARSE, "%s: missing field '%s'", what, name);
  if (!cJSON_IsString(v) || v->valuestring == NULL)
    return rbee__error_set(RBEE_EPARSE, "%s: field '%s' must be a string", what, name);
  if (!rbee__utf8_valid(v->valuestring, strlen(v->valuestring)))
    return rbee__error_set(RBEE_EPARSE, "%s: field '%s' is not valid UTF-8", what, name);
  if ((*out = rbee__strdup(v->valuestring)) == NULL)
    return rbee__error_set(RBEE_ENOMEM, NULL);
  return 0;
}

int rbee_worker_info_from_cjson(rbee_worker_info *out, const cJSON *obj) {
  static const char *what = "worker info";
  if (out == NULL)
    return rbee__error_set(RBEE_EINVAL, "worker info: NULL output");
  memset(out, 0, sizeof *out);
  if (!cJSON_IsObject(obj))
    return rbee__error_set(RBEE_EPARSE, "worker info: expected a JSON object");
  rbee_worker_info n = RBEE_WORKER_INFO_INIT;
  char *status = NULL;
  int rc;
  if ((rc = get_string(obj, what, "id", &n.id)) ||
      (rc = get_string(obj, what, "model_id", &n.model_id)) ||
      (rc = get_string(obj, what, "device", &n.device)))
    goto out;
  const cJSON *port = cJSON_GetObjectItemCaseSensitive(obj, "port");
  if (port == NULL) {
    rc = rbee__error_set(RBEE_EPARSE, "worker info: missing field 'port'");
    goto out;
  }
  double p = port->valuedouble;
  if (!cJSON_IsNumber(port) || p != floor(p)) {
    rc = rbee__error_set(RBEE_EPARSE, "worker info: field 'port' must be an integer");
    goto out;
  }
  if (p < 1 || p > 65535) {
    rc = rbee__error_set(RBEE_EPARSE, "worker info: port %.0f outside 1..65535", p);
    goto out;
  }
  n.port = (uint16_t)p;
  if ((rc = get_string(obj, what, "status", &status)))
    goto out;
  if ((rc = rbee_status_parse(&n.status, status)))
    goto out;
  if ((rc = get_string(obj, what, "implementation", &n.implementation)) ||
      (rc = get_string(obj, what, "version", &n.version)))
    goto out;
  *out = n;
  memset(&n, 0, sizeof n);
out:
  free(status);
  rbee_worker_info_clear(&n);
  return rc;
}

/* Parse @p json as an object; the message names @p what. */
static int parse_object(cJSON **out, const char *what, const char *json, size_t len) {
  if (json == NULL)
    return rbee__error_set(RBEE_EINVAL, "%s: no input", what);
  const char *end = NULL;
  cJSON *o = cJSON_ParseWithLengthOpts(json, len, &end, 0);
  if (o == NULL)
    return rbee__error_set(RBEE_EPARSE, "%s: invalid JSON near byte %ld", what,
                           end ? (long)(end - json) : 0L);
  /* Only whitespace may follow the value. */
  for (const char *p = end; p && p < json + len && *p; p++) {
    if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
      cJSON_Delete(o);
      return rbee__error_set(RBEE_EPARSE, "%s: trailing data after the JSON value", what);
    }
  }
  if (!cJSON_IsObject(o)) {
    cJSON_Delete(o);
    return rbee__error_set(RBEE_EPARSE, "%s: expected a JSON object", what);
  }
  *out = o;
  return 0;
}

int rbee_worker_info_from_json(rbee_worker_info *out, const char *json, size_t len) {
  cJSON *o = NULL;
  if (out != NULL)
    memset(out, 0, sizeof *out);
  int rc = parse_object(&o, "worker info", json, len);
  if (rc == 0)
    rc = rbee_worker_info_from_cjson(out, o);
  cJSON_Delete(o);
  return rc;
}

int rbee_heartbeat_to_json(char **out, const rbee_worker_info *info, const cJSON *extra,
                           int64_t time_us) {
  if (out == NULL)
    return rbee__error_set(RBEE_EINVAL, "heartbeat: NULL output");
  if (extra != NULL && !cJSON_IsObject(extra))
    return rbee__error_set(RBEE_EINVAL, "heartbeat: extra must be a JSON object");
  char ts[40];
  int rc = rbee_time_format(ts, sizeof ts, time_us);
  if (rc)
    return rc;
  cJSON *w = rbee_worker_info_to_cjson(info);
  if (w == NULL)
    return rbee__error_set(RBEE_EINVAL, "heartbeat: worker info incomplete");
  cJSON *o = cJSON_CreateObject();
  if (o == NULL || !cJSON_AddItemToObject(o, "worker", w)) {
    cJSON_Delete(w);
    cJSON_Delete(o);
    return rbee__error_set(RBEE_ENOMEM, NULL);
  }
  if (!cJSON_AddStringToObject(o, "timestamp", ts))
    goto oom;
  for (const cJSON *e = extra ? extra->child : NULL; e != NULL; e = e->next) {
    if (strcmp(e->string, "worker") == 0 || strcmp(e->string, "timestamp") == 0)
      continue; /* the contract's fields win */
    cJSON *dup = cJSON_Duplicate(e, 1);
    if (dup == NULL || !cJSON_AddItemToObject(o, e->string, dup)) {
      cJSON_Delete(dup);
      goto oom;
    }
  }
  return print_to(out, o);
oom:
  cJSON_Delete(o);
  return rbee__error_set(RBEE_ENOMEM, NULL);
}

int rbee_heartbeat_from_json(rbee_worker_info *info, int64_t *time_us, const char *json,
                             size_t len) {
  cJSON *o = NULL;
  if (info != NULL)
    memset(info, 0, sizeof *info);
  int rc = parse_object(&o, "heartbeat", json, len);
  if (rc)
    return rc;
  const cJSON *ts = cJSON_GetObjectItemCaseSensitive(o, "timestamp");
  const cJSON *w = cJSON_GetObjectItemCaseSensitive(o, "worker");
  int64_t t = 0;
  if (w == NULL)
    rc = rbee__error_set(RBEE_EPARSE, "heartbeat: missing field 'worker'");
  else if (ts == NULL)
    rc = rbee__error_set(RBEE_EPARSE, "heartbeat: missing field 'timestamp'");
  else if (!cJSON_IsString(ts))
    rc = rbee__error_set(RBEE_EPARSE, "heartbeat: field 'timestamp' must be a string");
  else if ((rc = rbee_time_parse(&t, ts->valuestring)) == 0)
    rc = rbee_worker_info_from_cjson(info, w);
  if (rc == 0 && time_us != NULL)
    *time_us = t;
  cJSON_Delete(o);
  return rc;
}

int rbee_queen_ack_to_json(char **out, const rbee_queen_ack *ack) {
  if (out == NULL || ack == NULL || ack->status == NULL)
    return rbee__error_set(RBEE_EINVAL, "queen ack: status required");
  cJSON *o = cJSON_CreateObject();
  if (o == NULL || !cJSON_AddStringToObject(o, "status", ack->status) ||
      (ack->message && !cJSON_AddStringToObject(o, "message", ack->message))) {
    cJSON_Delete(o);
    return rbee__error_set(RBEE_ENOMEM, NULL);
  }
  return print_to(out, o);
}

int rbee_queen_ack_from_json(rbee_queen_ack *out, const char *json, size_t len) {
  cJSON *o = NULL;
  if (out == NULL)
    return rbee__error_set(RBEE_EINVAL, "queen ack: NULL output");
  memset(out, 0, sizeof *out);
  int rc = parse_object(&o, "queen ack", json, len);
  if (rc)
    return rc;
  rbee_queen_ack n = {NULL, NULL};
  if ((rc = get_string(o, "queen ack", "status", &n.status)) == 0 &&
      cJSON_GetObjectItemCaseSensitive(o, "message") != NULL &&
      !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "message")))
    rc = get_string(o, "queen ack", "message", &n.message);
  if (rc == 0)
    *out = n;
  else
    rbee_queen_ack_clear(&n);
  cJSON_Delete(o);
  return rc;
}

void rbee_queen_ack_clear(rbee_queen_ack *ack) {
  if (ack == NULL)
    return;
  free(ack->status);
  free(ack->message);
  ack->status = ack->message = NULL;
}
