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
    int closed;      /* set by sysvmq_close */
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
    long taken; /* the length of the message the last call took into it; -1: none */
    long mtype;
    char mtext[];
} sysvmq_rbuf;

/* receive_many's memory (owned by Python, one call at a time): message i at
 * out + offsets[i], lens[i] bytes, of type types[i]; `taken` of them from the last call. */
typedef struct {
    sysvmq_handle *handle;
    char *out;
    size_t outcap;
    size_t slots; /* the room in offsets, lens and types */
    size_t *offsets;
    size_t *lens;
    long *types;
    size_t taken;
} sysvmq_batch;

/* Lets another thread stop one blocking call (asyncio cancellation). */
typedef struct {
    int cancelled;
} sysvmq_token;
