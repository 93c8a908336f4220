/* The wake-up signal: chosen, claimed, and checked before every use, so that a blocked
 * system call can be interrupted (waiters.c sends it); and the notes of what was decided,
 * for the "sysvmq" logger (sysvmq/_log.py). */

/* sysvmq_lock guards the wake-up signal, the signals claimed and the notes below, and the
 * waiters and the helper thread (waiters.c): no thread reads or writes them without it. */
static pthread_mutex_t sysvmq_lock = PTHREAD_MUTEX_INITIALIZER;
static int sysvmq_signo; /* the wake-up signal; 0 until chosen */
static sigset_t sysvmq_claimed; /* every signal sysvmq installed its handler on */

/* Once per process, before the first wait or choice of a signal (waiters.c): sysvmq_claimed
 * emptied, and what a fork must find consistent. */
static pthread_once_t sysvmq_once = PTHREAD_ONCE_INIT;
static void sysvmq_init(void);

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
