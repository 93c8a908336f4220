/* The C side of sysvmq._sysvmq_cffi; build_sysvmq.h is its contract.
 *
 * Each operation is one call from Python.  Blocking calls try once with
 * IPC_NOWAIT; only when that would block do they register as a waiter, so that
 * a deadline (the helper thread), close() or a cancellation can interrupt the
 * system call with the wake-up signal.  Every signal is sent only right after
 * checking that its handler is still sysvmq's; a call that no signal can reach
 * waits by polling instead.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sys/types.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

struct sysvmq_msgbuf {
    long mtype;
    char mtext[];
};

typedef struct {
    int id;
    int closed;
    size_t max_size;
    key_t key;
    int key_known;
} sysvmq_handle;

typedef struct {
    int cancelled;
} sysvmq_token;

#ifdef IPC_INFO
#define SYSVMQ_HAS_IPC_INFO 1
#define SYSVMQ_IPC_INFO IPC_INFO
#else
#define SYSVMQ_HAS_IPC_INFO 0
#define SYSVMQ_IPC_INFO 0
struct msginfo {
    int msgpool, msgmap, msgmax, msgmnb, msgmni, msgssz, msgtql;
    unsigned short msgseg;
};
#endif

#ifdef MSG_INFO
#define SYSVMQ_HAS_MSG_INFO 1
#define SYSVMQ_MSG_INFO MSG_INFO
#else
#define SYSVMQ_HAS_MSG_INFO 0
#define SYSVMQ_MSG_INFO 0
#endif

#ifdef MSG_STAT
#define SYSVMQ_HAS_MSG_STAT 1
#define SYSVMQ_MSG_STAT MSG_STAT
#else
#define SYSVMQ_HAS_MSG_STAT 0
#define SYSVMQ_MSG_STAT 0
#endif

#ifdef MSG_STAT_ANY
#define SYSVMQ_HAS_MSG_STAT_ANY 1
#define SYSVMQ_MSG_STAT_ANY MSG_STAT_ANY
#else
#define SYSVMQ_HAS_MSG_STAT_ANY 0
#define SYSVMQ_MSG_STAT_ANY 0
#endif

#ifdef MSG_EXCEPT
#define SYSVMQ_HAS_MSG_EXCEPT 1
#define SYSVMQ_MSG_EXCEPT MSG_EXCEPT
#else
#define SYSVMQ_HAS_MSG_EXCEPT 0
#define SYSVMQ_MSG_EXCEPT 0
#endif

#ifdef MSG_COPY
#define SYSVMQ_HAS_MSG_COPY 1
#define SYSVMQ_MSG_COPY MSG_COPY
#else
#define SYSVMQ_HAS_MSG_COPY 0
#define SYSVMQ_MSG_COPY 0
#endif

#define SYSVMQ_LONG_MAX LONG_MAX
#define SYSVMQ_LONG_MIN LONG_MIN

/* Sends up to this size are assembled on the stack, larger ones in malloc'd memory. */
#define SYSVMQ_STACK_PAYLOAD 16384
/* A wake-up signal can arrive just before the thread enters the system call and be
 * lost; whoever wakes a waiter repeats the signal at this interval until it leaves. */
#define SYSVMQ_REFIRE_NS 1000000LL
#define SYSVMQ_CLOSE_POLL_NS 200000LL
/* A call that no signal can interrupt tries again after 50 us, then at most every 2 ms. */
#define SYSVMQ_POLL_MIN_NS 50000LL
#define SYSVMQ_POLL_MAX_NS 2000000LL
/* The helper thread's stack: it calls nothing deep. */
#define SYSVMQ_HELPER_STACK (64 * 1024)
/* Timeouts this long or longer mean "no deadline" (about 146 years). */
#define SYSVMQ_FOREVER_NS (1LL << 62)

static long long sysvmq_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static struct timespec sysvmq_timespec(long long ns)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(ns / 1000000000LL);
    ts.tv_nsec = (long)(ns % 1000000000LL);
    return ts;
}

