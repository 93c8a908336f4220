/* The operations Python calls: open, send, receive, await, batches; and returning a
 * message taken that its caller cannot have to its queue. */

/* Sends up to this size are assembled on the stack, larger ones in malloc'd memory. */
#define SYSVMQ_STACK_PAYLOAD 16384
/* A message given back waits at most this long for room (the queue just had it). */
#define SYSVMQ_GIVE_BACK_NS 1000000000LL

static int sysvmq_get(key_t key, int flags, int *msqid)
{
    /* An error is -1 and errno; macOS hands out negative msqids after ~32k queues. */
    int r = msgget(key, flags);
    if (r == -1)
        return -errno;
    *msqid = r;
    return 0;
}

/* ---- sending ---- */

/* A buffer for an outgoing message of up to `room` bytes of payload: `stack` when it
 * fits, else malloc'd (NULL if there is no memory).  sysvmq_outgoing_done frees it. */
static struct sysvmq_msgbuf *sysvmq_outgoing_buffer(long *stack, size_t room)
{
    if (room <= SYSVMQ_STACK_PAYLOAD)
        return (struct sysvmq_msgbuf *)stack;
    return malloc(offsetof(struct sysvmq_msgbuf, mtext) + room);
}

/* The outgoing message of type `mtype` and the `len` bytes of `data`, in a buffer as above. */
static struct sysvmq_msgbuf *sysvmq_outgoing(long *stack, long mtype, const char *data, size_t len)
{
    struct sysvmq_msgbuf *buf = sysvmq_outgoing_buffer(stack, len);
    if (buf != NULL) {
        buf->mtype = mtype;
        memcpy(buf->mtext, data, len);
    }
    return buf;
}

static void sysvmq_outgoing_done(struct sysvmq_msgbuf *buf, const long *stack)
{
    if ((const void *)buf != (const void *)stack)
        free(buf);
}

static int sysvmq_send(sysvmq_handle *h, long mtype, const char *data, size_t len, int flags,
                       long long deadline_ns, sysvmq_token *token)
{
    long stack[1 + SYSVMQ_STACK_PAYLOAD / sizeof(long)];
    struct sysvmq_msgbuf *buf;
    struct sysvmq_op op;
    long r;
    if (mtype < 1)
        return -EDOM;
    if (sysvmq_is_closed(h))
        return -EBADF;
    buf = sysvmq_outgoing(stack, mtype, data, len);
    if (buf == NULL)
        return -ENOMEM;
    op = sysvmq_sending(h->id, buf, len);
    r = sysvmq_perform(sysvmq_call(h, flags, deadline_ns, token), NULL, op);
    sysvmq_outgoing_done(buf, stack);
    return (int)r;
}

static int sysvmq_put(sysvmq_handle *h, long mtype, const char *data, size_t len)
{
    return sysvmq_send(h, mtype, data, len, 0, -1, NULL);
}

/* Where message `sent` of a batch starts in its data (those before it went in an earlier
 * call), and in *largest the largest of it and those after it. */
static size_t sysvmq_batch_resumes(const size_t *lens, size_t count, size_t sent, size_t *largest)
{
    size_t i, offset = 0;
    *largest = 0;
    for (i = 0; i < count; i++) {
        if (i < sent)
            offset += lens[i];
        else if (lens[i] > *largest)
            *largest = lens[i];
    }
    return offset;
}

/* One call for the batch: in the list of waiters from its first wait until the batch
 * ends, so that every later message is one blocking msgsnd. */
static int sysvmq_send_many(sysvmq_handle *h, long mtype, const char *data, const size_t *lens,
                            size_t count, int flags, long long deadline_ns, sysvmq_token *token,
                            size_t *sent)
{
    long stack[1 + SYSVMQ_STACK_PAYLOAD / sizeof(long)];
    const struct sysvmq_call c = sysvmq_call(h, flags, deadline_ns, token);
    struct sysvmq_waiting wt;
    struct sysvmq_msgbuf *buf;
    struct sysvmq_op op;
    size_t i, largest, offset;
    long r = 0;
    if (mtype < 1)
        return -EDOM;
    if (sysvmq_is_closed(h))
        return -EBADF;
    offset = sysvmq_batch_resumes(lens, count, *sent, &largest);
    buf = sysvmq_outgoing_buffer(stack, largest);
    if (buf == NULL)
        return -ENOMEM;
    buf->mtype = mtype;
    wt.entered = 0;
    for (i = *sent; i < count; i++) {
        memcpy(buf->mtext, data + offset, lens[i]);
        op = sysvmq_sending(h->id, buf, lens[i]);
        r = sysvmq_perform(c, &wt, op);
        if (r < 0)
            break;
        offset += lens[i];
        *sent = i + 1;
    }
    sysvmq_stop_waiting(&wt);
    sysvmq_outgoing_done(buf, stack);
    return r < 0 ? (int)r : 0;
}

