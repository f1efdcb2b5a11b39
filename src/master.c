/* master.c: the master process (see master.h). Owns the listening sockets (one table, shared by
 * generations, a socket closed only when no generation lists it any more), the shm segment, and
 * the table of worker processes. Workers are forked, not exec'd: they start from the config the
 * master already validated. */
#include "fulcrum/master.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fulcrum/cpus.h"
#include "fulcrum/log.h"
#include "fulcrum/metrics.h"
#include "fulcrum/tls.h"
#include "fulcrum/ratelimit.h"
#include "fulcrum/shm.h"
#include "fulcrum/worker.h"

#define READY_WAIT_MS 5000   /* how long a new generation may take to be ready before the old one leaves */
#define KILL_GRACE_MS 5000   /* beyond shutdown_delay + shutdown_timeout, before SIGKILL */
#define MAX_SOCKETS 256
#define TICKET_KEY_ROTATE_S (12 * 3600) /* a new session ticket key this often; the previous one still decrypts */

typedef struct fc_gen {
    unsigned number;       /* 1, 2, ... */
    fc_config_t *cfg;      /* owned */
    uint32_t *slots;       /* owned: shm slot per server */
    fc_rl_table_t **rl_tables; /* owned array of the registry's tables, one per rate limit */
    int *fds;              /* owned array: listening socket per cfg listener (borrowed from the table) */
    unsigned nworkers;
    unsigned alive;        /* its processes still running */
    uint32_t *crashes;     /* owned: quick consecutive crashes per worker index */
    uint64_t *restart_at;  /* owned: when to start worker index again (0 = not due) */
    int retiring;          /* told to hand over and leave */
    struct fc_gen *next;   /* older generation */
} fc_gen_t;

typedef struct fc_proc {
    pid_t pid;             /* 0 = free slot */
    fc_gen_t *gen;         /* borrowed */
    unsigned index;        /* index within its generation */
    uint64_t started;      /* monotonic ms */
} fc_proc_t;

typedef struct fc_socket {
    fc_addr_t addr;
    int fd;
    unsigned refs;         /* generations listing it */
} fc_socket_t;

typedef struct fc_master {
    const char *path;
    fc_shm_t *shm;
    fc_rl_registry_t rl;   /* the rate limits' bucket tables, by policy name */
    fc_gen_t *gens;        /* owned list, newest first */
    unsigned last_gen;
    fc_proc_t procs[FC_SHM_PROCS];
    fc_socket_t socks[MAX_SOCKETS];
    size_t nsocks;
    int stopping;
    int exit_code;         /* 1 once a worker of the last generation failed during the stop */
    uint64_t stop_deadline;
    uint64_t retire_deadline; /* when the older generations are told to leave, 0 = nothing pending */
    char *pid_file;        /* owned copy: the file this master wrote */
} fc_master_t;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* `workers: auto`: the CPUs this process may use (affinity mask, cgroup quota), logged once per
 * change. FULCRUM_CGROUP_ROOT and FULCRUM_PROC_CGROUP point the probe at a fixture (tests only). */
static unsigned workers_for(const fc_config_t *cfg)
{
    static unsigned last_logged;
    if (cfg->workers > 0) return (unsigned)cfg->workers;
    const char *root = getenv("FULCRUM_CGROUP_ROOT"), *self = getenv("FULCRUM_PROC_CGROUP");
    fc_cpus_t c;
    fc_cpus_probe(root ? root : "/sys/fs/cgroup", self ? self : "/proc/self/cgroup", &c);
    unsigned n = c.count > FC_SHM_PROCS / 2 ? FC_SHM_PROCS / 2 : c.count;
    if (n != last_logged) {
        char quota[320] = "no CPU quota";
        if (c.quota > 0) snprintf(quota, sizeof(quota), "a quota of %u CPU%s (%s)", c.quota, c.quota == 1 ? "" : "s", c.source);
        fc_log(FC_LOG_NOTICE, "workers: auto: %u (%u CPUs online, %u in the affinity mask, %s)", n, c.online, c.affinity,
               quota);
        last_logged = n;
    }
    return n;
}

/* ---- listening sockets --------------------------------------------------------------------- */

static int same_addr(const fc_addr_t *a, const fc_addr_t *b) { return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0; }