static void sysvmq_sleep_ns(long long ns)
{
    struct timespec ts = sysvmq_timespec(ns);
    nanosleep(&ts, NULL);
}

static long long sysvmq_perm_key(const struct msqid_ds *ds)
{
#if defined(__linux__)
    return (long long)ds->msg_perm.__key;
#elif defined(__APPLE__)
    return (long long)ds->msg_perm._key;
#else
    return (long long)ds->msg_perm.key;
#endif
}

static unsigned long long sysvmq_queue_bytes(const struct msqid_ds *ds)
{
#if defined(__linux__)
    return (unsigned long long)ds->__msg_cbytes;
#else
    return (unsigned long long)ds->msg_cbytes;
#endif
}

/* ---- the waiter registry: every thread blocked in a call, for close/cancel/helper ---- */

struct sysvmq_waiter {
    struct sysvmq_waiter *prev, *next;
    pthread_t thread;
    sysvmq_handle *handle;
    sysvmq_token *token;
    long long kick_ns; /* helper thread: when to signal this waiter next; -1 never */
    int signo;         /* the signal it waits with unblocked; 0: none, it polls */
    sigset_t mask;     /* the thread's own signal mask, as the application set it */
};

static pthread_mutex_t sysvmq_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sysvmq_helper_cond;
static struct sysvmq_waiter sysvmq_waiters = {&sysvmq_waiters, &sysvmq_waiters, 0, NULL, NULL, -1, 0, {{0}}};
static pthread_once_t sysvmq_once = PTHREAD_ONCE_INIT;
static int sysvmq_signo; /* the wake-up signal; 0 until chosen */
static int sysvmq_helper_running;

static void sysvmq_wake_handler(int signo)
{
    /* Its only work is to make the system call return EINTR. */
    (void)signo;
}

static void sysvmq_init_helper_cond(void)
{
#if defined(__APPLE__)
    pthread_cond_init(&sysvmq_helper_cond, NULL);
#else
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&sysvmq_helper_cond, &attr);
    pthread_condattr_destroy(&attr);
#endif
}

static void sysvmq_atfork_prepare(void)
{
    pthread_mutex_lock(&sysvmq_lock);
}

static void sysvmq_atfork_parent(void)
{
    pthread_mutex_unlock(&sysvmq_lock);
}

static void sysvmq_atfork_child(void)
{
    /* Only the forking thread lives on, and it is inside no call. */
    sysvmq_waiters.prev = sysvmq_waiters.next = &sysvmq_waiters;
    sysvmq_helper_running = 0;
    sysvmq_init_helper_cond();
    pthread_mutex_unlock(&sysvmq_lock);
}

static void sysvmq_init(void)
{
    sysvmq_init_helper_cond();
    pthread_atfork(sysvmq_atfork_prepare, sysvmq_atfork_parent, sysvmq_atfork_child);
}

/* The signals sysvmq may choose by itself, best first: SIGURG and SIGWINCH are ignored by
 * default, so a wake-up that meets a disposition the application reset to SIG_DFL is
 * dropped instead of killing the process; real-time signals only when both are taken. */
static int sysvmq_candidate(int i)
{
    if (i == 0)
        return SIGURG;
    if (i == 1)
        return SIGWINCH;
#ifdef SIGRTMIN
    if (i - 2 <= SIGRTMAX - SIGRTMIN)
        return SIGRTMAX - (i - 2);
#endif
    return 0;
}

static int sysvmq_signal_allowed(int signo)
{
#ifdef SIGRTMIN
    if (signo >= SIGRTMIN && signo <= SIGRTMAX)
        return 1;
#endif
    return signo == SIGURG || signo == SIGWINCH || signo == SIGUSR1 || signo == SIGUSR2;
}

/* Make `signo` run sysvmq_wake_handler: 0, or -EBUSY if the application handles or
 * ignores it.  Called with sysvmq_lock held. */
