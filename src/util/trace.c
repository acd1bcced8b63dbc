/* W3C trace context: parsing and checking traceparent and tracestate,
 * new ids, and the job id -> trace index the log reads. */
#include "trace.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static int lhex(const char *s, size_t n) {
  int nonzero = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return -1;
    nonzero |= c != '0';
  }
  return nonzero;
}

/* Random lowercase hex, never all zeros. */
static void rand_hex(char *out, size_t n) {
  static const char hex[] = "0123456789abcdef";
  do {
    for (size_t i = 0; i < n; i += 16) {
      uint64_t r = rbee__rand64();
      for (size_t k = 0; k < 16 && i + k < n; k++, r >>= 4)
        out[i + k] = hex[r & 15];
    }
    out[n] = '\0';
  } while (lhex(out, n) == 0);
}

/* version-traceid-parentid-flags; see trace.h for the rules. */
static int parse_traceparent(rbee__trace *t, const char *s) {
  size_t n = strlen(s);
  if (n < 55 || lhex(s, 2) < 0 || strncmp(s, "ff", 2) == 0)
    return -1;
  if (strncmp(s, "00", 2) == 0 ? n != 55 : (n > 55 && s[55] != '-'))
    return -1;
  if (s[2] != '-' || s[35] != '-' || s[52] != '-')
    return -1;
  if (lhex(s + 3, 32) != 1 || lhex(s + 36, 16) != 1 || lhex(s + 53, 2) < 0)
    return -1;
  memcpy(t->trace_id, s + 3, 32);
  t->trace_id[32] = '\0';
  memcpy(t->parent_id, s + 36, 16);
  t->parent_id[16] = '\0';
  /* Level 1 defines only the sampled bit; other bits are not passed on. */
  int sampled = (s[54] >= '0' && s[54] <= '9' ? s[54] - '0' : s[54] - 'a' + 10) & 1;
  snprintf(t->flags, sizeof t->flags, "0%d", sampled);
  return 0;
}

static int key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '*' ||
         c == '/' || c == '@';
}

/* A list of up to 32 key=value members, comma separated (spaces and tabs
 * around them), at most 512 characters. */
static int tracestate_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 512)
    return 0;
  int members = 0;
  const char *p = s;
  while (*p) {
    while (*p == ' ' || *p == '\t')
      p++;
    const char *m = p;
    const char *end = strchr(p, ',');
    if (end == NULL)
      end = s + n;
    const char *last = end;
    while (last > m && (last[-1] == ' ' || last[-1] == '\t'))
      last--;
    if (last > m) { /* empty members are allowed */
      const char *eq = memchr(m, '=', (size_t)(last - m));
      if (eq == NULL || eq == m || eq - m > 256 || last - eq - 1 < 1 || last - eq - 1 > 256 ||
          !((*m >= 'a' && *m <= 'z') || (*m >= '0' && *m <= '9')))
        return 0;
      for (const char *k = m; k < eq; k++)
        if (!key_char(*k))
          return 0;
      for (const char *v = eq + 1; v < last; v++)
        if (*v < 0x20 || *v > 0x7e || *v == ',' || *v == '=')
          return 0;
      if (++members > 32)
        return 0;
    }
    p = *end ? end + 1 : end;
  }
  return 1;
}

int rbee__trace_from_headers(rbee__trace *out, const char *traceparent, const char *tracestate) {
  memset(out, 0, sizeof *out);
  int taken = traceparent != NULL && parse_traceparent(out, traceparent) == 0;
  if (!taken) {
    memset(out, 0, sizeof *out);
    rand_hex(out->trace_id, 32);
    memcpy(out->flags, "01", 3);
  } else if (tracestate != NULL && tracestate_ok(tracestate)) {
    snprintf(out->tracestate, sizeof out->tracestate, "%s", tracestate);
  }
  rand_hex(out->span_id, 16);
  /* 00-<trace id>-<span id>-<flags>, by hand: one for every job. */
  char *p = out->traceparent;
  memcpy(p, "00-", 3);
  memcpy(p + 3, out->trace_id, 32);
  p[35] = '-';
  memcpy(p + 36, out->span_id, 16);
  p[52] = '-';
  memcpy(p + 53, out->flags, 3);
  return taken;
}

/* The index: chained buckets under one lock; an entry per live job. */
typedef struct entry {
  struct entry *next;
  char job_id[48];
  char trace_id[33], span_id[17];
} entry;

#define NBUCKETS 1024
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static entry *buckets[NBUCKETS];

static unsigned bucket_of(const char *id) {
  uint32_t h = 2166136261u;
  for (const unsigned char *c = (const unsigned char *)id; *c; c++)
    h = (h ^ *c) * 16777619u;
  return h & (NBUCKETS - 1);
}

int rbee__trace_register(const char *job_id, const rbee__trace *t) {
  entry *e = calloc(1, sizeof *e);
  if (e == NULL)
    return rbee__error_set(RBEE_ENOMEM, NULL);
  snprintf(e->job_id, sizeof e->job_id, "%s", job_id);
  memcpy(e->trace_id, t->trace_id, sizeof e->trace_id);
  memcpy(e->span_id, t->span_id, sizeof e->span_id);
  unsigned b = bucket_of(job_id);
  pthread_mutex_lock(&mu);
  e->next = buckets[b];
  buckets[b] = e;
  pthread_mutex_unlock(&mu);
  return 0;
}

void rbee__trace_forget(const char *job_id) {
  unsigned b = bucket_of(job_id);
  entry *gone = NULL;
  pthread_mutex_lock(&mu);
  for (entry **pp = &buckets[b]; *pp; pp = &(*pp)->next)
    if (strcmp((*pp)->job_id, job_id) == 0) {
      gone = *pp;
      *pp = gone->next;
      break;
    }
  pthread_mutex_unlock(&mu);
  free(gone);
}

int rbee__trace_lookup(const char *job_id, char *trace_id, char *span_id) {
  if (job_id == NULL)
    return -1;
  unsigned b = bucket_of(job_id);
  int rc = -1;
  pthread_mutex_lock(&mu);
  for (entry *e = buckets[b]; e; e = e->next)
    if (strcmp(e->job_id, job_id) == 0) {
      memcpy(trace_id, e->trace_id, 33);
      memcpy(span_id, e->span_id, 17);
      rc = 0;
      break;
    }
  pthread_mutex_unlock(&mu);
  return rc;
}
