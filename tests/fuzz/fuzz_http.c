/* libFuzzer target: the request path router and the job request parser,
 * the two places where untrusted bytes are interpreted before a job
 * exists. Input: first byte picks the target, the rest is the data. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const ops[] = {"infer", "image_generation", NULL};
  if (size == 0)
    return 0;
  if (data[0] & 1) {
    char *path = malloc(size);
    if (path == NULL)
      return 0;
    memcpy(path, data + 1, size - 1);
    path[size - 1] = '\0';
    rbee__route r;
    rbee__route_parse(&r, path);
    if (r.id == RBEE__R_JOB || r.id == RBEE__R_JOB_STREAM) {
      if (strlen(r.job_id) != 40 || strncmp(r.job_id, "job-", 4) != 0)
        abort(); /* a job route must carry a well-formed id */
    }
    free(path);
  } else {
    cJSON *o = NULL;
    char err[256];
    if (rbee__job_request_parse(&o, (const char *)data + 1, size - 1, ops, err, sizeof err) ==
        0) {
      if (!cJSON_IsObject(o) || !cJSON_IsString(cJSON_GetObjectItem(o, "operation")))
        abort();
    }
    cJSON_Delete(o);
  }
  return 0;
}
