/* Test and benchmark workload: makes an exact number of syscalls of known kinds.
 *
 *   sysloop getppid N            N getppid calls
 *   sysloop threads T N          T threads, each N getppid calls
 *   sysloop fork C N             C forked children, each N getppid calls
 *   sysloop getpid N             N getpid calls (the bystander's syscall)
 *   sysloop getsid N             N getsid calls: a call neither runc nor busybox makes
 *   sysloop mkdir PATH           mkdir(PATH); exits with its errno (0 on success)
 *   sysloop chown PATH UID       chown(PATH, UID, -1); exits with its errno
 *   sysloop bind PORT            binds TCP 127.0.0.1:PORT and exits with its errno
 *   sysloop drop UID CMD ARGS..  setgroups(0), setgid(UID), setuid(UID), then execs CMD
 *   sysloop nnp CMD ARGS..       sets no_new_privs, then execs CMD
 *   sysloop hold N MS            N getppid calls, then sleeps MS milliseconds
 *   sysloop serve PORT           TCP server on 127.0.0.1:PORT answering "pong\n" to each connection
 *   sysloop sleep MS             sleep
 *   sysloop bench N              N getppid calls, then prints the loop's duration: "ns=<n>"
 *   sysloop setuid-bench N FILE  N setuid(0) calls (as root: N audited CAP_SETUID checks),
 *                                then writes the loop's duration to FILE: "ns=<n>"
 *   sysloop tsync T N            installs its own allow-all seccomp filter with TSYNC while T
 *                                threads wait, then each thread makes N getppid calls; before
 *                                the install every thread and main make one getpid and main a
 *                                failing probe, seccomp(SET_MODE_FILTER, NULL)
 *   sysloop clock N              N reads of the clock through libc (the vDSO answers them):
 *                                clock_gettime, gettimeofday, time, clock_getres, getcpu
 *   sysloop clock-raw N          the same N times as real syscalls, as on a host whose vDSO
 *                                can't read the clock
 *   sysloop uring                tries io_uring_setup; on any error falls back to a pipe and
 *                                exits 0 (as MariaDB does when io_uring is denied)
 *   sysloop meet CALL N SELF PEER  runs beside a peer: creates SELF.ready, waits for
 *                                PEER.ready, makes N CALL (getppid|getpid) calls, creates
 *                                SELF.done and waits for PEER.done, so the two provably run
 *                                at once and each outlives the other's calls; exits 3 when
 *                                the peer doesn't show up within 60 s
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long count;

/* Reads the clock n times each way; raw goes around the vDSO. Fails (1) if a read fails. */
static int clocks(int raw, long n) {
    struct timespec ts;
    struct timeval tv;
    unsigned cpu = 0, node = 0;
    for (long i = 0; i < n; i++) {
        long bad = raw ? syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts) |
                             syscall(SYS_gettimeofday, &tv, NULL) |
                             (syscall(SYS_time, NULL) == -1) |
                             syscall(SYS_clock_getres, CLOCK_MONOTONIC, &ts) |
                             syscall(SYS_getcpu, &cpu, &node, NULL)
                       : clock_gettime(CLOCK_MONOTONIC, &ts) | gettimeofday(&tv, NULL) |
                             (time(NULL) == -1) | clock_getres(CLOCK_MONOTONIC, &ts) |
                             getcpu(&cpu, &node);
        if (bad) {
            perror("reading the clock");
            return 1;
        }
    }
    return 0;
}

/* io_uring if the kernel and the filter allow it, a pipe otherwise. */
static int uring(void) {
    long params[15] = {0};
    long fd = syscall(SYS_io_uring_setup, 4, params);
    if (fd < 0) {
        fprintf(stderr, "io_uring_setup: %s; using a pipe instead\n", strerror(errno));
        int p[2];
        char c = 'x';
        if (pipe(p) || write(p[1], &c, 1) != 1 || read(p[0], &c, 1) != 1) return 1;
        return 0;
    }
    close((int)fd);
    return 0;
}

static void loop_nr(long nr, long n) {
    for (long i = 0; i < n; i++)
        syscall(nr, 0L);
}

static void *thread_main(void *arg) {
    (void)arg;
    loop_nr(SYS_getppid, count);
    return NULL;
}

static pthread_barrier_t ready, installed;

static void touch(const char *base, const char *suffix) {
    char path[4096];
    snprintf(path, sizeof path, "%s%s", base, suffix);
    int fd = open(path, O_CREAT | O_WRONLY, 0644);
    if (fd >= 0) close(fd);
}

/* Waits up to 60 s for BASE SUFFIX to exist. */
static int await(const char *base, const char *suffix) {
    char path[4096];
    snprintf(path, sizeof path, "%s%s", base, suffix);
    struct timespec tick = {0, 1000000L}, start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (access(path, F_OK) != 0) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec >= 60) return 0;
        nanosleep(&tick, NULL);
    }
    return 1;
}

static int meet(long nr, long n, const char *self, const char *peer) {
    touch(self, ".ready");
    if (!await(peer, ".ready")) return 3;
    loop_nr(nr, n);
    touch(self, ".done");
    return await(peer, ".done") ? 0 : 3;
}

static void *tsync_main(void *arg) {
    (void)arg;
    syscall(SYS_getpid);
    pthread_barrier_wait(&ready);
    pthread_barrier_wait(&installed);
    loop_nr(SYS_getppid, count);
    return NULL;
}

