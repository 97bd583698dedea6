/* pyvfio cdefs: <linux/vfio_zdev.h>, the s390 zPCI device info capabilities of VFIO, Linux 7.3
 * (Debian linux-libc-dev 7.3.4-1~bpo13+1), x86_64 LP64.
 * Layouts are checked against the 6.12 and the 7.3 headers by tools/layoutcheck.py.
 * The capability ids (VFIO_DEVICE_INFO_CAP_ZPCI_*) are in vfio.h, which must be loaded first.
 * Same rules as vfio.h: complete layouts, fixed-width types, integer #defines only.
 */

struct vfio_device_info_cap_zpci_base {
    struct vfio_info_cap_header header;
    uint64_t start_dma;
    uint64_t end_dma;
    uint16_t pchid;
    uint16_t vfn;
    uint16_t fmb_length;
    uint8_t pft;
    uint8_t gid;
    uint32_t fh;
    uint32_t ccdf_err_length;  /* not in 6.12 (was tail padding; size 40 in both) */
};

struct vfio_device_info_cap_zpci_group {
    struct vfio_info_cap_header header;
    uint64_t dasm;
    uint64_t msi_addr;
    uint64_t flags;
    uint16_t mui;
    uint16_t noi;
    uint16_t maxstbl;
    uint8_t version;
    uint8_t reserved;
    uint16_t imaxstbl;
};
#define VFIO_DEVICE_INFO_ZPCI_FLAG_REFRESH 1

struct vfio_device_info_cap_zpci_util {
    struct vfio_info_cap_header header;
    uint32_t size;
    uint8_t util_str[];
};

struct vfio_device_info_cap_zpci_pfip {
    struct vfio_info_cap_header header;
    uint32_t size;
    uint8_t pfip[];
};
