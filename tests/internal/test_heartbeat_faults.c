/* Heartbeats against a bad queen: refused connections, 500s, a queen that
 * never answers or answers too late, garbage, then recovery. The loop
 * must never block: a 10 ms timer on the same loop measures it. */
#include <check.h>
#include <dlfcn.h>
#include <event2/event.h>
#include <netdb.h>
#include <stdatomic.h>
#include <time.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heartbeat_loop.h"
#include "heartbeat_worker.h"
#include "queen_server.h"
#include "rbee/rbee.h"
#include "testutil.h"
#include "util/util.h"

static rbee_heartbeat_options options(const queen_server *q, unsigned interval_ms) {
  rbee_heartbeat_options o = RBEE_HEARTBEAT_OPTIONS_INIT;
  o.queen_url = queen_server_url(q);
  o.interval_ms = interval_ms;
  return o;
}

/* send_once, the blocking form, against each kind of bad queen. */
START_TEST(test_heartbeat_faults_send_once) {
  static const struct {
    queen_mode mode;
    int rc;
    const char *msg;
  } cases[] = {
      {QUEEN_500, RBEE_EHTTP, "answered HTTP 500: {\"error\":{\"code\":\"INTERNAL\""},
      {QUEEN_GARBAGE, RBEE_EPARSE, "bad ack"},
      {QUEEN_HANG, RBEE_ETIMEDOUT, "did not answer within 300 ms"},
      {QUEEN_SLOW, RBEE_ETIMEDOUT, "did not answer within 300 ms"},
      {QUEEN_REFUSE, RBEE_EHTTP, "unreachable"},
  };
  queen_server *q = queen_server_start(QUEEN_OK);
  ck_assert_ptr_nonnull(q);
  queen_server_set_slow_ms(q, 600);
  rbee_heartbeat_options o = options(q, 30000);
  o.timeout_ms = 300;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    queen_server_set_mode(q, cases[i].mode);
    rbee_queen_ack ack;
    int64_t t0 = rbee__mono_us();
    int rc = rbee_heartbeat_send_once(&o, "{\"x\":1}", &ack);
    int64_t took = rbee__mono_us() - t0;
    ck_assert_msg(rc == cases[i].rc, "mode %d: %s (%s)", cases[i].mode, rbee_err_name(rc),
                  rbee_error_message());
    ck_assert_msg(strstr(rbee_error_message(), cases[i].msg), "mode %d: %s", cases[i].mode,
                  rbee_error_message());
    ck_assert_ptr_null(ack.status);
    ck_assert_msg(took < 5000000, "mode %d took %lld us", cases[i].mode, (long long)took);
  }
  /* Recovers on the same URL. */
  queen_server_set_mode(q, QUEEN_OK);
  ck_assert_int_eq(rbee_heartbeat_send_once(&o, "{}", NULL), 0);
  /* A queen that wants a token: none or the wrong one is RBEE_EAUTH. */
  queen_server_set_token(q, "right");
  ck_assert_int_eq(rbee_heartbeat_send_once(&o, "{}", NULL), RBEE_EAUTH);
  ck_assert_msg(strstr(rbee_error_message(), "HTTP 401 (check the queen token)"), "%s",
                rbee_error_message());
  o.token = "wrong";
  ck_assert_int_eq(rbee_heartbeat_send_once(&o, "{}", NULL), RBEE_EAUTH);
  o.token = "right";
  ck_assert_int_eq(rbee_heartbeat_send_once(&o, "{}", NULL), 0);
  queen_server_set_token(q, NULL);
  /* https: TLS is spoken (and fails against a plain HTTP queen). */
  char url[128];
  snprintf(url, sizeof url, "https://127.0.0.1:%u", queen_server_port(q));
  o.queen_url = url;
  o.timeout_ms = 10000;
  ck_assert_int_eq(rbee_heartbeat_send_once(&o, "{}", NULL), RBEE_EHTTP);
  ck_assert_msg(strstr(rbee_error_message(), "SSL") || strstr(rbee_error_message(), "TLS"),
                "%s", rbee_error_message());
  queen_server_stop(q);
}
END_TEST

/* A 10 ms timer on the heartbeat's loop: the worst gap between its ticks
 * shows whether anything blocked the loop; it also notes when each failed
 * beat was counted, between which two ticks. */
typedef struct watch {
  struct event *ev;
  hb_worker *w;
  int64_t last_us, worst_us;
  uint64_t failed;
  int64_t fail_after_us[HB_WORKER_MAX_BEATS + 1]; /* failure n ended after this */
} watch;

