/* Job parameter readers and base64 (include/rbee/params.h, binary.h):
 * public API only. */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "rbee/rbee.h"
#include "testutil.h"

static cJSON *P;

static void setup(void) {
  P = cJSON_Parse("{\"max_tokens\":2.5,\"temperature\":\"hot\",\"top_p\":0.5,\"stream\":1,"
                  "\"prompt\":7,\"seed\":null,\"top_k\":5,\"text\":\"hello\",\"voice\":\"bob\","
                  "\"long\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                  "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3"
                  "\xa9\xc3\xa9\xc3\xa9\xc3\xa9x\",\"ok\":true,\"big\":1e300}");
  ck_assert_ptr_nonnull(P);
}

static void teardown(void) { cJSON_Delete(P); }

START_TEST(test_params_int) {
  long long i = 99;
  ck_assert_int_eq(rbee_param_int(&i, P, "max_tokens", 1, 100, 8), RBEE_EINVAL);
  ck_assert_str_eq(rbee_error_message(), "max_tokens must be an integer from 1 to 100 (got 2.5)");
  ck_assert_int_eq(i, 99); /* untouched on error */
  ck_assert_int_eq(rbee_param_int(&i, P, "temperature", 0, 9, 1), RBEE_EINVAL);
  ck_assert_str_eq(rbee_error_message(), "temperature must be an integer from 0 to 9 (got a string)");
  ck_assert_int_eq(rbee_param_int(&i, P, "big", 0, 9, 1), RBEE_EINVAL);
  ck_assert_int_eq(rbee_param_int(&i, P, "seed", 0, 10, -1), 0); /* null: the default */
  ck_assert_int_eq(i, -1);
  ck_assert_int_eq(rbee_param_int(&i, P, "top_k", 0, 10, 0), 0);
  ck_assert_int_eq(i, 5);
  ck_assert_int_eq(rbee_param_int(&i, P, "absent", 0, 10, 3), 0);
  ck_assert_int_eq(i, 3);
  ck_assert_int_eq(rbee_param_int(&i, P, "top_k", 6, 10, 0), RBEE_EINVAL);
  ck_assert_str_eq(rbee_error_message(), "top_k must be an integer from 6 to 10 (got 5)");
}
END_TEST

START_TEST(test_params_number_bool) {
  double d = 0;
  ck_assert_int_eq(rbee_param_number(&d, P, "temperature", 0, 2, 1), RBEE_EINVAL);
  ck_assert_str_eq(rbee_error_message(), "temperature must be a number from 0 to 2 (got a string)");
  ck_assert_int_eq(rbee_param_number(&d, P, "top_p", 0.6, 1, 1), RBEE_EINVAL);
  ck_assert_str_eq(rbee_error_message(), "top_p must be a number from 0.6 to 1 (got 0.5)");
  ck_assert_int_eq(rbee_param_number(&d, P, "top_p", 0, 1, 1), 0);
  ck_assert(d == 0.5);
  int b = -1;
  ck_assert_int_eq(rbee_param_bool(&b, P, "stream", 1), RBEE_EINVAL);
  ck_assert_str_eq(rbee_error_message(), "stream must be true or false (got a number)");
  ck_assert_int_eq(rbee_param_bool(&b, P, "ok", 0), 0);
  ck_assert_int_eq(b, 1);
  ck_assert_int_eq(rbee_param_bool(&b, P, "absent", 7), 0);
  ck_assert_int_eq(b, 1);
}
END_TEST

