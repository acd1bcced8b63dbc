/* Random numbers: xoshiro256** per thread, seeded from getrandom(2), for
 * jitter and job ids (ids need unpredictability only against guessing,
 * which a 256-bit kernel seed per thread gives). */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static _Thread_local uint64_t st[4];
static _Thread_local int seeded;

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static void seed(void) {
  if (getrandom(st, sizeof st, 0) != (ssize_t)sizeof st) {
    /* No entropy source (very old kernel): mix what differs per thread. */
    st[0] = (uint64_t)rbee__mono_us();
    st[1] = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull;
    st[2] = (uint64_t)(uintptr_t)&st;
    st[3] = (uint64_t)time(NULL);
  }
  if ((st[0] | st[1] | st[2] | st[3]) == 0)
    st[0] = 1;
  seeded = 1;
}

uint64_t rbee__rand64(void) {
  if (!seeded)
    seed();
  uint64_t r = rotl(st[1] * 5, 7) * 9;
  uint64_t t = st[1] << 17;
  st[2] ^= st[0];
  st[3] ^= st[1];
  st[1] ^= st[2];
  st[0] ^= st[3];
  st[2] ^= t;
  st[3] = rotl(st[3], 45);
  return r;
}

double rbee__rand_unit(void) { return (double)(rbee__rand64() >> 11) * 0x1.0p-53; }

void rbee__uuid4(char out[37]) {
  unsigned char b[16];
  if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
    uint64_t a = rbee__rand64(), c = rbee__rand64();
    memcpy(b, &a, 8);
    memcpy(b + 8, &c, 8);
  }
  b[6] = (unsigned char)((b[6] & 0x0F) | 0x40); /* version 4 */
  b[8] = (unsigned char)((b[8] & 0x3F) | 0x80); /* RFC 4122 variant */
  snprintf(out, 37,
           "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
           b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
           b[11], b[12], b[13], b[14], b[15]);
}
