/* The worker's command line and environment (parsed in-process), and the
 * systemd notification protocol on a real datagram socket. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <fcntl.h>

#include "worker/worker_internal.h"
#include "rbee/rbee.h"
#include "testutil.h"
#include "util/util.h"
#include "worker_args.h"

static const char *const env_names[] = {"RBEE_WORKER_ID",     "RBEE_MODEL",
                                        "RBEE_DEVICE",        "RBEE_PORT",
                                        "RBEE_BIND",          "RBEE_QUEEN_URL",
                                        "RBEE_API_TOKEN",     "LLORCH_API_TOKEN",
                                        "RBEE_QUEEN_TOKEN",   "RBEE_HEARTBEAT_INTERVAL",
                                        "RBEE_MAX_JOBS",      "RBEE_MAX_QUEUE",
                                        "RBEE_DRAIN_TIMEOUT", "RBEE_LOG_FORMAT",
                                        "LLORCH_LOG_FORMAT",  "RBEE_LOG_LEVEL",
                                        "RBEE_LOG_FILE",      "RBEE_CA_FILE",
                                        "RBEE_STREAM_GRACE",  "RBEE_JOB_HANG_TIMEOUT",
                                        "RBEE_MAX_BODY",      "NOTIFY_SOCKET",
                                        "WATCHDOG_USEC",      "WATCHDOG_PID"};

static void clean_env(void) {
  for (size_t i = 0; i < sizeof env_names / sizeof env_names[0]; i++)
    unsetenv(env_names[i]);
}

/* What the worker type's on_flag saw. */
static char seen_flags[256];

static int on_flag(const char *name, const char *value, void *ud) {
  if (strcmp(name, "pace-tps") == 0 && value && strcmp(value, "bad") == 0) {
    rbee__error_set(RBEE_EINVAL, "'bad' is not a rate");
    return -1;
  }
  size_t l = strlen(seen_flags);
  snprintf(seen_flags + l, sizeof seen_flags - l, "%s=%s;", name, value ? value : "(none)");
  return 0;
}

static const rbee_worker_flag flags[] = {{"pace-tps", 1, "tokens per second", "N"},
                                         {"greedy", 0, "no sampling", NULL},
                                         {"seed-file", 1, "seeds from this file", NULL},
                                         {NULL, 0, NULL, NULL}};
static rbee_worker_callbacks cb = {.version = RBEE_WORKER_CALLBACKS_VERSION,
                                   .type = "llm",
                                   .implementation = "llm-worker-rbee",
                                   .flags = flags,
                                   .on_flag = on_flag};

#define PARSE(a, ...) WA_PARSE((a), &cb, __VA_ARGS__)

static void setup(void) {
  clean_env();
  seen_flags[0] = '\0';
  rbee_log_set_level(RBEE_LOG_ERROR);
}

START_TEST(test_worker_cli_defaults) {
  rbee__worker_args a;
  ck_assert_int_eq(wa_parse(&a, &cb, (const char *const[]){NULL}), 0);
  ck_assert_int_eq(a.action, RBEE__CLI_RUN);
  rbee_worker_options d = RBEE_WORKER_OPTIONS_INIT;
  ck_assert_ptr_null(a.opts.worker_id);
  ck_assert_str_eq(a.opts.device, "cpu");
  ck_assert_int_eq(a.opts.port, 8080);
  ck_assert_str_eq(a.opts.bind, "127.0.0.1");
  ck_assert_ptr_null(a.opts.queen_url);
  ck_assert_ptr_null(a.opts.api_token);
  ck_assert_uint_eq(a.opts.heartbeat_interval_ms, 30000);
  ck_assert_uint_eq(a.opts.max_jobs, 1);
  ck_assert_uint_eq(a.opts.max_queue, 16);
  ck_assert_uint_eq(a.opts.drain_timeout_ms, 25000);
  ck_assert_int_eq(a.opts.log_format, RBEE_LOG_TEXT);
  ck_assert_uint_eq(a.opts.stream_grace_ms, d.stream_grace_ms);
  rbee__worker_args_clear(&a);
}
END_TEST

