/* Device faults and restarts: a fault that only fails a job (out of
 * memory, a job-fatal error), one that breaks the context or loses the
 * device (the worker turns unhealthy, hands its queued jobs back as
 * retryable, and exits 75 to be restarted), and rbee_worker_recycle. */
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "worker/worker_impl.h"
#include "util/util.h"

/* cudaError_t values (stable in the runtime API; device_cuda.c checks
 * them against the toolkit's headers when CUDA is built in). */
enum {
  CU_SUCCESS = 0,
  CU_MEMORY_ALLOCATION = 2,
  CU_DEVICES_UNAVAILABLE = 46,
  CU_NO_DEVICE = 100,
  CU_ECC_UNCORRECTABLE = 214,
  CU_NVLINK_UNCORRECTABLE = 220,
  CU_ILLEGAL_ADDRESS = 700,
  CU_LAUNCH_TIMEOUT = 702,
  CU_ASSERT = 710,
  CU_HARDWARE_STACK_ERROR = 714,
  CU_ILLEGAL_INSTRUCTION = 715,
  CU_MISALIGNED_ADDRESS = 716,
  CU_INVALID_ADDRESS_SPACE = 717,
  CU_INVALID_PC = 718,
  CU_LAUNCH_FAILURE = 719,
};

rbee_device_fault rbee_device_cuda_fault(int e) {
  switch (e) {
  case CU_SUCCESS:
    return RBEE_FAULT_NONE;
  case CU_MEMORY_ALLOCATION:
    return RBEE_FAULT_OOM;
  case CU_ILLEGAL_ADDRESS:
  case CU_LAUNCH_TIMEOUT:
  case CU_ASSERT:
  case CU_HARDWARE_STACK_ERROR:
  case CU_ILLEGAL_INSTRUCTION:
  case CU_MISALIGNED_ADDRESS:
  case CU_INVALID_ADDRESS_SPACE:
  case CU_INVALID_PC:
  case CU_LAUNCH_FAILURE:
    return RBEE_FAULT_CONTEXT;
  case CU_ECC_UNCORRECTABLE:
  case CU_NVLINK_UNCORRECTABLE:
  case CU_NO_DEVICE:
  case CU_DEVICES_UNAVAILABLE:
    return RBEE_FAULT_LOST;
  default:
    return RBEE_FAULT_JOB;
  }
}

const char *rbee_device_fault_str(rbee_device_fault f) {
  switch (f) {
  case RBEE_FAULT_NONE:
    return "none";
  case RBEE_FAULT_OOM:
    return "oom";
  case RBEE_FAULT_JOB:
    return "job";
  case RBEE_FAULT_CONTEXT:
    return "context";
  case RBEE_FAULT_LOST:
    return "lost";
  }
  return "unknown";
}

static const char *fault_code(rbee_device_fault f) {
  switch (f) {
  case RBEE_FAULT_OOM:
    return "DEVICE_OOM";
  case RBEE_FAULT_CONTEXT:
    return "DEVICE_FAULT";
  case RBEE_FAULT_LOST:
    return "DEVICE_LOST";
  default:
    return "DEVICE_ERROR";
  }
}

int rbee_worker_device_fault(rbee_worker *w, rbee_device_fault fault, const char *reason) {
  if (w == NULL || (fault != RBEE_FAULT_CONTEXT && fault != RBEE_FAULT_LOST))
    return rbee__error_set(RBEE_EINVAL,
                           "rbee_worker_device_fault: only a context or lost fault stops the "
                           "worker");
  rbee__jobs_hold(w->jobs); /* before this job's slot passes to a queued one */
  pthread_mutex_lock(&w->mu);
  if (w->fault == RBEE_FAULT_NONE) { /* the first one says why */
    w->fault = fault;
    w->fault_pending = 1;
    /* Unhealthy at once: /health, /ready and POST read this under mu. */
    w->health[RBEE__HS_DEVICE] = RBEE_HEALTH_UNHEALTHY;
    snprintf(w->reason[RBEE__HS_DEVICE], sizeof w->reason[0], "device %s (%s): %s",
             fault == RBEE_FAULT_LOST ? "lost" : "fault", rbee_device_fault_str(fault),
             reason && *reason ? reason : "no reason given");
    if (!w->base_gone)
      event_active(w->ev_state, EV_READ, 0);
  }
  pthread_mutex_unlock(&w->mu);
  return 0;
}

int rbee_job_fail_device(rbee_job *job, rbee_device_fault fault, const char *fmt, ...) {
  if (job == NULL)
    return rbee__error_set(RBEE_EINVAL, "rbee_job_fail_device: NULL job");
  char msg[400] = "device error";
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
  }
  int rc = rbee_job_fail(job, fault_code(fault), "%s", msg);
  if (fault == RBEE_FAULT_CONTEXT || fault == RBEE_FAULT_LOST)
    rbee_worker_device_fault(rbee__job_owner(job), fault, msg);
  return rc;
}

void rbee_worker_recycle(rbee_worker *w) {
  if (w == NULL)
    return;
  pthread_mutex_lock(&w->mu);
  w->recycle_requested = 1;
  if (!w->base_gone)
    event_active(w->ev_state, EV_READ, 0);
  pthread_mutex_unlock(&w->mu);
}

void rbee__worker_fault_check(rbee_worker *w) {
  pthread_mutex_lock(&w->mu);
  int fault = w->fault_pending, recycle = w->recycle_requested;
  w->fault_pending = w->recycle_requested = 0;
  char reason[256];
  snprintf(reason, sizeof reason, "%s", w->reason[RBEE__HS_DEVICE]);
  pthread_mutex_unlock(&w->mu);
  if (fault) {
    RBEE_ERROR("worker", "fault", "%s: failing queued jobs, cancelling running ones, exiting %d "
               "to be restarted", reason, RBEE_EXIT_TEMPFAIL);
    w->restarting = 1;
    w->exit_code = RBEE_EXIT_TEMPFAIL;
    rbee__jobs_set_accepting(w->jobs, 0);
    rbee__jobs_fail_queued(w->jobs, "WORKER_RESTARTING",
                           "the worker is restarting after a device fault; retry elsewhere");
    rbee__jobs_cancel_all_as(w->jobs, RBEE_CANCEL_DEVICE, reason);
    rbee__worker_begin_drain(w, "device fault");
  }
  if (recycle && !w->restarting) {
    RBEE_INFO("worker", "recycle", "rbee_worker_recycle: draining, then exiting %d to be "
              "restarted", RBEE_EXIT_TEMPFAIL);
    w->restarting = 1;
    w->exit_code = RBEE_EXIT_TEMPFAIL;
    rbee__worker_begin_drain(w, "rbee_worker_recycle");
  }
}
