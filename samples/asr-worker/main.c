/* asr-worker: a speech-recognition rbee worker on pocketsphinx with the US
 * English model. Operation "asr" takes "audio" (a base64 WAV), converts it
 * to 16 kHz mono, decodes it in 0.1 s pieces with pocketsphinx's voice
 * activity detection, and emits a "segment" per utterance, "progress" per
 * second of audio, and a final "transcript". */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pocketsphinx.h>
#include <rbee/rbee.h>

#include "wav.h"

#define RATE 16000
#define MAX_SECONDS 300
#define PIECE (RATE / 10)

typedef struct asr {
  ps_decoder_t *ps;
  pthread_mutex_t lock; /* one decoder: one utterance at a time */
} asr;

/* --model en-us (the installed model) or a directory holding en-us/,
 * en-us.lm.bin and cmudict-en-us.dict. */
static int on_init(rbee_worker *w, void *ud) {
  asr *a = ud;
  const char *m = rbee_worker_model(w);
  const char *dir = m == NULL || strcmp(m, "en-us") == 0 ? ASR_MODEL_DIR : m;
  char hmm[1024], lm[1024], dict[1024];
  snprintf(hmm, sizeof hmm, "%s/en-us", dir);
  snprintf(lm, sizeof lm, "%s/en-us.lm.bin", dir);
  snprintf(dict, sizeof dict, "%s/cmudict-en-us.dict", dir);
  const char *paths[] = {hmm, lm, dict}, *what[] = {"acoustic model", "language model",
                                                     "dictionary"};
  for (int i = 0; i < 3; i++)
    if (access(paths[i], R_OK) != 0) /* on_init's reason, shown everywhere */
      return rbee_error_set(RBEE_EINIT, "the %s is missing: %s (install pocketsphinx-en-us)",
                            what[i], paths[i]);
  rbee_worker_set_progress(w, "loading the en-us model", 0.2);
  cmd_ln_t *cfg = cmd_ln_init(NULL, ps_args(), TRUE, "-hmm", hmm, "-lm", lm, "-dict", dict,
                              "-logfn", "/dev/null", NULL);
  a->ps = cfg ? ps_init(cfg) : NULL;
  cmd_ln_free_r(cfg); /* the decoder holds its own reference */
  if (a->ps == NULL)
    return rbee_error_set(RBEE_EINIT, "pocketsphinx did not load the model in %s", dir);
  rbee_log(RBEE_LOG_INFO, "asr", "init", NULL, "pocketsphinx ready: model %s", dir);
  return 0;
}

/* The WAV in the job as 16 kHz mono; 0, or -1 with a sentence. */
static int load_audio(const char *b64, int16_t **pcm, size_t *n, char *err, size_t errlen) {
  if (b64[0] == '\0') {
    snprintf(err, errlen, "audio is required: a base64 WAV file");
    return -1;
  }
  uint8_t *bytes;
  size_t len, frames;
  int16_t *raw;
  int hz;
  size_t b64_len = strlen(b64);
  len = b64_len / 4 * 3 + 3;
  if ((bytes = malloc(len)) == NULL) {
    snprintf(err, errlen, "no memory to decode the audio");
    return -1;
  }
  if (rbee_base64_decode(bytes, &len, b64, b64_len) != 0) {
    snprintf(err, errlen, "audio is not base64 (%s)", rbee_error_message());
    free(bytes);
    return -1;
  }
  int rc = wav_read(bytes, len, &raw, &frames, &hz, err, errlen);
  free(bytes);
  if (rc != 0)
    return -1;
  if (frames / (size_t)hz >= MAX_SECONDS) {
    snprintf(err, errlen, "audio is %.1f s long: the limit is %d s", (double)frames / hz,
             MAX_SECONDS);
    free(raw);
    return -1;
  }
  if (hz == RATE) {
    *pcm = raw, *n = frames;
    return 0;
  }
  *pcm = wav_resample(raw, frames, hz, RATE, n);
  free(raw);
  if (*pcm == NULL || *n == 0) {
    free(*pcm);
    snprintf(err, errlen, "audio is too short to resample");
    return -1;
  }
  return 0;
}

static int append(char **text, size_t *len, const char *s) {
  size_t k = strlen(s);
  char *g = realloc(*text, *len + k + 2);
  if (g == NULL)
    return -1;
  if (*len)
    g[(*len)++] = ' ';
  memcpy(g + *len, s, k + 1);
  *text = g, *len += k;
  return 0;
}