START_TEST(test_worker_cli_every_flag) {
  char tok[] = "/tmp/rbee-cli-tok-XXXXXX";
  int fd = mkstemp(tok);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, "s3cret-token\n", 13), 13);
  close(fd);
  char qtok[] = "/tmp/rbee-cli-qtok-XXXXXX";
  fd = mkstemp(qtok);
  ck_assert_int_eq(write(fd, "  queen-tok  \n\n", 15), 15);
  close(fd);
  rbee__worker_args a;
  int rc =
      PARSE(&a, "--worker-id", "worker-llm-9", "--model", "tiny", "--device", "cpu", "--port", "0",
            "--bind", "0.0.0.0", "--queen-url", "http://localhost:7833", "--api-token-file", tok,
            "--queen-token-file", qtok, "--heartbeat-interval", "0.5", "--max-jobs", "3",
            "--max-queue", "0", "--drain-timeout", "1.25", "--log-format", "json", "--log-level",
            "debug", "--log-file", "/tmp/x.log", "--ca-file", "/etc/ca.pem", "--stream-grace", "2",
            "--job-hang-timeout", "7", "--max-body", "4096", "--pace-tps", "20", "--greedy");
  ck_assert_msg(rc == 0, "%s", rbee_error_message());
  ck_assert_str_eq(a.opts.worker_id, "worker-llm-9");
  ck_assert_str_eq(a.opts.model, "tiny");
  ck_assert_int_eq(a.opts.port, 0);
  ck_assert_str_eq(a.opts.bind, "0.0.0.0");
  ck_assert_str_eq(a.opts.queen_url, "http://localhost:7833");
  ck_assert_str_eq(a.opts.api_token, "s3cret-token");
  ck_assert_str_eq(a.opts.queen_token, "queen-tok");
  ck_assert_uint_eq(a.opts.heartbeat_interval_ms, 500);
  ck_assert_uint_eq(a.opts.max_jobs, 3);
  ck_assert_uint_eq(a.opts.max_queue, 0);
  ck_assert_uint_eq(a.opts.drain_timeout_ms, 1250);
  ck_assert_int_eq(a.opts.log_format, RBEE_LOG_JSON);
  ck_assert_int_eq(a.opts.log_level, RBEE_LOG_DEBUG);
  ck_assert_str_eq(a.opts.log_file, "/tmp/x.log");
  ck_assert_str_eq(a.opts.ca_file, "/etc/ca.pem");
  ck_assert_uint_eq(a.opts.stream_grace_ms, 2000);
  ck_assert_uint_eq(a.opts.job_hang_ms, 7000);
  ck_assert_uint_eq(a.opts.max_body_bytes, 4096);
  ck_assert_str_eq(seen_flags, "pace-tps=20;greedy=(none);");
  rbee__worker_args_clear(&a);
  /* --name=value works too. */
  ck_assert_int_eq(PARSE(&a, "--port=9000", "--model=m"), 0);
  ck_assert_int_eq(a.opts.port, 9000);
  ck_assert_str_eq(a.opts.model, "m");
  rbee__worker_args_clear(&a);
  unlink(tok);
  unlink(qtok);
}
END_TEST

START_TEST(test_worker_cli_device_aliases) {
  rbee__worker_args a;
  ck_assert_int_eq(PARSE(&a, "--cuda-device", "1"), 0);
  ck_assert_str_eq(a.opts.device, "cuda:1");
  rbee__worker_args_clear(&a);
  ck_assert_int_eq(PARSE(&a, "--metal-device", "0"), 0);
  ck_assert_str_eq(a.opts.device, "metal:0");
  rbee__worker_args_clear(&a);
  /* The alias wins over the environment like any flag. */
  setenv("RBEE_DEVICE", "cuda:5", 1);
  ck_assert_int_eq(PARSE(&a, "--cuda-device", "2"), 0);
  ck_assert_str_eq(a.opts.device, "cuda:2");
  rbee__worker_args_clear(&a);
  ck_assert_int_eq(PARSE(&a, "--cuda-device", "x"), RBEE_EINVAL);
  ck_assert_ptr_nonnull(strstr(rbee_error_message(), "--cuda-device"));
}
END_TEST

