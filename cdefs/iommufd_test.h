/* pyvfio cdefs: drivers/iommu/iommufd/iommufd_test.h of Linux 6.12, x86_64 LP64.
 * A kernel-internal test header, NOT shipped in linux-libc-dev: the ABI of IOMMU_TEST_CMD, which
 * exists only in kernels built with CONFIG_IOMMUFD_TEST (the VM lane's built kernel).
 * tools/layoutcheck.py leaves it out of the linux-libc-dev comparison.  Same rules as iommufd.h;
 * the request number is pyvfio.uapi.TEST_IOCTLS["IOMMU_TEST_CMD"] = _IO(';', 0x80 + 32).
 * The union is as large as its largest member (dirty: 48 bytes) in every release since 6.8, so
 * members added later (dev_cache, vevent, pasid_*) do not change the layout.
 */

enum {
    IOMMU_TEST_OP_ADD_RESERVED = 1,
    IOMMU_TEST_OP_MOCK_DOMAIN = 2,
    IOMMU_TEST_OP_MD_CHECK_MAP = 3,
    IOMMU_TEST_OP_MD_CHECK_REFS = 4,
    IOMMU_TEST_OP_CREATE_ACCESS = 5,
    IOMMU_TEST_OP_DESTROY_ACCESS_PAGES = 6,
    IOMMU_TEST_OP_ACCESS_PAGES = 7,
    IOMMU_TEST_OP_ACCESS_RW = 8,
    IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT = 9,
    IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE = 10,
    IOMMU_TEST_OP_ACCESS_REPLACE_IOAS = 11,
    IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS = 12,
    IOMMU_TEST_OP_DIRTY = 13,
    IOMMU_TEST_OP_MD_CHECK_IOTLB = 14,
    IOMMU_TEST_OP_TRIGGER_IOPF = 15
};

enum {
    MOCK_APERTURE_START = 0x1000000,  /* 1UL << 24 */
    MOCK_APERTURE_LAST = 0x7fffffff   /* (1UL << 31) - 1 */
};

enum {
    MOCK_FLAGS_ACCESS_WRITE = 0x1,
    MOCK_FLAGS_ACCESS_SYZ = 0x10000
};

enum {
    MOCK_ACCESS_RW_WRITE = 0x1,
    MOCK_ACCESS_RW_SLOW_PATH = 0x4
};

enum {
    MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES = 0x1
};

enum {
    MOCK_FLAGS_DEVICE_NO_DIRTY = 0x1,
    MOCK_FLAGS_DEVICE_HUGE_IOVA = 0x2
};

struct iommu_test_cmd {
    uint32_t size;
    uint32_t op;
    uint32_t id;
    uint32_t __reserved;
    union {
        struct {
            uint64_t start;
            uint64_t length;
        } add_reserved;
        struct {
            uint32_t out_stdev_id;
            uint32_t out_hwpt_id;
            uint32_t out_idev_id;  /* the standard iommufd DEVICE object */
        } mock_domain;
        struct {
            uint32_t out_stdev_id;
            uint32_t out_hwpt_id;
            uint32_t out_idev_id;
            uint32_t dev_flags;
        } mock_domain_flags;
        struct {
            uint32_t pt_id;
        } mock_domain_replace;
        struct {
            uint64_t iova;
            uint64_t length;
            uint64_t uptr;
        } check_map;
        struct {
            uint64_t length;
            uint64_t uptr;
            uint32_t refs;
        } check_refs;
        struct {
            uint32_t out_access_fd;
            uint32_t flags;
        } create_access;
        struct {
            uint32_t access_pages_id;
        } destroy_access_pages;
        struct {
            uint32_t flags;
            uint32_t out_access_pages_id;
            uint64_t iova;
            uint64_t length;
            uint64_t uptr;
        } access_pages;
        struct {
            uint64_t iova;
            uint64_t length;
            uint64_t uptr;
            uint32_t flags;
        } access_rw;
        struct {
            uint32_t limit;
        } memory_limit;
        struct {
            uint32_t ioas_id;
        } access_replace_ioas;
        struct {
            uint32_t flags;
            uint64_t iova;
            uint64_t length;
            uint64_t page_size;
            uint64_t uptr;
            uint64_t out_nr_dirty;
        } dirty;
        struct {
            uint32_t id;
            uint32_t iotlb;
        } check_iotlb;
        struct {
            uint32_t dev_id;
            uint32_t pasid;
            uint32_t grpid;
            uint32_t perm;
            uint64_t addr;
        } trigger_iopf;
    };
    uint32_t last;
};
