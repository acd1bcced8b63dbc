/* An out-of-tree worker, built by tests/test_out_of_tree.sh against an
 * installed librbee with pkg-config and only its public headers. It uses
 * each part a worker author needs: a flag with a metavar and a sentence
 * for a bad value, an on_init that fails with its reason, typed
 * parameters, one-call progress and binary output (one event, or pieces).
 *
 * Operation "speak": {"text":..., "rate":0.5..2, "format":"raw"|"chunked",
 * "size":bytes, "loud":bool}. The "audio" is the text repeated to "size"
 * bytes (default: the text once), upper-cased when loud. */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rbee/rbee.h>

typedef struct speaker {
  double speed;          /* --voice-speed */
  const char *init_gate; /* --init-gate: on_init waits for this file */
} speaker;

static int on_flag(const char *name, const char *value, void *ud) {
  speaker *s = ud;
  if (strcmp(name, "voice-speed") == 0) {
    char *end;
    double v = strtod(value, &end);
    if (*end != '\0' || end == value || !(v >= 0.5 && v <= 2))
      return rbee_error_set(RBEE_EINVAL, "'%s' is not a number from 0.5 to 2", value);
    s->speed = v;
    return 0;
  }
  if (strcmp(name, "init-gate") == 0) {
    s->init_gate = value; /* argv lives as long as the process */
    return 0;
  }
  return rbee_error_set(RBEE_EINVAL, "unknown flag");
}

/* --model missing: the model file cannot be read, said in a sentence. */
static int on_init(rbee_worker *w, void *ud) {
  speaker *s = ud;
  const char *model = rbee_worker_model(w) ? rbee_worker_model(w) : "default";
  rbee_worker_set_progress(w, "opening the voice", 0.5);
  for (int i = 0; s->init_gate && access(s->init_gate, F_OK) != 0 && i < 600; i++) {
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  if (strcmp(model, "missing") == 0)
    return rbee_error_set(RBEE_ENOENT, "voice file /nonexistent/%s.voice cannot be read", model);
  return 0;
}

static int on_job(rbee_worker *w, rbee_job *job, void *ud) {
  speaker *s = ud;
  (void)w;
  static const char *const formats[] = {"raw", "chunked", NULL};
  const char *text;
  double rate;
  int format, loud;
  long long size;
  if (rbee_job_param_string(&text, job, "text", NULL, 1000) ||
      rbee_job_param_number(&rate, job, "rate", 0.5, 2, s->speed) ||
      rbee_job_param_choice(&format, job, "format", formats, 0) ||
      rbee_job_param_int(&size, job, "size", 0, 1 << 24, 0) ||
      rbee_job_param_bool(&loud, job, "loud", 0))
    return 1; /* failed: INVALID_PARAMS with the sentence */
  size_t tl = strlen(text), n = size > 0 ? (size_t)size : tl;
  if (tl == 0) {
    rbee_job_fail(job, "INVALID_PARAMS", "text is required: a non-empty string");
    return 1;
  }
  int rc = rbee_job_emit_progress(job, "synthesizing", 0.5, NULL);
  if (rc != 0)
    return rc == RBEE_ECANCELED ? 0 : rc;
  unsigned char *audio = malloc(n ? n : 1);
  if (audio == NULL) {
    rbee_job_fail(job, "OUT_OF_MEMORY", "no memory for %zu bytes of audio", n);
    return 1;
  }
  for (size_t i = 0; i < n; i++) {
    char c = text[i % tl];
    audio[i] = (unsigned char)(loud && c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
  }
  cJSON *meta = cJSON_CreateObject();
  if (meta == NULL || !cJSON_AddStringToObject(meta, "format", "text") ||
      !cJSON_AddNumberToObject(meta, "rate", rate) ||
      !cJSON_AddStringToObject(meta, "state", rbee_job_state_str(rbee_job_get_state(job)))) {
    cJSON_Delete(meta);
    free(audio);
    rbee_job_fail(job, "OUT_OF_MEMORY", "no memory for the audio event");
    return 1;
  }
  if (format == 1)
    rc = rbee_job_emit_binary_chunks(job, "audio", meta, "audio", audio, n, 64 * 1024);
  else
    rc = rbee_job_emit_binary(job, "audio", meta, "audio", audio, n);
  cJSON_Delete(meta);
  free(audio);
  if (rc == RBEE_ECANCELED)
    return 0;
  if (rc != 0)
    return rc; /* the library failed the job (EMIT_FAILED) */
  rc = rbee_job_emit_progress(job, "done", 1.0, NULL);
  return rc == RBEE_ECANCELED ? 0 : rc;
}

int main(int argc, char **argv) {
  static const char *const ops[] = {"speak", NULL};
  static const rbee_worker_flag flags[] = {
      {"voice-speed", 1, "default rate, 0.5 to 2", "X"},
      {"init-gate", 1, "on_init waits until this file exists", "FILE"},
      {NULL, 0, NULL, NULL}};
  rbee_worker_callbacks cb;
  if (rbee_worker_callbacks_init(&cb, RBEE_WORKER_CALLBACKS_VERSION) != 0)
    return 70;
  cb.type = "speaker";
  cb.implementation = "out-of-tree-speaker";
  cb.operations = ops;
  cb.on_init = on_init;
  cb.on_job = on_job;
  cb.flags = flags;
  cb.on_flag = on_flag;
  static speaker s = {1.0, NULL};
  return rbee_worker_main(argc, argv, &cb, &s);
}
