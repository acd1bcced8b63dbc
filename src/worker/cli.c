/* The worker's command line and environment (CONTRACT section 1). */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/worker_internal.h"
#include "util/util.h"

enum {
  O_WORKER_ID = 1000,
  O_MODEL,
  O_DEVICE,
  O_CUDA_DEVICE,
  O_METAL_DEVICE,
  O_PORT,
  O_BIND,
  O_QUEEN_URL,
  O_API_TOKEN_FILE,
  O_QUEEN_TOKEN_FILE,
  O_HEARTBEAT_INTERVAL,
  O_MAX_JOBS,
  O_MAX_QUEUE,
  O_DRAIN_TIMEOUT,
  O_LOG_FORMAT,
  O_LOG_LEVEL,
  O_LOG_FILE,
  O_CA_FILE,
  O_STREAM_GRACE,
  O_JOB_HANG,
  O_MAX_BODY,
  O_JOB_TIMEOUT,
  O_ROCM_DEVICE, /* aliases of today's rbee binaries (ROCm workers) */
  O_HIVE_URL,
  O_CALLBACK_URL,
  O_MODEL_REF,
  O_REQUEST_TIMEOUT, /* connections (options version 2) */
  O_IDLE_TIMEOUT,
  O_MAX_CONNECTIONS,
  O_EXTRA = 2000 /* + index into cb->flags */
};

/* Flag, env fallbacks, help line. */
typedef struct {
  const char *name;
  int id;
  const char *env1, *env2;
  const char *arg, *help;
} flag_def;

static const flag_def defs[] = {
    {"worker-id", O_WORKER_ID, "RBEE_WORKER_ID", "WORKER_ID", "ID",
     "identity reported to the queen (default worker-<type>-<port>)"},
    {"model", O_MODEL, "RBEE_MODEL", NULL, "M", "model id or path, handed to on_init"},
    {"device", O_DEVICE, "RBEE_DEVICE", NULL, "D",
     "cpu, cuda:N, metal:N, or N for the build's accelerator (default cpu)"},
    {"cuda-device", O_CUDA_DEVICE, NULL, NULL, "N", "same as --device cuda:N"},
    {"metal-device", O_METAL_DEVICE, NULL, NULL, "N", "same as --device metal:N"},
    {"port", O_PORT, "RBEE_PORT", "PORT", "P", "HTTP port, 0 picks a free one (default 8080)"},
    {"bind", O_BIND, "RBEE_BIND", NULL, "ADDR",
     "listen address (default 127.0.0.1); others need an API token"},
    {"queen-url", O_QUEEN_URL, "RBEE_QUEEN_URL", "CALLBACK_URL", "URL",
     "send heartbeats there (default: none, standalone)"},
    {"api-token-file", O_API_TOKEN_FILE, "RBEE_API_TOKEN", "LLORCH_API_TOKEN", "F",
     "bearer token for /v1/* (env: the token itself)"},
    {"queen-token-file", O_QUEEN_TOKEN_FILE, "RBEE_QUEEN_TOKEN", NULL, "F",
     "bearer token for the queen (default: the API token)"},
    {"heartbeat-interval", O_HEARTBEAT_INTERVAL, "RBEE_HEARTBEAT_INTERVAL", NULL, "S",
     "seconds between heartbeats (default 30)"},
    {"max-jobs", O_MAX_JOBS, "RBEE_MAX_JOBS", NULL, "N", "jobs run at once (default 1)"},
    {"max-queue", O_MAX_QUEUE, "RBEE_MAX_QUEUE", NULL, "N",
     "accepted jobs waiting for a slot (default 16)"},
    {"drain-timeout", O_DRAIN_TIMEOUT, "RBEE_DRAIN_TIMEOUT", NULL, "S",
     "seconds jobs get to finish after SIGTERM (default 25)"},
    {"log-format", O_LOG_FORMAT, "RBEE_LOG_FORMAT", "LLORCH_LOG_FORMAT", "F",
     "text or json (default text)"},
    {"log-level", O_LOG_LEVEL, "RBEE_LOG_LEVEL", NULL, "L",
     "error, warn, info, debug, trace (default info)"},
    {"log-file", O_LOG_FILE, "RBEE_LOG_FILE", NULL, "F",
     "append the log there (default stderr; SIGHUP reopens)"},
    {"ca-file", O_CA_FILE, "RBEE_CA_FILE", NULL, "F", "CA bundle for an https queen"},
    {"stream-grace", O_STREAM_GRACE, "RBEE_STREAM_GRACE", NULL, "S",
     "cancel a job nobody reads for this long (default 10)"},
    {"job-hang-timeout", O_JOB_HANG, "RBEE_JOB_HANG_TIMEOUT", NULL, "S",
     "a job silent this long makes the worker degraded (default 0: off)"},
    {"max-body", O_MAX_BODY, "RBEE_MAX_BODY", NULL, "BYTES",
     "largest job request body (default 16777216)"},
    {"job-timeout", O_JOB_TIMEOUT, "RBEE_JOB_TIMEOUT", NULL, "S",
     "deadline of a job that names none, from acceptance (default 0: none)"},
    /* Flags of today's rbee worker binaries, accepted unchanged. */
    {"rocm-device", O_ROCM_DEVICE, NULL, NULL, "N",
     "same as --device rocm:N (this librbee has no ROCm backend: exit 69)"},
    {"hive-url", O_HIVE_URL, NULL, NULL, "URL", "same as --queen-url"},
    {"callback-url", O_CALLBACK_URL, NULL, NULL, "URL", "same as --queen-url"},
    {"model-ref", O_MODEL_REF, NULL, NULL, "M", "same as --model"},
    {"request-timeout", O_REQUEST_TIMEOUT, "RBEE_REQUEST_TIMEOUT", NULL, "S",
     "a new connection's request must arrive whole within this (default 10)"},
    {"idle-timeout", O_IDLE_TIMEOUT, "RBEE_IDLE_TIMEOUT", NULL, "S",
     "close a kept-alive connection idle this long (default 75)"},
    {"max-connections", O_MAX_CONNECTIONS, "RBEE_MAX_CONNECTIONS", NULL, "N",
     "open connections at most (default 1024, kept below the fd limit)"},
};
#define NDEFS (sizeof defs / sizeof defs[0])

