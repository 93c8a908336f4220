/* How a send or a receive is made: one system call (an operation) at a time, as part of
 * a call that may have to wait.  Every operation is tried with IPC_NOWAIT first; only one
 * that would block checks its queue and waits, as a waiter (waiters.c) that a deadline,
 * close() or a cancellation can interrupt, or by polling when no signal can reach the
 * thread.  sysvmq_perform is that step, for every send and receive. */

/* A call that no signal can interrupt tries again after 50 us, then at most every 2 ms. */
#define SYSVMQ_POLL_MIN_NS 50000LL
#define SYSVMQ_POLL_MAX_NS 2000000LL
/* Timeouts this long or longer mean "no deadline" (about 146 years). */
#define SYSVMQ_FOREVER_NS (1LL << 62)
/* A call's deadline still to be computed from its timeout, when it first has to wait. */
#define SYSVMQ_DEADLINE_PENDING (-2LL)

/* One system call: msgsnd of `size` bytes from `buf`, or msgrcv of up to `size` bytes of
 * the message `msgtyp` selects into `buf`.  Made by sysvmq_sending or sysvmq_receiving. */
struct sysvmq_op {
    int send; /* 1: msgsnd, 0: msgrcv */
    int id;
    struct sysvmq_msgbuf *buf;
    size_t size;
    long msgtyp;
};

/* An msgsnd of the `len` bytes of payload in `buf` to queue `id`. */
static inline struct sysvmq_op sysvmq_sending(int id, struct sysvmq_msgbuf *buf, size_t len)
{
    struct sysvmq_op op = {.send = 1, .id = id, .buf = buf, .size = len, .msgtyp = 0};
    return op;
}

/* An msgrcv of up to `cap` payload bytes of the message `msgtyp` selects into `buf`. */
static inline struct sysvmq_op sysvmq_receiving(int id, struct sysvmq_msgbuf *buf, size_t cap, long msgtyp)
{
    struct sysvmq_op op = {.send = 0, .id = id, .buf = buf, .size = cap, .msgtyp = msgtyp};
    return op;
}

/* What an operation gets with IPC_NOWAIT when it would block: no room, or no message. */
static inline long sysvmq_nothing(const struct sysvmq_op *op)
{
    return op->send ? -EAGAIN : -ENOMSG;
}

static int sysvmq_return_to_queue(int id, struct sysvmq_msgbuf *buf, size_t len);

/* The system calls themselves: the result, or -errno. */
static inline long sysvmq_attempt_send(const struct sysvmq_op *op, int flags)
{
    return msgsnd(op->id, op->buf, op->size, flags) < 0 ? -errno : 0;
}

