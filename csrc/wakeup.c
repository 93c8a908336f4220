/* The wake-up machinery: the registry of threads blocked in a call, the wake-up
 * signal (chosen, claimed, checked before every use), the helper thread that keeps
 * deadlines, and close() / cancel(), which wake the waiters of a handle or a token. */

/* A wake-up signal can arrive just before the thread enters the system call and be
 * lost; whoever wakes a waiter repeats the signal at this interval until it leaves. */
#define SYSVMQ_REFIRE_NS 1000000LL
#define SYSVMQ_CLOSE_POLL_NS 200000LL
/* The helper thread's stack: it calls nothing deep. */
#define SYSVMQ_HELPER_STACK (64 * 1024)

/* A thread blocked in a call, on its own stack.  sysvmq_enter sets every field before it
 * links the waiter into the registry under sysvmq_lock, so whoever finds it there (the
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

/* sysvmq_lock guards the registry, the wake-up signal, the helper's state, the signals
 * claimed and the notes below: no thread reads or writes them without it. */
static pthread_mutex_t sysvmq_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sysvmq_helper_cond;
static struct sysvmq_waiter sysvmq_waiters = {.prev = &sysvmq_waiters, .next = &sysvmq_waiters, .kick_ns = -1};
static pthread_once_t sysvmq_once = PTHREAD_ONCE_INIT;
static int sysvmq_signo; /* the wake-up signal; 0 until chosen */
static int sysvmq_helper_running;
static sigset_t sysvmq_claimed; /* every signal sysvmq installed its handler on */

/* The events noted for the logger (types.h), oldest first. */
#define SYSVMQ_NOTE_ROOM 64
static sysvmq_event sysvmq_notes[SYSVMQ_NOTE_ROOM];
static int sysvmq_note_count;
static long sysvmq_notes_dropped;

/* Note an event for the logger; one identical to the last noted only counts.  Called with
 * sysvmq_lock held; what does not fit is counted as dropped. */
static void sysvmq_note(int kind, int signo, int detail, long value)
{
    sysvmq_event *e = sysvmq_note_count > 0 ? &sysvmq_notes[sysvmq_note_count - 1] : NULL;
    if (e != NULL && e->kind == kind && e->signo == signo && e->detail == detail && e->value == value) {
        e->count++;
        return;
    }
    if (sysvmq_note_count == SYSVMQ_NOTE_ROOM) {
        sysvmq_notes_dropped++;
        return;
    }
    e = &sysvmq_notes[sysvmq_note_count++];
    e->kind = kind;
    e->signo = signo;
    e->detail = detail;
    e->value = value;
    e->count = 1;
}

static void sysvmq_note_locking(int kind, int signo, int detail, long value)
{
    pthread_mutex_lock(&sysvmq_lock);
    sysvmq_note(kind, signo, detail, value);
    pthread_mutex_unlock(&sysvmq_lock);
}

static int sysvmq_take_events(sysvmq_event *out, int room, long *dropped)
{
    int n;
    pthread_mutex_lock(&sysvmq_lock);
    n = room < 0 ? 0 : room < sysvmq_note_count ? room : sysvmq_note_count;
    memcpy(out, sysvmq_notes, (size_t)n * sizeof *out);
    memmove(sysvmq_notes, sysvmq_notes + n, (size_t)(sysvmq_note_count - n) * sizeof *out);
    sysvmq_note_count -= n;
    *dropped = sysvmq_notes_dropped;
    sysvmq_notes_dropped = 0;
    pthread_mutex_unlock(&sysvmq_lock);
    return n;
}

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

/* The signals sysvmq may choose by itself, best first: SIGURG is ignored by default, so a
 * wake-up that meets a disposition the application reset to SIG_DFL is dropped instead of
 * killing the process; the real-time signals only when the application took SIGURG.
 * (Not SIGWINCH: curses installs its resize handler only where it finds SIG_DFL.) */
static int sysvmq_candidate(int i)
{
    if (i == 0)
        return SIGURG;
#ifdef SIGRTMIN
    if (i - 1 <= SIGRTMAX - SIGRTMIN)
        return SIGRTMAX - (i - 1);
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
    if (sigismember(&sysvmq_claimed, signo) == 1)
        sysvmq_note(SYSVMQ_EV_RECLAIMED, signo, 0, 0); /* the application reset it to SIG_DFL */
    sigaddset(&sysvmq_claimed, signo);
    return 0;
}

/* Why candidate `signo` is not free for a thread whose mask is `blocked`. */
static int sysvmq_why_not(int signo, const sigset_t *blocked, int except)
{
    struct sigaction current;
    if (signo == except)
        return SYSVMQ_WHY_REPLACED;
    if (sigismember(blocked, signo) == 1)
        return SYSVMQ_WHY_BLOCKED;
    if (sigaction(signo, NULL, &current) == 0 && !(current.sa_flags & SA_SIGINFO) && current.sa_handler == SIG_IGN)
        return SYSVMQ_WHY_IGNORED;
    return SYSVMQ_WHY_HANDLED;
}

/* Note why each candidate before `chosen` (every one, if 0) was passed over, then the
 * outcome.  Only when the wake-up signal changes, or a choice finds none: rare.
 * Called with sysvmq_lock held. */
