/* The local queen's worker registry (see registry.h). */
#include "registry.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include <rbee/errors.h>

/* FNV-1a. */
static unsigned bucket(const char *id) {
  uint32_t h = 2166136261u;
  for (const unsigned char *p = (const unsigned char *)id; *p; p++)
    h = (h ^ *p) * 16777619u;
  return h % QUEEN_BUCKETS;
}

static queen_worker *find(const queen_registry *reg, const char *id) {
  for (queen_worker *w = reg->buckets[bucket(id)]; w; w = w->hnext)
    if (strcmp(w->info.id, id) == 0)
      return w;
  return NULL;
}

const queen_worker *queen_registry_find(const queen_registry *reg, const char *id) {
  return find(reg, id);
}

int queen_worker_id_ok(const char *id) {
  size_t n = 0;
  for (; id[n]; n++)
    if (n >= 128 || (unsigned char)id[n] <= 0x20 || (unsigned char)id[n] >= 0x7f)
      return 0;
  return n > 0;
}

static void unhash(queen_registry *reg, queen_worker *w) {
  queen_worker **pp = &reg->buckets[bucket(w->info.id)];
  while (*pp && *pp != w)
    pp = &(*pp)->hnext;
  if (*pp)
    *pp = w->hnext;
}

static void worker_free(queen_worker *w) {
  if (w == NULL)
    return;
  rbee_worker_info_clear(&w->info);
  free(w->address);
  cJSON_Delete(w->heartbeat);
  free(w);
}

static void push_history(queen_worker *w, rbee_worker_status s, int64_t at_us) {
  if (w->nhistory == QUEEN_HISTORY) {
    memmove(w->history, w->history + 1, sizeof w->history[0] * (QUEEN_HISTORY - 1));
    w->nhistory--;
  }
  w->history[w->nhistory].status = s;
  w->history[w->nhistory].at_us = at_us;
  w->nhistory++;
}

int queen_registry_update(queen_registry *reg, rbee_worker_info *info, const char *address,
                          cJSON *heartbeat, int64_t now_mono_us, int64_t now_wall_us,
                          rbee_worker_status *old_status) {
  int flags = 0;
  char *addr = strdup(address ? address : "127.0.0.1");
  if (addr == NULL) {
    rbee_worker_info_clear(info);
    cJSON_Delete(heartbeat);
    return RBEE_ENOMEM;
  }
  queen_worker *w = find(reg, info->id);
  if (w && w->info.status != RBEE_STATUS_STOPPED &&
      (w->info.port != info->port || strcmp(w->address, addr) != 0)) {
    free(addr);
    rbee_worker_info_clear(info);
    cJSON_Delete(heartbeat);
    return QUEEN_ETAKEN;
  }
  if (w == NULL && reg->count >= QUEEN_MAX_WORKERS) {
    free(addr);
    rbee_worker_info_clear(info);
    cJSON_Delete(heartbeat);
    return QUEEN_EFULL;
  }
  if (w == NULL) {
    if ((w = calloc(1, sizeof *w)) == NULL) {
      free(addr);
      rbee_worker_info_clear(info);
      cJSON_Delete(heartbeat);
      return RBEE_ENOMEM;
    }
    w->first_seen_mono_us = now_mono_us;
    /* Append: registration order is the routing order. */
    queen_worker **tail = &reg->head;
    while (*tail)
      tail = &(*tail)->next;
    *tail = w;
    reg->count++;
    flags |= QUEEN_NEW | QUEEN_STATUS_CHANGED;
  } else {
    if (old_status)
      *old_status = w->info.status;
    if (w->info.status != info->status)
      flags |= QUEEN_STATUS_CHANGED;
    if (w->info.port != info->port || strcmp(w->address, addr) != 0) {
      flags |= QUEEN_MOVED;
      w->verified = 0; /* a new place: probe it again */
    }
  }
  if (flags & QUEEN_NEW && old_status)
    *old_status = info->status;
  rbee_worker_info_clear(&w->info);
  w->info = *info;
  memset(info, 0, sizeof *info);
  if (flags & QUEEN_NEW) {
    unsigned b = bucket(w->info.id);
    w->hnext = reg->buckets[b];
    reg->buckets[b] = w;
  }
  free(w->address);
  w->address = addr;
  cJSON_Delete(w->heartbeat);
  w->heartbeat = heartbeat;
  w->last_seen_mono_us = now_mono_us;
  w->beats++;
  if (flags & QUEEN_STATUS_CHANGED)
    push_history(w, w->info.status, now_wall_us);
  return flags;
}

