/* One lookup at a time of the queen's host (see resolve.h). Each lookup
 * runs on a detached thread of its own that shares one small struct with
 * the loop; the loop hears of its end through a pipe. Whoever lets go of
 * the struct last frees it, so that freeing the resolver mid-lookup never
 * waits for getaddrinfo. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "resolve.h"

#define ADDRS_MAX 8

typedef struct lookup {
  pthread_mutex_t mu;
  int refs;      /* the thread's and the owner's */
  int abandoned; /* the owner is gone: nobody to tell */
  int wfd;       /* the owner's pipe, written once at the end */
  char host[256], port[8];
  int rc;
  char addrs[ADDRS_MAX * 48]; /* "a,b,[c]" for CURLOPT_RESOLVE */
  char err[256];
} lookup;

struct rbee__hbres {
  char host[256], port[8];
  int fds[2];
  struct event *ev;
  lookup *job; /* the lookup running, NULL when none */
  char addrs[ADDRS_MAX * 48];
  int64_t addrs_until_us; /* monotonic; 0: nothing kept */
  rbee__hbres_cb cb;
  void *userdata;
};

static void lookup_unref(lookup *l) {
  pthread_mutex_lock(&l->mu);
  int last = --l->refs == 0;
  pthread_mutex_unlock(&l->mu);
  if (last) {
    pthread_mutex_destroy(&l->mu);
    free(l);
  }
}

static void format_addrs(lookup *l, const struct addrinfo *ai) {
  size_t n = 0, count = 0;
  for (; ai != NULL && count < ADDRS_MAX; ai = ai->ai_next) {
    char ip[INET6_ADDRSTRLEN], one[INET6_ADDRSTRLEN + 2];
    const void *a;
    if (ai->ai_family == AF_INET)
      a = &((const struct sockaddr_in *)(const void *)ai->ai_addr)->sin_addr;
    else if (ai->ai_family == AF_INET6)
      a = &((const struct sockaddr_in6 *)(const void *)ai->ai_addr)->sin6_addr;
    else
      continue;
    if (inet_ntop(ai->ai_family, a, ip, sizeof ip) == NULL)
      continue;
    snprintf(one, sizeof one, ai->ai_family == AF_INET6 ? "[%s]" : "%s", ip);
    /* getaddrinfo repeats an address per protocol; curl needs it once. */
    char *seen = strstr(l->addrs, one);
    size_t len = strlen(one);
    if (seen && (seen[len] == ',' || seen[len] == '\0') && (seen == l->addrs || seen[-1] == ','))
      continue;
    int w = snprintf(l->addrs + n, sizeof l->addrs - n, "%s%s", n ? "," : "", one);
    if (w < 0 || (size_t)w >= sizeof l->addrs - n)
      break;
    n += (size_t)w;
    count++;
  }
}

static void *lookup_main(void *arg) {
  lookup *l = arg;
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int g = getaddrinfo(l->host, l->port, &hints, &res);
  pthread_mutex_lock(&l->mu);
  l->addrs[0] = '\0';
  if (g == 0)
    format_addrs(l, res);
  if (g != 0 || l->addrs[0] == '\0') {
    l->rc = RBEE_EHTTP;
    snprintf(l->err, sizeof l->err, "cannot resolve host '%.200s': %s", l->host,
             g != 0 ? gai_strerror(g) : "no IPv4 or IPv6 address");
  }
  if (!l->abandoned) {
    ssize_t w;
    do
      w = write(l->wfd, "x", 1);
    while (w < 0 && errno == EINTR);
  }
  pthread_mutex_unlock(&l->mu);
  if (res)
    freeaddrinfo(res);
  lookup_unref(l);
  return NULL;
}

static void on_lookup_done(evutil_socket_t fd, short what, void *arg) {
  rbee__hbres *r = arg;
  char buf[16];
  while (read(fd, buf, sizeof buf) > 0)
    ;
  lookup *l = r->job;
  if (l == NULL)
    return;
  int rc;
  char err[256];
  pthread_mutex_lock(&l->mu);
  rc = l->rc;
  snprintf(err, sizeof err, "%s", l->err);
  if (rc == 0) {
    memcpy(r->addrs, l->addrs, sizeof r->addrs);
    r->addrs_until_us = rbee__mono_us() + (int64_t)RBEE__HBRES_KEEP_MS * 1000;
  }
  pthread_mutex_unlock(&l->mu);
  r->job = NULL;
  lookup_unref(l);
  RBEE_DEBUG("heartbeat", "resolve", "%s: %s", r->host, rc == 0 ? r->addrs : err);
  r->cb(rc, err, r->userdata); /* may free @p r */
}

