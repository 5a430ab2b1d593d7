/* Slow syncs for `cargo bench --bench messaging -- slowsync`: loaded with
 * LD_PRELOAD, every fsync and fdatasync of the process does the real call
 * and then sleeps 1 ms, as on a disk whose syncs are slow. It counts its
 * calls, so the bench can tell it is active and how many syncs a part
 * made (`roost_slowsync_calls`). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <time.h>

static atomic_long calls;

static void slow(void) {
    struct timespec left = {0, 1000000};
    while (nanosleep(&left, &left) != 0 && errno == EINTR) {
    }
    atomic_fetch_add(&calls, 1);
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    int saved, r = real(fd);
    saved = errno;
    slow();
    errno = saved;
    return r;
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    int saved, r = real(fd);
    saved = errno;
    slow();
    errno = saved;
    return r;
}

long roost_slowsync_calls(void) { return atomic_load(&calls); }
