/* The waiters: the threads blocked in a call, linked in one list under sysvmq_lock.  A
 * call links itself in (sysvmq_enter) only when it has to wait, and out when it ends
 * (sysvmq_leave); whoever needs it to stop walks the list and signals it: the helper
 * thread at its deadline, close(), cancel(), and the exiting process (finish.c). */

/* A wake-up signal can arrive just before the thread enters the system call and be
 * lost; whoever wakes a waiter repeats the signal at this interval until it leaves. */
#define SYSVMQ_REFIRE_NS 1000000LL
#define SYSVMQ_CLOSE_POLL_NS 200000LL
/* The helper thread's stack: it calls nothing deep. */
#define SYSVMQ_HELPER_STACK (64 * 1024)

/* A thread blocked in a call, on its own stack.  sysvmq_enter sets every field before it
 * links the waiter into the list under sysvmq_lock, so whoever finds it there (the
 * helper thread, close(), cancel()) sees them all; after that the links and kick_ns are
 * read and written only under the lock, and the thread itself reads without the lock only
 * what nobody else writes, and signo. */
struct sysvmq_waiter {
    struct sysvmq_waiter *prev, *next;
    pthread_t thread;
    sysvmq_handle *handle;
    sysvmq_token *token;
    int receiving;     /* 1: in msgrcv, 0: in msgsnd */
    long long kick_ns; /* helper thread: when to signal this waiter next; -1 never */
    /* A signal sysvmq handles that the thread does not block; 0: it polls.  A wake-up may
     * switch it (sysvmq_kick_waiter) while the thread reads it without the lock: atomic. */
    int signo;
    sigset_t mask; /* the thread's own signal mask, as the application set it */
};

/* The waiting thread's read of w->signo.  Relaxed: the thread uses only whether it is 0,
 * which a switch never changes (from one signal to another, never to or from 0), and
 * nothing else is published through it. */
static int sysvmq_signo_of(const struct sysvmq_waiter *w)
{
    return __atomic_load_n(&w->signo, __ATOMIC_RELAXED);
}

/* The list (its head), and the helper thread that keeps the deadlines of those in it. */
static struct sysvmq_waiter sysvmq_waiters = {.prev = &sysvmq_waiters, .next = &sysvmq_waiters, .kick_ns = -1};
static pthread_cond_t sysvmq_helper_cond;
static int sysvmq_helper_running;

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
    sysvmq_note_count = 0; /* what the parent noted is the parent's to log */
    sysvmq_notes_dropped = 0;
    sysvmq_init_helper_cond();
    pthread_mutex_unlock(&sysvmq_lock);
}

static void sysvmq_init(void)
{
    sysvmq_init_helper_cond();
    sigemptyset(&sysvmq_claimed);
    pthread_atfork(sysvmq_atfork_prepare, sysvmq_atfork_parent, sysvmq_atfork_child);
}

static int sysvmq_is_closed(sysvmq_handle *h)
{
    return __atomic_load_n(&h->closed, __ATOMIC_ACQUIRE);
}

/* Why a waiting call ends early: -EBADF (its handle closed), -ECANCELED (its token
 * cancelled), or 0. */
static long sysvmq_stopped(sysvmq_handle *h, const sysvmq_token *token)
{
    if (sysvmq_is_closed(h))
        return -EBADF;
    if (token != NULL && __atomic_load_n(&token->cancelled, __ATOMIC_ACQUIRE))
        return -ECANCELED;
    return 0;
}

/* Signal waiter `w` so that its system call returns EINTR: 1 if sent, 0 if it polls
 * (it sees its flags by itself), -EBUSY if no signal can reach it.  A signal is sent only
 * right after checking that its handler is sysvmq's.  If the application took the
 * waiter's signal, or a real-time one cannot be queued (RLIMIT_SIGPENDING is used up:
 * EAGAIN), another free signal that the thread does not block serves (SIGURG needs no
 * room in that allowance).  Called with sysvmq_lock held. */
