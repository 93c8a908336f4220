/* The C floor for bench/throughput.py: the same system calls with no language around them.
 *
 *   ref pairs ID SIZE COUNT         send+receive COUNT times in one process
 *   ref batch ID SIZE COUNT BATCH   COUNT messages, BATCH sends then BATCH receives at a time
 *   ref produce ID SIZE COUNT       send COUNT messages of type 1, then one of type 2
 *   ref consume ID                  receive until a message of type 2 arrives (timed from the first)
 *   ref ping ID COUNT               send type 1, wait for type 2, COUNT times
 *   ref pong ID                     answer each type 1 with type 2 until type 3 arrives
 * Each prints the seconds its loop took.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/msg.h>
#include <time.h>

struct msg {
    long mtype;
    char mtext[1 << 20];
};

static struct msg out, in;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void check(long r, const char *what)
{
    if (r < 0) {
        perror(what);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    const char *mode;
    int id;
    double start;
    long i, j;
    if (argc < 3)
        return 2;
    mode = argv[1];
    id = atoi(argv[2]);
    memset(out.mtext, 'x', sizeof out.mtext);
    out.mtype = 1;
    if (strcmp(mode, "pairs") == 0) {
        size_t size = strtoul(argv[3], NULL, 10);
        long count = atol(argv[4]);
        start = now();
        for (i = 0; i < count; i++) {
            check(msgsnd(id, &out, size, 0), "msgsnd");
            check(msgrcv(id, &in, sizeof in.mtext, 0, 0), "msgrcv");
        }
    } else if (strcmp(mode, "batch") == 0) {
        size_t size = strtoul(argv[3], NULL, 10);
        long count = atol(argv[4]), batch = atol(argv[5]);
        start = now();
        for (i = 0; i < count; i += batch) {
            for (j = 0; j < batch; j++)
                check(msgsnd(id, &out, size, 0), "msgsnd");
            for (j = 0; j < batch; j++)
                check(msgrcv(id, &in, sizeof in.mtext, 0, j ? IPC_NOWAIT : 0), "msgrcv");
        }
    } else if (strcmp(mode, "produce") == 0) {
        size_t size = strtoul(argv[3], NULL, 10);
        long count = atol(argv[4]);
        start = now();
        for (i = 0; i < count; i++)
            check(msgsnd(id, &out, size, 0), "msgsnd");
        out.mtype = 2;
        check(msgsnd(id, &out, 0, 0), "msgsnd");
    } else if (strcmp(mode, "consume") == 0) {
        check(msgrcv(id, &in, sizeof in.mtext, 0, 0), "msgrcv"); /* the clock starts at the first */
        start = now();
        while (in.mtype != 2)
            check(msgrcv(id, &in, sizeof in.mtext, 0, 0), "msgrcv");
    } else if (strcmp(mode, "ping") == 0) {
        long count = atol(argv[3]);
        start = now();
        for (i = 0; i < count; i++) {
            out.mtype = 1;
            check(msgsnd(id, &out, 8, 0), "msgsnd");
            check(msgrcv(id, &in, sizeof in.mtext, 2, 0), "msgrcv");
        }
        out.mtype = 3;
        check(msgsnd(id, &out, 0, 0), "msgsnd");
    } else if (strcmp(mode, "pong") == 0) {
        start = now();
        for (;;) {
            check(msgrcv(id, &in, sizeof in.mtext, -3, 0), "msgrcv");
            if (in.mtype == 3)
                break;
            out.mtype = 2;
            check(msgsnd(id, &out, 8, 0), "msgsnd");
        }
    } else {
        return 2;
    }
    printf("%.9f\n", now() - start);
    return 0;
}
