/* Host figures for every device's stats: cores, load, this process' RSS
 * and host memory. Read from procfs with one small read each (no stdio
 * buffers, no allocation): this runs on the event loop for every heartbeat. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "device.h"

/* Read the start of @p path into @p buf (NUL-terminated); bytes read or -1. */
static ssize_t read_head(const char *path, char *buf, size_t len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  ssize_t n = read(fd, buf, len - 1);
  close(fd);
  if (n < 0)
    return -1;
  buf[n] = '\0';
  return n;
}

/* The value in kB of "<key>: <n> kB" in /proc/meminfo text, as bytes. */
static int64_t meminfo_bytes(const char *text, const char *key) {
  const char *p = strstr(text, key);
  if (p == NULL)
    return -1;
  char *end = NULL;
  long long kb = strtoll(p + strlen(key), &end, 10);
  if (end == p + strlen(key) || kb < 0)
    return -1;
  return (int64_t)kb * 1024;
}

void rbee__device_host_stats(rbee_device_usage *out) {
  memset(out->reserved, 0, sizeof out->reserved);
  out->cpu_cores = -1;
  out->load1 = -1.0;
  out->rss_bytes = -1;
  out->mem_total_bytes = -1;
  out->mem_free_bytes = -1;
  out->utilization_pct = -1;
  out->temperature_c = -1;
  out->power_mw = -1;

  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  if (cores > 0)
    out->cpu_cores = (int)cores;
  double load = 0;
  if (getloadavg(&load, 1) == 1)
    out->load1 = load;

  char buf[1024];
  long page = sysconf(_SC_PAGESIZE);
  if (read_head("/proc/self/statm", buf, sizeof buf) > 0 && page > 0) {
    /* "size resident shared ...", in pages. */
    char *end = NULL;
    strtoll(buf, &end, 10);
    long long resident = strtoll(end, NULL, 10);
    if (resident > 0)
      out->rss_bytes = (int64_t)resident * page;
  }
  /* MemTotal and MemAvailable are the first and third lines. */
  if (read_head("/proc/meminfo", buf, sizeof buf) > 0) {
    out->mem_total_bytes = meminfo_bytes(buf, "MemTotal:");
    out->mem_free_bytes = meminfo_bytes(buf, "MemAvailable:");
  }
}
