/* trylock.h: the lock of a slot in memory shared between processes (the TLS session cache, the
 * rate-limit buckets, the sticky learn table, the per-client connection counts). Tried a bounded
 * number of times and never waited on without bound: a process that died holding one costs that
 * slot, not the others. Held only for a few loads and stores. */
#ifndef FULCRUM_TRYLOCK_H
#define FULCRUM_TRYLOCK_H

#include <sched.h>
#include <stdatomic.h>

/* Takes <lock> within <tries> attempts: 0, or -1 (it stayed held). */
static inline int fc_trylock(atomic_uint *lock, long tries)
{
    for (long i = 0; i < tries; i++) {
        unsigned free_ = 0;
        if (atomic_compare_exchange_weak_explicit(lock, &free_, 1, memory_order_acquire, memory_order_relaxed))
            return 0;
    }
    return -1;
}

/* Takes <lock>: <tries> attempts in a row, then again after each of up to <yields> sched_yield()s.
 * A holder is only ever a few stores from letting go unless it was descheduled there (a loaded
 * machine, two workers on two CPUs): giving up the CPU lets it finish. Returns 0, or -1 (a holder
 * that died costs the caller this wait, never a stuck worker). */
static inline int fc_lock_or_yield(atomic_uint *lock, long tries, int yields)
{
    if (fc_trylock(lock, tries) == 0) return 0;
    for (int i = 0; i < yields; i++) {
        sched_yield();
        if (fc_trylock(lock, tries) == 0) return 0;
    }
    return -1;
}

static inline void fc_unlock(atomic_uint *lock) { atomic_store_explicit(lock, 0, memory_order_release); }

#endif
