/* 16-bit PCM WAV for the speech samples: encode one mono WAV, decode the
 * common PCM layouts to 16-bit mono, resample. (base64: rbee/binary.h) */
#ifndef SAMPLES_WAV_H
#define SAMPLES_WAV_H

#include <stddef.h>
#include <stdint.h>

/* A RIFF/WAVE file of 16-bit mono PCM (malloc'd). */
uint8_t *wav_write16(const int16_t *pcm, size_t n, int rate, size_t *out_len);
/* Parses PCM 16/24/32-bit integer or 32-bit float, any channel count up to
 * 8 (averaged to mono); 8-bit and compressed formats are refused. */
int wav_read(const uint8_t *buf, size_t len, int16_t **pcm, size_t *n, int *rate, char *err,
             size_t errlen);
/* Linear-interpolation resampling to @p to Hz (malloc'd, *out_n set). */
int16_t *wav_resample(const int16_t *in, size_t n, int from, int to, size_t *out_n);

#endif