/* The fds for <cfg>'s listeners: the open ones kept, new ones opened. Returns 0 or -1 with <err>. */
static int sockets_take(fc_master_t *m, const fc_config_t *cfg, int *fds, fc_err_t *err)
{
    size_t taken = 0;
    for (; taken < cfg->nlisteners; taken++) {
        const fc_listener_conf_t *l = &cfg->listeners[taken];
        size_t j;
        for (j = 0; j < m->nsocks; j++)
            if (m->socks[j].refs > 0 && same_addr(&m->socks[j].addr, &l->addr)) break;
        if (j == m->nsocks) {
            for (j = 0; j < m->nsocks && m->socks[j].refs > 0; j++) continue;
            if (j == MAX_SOCKETS) {
                fc_err_set(err, "too many listening sockets");
                goto undo;
            }
            fc_config_t one = {.listeners = (fc_listener_conf_t *)l, .nlisteners = 1};
            if (fc_listen_open(&one, &m->socks[j].fd, err) != 0) goto undo;
            m->socks[j].addr = l->addr;
            if (j == m->nsocks) m->nsocks++;
        }
        m->socks[j].refs++;
        fds[taken] = m->socks[j].fd;
    }
    return 0;
undo:
    while (taken-- > 0) {
        for (size_t j = 0; j < m->nsocks; j++)
            if (m->socks[j].refs > 0 && m->socks[j].fd == fds[taken] && --m->socks[j].refs == 0) close(m->socks[j].fd);
    }
    return -1;
}

static void sockets_release(fc_master_t *m, const fc_gen_t *g)
{
    for (size_t i = 0; i < g->cfg->nlisteners; i++)
        for (size_t j = 0; j < m->nsocks; j++)
            if (m->socks[j].refs > 0 && m->socks[j].fd == g->fds[i]) {
                if (--m->socks[j].refs == 0) {
                    close(m->socks[j].fd);
                    if (!m->stopping) fc_log(FC_LOG_NOTICE, "closed listener %s (no longer configured)", m->socks[j].addr.text);
                }
                break;
            }
}

/* ---- generations --------------------------------------------------------------------------- */

static void gen_free(fc_master_t *m, fc_gen_t *g, int release)
{
    if (release) {
        fc_shm_release(m->shm, g->cfg, g->slots);
        fc_rl_release(&m->rl, g->cfg, g->rl_tables);
        sockets_release(m, g);
    }
    free(g->rl_tables);
    fc_config_free(g->cfg);
    free(g->slots);
    free(g->fds);
    free(g->crashes);
    free(g->restart_at);
    free(g);
}

static fc_gen_t *gen_new(fc_master_t *m, fc_config_t *cfg, fc_err_t *err)
{
    fc_gen_t *g = fc_xcalloc(1, sizeof(*g));
    g->cfg = cfg;
    g->nworkers = workers_for(cfg);
    g->slots = fc_xcalloc(fc_shm_nslots(cfg) + 1, sizeof(uint32_t));
    g->fds = fc_xcalloc(cfg->nlisteners, sizeof(int));
    g->crashes = fc_xcalloc(g->nworkers, sizeof(uint32_t));
    g->restart_at = fc_xcalloc(g->nworkers, sizeof(uint64_t));
    g->rl_tables = fc_xcalloc(cfg->nrate_limits + 1, sizeof(*g->rl_tables));
    if (fc_rl_assign(&m->rl, cfg, g->rl_tables, err) != 0) {
        g->cfg = NULL;
        gen_free(m, g, 0);
        return NULL;
    }
    if (fc_shm_assign(m->shm, cfg, g->slots) != 0) {
        fc_err_set(err, "more than %d servers or %d upstream queues across the running configurations", FC_SHM_SLOTS,
                   FC_SHM_QUEUES);
        fc_rl_release(&m->rl, cfg, g->rl_tables);
        g->cfg = NULL;
        gen_free(m, g, 0);
        return NULL;
    }
    if (sockets_take(m, cfg, g->fds, err) != 0) {
        fc_shm_release(m->shm, cfg, g->slots);
        fc_rl_release(&m->rl, cfg, g->rl_tables);
        g->cfg = NULL;
        gen_free(m, g, 0);
        return NULL;
    }
    g->number = ++m->last_gen;
    g->next = m->gens;
    m->gens = g;
    return g;
}

