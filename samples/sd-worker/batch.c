/* --engine batch: every active image advances one step per engine step,
 * all of them in one call to the device (sd_engine_step_batch: one CUDA
 * kernel launch for up to SD_BATCH_MAX images; the CPU steps them one
 * after another). Each image's events are those of on_job: "progress"
 * per step, "preview" when asked, "complete" with the PNG. An image whose
 * reader is slow keeps its unsent events and sits out the steps until
 * they went, so its stream is the same and the others go on. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "image.h"
#include "sd.h"

#define ADMIT_MAX 32
#define MAX_PENDING 3

typedef struct img {
  rbee_job *job;
  image_params ip;
  sd_engine eng;
  uint8_t *rgb;
  long long k; /* steps done */
  int64_t t0;
  /* Events made but not sent yet (the reader is slow), oldest first. */
  char *pend[MAX_PENDING];
  const char *pend_name[MAX_PENDING];
  int npend;
  int last_sent; /* the "complete" event went: the job is over */
} img;

typedef struct imgs {
  img **v;
  size_t n, cap;
} imgs;

static void img_free(img *m) {
  if (m->eng.free)
    m->eng.free(m->eng.state);
  for (int i = 0; i < m->npend; i++)
    free(m->pend[i]);
  free(m->rgb);
  free(m);
}

static void img_end(rbee_engine *e, imgs *b, size_t i, const char *code, const char *why) {
  img *m = b->v[i];
  rbee_log(RBEE_LOG_INFO, "sd", "image", rbee_job_id(m->job),
           "%lldx%lld, %lld of %lld steps on %s (batched): %s", m->ip.width, m->ip.height, m->k,
           m->ip.steps, m->eng.device ? m->eng.device : "?", why ? why : "done");
  if (code) {
    /* on_job's named "error" event, unless the reader is too slow for it
     * now: the batch does not wait (the unnamed one comes anyway). */
    cJSON *o = cJSON_CreateObject();
    char *t = NULL;
    if (o && cJSON_AddStringToObject(o, "type", "error") && cJSON_AddStringToObject(o, "code", code) &&
        cJSON_AddStringToObject(o, "message", why) && (t = cJSON_PrintUnformatted(o)) != NULL)
      rbee_job_try_emit_json(m->job, "error", t);
    cJSON_free(t);
    cJSON_Delete(o);
    rbee_engine_job_fail(e, m->job, code, "%s", why);
  } else {
    rbee_engine_job_done(e, m->job);
  }
  img_free(m);
  memmove(&b->v[i], &b->v[i + 1], (b->n - i - 1) * sizeof b->v[0]);
  b->n--;
}

/* Queue one event; -1 out of memory (the text is taken either way). */
static int queue(img *m, const char *name, char *json) {
  if (json == NULL || m->npend == MAX_PENDING) {
    free(json);
    return -1;
  }
  m->pend[m->npend] = json;
  m->pend_name[m->npend++] = name;
  return 0;
}

static char *progress_json(const img *m) {
  char buf[256];
  snprintf(buf, sizeof buf,
           "{\"type\":\"progress\",\"phase\":\"denoising\",\"progress\":%.17g,\"step\":%lld,"
           "\"total\":%lld}",
           (double)m->k / (double)m->ip.steps, m->k, m->ip.steps);
  size_t len = strlen(buf) + 1;
  char *out = malloc(len);
  return out ? memcpy(out, buf, len) : NULL;
}

/* The image event on_job sends with rbee_job_emit_binary, made here so
 * that it can be sent without waiting. NULL with a sentence in @p err. */