static void sysvmq_note_choice(const sigset_t *blocked, int chosen, int previous)
{
    int i, signo;
    for (i = 0; (signo = sysvmq_candidate(i)) != 0 && signo != chosen; i++)
        sysvmq_note(SYSVMQ_EV_SKIPPED, signo, sysvmq_why_not(signo, blocked, 0), 0);
    if (chosen != 0)
        sysvmq_note(SYSVMQ_EV_CHOSEN, chosen, previous, 0);
    else
        sysvmq_note(SYSVMQ_EV_NONE_FREE, 0, 0, 0);
}

/* The first candidate other than `except` that is free (or already sysvmq's) and not in
 * `blocked`, claimed: the signal, or 0.  Called with sysvmq_lock held. */
static int sysvmq_free_signal(const sigset_t *blocked, int except)
{
    int i, signo;
    for (i = 0; (signo = sysvmq_candidate(i)) != 0; i++) {
        if (signo != except && !sigismember(blocked, signo) && sysvmq_claim_signal(signo) == 0)
            return signo;
    }
    return 0;
}

/* The signal that wakes a thread whose mask is `blocked`: the wake-up signal if it is still
 * sysvmq's (claimed again if the application reset it to SIG_DFL) and the thread does not
 * block it, else another free one the thread does not block; 0 if there is none (then the
 * call polls).  A signal the thread blocks is never unblocked: it may be one the
 * application takes with sigwait or signalfd.  Called with sysvmq_lock held. */
static int sysvmq_signal_for(const sigset_t *blocked)
{
    int signo;
    if (sysvmq_signo != 0 && !sigismember(blocked, sysvmq_signo) && sysvmq_claim_signal(sysvmq_signo) == 0)
        return sysvmq_signo;
    signo = sysvmq_free_signal(blocked, 0);
    if (signo != 0 && (sysvmq_signo == 0 || sysvmq_claim_signal(sysvmq_signo) < 0)) {
        /* the wake-up signal was taken (or never chosen): move on */
        sysvmq_note_choice(blocked, signo, sysvmq_signo);
        sysvmq_signo = signo;
    } else if (signo != 0) {
        sysvmq_note(SYSVMQ_EV_STAND_IN, signo, sysvmq_signo, 0);
    }
    return signo;
}

static int sysvmq_set_wakeup_signal(int signo)
{
    int r;
    sigset_t none;
    pthread_once(&sysvmq_once, sysvmq_init);
    pthread_mutex_lock(&sysvmq_lock);
    if (signo == 0) {
        sigemptyset(&none);
        r = sysvmq_signal_for(&none);
        if (r == 0) {
            sysvmq_note_choice(&none, 0, sysvmq_signo);
            r = -EBUSY;
        }
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

static int sysvmq_choose_wakeup_signal(void)
{
    sigset_t blocked;
    int signo;
    pthread_once(&sysvmq_once, sysvmq_init);
    sigemptyset(&blocked);
    pthread_sigmask(SIG_BLOCK, NULL, &blocked);
    pthread_mutex_lock(&sysvmq_lock);
    signo = sysvmq_signo != 0 ? sysvmq_signo : sysvmq_signal_for(&blocked);
    if (signo == 0)
        sysvmq_note_choice(&blocked, 0, 0);
    pthread_mutex_unlock(&sysvmq_lock);
    return signo;
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

/* Signal every waiter of `h` (or using `token`; with neither, every receive of another
 * thread): how many of those still inside a
 * call can be woken, or -EBUSY when none of them can (see sysvmq_kick_waiter). */
static int sysvmq_kick(const sysvmq_handle *h, const sysvmq_token *token)
{
    struct sysvmq_waiter *w;
    int unreachable = 0, reachable = 0;
    pthread_mutex_lock(&sysvmq_lock);
    for (w = sysvmq_waiters.next; w != &sysvmq_waiters; w = w->next) {
        if ((h != NULL && w->handle == h) || (token != NULL && w->token == token) ||
            (h == NULL && token == NULL && w->receiving && !pthread_equal(w->thread, pthread_self()))) {
            if (sysvmq_kick_waiter(w) >= 0)
                reachable++;
            else
                unreachable++;
        }
    }
    pthread_mutex_unlock(&sysvmq_lock);
    return reachable == 0 && unreachable > 0 ? -EBUSY : reachable;
}

/* Once the process exits (finish.c), a receive in any thread but the one that finishes
 * it (where atexit handlers still run) takes nothing more. */
static int sysvmq_finishing;
static pthread_t sysvmq_finisher;

static int sysvmq_exiting_elsewhere(void)
{
    return __atomic_load_n(&sysvmq_finishing, __ATOMIC_SEQ_CST) && !pthread_equal(pthread_self(), sysvmq_finisher);
}

/* How many threads are inside a receive call: from its entry until what it took is
 * recorded in its buffer (`held`), which the exiting process waits for (finish.c). */
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

/* What a buffer holds (`held`): written by the receiving thread, read by the exiting one (finish.c). */
static long sysvmq_record_held(long *held, long r)
{
    __atomic_store_n(held, r, __ATOMIC_RELAXED);
    return r;
}

static void sysvmq_record_held_count(size_t *held, size_t n)
{
    __atomic_store_n(held, n, __ATOMIC_RELAXED);
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
