/* WorkerInfo, states and health: names, copies and the availability rule. */
#include <stdlib.h>
#include <string.h>

#include "rbee/info.h"
#include "../util/util.h"

static const char *const status_names[] = {"starting", "ready", "busy", "stopping", "stopped"};
static const char *const health_names[] = {"healthy", "degraded", "unhealthy"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

const char *rbee_status_str(rbee_worker_status s) {
  return (unsigned)s < COUNT(status_names) ? status_names[s] : "unknown";
}

int rbee_status_parse(rbee_worker_status *out, const char *s) {
  for (size_t i = 0; s != NULL && i < COUNT(status_names); i++) {
    if (strcmp(s, status_names[i]) == 0) {
      *out = (rbee_worker_status)i;
      return 0;
    }
  }
  return rbee__error_set(RBEE_EPARSE,
                         "unknown status '%.40s' (starting, ready, busy, stopping, stopped)",
                         s ? s : "(null)");
}

const char *rbee_health_str(rbee_health h) {
  return (unsigned)h < COUNT(health_names) ? health_names[h] : "unknown";
}

int rbee_health_parse(rbee_health *out, const char *s) {
  for (size_t i = 0; s != NULL && i < COUNT(health_names); i++) {
    if (strcmp(s, health_names[i]) == 0) {
      *out = (rbee_health)i;
      return 0;
    }
  }
  return rbee__error_set(RBEE_EPARSE, "unknown health '%.40s' (healthy, degraded, unhealthy)",
                         s ? s : "(null)");
}

void rbee_worker_info_clear(rbee_worker_info *info) {
  if (info == NULL)
    return;
  free(info->id);
  free(info->model_id);
  free(info->device);
  free(info->implementation);
  free(info->version);
  memset(info, 0, sizeof *info);
}

int rbee_worker_info_set(rbee_worker_info *info, const char *id, const char *model_id,
                         const char *device, uint16_t port, rbee_worker_status status,
                         const char *implementation, const char *version) {
  if (info == NULL || id == NULL || model_id == NULL || device == NULL ||
      implementation == NULL || version == NULL)
    return rbee__error_set(RBEE_EINVAL, "worker info: every string field is required");
  rbee_worker_info n = {rbee__strdup(id), rbee__strdup(model_id), rbee__strdup(device),
                        port, status, rbee__strdup(implementation), rbee__strdup(version)};
  if (!n.id || !n.model_id || !n.device || !n.implementation || !n.version) {
    rbee_worker_info_clear(&n);
    return rbee__error_set(RBEE_ENOMEM, NULL);
  }
  *info = n;
  return 0;
}

int rbee_worker_info_copy(rbee_worker_info *dst, const rbee_worker_info *src) {
  if (dst == NULL || src == NULL)
    return rbee__error_set(RBEE_EINVAL, "worker info: NULL argument");
  return rbee_worker_info_set(dst, src->id, src->model_id, src->device, src->port,
                              src->status, src->implementation, src->version);
}

int rbee_worker_info_is_available(const rbee_worker_info *info) {
  return info != NULL &&
         (info->status == RBEE_STATUS_READY || info->status == RBEE_STATUS_BUSY);
}
