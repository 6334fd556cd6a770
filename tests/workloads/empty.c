/* Test workload for `profile scan`: nothing but the C library's startup and exit. */
int main(void) { return 0; }
