/* sd-worker: an image-generation rbee worker in the manner of the Stable
 * Diffusion worker. It serves operation "image_generation" and streams
 * named events: "progress" per step, "preview" when asked, "complete" with
 * a base64 PNG, "error". The image is a fractal refined over the steps, on
 * the worker's device: a CUDA kernel on cuda:N (in a CUDA build), else the
 * CPU. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <rbee/rbee.h>

#include "fractal.h"
#include "image.h"
#include "sd.h"

#define MIN_SIDE 64
#define MAX_SIDE 2048
#define MAX_STEPS 150

int64_t sd_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int read_side(const cJSON *p, const char *name, long long *out, char *err, size_t errlen) {
  if (rbee_param_int(out, p, name, MIN_SIDE, MAX_SIDE, 512) != 0 || *out % 8 != 0) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, name);
    snprintf(err, errlen, "%s must be a multiple of 8 from %d to %d (got %s%.17g)", name,
             MIN_SIDE, MAX_SIDE, cJSON_IsNumber(v) ? "" : "a non-number ",
             cJSON_IsNumber(v) ? v->valuedouble : 0.0);
    return -1;
  }
  return 0;
}

/* The library's readers; the sentence goes into a named "error" event. */
int sd_read_params(const cJSON *p, image_params *ip, char *err, size_t errlen) {
  if (read_side(p, "width", &ip->width, err, errlen) ||
      read_side(p, "height", &ip->height, err, errlen))
    return -1;
  if (rbee_param_string(&ip->prompt, p, "prompt", NULL, 1 << 16) ||
      rbee_param_string(&ip->negative_prompt, p, "negative_prompt", "", 1 << 16) ||
      rbee_param_int(&ip->steps, p, "steps", 1, MAX_STEPS, 20) ||
      rbee_param_int(&ip->seed, p, "seed", 0, 9007199254740991LL, -1) ||
      rbee_param_number(&ip->guidance, p, "guidance_scale", 0, 30, 7.5) ||
      rbee_param_int(&ip->preview_every, p, "preview_every", 0, MAX_STEPS, 0)) {
    snprintf(err, errlen, "%s", rbee_error_message());
    return -1;
  }
  if (ip->prompt[0] == '\0') {
    snprintf(err, errlen, "prompt is required: a non-empty string describing the image");
    return -1;
  }
  if (ip->seed < 0) {
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
      r = (uint64_t)sd_now_us();
    ip->seed = (long long)(r & 0x1FFFFFFFFFFFFFull);
  }
  return 0;
}

/* The stream's "error" event, then the contract's failure. */
int sd_fail(rbee_job *job, const char *code, const char *msg) {
  cJSON *o = cJSON_CreateObject();
  if (o && cJSON_AddStringToObject(o, "type", "error") && cJSON_AddStringToObject(o, "code", code) &&
      cJSON_AddStringToObject(o, "message", msg))
    rbee_job_emit(job, "error", o);
  cJSON_Delete(o);
  rbee_job_fail(job, code, "%s", msg);
  return 1;
}

/* The final PNG as the job's result, for clients that poll GET
 * /v1/jobs/{id}: the complete event's fields and "image" in base64. A
 * result that cannot be kept is logged; the stream has the image anyway. */
void sd_set_image_result(rbee_job *job, const cJSON *meta, const uint8_t *png, size_t png_len) {
  cJSON *r = cJSON_Duplicate(meta, 1);
  char *b64 = malloc(RBEE_BASE64_LEN(png_len) + 1);
  char *text = NULL;
  if (r) {
    cJSON_DeleteItemFromObjectCaseSensitive(r, "type");
    cJSON_DeleteItemFromObjectCaseSensitive(r, "bytes");
    cJSON_DeleteItemFromObjectCaseSensitive(r, "image");
  }
  if (r && b64 && rbee_base64_encode(b64, RBEE_BASE64_LEN(png_len) + 1, png, png_len) == 0 &&
      cJSON_AddStringToObject(r, "image", b64) && (text = cJSON_PrintUnformatted(r)) != NULL) {
    if (rbee_job_set_result(job, text) != 0)
      rbee_log(RBEE_LOG_WARN, "sd", "result", rbee_job_id(job), "result not kept: %s",
               rbee_error_message());
  }
  cJSON_free(text);
  free(b64);
  cJSON_Delete(r);
}

