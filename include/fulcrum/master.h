/* master.h: the master process. It owns the listening sockets, the shared segment and every
 * generation of workers: it forks them, replaces the ones that die, and on SIGHUP starts a new
 * generation with the new config before the old one hands over and leaves. Its loop is flat:
 * signals are blocked and taken with sigtimedwait, so no handler runs concurrently with it. */
#ifndef FULCRUM_MASTER_H
#define FULCRUM_MASTER_H

#include "fulcrum/config.h"

/* Runs the master for <cfg> (loaded from <path>; ownership passes to the master) until a graceful
 * stop completes. Returns the exit status: 0 after SIGTERM/SIGINT/SIGQUIT when every worker of the
 * last generation stopped cleanly (exit status 0); 1 when it cannot start, or when one of those
 * workers exited non-zero or was killed by a signal during the stop (killed past the deadline
 * included).
 * In a worker process this returns the worker's status instead (the caller just exits with it). */
int fc_master_run(const char *path, fc_config_t *cfg);

/* Sends <signum> to the master whose pid is in <cfg>'s pid_file. Returns 0, or -1 with <err>. */
int fc_master_signal(const fc_config_t *cfg, int signum, fc_err_t *err);

/* Logs the loader's warnings about <cfg> (one line each, at warn). */
void fc_config_log_warnings(const fc_config_t *cfg);

#endif