START_TEST(test_worker_cli_env_fallbacks) {
  setenv("RBEE_WORKER_ID", "worker-env-1", 1);
  setenv("RBEE_MODEL", "env-model", 1);
  setenv("RBEE_DEVICE", "cuda:0", 1);
  setenv("RBEE_PORT", "9123", 1);
  setenv("RBEE_BIND", "::1", 1);
  setenv("RBEE_QUEEN_URL", "https://queen.example:7833", 1);
  setenv("LLORCH_API_TOKEN", "old-token", 1);
  setenv("RBEE_QUEEN_TOKEN", "q-token", 1);
  setenv("RBEE_HEARTBEAT_INTERVAL", "10", 1);
  setenv("RBEE_MAX_JOBS", "4", 1);
  setenv("RBEE_MAX_QUEUE", "5", 1);
  setenv("RBEE_DRAIN_TIMEOUT", "6", 1);
  setenv("LLORCH_LOG_FORMAT", "json", 1);
  rbee__worker_args a;
  ck_assert_msg(wa_parse(&a, &cb, (const char *const[]){NULL}) == 0, "%s", rbee_error_message());
  ck_assert_str_eq(a.opts.worker_id, "worker-env-1");
  ck_assert_str_eq(a.opts.model, "env-model");
  ck_assert_str_eq(a.opts.device, "cuda:0");
  ck_assert_int_eq(a.opts.port, 9123);
  ck_assert_str_eq(a.opts.bind, "::1");
  ck_assert_str_eq(a.opts.queen_url, "https://queen.example:7833");
  ck_assert_str_eq(a.opts.api_token, "old-token");
  ck_assert_str_eq(a.opts.queen_token, "q-token");
  ck_assert_uint_eq(a.opts.heartbeat_interval_ms, 10000);
  ck_assert_uint_eq(a.opts.max_jobs, 4);
  ck_assert_uint_eq(a.opts.max_queue, 5);
  ck_assert_uint_eq(a.opts.drain_timeout_ms, 6000);
  ck_assert_int_eq(a.opts.log_format, RBEE_LOG_JSON);
  rbee__worker_args_clear(&a);
  /* RBEE_API_TOKEN wins over the old name; flags win over the env. */
  setenv("RBEE_API_TOKEN", "new-token", 1);
  setenv("RBEE_LOG_FORMAT", "text", 1);
  ck_assert_int_eq(PARSE(&a, "--port", "1", "--max-jobs", "2"), 0);
  ck_assert_str_eq(a.opts.api_token, "new-token");
  ck_assert_int_eq(a.opts.log_format, RBEE_LOG_TEXT);
  ck_assert_int_eq(a.opts.port, 1);
  ck_assert_uint_eq(a.opts.max_jobs, 2);
  rbee__worker_args_clear(&a);
  /* A bad env value names the variable. */
  setenv("RBEE_PORT", "99999", 1);
  ck_assert_int_eq(wa_parse(&a, &cb, (const char *const[]){NULL}), RBEE_EINVAL);
  ck_assert_ptr_nonnull(strstr(rbee_error_message(), "RBEE_PORT"));
}
END_TEST

