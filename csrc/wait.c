/* One system call, and waiting for one: an attempt, and a blocking attempt made as a
 * registered waiter (or by polling when no signal can reach the thread). */

/* A call that no signal can interrupt tries again after 50 us, then at most every 2 ms. */
#define SYSVMQ_POLL_MIN_NS 50000LL
#define SYSVMQ_POLL_MAX_NS 2000000LL

struct sysvmq_op {
    int send; /* 1: msgsnd, 0: msgrcv */
    int id;
    struct sysvmq_msgbuf *buf;
    size_t size;
    long msgtyp;
};

static int sysvmq_return_to_queue(int id, struct sysvmq_msgbuf *buf, size_t len);

static long sysvmq_attempt(const struct sysvmq_op *op, int flags)
{
    long r;
    if (op->send) {
        r = msgsnd(op->id, op->buf, op->size, flags);
        return r < 0 ? -errno : r;
    }
    /* The process is exiting, and this thread may be stopped before Python gets a
     * message (finish.c): it takes none, and one it took just now goes back. */
    if (!(flags & SYSVMQ_MSG_COPY) && sysvmq_exiting_elsewhere())
        return -ESHUTDOWN;
    r = (long)msgrcv(op->id, op->buf, op->size, op->msgtyp, flags);
    if (r < 0)
        return -errno;
    /* One that cannot go back (the queue stayed full) is this call's after all: the
     * exiting thread waits for Python to have it (finish.c). */
    if (!(flags & SYSVMQ_MSG_COPY) && sysvmq_exiting_elsewhere() &&
        sysvmq_return_to_queue(op->id, op->buf, (size_t)r) == 0)
        return -ESHUTDOWN;
    return r;
}

/* No signal can interrupt this call (none is free, or no helper thread could start):
 * try again with IPC_NOWAIT at growing intervals, up to SYSVMQ_POLL_MAX_NS. */
static long sysvmq_poll(sysvmq_handle *h, const struct sysvmq_op *op, int flags,
                        long long deadline_ns, sysvmq_token *token)
{
    const long nothing = op->send ? -EAGAIN : -ENOMSG;
    long long pause = SYSVMQ_POLL_MIN_NS;
    for (;;) {
        long r = sysvmq_attempt(op, flags | IPC_NOWAIT);
        struct timespec ts;
        if (r != nothing)
            return r;
        r = sysvmq_stopped(h, token);
        if (r < 0)
            return r;
        if (deadline_ns >= 0) {
            long long left = deadline_ns - sysvmq_monotonic_ns();
            if (left <= 0)
                return -ETIMEDOUT;
            if (left < pause)
                pause = left;
        }
        ts = sysvmq_timespec(pause);
        if (nanosleep(&ts, NULL) < 0 && errno == EINTR)
            return -EINTR; /* a handler of the application's: let Python run it */
        pause = pause * 2 < SYSVMQ_POLL_MAX_NS ? pause * 2 : SYSVMQ_POLL_MAX_NS;
    }
}

/* The process is exiting and this thread may be stopped before Python gets a message
 * (finish.c): wait as the call would, taking nothing, until it is closed or cancelled or
 * its deadline passes; with neither, until the process ends.  Holding nothing meanwhile,
 * it does not count as inside a receive, so the exiting thread need not wait for it. */
static long sysvmq_sit_out(sysvmq_handle *h, const sysvmq_token *token, long long deadline_ns)
{
    long r;
    sysvmq_receive_ends(0);
    for (;;) {
        long long pause = SYSVMQ_POLL_MAX_NS;
        r = sysvmq_stopped(h, token);
        if (r < 0)
            break;
        if (deadline_ns >= 0) {
            long long left = deadline_ns - sysvmq_monotonic_ns();
            if (left <= 0) {
                r = -ETIMEDOUT;
                break;
            }
            if (left < pause)
                pause = left;
        }
        sysvmq_sleep_ns(pause);
    }
    sysvmq_receive_begins();
    return r;
}

/* One blocking attempt by a registered waiter (polling if no signal reaches it); an
 * -EINTR becomes why the call was woken: closed, cancelled or past its deadline, or
 * stays -EINTR (a handler of the application's: let Python run it). */
static long sysvmq_attempt_as(const struct sysvmq_waiter *w, const struct sysvmq_op *op, int flags,
                              long long deadline_ns)
{
    long r = sysvmq_signo_of(w) == 0 ? sysvmq_poll(w->handle, op, flags, deadline_ns, w->token)
                                     : sysvmq_attempt(op, flags);
    if (r == -ESHUTDOWN)
        return sysvmq_sit_out(w->handle, w->token, deadline_ns);
    if (r == -EINTR) {
        long stop = sysvmq_stopped(w->handle, w->token);
        if (stop < 0)
            r = stop;
        else if (deadline_ns >= 0 && sysvmq_monotonic_ns() >= deadline_ns)
            r = -ETIMEDOUT;
    }
    return r;
}

/* The IPC_NOWAIT attempt found no message (or no room): block as a registered
 * waiter until the operation completes, the deadline passes, the handle is
 * closed, the token is cancelled or another signal arrives. */
static long sysvmq_wait(sysvmq_handle *h, const struct sysvmq_op *op, int flags,
                        long long deadline_ns, sysvmq_token *token)
{
    struct sysvmq_waiter w;
    long r;
    if (deadline_ns >= 0 && sysvmq_monotonic_ns() >= deadline_ns)
        return -ETIMEDOUT;
    r = sysvmq_enter(&w, h, token, deadline_ns, !op->send);
    if (r < 0)
        return r;
    r = sysvmq_attempt_as(&w, op, flags, deadline_ns);
    sysvmq_leave(&w);
    return r;
}
