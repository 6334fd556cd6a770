/* Test workload: i386 syscalls made from 64-bit code with `int 0x80`.
 *
 *   int80 getppid N    one x86_64 getppid, then N i386 getppid calls (i386 number 64, which is
 *                      semget on x86_64); exits 0 when each returned what the x86_64 call did
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define I386_GETPPID 64

/* The kernel zeroes r8-r11 on the way back from int 0x80 in 64-bit mode. */
static long int80(long nr) {
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr) : "memory", "r8", "r9", "r10", "r11");
    return ret;
}

int main(int argc, char **argv) {
    if (argc < 3 || strcmp(argv[1], "getppid") != 0) {
        fprintf(stderr, "usage: int80 getppid N\n");
        return 2;
    }
    long n = atol(argv[2]);
    long parent = getppid();
    for (long i = 0; i < n; i++) {
        long got = int80(I386_GETPPID);
        if (got != parent) {
            fprintf(stderr, "int 0x80 getppid returned %ld, not %ld\n", got, parent);
            return 1;
        }
    }
    return 0;
}
