/* Test workload for `profile scan`: the C library's startup and exit (as in empty.c) plus
 * three syscalls neither makes: getppid, getsid (through syscall(), resolved at its call
 * site) and sync. */
#define _GNU_SOURCE
#include <sys/syscall.h>
#include <unistd.h>

int main(void) {
    getppid();
    syscall(SYS_getsid, 0);
    sync();
    return 0;
}
