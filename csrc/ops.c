/* The operations Python calls: open, send, receive, await, batches. */

/* Sends up to this size are assembled on the stack, larger ones in malloc'd memory. */
#define SYSVMQ_STACK_PAYLOAD 16384
/* A message given back waits at most this long for room (the queue just had it). */
#define SYSVMQ_GIVE_BACK_NS 1000000000LL
/* Timeouts this long or longer mean "no deadline" (about 146 years). */
#define SYSVMQ_FOREVER_NS (1LL << 62)

/* Before a call waits: -EIDRM if the handle's id now names another queue (the kernel
 * reused it after the handle's queue was removed), for a send (`sending`) -EMSGSIZE if
 * a message of `len` bytes can never fit in the queue (a blocking send would sleep
 * forever), an error for a removed queue, else 0.  Without read permission nothing can
 * be checked: 0. */
static int sysvmq_check_queue(const sysvmq_handle *h, size_t len, int sending)
{
    struct msqid_ds ds;
    if (msgctl(h->id, IPC_STAT, &ds) < 0)
        return errno == EACCES ? 0 : -errno;
    if (h->key_known && (key_t)sysvmq_perm_key(&ds) != h->key)
        return -EIDRM;
    if (!sending)
        return 0;
    if (len > (size_t)ds.msg_qbytes)
        return -EMSGSIZE;
#if defined(__linux__)
    /* Linux counts each message against the capacity as well as its bytes: a queue of
     * capacity 0 holds no message at all, not even an empty one. */
    if (ds.msg_qbytes == 0)
        return -EMSGSIZE;
#endif
    return 0;
}

/* Send the message in `op` (already assembled) as sysvmq_send describes. */
static long sysvmq_send_op(sysvmq_handle *h, const struct sysvmq_op *op, int flags,
                           long long deadline_ns, sysvmq_token *token)
{
    long r = sysvmq_attempt(op, flags | IPC_NOWAIT);
    if (r != -EAGAIN)
        return r;
    r = sysvmq_check_queue(h, op->size, 1);
    if (r < 0)
        return r;
    if (flags & IPC_NOWAIT)
        return -EAGAIN;
    return sysvmq_wait(h, op, flags, deadline_ns, token);
}