static char *own(rbee__worker_args *a, char *s) {
  if (s == NULL)
    return NULL;
  if (a->nowned >= sizeof a->owned / sizeof a->owned[0]) {
    free(s); /* more than 64 string options: reported as out of memory */
    return NULL;
  }
  a->owned[a->nowned++] = s;
  return s;
}

void rbee__worker_args_clear(rbee__worker_args *a) {
  for (unsigned i = 0; i < a->nowned; i++)
    free(a->owned[i]);
  memset(a, 0, sizeof *a);
}

int rbee__addr_is_loopback(const char *addr) {
  struct in_addr v4;
  struct in6_addr v6;
  if (strcmp(addr, "localhost") == 0)
    return 1;
  if (inet_pton(AF_INET, addr, &v4) == 1)
    return (ntohl(v4.s_addr) >> 24) == 127;
  if (inet_pton(AF_INET6, addr, &v6) == 1)
    return IN6_IS_ADDR_LOOPBACK(&v6);
  return 0;
}

static int addr_valid(const char *addr) {
  unsigned char buf[sizeof(struct in6_addr)];
  return strcmp(addr, "localhost") == 0 || inet_pton(AF_INET, addr, buf) == 1 ||
         inet_pton(AF_INET6, addr, buf) == 1;
}

/* Seconds, fractions allowed ("0.5"), into milliseconds. */
static int parse_seconds(unsigned *out_ms, const char *s, double min, double max) {
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end != '\0' || !isfinite(v) || v < min || v > max)
    return RBEE_EINVAL;
  *out_ms = (unsigned)llround(v * 1000.0);
  return 0;
}

/* A bearer token: printable ASCII without spaces, surrounding whitespace
 * (a trailing newline) removed. The message never shows the content. */
