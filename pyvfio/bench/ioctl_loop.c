/* The C side of pyvfio's benchmarks: the same ioctls as the Python side, in a tight loop.
 *
 * Built at bench time by pyvfio/bench/cloop.py with the project's own struct declarations
 * (pyvfio_uapi.h, generated from the cffi declarations of cdefs/*.h with static asserts on every
 * offset) and the ioctl numbers from pyvfio.uapi passed as -D flags, so both sides issue
 * byte-identical requests.  Prints "<ns per iteration>" on success, "error <errno> <step>" on
 * failure.
 *
 *   ioctl_loop fionread    N
 *   ioctl_loop api         N                          VFIO_GET_API_VERSION on /dev/vfio/vfio
 *   ioctl_loop devinfo     N GROUP BDF                VFIO_DEVICE_GET_INFO (legacy device fd)
 *   ioctl_loop ranges      N                          IOMMU_IOAS_IOVA_RANGES on a fresh IOAS
 *   ioctl_loop map-legacy  N SIZE GROUP BDF           VFIO_IOMMU_MAP_DMA + UNMAP_DMA
 *   ioctl_loop map-iommufd N SIZE CDEV                IOMMU_IOAS_MAP + IOMMU_IOAS_UNMAP (attached)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "pyvfio_uapi.h"

#define IOVA 0x200000ULL

static int fail(const char *step) { printf("error %d %s\n", errno, step); return 1; }

/* CPU time of this thread, as the Python side measures (pyvfio/bench/timing.py:cpu_ns_many):
 * wall time on a loaded machine measures the other processes too. */
static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int legacy_device(const char *group, const char *bdf, int *container) {
    char path[64];
    *container = open("/dev/vfio/vfio", O_RDWR);
    snprintf(path, sizeof path, "/dev/vfio/%s", group);
    int g = open(path, O_RDWR);
    if (*container < 0 || g < 0) return -1;
    if (ioctl(g, REQ_VFIO_GROUP_SET_CONTAINER, container) < 0) return -1;
    if (ioctl(*container, REQ_VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0) return -1;
    return bdf ? ioctl(g, REQ_VFIO_GROUP_GET_DEVICE_FD, bdf) : g;
}

static int iommufd_ioas(const char *cdev, int *iommufd, uint32_t *ioas) {
    *iommufd = open("/dev/iommu", O_RDWR);
    if (*iommufd < 0) return -1;
    struct iommu_ioas_alloc alloc = { .size = sizeof alloc };
    if (ioctl(*iommufd, REQ_IOMMU_IOAS_ALLOC, &alloc) < 0) return -1;
    *ioas = alloc.out_ioas_id;
    if (!cdev) return 0;
    int dev = open(cdev, O_RDWR);
    struct vfio_device_bind_iommufd bind = { .argsz = sizeof bind, .iommufd = *iommufd };
    struct vfio_device_attach_iommufd_pt att = { .argsz = 12, .pt_id = *ioas };
    if (dev < 0 || ioctl(dev, REQ_VFIO_DEVICE_BIND_IOMMUFD, &bind) < 0) return -1;
    return ioctl(dev, REQ_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &att) < 0 ? -1 : dev;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    const char *mode = argv[1];
    long n = atol(argv[2]);
    double t0 = 0, t1 = 0;
    if (!strcmp(mode, "fionread")) {
        int p[2], avail;
        if (pipe(p)) return fail("pipe");
        t0 = now_ns();
        for (long i = 0; i < n; i++) if (ioctl(p[0], FIONREAD, &avail) < 0) return fail("ioctl");
        t1 = now_ns();
    } else if (!strcmp(mode, "api")) {
        int c = open("/dev/vfio/vfio", O_RDWR);
        if (c < 0) return fail("open");
        t0 = now_ns();
        for (long i = 0; i < n; i++) if (ioctl(c, REQ_VFIO_GET_API_VERSION) < 0) return fail("api");
        t1 = now_ns();
    } else if (!strcmp(mode, "devinfo") && argc == 5) {
        int c, d = legacy_device(argv[3], argv[4], &c);
        struct vfio_device_info info = { .argsz = sizeof info };
        if (d < 0) return fail("open device");
        t0 = now_ns();
        for (long i = 0; i < n; i++) {
            info.argsz = sizeof info;
            if (ioctl(d, REQ_VFIO_DEVICE_GET_INFO, &info) < 0) return fail("info");
        }
        t1 = now_ns();
    } else if (!strcmp(mode, "ranges")) {
        int fd; uint32_t ioas;
        struct iommu_iova_range r[8];
        if (iommufd_ioas(NULL, &fd, &ioas) < 0) return fail("ioas");
        struct iommu_ioas_iova_ranges q = { .size = sizeof q, .ioas_id = ioas };
        t0 = now_ns();
        for (long i = 0; i < n; i++) {
            q.num_iovas = 8; q.allowed_iovas = (uintptr_t)r;
            if (ioctl(fd, REQ_IOMMU_IOAS_IOVA_RANGES, &q) < 0) return fail("ranges");
        }
        t1 = now_ns();
    } else if (!strncmp(mode, "map-", 4) && argc >= 5) {
        size_t size = strtoul(argv[3], NULL, 0);
        /* MAP_SHARED, as Python's mmap.mmap(-1, size) (DMABuffer.anonymous): shmem pages */
        void *buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (buf == MAP_FAILED) return fail("mmap");
        /* 4 KiB pages on both sides: a transparent huge page pins 512x faster (cases.py) */
        madvise(buf, size, MADV_NOHUGEPAGE);
        memset(buf, 0, size);
        if (!strcmp(mode, "map-legacy") && argc == 6) {
            int c;
            if (legacy_device(argv[4], NULL, &c) < 0) return fail("container");
            struct vfio_iommu_type1_dma_map m = { .argsz = sizeof m, .flags = 3,
                .vaddr = (uintptr_t)buf, .iova = IOVA, .size = size };
            struct vfio_iommu_type1_dma_unmap u = { .argsz = sizeof u, .iova = IOVA, .size = size };
            t0 = now_ns();
            for (long i = 0; i < n; i++) {
                if (ioctl(c, REQ_VFIO_IOMMU_MAP_DMA, &m) < 0) return fail("map");
                if (ioctl(c, REQ_VFIO_IOMMU_UNMAP_DMA, &u) < 0) return fail("unmap");
            }
            t1 = now_ns();
        } else if (!strcmp(mode, "map-iommufd")) {
            int fd; uint32_t ioas;
            if (iommufd_ioas(argv[4], &fd, &ioas) < 0) return fail("attach");
            struct iommu_ioas_map m = { .size = sizeof m, .ioas_id = ioas,
                .flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
                .user_va = (uintptr_t)buf, .length = size, .iova = IOVA };
            struct iommu_ioas_unmap u = { .size = sizeof u, .ioas_id = ioas, .iova = IOVA, .length = size };
            t0 = now_ns();
            for (long i = 0; i < n; i++) {
                if (ioctl(fd, REQ_IOMMU_IOAS_MAP, &m) < 0) return fail("map");
                if (ioctl(fd, REQ_IOMMU_IOAS_UNMAP, &u) < 0) return fail("unmap");
            }
            t1 = now_ns();
        } else return 2;
    } else return 2;
    printf("%.1f\n", (t1 - t0) / n);
    return 0;
}
