/* A worker served by on_engine (rbee/engine.h) for tests/test_engine.c:
 * operation "infer" emits one token per step for "n" steps ("size" bytes
 * each, default a short word); every step costs --step-ms. Faults on
 * demand: --return-after S / --fail-after S make on_engine return (0, or
 * an error with a sentence) at step S; --capacity-file F sets the
 * capacity to the number written in F (checked every step, then
 * removed); --ignore-cancel never asks which jobs were cancelled (it learns
 * of a cancel only from its emits). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rbee/rbee.h>

#define MAXJ 256

static long step_ms = 5, return_after = -1, fail_after = -1;
static const char *capacity_file;
static int ignore_cancel;

typedef struct seq {
  rbee_job *job;
  long long n, sent, size;
  char *tok;
} seq;

static int on_flag(const char *name, const char *value, void *ud) {
  (void)ud;
  if (strcmp(name, "step-ms") == 0)
    step_ms = atol(value);
  else if (strcmp(name, "return-after") == 0)
    return_after = atol(value);
  else if (strcmp(name, "fail-after") == 0)
    fail_after = atol(value);
  else if (strcmp(name, "capacity-file") == 0)
    capacity_file = value;
  else if (strcmp(name, "ignore-cancel") == 0)
    ignore_cancel = 1;
  return 0;
}

static void check_capacity(rbee_engine *e) {
  FILE *f = capacity_file ? fopen(capacity_file, "r") : NULL;
  unsigned c = 0;
  if (f == NULL)
    return;
  if (fscanf(f, "%u", &c) == 1 && rbee_engine_set_capacity(e, c) == 0)
    rbee_log(RBEE_LOG_INFO, "test", "capacity", NULL, "capacity %u", c);
  fclose(f);
  unlink(capacity_file);
}

static void end_at(rbee_engine *e, seq *s, int *ns, int i) {
  rbee_engine_job_done(e, s[i].job);
  free(s[i].tok);
  memmove(&s[i], &s[i + 1], (size_t)(*ns - i - 1) * sizeof s[0]);
  (*ns)--;
}

static int on_engine(rbee_worker *w, rbee_engine *e, void *ud) {
  (void)w, (void)ud;
  static seq s[MAXJ];
  int ns = 0;
  long step = 0;
  rbee_job *got[MAXJ];
  for (;;) {
    int n = rbee_engine_admit(e, got, (size_t)(MAXJ - ns), ns ? 0 : 200);
    if (n == RBEE_EOF)
      break;
    for (int i = 0; i < n; i++) {
      long long cnt, size;
      if (rbee_job_param_int(&cnt, got[i], "n", 0, 100000000, 10) != 0 ||
          rbee_job_param_int(&size, got[i], "size", 0, 1 << 20, 0) != 0) {
        rbee_engine_job_done(e, got[i]); /* INVALID_PARAMS: [ERROR] */
        continue;
      }
      s[ns] = (seq){got[i], cnt, 0, size, NULL};
      if (size > 0 && (s[ns].tok = malloc((size_t)size + 1)) != NULL) {
        memset(s[ns].tok, 'x', (size_t)size);
        s[ns].tok[size] = '\0';
      }
      ns++;
    }
    if (!ignore_cancel) {
      int k = rbee_engine_cancelled(e, got, MAXJ);
      for (int j = 0; j < k; j++)
        for (int i = 0; i < ns; i++)
          if (s[i].job == got[j]) {
            end_at(e, s, &ns, i);
            break;
          }
    }
    check_capacity(e);
    if (ns == 0)
      continue;
    step++;
    if (return_after >= 0 && step > return_after)
      return 0;
    if (fail_after >= 0 && step > fail_after)
      return rbee_error_set(RBEE_EDEVICE, "simulated device fault at step %ld", step);
    struct timespec ts = {step_ms / 1000, (step_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    for (int i = 0; i < ns;) {
      if (s[i].sent >= s[i].n) {
        end_at(e, s, &ns, i);
        continue;
      }
      char word[32];
      snprintf(word, sizeof word, "w%lld ", s[i].sent);
      int rc = rbee_job_try_emit_token(s[i].job, s[i].tok ? s[i].tok : word);
      if (rc == 0) {
        s[i].sent++;
      } else if (rc != RBEE_EAGAIN) { /* cancelled or ended under us */
        end_at(e, s, &ns, i);
        continue;
      }
      i++;
    }
  }
  for (int i = 0; i < ns; i++)
    free(s[i].tok);
  return 0;
}

static int on_job(rbee_worker *w, rbee_job *job, void *ud) {
  (void)w, (void)job, (void)ud;
  return rbee_error_set(RBEE_EINTERNAL, "on_job must not be called when on_engine is set");
}

int main(int argc, char **argv) {
  static const char *const ops[] = {"infer", NULL};
  static const rbee_worker_flag flags[] = {
      {"step-ms", 1, "each step costs N ms", "N"},
      {"return-after", 1, "on_engine returns 0 at step N", "N"},
      {"fail-after", 1, "on_engine fails at step N", "N"},
      {"capacity-file", 1, "set the capacity to the number in FILE", "FILE"},
      {"ignore-cancel", 0, "never ask which jobs were cancelled", NULL},
      {NULL, 0, NULL, NULL}};
  rbee_worker_callbacks cb;
  rbee_worker_callbacks_init(&cb, RBEE_WORKER_CALLBACKS_VERSION);
  cb.type = "test";
  cb.implementation = "engine-worker-rbee";
  cb.operations = ops;
  cb.on_job = on_job;
  cb.on_engine = on_engine;
  cb.flags = flags;
  cb.on_flag = on_flag;
  return rbee_worker_main(argc, argv, &cb, NULL);
}
