/* rbee-local-queen: the queen a worker author runs on a laptop instead of
 * the whole rbee system. See docs/local-queen.md. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rbee/log.h>
#include <rbee/version.h>

#include "queen.h"

static void usage(FILE *f) {
  fprintf(f,
          "Usage: rbee-local-queen [options]\n"
          "A local rbee queen: takes worker heartbeats, lists workers, routes jobs.\n\n"
          "  --port P             port to listen on (default 7833; 0 = a free one, printed)\n"
          "  --bind ADDR          address to listen on (default 127.0.0.1)\n"
          "  --dead-after-ms MS   drop a worker silent this long (default 90000)\n"
          "  --token-file F       require this bearer token from workers and clients\n"
          "  --worker-token-file F  bearer token to send to workers with jobs\n"
          "  --registration-token-file F  where to write the generated token workers need\n"
          "                       for heartbeats (default: a private temporary directory)\n"
          "  --insecure-open-registration  take heartbeats without a token (anyone local\n"
          "                       can register a worker)\n"
          "  --max-connections N  open connections at most (default 1024, kept below the\n"
          "                       fd limit)\n"
          "  --request-timeout MS a new connection's request must arrive whole within\n"
          "                       this (default 10000)\n"
          "  --idle-timeout MS    close a kept-alive connection idle this long (default 75000)\n"
          "  --table / --no-table   redraw a table of workers on stdout (default: when a tty)\n"
          "  --log-format text|json\n"
          "  -h, --help, -V, --version\n\n"
          "Routes: POST /v1/worker-heartbeat, GET /v1/workers, POST /v1/jobs (needs \"model\"),\n"
          "GET /health.\n");
}

/* First line of @p path, without the newline; NULL with a message. */
static char *read_token(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    fprintf(stderr, "rbee-local-queen: cannot read token file %s: %s\n", path, strerror(errno));
    return NULL;
  }
  char buf[1024];
  char *ok = fgets(buf, sizeof buf, f);
  fclose(f);
  if (ok == NULL || (buf[strcspn(buf, "\r\n")] = '\0', buf[0] == '\0')) {
    fprintf(stderr, "rbee-local-queen: token file %s is empty\n", path);
    return NULL;
  }
  return strdup(buf);
}

/* fds 0-2 closed at exec would be taken by the loop's own descriptors and
 * log lines written into them: hold them on /dev/null. */
static void hold_stdio(void) {
  for (int fd = 0; fd < 3; fd++)
    if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", fd ? O_WRONLY : O_RDONLY) < 0)
      _exit(70);
}

/* A fresh registration token, written 0600 to @p path (a new file). */
static char *make_token(const char *path) {
  unsigned char raw[16];
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0 || read(fd, raw, sizeof raw) != (ssize_t)sizeof raw) {
    fprintf(stderr, "rbee-local-queen: cannot read /dev/urandom for a token: %s\n", strerror(errno));
    if (fd >= 0)
      close(fd);
    return NULL;
  }
  close(fd);
  char *tok = malloc(2 * sizeof raw + 1);
  if (tok == NULL) {
    fprintf(stderr, "rbee-local-queen: out of memory making a token\n");
    return NULL;
  }
  for (size_t i = 0; i < sizeof raw; i++)
    snprintf(tok + 2 * i, 3, "%02x", raw[i]);
  fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (f == NULL || fprintf(f, "%s\n", tok) < 0 || fclose(f) != 0) {
    fprintf(stderr, "rbee-local-queen: cannot write the registration token to %s: %s\n", path,
            strerror(errno));
    if (f == NULL && fd >= 0)
      close(fd);
    free(tok);
    return NULL;
  }
  return tok;
}

static int parse_uint(const char *s, long max, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < 0 || v > max)
    return -1;
  *out = v;
  return 0;
}

typedef struct stopper {
  struct event_base *base;
  queen *q;
} stopper;

/* End the streams in flight with a last line, give the loop a moment to
 * write it out, then stop. A second signal stops at once. */