static int sysvmq_claim_signal(int signo)
{
    struct sigaction current, mine;
    if (sigaction(signo, NULL, &current) < 0)
        return -errno;
    if (!(current.sa_flags & SA_SIGINFO) && current.sa_handler == sysvmq_wake_handler)
        return 0;
    if ((current.sa_flags & SA_SIGINFO) || current.sa_handler != SIG_DFL)
        return -EBUSY;
    memset(&mine, 0, sizeof mine);
    mine.sa_handler = sysvmq_wake_handler;
    sigemptyset(&mine.sa_mask);
    /* Other system calls that a late wake-up interrupts just restart. */
    mine.sa_flags = SA_RESTART;
    if (sigaction(signo, &mine, NULL) < 0)
        return -errno;
    return 0;
}

/* Choose and claim a wake-up signal for a thread whose mask is `blocked`: the first
 * candidate that is free and that the thread has not blocked (a blocked signal may be
 * one the application takes with sigwait or signalfd).  A thread that blocks every
 * candidate blocks everything, not one signal on purpose: then the first free one.
 * The signal, or -EBUSY.  Called with sysvmq_lock held. */
static int sysvmq_choose_signal(const sigset_t *blocked)
{
    int pass, i, signo;
    for (pass = 0; pass < 2; pass++) {
        int unblocked = 0;
        for (i = 0; (signo = sysvmq_candidate(i)) != 0; i++) {
            if (pass == 0 && sigismember(blocked, signo))
                continue;
            unblocked++;
            if (sysvmq_claim_signal(signo) == 0) {
                sysvmq_signo = signo;
                return signo;
            }
        }
        if (unblocked > 0)
            break;
    }
    return -EBUSY;
}

/* The wake-up signal for a thread whose mask is `blocked`, claimed again if the
 * application reset it to SIG_DFL, another one if it took it: the signal, or -EBUSY.
 * Called with sysvmq_lock held. */
static int sysvmq_current_signal(const sigset_t *blocked)
{
    if (sysvmq_signo != 0 && sysvmq_claim_signal(sysvmq_signo) == 0)
        return sysvmq_signo;
    return sysvmq_choose_signal(blocked);
}

static int sysvmq_set_wakeup_signal(int signo)
{
    int r;
    sigset_t none;
    pthread_once(&sysvmq_once, sysvmq_init);
    pthread_mutex_lock(&sysvmq_lock);
    if (signo == 0) {
        sigemptyset(&none);
        pthread_sigmask(SIG_BLOCK, NULL, &none);
        r = sysvmq_current_signal(&none);
    } else if (!sysvmq_signal_allowed(signo)) {
        r = -EINVAL;
    } else {
        r = sysvmq_claim_signal(signo);
        if (r == 0)
            r = sysvmq_signo = signo;
    }
    pthread_mutex_unlock(&sysvmq_lock);
    return r;
}

static int sysvmq_wakeup_signal(void)
{
    int signo;
    pthread_mutex_lock(&sysvmq_lock);
    signo = sysvmq_signo;
    pthread_mutex_unlock(&sysvmq_lock);
    return signo;
}

/* Signal waiter `w` so that its system call returns EINTR: 1 if sent, 0 if it polls
 * (it sees its flags by itself), -EBUSY if no signal can reach it.  A signal is sent only
 * right after checking that its handler is sysvmq's.  If the application took the
 * waiter's signal, or a real-time one cannot be queued (RLIMIT_SIGPENDING is used up:
 * EAGAIN), another free signal that the thread does not block serves, SIGURG and SIGWINCH
 * first, which need no room in that allowance.  Called with sysvmq_lock held. */
static int sysvmq_kick_waiter(struct sysvmq_waiter *w)
{
    int i, signo;
    if (w->signo == 0)
        return 0;
    if (sysvmq_claim_signal(w->signo) == 0 && pthread_kill(w->thread, w->signo) == 0)
        return 1;
    for (i = 0; (signo = sysvmq_candidate(i)) != 0; i++) {
        if (signo == w->signo || sigismember(&w->mask, signo) || sysvmq_claim_signal(signo) < 0)
            continue;
        if (pthread_kill(w->thread, signo) == 0) {
            sysvmq_signo = w->signo = signo; /* unblocked in that thread all along */
            return 1;
        }
    }
    return -EBUSY;
}

