/* What differs between platforms, so that the rest of the shim does not: system
 * headers, the capability flags (SYSVMQ_HAS_X says whether SYSVMQ_X is the real
 * constant), the clock, and the struct fields each platform spells its own way. */
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

/* A layout fact checked at compile time (C11, or a negative array size before it). */
#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define SYSVMQ_STATIC_ASSERT(cond, why) _Static_assert(cond, why)
#else
#define SYSVMQ_STATIC_ASSERT(cond, why) ((void)sizeof(char[(cond) ? 1 : -1]))
#endif

/* For the path of a call that has to wait: kept out of line, so that the fast path of each
 * operation (a first attempt that needs no wait) stays small enough to be inlined into its
 * cffi wrapper; the wait itself costs a system call or more. */
#if defined(__GNUC__)
#define SYSVMQ_OUT_OF_LINE __attribute__((noinline))
#else
#define SYSVMQ_OUT_OF_LINE
#endif

/* FreeBSD defines IPC_INFO too, but its struct msginfo is the kernel's own. */
#if defined(__linux__) && defined(IPC_INFO)
#define SYSVMQ_HAS_IPC_INFO 1
#define SYSVMQ_IPC_INFO IPC_INFO
#else
#define SYSVMQ_HAS_IPC_INFO 0
#define SYSVMQ_IPC_INFO 0
#endif

#if defined(__linux__) && defined(MSG_INFO)
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

/* 0, or -EINTR if a signal handler ran before the time was up. */
static int sysvmq_sleep_ns(long long ns)
{
    struct timespec ts = sysvmq_timespec(ns);
    return nanosleep(&ts, NULL) < 0 ? -errno : 0;
}

static long long sysvmq_perm_key(const struct msqid_ds *ds)
{
#if defined(__linux__)
    return (long long)ds->msg_perm.__key;
#elif defined(__APPLE__) || defined(__NetBSD__)
    return (long long)ds->msg_perm._key;
#else
    return (long long)ds->msg_perm.key;
#endif
}

static unsigned long long sysvmq_queue_bytes(const struct msqid_ds *ds)
{
#if defined(__linux__)
    return (unsigned long long)ds->__msg_cbytes;
#elif defined(__NetBSD__)
    return (unsigned long long)ds->_msg_cbytes;
#else
    return (unsigned long long)ds->msg_cbytes;
#endif
}
