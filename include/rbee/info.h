/* Worker info: the worker-contract record a worker reports about itself,
 * its states, its health, and their JSON (the info object and the queen's
 * acknowledgement; the heartbeat envelope is in heartbeat.h, timestamps in
 * timestamp.h). See docs/protocol.md. */
#ifndef RBEE_INFO_H
#define RBEE_INFO_H

#include <stddef.h>
#include <stdint.h>

#include "export.h"

struct cJSON;

/** Lifecycle status, serialized lowercase exactly as named. */
typedef enum rbee_worker_status {
  RBEE_STATUS_STARTING = 0, /**< device verified, on_init running */
  RBEE_STATUS_READY,        /**< a job slot is free */
  RBEE_STATUS_BUSY,         /**< every slot taken */
  RBEE_STATUS_STOPPING,     /**< draining after SIGTERM/SIGINT */
  RBEE_STATUS_STOPPED       /**< sent in the last heartbeat */
} rbee_worker_status;

/** Health, kept apart from the status. */
typedef enum rbee_health {
  RBEE_HEALTH_HEALTHY = 0,
  RBEE_HEALTH_DEGRADED,
  RBEE_HEALTH_UNHEALTHY
} rbee_health;

/** The worker-contract WorkerInfo: exactly these seven fields. Strings are
 * owned by the record (malloc'd): set them with rbee_worker_info_set() or
 * strdup, release them with rbee_worker_info_clear(). */
typedef struct rbee_worker_info {
  char *id;
  char *model_id;
  char *device;
  uint16_t port; /**< 1..65535 */
  rbee_worker_status status;
  char *implementation;
  char *version;
} rbee_worker_info;

#define RBEE_WORKER_INFO_INIT {NULL, NULL, NULL, 0, RBEE_STATUS_STARTING, NULL, NULL}

/** The queen's answer to a heartbeat: {"status":"ok","message":...}. */
typedef struct rbee_queen_ack {
  char *status;  /**< owned */
  char *message; /**< owned, NULL when absent */
} rbee_queen_ack;

RBEE_BEGIN_DECLS

RBEE_EXTERN const char *rbee_status_str(rbee_worker_status status);
/** Parse an exact lowercase status name; RBEE_EPARSE otherwise. */
RBEE_EXTERN int rbee_status_parse(rbee_worker_status *out, const char *s);
RBEE_EXTERN const char *rbee_health_str(rbee_health health);
RBEE_EXTERN int rbee_health_parse(rbee_health *out, const char *s);

/** Fill every field (strings copied). On failure @p info is left cleared. */
RBEE_EXTERN int rbee_worker_info_set(rbee_worker_info *info, const char *id,
                                     const char *model_id, const char *device,
                                     uint16_t port, rbee_worker_status status,
                                     const char *implementation,
                                     const char *version);
/** Deep copy @p src into @p dst (which must be cleared or zeroed). */
RBEE_EXTERN int rbee_worker_info_copy(rbee_worker_info *dst,
                                      const rbee_worker_info *src);
/** Free the strings and zero the record. Accepts NULL. */
RBEE_EXTERN void rbee_worker_info_clear(rbee_worker_info *info);
/** True when the worker can take jobs now or soon: ready or busy. */
RBEE_EXTERN int rbee_worker_info_is_available(const rbee_worker_info *info);

/** Serialize to the contract's compact JSON, fields in contract order.
 * @p out is malloc'd; release it with rbee_free(). */
RBEE_EXTERN int rbee_worker_info_to_json(char **out,
                                         const rbee_worker_info *info);
/** Parse and validate (types, port range, status name, UTF-8, required
 * fields; unknown fields are accepted). On failure @p out is left cleared
 * and rbee_error_message() says which field was wrong. */
RBEE_EXTERN int rbee_worker_info_from_json(rbee_worker_info *out,
                                           const char *json, size_t len);
/** The same as a cJSON object (for callers that build larger documents). */
RBEE_EXTERN struct cJSON *rbee_worker_info_to_cjson(const rbee_worker_info *info);
RBEE_EXTERN int rbee_worker_info_from_cjson(rbee_worker_info *out,
                                            const struct cJSON *obj);

RBEE_EXTERN int rbee_queen_ack_to_json(char **out, const rbee_queen_ack *ack);
/** Parse the queen's answer: an object with a string "status", and an
 * optional string "message". */
RBEE_EXTERN int rbee_queen_ack_from_json(rbee_queen_ack *out, const char *json,
                                         size_t len);
RBEE_EXTERN void rbee_queen_ack_clear(rbee_queen_ack *ack);

/** Free memory that librbee handed out (JSON strings). Accepts NULL. */
RBEE_EXTERN void rbee_free(void *ptr);

RBEE_END_DECLS

#endif