static int clean_token(char **out, const char *raw, const char *where) {
  size_t n = strlen(raw);
  while (n > 0 && isspace((unsigned char)raw[n - 1]))
    n--;
  size_t i = 0;
  while (i < n && isspace((unsigned char)raw[i]))
    i++;
  if (i == n)
    return rbee__error_set(RBEE_EINVAL, "%s: the token is empty", where);
  for (size_t k = i; k < n; k++)
    if (raw[k] <= ' ' || raw[k] >= 127)
      return rbee__error_set(RBEE_EINVAL, "%s: the token contains spaces or control characters",
                             where);
  *out = rbee__strndup(raw + i, n - i);
  return *out ? 0 : rbee__error_set(RBEE_ENOMEM, NULL);
}

static int read_token_file(char **out, const char *path, const char *flag) {
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return rbee__error_set(RBEE_EINVAL, "--%s: cannot read '%s': %s", flag, path, strerror(errno));
  char buf[4097];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  int big = n == sizeof buf - 1 && fgetc(f) != EOF;
  fclose(f);
  if (big)
    return rbee__error_set(RBEE_EINVAL, "--%s: '%s' is larger than 4096 bytes", flag, path);
  buf[n] = '\0';
  if (memchr(buf, '\0', n))
    return rbee__error_set(RBEE_EINVAL, "--%s: '%s' holds binary data", flag, path);
  char where[512];
  snprintf(where, sizeof where, "--%s '%s'", flag, path);
  int rc = clean_token(out, buf, where);
  memset(buf, 0, sizeof buf);
  return rc;
}

static int bad(const char *what, const char *value, const char *expected) {
  return rbee__error_set(RBEE_EINVAL, "%s: '%s' is %s", what, value, expected);
}

/* Apply one value of a built-in flag. @p what names it for errors ("--port"
 * or "RBEE_PORT"). */
