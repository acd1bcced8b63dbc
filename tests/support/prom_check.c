#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prom_check.h"

#define MAXF 128

typedef struct {
  char name[160];
  char type[16];
  int help, samples_seen, closed;
  /* histogram bookkeeping */
  double last_le, last_bucket, inf_bucket, count;
  int has_inf, has_count;
  char key[160]; /* the labels other than le of the series being read */
} family;

static int name_ok(const char *s, size_t n) {
  if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
    return 0;
  for (size_t i = 1; i < n; i++)
    if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':'))
      return 0;
  return 1;
}

static family *find(family *f, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (strcmp(f[i].name, name) == 0)
      return &f[i];
  return NULL;
}

/* Parse {a="x",b="y"}; copies the le label when present, and the other
 * labels' text into @p key (one series of a labelled histogram). */
static int parse_labels(const char **pp, char *le, size_t lelen, char *key, size_t keylen) {
  const char *p = *pp;
  le[0] = '\0';
  key[0] = '\0';
  if (*p != '{')
    return 0;
  p++;
  while (*p != '}') {
    const char *n = p;
    while (isalnum((unsigned char)*p) || *p == '_')
      p++;
    if (p == n || !(isalpha((unsigned char)*n) || *n == '_') || *p++ != '=' || *p++ != '"')
      return -1;
    int is_le = (size_t)(p - 2 - n) == 2 && strncmp(n, "le", 2) == 0;
    const char *start = n;
    size_t k = 0;
    while (*p != '"') {
      if (*p == '\0' || *p == '\n')
        return -1;
      if (*p == '\\') {
        p++;
        if (*p != '\\' && *p != '"' && *p != 'n')
          return -1;
      }
      if (is_le && k + 1 < lelen)
        le[k++] = *p;
      p++;
    }
    if (is_le)
      le[k] = '\0';
    p++;
    if (!is_le) {
      size_t kl = strlen(key);
      snprintf(key + kl, keylen - kl, "%.*s,", (int)(p - start), start);
    }
    if (*p == ',')
      p++;
    else if (*p != '}')
      return -1;
  }
  *pp = p + 1;
  return 0;
}

static int parse_value(const char *s, double *v) {
  if (strcmp(s, "+Inf") == 0) {
    *v = INFINITY;
    return 0;
  }
  if (strcmp(s, "-Inf") == 0) {
    *v = -INFINITY;
    return 0;
  }
  if (strcmp(s, "NaN") == 0) {
    *v = NAN;
    return 0;
  }
  char *end;
  *v = strtod(s, &end);
  return (end != s && *end == '\0') ? 0 : -1;
}

#define FAIL(...)                                                              \
  do {                                                                         \
    snprintf(err, errlen, "line %d: ", lineno);                                \
    size_t _l = strlen(err);                                                   \
    snprintf(err + _l, errlen - _l, __VA_ARGS__);                              \
    return -1;                                                                 \
  } while (0)