static int tsync(int t, long n) {
    pthread_t tids[64];
    if (t > 64) t = 64;
    count = n;
    pthread_barrier_init(&ready, NULL, t + 1);
    pthread_barrier_init(&installed, NULL, t + 1);
    for (int i = 0; i < t; i++) pthread_create(&tids[i], NULL, tsync_main, NULL);
    pthread_barrier_wait(&ready);
    syscall(SYS_getpid);
    /* A probe, as runc makes them: not an install. */
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, NULL) == 0) return 3;
    struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog prog = {.len = 1, .filter = &allow};
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0) {
        perror("seccomp");
        return 1;
    }
    pthread_barrier_wait(&installed);
    for (int i = 0; i < t; i++) pthread_join(tids[i], NULL);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3 && !(argc == 2 && !strcmp(argv[1], "uring"))) {
        fprintf(stderr, "usage: sysloop getppid|getpid|getsid|threads|fork|meet|mkdir|chown|bind|drop|serve|sleep|hold|bench|setuid-bench|tsync|clock|clock-raw|uring ARGS\n");
        return 2;
    }
    const char *mode = argv[1];
    if (!strcmp(mode, "getppid") || !strcmp(mode, "getpid") || !strcmp(mode, "getsid")) {
        long nr = !strcmp(mode, "getppid") ? SYS_getppid
                  : !strcmp(mode, "getpid") ? SYS_getpid
                                            : SYS_getsid;
        loop_nr(nr, atol(argv[2]));
    } else if ((!strcmp(mode, "clock") || !strcmp(mode, "clock-raw")) && argc == 3) {
        return clocks(!strcmp(mode, "clock-raw"), atol(argv[2]));
    } else if (!strcmp(mode, "uring")) {
        return uring();
    } else if (!strcmp(mode, "meet") && argc == 6) {
        return meet(!strcmp(argv[2], "getpid") ? SYS_getpid : SYS_getppid, atol(argv[3]), argv[4],
                    argv[5]);
    } else if (!strcmp(mode, "threads") && argc == 4) {
        int t = atoi(argv[2]);
        count = atol(argv[3]);
        pthread_t tids[64];
        if (t > 64) t = 64;
        for (int i = 0; i < t; i++) pthread_create(&tids[i], NULL, thread_main, NULL);
        for (int i = 0; i < t; i++) pthread_join(tids[i], NULL);
    } else if (!strcmp(mode, "tsync") && argc == 4) {
        return tsync(atoi(argv[2]), atol(argv[3]));
    } else if (!strcmp(mode, "fork") && argc == 4) {
        int c = atoi(argv[2]);
        long n = atol(argv[3]);
        for (int i = 0; i < c; i++) {
            pid_t pid = fork();
            if (pid == 0) {
                loop_nr(SYS_getppid, n);
                _exit(0);
            }
        }
        while (wait(NULL) > 0) {}
    } else if (!strcmp(mode, "mkdir")) {
        /* Exit status is the errno (1 = EPERM), so a profile missing write(2) can't hide it. */
        return mkdir(argv[2], 0755) == 0 ? 0 : errno;
    } else if (!strcmp(mode, "serve")) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
        addr.sin_addr.s_addr = htonl(INADDR_ANY);
        if (bind(s, (struct sockaddr *)&addr, sizeof addr) || listen(s, 16)) {
            perror("serve");
            return 1;
        }
        for (;;) {
            int c = accept(s, NULL, NULL);
            if (c < 0) continue;
            char buf[64];
            (void)!read(c, buf, sizeof buf);
            (void)!write(c, "pong\n", 5);
            close(c);
        }
    } else if (!strcmp(mode, "bench")) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        loop_nr(SYS_getppid, atol(argv[2]));
        clock_gettime(CLOCK_MONOTONIC, &b);
        printf("ns=%lld\n", (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec));
    } else if (!strcmp(mode, "setuid-bench") && argc == 4) {
        struct timespec a, b;
        long n = atol(argv[2]);
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (long i = 0; i < n; i++) {
            if (syscall(SYS_setuid, 0) != 0) {
                return errno;
            }
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        FILE *f = fopen(argv[3], "w");
        if (!f) {
            return errno;
        }
        fprintf(f, "ns=%lld\n", (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec));
        return fclose(f) == 0 ? 0 : errno;
    } else if (!strcmp(mode, "chown") && argc == 4) {
        /* Exit status is the errno: EPERM without CAP_CHOWN. */
        return chown(argv[2], atoi(argv[3]), -1) == 0 ? 0 : errno;
    } else if (!strcmp(mode, "bind") && argc == 3) {
        /* Binds a TCP port on 127.0.0.1 and exits: the errno if it can't. */
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return bind(s, (struct sockaddr *)&addr, sizeof addr) == 0 ? 0 : errno;
    } else if (!strcmp(mode, "drop") && argc >= 4) {
        /* Becomes user and group UID (no supplementary groups), then execs the rest. */
        gid_t id = atoi(argv[2]);
        if (setgroups(0, NULL) || setgid(id) || setuid(id)) return errno;
        execv(argv[3], argv + 3);
        return errno;
    } else if (!strcmp(mode, "nnp") && argc >= 3) {
        /* Sets no_new_privs, then execs the rest. */
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) return errno;
        execv(argv[2], argv + 2);
        return errno;
    } else if (!strcmp(mode, "hold") && argc == 4) {
        /* N getppid calls, then alive for MS milliseconds: a container that stays up. */
        loop_nr(SYS_getppid, atol(argv[2]));
        struct timespec ts = {atol(argv[3]) / 1000, (atol(argv[3]) % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    } else if (!strcmp(mode, "sleep")) {
        struct timespec ts = {atol(argv[2]) / 1000, (atol(argv[2]) % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    } else {
        fprintf(stderr, "sysloop: unknown mode %s\n", mode);
        return 2;
    }
    return 0;
}
