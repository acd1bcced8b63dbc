/* sd-png-info: decode a PNG (a file, or base64 on stdin with --base64 and
 * an output path) with libpng and print "WIDTHxHEIGHT BYTES". Used by
 * `make demo` and the sample tests to check the sd-worker's images. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(int argc, char **argv) {
  if (argc < 2 || (strcmp(argv[1], "--base64") == 0 && argc < 3)) {
    fprintf(stderr, "usage: sd-png-info FILE.png | sd-png-info --base64 OUT.png < base64\n");
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
    if (sd_base64_decode((char *)data, &png, &len) != 0) {
      fprintf(stderr, "sd-png-info: the input is not base64\n");
      free(data);
      return 65;
    }
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