static int sysvmq_kick_waiter(struct sysvmq_waiter *w)
{
    int signo, failed = 0; /* 0: the application took w->signo; else pthread_kill's error */
    if (w->signo == 0)
        return 0;
    if (sysvmq_claim_signal(w->signo) == 0 && (failed = pthread_kill(w->thread, w->signo)) == 0)
        return 1;
    signo = sysvmq_free_signal(&w->mask, w->signo);
    sysvmq_note(SYSVMQ_EV_SWITCHED, w->signo, signo, failed);
    if (signo == 0 || pthread_kill(w->thread, signo) != 0)
        return -EBUSY;
    if (sysvmq_claim_signal(sysvmq_signo) < 0) {
        sysvmq_note(SYSVMQ_EV_CHOSEN, signo, sysvmq_signo, 0);
        sysvmq_signo = signo; /* the application took the wake-up signal: move on */
    }
    __atomic_store_n(&w->signo, signo, __ATOMIC_RELAXED); /* its thread reads it unlocked */
    return 1;
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
    sysvmq_note(SYSVMQ_EV_HELPER, 0, 0, 0);
    return 0;
}

/* The signal that will wake a waiter of this thread whose mask is `w->mask`, with the
 * helper thread started to keep `deadline_ns` (if any): 0 if no signal can reach the
 * thread or no helper could start (the call polls).  Called with sysvmq_lock held. */
static int sysvmq_waking_signal(struct sysvmq_waiter *w, long long deadline_ns)
{
    int started, signo = sysvmq_signal_for(&w->mask);
    if (signo == 0) {
        sysvmq_note(SYSVMQ_EV_POLLING, 0, SYSVMQ_WHY_NO_SIGNAL, 0);
        return 0;
    }
    if (deadline_ns < 0)
        return signo;
    started = sysvmq_start_helper();
    if (started < 0) {
        sysvmq_note(SYSVMQ_EV_POLLING, 0, SYSVMQ_WHY_NO_HELPER, -started);
        return 0;
    }
    w->kick_ns = deadline_ns;
    pthread_cond_signal(&sysvmq_helper_cond);
    return signo;
}

/* Link `w` into the list as this thread's waiter in a call on `h` (`receiving`: in msgrcv):
 * its signal, 0 if no signal can reach the thread (it must poll), or -errno if the call is
 * stopped already (then it is not linked). */
static int sysvmq_enter(struct sysvmq_waiter *w, sysvmq_handle *h, sysvmq_token *token,
                        long long deadline_ns, int receiving)
{
    long r;
    int signo = 0;
    pthread_once(&sysvmq_once, sysvmq_init);
    /* The mask is read every time: the application may change it between calls. */
    sigemptyset(&w->mask);
    pthread_sigmask(SIG_BLOCK, NULL, &w->mask);
    w->thread = pthread_self();
    w->handle = h;
    w->token = token;
    w->receiving = receiving;
    w->kick_ns = -1;
    pthread_mutex_lock(&sysvmq_lock);
    r = sysvmq_stopped(h, token);
    if (r == 0) {
        signo = sysvmq_waking_signal(w, deadline_ns);
        w->signo = signo;
        w->prev = sysvmq_waiters.prev;
        w->next = &sysvmq_waiters;
        sysvmq_waiters.prev->next = w;
        sysvmq_waiters.prev = w;
    }
    pthread_mutex_unlock(&sysvmq_lock);
    return r < 0 ? (int)r : signo;
}

/* Unlink `w`: its call waits no more. */
static void sysvmq_leave(struct sysvmq_waiter *w)
{
    pthread_mutex_lock(&sysvmq_lock);
    w->prev->next = w->next;
    w->next->prev = w->prev;
    pthread_mutex_unlock(&sysvmq_lock);
}

/* Whether waiter `w` is one sysvmq_kick(h, token) wakes. */
static int sysvmq_kicked(const struct sysvmq_waiter *w, const sysvmq_handle *h, const sysvmq_token *token)
{
    if (h != NULL || token != NULL)
        return (h != NULL && w->handle == h) || (token != NULL && w->token == token);
    return w->receiving && !pthread_equal(w->thread, pthread_self());
}

/* Signal every waiter of `h` (or using `token`; with neither, every receive of another
 * thread): how many of those still inside a call can be woken, or -EBUSY when none of
 * them can (see sysvmq_kick_waiter). */
static int sysvmq_kick(const sysvmq_handle *h, const sysvmq_token *token)
{
    struct sysvmq_waiter *w;
    int unreachable = 0, reachable = 0;
    pthread_mutex_lock(&sysvmq_lock);
    for (w = sysvmq_waiters.next; w != &sysvmq_waiters; w = w->next) {
        if (!sysvmq_kicked(w, h, token))
            continue;
        if (sysvmq_kick_waiter(w) >= 0)
            reachable++;
        else
            unreachable++;
    }
    pthread_mutex_unlock(&sysvmq_lock);
    return reachable == 0 && unreachable > 0 ? -EBUSY : reachable;
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

