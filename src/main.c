/* main.c: the command line. Loads and validates the config, then runs the server. */
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "fulcrum/common.h"
#include "fulcrum/config.h"
#include "fulcrum/log.h"
#include "fulcrum/master.h"
#include "fulcrum/worker.h"

#define DEFAULT_CONFIG "conf/fulcrum.yaml"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: fulcrum [-c FILE] [-t] [-s reload|stop|reopen] [-v] [-h]\n"
            "       (long forms: --config FILE, --test, --signal SIG, --version, --help)\n"
            "  -c FILE  configuration file (default " DEFAULT_CONFIG ")\n"
            "  -t       check the configuration and exit: 0 when valid, 1 with FILE:LINE:COLUMN errors\n"
            "  -s SIG   signal the running master (its pid is read from the config's pid_file):\n"
            "           reload (SIGHUP), stop (SIGTERM, graceful), reopen (SIGUSR1, log files)\n"
            "  -v       print the version and exit\n"
            "  -h       print this help and exit\n"
            "Signals to the master: SIGHUP reloads the configuration without dropping a request;\n"
            "SIGTERM, SIGINT or SIGQUIT stop gracefully (in-flight requests finish, bounded by\n"
            "shutdown_timeout); SIGUSR1 reopens the log files.\n");
}

/* Each client connection may need a socket to a server as well: ask for twice the limit. */
static void raise_fd_limit(uint64_t max_connections)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    rlim_t need = (rlim_t)(max_connections * 2 + 64);
    if (rl.rlim_cur >= need) return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < need)
        fc_log(rl.rlim_cur < (rlim_t)(max_connections + 64) ? FC_LOG_WARN : FC_LOG_INFO,
               "max_connections %llu needs %llu file descriptors but the limit is %llu: raise the hard limit "
               "(ulimit -Hn, LimitNOFILE= in systemd)",
               (unsigned long long)max_connections, (unsigned long long)need, (unsigned long long)rl.rlim_cur);
}

int main(int argc, char **argv)
{
    /* The master takes its signals with sigtimedwait (master.c); blocked from the first
     * instruction, a SIGTERM that comes while the config loads waits for it instead of killing
     * the process, and the workers inherit the mask until their handlers exist. */
    sigset_t set;
    sigemptyset(&set);
    int sigs[] = {SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) sigaddset(&set, sigs[i]);
    sigprocmask(SIG_BLOCK, &set, NULL);
    const char *path = DEFAULT_CONFIG;
    const char *sig = NULL;
    int test_only = 0, opt;
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"test", no_argument, NULL, 't'},
        {"signal", required_argument, NULL, 's'}, {"version", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    while ((opt = getopt_long(argc, argv, "c:ts:vh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 's': sig = optarg; break;
        case 't': test_only = 1; break;
        case 'v': printf("fulcrum %s\n", FC_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    fc_config_t *cfg = NULL;
    fc_err_t err = {0};
    if (fc_config_load(path, &cfg, &err) != 0) {
        char line[512];
        fc_err_format(&err, line, sizeof(line));
        fprintf(stderr, "%s\n", line);
        return 1;
    }
    if (cfg->warnings != NULL) fputs(cfg->warnings, stderr);
    if (test_only) {
        printf("%s: configuration ok\n", path);
        fc_config_free(cfg);
        return 0;
    }
    if (sig != NULL) {
        int signum = strcmp(sig, "reload") == 0 ? SIGHUP : strcmp(sig, "stop") == 0 ? SIGTERM
                     : strcmp(sig, "reopen") == 0 ? SIGUSR1 : 0;
        if (signum == 0) {
            usage(stderr);
            fc_config_free(cfg);
            return 2;
        }
        int r = fc_master_signal(cfg, signum, &err);
        if (r != 0) {
            char line[512];
            fc_err_format(&err, line, sizeof(line));
            fprintf(stderr, "fulcrum: %s\n", line);
        }
        fc_config_free(cfg);
        return r == 0 ? 0 : 1;
    }
    int level = fc_log_level_parse(cfg->error_log_level);
    if (level >= 0) fc_log_level = level;
    const char *failed = NULL;
    int r = fc_log_open(cfg->error_log, cfg->access_log, &failed);
    if (r != 0) {
        fprintf(stderr, "fulcrum: cannot open log %s: %s\n", failed, strerror(-r));
        fc_config_free(cfg);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    /* Read buffers (32 KiB) and exchanges (9 KiB) beyond the freelists come from mmap, so a burst
     * of concurrent requests gives its memory back to the system instead of leaving holes in the
     * heap between the small connection objects that stay: idle memory stays proportional to
     * idle connections. */
    mallopt(M_MMAP_THRESHOLD, 8 * 1024);
    raise_fd_limit(cfg->limits.max_connections);
    fc_log(FC_LOG_NOTICE, "fulcrum %s starting with %s", FC_VERSION, path);
    int rc = fc_master_run(path, cfg); /* takes cfg */
    fc_log_close();
    return rc;
}
