/* The flags and environment of today's rbee worker binaries (the ROCm
 * workers' --hive-url, --callback-url, --rocm-device, --model-ref; env
 * WORKER_ID, PORT, CALLBACK_URL), parsed in-process, and rocm:N run in a
 * real worker process: the clear "not built with ROCm" error, exit 69. */
#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "rbee/rbee.h"
#include "testutil.h"
#include "util/util.h"
#include "worker/worker_internal.h"
#include "worker_args.h"
#include "worker_proc.h"

static const char *const env_names[] = {"RBEE_WORKER_ID", "WORKER_ID",     "RBEE_PORT",
                                        "PORT",           "RBEE_QUEEN_URL", "CALLBACK_URL",
                                        "RBEE_MODEL",     "RBEE_DEVICE",   "RBEE_API_TOKEN",
                                        "LLORCH_API_TOKEN"};

static rbee_worker_callbacks cb = {.version = RBEE_WORKER_CALLBACKS_VERSION, .type = "llm"};

#define PARSE(a, ...) WA_PARSE((a), &cb, __VA_ARGS__)

static void setup(void) {
  for (size_t i = 0; i < sizeof env_names / sizeof env_names[0]; i++)
    unsetenv(env_names[i]);
  rbee_log_set_level(RBEE_LOG_ERROR);
}

START_TEST(test_hive_flags_url_and_model_aliases) {
  rbee__worker_args a;
  ck_assert_int_eq(PARSE(&a, "--hive-url", "http://127.0.0.1:7835"), 0);
  ck_assert_str_eq(a.opts.queen_url, "http://127.0.0.1:7835");
  rbee__worker_args_clear(&a);
  ck_assert_int_eq(PARSE(&a, "--callback-url", "http://hive.local:9000/"), 0);
  ck_assert_str_eq(a.opts.queen_url, "http://hive.local:9000/");
  rbee__worker_args_clear(&a);
  ck_assert_int_eq(PARSE(&a, "--model-ref", "hf:TheBloke/tiny"), 0);
  ck_assert_str_eq(a.opts.model, "hf:TheBloke/tiny");
  rbee__worker_args_clear(&a);
  /* The last of the synonyms on the command line wins, as with getopt. */
  ck_assert_int_eq(PARSE(&a, "--queen-url", "http://a:1", "--hive-url", "http://b:2"), 0);
  ck_assert_str_eq(a.opts.queen_url, "http://b:2");
  rbee__worker_args_clear(&a);
  /* An alias is a flag: it wins over the environment. */
  setenv("RBEE_QUEEN_URL", "http://env:3", 1);
  setenv("RBEE_MODEL", "env-model", 1);
  ck_assert_int_eq(PARSE(&a, "--callback-url", "http://flag:4", "--model-ref", "m2"), 0);
  ck_assert_str_eq(a.opts.queen_url, "http://flag:4");
  ck_assert_str_eq(a.opts.model, "m2");
  rbee__worker_args_clear(&a);
  /* Bad values are named by the flag the user typed. */
  ck_assert_int_eq(PARSE(&a, "--hive-url", "ftp://x"), RBEE_EINVAL);
  ck_assert_ptr_nonnull(strstr(rbee_error_message(), "--hive-url"));
  ck_assert_int_eq(PARSE(&a, "--model-ref", ""), RBEE_EINVAL);
  ck_assert_ptr_nonnull(strstr(rbee_error_message(), "--model-ref"));
}
END_TEST

START_TEST(test_hive_flags_env_aliases) {
  rbee__worker_args a;
  setenv("WORKER_ID", "worker-cuda-8081", 1);
  setenv("PORT", "8081", 1);
  setenv("CALLBACK_URL", "http://127.0.0.1:7835", 1);
  ck_assert_msg(PARSE(&a, "--model", "m") == 0, "%s", rbee_error_message());
  ck_assert_str_eq(a.opts.worker_id, "worker-cuda-8081");
  ck_assert_int_eq(a.opts.port, 8081);
  ck_assert_str_eq(a.opts.queen_url, "http://127.0.0.1:7835");
  rbee__worker_args_clear(&a);
  /* The RBEE_ names win over the short ones. */
  setenv("RBEE_WORKER_ID", "worker-rbee-1", 1);
  setenv("RBEE_PORT", "9001", 1);
  setenv("RBEE_QUEEN_URL", "http://queen:7833", 1);
  ck_assert_int_eq(PARSE(&a, "--model", "m"), 0);
  ck_assert_str_eq(a.opts.worker_id, "worker-rbee-1");
  ck_assert_int_eq(a.opts.port, 9001);
  ck_assert_str_eq(a.opts.queen_url, "http://queen:7833");
  rbee__worker_args_clear(&a);
  /* A bad short one is named. */
  unsetenv("RBEE_PORT");
  setenv("PORT", "tcp://10.0.0.1:8080", 1); /* a Kubernetes service link */
  ck_assert_int_eq(PARSE(&a, "--model", "m"), RBEE_EINVAL);
  ck_assert_ptr_nonnull(strstr(rbee_error_message(), "PORT"));
  /* A flag wins: the bad variable is not read. */
  ck_assert_int_eq(PARSE(&a, "--port", "8082"), 0);
  ck_assert_int_eq(a.opts.port, 8082);
  rbee__worker_args_clear(&a);
}
END_TEST

