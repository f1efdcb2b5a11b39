/* cpus.h: how many CPUs this process may really use, for `workers: auto`: the CPUs in its
 * affinity mask (taskset, cpusets) and its cgroup's CPU quota (v2 cpu.max, v1
 * cpu.cfs_quota_us / cpu.cfs_period_us, rounded up), the tightest limit on the way from its own
 * cgroup up to the root; whichever is smallest. nginx's `auto` counts the host's CPUs, so a pod
 * limited to 500m on a 64-core node would start 64 workers. */
#ifndef FULCRUM_CPUS_H
#define FULCRUM_CPUS_H

typedef struct fc_cpus {
    unsigned online;     /* CPUs online on the host */
    unsigned affinity;   /* CPUs in the affinity mask; 0 = unknown */
    unsigned quota;      /* the quota in whole CPUs, rounded up; 0 = no quota */
    char source[256];    /* the file the quota came from, "" = none */
    unsigned count;      /* the smallest of the three (at least 1) */
} fc_cpus_t;

/* Fills <out>, reading the cgroup files under <root> ("/sys/fs/cgroup") for the cgroup named in
 * <self> ("/proc/self/cgroup"). */
void fc_cpus_probe(const char *root, const char *self, fc_cpus_t *out);

#endif
