/* Real processes for tests: start a program with extra environment, its
 * stdout and stderr captured in files, send it signals, wait for it with a
 * deadline, and read what it logged (e.g. the port it listens on). */
#ifndef RBEE_TEST_PROC_SPAWN_H
#define RBEE_TEST_PROC_SPAWN_H

#include <sys/types.h>

typedef struct proc {
  pid_t pid;  /* 0 once reaped */
  int status; /* exit code, or 128+signal; valid once reaped */
  char out_path[64];
  char err_path[64];
} proc;

/* Start @p argv[0] (a path) with @p argv. @p env lists changes to this
 * process' environment: "NAME=value" sets, "-NAME" unsets; NULL-terminated
 * or NULL. 0 or -1 (errno). */
int proc_start(proc *p, char *const argv[], const char *const env[]);
/* Send @p sig. */
int proc_kill(proc *p, int sig);
/* Wait up to @p timeout_ms for the exit: its code (128+N when killed by
 * signal N), or -1 on timeout (the process keeps running). */
int proc_wait(proc *p, int timeout_ms);
/* What it wrote so far (malloc'd, NUL-terminated, never NULL unless out of
 * memory). */
char *proc_stdout(const proc *p);
char *proc_stderr(const proc *p);
/* Wait until stderr contains @p needle: 0, or -1 after @p timeout_ms or
 * when the process exited without writing it. */
int proc_wait_stderr(proc *p, const char *needle, int timeout_ms);
/* The port from the worker's "worker.listen ... port=N" log line, or -1. */
int proc_listen_port(proc *p, int timeout_ms);
/* Kill (SIGKILL) if still running, reap, remove the capture files. */
void proc_cleanup(proc *p);
/* Count lines of @p text that equal @p line exactly. */
int proc_count_lines(const char *text, const char *line);

#endif
