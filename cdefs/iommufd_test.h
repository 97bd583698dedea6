/* pyvfio cdefs: drivers/iommu/iommufd/iommufd_test.h of Linux 7.3, x86_64 LP64.
 * A kernel-internal test header, NOT shipped in linux-libc-dev: the ABI of IOMMU_TEST_CMD, which
 * exists only in kernels built with CONFIG_IOMMUFD_TEST (the VM lane's built kernel).
 * tools/layoutcheck.py leaves it out of the linux-libc-dev comparison.  Same rules as iommufd.h;
 * the request number is pyvfio.uapi.TEST_IOCTLS["IOMMU_TEST_CMD"] = _IO(';', 0x80 + 32).
 * The union is as large as its largest member (dirty: 48 bytes) in every release since 6.8, so
 * members added after 6.12 (check_dev_cache, trigger_vevent, pasid_*, dmabuf_*) do not change the
 * layout.  Items marked "not in 6.12" came later; 6.12's MOCK_FLAGS_DEVICE_HUGE_IOVA (0x2) is gone
 * in 7.3 (the mock page table type moved into struct iommu_hwpt_selftest.pagetable_type).
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
    IOMMU_TEST_OP_TRIGGER_IOPF = 15,
    IOMMU_TEST_OP_DEV_CHECK_CACHE = 16,     /* not in 6.12 */
    IOMMU_TEST_OP_TRIGGER_VEVENT = 17,      /* not in 6.12 */
    IOMMU_TEST_OP_PASID_ATTACH = 18,        /* not in 6.12 */
    IOMMU_TEST_OP_PASID_REPLACE = 19,       /* not in 6.12 */
    IOMMU_TEST_OP_PASID_DETACH = 20,        /* not in 6.12 */
    IOMMU_TEST_OP_PASID_CHECK_HWPT = 21,    /* not in 6.12 */
    IOMMU_TEST_OP_DMABUF_GET = 22,          /* not in 6.12 */
    IOMMU_TEST_OP_DMABUF_REVOKE = 23        /* not in 6.12 */
};

enum {
    MOCK_IOMMUPT_DEFAULT = 0,  /* not in 6.12 */
    MOCK_IOMMUPT_HUGE = 1      /* not in 6.12 */
};

enum {
    MOCK_APERTURE_START = 0x1000000,  /* 1UL << 24 */
    MOCK_APERTURE_LAST = 0x7fffffff,  /* (1UL << 31) - 1 */
    MOCK_PAGE_SIZE = 2048,            /* not in 6.12 */
    MOCK_HUGE_PAGE_SIZE = 1048576     /* 512 * MOCK_PAGE_SIZE; not in 6.12 */
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
    MOCK_FLAGS_DEVICE_PASID = 0x4     /* not in 6.12 */
};

enum {
    MOCK_NESTED_DOMAIN_IOTLB_ID_MAX = 3,
    MOCK_NESTED_DOMAIN_IOTLB_NUM = 4
};

enum {
    MOCK_DEV_CACHE_ID_MAX = 3,  /* not in 6.12 */
    MOCK_DEV_CACHE_NUM = 4      /* not in 6.12 */
};

#define IOMMU_TEST_PASID_RESERVED 1024  /* not in 6.12 */

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
        struct {
            uint32_t id;
            uint32_t cache;
        } check_dev_cache;      /* not in 6.12 */
        struct {
            uint32_t dev_id;
        } trigger_vevent;       /* not in 6.12 */
        struct {
            uint32_t pasid;
            uint32_t pt_id;     /* @id is the stdev_id */
        } pasid_attach;         /* not in 6.12 */
        struct {
            uint32_t pasid;
            uint32_t pt_id;
        } pasid_replace;        /* not in 6.12 */
        struct {
            uint32_t pasid;
        } pasid_detach;         /* not in 6.12 */
        struct {
            uint32_t pasid;
            uint32_t hwpt_id;
        } pasid_check;          /* not in 6.12 */
        struct {
            uint32_t length;
            uint32_t open_flags;
        } dmabuf_get;           /* not in 6.12 */
        struct {
            int32_t dmabuf_fd;
            uint32_t revoked;
        } dmabuf_revoke;        /* not in 6.12 */
    };
    uint32_t last;
};

#define MOCK_PASID_WIDTH 20  /* not in 6.12 */

/* IOMMU_GET_HW_INFO of a mock device */
#define IOMMU_HW_INFO_TYPE_SELFTEST 0xfeedbeef
#define IOMMU_HW_INFO_SELFTEST_REGVAL 0xdeadbeef

struct iommu_test_hw_info {
    uint32_t flags;
    uint32_t test_reg;
};

/* A mock nested (or, on 7.3, paging) HWPT: IOMMU_HWPT_ALLOC data_type */
#define IOMMU_HWPT_DATA_SELFTEST 0xdead
#define IOMMU_TEST_IOTLB_DEFAULT 0xbadbeef
#define IOMMU_TEST_DEV_CACHE_DEFAULT 0xbaddad  /* not in 6.12 */

struct iommu_hwpt_selftest {
    uint32_t iotlb;
    uint32_t pagetable_type;  /* not in 6.12 (the struct was 4 bytes) */
};

#define IOMMU_HWPT_INVALIDATE_DATA_SELFTEST 0xdeadbeef
#define IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID 0xdadbeef

#define IOMMU_TEST_INVALIDATE_FLAG_ALL 0x1

struct iommu_hwpt_invalidate_selftest {
    uint32_t flags;
    uint32_t iotlb_id;
};

/* The mock vIOMMU (not in 6.12) */
#define IOMMU_VIOMMU_TYPE_SELFTEST 0xdeadbeef

struct iommu_viommu_selftest {
    uint32_t in_data;
    uint32_t out_data;
    uint64_t out_mmap_offset;
    uint64_t out_mmap_length;
};

#define IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST 0xdeadbeef
#define IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST_INVALID 0xdadbeef

struct iommu_viommu_invalidate_selftest {
    uint32_t flags;
    uint32_t vdev_id;
    uint32_t cache_id;
};

#define IOMMU_VEVENTQ_TYPE_SELFTEST 0xbeefbeef

struct iommu_viommu_event_selftest {
    uint32_t virt_id;
};

#define IOMMU_HW_QUEUE_TYPE_SELFTEST 0xdeadbeef
#define IOMMU_TEST_HW_QUEUE_MAX 2