static char *image_json(img *m, const char *event, char *err, size_t errlen) {
  uint8_t *png = NULL;
  size_t png_len = 0;
  char *b64 = NULL, *out = NULL;
  cJSON *o = NULL;
  if (m->eng.colorize(m->eng.state, m->rgb, err, errlen) != 0 ||
      sd_png_encode(m->rgb, (int)m->ip.width, (int)m->ip.height, &png, &png_len, err, errlen) != 0)
    goto done;
  size_t b64_len = RBEE_BASE64_LEN(png_len) + 1;
  if ((b64 = malloc(b64_len)) == NULL || rbee_base64_encode(b64, b64_len, png, png_len) != 0 ||
      (o = cJSON_CreateObject()) == NULL || !cJSON_AddStringToObject(o, "type", event) ||
      !cJSON_AddStringToObject(o, "format", "png") ||
      !cJSON_AddNumberToObject(o, "width", (double)m->ip.width) ||
      !cJSON_AddNumberToObject(o, "height", (double)m->ip.height) ||
      !cJSON_AddNumberToObject(o, "step", (double)m->k) ||
      !cJSON_AddNumberToObject(o, "steps", (double)m->ip.steps) ||
      !cJSON_AddNumberToObject(o, "seed", (double)m->ip.seed) ||
      !cJSON_AddStringToObject(o, "device", m->eng.device) ||
      !cJSON_AddNumberToObject(o, "png_bytes", (double)png_len) ||
      !cJSON_AddNumberToObject(o, "duration_ms", (double)((sd_now_us() - m->t0) / 1000)) ||
      !cJSON_AddNumberToObject(o, "bytes", (double)png_len) ||
      !cJSON_AddStringToObject(o, "image", b64) || (out = cJSON_PrintUnformatted(o)) == NULL)
    snprintf(err, errlen, "out of memory for the %s event", event);
  if (out) { /* counted when made: it is sent as soon as its reader reads */
    sd_count_image_bytes(event, png_len);
    if (strcmp(event, "complete") == 0)
      sd_set_image_result(m->job, o, png, png_len);
  }
done:
  cJSON_Delete(o);
  free(b64);
  free(png);
  return out;
}

/* Send queued events without waiting. 1 all sent, 0 the reader is slow,
 * RBEE_ECANCELED, or another emit error (the job is already failed). */
static int flush(img *m) {
  while (m->npend > 0) {
    int rc = rbee_job_try_emit_json(m->job, m->pend_name[0], m->pend[0]);
    if (rc == RBEE_EAGAIN)
      return 0;
    if (rc != 0)
      return rc;
    if (strcmp(m->pend_name[0], "complete") == 0)
      m->last_sent = 1;
    free(m->pend[0]);
    memmove(&m->pend[0], &m->pend[1], (size_t)(m->npend - 1) * sizeof m->pend[0]);
    memmove(&m->pend_name[0], &m->pend_name[1], (size_t)(m->npend - 1) * sizeof m->pend_name[0]);
    m->npend--;
  }
  return 1;
}

static void admit(rbee_worker *w, rbee_engine *e, imgs *b, rbee_job *job) {
  char err[512];
  img *m = calloc(1, sizeof *m);
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 16;
    img **v = realloc(b->v, cap * sizeof *v);
    if (v) {
      b->v = v;
      b->cap = cap;
    }
  }
  if (m == NULL || b->n == b->cap) {
    free(m);
    sd_fail(job, "OUT_OF_MEMORY", "no memory for another image");
    rbee_engine_job_done(e, job);
    return;
  }
  m->job = job;
  if (sd_read_params(rbee_job_params(job), &m->ip, err, sizeof err) != 0) {
    free(m);
    sd_fail(job, "INVALID_PARAMS", err);
    rbee_engine_job_done(e, job);
    return;
  }
  sd_scene scene;
  sd_scene_make(&scene, m->ip.prompt, (uint64_t)m->ip.seed, m->ip.guidance, (int)m->ip.width,
                (int)m->ip.height, (int)m->ip.steps);
  if (sd_make_engine(w, &m->eng, &scene, err, sizeof err) != 0) {
    free(m);
    if (strstr(err, "CUDA"))
      rbee_worker_set_health(w, RBEE_HEALTH_UNHEALTHY, err);
    sd_fail(job, "DEVICE_ERROR", err);
    rbee_engine_job_done(e, job);
    return;
  }
  if ((m->rgb = malloc((size_t)m->ip.width * (size_t)m->ip.height * 3)) == NULL) {
    m->eng.free(m->eng.state);
    free(m);
    sd_fail(job, "OUT_OF_MEMORY", "no memory for the image");
    rbee_engine_job_done(e, job);
    return;
  }
  m->t0 = sd_now_us();
  b->v[b->n++] = m;
}

static long find(const imgs *b, const rbee_job *job) {
  for (size_t i = 0; i < b->n; i++)
    if (b->v[i]->job == job)
      return (long)i;
  return -1;
}