/* Frees the master's memory in a worker process, which has its own copy of all of it. */
static void master_free_copy(fc_master_t *m, const fc_gen_t *keep)
{
    fc_gen_t *g = m->gens;
    while (g != NULL) {
        fc_gen_t *next = g->next;
        if (g != keep) gen_free(m, g, 0);
        g = next;
    }
    free(m->pid_file);
}

/* ---- worker processes ---------------------------------------------------------------------- */

static int spawn(fc_master_t *m, fc_gen_t *g, unsigned index)
{
    unsigned slot;
    for (slot = 0; slot < FC_SHM_PROCS && m->procs[slot].pid != 0; slot++) continue;
    if (slot == FC_SHM_PROCS) {
        fc_log(FC_LOG_ERROR, "cannot start worker %u: %d worker processes already", index, FC_SHM_PROCS);
        return -1;
    }
    fc_shm_forget_proc(m->shm, slot);
    if (m->shm->metrics != NULL) fc_metrics_claim(m->shm->metrics, slot);
    pid_t pid = fork();
    if (pid < 0) {
        fc_log(FC_LOG_ERROR, "cannot start worker %u: fork: %s", index, strerror(errno));
        return -1;
    }
    if (pid == 0) {
        /* The worker: its own signal handling (the master's signals stay blocked until the
         * worker's handlers are in place: a SIGTERM in between must not kill it by default, which
         * the master would rightly call an unclean stop), only its own listening sockets. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        for (size_t j = 0; j < m->nsocks; j++) {
            int mine = 0;
            for (size_t i = 0; i < g->cfg->nlisteners; i++) mine |= g->fds[i] == m->socks[j].fd;
            if (!mine && m->socks[j].refs > 0) close(m->socks[j].fd);
        }
        const char *failed = NULL;
        int r = fc_log_open(g->cfg->error_log, g->cfg->access_log, &failed);
        if (r != 0) fc_log(FC_LOG_ERROR, "cannot open log %s: %s", failed, strerror(-r));
        fc_worker_args_t args = {.cfg = g->cfg, .fds = g->fds, .shm = m->shm, .slots = g->slots,
                                 .rl_tables = g->rl_tables,
                                 .generation = g->number, .index = index, .proc = slot, .master_pid = (int)getppid()};
        int rc = fc_worker_run(&args);
        master_free_copy(m, g);
        gen_free(m, g, 0);
        fc_rl_registry_free(&m->rl, 0);
        fc_metrics_shm_destroy(m->shm->metrics);
        fc_shm_destroy(m->shm);
        fc_log_close();
        exit(rc);
    }
    m->procs[slot] = (fc_proc_t){.pid = pid, .gen = g, .index = index, .started = now_ms()};
    g->alive++;
    g->restart_at[index] = 0;
    return 0;
}

static void signal_gen(fc_master_t *m, const fc_gen_t *g, int signum)
{
    for (unsigned i = 0; i < FC_SHM_PROCS; i++)
        if (m->procs[i].pid != 0 && (g == NULL || m->procs[i].gen == g)) kill(m->procs[i].pid, signum);
}

static void describe_exit(int status, char *out, size_t n)
{
    if (WIFEXITED(status)) snprintf(out, n, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status)) snprintf(out, n, "was killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else snprintf(out, n, "ended (status %d)", status);
}

static void reap(fc_master_t *m)
{
    int status;
    pid_t pid;
    struct rusage ru;
    fc_metrics_shm_t *ms = m->shm->metrics;
    while ((pid = wait4(-1, &status, WNOHANG, &ru)) > 0) {
        unsigned slot;
        for (slot = 0; slot < FC_SHM_PROCS && m->procs[slot].pid != pid; slot++) continue;
        if (slot == FC_SHM_PROCS) continue;
        fc_proc_t p = m->procs[slot];
        m->procs[slot].pid = 0;
        fc_shm_forget_proc(m->shm, slot); /* what it counted as active is not active any more */
        /* ... so the places it held can go to requests waiting in the others' queues. */
        for (unsigned i = 0; i < FC_SHM_PROCS; i++)
            if (m->procs[i].pid != 0) fc_shm_wake(m->shm, i);
        if (ms != NULL) {
            /* Its counters and CPU time stay in the totals: no counter goes down when a worker leaves. */
            fc_metrics_fold(ms, slot);
            uint64_t us = (uint64_t)ru.ru_utime.tv_sec * 1000000 + (uint64_t)ru.ru_utime.tv_usec +
                          (uint64_t)ru.ru_stime.tv_sec * 1000000 + (uint64_t)ru.ru_stime.tv_usec;
            atomic_fetch_add(&ms->retired_cpu_us, us);
        }
        /* A worker that did not exit cleanly may have left client connections counted: the
         * per-client counts start over (low for a while, never stuck high). */
        if (status != 0) fc_shm_peer_reset(m->shm);
        fc_gen_t *g = p.gen;
        g->alive--;
        char how[96];
        describe_exit(status, how, sizeof(how));
        uint64_t now = now_ms();
        if (g == m->gens && !g->retiring && !m->stopping) {
            /* A worker of the serving generation died: replace it, at once the first time, with a
             * growing delay while it keeps dying young. */
            if (ms != NULL) atomic_fetch_add(&ms->worker_restarts, 1);
            uint32_t *c = &g->crashes[p.index];
            *c = now - p.started < 10000 ? *c + 1 : 1;
            uint64_t delay = *c <= 1 ? 0 : FC_MIN((uint64_t)100 << FC_MIN(*c - 2, 9), 30000);
            if (delay == 0) fc_log(FC_LOG_ERROR, "worker %u (pid %d) %s; starting a new one", p.index, (int)pid, how);
            else
                fc_log(FC_LOG_ERROR, "worker %u (pid %d) %s again (%u times in a row within 10 s); next start in %llu ms",
                       p.index, (int)pid, how, *c, (unsigned long long)delay);
            g->restart_at[p.index] = now + delay + (delay == 0);
        } else if (m->stopping && g == m->gens && status != 0) {
            /* The serving generation must stop cleanly: a worker that did not (a leak found at
             * exit, a crash, killed past the deadline) makes the master's stop fail. */
            m->exit_code = 1;
            fc_log(FC_LOG_ERROR, "worker %u (pid %d, generation %u) %s while stopping", p.index, (int)pid, g->number,
                   how);
        } else {
            fc_log(status == 0 ? FC_LOG_INFO : FC_LOG_WARN, "worker %u (pid %d, generation %u) %s", p.index, (int)pid,
                   g->number, how);
        }
        if (g != m->gens && g->alive == 0) {
            fc_gen_t **pp = &m->gens;
            while (*pp != g) pp = &(*pp)->next;
            *pp = g->next;
            fc_log(FC_LOG_NOTICE, "generation %u has left", g->number);
            gen_free(m, g, 1);
        }
    }
}

