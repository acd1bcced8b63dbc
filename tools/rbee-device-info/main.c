/* rbee-device-info: list the devices this librbee can drive, verify one
 * with its smoke test and print its live figures, as text or JSON.
 * Exit codes: 0 ok, 64 usage or bad device spec, 69 device unavailable or
 * failed verification, 70 internal error. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <rbee/rbee.h>
#include <rbee/sys/device.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXIT_USAGE 64
#define EXIT_UNAVAILABLE 69
#define EXIT_INTERNAL 70

static const char usage[] =
    "usage: rbee-device-info [--json] [--no-verify] [-v] [DEVICE]\n"
    "       rbee-device-info --list [--json]\n"
    "\n"
    "Open DEVICE (cpu, cuda:N, metal:N, or N for the build's accelerator;\n"
    "default: $RBEE_DEVICE, else cpu), run its smoke test and print its figures.\n"
    "\n"
    "  --list       list the backends built and the devices present\n"
    "  --json       print JSON on stdout\n"
    "  --no-verify  skip the smoke test\n"
    "  -v           log the library's info messages on stderr\n"
    "  -h, --help   this text\n"
    "\n"
    "Exit: 0 ok, 64 usage or bad device spec, 69 device unavailable or failed\n"
    "verification, 70 internal error.\n";

static int exit_code(int rc) {
  if (rc == RBEE_EINVAL)
    return EXIT_USAGE;
  if (rc == RBEE_ENOMEM || rc == RBEE_EINTERNAL)
    return EXIT_INTERNAL;
  return EXIT_UNAVAILABLE;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Print @p root and free it; 70 when it cannot be made. */
static int print_json(cJSON *root, int code) {
  char *s = root ? cJSON_PrintUnformatted(root) : NULL;
  cJSON_Delete(root);
  if (s == NULL) {
    fprintf(stderr, "rbee-device-info: out of memory\n");
    return EXIT_INTERNAL;
  }
  puts(s);
  cJSON_free(s);
  return code;
}

static cJSON *error_json(int rc, const char *message) {
  cJSON *e = cJSON_CreateObject();
  cJSON_AddStringToObject(e, "code", rbee_err_name(rc));
  cJSON_AddStringToObject(e, "message", message);
  return e;
}

static const rbee_device_kind kinds[] = {RBEE_DEVICE_CPU, RBEE_DEVICE_CUDA, RBEE_DEVICE_METAL};

static int list(int json) {
  cJSON *root = json ? cJSON_CreateObject() : NULL;
  cJSON *arr = json ? cJSON_AddArrayToObject(root, "backends") : NULL;
  for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
    const char *kname = rbee_device_kind_str(kinds[k]);
    int n = 0;
    int rc = rbee_device_count(&n, kinds[k]);
    cJSON *b = NULL, *devs = NULL;
    if (json) {
      b = cJSON_CreateObject();
      cJSON_AddItemToArray(arr, b);
      cJSON_AddStringToObject(b, "kind", kname);
      cJSON_AddBoolToObject(b, "built", rbee_device_kind_built(kinds[k]));
      cJSON_AddNumberToObject(b, "count", rc == 0 ? n : 0);
      if (rc != 0)
        cJSON_AddItemToObject(b, "error", error_json(rc, rbee_error_message()));
      devs = cJSON_AddArrayToObject(b, "devices");
    } else if (rc != 0) {
      printf("%-6s %s\n", kname, rbee_error_message());
    } else if (n == 0) {
      printf("%-6s no devices present\n", kname);
    }
    for (int i = 0; rc == 0 && i < n; i++) {
      rbee_device *dev = NULL;
      int orc = kinds[k] == RBEE_DEVICE_CPU    ? rbee_device_open_cpu(&dev)
                : kinds[k] == RBEE_DEVICE_CUDA ? rbee_device_open_cuda(&dev, i)
                                               : rbee_device_open_metal(&dev, i);
      char name[32];
      snprintf(name, sizeof name, kinds[k] == RBEE_DEVICE_CPU ? "%s" : "%s:%d", kname, i);
      const char *what = orc == 0 ? rbee_device_description(dev) : rbee_error_message();
      if (json) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddItemToArray(devs, d);
        cJSON_AddStringToObject(d, "device", name);
        if (orc == 0)
          cJSON_AddStringToObject(d, "description", what);
        else
          cJSON_AddItemToObject(d, "error", error_json(orc, what));
      } else {
        printf("%-6s %-9s %s\n", kname, name, what);
      }
      rbee_device_free(dev);
    }
  }
  return json ? print_json(root, 0) : 0;
}

static void add_stats_json(cJSON *o, const rbee_device_usage *u) {
  cJSON *s = cJSON_AddObjectToObject(o, "stats");
  cJSON_AddNumberToObject(s, "cpu_cores", u->cpu_cores);
  cJSON_AddNumberToObject(s, "load1", u->load1);
  cJSON_AddNumberToObject(s, "rss_bytes", (double)u->rss_bytes);
  cJSON_AddNumberToObject(s, "mem_total_bytes", (double)u->mem_total_bytes);
  cJSON_AddNumberToObject(s, "mem_free_bytes", (double)u->mem_free_bytes);
  cJSON_AddNumberToObject(s, "utilization_pct", u->utilization_pct);
  cJSON_AddNumberToObject(s, "temperature_c", u->temperature_c);
  cJSON_AddNumberToObject(s, "power_mw", u->power_mw);
}

