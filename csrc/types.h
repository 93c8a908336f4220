/* The structs Python and C share.  Read by the cdef (build_sysvmq.py) and by the C,
 * so they are written once; plain declarations only, which both can parse. */

/* The buffer msgsnd/msgrcv read and write: the type, then the payload. */
struct sysvmq_msgbuf {
    long mtype;
    char mtext[];
};

/* One queue handle of this process; owned by Python (ffi.new). */
typedef struct {
    int id;
    int closed;      /* set by sysvmq_close; read atomically (sysvmq_is_closed), never as a field */
    size_t max_size; /* the payload room of the buffers handed to sysvmq_take */
    key_t key;       /* the queue's key, checked before a call waits if key_known */
    int key_known;
} sysvmq_handle;

/* The kernel's limits and what is in use (Linux IPC_INFO / MSG_INFO), copied out of its
 * struct msginfo, which other platforms lay out otherwise or keep in the kernel. */
typedef struct {
    long long msgpool, msgmap, msgmax, msgmnb, msgmni, msgssz, msgtql, msgseg;
} sysvmq_msginfo;

/* One receive buffer of a handle (owned by Python, never shared by two calls at once): the
 * handle it serves, so the fast receive converts one argument; where a timed wait leaves
 * its deadline for a retry after EINTR; then the message as msgrcv writes it: the type,
 * then `max_size` bytes of payload room (ops.c checks the layout matches sysvmq_msgbuf). */
typedef struct {
    sysvmq_handle *handle;
    long long deadline_ns;
    long held; /* the length of the message taken into it and not yet handed over; -1: none */
    long mtype;
    char mtext[];
} sysvmq_rbuf;

/* receive_many's memory (owned by Python, one call at a time): message i at
 * out + offsets[i], lens[i] bytes, of type types[i]; `held` of them from the last call. */
typedef struct {
    sysvmq_handle *handle;
    char *out;
    size_t outcap;
    size_t slots; /* the room in offsets, lens and types */
    size_t *offsets;
    size_t *lens;
    long *types;
    size_t held;
} sysvmq_batch;

/* Lets another thread stop one blocking call (asyncio cancellation). */
typedef struct {
    int cancelled; /* set by sysvmq_cancel; read atomically, while its call runs */
} sysvmq_token;

/* What the wake-up machinery decided, noted for the "sysvmq" logger: C cannot call
 * Python's logging, so it notes events and Python reads them (sysvmq_take_events) on
 * its slow paths.  `count` folds identical events noted one after another. */
enum {
    SYSVMQ_EV_SKIPPED = 1,     /* a candidate signal passed over; detail: SYSVMQ_WHY_* */
    SYSVMQ_EV_CHOSEN = 2,      /* sysvmq chose signo as the wake-up signal; detail: the one before, or 0 */
    SYSVMQ_EV_NONE_FREE = 3,   /* sysvmq looked for a wake-up signal and found none free */
    SYSVMQ_EV_RECLAIMED = 4,   /* signo, sysvmq's, was found reset to SIG_DFL and claimed again */
    SYSVMQ_EV_STAND_IN = 5,    /* a thread blocks the wake-up signal (detail): it waits with signo */
    SYSVMQ_EV_SWITCHED = 6,    /* a waiter's signal signo failed (value: 0 taken, else errno); detail: its new one, 0 none */
    SYSVMQ_EV_POLLING = 7,     /* a wait polls; detail: SYSVMQ_WHY_NO_SIGNAL or SYSVMQ_WHY_NO_HELPER */
    SYSVMQ_EV_HELPER = 8,      /* the helper thread started (detail 0) or could not (detail: errno) */
    SYSVMQ_EV_RETURNED = 9     /* an async wait took a zero-length message and put it back; value: its type */
};
enum {
    SYSVMQ_WHY_HANDLED = 1,    /* the application handles it */
    SYSVMQ_WHY_IGNORED = 2,    /* the application ignores it (SIG_IGN) */
    SYSVMQ_WHY_BLOCKED = 3,    /* the waiting thread blocks it */
    SYSVMQ_WHY_REPLACED = 4,   /* it is the signal being replaced */
    SYSVMQ_WHY_NO_SIGNAL = 5,  /* no signal can reach the thread */
    SYSVMQ_WHY_NO_HELPER = 6   /* no helper thread could start to keep the deadline */
};
typedef struct {
    int kind, signo, detail;
    long value;
    long count;
} sysvmq_event;
