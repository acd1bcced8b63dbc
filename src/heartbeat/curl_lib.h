/* libcurl, loaded at run time. librbee does not link it: a worker without
 * a queen never maps libcurl and its ~40 dependencies (TLS, Kerberos,
 * LDAP...), which cost milliseconds of start-up and megabytes of memory.
 * <curl/curl.h> still gives the types and constants at build time; the
 * functions the heartbeat calls are resolved from libcurl.so.4 into one
 * table on the first heartbeat. */
#ifndef RBEE_HEARTBEAT_CURL_LIB_H
#define RBEE_HEARTBEAT_CURL_LIB_H

#include <curl/curl.h>

#include "../util/util.h"

/* The library dlopen()ed unless env RBEE_CURL_LIBRARY names another. */
#define RBEE__CURL_SONAME "libcurl.so.4"

/* Every curl_<name> the heartbeat calls, without the prefix. */
#define RBEE__CURL_FUNCS(X)                                                              \
  X(global_init) X(version_info) X(free) X(easy_strerror) X(easy_init)                   \
  X(easy_setopt) X(easy_getinfo) X(easy_perform) X(easy_cleanup) X(slist_append)         \
  X(slist_free_all) X(url) X(url_set) X(url_get) X(url_strerror) X(url_cleanup)          \
  X(multi_init) X(multi_setopt) X(multi_add_handle) X(multi_remove_handle)               \
  X(multi_socket_action) X(multi_assign) X(multi_info_read) X(multi_strerror)            \
  X(multi_cleanup)

/* Each member has the type of the function it points to, taken from
 * curl.h, so that a call through the table is checked like a direct one
 * (bar curl_easy_setopt's optional type-checking macro). */
typedef struct rbee__curl_api {
#define RBEE__CURL_MEMBER(name) __typeof__(curl_##name) *name;
  RBEE__CURL_FUNCS(RBEE__CURL_MEMBER)
#undef RBEE__CURL_MEMBER
} rbee__curl_api;

/* Filled by the first successful rbee__hb_global_init(), read-only after;
 * use it only once that returned 0. */
RBEE_INTERNAL extern rbee__curl_api rbee__curl;

/* Load libcurl, resolve rbee__curl and run curl_global_init(), once per
 * process, thread-safe. 0, or RBEE_ENOTSUP when libcurl cannot be loaded
 * (the message says what to install), or RBEE_EINTERNAL when it fails to
 * initialise; the same answer on every later call. */
RBEE_INTERNAL int rbee__hb_global_init(void);

#endif