int prom_check(const char *text, char *err, size_t errlen) {
  family fams[MAXF];
  int nf = 0, lineno = 0;
  family *cur = NULL;
  char seen[256][160];
  int nseen = 0;
  size_t tl = strlen(text);
  if (tl == 0 || text[tl - 1] != '\n') {
    snprintf(err, errlen, "the exposition must end with a newline");
    return -1;
  }
  for (const char *p = text; *p;) {
    const char *eol = strchr(p, '\n');
    char line[1024];
    size_t l = (size_t)(eol - p);
    lineno++;
    if (l >= sizeof line)
      FAIL("line too long");
    memcpy(line, p, l);
    line[l] = '\0';
    p = eol + 1;
    if (l == 0)
      continue;
    if (line[0] == '#') {
      char kw[8], name[160], rest[512] = "";
      if (sscanf(line, "# %7s %159s %511[^\n]", kw, name, rest) < 2)
        continue; /* a plain comment */
      if (strcmp(kw, "HELP") != 0 && strcmp(kw, "TYPE") != 0)
        continue;
      if (!name_ok(name, strlen(name)))
        FAIL("bad metric name '%s'", name);
      family *f = find(fams, nf, name);
      if (f == NULL) {
        if (nf == MAXF)
          FAIL("too many families");
        f = &fams[nf++];
        memset(f, 0, sizeof *f);
        snprintf(f->name, sizeof f->name, "%s", name);
        f->last_le = -INFINITY;
      } else if (f->samples_seen) {
        FAIL("%s for '%s' after its samples", kw, name);
      }
      if (strcmp(kw, "HELP") == 0) {
        if (f->help++)
          FAIL("second HELP for '%s'", name);
      } else {
        if (f->type[0])
          FAIL("second TYPE for '%s'", name);
        if (strcmp(rest, "counter") && strcmp(rest, "gauge") && strcmp(rest, "histogram") &&
            strcmp(rest, "summary") && strcmp(rest, "untyped"))
          FAIL("unknown type '%s'", rest);
        snprintf(f->type, sizeof f->type, "%.15s", rest);
        if (strcmp(rest, "counter") == 0 && (strlen(name) < 6 ||
                                             strcmp(name + strlen(name) - 6, "_total") != 0))
          FAIL("counter '%s' should end in _total", name);
      }
      continue;
    }
    /* A sample. */
    const char *q = line;
    while (isalnum((unsigned char)*q) || *q == '_' || *q == ':')
      q++;
    char name[160];
    size_t nl = (size_t)(q - line);
    if (!name_ok(line, nl) || nl >= sizeof name)
      FAIL("bad sample name");
    memcpy(name, line, nl);
    name[nl] = '\0';
    char le[64], key[160];
    if (parse_labels(&q, le, sizeof le, key, sizeof key) != 0)
      FAIL("bad labels in '%s'", line);
    char series[160];
    snprintf(series, sizeof series, "%.*s", (int)(q - line), line);
    if (*q++ != ' ')
      FAIL("expected a space before the value in '%s'", line);
    char val[64];
    if (sscanf(q, "%63s", val) != 1)
      FAIL("missing value");
    double v;
    if (parse_value(val, &v) != 0)
      FAIL("bad value '%s'", val);
    for (int i = 0; i < nseen; i++)
      if (strcmp(seen[i], series) == 0)
        FAIL("duplicate series %s", series);
    if (nseen < 256)
      snprintf(seen[nseen++], sizeof seen[0], "%s", series);
    /* Which family? histogram suffixes belong to their base name. */
    family *f = find(fams, nf, name);
    const char *suffix = "";
    if (f == NULL) {
      static const char *sfx[] = {"_bucket", "_sum", "_count"};
      for (int i = 0; i < 3 && f == NULL; i++) {
        size_t sl = strlen(sfx[i]);
        if (nl > sl && strcmp(name + nl - sl, sfx[i]) == 0) {
          char base[160];
          snprintf(base, sizeof base, "%.*s", (int)(nl - sl), name);
          f = find(fams, nf, base);
          if (f && strcmp(f->type, "histogram") == 0)
            suffix = sfx[i];
          else
            f = NULL;
        }
      }
    }
    if (f == NULL || !f->type[0])
      FAIL("sample '%s' has no TYPE", name);
    if (f->closed)
      FAIL("samples of '%s' are not together", f->name);
    if (cur && cur != f)
      cur->closed = 1;
    cur = f;
    f->samples_seen++;
    if (strcmp(f->type, "counter") == 0 && !(v >= 0))
      FAIL("counter %s is negative", series);
    if (strcmp(f->type, "histogram") == 0) {
      if (strcmp(suffix, "_bucket") == 0 && strcmp(key, f->key) != 0) {
        /* The next series of a labelled histogram: the previous one must
         * have ended with its _count. */
        if (f->samples_seen > 1 && !f->has_count)
          FAIL("histogram %s: a series without _count before %s", f->name, series);
        snprintf(f->key, sizeof f->key, "%s", key);
        f->last_le = -INFINITY;
        f->last_bucket = 0;
        f->has_inf = f->has_count = 0;
      }
      if (strcmp(suffix, "_bucket") == 0) {
        double lev;
        if (!le[0] || parse_value(le, &lev) != 0)
          FAIL("bucket without a valid le: %s", series);
        if (lev <= f->last_le)
          FAIL("buckets out of order at %s", series);
        if (v < f->last_bucket)
          FAIL("buckets not cumulative at %s", series);
        f->last_le = lev;
        f->last_bucket = v;
        if (isinf(lev)) {
          f->has_inf = 1;
          f->inf_bucket = v;
        }
      } else if (strcmp(suffix, "_count") == 0) {
        if (strcmp(key, f->key) != 0 || !f->has_inf || f->inf_bucket != v)
          FAIL("histogram %s: +Inf bucket must exist and equal _count at %s", f->name, series);
        f->has_count = 1;
        f->count = v;
      } else if (suffix[0] == '\0') {
        FAIL("histogram sample without suffix: %s", name);
      }
    }
  }
  for (int i = 0; i < nf; i++) {
    family *f = &fams[i];
    if (strcmp(f->type, "histogram") == 0 && f->samples_seen) {
      if (!f->has_inf || !f->has_count || f->inf_bucket != f->count) {
        snprintf(err, errlen, "histogram %s: +Inf bucket must exist and equal _count", f->name);
        return -1;
      }
    }
    if (!f->help) {
      snprintf(err, errlen, "family %s has no HELP", f->name);
      return -1;
    }
  }
  return 0;
}

double prom_value(const char *text, const char *series) {
  size_t n = strlen(series);
  for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
    if (strncmp(p, series, n) == 0 && p[n] == ' ')
      return strtod(p + n + 1, NULL);
  }
  return -1;
}
