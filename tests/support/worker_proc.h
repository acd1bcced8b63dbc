/* Helpers of the worker process suites (tests/test_worker_*.c): start
 * tests/programs/test_worker on a free port with a callback trace file
 * and a gate file, talk to it, read what it wrote. */
#ifndef RBEE_TEST_WORKER_PROC_H
#define RBEE_TEST_WORKER_PROC_H

#include <stddef.h>

#include "proc_spawn.h"
#include "queen_server.h"

#define WP_START_MS 20000 /* generous: a loaded 2-core machine, sanitizers */
#define WP_EXIT_MS 30000
#define WP_ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Fresh per test (wp_setup): the worker appends "init", "ready",
 * "job-start ID", "job-end ID RC", "shutdown" to the trace; jobs or
 * on_init wait for the gate with --job-gate/--init-gate. */
extern char wp_trace_path[64];
extern char wp_gate_path[64];
void wp_setup(void);
void wp_teardown(void);
void wp_open_gate(void);

const char *wp_worker_path(void);
/* Start with --port 0 --trace and @p args (and env changes as in
 * proc_start); returns the port it listens on, or fails the test. */
int wp_start_worker_env(proc *p, const char *const *args, const char *const *env);
int wp_start_worker(proc *p, const char *const *args);
/* Run to the exit (no --port added); its code, and stderr/stdout if asked. */
int wp_run_to_exit(const char *const *args, const char *const *env, char **err, char **out);
/* Poll /ready until 200: 0, or -1. */
int wp_wait_ready(int port);
long wp_post_status(int port, const char *json);
long wp_get_status(int port, const char *path, char *body, size_t len);
/* GET @p path every 10 ms until it answers @p want or @p timeout_ms pass;
 * returns the last status (its body in @p body). */
long wp_poll_status(int port, const char *path, long want, char *body, size_t len,
                    int timeout_ms);

char *wp_slurp_file(const char *path);
char *wp_read_trace(void);
/* Lines of @p trace starting with @p prefix. */
int wp_trace_count(const char *trace, const char *prefix);
int wp_wait_trace(const char *prefix, int n, int timeout_ms);
/* A listening socket on 127.0.0.1 (*fd_out) and its port. */
int wp_free_port_in_use(int *fd_out);
/* Beat @p i of @p q contains @p needle. */
int wp_beat_has(queen_server *q, size_t i, const char *needle);

#endif