/* Each bad command line: EINVAL and one line naming what was wrong. */
static const struct {
  const char *args[4];
  const char *mention;
} bad[] = {
    {{"--port", "70000"}, "--port"},
    {{"--port", "-1"}, "--port"},
    {{"--port", "80x"}, "--port"},
    {{"--device", "gpu"}, "--device"},
    {{"--device", "cuda:"}, "--device"},
    {{"--max-jobs", "0"}, "--max-jobs"},
    {{"--max-queue", "-3"}, "--max-queue"},
    {{"--heartbeat-interval", "0"}, "--heartbeat-interval"},
    {{"--drain-timeout", "soon"}, "--drain-timeout"},
    {{"--log-format", "xml"}, "--log-format"},
    {{"--log-level", "loud"}, "--log-level"},
    {{"--queen-url", "ftp://queen"}, "--queen-url"},
    {{"--queen-url", "http://"}, "--queen-url"},
    {{"--bind", "not-an-ip"}, "--bind"},
    {{"--bind", "0.0.0.0"}, "API token"},
    {{"--worker-id", "has space"}, "--worker-id"},
    {{"--api-token-file", "/nonexistent/token"}, "/nonexistent/token"},
    {{"--frobnicate"}, "--frobnicate"},
    {{"-x"}, "-x"},
    {{"--port"}, "--port"},
    {{"extra-arg"}, "extra-arg"},
    {{"--pace-tps", "bad"}, "'bad' is not a rate"},
};

START_TEST(test_worker_cli_bad_values) {
  rbee__worker_args a;
  const char *args[5] = {0};
  for (int i = 0; i < 4 && bad[_i].args[i]; i++)
    args[i] = bad[_i].args[i];
  ck_assert_int_eq(wa_parse(&a, &cb, args), RBEE_EINVAL);
  const char *m = rbee_error_message();
  ck_assert_msg(strstr(m, bad[_i].mention) != NULL, "'%s' does not mention '%s'", m,
                bad[_i].mention);
  ck_assert_ptr_null(strchr(m, '\n'));
  ck_assert_uint_gt(strlen(m), 10);
}
END_TEST

START_TEST(test_worker_cli_tokens) {
  rbee__worker_args a;
  char path[] = "/tmp/rbee-cli-tok-XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_eq(write(fd, "two words\n", 10), 10);
  close(fd);
  ck_assert_int_eq(PARSE(&a, "--api-token-file", path), RBEE_EINVAL);
  ck_assert_ptr_null(strstr(rbee_error_message(), "two words")); /* never shown */
  ck_assert_ptr_nonnull(strstr(rbee_error_message(), path));
  fd = open(path, O_WRONLY | O_TRUNC);
  ck_assert_int_eq(write(fd, "\n\n", 2), 2);
  close(fd);
  ck_assert_int_eq(PARSE(&a, "--api-token-file", path), RBEE_EINVAL);
  ck_assert_ptr_nonnull(strstr(rbee_error_message(), "empty"));
  unlink(path);
  /* A token from the environment, with a non-loopback bind. */
  setenv("RBEE_API_TOKEN", "env-secret", 1);
  ck_assert_int_eq(PARSE(&a, "--bind", "0.0.0.0"), 0);
  ck_assert_str_eq(a.opts.api_token, "env-secret");
  ck_assert_ptr_null(a.opts.queen_token);
  rbee__worker_args_clear(&a);
  setenv("RBEE_API_TOKEN", "bad\x01token", 1);
  ck_assert_int_eq(wa_parse(&a, &cb, (const char *const[]){NULL}), RBEE_EINVAL);
  ck_assert_ptr_nonnull(strstr(rbee_error_message(), "RBEE_API_TOKEN"));
}
END_TEST

START_TEST(test_worker_cli_help_version_and_argv_order) {
  rbee__worker_args a;
  ck_assert_int_eq(PARSE(&a, "--help"), 0);
  ck_assert_int_eq(a.action, RBEE__CLI_HELP);
  rbee__worker_args_clear(&a);
  ck_assert_int_eq(PARSE(&a, "-V"), 0);
  ck_assert_int_eq(a.action, RBEE__CLI_VERSION);
  rbee__worker_args_clear(&a);
  /* The hive reads --model back from /proc/PID/cmdline: argv stays put. */
  char *argv[] = {"w", "--model", "m1", "--port", "1", NULL};
  char *copy[6];
  memcpy(copy, argv, sizeof argv);
  ck_assert_int_eq(rbee__worker_parse(&a, 5, argv, &cb, NULL), 0);
  for (int i = 0; i < 5; i++)
    ck_assert_ptr_eq(argv[i], copy[i]);
  rbee__worker_args_clear(&a);
  /* Help lists every contract flag, its env fallback, and extra flags. */
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  rbee__worker_help(f, "llm-worker", &cb);
  fclose(f);
  const char *must[] = {"--worker-id",
                        "--model",
                        "--device",
                        "--cuda-device",
                        "--metal-device",
                        "--port",
                        "--bind",
                        "--queen-url",
                        "--api-token-file",
                        "--queen-token-file",
                        "--heartbeat-interval",
                        "--max-jobs",
                        "--max-queue",
                        "--drain-timeout",
                        "--log-format",
                        "LLORCH_API_TOKEN",
                        "--pace-tps N ",
                        "--greedy ",
                        "--seed-file VALUE ",
                        "--help",
                        "--version"};
  for (size_t i = 0; i < sizeof must / sizeof must[0]; i++)
    ck_assert_msg(strstr(buf, must[i]) != NULL, "help lacks %s", must[i]);
  free(buf);
}
END_TEST

