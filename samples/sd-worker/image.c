#include "image.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct membuf {
  uint8_t *data;
  size_t len, cap;
  int oom;
} membuf;

static void write_mem(png_structp png, png_bytep data, png_size_t n) {
  membuf *b = png_get_io_ptr(png);
  if (b->oom)
    return;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 65536;
    while (cap < b->len + n)
      cap *= 2;
    uint8_t *d = realloc(b->data, cap);
    if (d == NULL) {
      b->oom = 1;
      return;
    }
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, data, n);
  b->len += n;
}

static void flush_mem(png_structp png) { (void)png; }

/* libpng reports errors by longjmp; keep its message for ours. */
static void on_png_error(png_structp png, png_const_charp msg) {
  char *err = png_get_error_ptr(png);
  snprintf(err, 200, "libpng: %s", msg);
  png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg) {
  (void)png;
  (void)msg;
}

int sd_png_encode(const uint8_t *rgb, int width, int height, uint8_t **out, size_t *out_len,
                  char *err, size_t errlen) {
  char msg[200] = "libpng failed";
  membuf b = {NULL, 0, 0, 0};
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, msg, on_png_error,
                                            on_png_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (info == NULL) {
    png_destroy_write_struct(&png, NULL);
    snprintf(err, errlen, "out of memory for the PNG encoder");
    return -1;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    free(b.data);
    snprintf(err, errlen, "%s", msg);
    return -1;
  }
  png_set_write_fn(png, &b, write_mem, flush_mem);
  png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_set_compression_level(png, 6);
  png_write_info(png, info);
  for (int y = 0; y < height; y++)
    png_write_row(png, rgb + (size_t)y * (size_t)width * 3);
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  if (b.oom) {
    free(b.data);
    snprintf(err, errlen, "out of memory while encoding the PNG");
    return -1;
  }
  *out = b.data;
  *out_len = b.len;
  return 0;
}

typedef struct reader {
  const uint8_t *p;
  size_t left;
} reader;

static void read_mem(png_structp png, png_bytep data, png_size_t n) {
  reader *r = png_get_io_ptr(png);
  if (n > r->left)
    png_error(png, "truncated PNG");
  memcpy(data, r->p, n);
  r->p += n;
  r->left -= n;
}

int sd_png_decode(const uint8_t *data, size_t len, uint8_t **rgb_out, int *width, int *height,
                  char *err, size_t errlen) {
  char msg[200] = "libpng failed";
  uint8_t *volatile rgb = NULL;
  reader r = {data, len};
  if (len < 8 || png_sig_cmp(data, 0, 8) != 0) {
    snprintf(err, errlen, "not a PNG");
    return -1;
  }
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, msg, on_png_error,
                                           on_png_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (info == NULL) {
    png_destroy_read_struct(&png, NULL, NULL);
    snprintf(err, errlen, "out of memory for the PNG decoder");
    return -1;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, NULL);
    free(rgb);
    snprintf(err, errlen, "%s", msg);
    return -1;
  }
  png_set_read_fn(png, &r, read_mem);
  png_read_info(png, info);
  png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  if (png_get_color_type(png, info) != PNG_COLOR_TYPE_RGB || png_get_bit_depth(png, info) != 8)
    png_error(png, "expected 8-bit RGB");
  if (w == 0 || h == 0 || w > 16384 || h > 16384)
    png_error(png, "unreasonable size");
  if ((rgb = malloc((size_t)w * h * 3)) == NULL)
    png_error(png, "out of memory");
  for (png_uint_32 y = 0; y < h; y++)
    png_read_row(png, rgb + (size_t)y * w * 3, NULL);
  png_read_end(png, NULL);
  png_destroy_read_struct(&png, &info, NULL);
  *rgb_out = rgb;
  *width = (int)w;
  *height = (int)h;
  return 0;
}