static void on_tick(evutil_socket_t fd, short what, void *arg) {
  watch *wt = arg;
  int64_t now = rbee__mono_us();
  if (now - wt->last_us > wt->worst_us)
    wt->worst_us = now - wt->last_us;
  rbee_heartbeat_stats st;
  rbee_heartbeat_get_stats(&st, wt->w->hb); /* zeros once hb is NULL */
  while (wt->failed < st.failed && wt->failed < HB_WORKER_MAX_BEATS)
    wt->fail_after_us[++wt->failed] = wt->last_us;
  wt->last_us = now;
}

typedef struct until {
  hb_worker *w;
  queen_server *q;
  uint64_t failed_at_least;
  const char *error_has;
  int recovered;
  size_t slow_seen; /* wait for a request answered slowly, then its failure */
} until;

static int reached(void *arg) {
  until *u = arg;
  rbee_heartbeat_stats st;
  rbee_heartbeat_get_stats(&st, u->w->hb);
  if (u->recovered)
    return st.sent >= (uint64_t)u->recovered && st.consecutive_failures == 0;
  if (u->slow_seen) {
    size_t n = queen_server_count(u->q);
    queen_request *r = n ? queen_server_get(u->q, n - 1) : NULL;
    int slow = r && r->mode == QUEEN_SLOW;
    queen_request_free(r);
    if (!slow)
      return 0;
    u->slow_seen = 0;
    u->failed_at_least = st.failed + 1;
    return 0;
  }
  return st.failed >= u->failed_at_least &&
         (u->error_has == NULL || strstr(st.last_error, u->error_has));
}

static int log_warns, log_recovers;

static void count_logs(const rbee_log_event *ev, void *ud) {
  if (strcmp(ev->actor, "heartbeat") != 0)
    return;
  if (ev->level == RBEE_LOG_WARN)
    log_warns++;
  if (ev->level == RBEE_LOG_INFO && strcmp(ev->action, "recover") == 0)
    log_recovers++;
}