START_TEST(test_worker_cli_loopback) {
  ck_assert(rbee__addr_is_loopback("127.0.0.1"));
  ck_assert(rbee__addr_is_loopback("127.1.2.3"));
  ck_assert(rbee__addr_is_loopback("::1"));
  ck_assert(rbee__addr_is_loopback("localhost"));
  ck_assert(!rbee__addr_is_loopback("0.0.0.0"));
  ck_assert(!rbee__addr_is_loopback("::"));
  ck_assert(!rbee__addr_is_loopback("10.0.0.1"));
  rbee_worker_options o = RBEE_WORKER_OPTIONS_INIT;
  ck_assert_int_eq(rbee__worker_options_check(&o), 0);
  o.bind = "192.168.1.1";
  ck_assert_int_eq(rbee__worker_options_check(&o), RBEE_EINVAL);
  o.api_token = "t";
  ck_assert_int_eq(rbee__worker_options_check(&o), 0);
  o.version = 99;
  ck_assert_int_eq(rbee__worker_options_check(&o), RBEE_EINVAL);
}
END_TEST

/* sd_notify on a real datagram socket. */
static int bind_dgram(struct sockaddr_un *sa, socklen_t *len, const char *name, int abstract) {
  int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  size_t n = strlen(name);
  memcpy(sa->sun_path + (abstract ? 1 : 0), name, n);
  *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (abstract ? 1 : 0));
  ck_assert_int_eq(bind(fd, (struct sockaddr *)sa, *len), 0);
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

static void recv_eq(int fd, const char *want) {
  char buf[600];
  ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
  ck_assert_int_gt(n, 0);
  buf[n] = '\0';
  ck_assert_str_eq(buf, want);
}

START_TEST(test_worker_sd_notify_path) {
  char path[64];
  snprintf(path, sizeof path, "/tmp/rbee-sd-%d.sock", (int)getpid());
  unlink(path);
  struct sockaddr_un sa;
  socklen_t len;
  int fd = bind_dgram(&sa, &len, path, 0);
  setenv("NOTIFY_SOCKET", path, 1);
  rbee__sd sd;
  ck_assert_int_eq(rbee__sd_open(&sd), 0);
  ck_assert_int_ge(sd.fd, 0);
  ck_assert_int_eq(rbee__sd_notify(&sd, "READY=1\nSTATUS=serving"), 0);
  ck_assert_int_eq(rbee__sd_notify(&sd, "STATUS=loading %d%%", 42), 0);
  recv_eq(fd, "READY=1\nSTATUS=serving");
  recv_eq(fd, "STATUS=loading 42%");
  rbee__sd_close(&sd);
  close(fd);
  unlink(path);
}
END_TEST

