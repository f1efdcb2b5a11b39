/* trylock.h: the lock of a slot in memory shared between processes (the TLS session cache, the
 * rate-limit buckets, the sticky learn table, the per-client connection counts). Tried a bounded
 * number of times and never waited on without bound: a process that died holding one costs that
 * slot, not the others. Held only for a few loads and stores. */
#ifndef FULCRUM_TRYLOCK_H
#define FULCRUM_TRYLOCK_H

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

static inline void fc_unlock(atomic_uint *lock) { atomic_store_explicit(lock, 0, memory_order_release); }

#endif
