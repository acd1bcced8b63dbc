/* libcurl resolved with dlopen() on the first heartbeat (see curl_lib.h).
 * The library stays loaded for the life of the process: curl keeps
 * global state (TLS, the resolver) that must outlive every handle. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "curl_lib.h"

rbee__curl_api rbee__curl;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int load_rc = RBEE_EINTERNAL;
static char load_error[512];

/* Resolve every function into a local table, so that rbee__curl is
 * either complete or untouched. */
static int resolve(void *lib, const char *soname) {
  rbee__curl_api api;
  void *sym;
#define RBEE__CURL_RESOLVE(name)                                                         \
  dlerror();                                                                             \
  if ((sym = dlsym(lib, "curl_" #name)) == NULL) {                                       \
    const char *e = dlerror();                                                           \
    snprintf(load_error, sizeof load_error,                                              \
             "heartbeat: %s has no curl_" #name ", so it is not libcurl %s or newer "   \
             "(as librbee was built with): %s",                                          \
             soname, LIBCURL_VERSION, e ? e : "symbol is NULL");                         \
    return RBEE_ENOTSUP;                                                                 \
  }                                                                                      \
  memcpy(&api.name, &sym, sizeof sym);
  RBEE__CURL_FUNCS(RBEE__CURL_RESOLVE)
#undef RBEE__CURL_RESOLVE
  rbee__curl = api;
  return 0;
}

static void load(void) {
  /* A data pointer copied into a function pointer: POSIX makes them the
   * same size for dlsym(). */
  _Static_assert(sizeof(void *) == sizeof(void (*)(void)), "dlsym needs code pointers");
  const char *soname = getenv("RBEE_CURL_LIBRARY");
  if (soname == NULL || soname[0] == '\0')
    soname = RBEE__CURL_SONAME;
  void *lib = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) {
    const char *e = dlerror();
    /* "Not found" only when it is: a mapping that failed for lack of
     * memory (RLIMIT_AS) must say so, not send the user to install it. */
    if (e == NULL || strstr(e, "No such file"))
      snprintf(load_error, sizeof load_error,
               "heartbeat: %s not found: install libcurl4 (Debian) to send heartbeats: %s",
               soname, e ? e : "dlopen failed");
    else
      snprintf(load_error, sizeof load_error, "heartbeat: cannot load %s: %s", soname, e);
    load_rc = RBEE_ENOTSUP;
    return;
  }
  if ((load_rc = resolve(lib, soname)) != 0) {
    dlclose(lib);
    return;
  }
  CURLcode cc = rbee__curl.global_init(CURL_GLOBAL_DEFAULT);
  if (cc != CURLE_OK) {
    snprintf(load_error, sizeof load_error, "heartbeat: libcurl failed to initialise: %s",
             rbee__curl.easy_strerror(cc));
    load_rc = RBEE_EINTERNAL;
    return;
  }
  /* Names are looked up by resolve.c, not by curl: its resolver (threaded
   * or not) never runs, so its flavour does not matter here. */
  const curl_version_info_data *v = rbee__curl.version_info(CURLVERSION_NOW);
  RBEE_DEBUG("heartbeat", "init", "loaded libcurl %s from %s", v->version, soname);
  load_rc = 0;
}

int rbee__hb_global_init(void) {
  pthread_once(&load_once, load);
  if (load_rc != 0)
    return rbee__error_set(load_rc, "%s", load_error);
  return 0;
}
