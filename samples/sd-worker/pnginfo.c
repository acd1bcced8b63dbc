/* sd-png-info: decode a PNG (a file, or base64 on stdin with --base64 and
 * an output path) with libpng and print "WIDTHxHEIGHT BYTES"; or compare
 * two (--diff A B: fails when over 1% of pixels differ by more than 2 in a
 * channel). Used by `make demo`, the sample tests and scripts/gpu-check.sh
 * to check the sd-worker's images. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rbee/rbee.h>

#include "image.h"

static unsigned char *slurp(FILE *f, size_t *len) {
  size_t cap = 1 << 16, n = 0, r;
  unsigned char *buf = malloc(cap);
  while (buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
    n += r;
    if (n + 1 == cap) {
      unsigned char *b = realloc(buf, cap *= 2);
      if (b == NULL)
        free(buf);
      buf = b;
    }
  }
  if (buf)
    buf[n] = '\0';
  *len = n;
  return buf;
}

static int load(const char *path, uint8_t **rgb, int *w, int *h) {
  FILE *f = fopen(path, "rb");
  size_t len = 0;
  char err[256];
  unsigned char *data = f ? slurp(f, &len) : NULL;
  if (f)
    fclose(f);
  if (data == NULL) {
    fprintf(stderr, "sd-png-info: cannot read %s\n", path);
    return -1;
  }
  int rc = sd_png_decode(data, len, rgb, w, h, err, sizeof err);
  if (rc != 0)
    fprintf(stderr, "sd-png-info: %s: %s\n", path, err);
  free(data);
  return rc;
}

static int diff(const char *a, const char *b) {
  uint8_t *x = NULL, *y = NULL;
  int wa, ha, wb, hb, rc = 65;
  if (load(a, &x, &wa, &ha) == 0 && load(b, &y, &wb, &hb) == 0) {
    if (wa != wb || ha != hb) {
      fprintf(stderr, "sd-png-info: %dx%d against %dx%d\n", wa, ha, wb, hb);
    } else {
      size_t n = (size_t)wa * (size_t)ha, differ = 0;
      for (size_t i = 0; i < n; i++)
        differ += abs(x[3 * i] - y[3 * i]) > 2 || abs(x[3 * i + 1] - y[3 * i + 1]) > 2 ||
                  abs(x[3 * i + 2] - y[3 * i + 2]) > 2;
      printf("%zu of %zu pixels differ (%.3f%%)\n", differ, n, 100.0 * (double)differ / (double)n);
      rc = differ * 100 <= n ? 0 : 1;
    }
  }
  free(x);
  free(y);
  return rc;
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "--diff") == 0)
    return diff(argv[2], argv[3]);
  if (argc < 2 || (strcmp(argv[1], "--base64") == 0 && argc < 3)) {
    fprintf(stderr, "usage: sd-png-info FILE.png | sd-png-info --base64 OUT.png < base64 |\n"
                    "       sd-png-info --diff A.png B.png\n");
    return 64;
  }
  int b64 = strcmp(argv[1], "--base64") == 0;
  FILE *f = b64 ? stdin : fopen(argv[1], "rb");
  if (f == NULL) {
    perror(argv[1]);
    return 66;
  }
  size_t len = 0;
  unsigned char *data = slurp(f, &len), *png = data, *rgb = NULL;
  if (!b64)
    fclose(f);
  if (data == NULL) {
    fprintf(stderr, "sd-png-info: out of memory\n");
    return 70;
  }
  if (b64) {
    while (len && (data[len - 1] == '\n' || data[len - 1] == '\r'))
      data[--len] = '\0';
    size_t cap = len / 4 * 3 + 3;
    if ((png = malloc(cap)) == NULL || rbee_base64_decode(png, &cap, (char *)data, len) != 0) {
      fprintf(stderr, "sd-png-info: the input is not base64: %s\n", rbee_error_message());
      free(png);
      free(data);
      return 65;
    }
    len = cap;
    FILE *o = fopen(argv[2], "wb");
    if (o == NULL || fwrite(png, 1, len, o) != len || fclose(o) != 0) {
      perror(argv[2]);
      return 73;
    }
  }
  int w = 0, h = 0;
  char err[256];
  int rc = sd_png_decode(png, len, &rgb, &w, &h, err, sizeof err);
  if (rc == 0)
    printf("%dx%d %zu\n", w, h, len);
  else
    fprintf(stderr, "sd-png-info: %s\n", err);
  free(rgb);
  if (png != data)
    free(png);
  free(data);
  return rc == 0 ? 0 : 65;
}