/* On /metrics beside the framework's (declared in main). */
static rbee_metric *m_steps, *m_image_bytes;

void sd_count_steps(long long n) { rbee_metric_add(m_steps, NULL, (double)n); }

void sd_count_image_bytes(const char *kind, size_t n) {
  const char *const k[] = {kind};
  rbee_metric_add(m_image_bytes, k, (double)n);
}

/* Colour the engine's state, encode it, and emit it as @p event: 0 sent,
 * RBEE_ECANCELED, another emit error (the job is already failed), or
 * SD_FAILED with a sentence in @p err. */
static int emit_image(rbee_job *job, sd_engine *e, const image_params *ip, uint8_t *rgb,
                      const char *event, long long step, int64_t t0, char *err, size_t errlen) {
  uint8_t *png = NULL;
  size_t png_len = 0;
  if (e->colorize(e->state, rgb, err, errlen) != 0)
    return SD_FAILED;
  if (sd_png_encode(rgb, (int)ip->width, (int)ip->height, &png, &png_len, err, errlen) != 0)
    return SD_FAILED;
  cJSON *o = cJSON_CreateObject();
  int rc = SD_FAILED;
  if (o && cJSON_AddStringToObject(o, "type", event) &&
      cJSON_AddStringToObject(o, "format", "png") &&
      cJSON_AddNumberToObject(o, "width", (double)ip->width) &&
      cJSON_AddNumberToObject(o, "height", (double)ip->height) &&
      cJSON_AddNumberToObject(o, "step", (double)step) &&
      cJSON_AddNumberToObject(o, "steps", (double)ip->steps) &&
      cJSON_AddNumberToObject(o, "seed", (double)ip->seed) &&
      cJSON_AddStringToObject(o, "device", e->device) &&
      cJSON_AddNumberToObject(o, "png_bytes", (double)png_len) &&
      cJSON_AddNumberToObject(o, "duration_ms", (double)((sd_now_us() - t0) / 1000)))
  {
    rc = rbee_job_emit_binary(job, event, o, "image", png, png_len);
    if (rc == 0)
      sd_count_image_bytes(event, png_len);
  } else
    snprintf(err, errlen, "out of memory for the image event");
  if (rc == 0 && strcmp(event, "complete") == 0)
    sd_set_image_result(job, o, png, png_len);
  cJSON_Delete(o);
  free(png);
  return rc;
}

int sd_make_engine(rbee_worker *w, sd_engine *e, const sd_scene *s, char *err,
                       size_t errlen) {
  rbee_device *dev = rbee_worker_device(w);
  rbee_device_kind kind = dev ? rbee_device_get_kind(dev) : RBEE_DEVICE_CPU;
#ifdef SD_WITH_CUDA
  if (kind == RBEE_DEVICE_CUDA)
    return sd_cuda_engine(e, s, rbee_device_ordinal(dev), err, errlen);
#endif
  if (kind != RBEE_DEVICE_CPU)
    rbee_log(RBEE_LOG_DEBUG, "sd", "engine", NULL, "no %s kernel in this sample: using the CPU",
             rbee_device_kind_str(kind));
  return sd_cpu_engine(e, s, err, errlen);
}