static void print_stats_text(const rbee_device_usage *u) {
  const double gib = 1024.0 * 1024 * 1024;
  printf("cpu          %d cores, load %.2f, process RSS %.1f MiB\n", u->cpu_cores, u->load1,
         (double)u->rss_bytes / (1024.0 * 1024));
  if (u->mem_total_bytes >= 0)
    printf("memory       %.2f GiB free of %.2f GiB\n", (double)u->mem_free_bytes / gib,
           (double)u->mem_total_bytes / gib);
  if (u->utilization_pct >= 0 || u->temperature_c >= 0 || u->power_mw >= 0)
    printf("gpu          utilization %d %%, %d C, %.1f W\n", u->utilization_pct,
           u->temperature_c, u->power_mw >= 0 ? u->power_mw / 1000.0 : -1.0);
}

static int show(const char *spec, int json, int verify) {
  rbee_device *dev = NULL;
  cJSON *root = json ? cJSON_CreateObject() : NULL;
  if (json)
    cJSON_AddStringToObject(root, "spec", spec);
  int rc = rbee_device_open(&dev, spec);
  if (rc != 0) {
    if (!json) {
      fprintf(stderr, "rbee-device-info: %s\n", rbee_error_message());
      return exit_code(rc);
    }
    cJSON_AddItemToObject(root, "error", error_json(rc, rbee_error_message()));
    return print_json(root, exit_code(rc));
  }
  const char *backend = rbee_device_backend_of(dev)->name;
  if (json) {
    cJSON_AddStringToObject(root, "device", rbee_device_name(dev));
    cJSON_AddStringToObject(root, "kind", rbee_device_kind_str(rbee_device_get_kind(dev)));
    cJSON_AddNumberToObject(root, "ordinal", rbee_device_ordinal(dev));
    cJSON_AddStringToObject(root, "backend", backend);
    cJSON_AddStringToObject(root, "description", rbee_device_description(dev));
  } else {
    printf("device       %s (%s backend)\n", rbee_device_name(dev), backend);
    printf("description  %s\n", rbee_device_description(dev));
  }
  int code = 0;
  if (verify) {
    double t0 = now_ms();
    rc = rbee_device_verify(dev);
    double ms = now_ms() - t0;
    if (json) {
      cJSON_AddBoolToObject(root, "verified", rc == 0);
      cJSON_AddNumberToObject(root, "verify_ms", ms);
    } else if (rc == 0) {
      printf("verify       ok (%.1f ms)\n", ms);
    } else {
      printf("verify       FAILED\n");
      fprintf(stderr, "rbee-device-info: %s\n", rbee_error_message());
    }
    if (rc != 0) {
      if (json)
        cJSON_AddItemToObject(root, "error", error_json(rc, rbee_error_message()));
      code = exit_code(rc);
    }
  }
  rbee_device_usage u;
  int src = rbee_device_stats(&u, dev);
  int healthy = rbee_device_check(dev) == 0;
  if (json) {
    add_stats_json(root, &u);
    cJSON_AddBoolToObject(root, "healthy", healthy);
  } else {
    print_stats_text(&u);
    printf("health       %s\n", healthy ? "healthy" : rbee_error_message());
  }
  if (code == 0 && (src != 0 || !healthy))
    code = EXIT_UNAVAILABLE;
  rbee_device_free(dev);
  return json ? print_json(root, code) : code;
}

int main(int argc, char **argv) {
  static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                       {"list", no_argument, NULL, 'l'},
                                       {"no-verify", no_argument, NULL, 'n'},
                                       {"verbose", no_argument, NULL, 'v'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  int json = 0, do_list = 0, verify = 1, verbose = 0, c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "hv", opts, NULL)) != -1) {
    switch (c) {
    case 'j':
      json = 1;
      break;
    case 'l':
      do_list = 1;
      break;
    case 'n':
      verify = 0;
      break;
    case 'v':
      verbose = 1;
      break;
    case 'h':
      fputs(usage, stdout);
      return 0;
    default:
      fprintf(stderr, "rbee-device-info: unknown option %s\n%s", argv[optind - 1], usage);
      return EXIT_USAGE;
    }
  }
  if (argc - optind > 1 || (do_list && argc - optind > 0)) {
    fprintf(stderr, "rbee-device-info: too many arguments\n%s", usage);
    return EXIT_USAGE;
  }
  rbee_log_set_level(verbose ? RBEE_LOG_DEBUG : RBEE_LOG_WARN);
  if (do_list)
    return list(json);
  const char *spec = optind < argc ? argv[optind] : getenv("RBEE_DEVICE");
  return show(spec != NULL ? spec : "cpu", json, verify);
}
