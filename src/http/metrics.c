/* /metrics in the Prometheus text exposition format (version 0.0.4). */
#include <event2/buffer.h>
#include <stdio.h>

#include "conns.h"
#include "http_internal.h"

static void head(struct evbuffer *b, const char *name, const char *type, const char *help) {
  evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void gauge(struct evbuffer *b, const char *name, const char *help, double v) {
  head(b, name, "gauge", help);
  evbuffer_add_printf(b, "%s %.17g\n", name, v);
}

int rbee__metrics_format(struct evbuffer *b, const rbee__snapshot *s,
                         const rbee__jobs_counts *c) {
  head(b, "rbee_jobs_total", "counter", "Jobs that ended, by outcome.");
  evbuffer_add_printf(b, "rbee_jobs_total{outcome=\"done\"} %llu\n", (unsigned long long)c->done);
  evbuffer_add_printf(b, "rbee_jobs_total{outcome=\"failed\"} %llu\n",
                      (unsigned long long)c->failed);
  evbuffer_add_printf(b, "rbee_jobs_total{outcome=\"cancelled\"} %llu\n",
                      (unsigned long long)c->cancelled);
  head(b, "rbee_jobs_accepted_total", "counter", "Jobs accepted.");
  evbuffer_add_printf(b, "rbee_jobs_accepted_total %llu\n", (unsigned long long)c->accepted);
  head(b, "rbee_jobs_rejected_total", "counter", "Jobs refused because the queue was full.");
  evbuffer_add_printf(b, "rbee_jobs_rejected_total{reason=\"queue_full\"} %llu\n",
                      (unsigned long long)c->rejected_full);
  gauge(b, "rbee_queue_depth", "Accepted jobs waiting for a slot.", c->queued);
  gauge(b, "rbee_job_slots_busy", "Job slots running a job.", c->running);

  head(b, "rbee_job_duration_seconds", "histogram", "Time from a job's start to its end.");
  for (int i = 0; i < RBEE__JOB_BUCKETS; i++)
    evbuffer_add_printf(b, "rbee_job_duration_seconds_bucket{le=\"%g\"} %llu\n",
                        rbee__job_bucket_le[i], (unsigned long long)c->duration_bucket[i]);
  evbuffer_add_printf(b, "rbee_job_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                      (unsigned long long)c->duration_count);
  evbuffer_add_printf(b, "rbee_job_duration_seconds_sum %.17g\n", c->duration_sum);
  evbuffer_add_printf(b, "rbee_job_duration_seconds_count %llu\n",
                      (unsigned long long)c->duration_count);

  head(b, "rbee_heartbeats_total", "counter", "Heartbeats to the queen, by result.");
  evbuffer_add_printf(b, "rbee_heartbeats_total{result=\"sent\"} %llu\n",
                      (unsigned long long)(s->has_heartbeat ? s->heartbeat.sent : 0));
  evbuffer_add_printf(b, "rbee_heartbeats_total{result=\"failed\"} %llu\n",
                      (unsigned long long)(s->has_heartbeat ? s->heartbeat.failed : 0));

  head(b, "rbee_worker_state", "gauge", "1 for the worker's current state.");
  for (int st = RBEE_STATUS_STARTING; st <= RBEE_STATUS_STOPPED; st++)
    evbuffer_add_printf(b, "rbee_worker_state{state=\"%s\"} %d\n",
                        rbee_status_str((rbee_worker_status)st), st == (int)s->status);
  head(b, "rbee_worker_health", "gauge", "1 for the worker's current health.");
  for (int hl = RBEE_HEALTH_HEALTHY; hl <= RBEE_HEALTH_UNHEALTHY; hl++)
    evbuffer_add_printf(b, "rbee_worker_health{health=\"%s\"} %d\n",
                        rbee_health_str((rbee_health)hl), hl == (int)s->health);
  gauge(b, "rbee_uptime_seconds", "Seconds since the worker started.", (double)s->uptime_us / 1e6);
  if (s->has_device) {
    if (s->device.mem_total_bytes >= 0)
      gauge(b, "rbee_device_memory_total_bytes", "Device memory.",
            (double)s->device.mem_total_bytes);
    if (s->device.mem_free_bytes >= 0)
      gauge(b, "rbee_device_memory_free_bytes", "Free device memory.",
            (double)s->device.mem_free_bytes);
    if (s->device.rss_bytes >= 0)
      gauge(b, "rbee_process_resident_memory_bytes", "Resident memory of the worker process.",
            (double)s->device.rss_bytes);
    if (s->device.utilization_pct >= 0)
      gauge(b, "rbee_device_utilization_ratio", "GPU busy fraction.",
            s->device.utilization_pct / 100.0);
    if (s->device.temperature_c >= 0)
      gauge(b, "rbee_device_temperature_celsius", "GPU temperature.", s->device.temperature_c);
  }
  return 0;
}

int rbee__metrics_format_conns(struct evbuffer *b, const rbee__conns_stats *st) {
  gauge(b, "rbee_http_connections", "Open HTTP connections.", st->open);
  gauge(b, "rbee_http_connections_waiting",
        "Open HTTP connections waiting for (the rest of) a request.", st->waiting);
  gauge(b, "rbee_http_connections_max", "The cap on open HTTP connections.", st->max);
  head(b, "rbee_http_connections_accepted_total", "counter", "HTTP connections accepted.");
  evbuffer_add_printf(b, "rbee_http_connections_accepted_total %llu\n",
                      (unsigned long long)st->accepted);
  head(b, "rbee_http_connections_closed_total", "counter",
       "HTTP connections the worker closed: to make room at the cap, refused with a 503, or "
       "past their request or idle deadline.");
  evbuffer_add_printf(b, "rbee_http_connections_closed_total{reason=\"evicted\"} %llu\n",
                      (unsigned long long)st->evicted);
  evbuffer_add_printf(b, "rbee_http_connections_closed_total{reason=\"refused\"} %llu\n",
                      (unsigned long long)st->refused);
  evbuffer_add_printf(b, "rbee_http_connections_closed_total{reason=\"timeout\"} %llu\n",
                      (unsigned long long)st->timed_out);
  return 0;
}