int sd_on_engine(rbee_worker *w, rbee_engine *e, void *ud) {
  (void)ud;
  imgs b = {0};
  rbee_job *got[ADMIT_MAX];
  sd_engine **step = NULL;
  size_t step_cap = 0;
  int device_broken = 0;
  long long steps = 0, launches = 0, image_steps = 0;
  char err[512] = "";
  for (;;) {
    int n = rbee_engine_admit(e, got, ADMIT_MAX, b.n ? 0 : 1000);
    if (n == RBEE_EOF)
      break;
    for (int i = 0; i < n; i++)
      admit(w, e, &b, got[i]);
    int k;
    while ((k = rbee_engine_cancelled(e, got, ADMIT_MAX)) > 0)
      for (int i = 0; i < k; i++) {
        long at = find(&b, got[i]);
        if (at >= 0)
          img_end(e, &b, (size_t)at, NULL, "cancelled");
      }
    /* Unsent events first: an image steps on only once they went. */
    int moved = 0;
    for (size_t i = 0; i < b.n;) {
      int rc = flush(b.v[i]);
      if (rc == 1 && b.v[i]->last_sent) {
        img_end(e, &b, i, NULL, NULL);
        moved = 1;
        continue;
      }
      if (rc < 0) { /* cancelled, or the emit failed the job */
        img_end(e, &b, i, NULL, rc == RBEE_ECANCELED ? "cancelled" : rbee_error_message());
        continue;
      }
      i++;
    }
    if (step_cap < b.n) {
      sd_engine **s = realloc(step, b.n * sizeof *s);
      if (s == NULL)
        continue; /* try again next time round */
      step = s;
      step_cap = b.n;
    }
    size_t ns = 0;
    for (size_t i = 0; i < b.n; i++)
      if (b.v[i]->npend == 0 && b.v[i]->k < b.v[i]->ip.steps)
        step[ns++] = &b.v[i]->eng;
    if (ns == 0) {
      if (b.n > 0 && !moved) { /* every image waits for its reader */
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
      }
      continue;
    }
    /* The step: one call to the device for every image that takes one. */
    int l = sd_engine_step_batch(step, (int)ns, err, sizeof err);
    if (l >= 0) {
      steps++;
      launches += l;
      image_steps += (long long)ns;
      sd_count_steps((long long)ns);
    }
    if (l < 0) {
      char why[600];
      snprintf(why, sizeof why, "batched step on %s: %s", step[0]->device, err);
      if (strcmp(step[0]->device, "cpu") != 0) {
        rbee_worker_set_health(w, RBEE_HEALTH_UNHEALTHY, why);
        device_broken = 1;
      }
      for (size_t i = b.n; i-- > 0;)
        if (b.v[i]->npend == 0 && b.v[i]->k < b.v[i]->ip.steps)
          img_end(e, &b, i, "DEVICE_ERROR", why);
      if (device_broken)
        break; /* the framework fails what is left and drains */
      continue;
    }
    for (size_t i = 0; i < b.n; i++) {
      img *m = b.v[i];
      if (m->npend != 0 || m->k >= m->ip.steps)
        continue;
      m->k++;
      int bad = queue(m, "progress", progress_json(m));
      if (!bad && m->ip.preview_every && m->k % m->ip.preview_every == 0 && m->k < m->ip.steps)
        bad = queue(m, "preview", image_json(m, "preview", err, sizeof err));
      if (!bad && m->k == m->ip.steps)
        bad = queue(m, "complete", image_json(m, "complete", err, sizeof err));
      if (bad) {
        char why[600];
        snprintf(why, sizeof why, "step %lld: %s", m->k, err[0] ? err : "out of memory");
        img_end(e, &b, i, "DEVICE_ERROR", why);
        i--;
      }
      err[0] = '\0';
    }
  }
  /* scripts/gpu-check.sh reads this line: one launch per step. */
  rbee_log(RBEE_LOG_INFO, "sd", "engine", NULL,
           "batched: %lld steps, %lld kernel launches, %lld image steps", steps, launches,
           image_steps);
  for (size_t i = 0; i < b.n; i++)
    img_free(b.v[i]);
  free(b.v);
  free(step);
  return device_broken ? rbee_error_set(RBEE_EDEVICE, "the device failed a batched step") : 0;
}
