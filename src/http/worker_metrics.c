/* Worker metrics (rbee/metrics.h): a process-wide registry of metrics that
 * worker code declares, and their Prometheus text after the framework's. */
#include <event2/buffer.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"
#include "rbee/metrics.h"
#include "util/util.h"

typedef enum { K_COUNTER, K_GAUGE, K_HISTOGRAM } kind;

/* One label set of a metric and its value(s). */
typedef struct series {
  char **values; /* one per label name */
  double value;  /* counter, gauge */
  uint64_t *buckets; /* histogram: per bound, not cumulative (+Inf last) */
  uint64_t count;
  double sum;
} series;

struct rbee_metric {
  rbee_metric *next;
  kind k;
  char *name, *help;
  char *labels[RBEE_METRIC_MAX_LABELS];
  unsigned nlabels, max_series;
  double le[RBEE_METRIC_MAX_BUCKETS];
  size_t nle;
  pthread_mutex_t mu;
  series *s;
  unsigned ns, cap;
  int warned; /* the bound was logged once */
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static rbee_metric *reg_head, *reg_tail;

static const double default_le[] = {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};

static int name_ok(const char *s, int colon) {
  if (s == NULL || *s == '\0' || strlen(s) > 120)
    return 0;
  for (const char *p = s; *p; p++) {
    int alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
                (colon && *p == ':');
    if (!alpha && !(p > s && *p >= '0' && *p <= '9'))
      return 0;
  }
  return 1;
}

static void metric_free(rbee_metric *m) {
  if (m == NULL)
    return;
  for (unsigned i = 0; i < m->ns; i++) {
    for (unsigned j = 0; j < m->nlabels; j++)
      free(m->s[i].values[j]);
    free(m->s[i].values);
    free(m->s[i].buckets);
  }
  free(m->s);
  for (unsigned j = 0; j < m->nlabels; j++)
    free(m->labels[j]);
  free(m->name);
  free(m->help);
  pthread_mutex_destroy(&m->mu);
  free(m);
}

static int declare(rbee_metric **out, kind k, const char *name, const char *help,
                   const char *const *labels, unsigned max_series, const double *le,
                   size_t nle) {
  *out = NULL;
  size_t nl = name ? strlen(name) : 0;
  if (!name_ok(name, 1))
    return rbee__error_set(RBEE_EINVAL, "metric name '%s' is not [a-zA-Z_:][a-zA-Z0-9_:]*",
                           name ? name : "(null)");
  if (strncmp(name, "rbee_", 5) == 0)
    return rbee__error_set(RBEE_EINVAL, "metric %s: names starting with rbee_ are the framework's",
                           name);
  int total = nl > 6 && strcmp(name + nl - 6, "_total") == 0;
  if (k == K_COUNTER && !total)
    return rbee__error_set(RBEE_EINVAL, "counter %s: a counter's name ends in _total", name);
  if (k == K_HISTOGRAM && nle > RBEE_METRIC_MAX_BUCKETS)
    return rbee__error_set(RBEE_EINVAL, "histogram %s: more than %d buckets", name,
                           RBEE_METRIC_MAX_BUCKETS);
  rbee_metric *m = calloc(1, sizeof *m);
  if (m == NULL)
    return rbee__error_set(RBEE_ENOMEM, NULL);
  pthread_mutex_init(&m->mu, NULL);
  m->k = k;
  m->max_series = max_series ? max_series : 64;
  m->name = rbee__strdup(name);
  m->help = rbee__strdup(help ? help : name);
  int rc = 0;
  if (m->name == NULL || m->help == NULL) {
    rc = rbee__error_set(RBEE_ENOMEM, NULL);
    goto out;
  }
  for (const char *const *l = labels; l && *l; l++) {
    if (m->nlabels == RBEE_METRIC_MAX_LABELS) {
      rc = rbee__error_set(RBEE_EINVAL, "metric %s: more than %d labels", name,
                           RBEE_METRIC_MAX_LABELS);
      goto out;
    }
    if (!name_ok(*l, 0) || strncmp(*l, "__", 2) == 0 || strcmp(*l, "le") == 0) {
      rc = rbee__error_set(RBEE_EINVAL, "metric %s: bad label name '%s'", name, *l);
      goto out;
    }
    if ((m->labels[m->nlabels++] = rbee__strdup(*l)) == NULL) {
      rc = rbee__error_set(RBEE_ENOMEM, NULL);
      goto out;
    }
  }
  if (k == K_HISTOGRAM) {
    if (le == NULL || nle == 0) {
      le = default_le;
      nle = sizeof default_le / sizeof default_le[0];
    }
    for (size_t i = 0; i < nle; i++) {
      if (!isfinite(le[i]) || (i > 0 && le[i] <= le[i - 1])) {
        rc = rbee__error_set(RBEE_EINVAL, "histogram %s: bucket bounds must be finite and increasing",
                             name);
        goto out;
      }
      m->le[i] = le[i];
    }
    m->nle = nle;
  }
  pthread_mutex_lock(&reg_mu);
  for (rbee_metric *o = reg_head; o && rc == 0; o = o->next)
    if (strcmp(o->name, name) == 0)
      rc = rbee__error_set(RBEE_EINVAL, "metric %s is already declared", name);
  if (rc == 0) {
    if (reg_tail)
      reg_tail->next = m;
    else
      reg_head = m;
    reg_tail = m;
  }
  pthread_mutex_unlock(&reg_mu);
out:
  if (rc) {
    metric_free(m);
    return rc;
  }
  *out = m;
  return 0;
}

int rbee_metric_counter_new(rbee_metric **out, const char *name, const char *help,
                            const char *const *labels, unsigned max_series) {
  return declare(out, K_COUNTER, name, help, labels, max_series, NULL, 0);
}

int rbee_metric_gauge_new(rbee_metric **out, const char *name, const char *help,
                          const char *const *labels, unsigned max_series) {
  return declare(out, K_GAUGE, name, help, labels, max_series, NULL, 0);
}

int rbee_metric_histogram_new(rbee_metric **out, const char *name, const char *help,
                              const char *const *labels, unsigned max_series,
                              const double *buckets, size_t nbuckets) {
  return declare(out, K_HISTOGRAM, name, help, labels, max_series, buckets, nbuckets);
}

/* The series of @p values, made when new and room is left (mu held). */
static int find_series_locked(series **out, rbee_metric *m, const char *const *values) {
  for (unsigned j = 0; j < m->nlabels; j++) {
    const char *v = values ? values[j] : NULL;
    if (v == NULL || strlen(v) > 256 || !rbee__utf8_valid(v, strlen(v)))
      return rbee__error_set(RBEE_EINVAL,
                             "metric %s: label %s needs a UTF-8 value of at most 256 bytes",
                             m->name, m->labels[j]);
  }
  for (unsigned i = 0; i < m->ns; i++) {
    unsigned j = 0;
    while (j < m->nlabels && strcmp(m->s[i].values[j], values[j]) == 0)
      j++;
    if (j == m->nlabels) {
      *out = &m->s[i];
      return 0;
    }
  }
  if (m->ns >= m->max_series)
    return rbee__error_set(RBEE_EBUSY,
                           "metric %s already has its %u label sets; a new one is not recorded",
                           m->name, m->max_series);
  if (m->ns == m->cap) {
    unsigned cap = m->cap ? m->cap * 2 : 4;
    series *n = realloc(m->s, cap * sizeof *n);
    if (n == NULL)
      return rbee__error_set(RBEE_ENOMEM, NULL);
    m->s = n;
    m->cap = cap;
  }
  series *s = &m->s[m->ns];
  memset(s, 0, sizeof *s);
  s->values = calloc(m->nlabels ? m->nlabels : 1, sizeof *s->values);
  if (m->k == K_HISTOGRAM)
    s->buckets = calloc(m->nle + 1, sizeof *s->buckets);
  int oom = s->values == NULL || (m->k == K_HISTOGRAM && s->buckets == NULL);
  for (unsigned j = 0; j < m->nlabels && !oom; j++)
    oom = (s->values[j] = rbee__strdup(values[j])) == NULL;
  if (oom) {
    for (unsigned j = 0; s->values && j < m->nlabels; j++)
      free(s->values[j]);
    free(s->values);
    free(s->buckets);
    return rbee__error_set(RBEE_ENOMEM, NULL);
  }
  m->ns++;
  *out = s;
  return 0;
}

typedef enum { OP_ADD, OP_SET, OP_OBSERVE } op;

static int update(rbee_metric *m, const char *const *values, double v, op o) {
  static const char *const names[] = {"rbee_metric_add", "rbee_metric_set", "rbee_metric_observe"};
  if (m == NULL || !isfinite(v))
    return rbee__error_set(RBEE_EINVAL, "%s: NULL metric or a value that is not finite", names[o]);
  if ((o == OP_OBSERVE) != (m->k == K_HISTOGRAM) || (o == OP_SET && m->k != K_GAUGE))
    return rbee__error_set(RBEE_EINVAL, "%s: not for metric %s", names[o], m->name);
  if (o == OP_ADD && m->k == K_COUNTER && v < 0)
    return rbee__error_set(RBEE_EINVAL, "counter %s only goes up", m->name);
  pthread_mutex_lock(&m->mu);
  series *s = NULL;
  int rc = find_series_locked(&s, m, values);
  int warn = rc == RBEE_EBUSY && !m->warned;
  if (warn)
    m->warned = 1;
  if (rc == 0) {
    if (o == OP_ADD) {
      s->value += v;
    } else if (o == OP_SET) {
      s->value = v;
    } else {
      size_t i = 0;
      while (i < m->nle && v > m->le[i])
        i++;
      s->buckets[i]++;
      s->count++;
      s->sum += v;
    }
  }
  pthread_mutex_unlock(&m->mu);
  if (warn) {
    char why[300];
    snprintf(why, sizeof why, "%s", rbee_error_message());
    RBEE_WARN("metrics", "labels", "%s (further ones are not logged)", why);
    rbee__error_set(rc, "%s", why);
  }
  return rc;
}

int rbee_metric_add(rbee_metric *m, const char *const *values, double v) {
  return update(m, values, v, OP_ADD);
}

int rbee_metric_set(rbee_metric *m, const char *const *values, double v) {
  return update(m, values, v, OP_SET);
}

int rbee_metric_observe(rbee_metric *m, const char *const *values, double v) {
  return update(m, values, v, OP_OBSERVE);
}

/* The shortest decimal that reads back as @p v. */
static void num(char *out, size_t n, double v) {
  snprintf(out, n, "%.15g", v);
  if (strtod(out, NULL) != v)
    snprintf(out, n, "%.17g", v);
}

static void put_escaped(struct evbuffer *b, const char *s, int quote) {
  for (const char *p = s; *p; p++) {
    if (*p == '\\')
      evbuffer_add(b, "\\\\", 2);
    else if (*p == '\n')
      evbuffer_add(b, "\\n", 2);
    else if (quote && *p == '"')
      evbuffer_add(b, "\\\"", 2);
    else
      evbuffer_add(b, p, 1);
  }
}

/* name{l1="v1",...[,le="x"]} */
static void put_series(struct evbuffer *b, const rbee_metric *m, const series *s,
                       const char *suffix, const char *le) {
  evbuffer_add_printf(b, "%s%s", m->name, suffix);
  if (m->nlabels == 0 && le == NULL)
    return;
  evbuffer_add(b, "{", 1);
  for (unsigned j = 0; j < m->nlabels; j++) {
    evbuffer_add_printf(b, "%s%s=\"", j ? "," : "", m->labels[j]);
    put_escaped(b, s->values[j], 1);
    evbuffer_add(b, "\"", 1);
  }
  if (le)
    evbuffer_add_printf(b, "%sle=\"%s\"", m->nlabels ? "," : "", le);
  evbuffer_add(b, "}", 1);
}

void rbee__worker_metrics_format(struct evbuffer *b) {
  static const char *const types[] = {"counter", "gauge", "histogram"};
  /* Lock order: the registry, then a metric (updates take only the
   * metric's, declarations only the registry's). */
  pthread_mutex_lock(&reg_mu);
  for (rbee_metric *m = reg_head; m; m = m->next) {
    evbuffer_add_printf(b, "# HELP %s ", m->name);
    put_escaped(b, m->help, 0);
    evbuffer_add_printf(b, "\n# TYPE %s %s\n", m->name, types[m->k]);
    pthread_mutex_lock(&m->mu);
    if (m->k != K_HISTOGRAM && m->nlabels == 0 && m->ns == 0)
      evbuffer_add_printf(b, "%s 0\n", m->name); /* never updated: still shown */
    for (unsigned i = 0; i < m->ns; i++) {
      const series *s = &m->s[i];
      char v[40];
      if (m->k != K_HISTOGRAM) {
        put_series(b, m, s, "", NULL);
        num(v, sizeof v, s->value);
        evbuffer_add_printf(b, " %s\n", v);
        continue;
      }
      uint64_t cum = 0;
      for (size_t k = 0; k <= m->nle; k++) {
        cum += s->buckets[k];
        char le[40];
        if (k < m->nle)
          num(le, sizeof le, m->le[k]);
        else
          snprintf(le, sizeof le, "+Inf");
        put_series(b, m, s, "_bucket", le);
        evbuffer_add_printf(b, " %llu\n", (unsigned long long)cum);
      }
      put_series(b, m, s, "_sum", NULL);
      num(v, sizeof v, s->sum);
      evbuffer_add_printf(b, " %s\n", v);
      put_series(b, m, s, "_count", NULL);
      evbuffer_add_printf(b, " %llu\n", (unsigned long long)s->count);
    }
    pthread_mutex_unlock(&m->mu);
  }
  pthread_mutex_unlock(&reg_mu);
}