START_TEST(test_hive_flags_rocm_device) {
  rbee__worker_args a;
  /* Parsed and kept: the device open says what is missing (exit 69). */
  ck_assert_msg(PARSE(&a, "--rocm-device", "1") == 0, "%s", rbee_error_message());
  ck_assert_str_eq(a.opts.device, "rocm:1");
  rbee__worker_args_clear(&a);
  ck_assert_int_eq(PARSE(&a, "--device", "rocm:0"), 0);
  ck_assert_str_eq(a.opts.device, "rocm:0");
  rbee__worker_args_clear(&a);
  ck_assert_int_eq(PARSE(&a, "--rocm-device", "-1"), RBEE_EINVAL);
  ck_assert_ptr_nonnull(strstr(rbee_error_message(), "--rocm-device"));
  ck_assert_int_eq(PARSE(&a, "--device", "rocm:x"), RBEE_EINVAL);
  ck_assert_int_eq(PARSE(&a, "--device", "rocm"), RBEE_EINVAL);
  rbee_device_spec spec;
  ck_assert_int_eq(rbee_device_spec_parse(&spec, "rocm"), RBEE_EINVAL);
  ck_assert_ptr_nonnull(strstr(rbee_error_message(), "number is missing"));
  ck_assert_int_eq(rbee_device_spec_parse(&spec, "rocm:2"), RBEE_ENOTSUP);
  ck_assert_ptr_nonnull(strstr(rbee_error_message(), "not built with ROCm"));
  rbee_device *d = NULL;
  ck_assert_int_eq(rbee_device_open(&d, "rocm:0"), RBEE_ENOTSUP);
  ck_assert_ptr_null(d);
}
END_TEST

/* The whole worker: a ROCm device exits 69 with the sentence, like metal
 * on Linux; the help lists the aliases. */
START_TEST(test_hive_flags_rocm_process_exit_69) {
  const char *env[] = {"-NOTIFY_SOCKET", "-RBEE_QUEEN_URL", "-CALLBACK_URL", NULL};
  char *err = NULL;
  int code = wp_run_to_exit(WP_ARGS("--port", "0", "--rocm-device", "0"), env, &err, NULL);
  ck_assert_msg(code == 69, "exit %d, stderr:\n%s", code, err);
  ck_assert_msg(strstr(err, "not built with ROCm") != NULL, "stderr:\n%s", err);
  free(err);
  code = wp_run_to_exit(WP_ARGS("--port", "0", "--device", "rocm:3"), env, &err, NULL);
  ck_assert_msg(code == 69 && strstr(err, "rocm:3") != NULL, "exit %d, stderr:\n%s", code, err);
  free(err);
  char *out = NULL;
  code = wp_run_to_exit(WP_ARGS("--help"), env, NULL, &out);
  ck_assert_int_eq(code, 0);
  ck_assert_ptr_nonnull(strstr(out, "--hive-url URL"));
  ck_assert_ptr_nonnull(strstr(out, "--callback-url URL"));
  ck_assert_ptr_nonnull(strstr(out, "--rocm-device N"));
  ck_assert_ptr_nonnull(strstr(out, "--model-ref M"));
  ck_assert_ptr_nonnull(strstr(out, "env RBEE_PORT, PORT"));
  free(out);
}
END_TEST

/* What rbee-hive does after a spawn, for real: the process gets its id
 * and queen from the ROCm binaries' variables, and GET / answers 200
 * with the discovery document while on_init is still loading. */
START_TEST(test_hive_flags_discovery_while_loading) {
  wp_setup();
  proc p;
  const char *env[] = {"WORKER_ID=worker-cpu-hive", "-RBEE_WORKER_ID", NULL};
  int port = wp_start_worker_env(&p, WP_ARGS("--init-gate", wp_gate_path, "--model-ref", "m-ref"),
                                 env);
  char body[4096];
  ck_assert_int_eq(wp_get_status(port, "/", body, sizeof body), 200);
  ck_assert_msg(strstr(body, "\"worker_id\":\"worker-cpu-hive\"") != NULL, "%s", body);
  ck_assert_msg(strstr(body, "\"model\":\"m-ref\"") != NULL, "%s", body);
  ck_assert_msg(strstr(body, "\"status\":\"starting\"") != NULL, "%s", body);
  ck_assert_msg(strstr(body, "\"ready\":\"/ready\"") != NULL, "%s", body);
  ck_assert_int_eq(wp_get_status(port, "/ready", body, sizeof body), 503);
  wp_open_gate();
  ck_assert_int_eq(wp_wait_ready(port), 0);
  ck_assert_int_eq(wp_get_status(port, "/", body, sizeof body), 200);
  ck_assert_msg(strstr(body, "\"status\":\"ready\"") != NULL, "%s", body);
  proc_kill(&p, SIGTERM);
  ck_assert_int_eq(proc_wait(&p, WP_EXIT_MS), 0);
  proc_cleanup(&p);
  wp_teardown();
}
END_TEST

static Suite *hive_flags_suite(void) {
  Suite *s = suite_create("worker_hive_flags");
  TCase *tc = tcase_create("flags");
  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_add_test(tc, test_hive_flags_url_and_model_aliases);
  tcase_add_test(tc, test_hive_flags_env_aliases);
  tcase_add_test(tc, test_hive_flags_rocm_device);
  tcase_add_test(tc, test_hive_flags_rocm_process_exit_69);
  tcase_add_test(tc, test_hive_flags_discovery_while_loading);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return rbee_test_run(hive_flags_suite()); }