/* ---- receiving ---- */

/* A receive buffer's message, as msgrcv reads and writes it. */
static struct sysvmq_msgbuf *sysvmq_message_of(sysvmq_rbuf *b)
{
    SYSVMQ_STATIC_ASSERT(offsetof(sysvmq_rbuf, mtext) - offsetof(sysvmq_rbuf, mtype) ==
                             offsetof(struct sysvmq_msgbuf, mtext),
                         "sysvmq_rbuf holds a struct sysvmq_msgbuf from its mtype on");
    return (struct sysvmq_msgbuf *)(void *)&b->mtype;
}

/* A receive as a call of one operation: it takes nothing once its handle is closed or
 * its token cancelled. */
static inline long sysvmq_receive_once(struct sysvmq_call c, struct sysvmq_op op)
{
    long r = sysvmq_stopped(c.h, c.token);
    return r < 0 ? r : sysvmq_perform(c, NULL, op);
}

static long sysvmq_receive(sysvmq_rbuf *b, size_t cap, long msgtyp, int flags,
                           long long deadline_ns, sysvmq_token *token, char *dest)
{
    sysvmq_handle *h = b->handle;
    const struct sysvmq_op op = sysvmq_receiving(h->id, sysvmq_message_of(b), cap, msgtyp);
    long r;
    sysvmq_receive_begins();
    r = sysvmq_receive_once(sysvmq_call(h, flags, deadline_ns, token), op);
    if (r > 0 && dest != NULL)
        memcpy(dest, b->mtext, (size_t)r);
    sysvmq_record_held(&b->held, (flags & SYSVMQ_MSG_COPY) && SYSVMQ_HAS_MSG_COPY ? -1 : r);
    return sysvmq_receive_ends(r);
}

static long sysvmq_take_type(sysvmq_rbuf *b, long msgtyp)
{
    sysvmq_handle *h = b->handle;
    const struct sysvmq_op op = sysvmq_receiving(h->id, sysvmq_message_of(b), h->max_size, msgtyp);
    sysvmq_receive_begins();
    return sysvmq_receive_ends(sysvmq_record_held(&b->held, sysvmq_receive_once(sysvmq_call(h, 0, -1, NULL), op)));
}

static long sysvmq_take(sysvmq_rbuf *b)
{
    return sysvmq_take_type(b, 0);
}

static long sysvmq_take_within_once(sysvmq_rbuf *b, long msgtyp, double timeout)
{
    sysvmq_handle *h = b->handle;
    struct sysvmq_op op;
    sysvmq_record_held(&b->held, -1);
    if (!(timeout >= 0))
        return -EDOM; /* negative or NaN */
    op = sysvmq_receiving(h->id, sysvmq_message_of(b), h->max_size, msgtyp);
    return sysvmq_record_held(&b->held,
                              sysvmq_receive_once(sysvmq_call_within(h, timeout, &b->deadline_ns), op));
}

static long sysvmq_take_within(sysvmq_rbuf *b, long msgtyp, double timeout)
{
    sysvmq_receive_begins();
    return sysvmq_receive_ends(sysvmq_take_within_once(b, msgtyp, timeout));
}

static long sysvmq_await_once(sysvmq_handle *h, long msgtyp, int flags, long long deadline_ns,
                              sysvmq_token *token, long *held_type)
{
    long header[2];
    struct sysvmq_msgbuf *buf = (struct sysvmq_msgbuf *)(void *)header;
    struct sysvmq_op op = sysvmq_receiving(h->id, buf, 0, msgtyp);
    long r;
    *held_type = 0;
    /* Without MSG_NOERROR a zero-byte buffer takes nothing longer than zero bytes: E2BIG. */
    r = sysvmq_receive_once(sysvmq_call(h, flags & ~MSG_NOERROR, deadline_ns, token), op);
    if (r == -E2BIG)
        return 0;
    if (r != 0)
        return r;
    /* A zero-length message fits and was taken: return it at once if it fits (without
     * waiting, and a receiver may lack write permission); else it is the caller's. */
    op = sysvmq_sending(h->id, buf, 0);
    do
        r = sysvmq_attempt(&op, IPC_NOWAIT);
    while (r == -EINTR);
    if (r == 0) {
        sysvmq_note_locking(SYSVMQ_EV_RETURNED, 0, 0, buf->mtype);
        return 0;
    }
    *held_type = buf->mtype;
    return 1;
}

static long sysvmq_await(sysvmq_handle *h, long msgtyp, int flags, long long deadline_ns,
                         sysvmq_token *token, long *held_type)
{
    sysvmq_receive_begins();
    return sysvmq_receive_ends(sysvmq_await_once(h, msgtyp, flags, deadline_ns, token, held_type));
}