static void on_signal(evutil_socket_t sig, short what, void *arg) {
  stopper *s = arg;
  if (s->q == NULL) {
    event_base_loopbreak(s->base);
    return;
  }
  rbee_log(RBEE_LOG_INFO, "queen", "stop", NULL, "signal %d: stopping", (int)sig);
  queen_relay_shutdown(s->q);
  s->q = NULL;
  struct timeval flush = {0, 300000};
  event_base_loopexit(s->base, &flush);
}

int main(int argc, char **argv) {
  hold_stdio();
  queen_options o = QUEEN_OPTIONS_INIT;
  char *token = NULL, *wtoken = NULL, *rtoken = NULL;
  const char *rtoken_path = NULL;
  char tmpdir[4096] = "", tmppath[4200] = "";
  int open_reg = 0;
  int table = isatty(STDOUT_FILENO);
  enum { O_PORT = 1, O_BIND, O_DEAD, O_TOKEN, O_WTOKEN, O_TABLE, O_NOTABLE, O_LOGFMT, O_RTOKEN,
         O_OPEN, O_MAXCONN, O_REQTO, O_IDLETO };
  static const struct option longopts[] = {
      {"port", required_argument, NULL, O_PORT},
      {"bind", required_argument, NULL, O_BIND},
      {"dead-after-ms", required_argument, NULL, O_DEAD},
      {"token-file", required_argument, NULL, O_TOKEN},
      {"worker-token-file", required_argument, NULL, O_WTOKEN},
      {"table", no_argument, NULL, O_TABLE},
      {"no-table", no_argument, NULL, O_NOTABLE},
      {"log-format", required_argument, NULL, O_LOGFMT},
      {"registration-token-file", required_argument, NULL, O_RTOKEN},
      {"insecure-open-registration", no_argument, NULL, O_OPEN},
      {"max-connections", required_argument, NULL, O_MAXCONN},
      {"request-timeout", required_argument, NULL, O_REQTO},
      {"idle-timeout", required_argument, NULL, O_IDLETO},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},
      {NULL, 0, NULL, 0}};
  int c, rc = 64;
  long v;
  while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
    switch (c) {
    case O_PORT:
      if (parse_uint(optarg, 65535, &v) != 0) {
        fprintf(stderr, "rbee-local-queen: --port wants 0..65535, got '%s'\n", optarg);
        goto out;
      }
      o.port = (int)v;
      break;
    case O_BIND:
      o.bind = optarg;
      break;
    case O_DEAD:
      if (parse_uint(optarg, 86400000, &v) != 0 || v < 1) {
        fprintf(stderr, "rbee-local-queen: --dead-after-ms wants 1..86400000, got '%s'\n",
                optarg);
        goto out;
      }
      o.dead_after_ms = (unsigned)v;
      break;
    case O_TOKEN:
      free(token);
      if ((token = read_token(optarg)) == NULL)
        goto out;
      break;
    case O_WTOKEN:
      free(wtoken);
      if ((wtoken = read_token(optarg)) == NULL)
        goto out;
      break;
    case O_RTOKEN:
      rtoken_path = optarg;
      break;
    case O_OPEN:
      open_reg = 1;
      break;
    case O_MAXCONN:
    case O_REQTO:
    case O_IDLETO:
      if (parse_uint(optarg, 86400000, &v) != 0 || v < (c == O_MAXCONN ? 1 : 100)) {
        fprintf(stderr, "rbee-local-queen: --%s wants %s, got '%s'\n",
                c == O_MAXCONN ? "max-connections" : c == O_REQTO ? "request-timeout" : "idle-timeout",
                c == O_MAXCONN ? "1 or more" : "100..86400000 ms", optarg);
        goto out;
      }
      if (c == O_MAXCONN)
        o.max_connections = (unsigned)v;
      else if (c == O_REQTO)
        o.request_timeout_ms = (unsigned)v;
      else
        o.idle_timeout_ms = (unsigned)v;
      break;
    case O_TABLE:
      table = 1;
      break;
    case O_NOTABLE:
      table = 0;
      break;
    case O_LOGFMT:
      if (strcmp(optarg, "json") == 0)
        rbee_log_set_format(RBEE_LOG_JSON);
      else if (strcmp(optarg, "text") == 0)
        rbee_log_set_format(RBEE_LOG_TEXT);
      else {
        fprintf(stderr, "rbee-local-queen: --log-format wants text or json, got '%s'\n", optarg);
        goto out;
      }
      break;
    case 'h':
      usage(stdout);
      rc = 0;
      goto out;
    case 'V':
      printf("rbee-local-queen %s\n", rbee_version());
      rc = 0;
      goto out;
    default:
      usage(stderr);
      goto out;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "rbee-local-queen: unexpected argument '%s'\n", argv[optind]);
    goto out;
  }
  if (token == NULL && !open_reg) {
    /* Workers authenticate by default: a token of our own, in a file. */
    if (rtoken_path == NULL) {
      const char *t = getenv("TMPDIR");
      /* mkdtemp's template: the six X become a unique name. */
      int n = snprintf(tmpdir, sizeof tmpdir, "%s/rbee-queen.XXXXXX", t && *t ? t : "/tmp");
      if (n < 0 || (size_t)n >= sizeof tmpdir) {
        fprintf(stderr, "rbee-local-queen: TMPDIR is too long for the token's directory; "
                        "set a shorter one or pass --registration-token-file\n");
        tmpdir[0] = '\0';
        goto out;
      }
      if (mkdtemp(tmpdir) == NULL) {
        fprintf(stderr, "rbee-local-queen: cannot make a directory for the token: %s\n",
                strerror(errno));
        tmpdir[0] = '\0';
        goto out;
      }
      snprintf(tmppath, sizeof tmppath, "%s/registration-token", tmpdir);
      rtoken_path = tmppath;
    }
    if ((rtoken = make_token(rtoken_path)) == NULL) {
      if (tmpdir[0])
        rmdir(tmpdir);
      tmpdir[0] = '\0';
      goto out;
    }
  }
  o.token = token;
  o.reg_token = rtoken;
  o.worker_token = wtoken;
  o.table = table;
  signal(SIGPIPE, SIG_IGN);

  struct event_base *base = event_base_new();
  queen *q = NULL;
  char err[256];
  rc = 70;
  if (base == NULL) {
    fprintf(stderr, "rbee-local-queen: cannot create the event loop\n");
    goto out;
  }
  if (queen_new(&q, base, &o, err, sizeof err) != 0) {
    fprintf(stderr, "rbee-local-queen: %s\n", err);
    rc = 69;
    event_base_free(base);
    goto out;
  }
  stopper stop = {base, q};
  struct event *sigint = evsignal_new(base, SIGINT, on_signal, &stop);
  struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, &stop);
  if (sigint)
    event_add(sigint, NULL);
  if (sigterm)
    event_add(sigterm, NULL);
  /* Scripts read this line to learn the port (--port 0). */
  printf("rbee-local-queen listening on http://%s:%d\n", o.bind, queen_port(q));
  if (rtoken)
    printf("rbee-local-queen registration token in %s\n", rtoken_path);
  fflush(stdout);
  if (rtoken)
    rbee_log(RBEE_LOG_INFO, "queen", "listen", NULL,
             "workers register with --queen-token-file %s", rtoken_path);
  else if (token == NULL)
    rbee_log(RBEE_LOG_WARN, "queen", "listen", NULL,
             "open registration: any local process can register a worker and receive jobs");
  rbee_log(RBEE_LOG_INFO, "queen", "listen", NULL, "listening on http://%s:%d, dead after %u ms",
           o.bind, queen_port(q), o.dead_after_ms);
  event_base_dispatch(base);
  /* A later signal must not kill a queen that is already stopping. */
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  queen_free(q);
  if (sigint)
    event_free(sigint);
  if (sigterm)
    event_free(sigterm);
  event_base_free(base);
  rc = 0;
out:
  if (rtoken)
    unlink(rtoken_path);
  if (tmpdir[0])
    rmdir(tmpdir);
  free(rtoken);
  free(token);
  free(wtoken);
  return rc;
}