static int apply(rbee__worker_args *a, int id, const char *v, const char *what) {
  rbee_worker_options *o = &a->opts;
  long n;
  unsigned ms;
  char *s = NULL;
  switch (id) {
  case O_WORKER_ID:
    if (*v == '\0' || strlen(v) > 128)
      return bad(what, v, "not a worker id (1 to 128 characters)");
    for (const char *p = v; *p; p++)
      if (*p <= ' ' || *p >= 127)
        return bad(what, v, "not a worker id (printable ASCII without spaces)");
    o->worker_id = own(a, rbee__strdup(v));
    return o->worker_id ? 0 : RBEE_ENOMEM;
  case O_MODEL:
  case O_MODEL_REF:
    if (*v == '\0')
      return bad(what, v, "not a model (empty)");
    o->model = own(a, rbee__strdup(v));
    return o->model ? 0 : RBEE_ENOMEM;
  case O_DEVICE: {
    rbee_device_spec spec;
    if (rbee_device_spec_parse(&spec, v) == RBEE_EINVAL)
      return bad(what, v, "not a device (cpu, cuda:N, metal:N, rocm:N or N)");
    o->device = own(a, rbee__strdup(v));
    return o->device ? 0 : RBEE_ENOMEM;
  }
  case O_CUDA_DEVICE:
  case O_METAL_DEVICE:
  case O_ROCM_DEVICE:
    if (rbee__parse_long(&n, v, 0, 4095))
      return bad(what, v, "not a device number (0 or more)");
    s = rbee__asprintf("%s:%ld",
                       id == O_CUDA_DEVICE ? "cuda" : id == O_METAL_DEVICE ? "metal" : "rocm", n);
    o->device = own(a, s);
    return o->device ? 0 : RBEE_ENOMEM;
  case O_PORT:
    if (rbee__parse_long(&n, v, 0, 65535))
      return bad(what, v, "not a port number (0 to 65535)");
    o->port = (int)n;
    return 0;
  case O_BIND:
    if (!addr_valid(v))
      return bad(what, v, "not an IP address");
    o->bind = own(a, rbee__strdup(v));
    return o->bind ? 0 : RBEE_ENOMEM;
  case O_QUEEN_URL:
  case O_HIVE_URL:
  case O_CALLBACK_URL: {
    const char *rest = strncmp(v, "http://", 7) == 0    ? v + 7
                       : strncmp(v, "https://", 8) == 0 ? v + 8
                                                        : NULL;
    if (rest == NULL || *rest == '\0' || *rest == '/')
      return bad(what, v, "not an http:// or https:// URL");
    o->queen_url = own(a, rbee__strdup(v));
    return o->queen_url ? 0 : RBEE_ENOMEM;
  }
  case O_API_TOKEN_FILE:
  case O_QUEEN_TOKEN_FILE: {
    const char *flag = id == O_API_TOKEN_FILE ? "api-token-file" : "queen-token-file";
    int rc = what[0] == '-' ? read_token_file(&s, v, flag) : clean_token(&s, v, what);
    if (rc)
      return rc;
    if (own(a, s) == NULL)
      return RBEE_ENOMEM;
    if (id == O_API_TOKEN_FILE)
      o->api_token = s;
    else
      o->queen_token = s;
    return 0;
  }
  case O_HEARTBEAT_INTERVAL:
    if (parse_seconds(&ms, v, 0.05, 3600))
      return bad(what, v, "not a heartbeat interval (0.05 to 3600 seconds)");
    o->heartbeat_interval_ms = ms;
    return 0;
  case O_MAX_JOBS:
    if (rbee__parse_long(&n, v, 1, 1024))
      return bad(what, v, "not a number of job slots (1 to 1024)");
    o->max_jobs = (unsigned)n;
    return 0;
  case O_MAX_QUEUE:
    if (rbee__parse_long(&n, v, 0, 100000))
      return bad(what, v, "not a queue length (0 to 100000)");
    o->max_queue = (unsigned)n;
    return 0;
  case O_DRAIN_TIMEOUT:
    if (parse_seconds(&ms, v, 0, 3600))
      return bad(what, v, "not a drain timeout (0 to 3600 seconds)");
    o->drain_timeout_ms = ms;
    return 0;
  case O_LOG_FORMAT:
    if (strcmp(v, "text") == 0)
      o->log_format = RBEE_LOG_TEXT;
    else if (strcmp(v, "json") == 0)
      o->log_format = RBEE_LOG_JSON;
    else
      return bad(what, v, "not a log format (text or json)");
    return 0;
  case O_LOG_LEVEL:
    if (rbee_log_level_parse(&o->log_level, v))
      return bad(what, v, "not a log level (error, warn, info, debug, trace)");
    return 0;
  case O_LOG_FILE:
    if (*v == '\0')
      return bad(what, v, "not a file name");
    o->log_file = own(a, rbee__strdup(v));
    return o->log_file ? 0 : RBEE_ENOMEM;
  case O_CA_FILE:
    if (*v == '\0')
      return bad(what, v, "not a file name");
    o->ca_file = own(a, rbee__strdup(v));
    return o->ca_file ? 0 : RBEE_ENOMEM;
  case O_STREAM_GRACE:
    if (parse_seconds(&ms, v, 0.01, 3600))
      return bad(what, v, "not a grace time (0.01 to 3600 seconds)");
    o->stream_grace_ms = ms;
    return 0;
  case O_JOB_HANG:
    if (parse_seconds(&ms, v, 0, 86400))
      return bad(what, v, "not a hang timeout (0 to 86400 seconds)");
    o->job_hang_ms = ms;
    return 0;
  case O_JOB_TIMEOUT:
    if (parse_seconds(&ms, v, 0, 86400))
      return bad(what, v, "not a job timeout (0 to 86400 seconds)");
    o->job_timeout_ms = ms;
    return 0;
  case O_MAX_BODY:
    if (rbee__parse_long(&n, v, 1024, 1L << 30))
      return bad(what, v, "not a body limit (1024 to 1073741824 bytes)");
    o->max_body_bytes = (size_t)n;
    return 0;
  case O_REQUEST_TIMEOUT:
    if (parse_seconds(&ms, v, 0.1, 3600))
      return bad(what, v, "not a request timeout (0.1 to 3600 seconds)");
    o->request_timeout_ms = ms;
    return 0;
  case O_IDLE_TIMEOUT:
    if (parse_seconds(&ms, v, 0.1, 86400))
      return bad(what, v, "not an idle timeout (0.1 to 86400 seconds)");
    o->idle_timeout_ms = ms;
    return 0;
  case O_MAX_CONNECTIONS:
    if (rbee__parse_long(&n, v, 1, 1000000))
      return bad(what, v, "not a connection cap (1 to 1000000)");
    o->max_connections = (unsigned)n;
    return 0;
  }
  return rbee__error_set(RBEE_EINTERNAL, "unknown option id %d", id);
}

