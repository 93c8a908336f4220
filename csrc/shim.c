/* The C side of sysvmq._sysvmq_cffi; api.h is its contract.
 *
 * Each operation is one call from Python.  Blocking calls try once with
 * IPC_NOWAIT; only when that would block do they register as a waiter, so that
 * a deadline (the helper thread), close() or a cancellation can interrupt the
 * system call with the wake-up signal.  Every signal is sent only right after
 * checking that its handler is still sysvmq's; a call that no signal can reach
 * waits by polling instead.
 *
 * The parts are included into one translation unit, so that every function stays
 * static and the compiler may inline across them; each uses only the parts before it
 * (wait.c declares ahead the one function of ops.c it needs, and wakeup.c sysvmq_init).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "compat.h"
#include "types.h"
#include "wakeup.c"
#include "waiters.c"
#include "finish.c"
#include "wait.c"
#include "ops.c"
#include "control.c"
