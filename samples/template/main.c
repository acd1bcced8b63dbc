/* template: the smallest complete rbee worker. Copy this directory, rename
 * it, and change what the CHANGE comments point at. It serves one operation,
 * "echo", that streams the words of its "prompt" back as tokens. */
#include <stdio.h>
#include <string.h>

#include <rbee/rbee.h>

/* CHANGE: what your model needs (weights, tokenizer, device buffers). */
typedef struct model {
  char prefix[64];
} model;

/* Load the model. Runs on its own thread while the worker already answers
 * /health and heartbeats; report progress. Nonzero = model unavailable:
 * the worker exits 69. */
static int on_init(rbee_worker *w, void *userdata) {
  model *m = userdata;
  const char *name = rbee_worker_model(w); /* --model, as rbee-hive passes it */
  rbee_worker_set_progress(w, "loading the model", 0.5);
  if (name && strlen(name) > 60) /* the reason shows in the log and /health */
    return rbee_error_set(RBEE_EINVAL, "model name '%.20s...' is longer than 60 bytes", name);
  snprintf(m->prefix, sizeof m->prefix, "[%s]", name ? name : "echo");
  return 0;
}

/* Once, on the loop thread, when the worker turns ready. Keep it short. */
static void on_ready(rbee_worker *w, void *userdata) {
  (void)userdata;
  rbee_log(RBEE_LOG_INFO, "template", "ready", NULL, "listening on port %d",
           rbee_worker_port(w));
}

/* The length of the first @p n bytes of @p s cut back to a whole UTF-8
 * character, so that a piece never ends inside one. */
static size_t utf8_cut(const char *s, size_t n) {
  while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
    n--;
  return n;
}

/* One job, on a job thread. CHANGE: read your parameters, run your model,
 * emit events. Return 0 when done; nonzero when failed (the rbee_job_param_*
 * readers and rbee_job_fail() say why).
 *
 * The emit idiom: 0 go on; RBEE_ECANCELED the job was cancelled, stop and
 * return (it ends cancelled); any other error already failed the job
 * (EMIT_FAILED), return it. */
static int on_job(rbee_worker *w, rbee_job *job, void *userdata) {
  model *m = userdata;
  (void)w;
  const char *prompt;
  if (rbee_job_param_string(&prompt, job, "prompt", NULL, 1 << 20) != 0)
    return 1; /* failed with INVALID_PARAMS and a sentence naming "prompt" */
  int rc = rbee_job_emit_token(job, m->prefix);
  char word[256];
  const char *p = prompt;
  while (rc == 0 && *p) {
    size_t n = strcspn(p, " ");
    /* A long word goes out in pieces of whole characters: nothing dropped. */
    for (size_t at = 0; rc == 0 && at < n;) {
      size_t k = n - at > 250 ? utf8_cut(p + at, 250) : n - at;
      if (k == 0) /* not UTF-8 at all (the worker checked the body): cut anyway */
        k = 250;
      snprintf(word, sizeof word, "%s%.*s", at == 0 ? " " : "", (int)k, p + at);
      rc = rbee_job_emit_token(job, word);
      at += k;
    }
    p += n + (p[n] == ' ');
  }
  return rc == RBEE_ECANCELED ? 0 : rc;
}

/* After the drain, with no job running: free the model. */
static void on_shutdown(rbee_worker *w, void *userdata) {
  model *m = userdata;
  (void)w;
  m->prefix[0] = '\0';
}

int main(int argc, char **argv) {
  /* CHANGE: your operation(s), type and implementation name. */
  static const char *const operations[] = {"echo", NULL};
  rbee_worker_callbacks cb = {
      .version = RBEE_WORKER_CALLBACKS_VERSION,
      .type = "template",                  /* default id: worker-template-<port> */
      .implementation = "template-worker", /* reported to the queen */
      .operations = operations,
      .on_init = on_init,
      .on_ready = on_ready,
      .on_job = on_job,
      .on_shutdown = on_shutdown,
  };
  model m = {{0}};
  return rbee_worker_main(argc, argv, &cb, &m);
}
