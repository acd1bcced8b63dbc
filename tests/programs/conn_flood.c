/* conn_flood PORT N SECONDS [trickle]: open N connections to 127.0.0.1:PORT
 * at once (non-blocking), hold them SECONDS, with "trickle" send one byte
 * of a request line a second on each. Prints one line of counts: how many
 * were established, how many the server closed, the answers it sent
 * before closing (408, 503) and when the last close came. Bounded in count
 * and time; loopback only. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: conn_flood PORT N SECONDS [trickle]\n");
    return 2;
  }
  int port = atoi(argv[1]), n = atoi(argv[2]);
  double secs = atof(argv[3]);
  int trickle = argc > 4 && strcmp(argv[4], "trickle") == 0;
  if (n <= 0 || n > 5000 || secs <= 0 || secs > 120) {
    fprintf(stderr, "conn_flood: N in 1..5000, SECONDS in 0..120\n");
    return 2;
  }
  struct pollfd *p = calloc((size_t)n, sizeof *p);
  int *state = calloc((size_t)n, sizeof *state); /* 0 connecting, 1 open, 2 closed, 3 failed */
  int *sent = calloc((size_t)n, sizeof *sent);
  if (!p || !state || !sent)
    return 1;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  for (int i = 0; i < n; i++) {
    p[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (p[i].fd < 0) {
      fprintf(stderr, "conn_flood: socket: %s\n", strerror(errno));
      return 1;
    }
    if (connect(p[i].fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS)
      state[i] = 3;
    p[i].events = POLLOUT;
  }
  const char line[] = "GET /health HTTP/1.1\r\nHost: x\r\n";
  int established = 0, closed = 0, a408 = 0, a503 = 0;
  double t0 = now_s(), last_close = 0, next_byte = t0 + 1;
  while (now_s() - t0 < secs) {
    int ms = (int)((secs - (now_s() - t0)) * 1000);
    poll(p, (nfds_t)n, ms < 200 ? ms : 200);
    for (int i = 0; i < n; i++) {
      if (state[i] >= 2 || p[i].revents == 0)
        continue;
      if (state[i] == 0 && (p[i].revents & (POLLOUT | POLLERR | POLLHUP))) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(p[i].fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
          state[i] = 3;
          continue;
        }
        state[i] = 1;
        established++;
        p[i].events = POLLIN;
        continue;
      }
      if (state[i] == 1 && (p[i].revents & (POLLIN | POLLERR | POLLHUP))) {
        char buf[512];
        ssize_t r;
        while ((r = read(p[i].fd, buf, sizeof buf - 1)) > 0) {
          buf[r] = '\0';
          a408 += strstr(buf, " 408 ") != NULL;
          a503 += strstr(buf, " 503 ") != NULL;
        }
        if (r == 0 || (r < 0 && errno != EAGAIN)) {
          state[i] = 2;
          closed++;
          last_close = now_s() - t0;
          p[i].events = 0;
        }
      }
    }
    if (trickle && now_s() >= next_byte) {
      next_byte += 1;
      for (int i = 0; i < n; i++)
        if (state[i] == 1 && sent[i] < (int)sizeof line - 1 &&
            send(p[i].fd, line + sent[i], 1, MSG_NOSIGNAL) == 1)
          sent[i]++;
    }
  }
  printf("established %d closed %d answered408 %d answered503 %d last_close_s %.1f\n",
         established, closed, a408, a503, last_close);
  for (int i = 0; i < n; i++)
    close(p[i].fd);
  free(p);
  free(state);
  free(sent);
  return 0;
}