START_TEST(test_params_string_choice) {
  const char *s = NULL;
  ck_assert_int_eq(rbee_param_string(&s, P, "prompt", "", 10), RBEE_EINVAL);
  ck_assert_str_eq(rbee_error_message(), "prompt must be a string of at most 10 bytes (got a number)");
  ck_assert_int_eq(rbee_param_string(&s, P, "text", NULL, 4), RBEE_EINVAL);
  ck_assert_str_eq(rbee_error_message(), "text must be a string of at most 4 bytes (got 5)");
  ck_assert_int_eq(rbee_param_string(&s, P, "absent", NULL, 4), RBEE_EINVAL);
  ck_assert_str_eq(rbee_error_message(), "absent is required: a string of at most 4 bytes");
  ck_assert_int_eq(rbee_param_string(&s, P, "text", NULL, 5), 0);
  ck_assert_str_eq(s, "hello");
  static const char *const voices[] = {"rms", "slt", NULL};
  int v = -5;
  ck_assert_int_eq(rbee_param_choice(&v, P, "voice", voices, 0), RBEE_EINVAL);
  ck_assert_str_eq(rbee_error_message(), "voice must be one of rms, slt (got \"bob\")");
  ck_assert_int_eq(rbee_param_choice(&v, P, "top_k", voices, 0), RBEE_EINVAL);
  ck_assert_str_eq(rbee_error_message(), "top_k must be one of rms, slt (got a number)");
  ck_assert_int_eq(rbee_param_choice(&v, P, "absent", voices, -1), RBEE_EINVAL);
  ck_assert_str_eq(rbee_error_message(), "absent is required: one of rms, slt");
  ck_assert_int_eq(rbee_param_choice(&v, P, "absent", voices, 1), 0);
  ck_assert_int_eq(v, 1);
  /* A long value is cut on a character boundary, never inside one. */
  ck_assert_int_eq(rbee_param_choice(&v, P, "long", voices, 0), RBEE_EINVAL);
  const char *m = rbee_error_message();
  ck_assert_ptr_nonnull(strstr(m, "..."));
  ck_assert_ptr_null(strstr(m, "\xc3\""));
  ck_assert_ptr_null(strstr(m, "\xc3."));
  /* Not an object: every member is absent. */
  cJSON *arr = cJSON_CreateArray();
  ck_assert_int_eq(rbee_param_string(&s, arr, "x", "d", 4), 0);
  ck_assert_str_eq(s, "d");
  cJSON_Delete(arr);
}
END_TEST

START_TEST(test_params_base64) {
  static const struct {
    const char *in, *out;
  } v[] = {{"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="},
           {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    size_t n = strlen(v[i].in);
    char e[16];
    ck_assert_uint_eq(RBEE_BASE64_LEN(n), strlen(v[i].out));
    ck_assert_int_eq(rbee_base64_encode(e, RBEE_BASE64_LEN(n) + 1, v[i].in, n), 0);
    ck_assert_str_eq(e, v[i].out);
    char d[16];
    size_t dn = sizeof d;
    ck_assert_int_eq(rbee_base64_decode(d, &dn, e, strlen(e)), 0);
    ck_assert_uint_eq(dn, n);
    ck_assert(memcmp(d, v[i].in, n) == 0);
  }
  char small[4];
  ck_assert_int_eq(rbee_base64_encode(small, sizeof small, "foo", 3), RBEE_EINVAL);
  char d[16];
  size_t dn = sizeof d;
  ck_assert_int_eq(rbee_base64_decode(d, &dn, "Zm9", 3), RBEE_EPARSE);
  dn = sizeof d;
  ck_assert_int_eq(rbee_base64_decode(d, &dn, "Zm!v", 4), RBEE_EPARSE);
  ck_assert_str_eq(rbee_error_message(), "not base64: byte 2 is 0x21");
  dn = sizeof d;
  ck_assert_int_eq(rbee_base64_decode(d, &dn, "Zg==Zg==", 8), RBEE_EPARSE);
  dn = sizeof d;
  ck_assert_int_eq(rbee_base64_decode(d, &dn, "Zm9v\nYmFy\n", 10), 0);
  ck_assert_uint_eq(dn, 6);
  dn = 2;
  ck_assert_int_eq(rbee_base64_decode(d, &dn, "Zm9v", 4), RBEE_EINVAL);
  /* Every byte value round-trips. */
  unsigned char all[256], back[256];
  for (int i = 0; i < 256; i++)
    all[i] = (unsigned char)i;
  char *t = malloc(RBEE_BASE64_LEN(256) + 1);
  ck_assert_int_eq(rbee_base64_encode(t, RBEE_BASE64_LEN(256) + 1, all, 256), 0);
  dn = sizeof back;
  ck_assert_int_eq(rbee_base64_decode(back, &dn, t, strlen(t)), 0);
  ck_assert_uint_eq(dn, 256);
  ck_assert(memcmp(all, back, 256) == 0);
  free(t);
}
END_TEST

static Suite *params_suite(void) {
  Suite *s = suite_create("params");
  TCase *tc = tcase_create("readers");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_params_int);
  tcase_add_test(tc, test_params_number_bool);
  tcase_add_test(tc, test_params_string_choice);
  tcase_add_test(tc, test_params_base64);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return rbee_test_run(params_suite()); }
