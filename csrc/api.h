/* The C interface of sysvmq._sysvmq_cffi: what Python may call (the cdef).
 *
 * Every `...` is filled in by the compiler from the platform headers, so no
 * width, offset or constant value is copied here.  Shim functions return
 * >= 0 on success and -errno on failure (errno is captured in C, so nothing
 * that runs in Python between the call and the check can overwrite it).
 *
 * Words: a receive *takes* a message off its queue into a buffer, which *holds* it
 * (`held`) until Python has copied it out and *handed it over* to its caller; a message
 * taken that its caller cannot have is *returned* to the end of its queue (sysvmq_return*).
 */

typedef int... key_t;
typedef int... pid_t;
typedef int... uid_t;
typedef int... gid_t;
typedef int... mode_t;
typedef int... time_t;
typedef int... msgqnum_t;
typedef int... msglen_t;

/* The key field is spelt differently per platform: read it with sysvmq_perm_key(). */
struct ipc_perm {
    uid_t uid;
    gid_t gid;
    uid_t cuid;
    gid_t cgid;
    mode_t mode;
    ...;
};

/* The byte count field is platform-private: read it with sysvmq_queue_bytes(). */
struct msqid_ds {
    struct ipc_perm msg_perm;
    time_t msg_stime;
    time_t msg_rtime;
    time_t msg_ctime;
    msgqnum_t msg_qnum;
    msglen_t msg_qbytes;
    pid_t msg_lspid;
    pid_t msg_lrpid;
    ...;
};

#include "types.h"

#define IPC_PRIVATE ...
#define IPC_CREAT ...
#define IPC_EXCL ...
#define IPC_NOWAIT ...
#define IPC_RMID ...
#define IPC_SET ...
#define IPC_STAT ...
#define MSG_NOERROR ...

/* Linux-only names: SYSVMQ_HAS_X says whether SYSVMQ_X is the real constant. */
static const int SYSVMQ_HAS_IPC_INFO;
static const int SYSVMQ_IPC_INFO;
static const int SYSVMQ_HAS_MSG_INFO;
static const int SYSVMQ_MSG_INFO;
static const int SYSVMQ_HAS_MSG_STAT;
static const int SYSVMQ_MSG_STAT;
static const int SYSVMQ_HAS_MSG_STAT_ANY;
static const int SYSVMQ_MSG_STAT_ANY;
static const int SYSVMQ_HAS_MSG_EXCEPT;
static const int SYSVMQ_MSG_EXCEPT;
static const int SYSVMQ_HAS_MSG_COPY;
static const int SYSVMQ_MSG_COPY;
static const long SYSVMQ_LONG_MAX;
static const long SYSVMQ_LONG_MIN;

/* msgget(key, flags) into *msqid (negative on macOS after many queues): 0, or -errno. */
int sysvmq_get(key_t key, int flags, int *msqid);

/* Send `len` bytes of `data` with type `mtype` (-EDOM if < 1).  Blocks unless IPC_NOWAIT
 * is in `flags`, until `deadline_ns` (CLOCK_MONOTONIC, -1 = none): -ETIMEDOUT then.
 * -EMSGSIZE: bigger than the queue's capacity (a send that could never complete).
 * -EIDRM: the handle's id names another queue now (its own was removed).
 * -EINTR: a signal arrived; run the handlers and call again with the same deadline.
 * -EBADF: the handle was closed.  -ECANCELED: `token` was cancelled. */
int sysvmq_send(sysvmq_handle *h, long mtype, const char *data, size_t len, int flags,
                long long deadline_ns, sysvmq_token *token);

/* sysvmq_send with no flags, no deadline, no token: the common case in one short call. */
int sysvmq_put(sysvmq_handle *h, long mtype, const char *data, size_t len);

/* Receive into `b` (up to `cap` <= its handle's max_size bytes): the payload length, or
 * -errno as for sysvmq_send.  With `dest` not NULL the payload is copied there as well.
 * Every receive records in b->held what it took (-1: nothing; MSG_COPY takes nothing). */
long sysvmq_receive(sysvmq_rbuf *b, size_t cap, long msgtyp, int flags, long long deadline_ns,
                    sysvmq_token *token, char *dest);

/* Wait, as sysvmq_receive would, until a message that `msgtyp` and `flags` select is
 * waiting, and take none: 0 then.  A zero-length message fits the zero-byte buffer and is
 * taken: it is returned to the end of the queue if it fits at once (0), else it is the
 * caller's: 1, with its type in *held_type. */
long sysvmq_await(sysvmq_handle *h, long msgtyp, int flags, long long deadline_ns,
                  sysvmq_token *token, long *held_type);

/* The fast receive: sysvmq_receive of the first message (msgtyp 0), with the full
 * max_size, no flags, no deadline, no token, no dest. */
long sysvmq_take(sysvmq_rbuf *b);

/* sysvmq_take of the message `msgtyp` selects. */
long sysvmq_take_type(sysvmq_rbuf *b, long msgtyp);

/* sysvmq_take_type waiting at most `timeout` seconds (-EDOM if negative or NaN).  When it
 * has to wait it stores its absolute deadline in b->deadline_ns first, for a retry after
 * -EINTR (through sysvmq_receive) to keep; a message already there costs no clock read. */
