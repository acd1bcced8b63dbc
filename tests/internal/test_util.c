/* Errors, logging and the shared helpers. */
#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rbee/rbee.h"
#include "testutil.h"
#include "util/util.h"

START_TEST(test_util_error_table) {
  ck_assert_str_eq(rbee_err_name(RBEE_ENOMEM), "RBEE_ENOMEM");
  ck_assert_str_eq(rbee_strerror(RBEE_ENOMEM), "out of memory");
  ck_assert_str_eq(rbee_err_name(RBEE_OK), "RBEE_OK");
  ck_assert_str_eq(rbee_err_name(12345), "RBEE_E?");
  ck_assert_str_eq(rbee_strerror(-9999), "unknown error");
  /* Codes are negative, distinct and named after themselves. */
#define CHECK_CODE(name, value, desc)                                          \
  ck_assert_int_lt(RBEE_##name, 0);                                            \
  ck_assert_str_eq(rbee_err_name(RBEE_##name), "RBEE_" #name);                 \
  ck_assert_str_eq(rbee_strerror(RBEE_##name), desc);
  RBEE_ERRNO_MAP(CHECK_CODE)
#undef CHECK_CODE
}
END_TEST

START_TEST(test_util_error_message) {
  rbee_error_clear();
  ck_assert_str_eq(rbee_error_message(), "");
  ck_assert_int_eq(rbee__error_set(RBEE_ENODEV, "cuda:%d requested, %d device present", 3, 1),
                   RBEE_ENODEV);
  ck_assert_str_eq(rbee_error_message(), "cuda:3 requested, 1 device present");
  rbee__error_set(RBEE_ENOMEM, NULL);
  ck_assert_str_eq(rbee_error_message(), "out of memory");
}
END_TEST

START_TEST(test_util_version) {
  ck_assert_str_eq(rbee_version(), RBEE_VERSION_STRING);
  ck_assert_uint_eq(rbee_version_hex(), RBEE_VERSION_HEX);
}
END_TEST

typedef struct {
  int n;
  rbee_log_level level;
  char actor[32], action[32], message[128], job[64], worker[64];
} captured;

static void capture(const rbee_log_event *ev, void *ud) {
  captured *c = ud;
  c->n++;
  c->level = ev->level;
  snprintf(c->actor, sizeof c->actor, "%s", ev->actor);
  snprintf(c->action, sizeof c->action, "%s", ev->action);
  snprintf(c->message, sizeof c->message, "%s", ev->message);
  snprintf(c->job, sizeof c->job, "%s", ev->job_id ? ev->job_id : "");
  snprintf(c->worker, sizeof c->worker, "%s", ev->worker_id ? ev->worker_id : "");
}

START_TEST(test_util_log_callback_and_level) {
  captured c = {0};
  rbee_log_set_callback(capture, &c);
  rbee_log_set_level(RBEE_LOG_INFO);
  rbee_log_set_worker_id("worker-test-1");
  rbee_log(RBEE_LOG_DEBUG, "x", "y", NULL, "dropped");
  ck_assert_int_eq(c.n, 0);
  rbee_log(RBEE_LOG_WARN, "device", "verify", "job-1", "slow %d", 42);
  ck_assert_int_eq(c.n, 1);
  ck_assert_int_eq(c.level, RBEE_LOG_WARN);
  ck_assert_str_eq(c.actor, "device");
  ck_assert_str_eq(c.action, "verify");
  ck_assert_str_eq(c.message, "slow 42");
  ck_assert_str_eq(c.job, "job-1");
  ck_assert_str_eq(c.worker, "worker-test-1");
  /* Messages longer than the stack buffer arrive whole. */
  char big[2000];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  rbee_log(RBEE_LOG_ERROR, "a", "b", NULL, "%s", big);
  ck_assert_int_eq(c.n, 2);
  rbee_log_set_callback(NULL, NULL);
  rbee_log_set_worker_id(NULL);
  rbee_log_level l;
  ck_assert_int_eq(rbee_log_level_parse(&l, "trace"), 0);
  ck_assert_int_eq(l, RBEE_LOG_TRACE);
  ck_assert_int_eq(rbee_log_level_parse(&l, "loud"), RBEE_EINVAL);
}
END_TEST

static char *slurp(const char *path) {
  FILE *f = fopen(path, "r");
  ck_assert_ptr_nonnull(f);
  static char buf[8192];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

START_TEST(test_util_log_file_json_and_reopen) {
  char path[] = "/tmp/rbee-log-XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  close(fd);
  ck_assert_int_eq(rbee_log_set_file(path), 0);
  rbee_log_set_format(RBEE_LOG_JSON);
  rbee_log_set_worker_id("w1");
  rbee_log(RBEE_LOG_INFO, "worker", "start", "job-9", "hello \"quoted\"");
  char *text = slurp(path);
  cJSON *o = cJSON_Parse(text);
  ck_assert_ptr_nonnull(o);
  ck_assert_str_eq(cJSON_GetObjectItem(o, "level")->valuestring, "info");
  ck_assert_str_eq(cJSON_GetObjectItem(o, "actor")->valuestring, "worker");
  ck_assert_str_eq(cJSON_GetObjectItem(o, "action")->valuestring, "start");
  ck_assert_str_eq(cJSON_GetObjectItem(o, "message")->valuestring, "hello \"quoted\"");
  ck_assert_str_eq(cJSON_GetObjectItem(o, "job_id")->valuestring, "job-9");
  ck_assert_str_eq(cJSON_GetObjectItem(o, "worker_id")->valuestring, "w1");
  cJSON_Delete(o);
  /* logrotate moves the file away; a reopen starts a new one. */
  char moved[64];
  snprintf(moved, sizeof moved, "%s.1", path);
  ck_assert_int_eq(rename(path, moved), 0);
  ck_assert_int_eq(rbee_log_reopen(), 0);
  rbee_log_set_format(RBEE_LOG_TEXT);
  rbee_log(RBEE_LOG_ERROR, "http", "bind", NULL, "port in use");
  text = slurp(path);
  ck_assert_ptr_nonnull(strstr(text, "error http.bind worker=w1: port in use"));
  ck_assert_int_eq(rbee_log_set_file(NULL), 0);
  rbee_log_set_worker_id(NULL);
  unlink(path);
  unlink(moved);
  ck_assert_int_eq(rbee_log_set_file("/nonexistent-dir/x.log"), RBEE_EIO);
  ck_assert_ptr_nonnull(strstr(rbee_error_message(), "/nonexistent-dir/x.log"));
}
END_TEST

START_TEST(test_util_utf8) {
  ck_assert(rbee__utf8_valid("plain", 5));
  ck_assert(rbee__utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x90\x9d", 9));
  ck_assert(!rbee__utf8_valid("\xff", 1));
  ck_assert(!rbee__utf8_valid("\xc3", 1));             /* truncated */
  ck_assert(!rbee__utf8_valid("\xc0\xaf", 2));         /* overlong */
  ck_assert(!rbee__utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
  ck_assert(!rbee__utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
  ck_assert(!rbee__utf8_valid("\xe2\x28\xa1", 3));     /* bad continuation */
}
END_TEST

START_TEST(test_util_ct_equal_and_parse) {
  ck_assert(rbee__ct_equal("secret", 6, "secret", 6));
  ck_assert(!rbee__ct_equal("secreT", 6, "secret", 6));
  ck_assert(!rbee__ct_equal("secret1", 7, "secret", 6));
  ck_assert(!rbee__ct_equal("", 0, "secret", 6));
  long v;
  ck_assert_int_eq(rbee__parse_long(&v, "8080", 0, 65535), 0);
  ck_assert_int_eq(v, 8080);
  ck_assert_int_eq(rbee__parse_long(&v, "70000", 0, 65535), RBEE_EINVAL);
  ck_assert_int_eq(rbee__parse_long(&v, "12x", 0, 65535), RBEE_EINVAL);
  ck_assert_int_eq(rbee__parse_long(&v, "", 0, 65535), RBEE_EINVAL);
  ck_assert_int_eq(rbee__parse_long(&v, "99999999999999999999", 0, 65535), RBEE_EINVAL);
}
END_TEST

START_TEST(test_util_uuid_and_random) {
  char a[37], b[37];
  rbee__uuid4(a);
  rbee__uuid4(b);
  ck_assert_int_eq((int)strlen(a), 36);
  ck_assert_str_ne(a, b);
  ck_assert_int_eq(a[14], '4');
  ck_assert(strchr("89ab", a[19]) != NULL);
  /* 8-4-4-4-12 lowercase hex, and no repeats across the refills of the
   * buffered kernel bytes (32 ids a refill). */
  static char many[100][37];
  for (int i = 0; i < 100; i++) {
    rbee__uuid4(many[i]);
    for (int k = 0; k < 36; k++)
      ck_assert(k == 8 || k == 13 || k == 18 || k == 23 ? many[i][k] == '-'
                                                         : strchr("0123456789abcdef", many[i][k]) != NULL);
    for (int j = 0; j < i; j++)
      ck_assert_str_ne(many[i], many[j]);
  }
  /* A forked child does not hand out its parent's next id. */
  int fds[2];
  ck_assert_int_eq(pipe(fds), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    char c[37];
    rbee__uuid4(c);
    _exit(write(fds[1], c, 37) == 37 ? 0 : 1);
  }
  char mine[37], child[37];
  rbee__uuid4(mine);
  ck_assert_int_eq((int)read(fds[0], child, 37), 37);
  int st = 0;
  waitpid(pid, &st, 0);
  close(fds[0]);
  close(fds[1]);
  ck_assert_str_ne(mine, child);
  for (int i = 0; i < 1000; i++) {
    double u = rbee__rand_unit();
    ck_assert(u >= 0.0 && u < 1.0);
  }
}
END_TEST

/* Threads logging at once while the file is reopened: every line whole,
 * none lost, each thread's lines in its order (one writer at a time
 * writes a buffer while the others add to the second). */
#define LOG_THREADS 4
#define LOG_LINES 3000
static void *log_lines(void *arg) {
  int t = (int)(intptr_t)arg;
  for (int n = 0; n < LOG_LINES; n++)
    rbee_log(RBEE_LOG_INFO, "test", "burst", NULL, "thread=%d n=%d %s", t, n,
             "padding padding padding padding padding padding padding padding");
  return NULL;
}

static void count_log_lines(const char *path, int next[LOG_THREADS], int *total) {
  FILE *f = fopen(path, "r");
  ck_assert_ptr_nonnull(f);
  char line[512];
  while (fgets(line, sizeof line, f)) {
    int t, n;
    const char *p = strstr(line, "thread=");
    ck_assert_msg(p && sscanf(p, "thread=%d n=%d", &t, &n) == 2 && strchr(line, '\n') &&
                      strstr(line, "padding padding\n"),
                  "a broken line: %s", line);
    ck_assert(t >= 0 && t < LOG_THREADS);
    ck_assert_int_eq(n, next[t]); /* in order, none missing */
    next[t]++;
    (*total)++;
  }
  fclose(f);
}

START_TEST(test_util_log_threads) {
  char path[] = "/tmp/rbee-log-XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  close(fd);
  char moved[64];
  snprintf(moved, sizeof moved, "%s.1", path);
  ck_assert_int_eq(rbee_log_set_file(path), 0);
  pthread_t th[LOG_THREADS];
  for (int i = 0; i < LOG_THREADS; i++)
    ck_assert_int_eq(pthread_create(&th[i], NULL, log_lines, (void *)(intptr_t)i), 0);
  usleep(2000);
  ck_assert_int_eq(rename(path, moved), 0); /* logrotate, mid-burst */
  ck_assert_int_eq(rbee_log_reopen(), 0);
  for (int i = 0; i < LOG_THREADS; i++)
    pthread_join(th[i], NULL);
  ck_assert_int_eq(rbee_log_set_file(NULL), 0);
  int next[LOG_THREADS] = {0}, total = 0;
  count_log_lines(moved, next, &total);
  count_log_lines(path, next, &total);
  ck_assert_int_eq(total, LOG_THREADS * LOG_LINES);
  unlink(path);
  unlink(moved);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("util");
  TCase *tc = tcase_create("util");
  tcase_add_test(tc, test_util_error_table);
  tcase_add_test(tc, test_util_error_message);
  tcase_add_test(tc, test_util_version);
  tcase_add_test(tc, test_util_log_callback_and_level);
  tcase_add_test(tc, test_util_log_file_json_and_reopen);
  tcase_add_test(tc, test_util_log_threads);
  tcase_add_test(tc, test_util_utf8);
  tcase_add_test(tc, test_util_ct_equal_and_parse);
  tcase_add_test(tc, test_util_uuid_and_random);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return rbee_test_run(suite()); }
