/* cpus.c: see cpus.h. Reads a few small files; no state. */
#include "fulcrum/cpus.h"

#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Reads the first line of <path> into <buf>; 0 or -1. */
static int read_line(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) return -1;
    int ok = fgets(buf, (int)cap, f) != NULL;
    fclose(f);
    return ok ? 0 : -1;
}

static unsigned ceil_div(unsigned long long q, unsigned long long p) { return (unsigned)((q + p - 1) / p); }

/* The quota at <dir> (v2 when <v2>), in whole CPUs, or 0 for none there. */
static unsigned quota_at(const char *dir, int v2)
{
    char path[600], line[128];
    unsigned long long q = 0, p = 0;
    if (v2) {
        if (snprintf(path, sizeof(path), "%s/cpu.max", dir) >= (int)sizeof(path)) return 0;
        if (read_line(path, line, sizeof(line)) < 0 || strncmp(line, "max", 3) == 0) return 0;
        if (sscanf(line, "%llu %llu", &q, &p) != 2 || p == 0 || q == 0) return 0;
        return ceil_div(q, p);
    }
    long long sq = 0;
    if (snprintf(path, sizeof(path), "%s/cpu.cfs_quota_us", dir) >= (int)sizeof(path)) return 0;
    if (read_line(path, line, sizeof(line)) < 0 || sscanf(line, "%lld", &sq) != 1 || sq <= 0) return 0;
    if (snprintf(path, sizeof(path), "%s/cpu.cfs_period_us", dir) >= (int)sizeof(path)) return 0;
    if (read_line(path, line, sizeof(line)) < 0 || sscanf(line, "%llu", &p) != 1 || p == 0) return 0;
    return ceil_div((unsigned long long)sq, p);
}

/* Walks from <base>/<cg> up to <base>, keeping the tightest quota. */
static void walk(const char *base, const char *cg, int v2, fc_cpus_t *out)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s%s", base, strcmp(cg, "/") == 0 ? "" : cg);
    size_t baselen = strlen(base);
    for (;;) {
        unsigned q = quota_at(dir, v2);
        if (q > 0 && (out->quota == 0 || q < out->quota)) {
            out->quota = q;
            if (snprintf(out->source, sizeof(out->source), "%s/%s", dir, v2 ? "cpu.max" : "cpu.cfs_quota_us") >=
                (int)sizeof(out->source))
                strcpy(out->source + sizeof(out->source) - 4, "...");
        }
        char *slash = strrchr(dir, '/');
        if (slash == NULL || (size_t)(slash - dir) < baselen) break;
        *slash = '\0';
    }
}

void fc_cpus_probe(const char *root, const char *self, fc_cpus_t *out)
{
    memset(out, 0, sizeof(*out));
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    out->online = n < 1 ? 1 : (unsigned)n;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) out->affinity = (unsigned)CPU_COUNT(&set);
    FILE *f = fopen(self, "r");
    char line[1024];
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        /* "0::/path" (v2) or "4:cpu,cpuacct:/path" (v1) */
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2 == NULL || c2[1] != '/') continue;
        *c1 = *c2 = '\0';
        const char *ctrl = c1 + 1, *cg = c2 + 1;
        char base[512];
        if (strcmp(line, "0") == 0 && *ctrl == '\0') {
            walk(root, cg, 1, out);
            continue;
        }
        int cpu = 0;
        char ctrls[256];
        snprintf(ctrls, sizeof(ctrls), ",%s,", ctrl);
        cpu = strstr(ctrls, ",cpu,") != NULL;
        if (!cpu) continue;
        snprintf(base, sizeof(base), "%s/%s", root, ctrl); /* "cpu,cpuacct" or "cpu" */
        walk(base, cg, 0, out);
        snprintf(base, sizeof(base), "%s/cpu", root);
        if (strcmp(ctrl, "cpu") != 0) walk(base, cg, 0, out);
    }
    if (f != NULL) fclose(f);
    unsigned c = out->online;
    if (out->affinity > 0 && out->affinity < c) c = out->affinity;
    if (out->quota > 0 && out->quota < c) c = out->quota;
    out->count = c < 1 ? 1 : c;
}