static int on_job(rbee_worker *w, rbee_job *job, void *ud) {
  image_params ip;
  char err[512];
  (void)ud;
  if (sd_read_params(rbee_job_params(job), &ip, err, sizeof err) != 0)
    return sd_fail(job, "INVALID_PARAMS", err);
  sd_scene scene;
  sd_scene_make(&scene, ip.prompt, (uint64_t)ip.seed, ip.guidance, (int)ip.width,
                (int)ip.height, (int)ip.steps);
  sd_engine e;
  if (sd_make_engine(w, &e, &scene, err, sizeof err) != 0) {
    if (strstr(err, "CUDA"))
      rbee_worker_set_health(w, RBEE_HEALTH_UNHEALTHY, err);
    return sd_fail(job, "DEVICE_ERROR", err);
  }
  uint8_t *rgb = malloc((size_t)ip.width * (size_t)ip.height * 3);
  if (rgb == NULL) {
    e.free(e.state);
    return sd_fail(job, "OUT_OF_MEMORY", "no memory for the image");
  }
  int64_t t0 = sd_now_us();
  int rc = 0;
  for (long long k = 1; k <= ip.steps && rc == 0; k++) {
    if (rbee_job_cancelled(job)) {
      rc = RBEE_ECANCELED;
      break;
    }
    char why[400];
    if (e.step(e.state, why, sizeof why) != 0) {
      snprintf(err, sizeof err, "step %lld on %s: %s", k, e.device, why);
      rc = SD_FAILED;
      break;
    }
    sd_count_steps(1);
    cJSON *at = cJSON_CreateObject();
    if (at == NULL || !cJSON_AddNumberToObject(at, "step", (double)k) ||
        !cJSON_AddNumberToObject(at, "total", (double)ip.steps)) {
      cJSON_Delete(at);
      snprintf(err, sizeof err, "out of memory for a progress event");
      rc = SD_FAILED;
      break;
    }
    /* RBEE_ECANCELED: stop; another error already failed the job */
    rc = rbee_job_emit_progress(job, "denoising", (double)k / (double)ip.steps, at);
    cJSON_Delete(at);
    if (rc == 0 && ip.preview_every && k % ip.preview_every == 0 && k < ip.steps)
      rc = emit_image(job, &e, &ip, rgb, "preview", k, t0, err, sizeof err);
  }
  if (rc == 0)
    rc = emit_image(job, &e, &ip, rgb, "complete", ip.steps, t0, err, sizeof err);
  const char *device = e.device;
  e.free(e.state);
  free(rgb);
  rbee_log(RBEE_LOG_INFO, "sd", "image", rbee_job_id(job), "%lldx%lld, %lld steps on %s: %s",
           ip.width, ip.height, ip.steps, device,
           rc == 0                ? "done"
           : rc == RBEE_ECANCELED ? "cancelled"
           : rc == SD_FAILED      ? err
                                  : rbee_error_message());
  if (rc == RBEE_ECANCELED)
    return 0; /* the job ends cancelled */
  if (rc == SD_FAILED) {
    if (strcmp(device, "cpu") != 0)
      rbee_worker_set_health(w, RBEE_HEALTH_UNHEALTHY, err);
    return sd_fail(job, "DEVICE_ERROR", err);
  }
  return rc; /* 0, or an emit error that already failed the job */
}

static void on_ready(rbee_worker *w, void *ud) {
  rbee_device *dev = rbee_worker_device(w);
  rbee_log(RBEE_LOG_INFO, "sd", "ready", NULL, "serving image_generation on %s, port %d",
           dev ? rbee_device_name(dev) : "cpu", rbee_worker_port(w));
}

static rbee_worker_callbacks *cbp;

/* --engine batch: on_engine steps every image at once (batch.c). */
static int on_flag(const char *name, const char *value, void *ud) {
  (void)ud;
  if (strcmp(name, "engine") == 0) {
    if (strcmp(value, "batch") != 0 && strcmp(value, "slots") != 0)
      return rbee_error_set(RBEE_EINVAL, "--engine: '%s' is neither slots nor batch", value);
    cbp->on_engine = value[0] == 'b' ? sd_on_engine : NULL;
  }
  return 0;
}

int main(int argc, char **argv) {
  static const char *const operations[] = {"image_generation", NULL};
  static const rbee_worker_flag flags[] = {
      {"engine", 1, "slots: a job thread per slot (on_job); batch: one engine thread steps "
                    "every image at once, in one kernel launch per step on CUDA (on_engine)",
       "slots|batch"},
      {NULL, 0, NULL, NULL}};
  rbee_worker_callbacks cb = {
      .version = RBEE_WORKER_CALLBACKS_VERSION,
      .type = "sd",
      .implementation = "sd-worker-rbee",
      .operations = operations,
      .on_ready = on_ready,
      .on_job = on_job,
      .flags = flags,
      .on_flag = on_flag,
  };
  static const char *const kind[] = {"kind", NULL};
  if (rbee_metric_counter_new(&m_steps, "sd_steps_total", "Denoising steps run.", NULL, 0) != 0 ||
      rbee_metric_counter_new(&m_image_bytes, "sd_image_bytes_total",
                              "PNG bytes sent, previews and final images.", kind, 2) != 0) {
    fprintf(stderr, "sd-worker: %s\n", rbee_error_message());
    return RBEE_EXIT_SOFTWARE;
  }
  cbp = &cb;
  return rbee_worker_main(argc, argv, &cb, NULL);
}