/* Ends the utterance and emits its segment; returns the emit's result. */
static int end_segment(asr *a, rbee_job *job, size_t start, size_t end, char **text,
                       size_t *len) {
  ps_end_utt(a->ps);
  const char *hyp = ps_get_hyp(a->ps, NULL);
  int rc = 0;
  if (hyp && hyp[0]) {
    cJSON *o = cJSON_CreateObject();
    if (o && cJSON_AddStringToObject(o, "type", "segment") &&
        cJSON_AddStringToObject(o, "text", hyp) &&
        cJSON_AddNumberToObject(o, "start_ms", (double)(start * 1000 / RATE)) &&
        cJSON_AddNumberToObject(o, "end_ms", (double)(end * 1000 / RATE)) &&
        append(text, len, hyp) == 0)
      rc = rbee_job_emit(job, "segment", o);
    else
      rc = RBEE_ENOMEM;
    cJSON_Delete(o);
  }
  return rc;
}

static int decode(asr *a, rbee_job *job, const int16_t *pcm, size_t n) {
  char *text = NULL;
  size_t len = 0, start = 0;
  int in_utt = 0, rc = 0;
  ps_start_utt(a->ps);
  for (size_t off = 0; off < n && rc == 0; off += PIECE) {
    if (rbee_job_cancelled(job)) {
      rc = RBEE_ECANCELED;
      break;
    }
    size_t k = n - off < PIECE ? n - off : PIECE;
    ps_process_raw(a->ps, pcm + off, k, FALSE, FALSE);
    int speech = ps_get_in_speech(a->ps);
    if (speech && !in_utt)
      in_utt = 1, start = off;
    else if (!speech && in_utt) {
      in_utt = 0;
      rc = end_segment(a, job, start, off + k, &text, &len);
      ps_start_utt(a->ps);
    }
    if (rc == 0 && (off / PIECE) % 10 == 9) {
      cJSON *at = cJSON_CreateObject();
      if (at && cJSON_AddNumberToObject(at, "audio_ms", (double)((off + k) * 1000 / RATE)) &&
          cJSON_AddNumberToObject(at, "total_ms", (double)(n * 1000 / RATE)))
        rc = rbee_job_emit_progress(job, "decoding", (double)(off + k) / (double)n, at);
      else
        rc = RBEE_ENOMEM;
      cJSON_Delete(at);
    }
  }
  /* Half a second of silence closes an utterance cut off at the end. */
  static const int16_t quiet[PIECE];
  for (int i = 0; i < 5 && rc == 0; i++)
    ps_process_raw(a->ps, quiet, PIECE, FALSE, FALSE);
  if (rc == 0)
    rc = end_segment(a, job, start, n, &text, &len);
  else
    ps_end_utt(a->ps);
  if (rc == 0) {
    cJSON *o = cJSON_CreateObject();
    if (o && cJSON_AddStringToObject(o, "type", "transcript") &&
        cJSON_AddStringToObject(o, "text", text ? text : "") &&
        cJSON_AddNumberToObject(o, "duration_ms", (double)(n * 1000 / RATE)))
      rc = rbee_job_emit(job, "transcript", o);
    else
      rc = RBEE_ENOMEM;
    cJSON_Delete(o);
  }
  free(text);
  if (rc == RBEE_ENOMEM)
    rbee_job_fail(job, "OUT_OF_MEMORY", "no memory for the transcript");
  return rc == RBEE_ECANCELED ? 0 : rc;
}

static int on_job(rbee_worker *w, rbee_job *job, void *ud) {
  asr *a = ud;
  (void)w;
  int16_t *pcm;
  size_t n;
  char err[300];
  static const char *const languages[] = {"en-us", NULL};
  const char *b64;
  int lang;
  if (rbee_job_param_string(&b64, job, "audio", NULL, (size_t)1 << 30) ||
      rbee_job_param_choice(&lang, job, "language", languages, 0))
    return 1; /* failed with INVALID_PARAMS and the sentence */
  if (load_audio(b64, &pcm, &n, err, sizeof err) != 0) {
    rbee_job_fail(job, "INVALID_AUDIO", "%s", err);
    return 1;
  }
  pthread_mutex_lock(&a->lock);
  int rc = decode(a, job, pcm, n);
  pthread_mutex_unlock(&a->lock);
  free(pcm);
  return rc;
}

static void on_shutdown(rbee_worker *w, void *ud) {
  asr *a = ud;
  (void)w;
  ps_free(a->ps);
  a->ps = NULL;
}

int main(int argc, char **argv) {
  static const char *const operations[] = {"asr", NULL};
  rbee_worker_callbacks cb = {
      .version = RBEE_WORKER_CALLBACKS_VERSION,
      .type = "asr",
      .implementation = "asr-worker-rbee",
      .operations = operations,
      .on_init = on_init,
      .on_job = on_job,
      .on_shutdown = on_shutdown,
  };
  static asr a = {.lock = PTHREAD_MUTEX_INITIALIZER};
  return rbee_worker_main(argc, argv, &cb, &a);
}
