/* What the sd-worker's two ways of serving share: on_job per slot
 * (main.c) and on_engine stepping every image at once (batch.c). */
#ifndef SD_WORKER_SD_H
#define SD_WORKER_SD_H

#include <stddef.h>
#include <stdint.h>

#include <rbee/rbee.h>

#include "fractal.h"

#define SD_FAILED 1 /* a sentence in err (emit errors are negative) */

typedef struct image_params {
  const char *prompt, *negative_prompt;
  long long steps, width, height, seed, preview_every;
  double guidance;
} image_params;

int64_t sd_now_us(void);
/* sd-worker's own metrics (main.c), in both modes: denoising steps run,
 * PNG bytes sent as @p kind ("preview", "complete"). */
void sd_count_steps(long long n);
void sd_count_image_bytes(const char *kind, size_t n);
/* The final PNG as the job's result for clients that poll: @p meta's
 * fields (its "type" and "bytes" left out) and "image" in base64. */
void sd_set_image_result(rbee_job *job, const cJSON *meta, const uint8_t *png, size_t png_len);
/* The request's parameters; -1 with a sentence in @p err. */
int sd_read_params(const cJSON *p, image_params *ip, char *err, size_t errlen);
/* A named "error" event, then rbee_job_fail(). Returns 1. */
int sd_fail(rbee_job *job, const char *code, const char *msg);
/* The engine for the worker's device (CUDA on cuda:N, else the CPU). */
int sd_make_engine(rbee_worker *w, sd_engine *e, const sd_scene *s, char *err, size_t errlen);
/* --engine batch (batch.c). */
int sd_on_engine(rbee_worker *w, rbee_engine *e, void *ud);

#endif