static int sysvmq_get(key_t key, int flags, int *msqid)
{
    /* An error is -1 and errno; macOS hands out negative msqids after ~32k queues. */
    int r = msgget(key, flags);
    if (r == -1)
        return -errno;
    *msqid = r;
    return 0;
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

/* A receive buffer's message, as msgrcv reads and writes it. */
static struct sysvmq_msgbuf *sysvmq_message_of(sysvmq_rbuf *b)
{
    SYSVMQ_STATIC_ASSERT(offsetof(sysvmq_rbuf, mtext) - offsetof(sysvmq_rbuf, mtype) ==
                             offsetof(struct sysvmq_msgbuf, mtext),
                         "sysvmq_rbuf holds a struct sysvmq_msgbuf from its mtype on");
    return (struct sysvmq_msgbuf *)(void *)&b->mtype;
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
    if (r == -ESHUTDOWN) /* it took nothing; a blocking call waits it out (sysvmq_sit_out) */
        r = -ENOMSG;
    if (r != -ENOMSG || (flags & IPC_NOWAIT))
        return r;
    r = sysvmq_check_queue(h, 0, 0);
    return r < 0 ? r : sysvmq_wait(h, &op, flags, deadline_ns, token);
}

static long sysvmq_receive(sysvmq_rbuf *b, size_t cap, long msgtyp, int flags,
                           long long deadline_ns, sysvmq_token *token, char *dest)
{
    struct sysvmq_msgbuf *buf = sysvmq_message_of(b);
    long r;
    sysvmq_receive_begins();
    r = sysvmq_receive_op(b->handle, buf, cap, msgtyp, flags, deadline_ns, token);
    if (r > 0 && dest != NULL)
        memcpy(dest, buf->mtext, (size_t)r);
    sysvmq_record_held(&b->held, (flags & SYSVMQ_MSG_COPY) && SYSVMQ_HAS_MSG_COPY ? -1 : r);
    return sysvmq_receive_ends(r);
}

static long sysvmq_await_once(sysvmq_handle *h, long msgtyp, int flags, long long deadline_ns,
                              sysvmq_token *token, long *held_type)
{
    long header[2];
    struct sysvmq_msgbuf *buf = (struct sysvmq_msgbuf *)(void *)header;
    struct sysvmq_op back;
    long r;
    *held_type = 0;
    /* Without MSG_NOERROR a zero-byte buffer takes nothing longer than zero bytes: E2BIG. */
    r = sysvmq_receive_op(h, buf, 0, msgtyp, flags & ~MSG_NOERROR, deadline_ns, token);
    if (r == -E2BIG)
        return 0;
    if (r != 0)
        return r;
    /* A zero-length message fits and was taken: return it at once if it fits (without
     * waiting, and a receiver may lack write permission); else it is the caller's. */
    back.send = 1;
    back.id = h->id;
    back.buf = buf;
    back.size = 0;
    back.msgtyp = 0;
    do
        r = sysvmq_attempt(&back, IPC_NOWAIT);
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

static long sysvmq_take_type(sysvmq_rbuf *b, long msgtyp)
{
    sysvmq_handle *h = b->handle;
    sysvmq_receive_begins();
    return sysvmq_receive_ends(sysvmq_record_held(&b->held, sysvmq_receive_op(h, sysvmq_message_of(b), h->max_size, msgtyp, 0, -1, NULL)));
}

static long sysvmq_take(sysvmq_rbuf *b)
{
    return sysvmq_take_type(b, 0);
}

static long sysvmq_take_within_once(sysvmq_rbuf *b, long msgtyp, double timeout)
{
    sysvmq_handle *h = b->handle;
    struct sysvmq_op op;
    long r;
    sysvmq_record_held(&b->held, -1);
    if (!(timeout >= 0))
        return -EDOM; /* negative or NaN */
    if (sysvmq_is_closed(h))
        return -EBADF;
    sysvmq_receiving(&op, h, sysvmq_message_of(b), h->max_size, msgtyp);
    r = sysvmq_attempt(&op, IPC_NOWAIT);
    if (r != -ENOMSG && r != -ESHUTDOWN)
        return sysvmq_record_held(&b->held, r);
    /* Only a call that has to wait needs its deadline. */
    b->deadline_ns = timeout * 1e9 >= (double)SYSVMQ_FOREVER_NS
                         ? -1
                         : sysvmq_monotonic_ns() + (long long)(timeout * 1e9);
    r = sysvmq_check_queue(h, 0, 0);
    return sysvmq_record_held(&b->held, r < 0 ? r : sysvmq_wait(h, &op, 0, b->deadline_ns, NULL));
}

static long sysvmq_take_within(sysvmq_rbuf *b, long msgtyp, double timeout)
{
    sysvmq_receive_begins();
    return sysvmq_receive_ends(sysvmq_take_within_once(b, msgtyp, timeout));
}

/* The next message of a batch, as sysvmq_send_op sends one, but a batch registers as a
 * waiter once, at its first wait, and stays registered (`*w`, `*waiting`) until it ends:
 * then every message is one blocking msgsnd.  The capacity is read again only for a
 * message larger than those it was read for (`*checked`). */
static long sysvmq_send_next(sysvmq_handle *h, const struct sysvmq_op *op, int flags,
                             long long deadline_ns, sysvmq_token *token, struct sysvmq_waiter *w,
                             int *waiting, size_t *checked)
{
    long r;
    if (*waiting) {
        r = sysvmq_stopped(h, token); /* close() and cancel() wait for a registered batch */
        if (r < 0)
            return r;
        if (op->size > *checked) {
            r = sysvmq_check_queue(h, op->size, 1);
            if (r < 0)
                return r;
            *checked = op->size;
        }
        return sysvmq_attempt_as(w, op, flags, deadline_ns);
    }
    r = sysvmq_attempt(op, flags | IPC_NOWAIT);
    if (r != -EAGAIN)
        return r;
    r = sysvmq_check_queue(h, op->size, 1); /* as sysvmq_send_op: too large before full */
    if (r < 0)
        return r;
    if (flags & IPC_NOWAIT)
        return -EAGAIN;
    *checked = op->size;
    if (deadline_ns >= 0 && sysvmq_monotonic_ns() >= deadline_ns)
        return -ETIMEDOUT;
    r = sysvmq_enter(w, h, token, deadline_ns, 0);
    if (r < 0)
        return r;
    *waiting = 1;
    return sysvmq_attempt_as(w, op, flags, deadline_ns);
}

static int sysvmq_send_many(sysvmq_handle *h, long mtype, const char *data, const size_t *lens,
                            size_t count, int flags, long long deadline_ns, sysvmq_token *token,
                            size_t *sent)
{
    long stack[1 + SYSVMQ_STACK_PAYLOAD / sizeof(long)];
    struct sysvmq_op op;
    struct sysvmq_waiter w;
    int waiting = 0;
    size_t i, offset = 0, largest = 0, checked = 0;
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
        r = sysvmq_send_next(h, &op, flags, deadline_ns, token, &w, &waiting, &checked);
        if (r < 0)
            break;
        offset += lens[i];
        *sent = i + 1;
    }
    if (waiting)
        sysvmq_leave(&w);
    if ((void *)op.buf != (void *)stack)
        free(op.buf);
    return r < 0 ? (int)r : 0;
}

static int sysvmq_put(sysvmq_handle *h, long mtype, const char *data, size_t len)
{
    return sysvmq_send(h, mtype, data, len, 0, -1, NULL);
}

static long sysvmq_receive_many_once(sysvmq_batch *b, size_t cap, long msgtyp, int flags,
                                     long long deadline_ns, sysvmq_token *token, size_t max_count)
{
    const size_t header = offsetof(struct sysvmq_msgbuf, mtext);
    sysvmq_handle *h = b->handle;
    struct sysvmq_op op;
    size_t n = 0, pos = 0;
    long r;
    sysvmq_record_held_count(&b->held, 0);
    if (max_count > b->slots)
        max_count = b->slots;
    while (n < max_count) {
        pos = (pos + sizeof(long) - 1) / sizeof(long) * sizeof(long);
        if (pos > b->outcap || b->outcap - pos < header + cap)
            break;
        sysvmq_receiving(&op, h, (struct sysvmq_msgbuf *)(void *)(b->out + pos), cap, msgtyp);
        if (n == 0) {
            r = sysvmq_receive_op(h, op.buf, cap, msgtyp, flags, deadline_ns, token);
            if (r < 0)
                return r;
        } else {
            r = sysvmq_attempt(&op, flags | IPC_NOWAIT);
            if (r < 0)
                break; /* whatever stopped the batch is reported by the next call */
        }
        b->offsets[n] = pos + header;
        b->lens[n] = (size_t)r;
        b->types[n] = op.buf->mtype;
        pos += header + (size_t)r;
        sysvmq_record_held_count(&b->held, ++n);
    }
    return n > 0 ? (long)n : -EINVAL;
}

static long sysvmq_receive_many(sysvmq_batch *b, size_t cap, long msgtyp, int flags,
                                long long deadline_ns, sysvmq_token *token, size_t max_count)
{
    sysvmq_receive_begins();
    return sysvmq_receive_ends(sysvmq_receive_many_once(b, cap, msgtyp, flags, deadline_ns, token, max_count));
}

/* Send one message a caller could not be handed (an exception on its way out, or a
 * thread the exiting process may stop) back to the end of queue `id`, without waiting on
 * a handle (it may be closed by now): retried for up to SYSVMQ_GIVE_BACK_NS while the
 * queue is full. */
static int sysvmq_return_to_queue(int id, struct sysvmq_msgbuf *buf, size_t len)
{
    struct sysvmq_op op;
    long long deadline = sysvmq_monotonic_ns() + SYSVMQ_GIVE_BACK_NS;
    long r;
    op.send = 1;
    op.id = id;
    op.buf = buf;
    op.size = len;
    op.msgtyp = 0;
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
    struct sysvmq_msgbuf *buf = sysvmq_send_buffer(stack, len);
    int r;
    if (buf == NULL)
        return -ENOMEM;
    buf->mtype = mtype;
    memcpy(buf->mtext, data, len);
    r = sysvmq_return_to_queue(h->id, buf, len);
    if ((void *)buf != (void *)stack)
        free(buf);
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
