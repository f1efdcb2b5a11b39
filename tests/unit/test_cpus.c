/* test_cpus.c: `workers: auto` from the affinity mask and cgroup quotas (cpus.h), over fixture
 * directories shaped like /sys/fs/cgroup and /proc/self/cgroup. */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fulcrum/cpus.h"
#include "harness.h"

void test_cpus(void);

static char root[64];

static void put(const char *rel, const char *text)
{
    char path[256], dir[256];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    snprintf(dir, sizeof(dir), "%s", path);
    for (char *p = dir + strlen(root) + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        mkdir(dir, 0755);
        *p = '/';
    }
    FILE *f = fopen(path, "w");
    if (f == NULL) return;
    fputs(text, f);
    fclose(f);
}

static fc_cpus_t probe(const char *self_text)
{
    char self[128];
    put("self", self_text);
    snprintf(self, sizeof(self), "%s/self", root);
    fc_cpus_t c;
    fc_cpus_probe(root, self, &c);
    return c;
}

void test_cpus(void)
{
    snprintf(root, sizeof(root), "/tmp/fulcrum-cg-XXXXXX");
    ok(mkdtemp(root) != NULL);
    cpu_set_t set;
    ok(sched_getaffinity(0, sizeof(set), &set) == 0);
    unsigned mask = (unsigned)CPU_COUNT(&set);

    subtest("cpus: no cgroup limit: the affinity mask");
    fc_cpus_t c = probe("0::/\n");
    is_int(c.quota, 0);
    is_int(c.affinity, mask);
    is_int(c.count, mask < c.online ? mask : c.online);

    subtest("cpus: cgroup v2, the tightest quota on the way up, rounded up");
    put("kubepods/pod1/ctr/cpu.max", "max 100000\n");
    put("kubepods/pod1/cpu.max", "50000 100000\n"); /* 500m */
    put("kubepods/cpu.max", "400000 100000\n");
    c = probe("0::/kubepods/pod1/ctr\n");
    is_int(c.quota, 1);
    is_int(c.count, 1);
    ok(strstr(c.source, "kubepods/pod1/cpu.max") != NULL);
    put("kubepods/pod1/cpu.max", "150000 100000\n"); /* 1.5 CPUs: 2 */
    c = probe("0::/kubepods/pod1/ctr\n");
    is_int(c.quota, 2);

    subtest("cpus: cgroup v1 cpu,cpuacct quota and period");
    put("cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "100000\n");
    put("cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
    put("cpu,cpuacct/docker/cpu.cfs_quota_us", "-1\n");
    put("cpu,cpuacct/docker/cpu.cfs_period_us", "100000\n");
    c = probe("5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n");
    is_int(c.quota, 1);
    is_int(c.count, 1);

    subtest("cpus: an unlimited or unreadable quota is no limit");
    put("cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n");
    c = probe("4:cpu,cpuacct:/docker/abc\n");
    is_int(c.quota, 0);
    c = probe("0::/nowhere\n");
    is_int(c.quota, 0);
    ok(c.count >= 1);

    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    ok(system(cmd) == 0);
}