static const flag_def *def_of(int id) {
  for (size_t i = 0; i < NDEFS; i++)
    if (defs[i].id == id)
      return &defs[i];
  return NULL;
}

int rbee__worker_parse(rbee__worker_args *out, int argc, char **argv,
                       const rbee_worker_callbacks *cb, void *userdata) {
  rbee_worker_options init = RBEE_WORKER_OPTIONS_INIT;
  memset(out, 0, sizeof *out);
  out->opts = init;
  size_t nextra = 0;
  rbee_worker_flag *extra = rbee__worker_flags(cb); /* callbacks v1 or v2 */
  if (cb && cb->flags && extra == NULL)
    return rbee__error_set(RBEE_ENOMEM, "out of memory while parsing the command line");
  while (extra && extra[nextra].name)
    nextra++;
  struct option *longs = calloc(NDEFS + nextra + 3, sizeof *longs);
  char seen[NDEFS] = {0};
  int rc = 0;
  if (longs == NULL) {
    free(extra);
    return rbee__error_set(RBEE_ENOMEM, "out of memory while parsing the command line");
  }
  size_t k = 0;
  for (size_t i = 0; i < NDEFS; i++)
    longs[k++] = (struct option){defs[i].name, required_argument, NULL, defs[i].id};
  for (size_t i = 0; i < nextra; i++)
    longs[k++] = (struct option){extra[i].name, extra[i].has_arg ? required_argument : no_argument,
                                 NULL, O_EXTRA + (int)i};
  longs[k++] = (struct option){"help", no_argument, NULL, 'h'};
  longs[k++] = (struct option){"version", no_argument, NULL, 'V'};

  optind = 0; /* GNU: start over (the tests parse many times) */
  opterr = 0;
  int c;
  /* '+': stop at the first non-option, never permute argv (the hive reads
   * --model back from /proc/PID/cmdline). ':': report missing values. */
  while ((c = getopt_long(argc, argv, "+:hV", longs, NULL)) != -1) {
    const char *opt = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
    if (c == 'h' || c == 'V') {
      out->action = c == 'h' ? RBEE__CLI_HELP : RBEE__CLI_VERSION;
      goto out;
    }
    if (c == ':') {
      rc = rbee__error_set(RBEE_EINVAL, "%s: needs a value", opt);
      goto out;
    }
    if (c == '?') {
      if (optopt)
        rc = rbee__error_set(RBEE_EINVAL, "unknown option '-%c'", optopt);
      else
        rc = rbee__error_set(RBEE_EINVAL, "unknown option '%s'", opt);
      goto out;
    }
    if (c >= O_EXTRA) {
      const rbee_worker_flag *f = &extra[c - O_EXTRA];
      rbee_error_clear();
      if (cb->on_flag == NULL || cb->on_flag(f->name, optarg, userdata) != 0) {
        char m[256]; /* a copy: the message buffer is rewritten below */
        snprintf(m, sizeof m, "%s", rbee_error_message());
        rc = rbee__error_set(RBEE_EINVAL, "--%s: %s", f->name,
                             *m       ? m
                             : optarg ? "bad value"
                                      : "not accepted");
        goto out;
      }
      continue;
    }
    const flag_def *d = def_of(c);
    char what[64];
    snprintf(what, sizeof what, "--%s", d->name);
    if ((rc = apply(out, c, optarg, what)) != 0)
      goto out;
    seen[d - defs] = 1;
    /* An alias sets its target, which then takes no env fallback. */
    int target = c == O_CUDA_DEVICE || c == O_METAL_DEVICE || c == O_ROCM_DEVICE ? O_DEVICE
                 : c == O_HIVE_URL || c == O_CALLBACK_URL                       ? O_QUEEN_URL
                 : c == O_MODEL_REF                                             ? O_MODEL
                                                                                : 0;
    if (target)
      seen[def_of(target) - defs] = 1;
  }
  if (optind < argc) {
    rc = rbee__error_set(RBEE_EINVAL, "unexpected argument '%s'", argv[optind]);
    goto out;
  }
  /* Environment fallbacks for what the command line did not set. */
  for (size_t i = 0; i < NDEFS; i++) {
    if (seen[i])
      continue;
    const char *env = defs[i].env1;
    const char *v = env ? getenv(env) : NULL;
    if ((v == NULL || *v == '\0') && defs[i].env2) {
      env = defs[i].env2;
      v = getenv(env);
    }
    if (v == NULL || *v == '\0')
      continue;
    if ((rc = apply(out, defs[i].id, v, env)) != 0)
      goto out;
  }
  rc = rbee__worker_options_check(&out->opts);
out:
  /* apply() and own() return a bare RBEE_ENOMEM: name what happened. */
  if (rc == RBEE_ENOMEM)
    rbee__error_set(RBEE_ENOMEM, "out of memory while parsing the command line");
  free(longs);
  free(extra);
  if (rc)
    rbee__worker_args_clear(out);
  return rc;
}

