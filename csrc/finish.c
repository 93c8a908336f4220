/* The process exits: no thread it may stop is left holding a message.
 *
 * When the interpreter finalizes, a thread that returns from a system call and asks
 * for the GIL back is stopped there (or parked for good): a message msgrcv handed it
 * would be gone with it.  So, while atexit handlers run and threads still can:
 *   1. a receive in any other thread takes nothing from now on (one that took a
 *      message just now returns it to the queue: sysvmq_attempt); one that would block
 *      waits as it would, taking nothing, until it times out, is closed or cancelled,
 *      or the process ends (sysvmq_sit_out); one that would not block finds nothing;
 *   2. every receive of another thread that waits in the kernel is woken to do so;
 *   3. what a receive took before that is waited for until Python has it: its buffer's
 *      `held` is reset once the message is copied out (sysvmq._binding.handle).
 * Calls in the finishing thread itself (later atexit handlers), and sends, work as
 * before. */

#define SYSVMQ_FINISH_POLL_NS 200000LL

/* Once the process exits, a receive in any thread but the one that finishes it (where
 * atexit handlers still run) takes nothing more. */
static int sysvmq_finishing;
static pthread_t sysvmq_finisher;

static int sysvmq_exiting_elsewhere(void)
{
    return __atomic_load_n(&sysvmq_finishing, __ATOMIC_SEQ_CST) && !pthread_equal(pthread_self(), sysvmq_finisher);
}

/* How many threads are inside a receive call: from its entry until what it took is
 * recorded in its buffer (`held`), which the exiting process waits for. */
static long sysvmq_receivers_inside;

static void sysvmq_receive_begins(void)
{
    __atomic_add_fetch(&sysvmq_receivers_inside, 1, __ATOMIC_SEQ_CST);
}

static long sysvmq_receive_ends(long r)
{
    __atomic_sub_fetch(&sysvmq_receivers_inside, 1, __ATOMIC_SEQ_CST);
    return r;
}

/* What a buffer holds (`held`): written by the receiving thread, read by the exiting one. */
static long sysvmq_record_held(long *held, long r)
{
    __atomic_store_n(held, r, __ATOMIC_RELAXED);
    return r;
}

static void sysvmq_record_held_count(size_t *held, size_t n)
{
    __atomic_store_n(held, n, __ATOMIC_RELAXED);
}

/* Whether any of the buffers still holds a message no Python code has yet. */
static int sysvmq_held(sysvmq_rbuf **buffers, size_t nbuffers, sysvmq_batch **batches, size_t nbatches)
{
    size_t i;
    for (i = 0; i < nbuffers; i++)
        if (__atomic_load_n(&buffers[i]->held, __ATOMIC_SEQ_CST) >= 0)
            return 1;
    for (i = 0; i < nbatches; i++)
        if (__atomic_load_n(&batches[i]->held, __ATOMIC_SEQ_CST) > 0)
            return 1;
    return 0;
}

static void sysvmq_finish_begins(void)
{
    pthread_mutex_lock(&sysvmq_lock);
    sysvmq_finisher = pthread_self();
    __atomic_store_n(&sysvmq_finishing, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&sysvmq_lock);
}

static int sysvmq_finish(sysvmq_rbuf **buffers, size_t nbuffers, sysvmq_batch **batches, size_t nbatches,
                         double seconds)
{
    long long deadline = sysvmq_monotonic_ns() + (long long)(seconds * 1e9);
    /* Kicked again each round: a signal that came just before a waiter entered the
     * kernel is lost (waiters.c). */
    while (__atomic_load_n(&sysvmq_receivers_inside, __ATOMIC_SEQ_CST) > 0 ||
           sysvmq_held(buffers, nbuffers, batches, nbatches)) {
        if (sysvmq_monotonic_ns() >= deadline)
            return -ETIMEDOUT;
        sysvmq_kick(NULL, NULL);
        sysvmq_sleep_ns(SYSVMQ_FINISH_POLL_NS);
    }
    return 0;
}

/* The threads a child inherits the count of are gone: its exit must not wait for them. */
static void sysvmq_forked(void)
{
    __atomic_store_n(&sysvmq_receivers_inside, 0, __ATOMIC_SEQ_CST);
}