static void sysvmq_helper_wait_until(long long when_ns)
{
#if defined(__APPLE__)
    struct timespec rel = sysvmq_timespec(when_ns - sysvmq_monotonic_ns());
    if (rel.tv_sec >= 0)
        pthread_cond_timedwait_relative_np(&sysvmq_helper_cond, &sysvmq_lock, &rel);
#else
    struct timespec abs = sysvmq_timespec(when_ns);
    pthread_cond_timedwait(&sysvmq_helper_cond, &sysvmq_lock, &abs);
#endif
}

/* Signal each timed waiter at its deadline, then every SYSVMQ_REFIRE_NS until it has
 * left its call (a signal that lands just before the thread enters the kernel is lost). */
static void *sysvmq_helper_main(void *unused)
{
    struct sysvmq_waiter *w;
    (void)unused;
#if defined(PR_SET_TIMERSLACK)
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL); /* wake at the deadline, not 50 us later */
#endif
    pthread_mutex_lock(&sysvmq_lock);
    for (;;) {
        long long now = sysvmq_monotonic_ns(), next = LLONG_MAX;
        for (w = sysvmq_waiters.next; w != &sysvmq_waiters; w = w->next) {
            if (w->kick_ns < 0)
                continue;
            if (w->kick_ns <= now) {
                sysvmq_kick_waiter(w);
                w->kick_ns = now + SYSVMQ_REFIRE_NS;
            }
            if (w->kick_ns < next)
                next = w->kick_ns;
        }
        if (next == LLONG_MAX)
            pthread_cond_wait(&sysvmq_helper_cond, &sysvmq_lock);
        else
            sysvmq_helper_wait_until(next);
    }
    return NULL;
}