int rbee__worker_options_check(const rbee_worker_options *o) {
  if (o == NULL)
    return rbee__error_set(RBEE_EINVAL, "options: none given");
  if (rbee__version_check("worker options", o->version, RBEE_WORKER_OPTIONS_VERSION))
    return RBEE_EINVAL;
  rbee_device_spec spec;
  if (o->device == NULL || rbee_device_spec_parse(&spec, o->device) == RBEE_EINVAL)
    return rbee__error_set(RBEE_EINVAL, "device '%s' is not cpu, cuda:N, metal:N or N",
                           o->device ? o->device : "(none)");
  if (o->port < 0 || o->port > 65535)
    return rbee__error_set(RBEE_EINVAL, "port %d is not a port number (0 to 65535)", o->port);
  const char *bind = o->bind ? o->bind : "127.0.0.1";
  if (!addr_valid(bind))
    return rbee__error_set(RBEE_EINVAL, "bind address '%s' is not an IP address", bind);
  if (!rbee__addr_is_loopback(bind) && (o->api_token == NULL || o->api_token[0] == '\0'))
    return rbee__error_set(RBEE_EINVAL,
                           "refusing to listen on %s without an API token: anyone who can reach "
                           "it could run jobs; set --api-token-file or RBEE_API_TOKEN, or bind "
                           "127.0.0.1",
                           bind);
  if (o->max_jobs < 1)
    return rbee__error_set(RBEE_EINVAL, "max_jobs must be at least 1");
  if (o->heartbeat_interval_ms < 50)
    return rbee__error_set(RBEE_EINVAL, "heartbeat interval must be at least 50 ms");
  return 0;
}

void rbee__worker_help(FILE *out, const char *prog, const rbee_worker_callbacks *cb) {
  fprintf(out, "Usage: %s [OPTION]...\n", prog);
  fprintf(out, "An rbee %s worker (%s): serves jobs over HTTP, reports to a queen.\n\n",
          cb && cb->type ? cb->type : "inference",
          cb && cb->implementation ? cb->implementation : "librbee");
  for (size_t i = 0; i < NDEFS; i++) {
    char left[64];
    snprintf(left, sizeof left, "--%s %s", defs[i].name, defs[i].arg);
    fprintf(out, "  %-26s %s", left, defs[i].help);
    if (defs[i].env1)
      fprintf(out, " [env %s%s%s]", defs[i].env1, defs[i].env2 ? ", " : "",
              defs[i].env2 ? defs[i].env2 : "");
    fputc('\n', out);
  }
  rbee_worker_flag *flags = rbee__worker_flags(cb);
  if (flags && flags->name) {
    fprintf(out, "\nOptions of this worker type:\n");
    for (const rbee_worker_flag *f = flags; f->name; f++) {
      char left[64];
      snprintf(left, sizeof left, "--%s%s%s", f->name, f->has_arg ? " " : "",
               !f->has_arg ? "" : f->metavar ? f->metavar : "VALUE");
      fprintf(out, "  %-26s %s\n", left, f->help ? f->help : "");
    }
  }
  free(flags);
  fprintf(out, "\n  %-26s %s\n  %-26s %s\n", "-h, --help", "show this help and exit",
          "-V, --version", "show the version and exit");
  fprintf(out, "\nExit status: 0 stopped cleanly, 64 bad usage, 69 device or model "
               "unavailable, 70 internal error,\n75 the drain deadline passed with a stream "
               "undelivered, 130/143 when a second signal\nforced the exit.\n");
}