START_TEST(test_worker_sd_notify_abstract_and_watchdog) {
  char name[64];
  snprintf(name, sizeof name, "rbee-sd-test-%d", (int)getpid());
  struct sockaddr_un sa;
  socklen_t len;
  int fd = bind_dgram(&sa, &len, name, 1);
  char env[80];
  snprintf(env, sizeof env, "@%s", name);
  setenv("NOTIFY_SOCKET", env, 1);
  setenv("WATCHDOG_USEC", "3000000", 1);
  rbee__sd sd;
  ck_assert_int_eq(rbee__sd_open(&sd), 0);
  ck_assert_int_eq(sd.watchdog_us, 3000000);
  ck_assert_int_eq(rbee__sd_notify(&sd, "WATCHDOG=1"), 0);
  recv_eq(fd, "WATCHDOG=1");
  rbee__sd_close(&sd);
  /* The watchdog is for another process: not ours to ping. */
  setenv("WATCHDOG_PID", "1", 1);
  ck_assert_int_eq(rbee__sd_open(&sd), 0);
  ck_assert_int_eq(sd.watchdog_us, 0);
  rbee__sd_close(&sd);
  close(fd);
}
END_TEST

START_TEST(test_worker_sd_notify_absent_or_bad) {
  rbee__sd sd;
  ck_assert_int_eq(rbee__sd_open(&sd), 0);
  ck_assert_int_eq(sd.fd, -1);
  ck_assert_int_eq(rbee__sd_notify(&sd, "READY=1"), 0); /* a no-op */
  setenv("NOTIFY_SOCKET", "relative/path", 1);
  ck_assert_int_eq(rbee__sd_open(&sd), RBEE_EINVAL);
  ck_assert_int_eq(sd.fd, -1);
  /* Nobody listening: an error, never a block. */
  setenv("NOTIFY_SOCKET", "/tmp/rbee-nobody-listens.sock", 1);
  ck_assert_int_eq(rbee__sd_open(&sd), 0);
  ck_assert_int_eq(rbee__sd_notify(&sd, "READY=1"), RBEE_EIO);
  rbee__sd_close(&sd);
}
END_TEST

/* A program built for callbacks version 1 (flags without metavar) still
 * parses and shows its flags: its version tells the layout. */
START_TEST(test_worker_cli_flags_v1_layout) {
  static const struct {
    const char *name;
    int has_arg;
    const char *help;
  } v1[] = {{"voice", 1, "the voice"}, {"loud", 0, "louder"}, {NULL, 0, NULL}};
  rbee_worker_callbacks old = {.version = 1, .type = "tts", .on_flag = on_flag};
  old.flags = (const rbee_worker_flag *)(const void *)v1;
  char *argv[] = {"w", "--voice", "slt", "--loud", NULL};
  rbee__worker_args a;
  seen_flags[0] = '\0';
  ck_assert_int_eq(rbee__worker_parse(&a, 4, argv, &old, NULL), 0);
  ck_assert_str_eq(seen_flags, "voice=slt;loud=(none);");
  rbee__worker_args_clear(&a);
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  rbee__worker_help(f, "tts-worker", &old);
  fclose(f);
  ck_assert_ptr_nonnull(strstr(buf, "--voice VALUE "));
  ck_assert_ptr_nonnull(strstr(buf, "--loud "));
  ck_assert_ptr_nonnull(strstr(buf, "louder"));
  free(buf);
}
END_TEST

static Suite *cli_suite(void) {
  Suite *s = suite_create("worker_cli");
  TCase *tc = tcase_create("cli");
  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_add_test(tc, test_worker_cli_defaults);
  tcase_add_test(tc, test_worker_cli_every_flag);
  tcase_add_test(tc, test_worker_cli_device_aliases);
  tcase_add_test(tc, test_worker_cli_env_fallbacks);
  tcase_add_loop_test(tc, test_worker_cli_bad_values, 0, (int)(sizeof bad / sizeof bad[0]));
  tcase_add_test(tc, test_worker_cli_tokens);
  tcase_add_test(tc, test_worker_cli_help_version_and_argv_order);
  tcase_add_test(tc, test_worker_cli_loopback);
  tcase_add_test(tc, test_worker_cli_flags_v1_layout);
  tcase_add_test(tc, test_worker_sd_notify_path);
  tcase_add_test(tc, test_worker_sd_notify_abstract_and_watchdog);
  tcase_add_test(tc, test_worker_sd_notify_absent_or_bad);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return rbee_test_run(cli_suite()); }