static void restart_due(fc_master_t *m)
{
    fc_gen_t *g = m->gens;
    uint64_t now = now_ms();
    if (g == NULL || g->retiring || m->stopping) return;
    for (unsigned i = 0; i < g->nworkers; i++)
        if (g->restart_at[i] != 0 && now >= g->restart_at[i] && spawn(m, g, i) != 0) g->restart_at[i] = now + 1000;
}

/* Once the newest generation is ready (or took too long), the older ones hand over and leave. */
static void retire_when_ready(fc_master_t *m)
{
    if (m->retire_deadline == 0) return;
    fc_gen_t *g = m->gens;
    unsigned ready = 0;
    for (unsigned i = 0; i < FC_SHM_PROCS; i++)
        if (m->procs[i].pid != 0 && m->procs[i].gen == g && atomic_load(&m->shm->ready[i]) == g->number) ready++;
    if (ready < g->nworkers && now_ms() < m->retire_deadline) return;
    m->retire_deadline = 0;
    for (fc_gen_t *old = g->next; old != NULL; old = old->next) {
        if (old->retiring) continue;
        old->retiring = 1;
        signal_gen(m, old, SIGUSR2);
    }
    fc_log(FC_LOG_NOTICE, "reload: generation %u serving (%u of %u workers ready); older generations hand over and leave",
           g->number, ready, g->nworkers);
}

static void rotate_ticket_keys(fc_master_t *m)
{
    unsigned long long since = atomic_load(&m->shm->tickets.since);
    if ((unsigned long long)time(NULL) < since + TICKET_KEY_ROTATE_S) return;
    if (fc_tls_tickets_rotate(&m->shm->tickets) != 0) fc_log(FC_LOG_ERROR, "cannot rotate the session ticket key");
    else fc_log(FC_LOG_INFO, "session ticket key rotated");
}

