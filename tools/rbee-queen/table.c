/* The live table of workers on the terminal (a tty, or --table). */
#include <stdio.h>

#include "queen.h"

void queen_table_draw(const queen *q) {
  int64_t now = queen_mono_us();
  /* Home the cursor and clear: a redraw, not a scroll. */
  printf("\033[H\033[2J");
  printf("rbee-local-queen on %s:%d  workers: %u  jobs routed: %llu  failed: %llu  "
         "streams cut: %llu  dead after %.0f s\n\n",
         q->opts.bind, q->port, q->reg.count, (unsigned long long)q->jobs_routed,
         (unsigned long long)q->jobs_failed, (unsigned long long)q->streams_broken,
         q->opts.dead_after_ms / 1000.0);
  printf("%-28s %-16s %-8s %-22s %-9s %s\n", "WORKER", "MODEL", "DEVICE", "ADDRESS", "STATUS",
         "LAST SEEN");
  for (const queen_worker *w = q->reg.head; w; w = w->next) {
    char addr[64];
    snprintf(addr, sizeof addr, "%s:%u", w->address, w->info.port);
    printf("%-28.28s %-16.16s %-8.8s %-22.22s %-9s %.1f s ago\n", w->info.id, w->info.model_id,
           w->info.device, addr, rbee_status_str(w->info.status),
           (double)(now - w->last_seen_mono_us) / 1e6);
  }
  if (q->reg.head == NULL)
    printf("(no worker yet: start one with --queen-url http://%s:%d)\n", q->opts.bind, q->port);
  fflush(stdout);
}