/* Host and port of @p url; 1 when the host is a numeric address. */
static int host_port(rbee__hbres *r, const char *url) {
  char *host = NULL, *port = NULL;
  int rc = 0;
  CURLU *u = rbee__curl.url();
  if (u == NULL)
    return rbee__error_set(RBEE_ENOMEM, NULL);
  if (rbee__curl.url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
      rbee__curl.url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
      rbee__curl.url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
    rc = rbee__error_set(RBEE_EINVAL, "heartbeat: cannot take the host and port from the URL");
  else if (strlen(host) >= sizeof r->host || strlen(port) >= sizeof r->port)
    rc = rbee__error_set(RBEE_EINVAL, "heartbeat: the queen's host name is too long");
  if (rc == 0) {
    struct in_addr a4;
    snprintf(r->host, sizeof r->host, "%s", host);
    snprintf(r->port, sizeof r->port, "%s", port);
    /* An IPv6 literal comes in brackets. */
    rc = host[0] == '[' || inet_pton(AF_INET, host, &a4) == 1;
  }
  rbee__curl.free(host);
  rbee__curl.free(port);
  rbee__curl.url_cleanup(u);
  return rc;
}

int rbee__hbres_new(rbee__hbres **out, struct event_base *base, const char *url,
                    rbee__hbres_cb cb, void *userdata) {
  *out = NULL;
  rbee__hbres *r = calloc(1, sizeof *r);
  if (r == NULL)
    return rbee__error_set(RBEE_ENOMEM, NULL);
  r->fds[0] = r->fds[1] = -1;
  int rc = host_port(r, url);
  if (rc != 0) {
    free(r);
    return rc < 0 ? rc : 0; /* numeric: no resolver */
  }
  r->cb = cb;
  r->userdata = userdata;
  if (pipe2(r->fds, O_CLOEXEC | O_NONBLOCK) != 0 ||
      (r->ev = event_new(base, r->fds[0], EV_READ | EV_PERSIST, on_lookup_done, r)) == NULL ||
      event_add(r->ev, NULL) != 0) {
    rc = rbee__error_set(RBEE_ENOMEM, "heartbeat: cannot set up the name lookup: %s",
                         strerror(errno));
    rbee__hbres_free(r);
    return rc;
  }
  *out = r;
  return 0;
}

static int start_lookup(rbee__hbres *r) {
  lookup *l = calloc(1, sizeof *l);
  if (l == NULL)
    return rbee__error_set(RBEE_ENOMEM, NULL);
  pthread_mutex_init(&l->mu, NULL);
  l->refs = 2;
  l->wfd = r->fds[1];
  memcpy(l->host, r->host, sizeof l->host);
  memcpy(l->port, r->port, sizeof l->port);
  pthread_attr_t attr;
  pthread_t t;
  sigset_t all, old;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  /* The host program's signals stay with its own threads. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int e = pthread_create(&t, &attr, lookup_main, l);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  if (e != 0) {
    pthread_mutex_destroy(&l->mu);
    free(l);
    return rbee__error_set(RBEE_ENOMEM, "heartbeat: cannot start a thread to look up '%s': %s",
                           r->host, strerror(e));
  }
  r->job = l;
  return 0;
}

int rbee__hbres_get(rbee__hbres *r, struct curl_slist **list) {
  *list = NULL;
  if (r->job != NULL)
    return RBEE__HBRES_PENDING; /* wait for it, never a second one */
  if (r->addrs_until_us == 0 || rbee__mono_us() >= r->addrs_until_us) {
    int rc = start_lookup(r);
    return rc ? rc : RBEE__HBRES_PENDING;
  }
  /* Replace what an earlier beat left in curl's DNS cache. */
  char *del = rbee__asprintf("-%s:%s", r->host, r->port);
  char *add = rbee__asprintf("%s:%s:%s", r->host, r->port, r->addrs);
  struct curl_slist *l = del ? rbee__curl.slist_append(NULL, del) : NULL;
  struct curl_slist *both = l && add ? rbee__curl.slist_append(l, add) : NULL;
  free(del);
  free(add);
  if (both == NULL) {
    rbee__curl.slist_free_all(l);
    return rbee__error_set(RBEE_ENOMEM, NULL);
  }
  *list = both;
  return 0;
}

void rbee__hbres_forget(rbee__hbres *r) {
  if (r != NULL)
    r->addrs_until_us = 0;
}

void rbee__hbres_free(rbee__hbres *r) {
  if (r == NULL)
    return;
  if (r->job != NULL) {
    lookup *l = r->job;
    pthread_mutex_lock(&l->mu);
    l->abandoned = 1; /* from now on the thread does not touch fds[1] */
    pthread_mutex_unlock(&l->mu);
    lookup_unref(l);
  }
  if (r->ev)
    event_free(r->ev);
  if (r->fds[0] >= 0)
    close(r->fds[0]);
  if (r->fds[1] >= 0)
    close(r->fds[1]);
  free(r);
}
