/* tts-worker: a speech-synthesis rbee worker on flite. Operation "tts"
 * speaks "text" sentence by sentence, emitting "progress" per sentence, and
 * ends with an "audio" event carrying a base64 16-bit mono WAV
 * (rbee_job_emit_binary). */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flite/flite.h>
#include <rbee/rbee.h>

#include "wav.h"

#define MAX_TEXT 10000 /* characters */
#define CHUNK_MAX 400  /* a sentence longer than this is cut at a space */

cst_voice *register_cmu_us_rms(const char *voxdir);
cst_voice *register_cmu_us_slt(const char *voxdir);
cst_voice *register_cmu_us_awb(const char *voxdir);
cst_voice *register_cmu_us_kal(const char *voxdir);

static const char *const voice_names[] = {"rms", "slt", "awb", "kal", NULL};
#define NVOICES 4

typedef struct tts {
  cst_voice *voices[NVOICES];
  int def; /* default voice: rms recognizes best */
  pthread_mutex_t lock; /* flite's voices hold per-utterance state */
} tts;

static int voice_index(const char *name) {
  for (int i = 0; i < NVOICES; i++)
    if (strcmp(name, voice_names[i]) == 0)
      return i;
  return -1;
}

/* --model flite or flite:VOICE (the default voice). */
static int on_init(rbee_worker *w, void *ud) {
  tts *t = ud;
  const char *model = rbee_worker_model(w) ? rbee_worker_model(w) : "flite";
  const char *voice = "rms";
  /* The sentence is on_init's reason: the log, /health and the heartbeat. */
  if (strncmp(model, "flite", 5) != 0 || (model[5] != '\0' && model[5] != ':'))
    return rbee_error_set(RBEE_EINIT,
                          "unknown engine '%s': this worker has flite (--model flite or flite:VOICE)",
                          model);
  if (model[5] == ':')
    voice = model + 6;
  if ((t->def = voice_index(voice)) < 0)
    return rbee_error_set(RBEE_EINIT, "unknown voice '%s': flite has rms, slt, awb, kal", voice);
  rbee_worker_set_progress(w, "loading flite", 0.1);
  flite_init();
  cst_voice *(*reg[NVOICES])(const char *) = {register_cmu_us_rms, register_cmu_us_slt,
                                              register_cmu_us_awb, register_cmu_us_kal};
  for (int i = 0; i < NVOICES; i++) {
    if ((t->voices[i] = reg[i](NULL)) == NULL)
      return rbee_error_set(RBEE_EINIT, "flite voice '%s' did not load", voice_names[i]);
    rbee_worker_set_progress(w, voice_names[i], 0.1 + 0.2 * (i + 1));
  }
  rbee_log(RBEE_LOG_INFO, "tts", "init", NULL, "flite ready: voices rms slt awb kal, default %s",
           voice_names[t->def]);
  return 0;
}

/* Length of the next chunk of @p s: through a sentence end, or up to
 * CHUNK_MAX cut at a space. */
static size_t next_chunk(const char *s) {
  size_t i = 0, cut = 0;
  for (; s[i] && i < CHUNK_MAX; i++) {
    if (strchr(".!?;\n", s[i]) && (s[i + 1] == ' ' || s[i + 1] == '\n' || !s[i + 1]))
      return i + 1;
    if (s[i] == ' ')
      cut = i;
  }
  return s[i] == '\0' || cut == 0 ? i : cut;
}