/* Logs what the loader warned about (a certificate about to expire). */
void fc_config_log_warnings(const fc_config_t *cfg)
{
    for (const char *p = cfg->warnings; p != NULL && *p;) {
        const char *nl = strchr(p, '\n');
        int n = nl ? (int)(nl - p) : (int)strlen(p);
        fc_log(FC_LOG_WARN, "%.*s", n, p);
        p += n + (nl != NULL);
    }
}

/* A reload's result, for the metrics. */
static void reload_counted(fc_master_t *m, int ok)
{
    fc_metrics_shm_t *ms = m->shm->metrics;
    if (ms == NULL) return;
    atomic_fetch_add(ok ? &ms->reloads_ok : &ms->reloads_failed, 1);
    atomic_store(&ms->last_reload_ok, (uint64_t)ok);
    if (ok) atomic_store(&ms->last_reload_ok_time, (uint64_t)time(NULL));
}

static void reload(fc_master_t *m)
{
    fc_config_t *cfg = NULL;
    fc_err_t err = {0};
    char line[512];
    if (fc_config_load(m->path, &cfg, &err) != 0) {
        fc_err_format(&err, line, sizeof(line));
        fc_log(FC_LOG_ERROR, "reload failed, still serving the previous configuration: %s", line);
        reload_counted(m, 0);
        return;
    }
    fc_gen_t *g = gen_new(m, cfg, &err);
    if (g == NULL) {
        fc_log(FC_LOG_ERROR, "reload failed, still serving the previous configuration: %s", err.msg);
        fc_config_free(cfg);
        reload_counted(m, 0);
        return;
    }
    reload_counted(m, 1);
    /* The new generation's workers are forked from here, so they log at the new level, and so
     * does the master; the old generation keeps its level until it leaves. */
    int level = fc_log_level_parse(cfg->error_log_level);
    if (level >= 0) fc_log_level = level;
    const char *failed = NULL;
    if (fc_log_open(cfg->error_log, cfg->access_log, &failed) != 0) fc_log(FC_LOG_ERROR, "cannot open log %s", failed);
    atomic_store(&m->shm->nworkers, g->nworkers);
    atomic_store(&m->shm->generation, g->number);
    for (unsigned i = 0; i < g->nworkers; i++)
        if (spawn(m, g, i) != 0) g->restart_at[i] = now_ms() + 1000;
    m->retire_deadline = now_ms() + READY_WAIT_MS;
    fc_log(FC_LOG_NOTICE, "reload: configuration %s loaded, starting generation %u", m->path, g->number);
    fc_config_log_warnings(cfg);
}

static void stop(fc_master_t *m, int signum)
{
    if (m->stopping) return;
    m->stopping = 1;
    const fc_config_t *cfg = m->gens->cfg;
    m->stop_deadline = now_ms() + cfg->shutdown_delay + cfg->shutdown_timeout + KILL_GRACE_MS;
    fc_log(FC_LOG_NOTICE, "received %s: graceful stop", strsignal(signum));
    signal_gen(m, NULL, SIGTERM);
}

static unsigned procs_alive(const fc_master_t *m)
{
    unsigned n = 0;
    for (unsigned i = 0; i < FC_SHM_PROCS; i++) n += m->procs[i].pid != 0;
    return n;
}

/* Written whole to a temporary file, then renamed: a reader never sees it empty or half written. */
static void write_pid_file(fc_master_t *m, const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    int ok = f != NULL && fprintf(f, "%d\n", (int)getpid()) > 0;
    if (f != NULL && fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        fc_log(FC_LOG_ERROR, "cannot write pid_file %s: %s", path, strerror(errno));
        unlink(tmp);
        return;
    }
    m->pid_file = fc_xstrdup(path);
}

