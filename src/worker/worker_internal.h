/* The worker runtime (internal): command line, systemd notification, and
 * the pieces worker.c shares with its tests. */
#ifndef RBEE_LIFECYCLE_WORKER_INTERNAL_H
#define RBEE_LIFECYCLE_WORKER_INTERNAL_H

#include <stdint.h>
#include <stdio.h>

#include "rbee/worker.h"

/* ---- Command line (cli.c) ---- */

typedef enum { RBEE__CLI_RUN = 0, RBEE__CLI_HELP, RBEE__CLI_VERSION } rbee__cli_action;

/* Options parsed from argv and the environment. Every string in opts
 * points into memory owned by this record. */
typedef struct rbee__worker_args {
  rbee_worker_options opts;
  rbee__cli_action action;
  char *owned[64];
  unsigned nowned;
} rbee__worker_args;

/* Parse CONTRACT section 1 plus the worker type's flags (cb->flags, handed
 * to cb->on_flag). RBEE_EINVAL with a one-line message naming the flag or
 * variable on a bad command line; RBEE_ENOMEM. Uses getopt_long (not
 * thread-safe; resets its state first). Never reads or logs a token's
 * content other than to store it. */
int rbee__worker_parse(rbee__worker_args *out, int argc, char **argv,
                       const rbee_worker_callbacks *cb, void *userdata);
void rbee__worker_args_clear(rbee__worker_args *a);
/* Write --help to @p out. */
void rbee__worker_help(FILE *out, const char *prog, const rbee_worker_callbacks *cb);
/* Check options filled by a program (rbee_worker_run): ranges, the device
 * spec form, a token for a non-loopback bind. RBEE_EINVAL with a message. */
int rbee__worker_options_check(const rbee_worker_options *o);
/* The zero rule (options.c): a numeric field left 0 whose 0 means nothing
 * of its own, and a NULL device, take their defaults. */
void rbee__worker_options_defaults(rbee_worker_options *o);
/* The bytes of rbee_worker_options a program of @p version has, and a
 * copy of only those (later fields take their INIT values). */
size_t rbee__worker_options_size(unsigned version);
void rbee__worker_options_copy(rbee_worker_options *out, const rbee_worker_options *in);
/* cb->flags in this version's layout whatever cb->version (malloc'd,
 * {NULL} terminated); NULL when there are none or without memory. */
rbee_worker_flag *rbee__worker_flags(const rbee_worker_callbacks *cb);
/* 1 when @p addr is a loopback address (127.0.0.0/8, ::1, localhost). */
int rbee__addr_is_loopback(const char *addr);

/* ---- systemd notification (sdnotify.c) ---- */

typedef struct rbee__sd {
  int fd;              /* -1: no NOTIFY_SOCKET, every call a no-op */
  int64_t watchdog_us; /* WATCHDOG_USEC for this process, 0 none */
  char path[110];
  unsigned pathlen;
} rbee__sd;

/* Read NOTIFY_SOCKET ("/path" or "@abstract") and WATCHDOG_USEC (when
 * WATCHDOG_PID is unset or ours). A missing variable is no error. */
int rbee__sd_open(rbee__sd *sd);
/* Send one datagram ("READY=1", "STATUS=...", several lines allowed);
 * never blocks: a full socket drops the message. */
int rbee__sd_notify(rbee__sd *sd, const char *fmt, ...) RBEE_PRINTF(2, 3);
void rbee__sd_close(rbee__sd *sd);

#endif
