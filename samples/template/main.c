/* template: the smallest complete rbee worker. Copy this directory, rename
 * it, and change what the CHANGE comments point at. It serves one operation,
 * "echo", that streams the words of its "prompt" back as tokens. */
#include <cjson/cJSON.h>
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
  snprintf(m->prefix, sizeof m->prefix, "[%s]", name ? name : "echo");
  return 0;
}

/* Once, on the loop thread, when the worker turns ready. Keep it short. */
static void on_ready(rbee_worker *w, void *userdata) {
  (void)userdata;
  rbee_log(RBEE_LOG_INFO, "template", "ready", NULL, "listening on port %d",
           rbee_worker_port(w));
}

/* One job, on a job thread. CHANGE: read your parameters, run your model,
 * emit events. Return 0 when done; rbee_job_fail() + nonzero when not. */
static int on_job(rbee_worker *w, rbee_job *job, void *userdata) {
  model *m = userdata;
  (void)w;
  const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(rbee_job_params(job), "prompt");
  if (!cJSON_IsString(prompt)) {
    rbee_job_fail(job, "INVALID_PARAMS", "prompt must be a string");
    return 1;
  }
  if (rbee_job_emit_token(job, m->prefix) != 0)
    return 0; /* cancelled: the stream is already closed */
  char word[256];
  const char *p = prompt->valuestring;
  while (*p) {
    size_t n = strcspn(p, " ");
    if (n > 0) {
      snprintf(word, sizeof word, " %.*s", (int)(n < 250 ? n : 250), p);
      if (rbee_job_emit_token(job, word) != 0)
        return 0;
    }
    p += n + (p[n] == ' ');
  }
  return 0;
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
