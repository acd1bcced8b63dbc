/* PNG encoding (libpng), for the sd-worker's images. */
#ifndef SD_IMAGE_H
#define SD_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* Encode 8-bit RGB pixels (rows top to bottom) as a PNG in memory. @p out
 * is malloc'd. 0, or -1 with a sentence in @p err. */
int sd_png_encode(const uint8_t *rgb, int width, int height, uint8_t **out, size_t *out_len,
                  char *err, size_t errlen);
/* Decode a PNG into 8-bit RGB (for tests and tools). */
int sd_png_decode(const uint8_t *png, size_t len, uint8_t **rgb, int *width, int *height,
                  char *err, size_t errlen);

#endif