static int speak(tts *t, rbee_job *job, const char *text, int v, double rate, long long out_hz) {
  cst_voice *voice = t->voices[v];
  int16_t *pcm = NULL;
  size_t n = 0, done = 0, total = strlen(text);
  int hz = 0, chunks = 0;
  /* flite's nominal pace is about 175 words per minute. */
  feat_set_float(voice->features, "duration_stretch", (float)(175.0 / rate));
  while (done < total) {
    if (rbee_job_cancelled(job)) {
      free(pcm);
      return 0;
    }
    size_t len = next_chunk(text + done);
    char *chunk = strndup(text + done, len);
    done += len;
    while (text[done] == ' ' || text[done] == '\n')
      done++;
    if (chunk == NULL) {
      free(pcm);
      rbee_job_fail(job, "OUT_OF_MEMORY", "no memory for the text");
      return 1;
    }
    cst_wave *wv = strspn(chunk, " \t\n") == len ? NULL : flite_text_to_wave(chunk, voice);
    free(chunk);
    if (wv && wv->num_samples > 0) {
      int16_t *grown = realloc(pcm, (n + (size_t)wv->num_samples) * sizeof *pcm);
      if (grown == NULL) {
        delete_wave(wv);
        free(pcm);
        rbee_job_fail(job, "OUT_OF_MEMORY", "no memory for the audio");
        return 1;
      }
      pcm = grown;
      memcpy(pcm + n, wv->samples, (size_t)wv->num_samples * sizeof *pcm);
      n += (size_t)wv->num_samples;
      hz = wv->sample_rate;
    }
    delete_wave(wv);
    chunks++;
    cJSON *at = cJSON_CreateObject();
    if (at == NULL || !cJSON_AddNumberToObject(at, "chunk", chunks) ||
        !cJSON_AddNumberToObject(at, "chars_done", (double)done) ||
        !cJSON_AddNumberToObject(at, "chars_total", (double)total) ||
        !cJSON_AddNumberToObject(at, "audio_ms", hz ? (double)(n * 1000 / (size_t)hz) : 0)) {
      cJSON_Delete(at);
      free(pcm);
      rbee_job_fail(job, "OUT_OF_MEMORY", "no memory for a progress event");
      return 1;
    }
    int rc = rbee_job_emit_progress(job, "speaking", (double)done / (double)total, at);
    cJSON_Delete(at);
    if (rc == RBEE_ECANCELED) {
      free(pcm);
      return 0;
    }
    if (rc != 0) {
      free(pcm);
      return rc;
    }
  }
  if (n == 0) {
    rbee_job_fail(job, "INVALID_PARAMS", "text has nothing to speak");
    return 1;
  }
  if (out_hz == 0)
    out_hz = hz;
  size_t m = n, wav_len = 0;
  int16_t *res = out_hz == hz ? pcm : wav_resample(pcm, n, hz, (int)out_hz, &m);
  uint8_t *wav = res ? wav_write16(res, m, (int)out_hz, &wav_len) : NULL;
  if (res != pcm)
    free(res);
  free(pcm);
  if (wav == NULL) {
    rbee_job_fail(job, "OUT_OF_MEMORY", "no memory for the audio");
    return 1;
  }
  cJSON *o = cJSON_CreateObject();
  int rc = 1;
  if (o && cJSON_AddStringToObject(o, "type", "audio") &&
      cJSON_AddStringToObject(o, "format", "wav") &&
      cJSON_AddNumberToObject(o, "sample_rate", (double)out_hz) &&
      cJSON_AddNumberToObject(o, "channels", 1) &&
      cJSON_AddNumberToObject(o, "duration_ms", (double)(m * 1000 / (size_t)out_hz)) &&
      cJSON_AddStringToObject(o, "voice", voice_names[v])) {
    /* base64 in "audio"; a failure other than a cancel already failed the job */
    rc = rbee_job_emit_binary(job, "audio", o, "audio", wav, wav_len);
    if (rc == RBEE_ECANCELED)
      rc = 0;
  } else {
    rbee_job_fail(job, "OUT_OF_MEMORY", "no memory for the audio event");
  }
  cJSON_Delete(o);
  free(wav);
  return rc;
}

static int on_job(rbee_worker *w, rbee_job *job, void *ud) {
  tts *t = ud;
  (void)w;
  const char *text;
  int v;
  long long hz;
  double rate;
  if (rbee_job_param_string(&text, job, "text", NULL, MAX_TEXT) ||
      rbee_job_param_choice(&v, job, "voice", voice_names, t->def) ||
      rbee_job_param_number(&rate, job, "rate", 80, 400, 175) ||
      rbee_job_param_int(&hz, job, "sample_rate", 0, 48000, 0))
    return 1; /* failed with INVALID_PARAMS and the sentence */
  if (text[0] == '\0') {
    rbee_job_fail(job, "INVALID_PARAMS", "text is required: a non-empty string to speak");
    return 1;
  }
  if (hz != 0 && hz < 8000) {
    rbee_job_fail(job, "INVALID_PARAMS",
                  "sample_rate must be 0 (the voice's own) or from 8000 to 48000 (got %lld)", hz);
    return 1;
  }
  pthread_mutex_lock(&t->lock);
  int rc = speak(t, job, text, v, rate, hz);
  pthread_mutex_unlock(&t->lock);
  return rc;
}

int main(int argc, char **argv) {
  static const char *const operations[] = {"tts", NULL};
  rbee_worker_callbacks cb = {
      .version = RBEE_WORKER_CALLBACKS_VERSION,
      .type = "tts",
      .implementation = "tts-worker-rbee",
      .operations = operations,
      .on_init = on_init,
      .on_job = on_job,
  };
  static tts t = {.lock = PTHREAD_MUTEX_INITIALIZER};
  return rbee_worker_main(argc, argv, &cb, &t);
}