int fc_master_run(const char *path, fc_config_t *cfg)
{
    fc_master_t m;
    fc_err_t err = {0};
    memset(&m, 0, sizeof(m));
    m.path = path;
    m.shm = fc_shm_create();
    if (m.shm == NULL) {
        fc_log(FC_LOG_ERROR, "cannot map shared memory: %s", strerror(errno));
        fc_config_free(cfg);
        return 1;
    }
    if (fc_tls_tickets_init(&m.shm->tickets) != 0) {
        fc_log(FC_LOG_ERROR, "cannot make a session ticket key: no randomness");
        fc_config_free(cfg);
        fc_shm_destroy(m.shm);
        return 1;
    }
    /* Sized by the first configuration's max_series (a reload keeps the mapping). Without it the
     * proxy runs on, without metrics. */
    m.shm->metrics = fc_metrics_shm_create(cfg->metrics.max_series);
    if (m.shm->metrics == NULL) fc_log(FC_LOG_ERROR, "cannot map the metrics segment: %s: metrics are off", strerror(errno));
    fc_tls_use_tickets(&m.shm->tickets); /* the workers inherit both */
    fc_tls_use_cache(&m.shm->sessions);
    sigset_t set;
    sigemptyset(&set);
    int sigs[] = {SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD};
    for (size_t i = 0; i < FC_ARRAY_LEN(sigs); i++) sigaddset(&set, sigs[i]);
    sigprocmask(SIG_BLOCK, &set, NULL);

    fc_gen_t *g = gen_new(&m, cfg, &err);
    if (g == NULL) {
        fc_log(FC_LOG_ERROR, "%s", err.msg);
        fc_config_free(cfg);
        fc_metrics_shm_destroy(m.shm->metrics);
        fc_shm_destroy(m.shm);
        return 1;
    }
    if (cfg->pid_file != NULL) write_pid_file(&m, cfg->pid_file);
    atomic_store(&m.shm->nworkers, g->nworkers);
    atomic_store(&m.shm->generation, g->number);
    fc_log(FC_LOG_NOTICE, "fulcrum %s: master pid %d, %u worker%s", FC_VERSION, (int)getpid(), g->nworkers,
           g->nworkers == 1 ? "" : "s");
    for (unsigned i = 0; i < g->nworkers; i++)
        if (spawn(&m, g, i) != 0) g->restart_at[i] = now_ms() + 1000;

    for (;;) {
        struct timespec tick = {0, 50 * 1000 * 1000};
        siginfo_t info;
        int sig = sigtimedwait(&set, &info, &tick);
        switch (sig) {
        case SIGHUP:
            if (!m.stopping) reload(&m);
            break;
        case SIGTERM:
        case SIGINT:
        case SIGQUIT: stop(&m, sig); break;
        case SIGUSR1: {
            int r = fc_log_reopen();
            if (r < 0) fc_log(FC_LOG_ERROR, "reopening logs: %s", strerror(-r));
            signal_gen(&m, NULL, SIGUSR1);
            break;
        }
        default: break;
        }
        reap(&m);
        rotate_ticket_keys(&m);
        restart_due(&m);
        retire_when_ready(&m);
        if (m.stopping) {
            if (procs_alive(&m) == 0) break;
            if (now_ms() >= m.stop_deadline) {
                fc_log(FC_LOG_ERROR, "workers still running past shutdown_timeout: killing them");
                signal_gen(&m, NULL, SIGKILL);
                m.stop_deadline = UINT64_MAX;
            }
        }
    }
    while (m.gens != NULL) {
        fc_gen_t *next = m.gens->next;
        gen_free(&m, m.gens, 1);
        m.gens = next;
    }
    if (m.pid_file != NULL) unlink(m.pid_file);
    free(m.pid_file);
    fc_rl_registry_free(&m.rl, 1);
    fc_metrics_shm_destroy(m.shm->metrics);
    fc_shm_destroy(m.shm);
    if (m.exit_code != 0) fc_log(FC_LOG_ERROR, "stopped, but a worker did not stop cleanly (see above): exit status 1");
    else fc_log(FC_LOG_NOTICE, "stopped");
    return m.exit_code;
}

int fc_master_signal(const fc_config_t *cfg, int signum, fc_err_t *err)
{
    if (cfg->pid_file == NULL) return fc_err_setpos(err, cfg->file, 0, 0, "no pid_file is configured");
    FILE *f = fopen(cfg->pid_file, "r");
    if (f == NULL) return fc_err_set(err, "%s: %s (is fulcrum running?)", cfg->pid_file, strerror(errno));
    int pid = 0;
    int ok = fscanf(f, "%d", &pid) == 1 && pid > 1;
    fclose(f);
    if (!ok) return fc_err_set(err, "%s: no process id in it", cfg->pid_file);
    if (kill(pid, signum) != 0) return fc_err_set(err, "signalling pid %d from %s: %s", pid, cfg->pid_file, strerror(errno));
    return 0;
}