/* Called with sysvmq_lock held: 0, or -errno if the helper could not start. */
static int sysvmq_start_helper(void)
{
    pthread_t thread;
    pthread_attr_t attr;
    sigset_t all, old;
    int r;
    if (sysvmq_helper_running)
        return 0;
    /* The helper must never run signal handlers, Python's or sysvmq's. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, SYSVMQ_HELPER_STACK);
    r = pthread_create(&thread, &attr, sysvmq_helper_main, NULL);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0)
        return -r;
    sysvmq_helper_running = 1;
    return 0;
}

/* Signal every waiter of `h` (or using `token`): how many of those still inside a
 * call can be woken, or -EBUSY when none of them can (see sysvmq_kick_waiter). */
static int sysvmq_kick(const sysvmq_handle *h, const sysvmq_token *token)
{
    struct sysvmq_waiter *w;
    int unreachable = 0, reachable = 0;
    pthread_mutex_lock(&sysvmq_lock);
    for (w = sysvmq_waiters.next; w != &sysvmq_waiters; w = w->next) {
        if ((h != NULL && w->handle == h) || (token != NULL && w->token == token)) {
            if (sysvmq_kick_waiter(w) >= 0)
                reachable++;
            else
                unreachable++;
        }
    }
    pthread_mutex_unlock(&sysvmq_lock);
    return reachable == 0 && unreachable > 0 ? -EBUSY : reachable;
}

static int sysvmq_is_closed(sysvmq_handle *h)
{
    return __atomic_load_n(&h->closed, __ATOMIC_ACQUIRE);
}

static int sysvmq_close(sysvmq_handle *h)
{
    int inside;
    pthread_mutex_lock(&sysvmq_lock);
    __atomic_store_n(&h->closed, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&sysvmq_lock);
    while ((inside = sysvmq_kick(h, NULL)) > 0)
        sysvmq_sleep_ns(SYSVMQ_CLOSE_POLL_NS);
    return inside;
}

static int sysvmq_cancel(sysvmq_token *token)
{
    int inside;
    pthread_mutex_lock(&sysvmq_lock);
    __atomic_store_n(&token->cancelled, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&sysvmq_lock);
    inside = sysvmq_kick(NULL, token);
    return inside < 0 ? inside : inside > 0;
}

/* ---- one attempt, and waiting for one ---- */

struct sysvmq_op {
    int send; /* 1: msgsnd, 0: msgrcv */
    int id;
    struct sysvmq_msgbuf *buf;
    size_t size;
    long msgtyp;
};

static long sysvmq_attempt(const struct sysvmq_op *op, int flags)
{
    long r;
    if (op->send)
        r = msgsnd(op->id, op->buf, op->size, flags);
    else
        r = (long)msgrcv(op->id, op->buf, op->size, op->msgtyp, flags);
    return r < 0 ? -errno : r;
}

/* Why a waiting call ends early: -EBADF (closed), -ECANCELED (its token), or 0. */
static long sysvmq_stopped(sysvmq_handle *h, const sysvmq_token *token)
{
    if (sysvmq_is_closed(h))
        return -EBADF;
    if (token != NULL && __atomic_load_n(&token->cancelled, __ATOMIC_ACQUIRE))
        return -ECANCELED;
    return 0;
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

/* The IPC_NOWAIT attempt found no message (or no room): block as a registered
 * waiter until the operation completes, the deadline passes, the handle is
 * closed, the token is cancelled or another signal arrives. */
static long sysvmq_wait(sysvmq_handle *h, const struct sysvmq_op *op, int flags,
                        long long deadline_ns, sysvmq_token *token)
{
    struct sysvmq_waiter w;
    sigset_t set;
    long r;
    int signo = 0, unblocked = 0;

    if (deadline_ns >= 0 && sysvmq_monotonic_ns() >= deadline_ns)
        return -ETIMEDOUT;
    pthread_once(&sysvmq_once, sysvmq_init);
    /* The mask is read every time: the application may change it between calls. */
    sigemptyset(&w.mask);
    pthread_sigmask(SIG_BLOCK, NULL, &w.mask);
    w.thread = pthread_self();
    w.handle = h;
    w.token = token;
    w.kick_ns = -1;
    pthread_mutex_lock(&sysvmq_lock);
    r = sysvmq_stopped(h, token);
    if (r == 0) {
        signo = sysvmq_current_signal(&w.mask);
        if (signo < 0)
            signo = 0;
        if (signo != 0 && deadline_ns >= 0) {
            if (sysvmq_start_helper() == 0) {
                w.kick_ns = deadline_ns;
                pthread_cond_signal(&sysvmq_helper_cond);
            } else {
                signo = 0;
            }
        }
        w.signo = signo;
        w.prev = sysvmq_waiters.prev;
        w.next = &sysvmq_waiters;
        sysvmq_waiters.prev->next = &w;
        sysvmq_waiters.prev = &w;
    }
    pthread_mutex_unlock(&sysvmq_lock);
    if (r < 0)
        return r;

    if (signo == 0) {
        r = sysvmq_poll(h, op, flags, deadline_ns, token);
    } else {
        /* Unblocked only while this thread sleeps in the kernel, whatever its mask. */
        unblocked = sigismember(&w.mask, signo);
        sigemptyset(&set);
        sigaddset(&set, signo);
        if (unblocked)
            pthread_sigmask(SIG_UNBLOCK, &set, NULL);
        r = sysvmq_attempt(op, flags);
        if (unblocked)
            pthread_sigmask(SIG_BLOCK, &set, NULL);
    }

    pthread_mutex_lock(&sysvmq_lock);
    w.prev->next = w.next;
    w.next->prev = w.prev;
    pthread_mutex_unlock(&sysvmq_lock);

    if (r == -EINTR) {
        long stop = sysvmq_stopped(h, token);
        if (stop < 0)
            r = stop;
        else if (deadline_ns >= 0 && sysvmq_monotonic_ns() >= deadline_ns)
            r = -ETIMEDOUT;
    }
    return r;
}

/* Before a call waits: -EIDRM if the handle's id now names another queue (the kernel
 * reused it after the handle's queue was removed), -EMSGSIZE if a message of `len`
 * bytes can never fit in the queue (a blocking send would sleep forever), an error
 * for a removed queue, else 0.  Without read permission nothing can be checked: 0. */
static int sysvmq_check_queue(const sysvmq_handle *h, size_t len)
{
    struct msqid_ds ds;
    if (msgctl(h->id, IPC_STAT, &ds) < 0)
        return errno == EACCES ? 0 : -errno;
    if (h->key_known && (key_t)sysvmq_perm_key(&ds) != h->key)
        return -EIDRM;
    return len > (size_t)ds.msg_qbytes ? -EMSGSIZE : 0;
}

/* Send the message in `op` (already assembled) as sysvmq_send describes. */
static long sysvmq_send_op(sysvmq_handle *h, const struct sysvmq_op *op, int flags,
                           long long deadline_ns, sysvmq_token *token)
{
    long r = sysvmq_attempt(op, flags | IPC_NOWAIT);
    if (r != -EAGAIN)
        return r;
    r = sysvmq_check_queue(h, op->size);
    if (r < 0)
        return r;
    if (flags & IPC_NOWAIT)
        return -EAGAIN;
    return sysvmq_wait(h, op, flags, deadline_ns, token);
}

static int sysvmq_get(key_t key, int flags)
{
    int r = msgget(key, flags);
    return r < 0 ? -errno : r;
}

/* A buffer for one outgoing message of `len` bytes: `stack` when it fits. */
static struct sysvmq_msgbuf *sysvmq_send_buffer(long *stack, size_t len)
{
    if (len <= SYSVMQ_STACK_PAYLOAD)
        return (struct sysvmq_msgbuf *)stack;
    return malloc(offsetof(struct sysvmq_msgbuf, mtext) + len);
}

static int sysvmq_send(sysvmq_handle *h, long mtype, const char *data, size_t len, int flags,
                       long long deadline_ns, sysvmq_token *token)
{
    long stack[1 + SYSVMQ_STACK_PAYLOAD / sizeof(long)];
    struct sysvmq_op op;
    long r;
    if (mtype < 1)
        return -EDOM;
    if (sysvmq_is_closed(h))
        return -EBADF;
    op.send = 1;
    op.id = h->id;
    op.size = len;
    op.msgtyp = 0;
    op.buf = sysvmq_send_buffer(stack, len);
    if (op.buf == NULL)
        return -ENOMEM;
    op.buf->mtype = mtype;
    memcpy(op.buf->mtext, data, len);
    r = sysvmq_send_op(h, &op, flags, deadline_ns, token);
    if ((void *)op.buf != (void *)stack)
        free(op.buf);
    return (int)r;
}

/* The message buffer whose payload area starts at `text`. */
static struct sysvmq_msgbuf *sysvmq_buffer_of(char *text)
{
    return (struct sysvmq_msgbuf *)(void *)(text - offsetof(struct sysvmq_msgbuf, mtext));
}

/* An msgrcv of up to `cap` payload bytes into `buf`. */
static void sysvmq_receiving(struct sysvmq_op *op, const sysvmq_handle *h, struct sysvmq_msgbuf *buf,
                             size_t cap, long msgtyp)
{
    op->send = 0;
    op->id = h->id;
    op->buf = buf;
    op->size = cap;
    op->msgtyp = msgtyp;
}

static long sysvmq_receive_op(sysvmq_handle *h, struct sysvmq_msgbuf *buf, size_t cap, long msgtyp,
                              int flags, long long deadline_ns, sysvmq_token *token)
{
    struct sysvmq_op op;
    long r = sysvmq_stopped(h, token);
    if (r < 0)
        return r;
    sysvmq_receiving(&op, h, buf, cap, msgtyp);
    r = sysvmq_attempt(&op, flags | IPC_NOWAIT);
    if (r != -ENOMSG || (flags & IPC_NOWAIT))
        return r;
    r = sysvmq_check_queue(h, 0);
    return r < 0 ? r : sysvmq_wait(h, &op, flags, deadline_ns, token);
}

static long sysvmq_receive(sysvmq_handle *h, char *text, size_t cap, long msgtyp, int flags,
                           long long deadline_ns, sysvmq_token *token, char *dest)
{
    struct sysvmq_msgbuf *buf = sysvmq_buffer_of(text);
    long r = sysvmq_receive_op(h, buf, cap, msgtyp, flags, deadline_ns, token);
    if (r > 0 && dest != NULL)
        memcpy(dest, buf->mtext, (size_t)r);
    return r;
}

static long sysvmq_await(sysvmq_handle *h, long msgtyp, int flags, long long deadline_ns,
                         sysvmq_token *token)
{
    long header[2];
    struct sysvmq_msgbuf *buf = (struct sysvmq_msgbuf *)(void *)header;
    struct sysvmq_op back;
    /* Without MSG_NOERROR a zero-byte buffer takes nothing longer than zero bytes: E2BIG. */
    long r = sysvmq_receive_op(h, buf, 0, msgtyp, flags & ~MSG_NOERROR, deadline_ns, token);
    if (r == -E2BIG)
        return 0;
    if (r != 0)
        return r;
    /* A zero-length message fits and was taken: put it back before anything else runs. */
    back.send = 1;
    back.id = h->id;
    back.buf = buf;
    back.size = 0;
    back.msgtyp = 0;
    do
        r = sysvmq_attempt(&back, 0);
    while (r == -EINTR);
    return r;
}

static long sysvmq_take(sysvmq_handle *h, char *text, long msgtyp)
{
    return sysvmq_receive_op(h, sysvmq_buffer_of(text), h->max_size, msgtyp, 0, -1, NULL);
}

static long sysvmq_take_within(sysvmq_handle *h, char *text, long msgtyp, double timeout,
                               long long *deadline_ns)
{
    struct sysvmq_op op;
    long r;
    if (!(timeout >= 0))
        return -EDOM; /* negative or NaN */
    if (sysvmq_is_closed(h))
        return -EBADF;
    sysvmq_receiving(&op, h, sysvmq_buffer_of(text), h->max_size, msgtyp);
    r = sysvmq_attempt(&op, IPC_NOWAIT);
    if (r != -ENOMSG)
        return r;
    /* Only a call that has to wait needs its deadline. */
    *deadline_ns = timeout * 1e9 >= (double)SYSVMQ_FOREVER_NS ? -1 : sysvmq_monotonic_ns() + (long long)(timeout * 1e9);
    r = sysvmq_check_queue(h, 0);
    return r < 0 ? r : sysvmq_wait(h, &op, 0, *deadline_ns, NULL);
}

static int sysvmq_send_many(sysvmq_handle *h, long mtype, const char *data, const size_t *lens,
                            size_t count, int flags, long long deadline_ns, sysvmq_token *token,
                            size_t *sent)
{
    long stack[1 + SYSVMQ_STACK_PAYLOAD / sizeof(long)];
    struct sysvmq_op op;
    size_t i, offset = 0, largest = 0;
    long r = 0;
    if (mtype < 1)
        return -EDOM;
    if (sysvmq_is_closed(h))
        return -EBADF;
    for (i = 0; i < count; i++) {
        if (i < *sent)
            offset += lens[i];
        else if (lens[i] > largest)
            largest = lens[i];
    }
    op.send = 1;
    op.id = h->id;
    op.msgtyp = 0;
    op.buf = sysvmq_send_buffer(stack, largest);
    if (op.buf == NULL)
        return -ENOMEM;
    for (i = *sent; i < count; i++) {
        op.buf->mtype = mtype;
        op.size = lens[i];
        memcpy(op.buf->mtext, data + offset, lens[i]);
        r = sysvmq_send_op(h, &op, flags, deadline_ns, token);
        if (r < 0)
            break;
        offset += lens[i];
        *sent = i + 1;
    }
    if ((void *)op.buf != (void *)stack)
        free(op.buf);
    return r < 0 ? (int)r : 0;
}

static int sysvmq_put(sysvmq_handle *h, long mtype, const char *data, size_t len)
{
    return sysvmq_send(h, mtype, data, len, 0, -1, NULL);
}

static long sysvmq_receive_many(sysvmq_handle *h, char *out, size_t outcap, size_t cap, long msgtyp,
                                int flags, long long deadline_ns, sysvmq_token *token,
                                size_t max_count, size_t *offsets, size_t *lens, long *types)
{
    const size_t header = offsetof(struct sysvmq_msgbuf, mtext);
    struct sysvmq_op op;
    size_t n = 0, pos = 0;
    long r;
    while (n < max_count) {
        pos = (pos + sizeof(long) - 1) / sizeof(long) * sizeof(long);
        if (pos > outcap || outcap - pos < header + cap)
            break;
        sysvmq_receiving(&op, h, (struct sysvmq_msgbuf *)(void *)(out + pos), cap, msgtyp);
        if (n == 0) {
            r = sysvmq_receive_op(h, op.buf, cap, msgtyp, flags, deadline_ns, token);
            if (r < 0)
                return r;
        } else {
            r = sysvmq_attempt(&op, flags | IPC_NOWAIT);
            if (r < 0)
                break; /* whatever stopped the batch is reported by the next call */
        }
        offsets[n] = pos + header;
        lens[n] = (size_t)r;
        types[n] = op.buf->mtype;
        pos += header + (size_t)r;
        n++;
    }
    return n > 0 ? (long)n : -EINVAL;
}

/* ---- control ---- */

static int sysvmq_stat(int id, struct msqid_ds *ds)
{
    return msgctl(id, IPC_STAT, ds) < 0 ? -errno : 0;
}

static int sysvmq_stat_index(int index, struct msqid_ds *ds)
{
#if SYSVMQ_HAS_MSG_STAT_ANY
    int r = msgctl(index, MSG_STAT_ANY, ds);
    if (r < 0 && errno == EINVAL && SYSVMQ_HAS_MSG_STAT)
        r = msgctl(index, SYSVMQ_MSG_STAT, ds); /* kernels before 4.17 */
    return r < 0 ? -errno : r;
#elif SYSVMQ_HAS_MSG_STAT
    int r = msgctl(index, MSG_STAT, ds);
    return r < 0 ? -errno : r;
#else
    (void)index;
    (void)ds;
    return -ENOSYS;
#endif
}

static int sysvmq_set(int id, long long mode, long long uid, long long gid, long long max_bytes)
{
    struct msqid_ds ds;
    if (msgctl(id, IPC_STAT, &ds) < 0)
        return -errno;
    if (mode >= 0)
        ds.msg_perm.mode = (mode_t)((ds.msg_perm.mode & ~0777) | (mode & 0777));
    if (uid >= 0)
        ds.msg_perm.uid = (uid_t)uid;
    if (gid >= 0)
        ds.msg_perm.gid = (gid_t)gid;
    if (max_bytes >= 0)
        ds.msg_qbytes = (msglen_t)max_bytes;
    return msgctl(id, IPC_SET, &ds) < 0 ? -errno : 0;
}

static int sysvmq_remove(int id)
{
    return msgctl(id, IPC_RMID, NULL) < 0 ? -errno : 0;
}

static int sysvmq_info(int cmd, struct msginfo *info)
{
#if SYSVMQ_HAS_IPC_INFO
    int r = msgctl(0, cmd, (struct msqid_ds *)(void *)info);
    return r < 0 ? -errno : r;
#else
    (void)cmd;
    (void)info;
    return -ENOSYS;
#endif
}

static int sysvmq_ftok(const char *path, int proj_id, key_t *key)
{
    errno = 0;
    *key = ftok(path, proj_id);
    return *key == (key_t)-1 && errno != 0 ? -errno : 0;
}
