/* The local queen's worker registry: what each worker last said in its
 * heartbeat, where to reach it, and when it was last heard from. Pure data
 * with the clock passed in, so that tests can drive time. Not thread-safe:
 * the queen uses it from its loop thread only. */
#ifndef QUEEN_REGISTRY_H
#define QUEEN_REGISTRY_H

#include <stdint.h>

#include <rbee/info.h>

struct cJSON;

#define QUEEN_HISTORY 16

typedef struct queen_transition {
  rbee_worker_status status;
  int64_t at_us; /* wall clock */
} queen_transition;

typedef struct queen_worker {
  rbee_worker_info info;
  char *address;            /* host the heartbeat came from */
  struct cJSON *heartbeat;  /* the last heartbeat, extra fields included */
  int64_t first_seen_mono_us;
  int64_t last_seen_mono_us;
  uint64_t beats;
  queen_transition history[QUEEN_HISTORY]; /* oldest first */
  unsigned nhistory;
  struct queen_worker *next; /* registration order */
} queen_worker;

typedef struct queen_registry {
  queen_worker *head;
  unsigned count;
} queen_registry;

/* What an update changed. */
enum { QUEEN_NEW = 1, QUEEN_STATUS_CHANGED = 2, QUEEN_MOVED = 4 };

/* Record a heartbeat. Takes @p info (moved; cleared on return) and
 * @p heartbeat (owned afterwards, may be NULL). Returns QUEEN_* flags or a
 * negative RBEE_E* code (out of memory: nothing recorded). @p old_status
 * (may be NULL) receives the status before the update. */
int queen_registry_update(queen_registry *reg, rbee_worker_info *info, const char *address,
                          struct cJSON *heartbeat, int64_t now_mono_us, int64_t now_wall_us,
                          rbee_worker_status *old_status);

/* Workers not heard from for @p dead_after_us are removed; @p on_dead is
 * called for each before it is freed. Returns how many were removed. */
unsigned queen_registry_sweep(queen_registry *reg, int64_t now_mono_us, int64_t dead_after_us,
                              void (*on_dead)(const queen_worker *w, int64_t silent_us, void *ud),
                              void *ud);

/* The first worker serving @p model that can take a job: ready ones before
 * busy ones, each in registration order. Workers listed in @p skip (n ids)
 * are passed over. NULL when none. */
const queen_worker *queen_registry_pick(const queen_registry *reg, const char *model,
                                        const char *const *skip, unsigned nskip);

/* Models known to the registry, comma separated, for error messages. */
char *queen_registry_models(const queen_registry *reg);

/* {"workers":[...]} as GET /v1/workers shows it. NULL on out of memory. */
struct cJSON *queen_registry_to_json(const queen_registry *reg, int64_t now_mono_us);

void queen_registry_clear(queen_registry *reg);

#endif
