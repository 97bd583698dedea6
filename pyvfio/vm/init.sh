#!/bin/busybox sh
# pyvfio VM lane: guest /init (busybox sh), packed into the initramfs by tools/vm/initramfs.py.
#
# Kernel command line words read here:
#   pyvfio.results=DIR   host path of the read-write 9p share (tag "results"); mounted at the
#                        same path inside the guest.  DIR/guest-cmd.sh is the command to run.
#   pyvfio.profile=NAME  informational
#   pyvfio.mode=test|shell
#   pyvfio.bind=BDF,BDF  devices bound to vfio-pci besides the edu devices (taken from their
#                        driver first, e.g. an nvme controller the guest's nvme driver probed)
# Steps: mount proc/sys/dev, insmod the modules carried in the image (Debian kernel), mount the
# host's / read-only over 9p (tag "hostroot") as the new root, tmpfs on /run (the guest's scratch:
# HOME and TMPDIR are /run/tmp; /tmp stays the host's, read-only, so a checkout there is visible),
# bind every edu device (1234:11e8) to vfio-pci, run DIR/guest-cmd.sh chrooted, write its exit
# status to DIR/exit-status and power off.  Any failure powers off too; the host then reports
# that no exit status was written.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

say() { echo "pyvfio-vm: $*"; }
die() {
    say "FATAL: $*"
    [ -n "$RESULTS_MOUNTED" ] && echo 125 > "/newroot$RESULTS/exit-status"
    sync
    poweroff -f
}
uptime_s() { cut -d' ' -f1 /proc/uptime; }

MODE=test
for word in $(cat /proc/cmdline); do
    case "$word" in
        pyvfio.results=*) RESULTS=${word#*=} ;;
        pyvfio.profile=*) PROFILE=${word#*=} ;;
        pyvfio.mode=*) MODE=${word#*=} ;;
        pyvfio.bind=*) BIND=$(echo "${word#*=}" | tr ',' ' ') ;;
    esac
done
[ -n "$RESULTS" ] || die "no pyvfio.results= on the kernel command line"

while read -r mod; do
    [ -n "$mod" ] && { insmod "/modules/$mod" || say "insmod $mod failed"; }
done < /modules/order

NINEP=trans=virtio,version=9p2000.L,msize=512000
mount -t 9p -o "$NINEP,ro,cache=loose" hostroot /newroot || die "cannot mount the host's / (9p tag hostroot)"
mount -t tmpfs tmpfs /newroot/run || die "cannot mount tmpfs on /run"
mkdir -p /newroot/run/tmp && chmod 1777 /newroot/run/tmp
# after the tmpfs mount, so a results directory under /run stays visible
mkdir -p "/newroot$RESULTS" 2>/dev/null
mount -t 9p -o "$NINEP,rw" results "/newroot$RESULTS" || die "cannot mount $RESULTS (9p tag results)"
RESULTS_MOUNTED=1
mount -t proc proc /newroot/proc
mount -t sysfs sysfs /newroot/sys
mount -t devtmpfs devtmpfs /newroot/dev
mkdir -p /newroot/dev/shm /newroot/dev/pts
mount -t tmpfs -o mode=1777 tmpfs /newroot/dev/shm
mount -t devpts devpts /newroot/dev/pts

# bind every edu device, and the pyvfio.bind= ones, to vfio-pci
DEVICES=""
bind_vfio() {  # BDF: take it from its driver (if any), give it to vfio-pci
    dev=/sys/bus/pci/devices/$1
    [ -e "$dev" ] || { say "$1: no such PCI device (pyvfio.bind)"; return; }
    echo vfio-pci > "$dev/driver_override"
    [ -e "$dev/driver" ] && echo "$1" > "$dev/driver/unbind"
    echo "$1" > /sys/bus/pci/drivers_probe 2>/dev/null
    if [ "$(basename "$(readlink "$dev/driver")")" = vfio-pci ]; then
        DEVICES="${DEVICES:+$DEVICES }$1"
    else
        say "$1: NOT bound to vfio-pci (no IOMMU group?)"
    fi
}
for dev in /sys/bus/pci/devices/*; do
    [ "$(cat "$dev/vendor")" = 0x1234 ] && [ "$(cat "$dev/device")" = 0x11e8 ] && bind_vfio "${dev##*/}"
done
for bdf in $BIND; do bind_vfio "$bdf"; done

# layout report: every PCI device with its driver and IOMMU group
for dev in /sys/bus/pci/devices/*; do
    drv=-; grp=-
    [ -e "$dev/driver" ] && drv=$(basename "$(readlink "$dev/driver")")
    [ -e "$dev/iommu_group" ] && grp=$(basename "$(readlink "$dev/iommu_group")")
    say "pci ${dev##*/} $(cat "$dev/vendor"):$(cat "$dev/device") driver=$drv group=$grp"
done
say "vfio nodes: $(ls /dev/vfio 2>/dev/null | tr '\n' ' ')$(ls /dev/vfio/devices 2>/dev/null | sed 's|^|devices/|' | tr '\n' ' ')$( [ -e /dev/iommu ] && echo /dev/iommu)"
say "READY profile=$PROFILE kernel=$(uname -r) uptime=$(uptime_s) devices=$DEVICES"

CMD="$RESULTS/guest-cmd.sh"
[ -f "/newroot$CMD" ] || die "$CMD missing"
if [ "$MODE" = shell ]; then
    setsid cttyhack env -i PYVFIO_VM_DEVICES="$DEVICES" chroot /newroot /bin/sh "$CMD"
else
    env -i PYVFIO_VM_DEVICES="$DEVICES" chroot /newroot /bin/sh "$CMD" < /dev/null
fi
rc=$?
echo "$rc" > "/newroot$RESULTS/exit-status"
sync
umount "/newroot$RESULTS"
say "EXIT rc=$rc uptime=$(uptime_s)"
poweroff -f