START_TEST(test_heartbeat_faults_survive_bad_queen) {
  const unsigned interval = 1500, timeout = 1000, initial = 50;
  queen_server *q = queen_server_start(QUEEN_REFUSE);
  struct event_base *base = event_base_new();
  hb_worker w = {.status = RBEE_STATUS_READY};
  rbee_heartbeat_options o = options(q, interval);
  o.timeout_ms = timeout;
  o.backoff_initial_ms = initial;
  queen_server_set_slow_ms(q, timeout + 300);
  rbee_log_set_callback(count_logs, NULL);
  ck_assert_int_eq(rbee_heartbeat_new(&w.hb, base, &o, hb_worker_payload, &w), 0);
  watch wt = {.w = &w, .last_us = rbee__mono_us()};
  wt.ev = event_new(base, -1, EV_PERSIST, on_tick, &wt);
  struct timeval ten = {0, 10000};
  event_add(wt.ev, &ten);
  ck_assert_int_eq(rbee_heartbeat_start(w.hb), 0);

  until u = {.w = &w, .q = q, .failed_at_least = 3, .error_has = "unreachable"};
  ck_assert_msg(hb_loop_until(base, reached, &u, 30000), "refused");
  rbee_heartbeat_stats st;
  rbee_heartbeat_get_stats(&st, w.hb);
  ck_assert_uint_eq(st.sent, 0);
  ck_assert_uint_eq(st.consecutive_failures, st.failed);

  queen_server_set_mode(q, QUEEN_500);
  u = (until){.w = &w, .q = q, .failed_at_least = st.failed + 2, .error_has = "HTTP 500"};
  ck_assert_msg(hb_loop_until(base, reached, &u, 30000), "500");

  queen_server_set_mode(q, QUEEN_HANG);
  u = (until){.w = &w, .q = q, .failed_at_least = 0, .error_has = "did not answer"};
  ck_assert_msg(hb_loop_until(base, reached, &u, 30000), "hang");

  queen_server_set_mode(q, QUEEN_SLOW); /* answers after the timeout */
  u = (until){.w = &w, .q = q, .slow_seen = 1, .failed_at_least = UINT64_MAX};
  ck_assert_msg(hb_loop_until(base, reached, &u, 30000), "slow");

  queen_server_set_mode(q, QUEEN_GARBAGE);
  u = (until){.w = &w, .q = q, .error_has = "bad ack"};
  ck_assert_msg(hb_loop_until(base, reached, &u, 30000), "garbage");

  queen_server_set_mode(q, QUEEN_OK);
  u = (until){.w = &w, .q = q, .recovered = 1};
  ck_assert_msg(hb_loop_until(base, reached, &u, 30000), "recovery");
  rbee_heartbeat_get_stats(&st, w.hb);
  ck_assert_str_eq(st.last_error, "");
  ck_assert_int_gt(st.last_success_us, 0);
  uint64_t failures = st.failed;
  ck_assert_uint_ge(failures, 8);
  /* Back to the normal period. */
  int first_ok = w.beats - 1;
  u = (until){.w = &w, .q = q, .recovered = 3};
  ck_assert_msg(hb_loop_until(base, reached, &u, 30000), "beats resume");
  rbee_heartbeat_get_stats(&st, w.hb);
  ck_assert_uint_eq(st.failed, failures);
  for (int k = first_ok + 1; k < w.beats && k < HB_WORKER_MAX_BEATS; k++) {
    double gap = (double)(w.beat_us[k] - w.beat_us[k - 1]) / 1000.0;
    ck_assert_msg(gap >= interval * 0.9 - 10, "gap %.1f ms after recovery", gap);
  }

  /* Backoff: a retry after n failures starts within the full-jitter
   * ceiling min(interval, initial * 2^(n-1)) of the failure's end. */
  for (int k = 1; k < w.beats && k < HB_WORKER_MAX_BEATS; k++) {
    uint64_t n = w.beat_failures[k], f = w.beat_failed[k];
    if (n == 0 || f > wt.failed)
      continue;
    double ceiling = initial;
    for (uint64_t i = 1; i < n && ceiling < interval; i++)
      ceiling *= 2;
    ceiling = ceiling > interval ? interval : ceiling;
    double wait = (double)(w.beat_us[k] - wt.fail_after_us[f]) / 1000.0;
    ck_assert_msg(wait <= ceiling + 600, "retry %d after %" PRIu64 " failures waited %.1f ms, "
                  "ceiling %.0f ms", k, n, wait, ceiling);
  }
  /* Every mode was met, and the loop was never blocked. */
  int seen[6] = {0};
  for (size_t i = 0; i < queen_server_count(q); i++) {
    queen_request *r = queen_server_get(q, i);
    seen[r->mode] = 1;
    queen_request_free(r);
  }
  ck_assert(seen[QUEEN_500] && seen[QUEEN_HANG] && seen[QUEEN_SLOW] && seen[QUEEN_GARBAGE] &&
            seen[QUEEN_OK]);
  ck_assert_msg(wt.worst_us < timeout * 1000 / 2, "a 10 ms timer waited %lld us",
                (long long)wt.worst_us);
  fprintf(stderr,
          "survive_bad_queen: %" PRIu64 " failed beats, worst gap of a 10 ms timer %lld us\n",
          failures, (long long)wt.worst_us);
  /* One warning for the outage, one line for the recovery. */
  ck_assert_int_eq(log_warns, 1);
  ck_assert_int_eq(log_recovers, 1);
  rbee_log_set_callback(NULL, NULL);
  event_free(wt.ev);
  hb_worker_teardown(&w, base, q);
}
END_TEST

/* During an outage a status change still goes out within the initial
 * backoff, not after the (long) current backoff. */
START_TEST(test_heartbeat_faults_poke_during_outage) {
  queen_server *q = queen_server_start(QUEEN_REFUSE);
  struct event_base *base = event_base_new();
  hb_worker w = {.status = RBEE_STATUS_READY};
  rbee_heartbeat_options o = options(q, 20000);
  o.backoff_initial_ms = 100;
  hb_worker_start(&w, base, &o);
  hb_worker *wp = &w;
  until u = {.w = wp, .q = q, .failed_at_least = 6};
  ck_assert(hb_loop_until(base, reached, &u, 30000));
  int n = w.beats;
  int64_t t0 = rbee__mono_us();
  w.status = RBEE_STATUS_STOPPING;
  rbee_heartbeat_poke(w.hb);
  while (w.beats == n && rbee__mono_us() - t0 < 10000000)
    hb_loop_until(base, NULL, NULL, 5);
  ck_assert_int_gt(w.beats, n);
  int64_t waited = w.beat_us[n] - t0;
  /* The initial 100 ms, and room for a loaded machine: the backoff it
   * must not wait for is up to 3.2 s by now. */
  ck_assert_msg(waited <= 100000 + 600000, "poke waited %lld us", (long long)waited);
  hb_worker_teardown(&w, base, q);
}
END_TEST

/* A resolver that takes 2 s for one name: this program's getaddrinfo()
 * comes before libc's for libcurl, which calls it on its resolver thread
 * (visible, so that the linker exports it to libcurl). Every other name
 * goes to the real one. */
