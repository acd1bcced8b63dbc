/* The local queen's worker registry: what each worker last said in its
 * heartbeat, where to reach it, and when it was last heard from. Pure data
 * with the clock passed in, so that tests can drive time. Not thread-safe:
 * the queen uses it from its loop thread only. */
#ifndef QUEEN_REGISTRY_H
#define QUEEN_REGISTRY_H

#include <stdint.h>

#include <rbee/info.h>
#include <rbee/timestamp.h>

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
  struct queen_worker *hnext; /* hash bucket chain */
  int verified; /* its GET /info named the same id and model: it may get jobs */
  int probing;  /* a GET /info is in flight */
  int64_t probed_mono_us; /* when the last one started: one per 5 s at most */
} queen_worker;

/* Workers kept at most: a flood of ids cannot grow the registry further. */
#define QUEEN_MAX_WORKERS 1024
#define QUEEN_BUCKETS 2048

typedef struct queen_registry {
  queen_worker *head;
  unsigned count;
  queen_worker *buckets[QUEEN_BUCKETS]; /* by id: O(1) lookup */
} queen_registry;

/* What an update changed. */
enum { QUEEN_NEW = 1, QUEEN_STATUS_CHANGED = 2, QUEEN_MOVED = 4 };
/* Refusals (negative, apart from the RBEE_E* codes): the id is bound to
 * another address and port until it stops or expires; the registry is full. */
#define QUEEN_ETAKEN (-10001)
#define QUEEN_EFULL (-10002)

/* The worker of @p id, or NULL. */
const queen_worker *queen_registry_find(const queen_registry *reg, const char *id);
/* 1 when @p id is a worker id as a worker's --worker-id accepts it:
 * 1 to 128 printable ASCII characters, no spaces. */
int queen_worker_id_ok(const char *id);

/* Record a heartbeat. Takes @p info (moved; cleared on return) and
 * @p heartbeat (owned afterwards, may be NULL). Returns QUEEN_* flags or a
 * negative RBEE_E* code (out of memory: nothing recorded). @p old_status
 * (may be NULL) receives the status before the update. A live worker's
 * id is bound to the address and port that registered it: a beat for it
 * from elsewhere is QUEEN_ETAKEN (nothing changes) until it is stopped or
 * dropped. */
int queen_registry_update(queen_registry *reg, rbee_worker_info *info, const char *address,
                          struct cJSON *heartbeat, int64_t now_mono_us, int64_t now_wall_us,
                          rbee_worker_status *old_status);

/* Workers not heard from for @p dead_after_us are removed; @p on_dead is
 * called for each before it is freed. Returns how many were removed. */
unsigned queen_registry_sweep(queen_registry *reg, int64_t now_mono_us, int64_t dead_after_us,
                              void (*on_dead)(const queen_worker *w, int64_t silent_us, void *ud),
                              void *ud);

/* The first verified worker serving @p model that can take a job: ready ones before
 * busy ones, each in registration order. Workers listed in @p skip (n ids)
 * are passed over. NULL when none. */
const queen_worker *queen_registry_pick(const queen_registry *reg, const char *model,
                                        const char *const *skip, unsigned nskip);

/* Models known to the registry, comma separated, for error messages. */
char *queen_registry_models(const queen_registry *reg);

/* {"workers":[...]} as GET /v1/workers shows it. NULL on out of memory. */
struct cJSON *queen_registry_to_json(const queen_registry *reg, int64_t now_mono_us);
/* One worker as GET /v1/workers/{id} shows it. NULL on out of memory. */
struct cJSON *queen_worker_to_json(const queen_worker *w, int64_t now_mono_us);

void queen_registry_clear(queen_registry *reg);

#endif
