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

/* A histogram of cumulative buckets: @p cum[i] observations <= le[i]. */
static void histogram(struct evbuffer *b, const char *name, const char *help, const double *le,
                      const uint64_t *cum, int n, uint64_t count, double sum) {
  head(b, name, "histogram", help);
  for (int i = 0; i < n; i++)
    evbuffer_add_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, le[i], (unsigned long long)cum[i]);
  evbuffer_add_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)count);
  evbuffer_add_printf(b, "%s_sum %.17g\n", name, sum);
  evbuffer_add_printf(b, "%s_count %llu\n", name, (unsigned long long)count);
}

/* A worker with on_engine: its steps, batch sizes and admission waits. */
static void engine_metrics(struct evbuffer *b, const rbee__jobs_counts *c) {
  gauge(b, "rbee_engine_capacity", "Jobs the engine may hold at once.", c->slots);
  head(b, "rbee_engine_steps_total", "counter", "Engine steps (admissions with a job active).");
  evbuffer_add_printf(b, "rbee_engine_steps_total %llu\n", (unsigned long long)c->engine_steps);
  histogram(b, "rbee_engine_batch_size", "Active jobs per engine step.", rbee__engine_batch_le,
            c->batch_bucket, RBEE__ENGINE_BATCH_BUCKETS, c->batch_count, (double)c->batch_sum);
  histogram(b, "rbee_engine_admission_wait_seconds",
            "Time from a job's acceptance to its admission by the engine.", rbee__engine_wait_le,
            c->wait_bucket, RBEE__ENGINE_WAIT_BUCKETS, c->wait_count, (double)c->wait_sum);
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
  head(b, "rbee_stream_undelivered_events_total", "counter",
       "Events a stream's client never got: it left before the terminal marker, or the drain "
       "deadline passed.");
  evbuffer_add_printf(b, "rbee_stream_undelivered_events_total %llu\n",
                      (unsigned long long)c->undelivered_events);
  gauge(b, "rbee_queue_depth", "Accepted jobs waiting for a slot.", c->queued);
  gauge(b, "rbee_job_slots_busy", "Job slots running a job.", c->running);

  histogram(b, "rbee_job_duration_seconds", "Time from a job's start to its end.",
            rbee__job_bucket_le, c->duration_bucket, RBEE__JOB_BUCKETS, c->duration_count,
            (double)c->duration_sum);

  if (c->has_engine)
    engine_metrics(b, c);
  head(b, "rbee_job_cancels_total", "counter", "Jobs cancelled, by reason.");
  for (int r = RBEE_CANCEL_REQUESTED; r < RBEE__CANCEL_REASONS; r++)
    evbuffer_add_printf(b, "rbee_job_cancels_total{reason=\"%s\"} %llu\n",
                        rbee_cancel_reason_str((rbee_cancel_reason)r),
                        (unsigned long long)c->cancel_reason[r]);
  histogram(b, "rbee_job_cancel_latency_seconds",
            "Time from a job's cancel to its on_job returning (0 for a job that never started).",
            rbee__cancel_bucket_le, c->cancel_bucket, RBEE__CANCEL_BUCKETS, c->cancel_count,
            (double)c->cancel_sum);
  head(b, "rbee_job_idempotent_replays_total", "counter",
       "POST /v1/jobs answered with the job an earlier request of the same Idempotency-Key made.");
  evbuffer_add_printf(b, "rbee_job_idempotent_replays_total %llu\n",
                      (unsigned long long)c->idempotent_replays);

  head(b, "rbee_heartbeats_total", "counter", "Heartbeats to the queen, by result.");
  evbuffer_add_printf(b, "rbee_heartbeats_total{result=\"sent\"} %llu\n",
                      (unsigned long long)(s->has_heartbeat ? s->heartbeat.sent : 0));
  evbuffer_add_printf(b, "rbee_heartbeats_total{result=\"failed\"} %llu\n",
                      (unsigned long long)(s->has_heartbeat ? s->heartbeat.failed : 0));
  evbuffer_add_printf(b, "rbee_heartbeats_total{result=\"declined\"} %llu\n",
                      (unsigned long long)(s->has_heartbeat ? s->heartbeat.declined : 0));
  if (s->has_heartbeat)
    gauge(b, "rbee_queen_takes_heartbeats",
          "0 while the queen answers heartbeats 404/405 (it has no heartbeat route).",
          s->heartbeat.not_taken ? 0 : 1);

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
  rbee__worker_metrics_format(b);
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
