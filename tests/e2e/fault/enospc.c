/*
 * A full disk without mounting one, for tests/e2e/reliability.rs where mounting a small
 * tmpfs is refused (not root, no CAP_SYS_ADMIN, a container). Preloaded into the agent
 * (LD_PRELOAD): while the file named by FAULTLINE_TEST_FULL_WHILE exists, every call that
 * would allocate blocks in the directory FAULTLINE_TEST_FULL_DIR (write, pwrite, writev,
 * pwritev, fallocate) fails with ENOSPC, as the kernel answers on a full file system.
 * Creating, renaming, linking and removing files still work there, as they do on a full
 * disk with inodes left. Other files (stderr, sockets, the logs) are untouched.
 *
 * Built by the test with `cc -shared -fPIC -o libenospc.so enospc.c -ldl`.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

/* Whether `fd` is a file inside the full directory while the disk is "full". */
static int full(int fd) {
    const char *dir = getenv("FAULTLINE_TEST_FULL_DIR");
    const char *flag = getenv("FAULTLINE_TEST_FULL_WHILE");
    if (dir == NULL || flag == NULL || access(flag, F_OK) != 0) {
        return 0;
    }
    char link[64];
    char path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n < 0) {
        return 0;
    }
    path[n] = '\0';
    size_t len = strlen(dir);
    return strncmp(path, dir, len) == 0 && path[len] == '/';
}

#define NEXT(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

ssize_t write(int fd, const void *buf, size_t count) {
    if (count > 0 && full(fd)) {
        errno = ENOSPC;
        return -1;
    }
    return NEXT(write)(fd, buf, count);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
    if (count > 0 && full(fd)) {
        errno = ENOSPC;
        return -1;
    }
    return NEXT(pwrite)(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off64_t offset) {
    if (count > 0 && full(fd)) {
        errno = ENOSPC;
        return -1;
    }
    return NEXT(pwrite64)(fd, buf, count, offset);
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt) {
    if (iovcnt > 0 && full(fd)) {
        errno = ENOSPC;
        return -1;
    }
    return NEXT(writev)(fd, iov, iovcnt);
}

ssize_t pwritev(int fd, const struct iovec *iov, int iovcnt, off_t offset) {
    if (iovcnt > 0 && full(fd)) {
        errno = ENOSPC;
        return -1;
    }
    return NEXT(pwritev)(fd, iov, iovcnt, offset);
}

int fallocate(int fd, int mode, off_t offset, off_t len) {
    if (full(fd)) {
        errno = ENOSPC;
        return -1;
    }
    return NEXT(fallocate)(fd, mode, offset, len);
}