unsigned queen_registry_sweep(queen_registry *reg, int64_t now_mono_us, int64_t dead_after_us,
                              void (*on_dead)(const queen_worker *w, int64_t silent_us, void *ud),
                              void *ud) {
  unsigned removed = 0;
  queen_worker **pp = &reg->head;
  while (*pp) {
    queen_worker *w = *pp;
    int64_t silent = now_mono_us - w->last_seen_mono_us;
    if (silent >= dead_after_us) {
      *pp = w->next;
      unhash(reg, w);
      reg->count--;
      removed++;
      if (on_dead)
        on_dead(w, silent, ud);
      worker_free(w);
    } else {
      pp = &w->next;
    }
  }
  return removed;
}

static int skipped(const char *id, const char *const *skip, unsigned nskip) {
  for (unsigned i = 0; i < nskip; i++)
    if (strcmp(skip[i], id) == 0)
      return 1;
  return 0;
}

const queen_worker *queen_registry_pick(const queen_registry *reg, const char *model,
                                        const char *const *skip, unsigned nskip) {
  static const rbee_worker_status order[] = {RBEE_STATUS_READY, RBEE_STATUS_BUSY};
  for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
    for (const queen_worker *w = reg->head; w; w = w->next)
      if (w->verified && w->info.status == order[i] && strcmp(w->info.model_id, model) == 0 &&
          !skipped(w->info.id, skip, nskip))
        return w;
  return NULL;
}

char *queen_registry_models(const queen_registry *reg) {
  size_t len = 1;
  for (const queen_worker *w = reg->head; w; w = w->next)
    len += strlen(w->info.model_id) + 2;
  char *out = malloc(len);
  if (out == NULL)
    return NULL;
  out[0] = '\0';
  for (const queen_worker *w = reg->head; w; w = w->next) {
    int seen = 0;
    for (const queen_worker *v = reg->head; v != w; v = v->next)
      seen |= strcmp(v->info.model_id, w->info.model_id) == 0;
    if (seen)
      continue;
    if (out[0])
      strcat(out, ", ");
    strcat(out, w->info.model_id);
  }
  return out;
}

cJSON *queen_worker_to_json(const queen_worker *w, int64_t now_mono_us) {
  cJSON *o = rbee_worker_info_to_cjson(&w->info);
  if (o == NULL)
    return NULL;
  cJSON *hist = cJSON_CreateArray();
  if (!cJSON_AddStringToObject(o, "address", w->address) ||
      !cJSON_AddNumberToObject(o, "last_seen_ms", (double)((now_mono_us - w->last_seen_mono_us) / 1000)) ||
      !cJSON_AddNumberToObject(o, "beats", (double)w->beats) ||
      !cJSON_AddBoolToObject(o, "verified", w->verified) || hist == NULL) {
    cJSON_Delete(hist);
    goto oom;
  }
  cJSON_AddItemToObject(o, "history", hist);
  const cJSON *health = w->heartbeat ? cJSON_GetObjectItemCaseSensitive(w->heartbeat, "health") : NULL;
  if (health && cJSON_IsString(health)) {
    if (!cJSON_AddStringToObject(o, "health", health->valuestring))
      goto oom;
  } else if (health && cJSON_IsObject(health)) {
    cJSON *dup = cJSON_Duplicate(health, 1);
    if (dup == NULL)
      goto oom;
    cJSON_AddItemToObject(o, "health", dup);
  }
  for (unsigned i = 0; i < w->nhistory; i++) {
    char at[40];
    cJSON *h = cJSON_CreateObject();
    if (h == NULL)
      goto oom;
    cJSON_AddItemToArray(hist, h);
    if (rbee_time_format(at, sizeof at, w->history[i].at_us) != 0)
      at[0] = '\0';
    if (!cJSON_AddStringToObject(h, "status", rbee_status_str(w->history[i].status)) ||
        !cJSON_AddStringToObject(h, "at", at))
      goto oom;
  }
  if (w->heartbeat) {
    cJSON *dup = cJSON_Duplicate(w->heartbeat, 1);
    if (dup == NULL)
      goto oom;
    cJSON_AddItemToObject(o, "heartbeat", dup);
  }
  return o;
oom:
  cJSON_Delete(o);
  return NULL;
}

cJSON *queen_registry_to_json(const queen_registry *reg, int64_t now_mono_us) {
  cJSON *o = cJSON_CreateObject();
  cJSON *arr = cJSON_AddArrayToObject(o, "workers");
  if (arr == NULL) {
    cJSON_Delete(o);
    return NULL;
  }
  for (const queen_worker *w = reg->head; w; w = w->next) {
    cJSON *wj = queen_worker_to_json(w, now_mono_us);
    if (wj == NULL) {
      cJSON_Delete(o);
      return NULL;
    }
    cJSON_AddItemToArray(arr, wj);
  }
  return o;
}

void queen_registry_clear(queen_registry *reg) {
  while (reg->head) {
    queen_worker *w = reg->head;
    reg->head = w->next;
    worker_free(w);
  }
  memset(reg->buckets, 0, sizeof reg->buckets);
  reg->count = 0;
}
