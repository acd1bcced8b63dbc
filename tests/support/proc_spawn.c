#include "proc_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ms(long ms) {
  struct timespec ts = {0, ms * 1000000L};
  nanosleep(&ts, NULL);
}

int proc_start(proc *p, char *const argv[], const char *const env[]) {
  memset(p, 0, sizeof *p);
  snprintf(p->out_path, sizeof p->out_path, "/tmp/rbee-proc-out-XXXXXX");
  snprintf(p->err_path, sizeof p->err_path, "/tmp/rbee-proc-err-XXXXXX");
  int out = mkstemp(p->out_path);
  int err = mkstemp(p->err_path);
  if (out < 0 || err < 0) {
    if (out >= 0)
      close(out);
    if (err >= 0)
      close(err);
    return -1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    close(out);
    close(err);
    return -1;
  }
  if (pid == 0) {
    dup2(out, STDOUT_FILENO);
    dup2(err, STDERR_FILENO);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0)
      dup2(devnull, STDIN_FILENO);
    /* A test runner may block or ignore signals; the worker must see them
     * as a real service manager would deliver them. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    for (size_t i = 0; env && env[i]; i++) {
      if (env[i][0] == '-') {
        unsetenv(env[i] + 1);
      } else {
        char *copy = strdup(env[i]);
        char *eq = copy ? strchr(copy, '=') : NULL;
        if (eq) {
          *eq = '\0';
          setenv(copy, eq + 1, 1);
        }
        free(copy);
      }
    }
    execv(argv[0], argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  close(out);
  close(err);
  p->pid = pid;
  return 0;
}

int proc_kill(proc *p, int sig) { return p->pid > 0 ? kill(p->pid, sig) : -1; }

static int reap(proc *p, int flags) {
  int st;
  pid_t r = waitpid(p->pid, &st, flags);
  if (r != p->pid)
    return 0;
  p->status = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
  p->pid = 0;
  return 1;
}

int proc_wait(proc *p, int timeout_ms) {
  if (p->pid == 0)
    return p->status;
  long long end = now_ms() + timeout_ms;
  for (;;) {
    if (reap(p, WNOHANG))
      return p->status;
    if (now_ms() >= end)
      return -1;
    nap_ms(5);
  }
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "r");
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  if (buf == NULL) {
    if (f)
      fclose(f);
    return NULL;
  }
  if (f) {
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
      len += n;
      if (cap - len < 2) {
        char *nb = realloc(buf, cap * 2);
        if (nb == NULL)
          break;
        buf = nb;
        cap *= 2;
      }
    }
    fclose(f);
  }
  buf[len] = '\0';
  return buf;
}

char *proc_stdout(const proc *p) { return slurp(p->out_path); }
char *proc_stderr(const proc *p) { return slurp(p->err_path); }

int proc_wait_stderr(proc *p, const char *needle, int timeout_ms) {
  long long end = now_ms() + timeout_ms;
  for (;;) {
    char *s = proc_stderr(p);
    int found = s && strstr(s, needle) != NULL;
    free(s);
    if (found)
      return 0;
    if (now_ms() >= end)
      return -1;
    if (p->pid > 0 && reap(p, WNOHANG)) {
      /* Exited: one last look at what it wrote. */
      s = proc_stderr(p);
      found = s && strstr(s, needle) != NULL;
      free(s);
      return found ? 0 : -1;
    }
    if (p->pid == 0)
      return -1;
    nap_ms(5);
  }
}

int proc_listen_port(proc *p, int timeout_ms) {
  if (proc_wait_stderr(p, "worker.listen", timeout_ms) != 0)
    return -1;
  /* The line may still be half written: wait for its end. */
  for (int tries = 0; tries < 200; tries++) {
    char *s = proc_stderr(p);
    char *l = s ? strstr(s, "worker.listen") : NULL;
    char *nl = l ? strchr(l, '\n') : NULL;
    char *pp = l ? strstr(l, "port=") : NULL;
    int port = -1;
    if (nl && pp && pp < nl)
      port = atoi(pp + 5);
    free(s);
    if (port > 0)
      return port;
    nap_ms(5);
  }
  return -1;
}

void proc_cleanup(proc *p) {
  if (p->pid > 0) {
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    p->pid = 0;
  }
  if (p->out_path[0])
    unlink(p->out_path);
  if (p->err_path[0])
    unlink(p->err_path);
  p->out_path[0] = p->err_path[0] = '\0';
}

int proc_count_lines(const char *text, const char *line) {
  int n = 0;
  size_t len = strlen(line);
  for (const char *s = text; s && *s;) {
    const char *nl = strchr(s, '\n');
    size_t l = nl ? (size_t)(nl - s) : strlen(s);
    if (l == len && strncmp(s, line, len) == 0)
      n++;
    s = nl ? nl + 1 : s + l;
  }
  return n;
}
