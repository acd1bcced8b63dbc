/* Random numbers: xoshiro256** per thread, seeded from getrandom(2), for
 * jitter; job ids straight from the kernel's generator, fetched for many
 * ids at once (one getrandom per job was a syscall on the loop per job). A
 * forked child starts afresh: it must not repeat its parent's ids. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static _Thread_local uint64_t st[4];
static _Thread_local int seeded;
static _Thread_local unsigned char idbuf[512]; /* kernel bytes for ids */
static _Thread_local size_t idleft;            /* unused at its end */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void forget_in_child(void) {
  seeded = 0;
  idleft = 0;
}

static void add_atfork(void) { pthread_atfork(NULL, NULL, forget_in_child); }

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static void seed(void) {
  pthread_once(&atfork_once, add_atfork);
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
  pthread_once(&atfork_once, add_atfork);
  if (idleft < sizeof b && getrandom(idbuf, sizeof idbuf, 0) == (ssize_t)sizeof idbuf)
    idleft = sizeof idbuf;
  if (idleft >= sizeof b) {
    memcpy(b, idbuf + sizeof idbuf - idleft, sizeof b);
    memset(idbuf + sizeof idbuf - idleft, 0, sizeof b); /* handed out once */
    idleft -= sizeof b;
  } else {
    uint64_t a = rbee__rand64(), c = rbee__rand64();
    memcpy(b, &a, 8);
    memcpy(b + 8, &c, 8);
  }
  b[6] = (unsigned char)((b[6] & 0x0F) | 0x40); /* version 4 */
  b[8] = (unsigned char)((b[8] & 0x3F) | 0x80); /* RFC 4122 variant */
  static const char hex[] = "0123456789abcdef";
  char *p = out;
  for (int i = 0; i < 16; i++) { /* 8-4-4-4-12 */
    if (i == 4 || i == 6 || i == 8 || i == 10)
      *p++ = '-';
    *p++ = hex[b[i] >> 4];
    *p++ = hex[b[i] & 15];
  }
  *p = '\0';
}
