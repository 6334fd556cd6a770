/* What an attacker inside a container tries, and a benign run that needs the same syscalls
 * with harmless arguments. Each probe prints "NAME errno=E" (0: the call succeeded). */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void *thread_main(void *arg) { return arg; }

/* A child made by a raw clone/clone3 exits at once; the parent reaps it. */
static int raw_clone(long flags, int three) {
    long pid;
    if (three) {
        struct clone_args args;
        memset(&args, 0, sizeof args);
        args.flags = (uint64_t)flags;
        args.exit_signal = SIGCHLD;
        pid = syscall(SYS_clone3, &args, sizeof args);
    } else {
        pid = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
    }
    if (pid == 0) _exit(0);
    if (pid < 0) return errno;
    waitpid((pid_t)pid, 0, 0);
    return 0;
}

static int sock(int family, int type) {
    int fd = socket(family, type, 0);
    if (fd < 0) return errno;
    close(fd);
    return 0;
}

static int probe(const char *name) {
    if (!strcmp(name, "clone3_newuser")) return raw_clone(CLONE_NEWUSER | CLONE_NEWNET, 1);
    if (!strcmp(name, "clone_newuser")) return raw_clone(CLONE_NEWUSER, 0);
    if (!strcmp(name, "clone_newns_net_pid"))
        return raw_clone(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID, 0);
    if (!strcmp(name, "unshare_user")) return unshare(CLONE_NEWUSER) ? errno : 0;
    if (!strcmp(name, "personality_aslr"))
        return personality(ADDR_NO_RANDOMIZE) == -1 ? errno : 0;
    if (!strcmp(name, "socket_vsock")) return sock(40, SOCK_STREAM);
    if (!strcmp(name, "socket_alg")) return sock(38, SOCK_SEQPACKET);
    if (!strcmp(name, "socket_packet")) return sock(17, SOCK_RAW);
    if (!strcmp(name, "socket_netlink")) return sock(16, SOCK_RAW);
    if (!strcmp(name, "ptrace_traceme")) return ptrace(PTRACE_TRACEME, 0, 0, 0) ? errno : 0;
    return -1;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "benign")) {
        /* fork, a thread (glibc tries clone3 first and falls back to clone on ENOSYS), an
         * AF_INET socket, and a personality query. */
        pid_t pid = fork();
        if (pid == 0) _exit(0);
        if (pid < 0 || waitpid(pid, 0, 0) < 0) { perror("fork"); return 1; }
        pthread_t t;
        if (pthread_create(&t, 0, thread_main, 0) || pthread_join(t, 0)) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
        int e = sock(AF_INET, SOCK_STREAM | SOCK_CLOEXEC);
        if (e) { fprintf(stderr, "socket: %s\n", strerror(e)); return 1; }
        if (personality(0xffffffff) == -1) { perror("personality"); return 1; }
        printf("benign ok\n");
        return 0;
    }
    if (argc >= 3 && !strcmp(argv[1], "probe")) {
        for (int i = 2; i < argc; i++) {
            int e = probe(argv[i]);
            if (e < 0) { fprintf(stderr, "unknown probe %s\n", argv[i]); return 2; }
            printf("%s errno=%d\n", argv[i], e);
        }
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "ioctl")) {
        /* N ioctl requests on a pipe: FIONREAD, FIOCLEX, then FIONBIO. */
        static const unsigned long requests[] = {FIONREAD, FIOCLEX, FIONBIO};
        int fds[2], n = argv[2][0] - '0', value = 0;
        if (pipe(fds)) { perror("pipe"); return 1; }
        for (int i = 0; i < n && i < 3; i++) {
            if (ioctl(fds[0], requests[i], &value)) {
                printf("ioctl %#lx errno=%d\n", requests[i], errno);
                return 1;
            }
        }
        printf("ioctl ok\n");
        return 0;
    }
    fprintf(stderr, "usage: attack benign | probe NAME... | ioctl N\n");
    return 2;
}
