/* systemd's notification protocol, without libsystemd: one AF_UNIX
 * datagram per message to $NOTIFY_SOCKET (a path, or '@' for an abstract
 * name). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "worker/worker_internal.h"
#include "util/util.h"

int rbee__sd_open(rbee__sd *sd) {
  memset(sd, 0, sizeof *sd);
  sd->fd = -1;
  const char *w = getenv("WATCHDOG_USEC");
  const char *wpid = getenv("WATCHDOG_PID");
  long v, pid;
  if (w && rbee__parse_long(&v, w, 1, 1L << 40) == 0 &&
      (wpid == NULL || (rbee__parse_long(&pid, wpid, 1, 1L << 30) == 0 && pid == getpid())))
    sd->watchdog_us = v;
  const char *path = getenv("NOTIFY_SOCKET");
  if (path == NULL || *path == '\0')
    return 0;
  size_t n = strlen(path);
  if ((path[0] != '/' && path[0] != '@') || n < 2 || n >= sizeof sd->path)
    return rbee__error_set(RBEE_EINVAL, "NOTIFY_SOCKET '%s' is not a socket path or @name", path);
  memcpy(sd->path, path, n);
  if (sd->path[0] == '@')
    sd->path[0] = '\0'; /* abstract namespace */
  sd->pathlen = (unsigned)n;
  sd->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (sd->fd < 0)
    return rbee__error_set(RBEE_EIO, "NOTIFY_SOCKET: socket: %s", strerror(errno));
  return 0;
}

int rbee__sd_notify(rbee__sd *sd, const char *fmt, ...) {
  if (sd == NULL || sd->fd < 0)
    return 0;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof msg)
    return rbee__error_set(RBEE_EINVAL, "sd_notify: message too long");
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, sd->path, sd->pathlen);
  socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + sd->pathlen);
  if (sendto(sd->fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&sa, len) < 0)
    return rbee__error_set(RBEE_EIO, "sd_notify: %s", strerror(errno));
  return 0;
}

void rbee__sd_close(rbee__sd *sd) {
  if (sd->fd >= 0)
    close(sd->fd);
  sd->fd = -1;
}