static long sysvmq_attempt_receive(const struct sysvmq_op *op, int flags)
{
    long r;
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

static inline long sysvmq_attempt(const struct sysvmq_op *op, int flags)
{
    return op->send ? sysvmq_attempt_send(op, flags) : sysvmq_attempt_receive(op, flags);
}

/* What a call from Python waits on, should it have to, and until when: the same for each
 * of its operations.  Passed by value, so that the fast path (a first attempt that needs
 * no wait) keeps it in registers. */
struct sysvmq_call {
    sysvmq_handle *h;
    sysvmq_token *token;
    int flags;
    /* CLOCK_MONOTONIC; -1: none; SYSVMQ_DEADLINE_PENDING: `timeout` from the first wait on. */
    long long deadline_ns;
    double timeout;
    long long *deadline_out; /* where a deadline computed from `timeout` is stored */
};

/* A call on `h` with `flags` until `deadline_ns` (-1: none) that `token` (or NULL) may cancel. */
static inline struct sysvmq_call sysvmq_call(sysvmq_handle *h, int flags, long long deadline_ns, sysvmq_token *token)
{
    struct sysvmq_call c = {
        .h = h, .token = token, .flags = flags, .deadline_ns = deadline_ns, .timeout = 0, .deadline_out = NULL};
    return c;
}

/* A call on `h` with no flags or token that waits at most `timeout` seconds, counted from
 * when it first has to (a message already there costs no clock read); that deadline is
 * stored in *deadline_out before it waits, for a retry after -EINTR to keep. */
static inline struct sysvmq_call sysvmq_call_within(sysvmq_handle *h, double timeout, long long *deadline_out)
{
    struct sysvmq_call c = {.h = h,
                            .token = NULL,
                            .flags = 0,
                            .deadline_ns = SYSVMQ_DEADLINE_PENDING,
                            .timeout = timeout,
                            .deadline_out = deadline_out};
    return c;
}

/* A call that has had to wait: in the list of waiters as `w` from its first wait until
 * sysvmq_stop_waiting, so that a batch enters once, however many of its messages wait. */
struct sysvmq_waiting {
    int entered; /* 0 until the first wait */
    int flags;
    long long deadline_ns; /* -1: none */
    size_t checked;        /* the largest send its queue's capacity was checked for */
    struct sysvmq_waiter w; /* its handle and token are the call's */
};

static inline void sysvmq_stop_waiting(struct sysvmq_waiting *wt)
{
    if (wt->entered)
        sysvmq_leave(&wt->w);
}

/* The deadline `timeout` seconds from now (-1 beyond SYSVMQ_FOREVER_NS). */
static long long sysvmq_deadline_after(double timeout)
{
    if (timeout * 1e9 >= (double)SYSVMQ_FOREVER_NS)
        return -1;
    return sysvmq_monotonic_ns() + (long long)(timeout * 1e9);
}

/* How long to pause, at most `pause` ns, before trying again by `deadline_ns` (-1: none):
 * 0 once it has passed. */
static long long sysvmq_pause_before(long long deadline_ns, long long pause)
{
    long long left;
    if (deadline_ns < 0)
        return pause;
    left = deadline_ns - sysvmq_monotonic_ns();
    if (left <= 0)
        return 0;
    return left < pause ? left : pause;
}

/* No signal can interrupt this call (none is free, or no helper thread could start):
 * try again with IPC_NOWAIT at growing intervals, up to SYSVMQ_POLL_MAX_NS. */
static long sysvmq_poll(const struct sysvmq_waiting *wt, const struct sysvmq_op *op)
{
    const long nothing = sysvmq_nothing(op);
    long long pause = SYSVMQ_POLL_MIN_NS;
    for (;;) {
        long long now_pause;
        long r = sysvmq_attempt(op, wt->flags | IPC_NOWAIT);
        if (r != nothing)
            return r;
        r = sysvmq_stopped(wt->w.handle, wt->w.token);
        if (r < 0)
            return r;
        now_pause = sysvmq_pause_before(wt->deadline_ns, pause);
        if (now_pause == 0)
            return -ETIMEDOUT;
        if (sysvmq_sleep_ns(now_pause) == -EINTR)
            return -EINTR; /* a handler of the application's: let Python run it */
        pause = pause * 2 < SYSVMQ_POLL_MAX_NS ? pause * 2 : SYSVMQ_POLL_MAX_NS;
    }
}

/* The process is exiting and this thread may be stopped before Python gets a message
 * (finish.c): wait as the call would, taking nothing, until it is closed or cancelled or
 * its deadline passes; with neither, until the process ends.  Holding nothing meanwhile,
 * it does not count as inside a receive, so the exiting thread need not wait for it. */
static long sysvmq_sit_out(const struct sysvmq_waiting *wt)
{
    long r;
    sysvmq_receive_ends(0);
    while ((r = sysvmq_stopped(wt->w.handle, wt->w.token)) == 0) {
        long long pause = sysvmq_pause_before(wt->deadline_ns, SYSVMQ_POLL_MAX_NS);
        if (pause == 0) {
            r = -ETIMEDOUT;
            break;
        }
        sysvmq_sleep_ns(pause);
    }
    sysvmq_receive_begins();
    return r;
}

/* One blocking attempt by a call in the list of waiters (polling if no signal reaches
 * it); an -EINTR becomes why the call was woken: closed, cancelled or past its deadline,
 * or stays -EINTR (a handler of the application's: let Python run it). */
static long sysvmq_attempt_waiting(const struct sysvmq_waiting *wt, const struct sysvmq_op *op)
{
    long r = sysvmq_signo_of(&wt->w) == 0 ? sysvmq_poll(wt, op) : sysvmq_attempt(op, wt->flags);
    if (r == -ESHUTDOWN)
        return sysvmq_sit_out(wt);
    if (r == -EINTR) {
        long stop = sysvmq_stopped(wt->w.handle, wt->w.token);
        if (stop < 0)
            r = stop;
        else if (wt->deadline_ns >= 0 && sysvmq_monotonic_ns() >= wt->deadline_ns)
            r = -ETIMEDOUT;
    }
    return r;
}

/* Before a call waits: -EIDRM if the handle's id now names another queue (the kernel
 * reused it after the handle's queue was removed), for a send -EMSGSIZE if its message
 * can never fit in the queue (a blocking send would sleep forever), an error for a
 * removed queue, else 0.  Without read permission nothing can be checked: 0. */
static int sysvmq_check_queue(const sysvmq_handle *h, const struct sysvmq_op *op)
{
    struct msqid_ds ds;
    if (msgctl(h->id, IPC_STAT, &ds) < 0)
        return errno == EACCES ? 0 : -errno;
    if (h->key_known && (key_t)sysvmq_perm_key(&ds) != h->key)
        return -EIDRM;
    if (!op->send)
        return 0;
    if (op->size > (size_t)ds.msg_qbytes)
        return -EMSGSIZE;
#if defined(__linux__)
    /* Linux counts each message against the capacity as well as its bytes: a queue of
     * capacity 0 holds no message at all, not even an empty one. */
    if (ds.msg_qbytes == 0)
        return -EMSGSIZE;
#endif
    return 0;
}

/* The IPC_NOWAIT attempt found no room (or no message): check the queue, then, unless
 * the call may not block, enter the list of waiters (`wt`) and block. */
static long sysvmq_block(struct sysvmq_call c, struct sysvmq_waiting *wt, const struct sysvmq_op *op)
{
    long r;
    /* A receive checks its queue only before it waits; a send that could never fit is
     * told so even when it may not wait. */
    if (!op->send && (c.flags & IPC_NOWAIT))
        return -ENOMSG;
    if (c.deadline_ns == SYSVMQ_DEADLINE_PENDING)
        c.deadline_ns = *c.deadline_out = sysvmq_deadline_after(c.timeout);
    r = sysvmq_check_queue(c.h, op);
    if (r < 0)
        return r;
    if (c.flags & IPC_NOWAIT)
        return -EAGAIN;
    if (c.deadline_ns >= 0 && sysvmq_monotonic_ns() >= c.deadline_ns)
        return -ETIMEDOUT;
    r = sysvmq_enter(&wt->w, c.h, c.token, c.deadline_ns, !op->send);
    if (r < 0)
        return r;
    wt->entered = 1;
    wt->flags = c.flags;
    wt->deadline_ns = c.deadline_ns;
    wt->checked = op->size;
    return sysvmq_attempt_waiting(wt, op);
}

/* The next operation of a call already in the list of waiters (a batch): a blocking
 * attempt straight away, unless the call was stopped meanwhile (close() and cancel()
 * wait for it) or a send is larger than those its queue was checked for. */
static long sysvmq_block_again(struct sysvmq_waiting *wt, const struct sysvmq_op *op)
{
    long r = sysvmq_stopped(wt->w.handle, wt->w.token);
    if (r < 0)
        return r;
    if (op->send && op->size > wt->checked) {
        r = sysvmq_check_queue(wt->w.handle, op);
        if (r < 0)
            return r;
        wt->checked = op->size;
    }
    return sysvmq_attempt_waiting(wt, op);
}

/* sysvmq_block for a call of one operation: it leaves the list of waiters before it returns. */
SYSVMQ_OUT_OF_LINE static long sysvmq_block_once(struct sysvmq_call c, const struct sysvmq_op *op)
{
    struct sysvmq_waiting wt;
    long r;
    wt.entered = 0;
    r = sysvmq_block(c, &wt, op);
    sysvmq_stop_waiting(&wt);
    return r;
}

/* Make `op` as part of call `c`: an attempt with IPC_NOWAIT, and only if that would block,
 * the queue checked and a wait until the operation completes, the deadline passes, the
 * handle is closed, the token is cancelled or another signal arrives (-EINTR: Python runs
 * its handlers and calls again with the same deadline).  `wt` is the waiting of a call of
 * several operations, entered at its first wait and kept until sysvmq_stop_waiting; NULL
 * for a call of one.  The operation is passed by value, so that what the first attempt
 * needs stays in registers. */
static inline long sysvmq_perform(struct sysvmq_call c, struct sysvmq_waiting *wt, struct sysvmq_op op)
{
    long r;
    if (wt != NULL && wt->entered)
        return sysvmq_block_again(wt, &op);
    r = sysvmq_attempt(&op, c.flags | IPC_NOWAIT);
    /* -ESHUTDOWN: it took nothing; if it may block, it waits (sysvmq_sit_out). */
    if (r != sysvmq_nothing(&op) && r != -ESHUTDOWN)
        return r;
    return wt != NULL ? sysvmq_block(c, wt, &op) : sysvmq_block_once(c, &op);
}