#define SLOW_HOST "slow-dns.test"
static atomic_int slow_started, slow_finished, slow_running, slow_most;

__attribute__((visibility("default"))) int getaddrinfo(const char *node, const char *service,
                                                      const struct addrinfo *hints,
                                                      struct addrinfo **res) {
  if (node != NULL && strcmp(node, SLOW_HOST) == 0) {
    atomic_fetch_add(&slow_started, 1);
    int now = atomic_fetch_add(&slow_running, 1) + 1;
    for (int m = atomic_load(&slow_most); now > m && !atomic_compare_exchange_weak(&slow_most, &m, now);)
      ;
    nanosleep(&(struct timespec){2, 0}, NULL);
    atomic_fetch_sub(&slow_running, 1);
    atomic_fetch_add(&slow_finished, 1);
    return EAI_AGAIN;
  }
  int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
  *(void **)&real = dlsym(RTLD_NEXT, "getaddrinfo");
  return real(node, service, hints, res);
}

static int failed_once(void *arg) {
  rbee_heartbeat_stats st;
  rbee_heartbeat_get_stats(&st, ((hb_worker *)arg)->hb);
  return st.failed >= 1;
}

/* A lookup slower than the request timeout: the beat times out on time,
 * and neither the timeout nor a free in mid-lookup waits for the resolver
 * thread on the loop. */
START_TEST(test_heartbeat_faults_slow_dns_never_blocks) {
  struct event_base *base = event_base_new();
  hb_worker w = {.status = RBEE_STATUS_READY};
  rbee_heartbeat_options o = RBEE_HEARTBEAT_OPTIONS_INIT;
  o.queen_url = "http://" SLOW_HOST ":1";
  o.interval_ms = 600000;
  o.timeout_ms = 300;
  o.backoff_initial_ms = 50;
  ck_assert_int_eq(rbee_heartbeat_new(&w.hb, base, &o, hb_worker_payload, &w), 0);
  watch wt = {.w = &w, .last_us = rbee__mono_us()};
  wt.ev = event_new(base, -1, EV_PERSIST, on_tick, &wt);
  struct timeval ten = {0, 10000};
  event_add(wt.ev, &ten);
  ck_assert_int_eq(rbee_heartbeat_start(w.hb), 0);
  ck_assert(hb_loop_until(base, failed_once, &w, 10000));
  rbee_heartbeat_stats st;
  rbee_heartbeat_get_stats(&st, w.hb);
  ck_assert_msg(strstr(st.last_error, "did not answer within 300 ms"), "%s", st.last_error);
  /* The retry is looking the name up again: free it mid-lookup. */
  int n = atomic_load(&slow_started);
  for (int i = 0; i < 1000 && atomic_load(&slow_started) == n; i++)
    hb_loop_until(base, NULL, NULL, 10);
  ck_assert_int_gt(atomic_load(&slow_started), n);
  int64_t t0 = rbee__mono_us();
  rbee_heartbeat_free(w.hb);
  int64_t free_us = rbee__mono_us() - t0;
  w.hb = NULL; /* the watch timer reads no stats any more */
  hb_loop_until(base, NULL, NULL, 50);
  fprintf(stderr, "slow_dns: worst gap of a 10 ms timer %lld us, free took %lld us\n",
          (long long)wt.worst_us, (long long)free_us);
  ck_assert_msg(wt.worst_us < 1000000, "the loop stood still for %lld us",
                (long long)wt.worst_us);
  ck_assert_msg(free_us < 1000000, "free waited %lld us for the resolver", (long long)free_us);
  /* Retries wait for the lookup in progress instead of starting more. */
  ck_assert_msg(atomic_load(&slow_most) == 1, "%d lookups ran at once", atomic_load(&slow_most));
  event_free(wt.ev);
  event_base_free(base);
  /* Let the abandoned lookups end before the process does. */
  for (int i = 0; i < 600 && atomic_load(&slow_finished) < atomic_load(&slow_started); i++)
    nanosleep(&(struct timespec){0, 10000000}, NULL);
  nanosleep(&(struct timespec){0, 50000000}, NULL);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("heartbeat_faults");
  TCase *tc = tcase_create("faults");
  tcase_set_timeout(tc, 90);
  tcase_add_test(tc, test_heartbeat_faults_send_once);
  tcase_add_test(tc, test_heartbeat_faults_survive_bad_queen);
  tcase_add_test(tc, test_heartbeat_faults_poke_during_outage);
  tcase_add_test(tc, test_heartbeat_faults_slow_dns_never_blocks);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return rbee_test_run(suite()); }
