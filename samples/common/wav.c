#include "wav.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put16(uint8_t *p, unsigned v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, v & 0xFFFF), put16(p + 2, v >> 16); }
static uint32_t get16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t get32(const uint8_t *p) { return get16(p) | get16(p + 2) << 16; }

uint8_t *wav_write16(const int16_t *pcm, size_t n, int rate, size_t *out_len) {
  size_t data = n * 2;
  uint8_t *o = malloc(44 + data);
  if (o == NULL)
    return NULL;
  memcpy(o, "RIFF", 4), put32(o + 4, (uint32_t)(36 + data)), memcpy(o + 8, "WAVEfmt ", 8);
  put32(o + 16, 16), put16(o + 20, 1), put16(o + 22, 1), put32(o + 24, (uint32_t)rate);
  put32(o + 28, (uint32_t)rate * 2), put16(o + 32, 2), put16(o + 34, 16);
  memcpy(o + 36, "data", 4), put32(o + 40, (uint32_t)data);
  for (size_t i = 0; i < n; i++)
    put16(o + 44 + 2 * i, (uint16_t)pcm[i]);
  *out_len = 44 + data;
  return o;
}

/* One sample as a value in [-1, 1]. */
static double sample(const uint8_t *p, unsigned bits, int is_float) {
  if (is_float) {
    float f;
    uint32_t u = get32(p);
    memcpy(&f, &u, sizeof f);
    return f != f ? 0 : f > 1 ? 1 : f < -1 ? -1 : f;
  }
  if (bits == 16)
    return (int16_t)get16(p) / 32768.0;
  if (bits == 24)
    return (double)((int32_t)(get16(p) << 8 | (uint32_t)p[2] << 24) >> 8) / 8388608.0;
  return (int32_t)get32(p) / 2147483648.0;
}

int wav_read(const uint8_t *buf, size_t len, int16_t **pcm, size_t *n, int *rate, char *err,
             size_t errlen) {
  if (len < 12 || memcmp(buf, "RIFF", 4) != 0 || memcmp(buf + 8, "WAVE", 4) != 0) {
    snprintf(err, errlen, "audio is not a WAV file (no RIFF/WAVE header)");
    return -1;
  }
  unsigned fmt = 0, channels = 0, bits = 0, align = 0;
  uint32_t hz = 0;
  const uint8_t *data = NULL;
  size_t data_len = 0;
  for (size_t off = 12; off + 8 <= len;) {
    uint32_t sz = get32(buf + off + 4);
    const uint8_t *body = buf + off + 8;
    size_t avail = len - off - 8;
    if (memcmp(buf + off, "fmt ", 4) == 0 && sz >= 16 && avail >= 16) {
      fmt = get16(body), channels = get16(body + 2), hz = get32(body + 4);
      align = get16(body + 12), bits = get16(body + 14);
      if (fmt == 0xFFFE && sz >= 26 && avail >= 26)
        fmt = get16(body + 24); /* WAVE_FORMAT_EXTENSIBLE: the subformat */
    } else if (memcmp(buf + off, "data", 4) == 0) {
      data = body;
      data_len = sz < avail ? sz : avail; /* streamed WAVs may say 0xFFFFFFFF */
      break;
    }
    if (sz > avail)
      break;
    off += 8 + (size_t)sz + (sz & 1);
  }
  if (fmt == 0 || data == NULL) {
    snprintf(err, errlen, "audio is not a usable WAV file (no %s chunk)", fmt ? "data" : "fmt");
    return -1;
  }
  int is_float = fmt == 3 && bits == 32;
  if (!(fmt == 1 && (bits == 16 || bits == 24 || bits == 32)) && !is_float) {
    snprintf(err, errlen,
             "unsupported WAV encoding (format %u, %u-bit): send 16-, 24- or 32-bit PCM or "
             "32-bit float",
             fmt, bits);
    return -1;
  }
  if (channels < 1 || channels > 8 || hz < 8000 || hz > 192000 || align != channels * bits / 8) {
    snprintf(err, errlen, "bad WAV header (%u channels at %u Hz, block %u): want 1-8 channels "
             "at 8000-192000 Hz", channels, (unsigned)hz, align);
    return -1;
  }
  size_t frames = data_len / align;
  if (frames == 0) {
    snprintf(err, errlen, "the WAV has no samples (0 seconds of audio)");
    return -1;
  }
  int16_t *o = malloc(frames * sizeof *o);
  if (o == NULL) {
    snprintf(err, errlen, "no memory for %zu samples", frames);
    return -1;
  }
  for (size_t i = 0; i < frames; i++) {
    double acc = 0;
    for (unsigned c = 0; c < channels; c++)
      acc += sample(data + i * align + c * (bits / 8), bits, is_float);
    double v = acc / channels * 32767.0;
    o[i] = (int16_t)(v > 32767 ? 32767 : v < -32768 ? -32768 : v);
  }
  *pcm = o;
  *n = frames;
  *rate = (int)hz;
  return 0;
}

int16_t *wav_resample(const int16_t *in, size_t n, int from, int to, size_t *out_n) {
  size_t m = (size_t)((double)n * to / from);
  int16_t *o = malloc((m ? m : 1) * sizeof *o);
  if (o == NULL)
    return NULL;
  for (size_t i = 0; i < m; i++) {
    double x = (double)i * from / to;
    size_t k = (size_t)x;
    double f = x - (double)k, a = in[k < n ? k : n - 1], b = in[k + 1 < n ? k + 1 : n - 1];
    o[i] = (int16_t)(a + (b - a) * f);
  }
  *out_n = m;
  return o;
}