/* The first message as sysvmq_receive takes one; the others only if already waiting. */
static long sysvmq_receive_many_once(sysvmq_batch *b, size_t cap, long msgtyp, int flags,
                                     long long deadline_ns, sysvmq_token *token, size_t max_count)
{
    const size_t header = offsetof(struct sysvmq_msgbuf, mtext);
    sysvmq_handle *h = b->handle;
    struct sysvmq_op op;
    size_t n = 0, pos = 0;
    long r = -EINVAL; /* not even one fits */
    sysvmq_record_held_count(&b->held, 0);
    if (max_count > b->slots)
        max_count = b->slots;
    while (n < max_count) {
        pos = (pos + sizeof(long) - 1) / sizeof(long) * sizeof(long);
        if (pos > b->outcap || b->outcap - pos < header + cap)
            break;
        op = sysvmq_receiving(h->id, (struct sysvmq_msgbuf *)(void *)(b->out + pos), cap, msgtyp);
        r = n == 0 ? sysvmq_receive_once(sysvmq_call(h, flags, deadline_ns, token), op)
                   : sysvmq_attempt(&op, flags | IPC_NOWAIT);
        if (r < 0)
            break; /* after the first, whatever stopped the batch is reported by the next call */
        b->offsets[n] = pos + header;
        b->lens[n] = (size_t)r;
        b->types[n] = op.buf->mtype;
        pos += header + (size_t)r;
        sysvmq_record_held_count(&b->held, ++n);
    }
    return n > 0 ? (long)n : r;
}

static long sysvmq_receive_many(sysvmq_batch *b, size_t cap, long msgtyp, int flags,
                                long long deadline_ns, sysvmq_token *token, size_t max_count)
{
    sysvmq_receive_begins();
    return sysvmq_receive_ends(sysvmq_receive_many_once(b, cap, msgtyp, flags, deadline_ns, token, max_count));
}

/* ---- returning ---- */

/* Send one message a caller could not be handed (an exception on its way out, or a
 * thread the exiting process may stop) back to the end of queue `id`, without waiting on
 * a handle (it may be closed by now): retried for up to SYSVMQ_GIVE_BACK_NS while the
 * queue is full. */
static int sysvmq_return_to_queue(int id, struct sysvmq_msgbuf *buf, size_t len)
{
    const struct sysvmq_op op = sysvmq_sending(id, buf, len);
    long long deadline = sysvmq_monotonic_ns() + SYSVMQ_GIVE_BACK_NS;
    long r;
    for (;;) {
        r = sysvmq_attempt(&op, IPC_NOWAIT);
        if (r != -EAGAIN && r != -EINTR)
            return (int)r;
        if (sysvmq_monotonic_ns() >= deadline)
            return -EAGAIN;
        sysvmq_sleep_ns(SYSVMQ_POLL_MAX_NS);
    }
}

/* 0 once the message `b` took is back in the queue, 1 if it took none, else -errno with
 * `b->held` left as it was: the message is still in `b`, for the caller to hand over. */
static int sysvmq_return(sysvmq_rbuf *b)
{
    long len = b->held;
    int r;
    if (len < 0)
        return 1;
    r = sysvmq_return_to_queue(b->handle->id, sysvmq_message_of(b), (size_t)len);
    if (r == 0)
        sysvmq_record_held(&b->held, -1);
    return r;
}

static int sysvmq_return_copy(sysvmq_handle *h, long mtype, const char *data, size_t len)
{
    long stack[1 + SYSVMQ_STACK_PAYLOAD / sizeof(long)];
    struct sysvmq_msgbuf *buf = sysvmq_outgoing(stack, mtype, data, len);
    int r;
    if (buf == NULL)
        return -ENOMEM;
    r = sysvmq_return_to_queue(h->id, buf, len);
    sysvmq_outgoing_done(buf, stack);
    return r;
}

/* The messages of a batch, back in order: 0, or -errno with `b->held` the count of the
 * last ones that are not back (still in `b`, for the caller to hand over). */
static int sysvmq_return_many(sysvmq_batch *b)
{
    const size_t header = offsetof(struct sysvmq_msgbuf, mtext);
    size_t i, n = b->held;
    int r = 0;
    for (i = 0; i < n; i++) {
        r = sysvmq_return_to_queue(b->handle->id, (struct sysvmq_msgbuf *)(void *)(b->out + b->offsets[i] - header),
                                   b->lens[i]);
        if (r < 0) {
            sysvmq_record_held_count(&b->held, n - i);
            return r;
        }
    }
    sysvmq_record_held_count(&b->held, 0);
    return 0;
}
