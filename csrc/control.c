/* msgctl: stats, changes, removal, the kernel's limits; ftok. */

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

static int sysvmq_info(int cmd, sysvmq_msginfo *out)
{
#if SYSVMQ_HAS_IPC_INFO
    struct msginfo info;
    int r = msgctl(0, cmd, (struct msqid_ds *)(void *)&info);
    if (r < 0)
        return -errno;
    out->msgpool = info.msgpool;
    out->msgmap = info.msgmap;
    out->msgmax = info.msgmax;
    out->msgmnb = info.msgmnb;
    out->msgmni = info.msgmni;
    out->msgssz = info.msgssz;
    out->msgtql = info.msgtql;
    out->msgseg = info.msgseg;
    return r;
#else
    (void)cmd;
    (void)out;
    return -ENOSYS;
#endif
}

static int sysvmq_ftok(const char *path, int proj_id, key_t *key)
{
    errno = 0;
    *key = ftok(path, proj_id);
    return *key == (key_t)-1 && errno != 0 ? -errno : 0;
}