long sysvmq_take_within(sysvmq_rbuf *b, long msgtyp, double timeout);

/* Send `count` messages of type `mtype`, packed back to back in `data` with lengths
 * `lens`; *sent counts those that went.  0, or -errno for the message at *sent. */
int sysvmq_send_many(sysvmq_handle *h, long mtype, const char *data, const size_t *lens,
                     size_t count, int flags, long long deadline_ns, sysvmq_token *token,
                     size_t *sent);

/* Receive up to `max_count` (<= b->slots) messages of up to `cap` bytes into `b`: the
 * first one blocks as for sysvmq_receive, later ones are taken only if already waiting.
 * The count (also in b->held), or -errno when not even the first message came. */
long sysvmq_receive_many(sysvmq_batch *b, size_t cap, long msgtyp, int flags, long long deadline_ns,
                         sysvmq_token *token, size_t max_count);

/* Put the message the last receive into `b` took back at the end of the queue, for a
 * caller that could not be handed it (an exception on its way out): 0, 1 if it had taken
 * none, or -errno if the queue had no room for it within a second (then b->held still
 * says what `b` holds: the caller hands it over). */
int sysvmq_return(sysvmq_rbuf *b);

/* sysvmq_return for every message the last sysvmq_receive_many took into `b`, in
 * order; on -errno, b->held counts the last ones not back (still in `b`). */
int sysvmq_return_many(sysvmq_batch *b);

/* sysvmq_return for a message already copied out of its buffer. */
int sysvmq_return_copy(sysvmq_handle *h, long mtype, const char *data, size_t len);

/* The process exits (an atexit handler): from now on every handle counts as closed in
 * every other thread, and a message a receive there takes goes back to its queue.  Called
 * before the buffers to wait for are listed: a receive that starts after the list was
 * made (its buffer new, not in it) then takes nothing. */
void sysvmq_finish_begins(void);

/* Then, after sysvmq_finish_begins: wakes every waiter of another thread, then waits up
 * to `seconds` until no receive is inside and none of the buffers holds a message Python
 * has not copied out: 0, or -ETIMEDOUT. */
int sysvmq_finish(sysvmq_rbuf **buffers, size_t nbuffers, sysvmq_batch **batches, size_t nbatches,
                  double seconds);

/* In a child just forked: only the forking thread lives on, and it is inside no receive. */
void sysvmq_forked(void);

/* Mark the handle closed and wake every thread of this process blocked on it;
 * returns 0 once none is left inside a call on it, or -EBUSY if those left cannot be
 * woken: the application took the wake-up signal and blocks every other one there. */
int sysvmq_close(sysvmq_handle *h);

/* Whether sysvmq_close was called on `h`: 1 or 0.  Read here, atomically, not as the
 * field: another thread may be closing the handle at that moment. */
int sysvmq_is_closed(sysvmq_handle *h);

/* Cancel the call that uses `token` and wake it: 1 while it is still inside, else 0;
 * -EBUSY if it cannot be woken (as for sysvmq_close). */
int sysvmq_cancel(sysvmq_token *token);

/* msgctl IPC_STAT into *ds: 0 or -errno. */
int sysvmq_stat(int id, struct msqid_ds *ds);

/* msgctl MSG_STAT_ANY (else MSG_STAT) on kernel slot `index`: the msqid, or -errno. */
int sysvmq_stat_index(int index, struct msqid_ds *ds);

/* IPC_STAT, change the fields whose argument is >= 0, IPC_SET: 0 or -errno. */
int sysvmq_set(int id, long long mode, long long uid, long long gid, long long max_bytes);

/* msgctl IPC_RMID: 0 or -errno. */
int sysvmq_remove(int id);

/* msgctl IPC_INFO (`cmd`) or MSG_INFO: the highest slot in use, or -errno (-ENOSYS off Linux). */
int sysvmq_info(int cmd, sysvmq_msginfo *info);

/* The key of a queue, and the payload bytes waiting in it. */
long long sysvmq_perm_key(const struct msqid_ds *ds);
unsigned long long sysvmq_queue_bytes(const struct msqid_ds *ds);

/* ftok(path, proj_id) into *key: 0 or -errno. */
int sysvmq_ftok(const char *path, int proj_id, key_t *key);

/* Use signal `signo` to wake blocked calls (0: choose one: SIGURG, then the real-time
 * signals from SIGRTMAX down, the first whose disposition is the default).  The signal; -EBUSY if the application
 * handles or ignores it (every candidate, for 0), -EINVAL if it may not be one. */
int sysvmq_set_wakeup_signal(int signo);

/* Choose the wake-up signal if none is yet, as a wait in the calling thread would (never
 * one the thread blocks): the signal, or 0 if none can reach this thread yet. */
int sysvmq_choose_wakeup_signal(void);

/* The wake-up signal, or 0 while none has been chosen. */
int sysvmq_wakeup_signal(void);

/* Move up to `room` noted events (oldest first) into `out` and forget them: how many;
 * *dropped gets how many were forgotten unread since the last call (the notes are full). */
int sysvmq_take_events(sysvmq_event *out, int room, long *dropped);

/* CLOCK_MONOTONIC now, in ns: the clock of every deadline. */
long long sysvmq_monotonic_ns(void);
