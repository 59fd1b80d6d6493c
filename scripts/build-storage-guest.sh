#!/usr/bin/env bash
# Builds guest/initramfs-storage.cpio.gz: the test guest's busybox initramfs
# (run scripts/build-guest.sh first) plus the Debian kernel's own storage
# modules -- libata and ata_piix, the SCSI disk and CD drivers, the floppy
# driver -- and an /init that loads them and checks the drives morph86
# attaches (see tests/linux_storage.rs):
#
#   MORPH86-STORAGE sda <sha256 of /dev/sda>      (likewise sr0 and fd0)
#   then writes a pattern at 4 MiB into /dev/sda (and sector 2000 of fd0),
#   syncs, prints MORPH86-STORAGE-DONE and powers off.
#
# The modules come from the cached kernel package in guest/cache/, so this
# needs no network once build-guest.sh has run.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/guest-modules.sh"

# In dependency order.
mods="crypto/crct10dif_common crypto/crct10dif_generic lib/crc-t10dif lib/crc64
crypto/crc64_rocksoft_generic lib/crc64-rocksoft block/t10-pi drivers/scsi/scsi_common
drivers/scsi/scsi_mod drivers/ata/libata drivers/ata/ata_piix drivers/cdrom/cdrom
drivers/scsi/sr_mod drivers/scsi/sd_mod drivers/block/floppy"
guest_with_modules "$mods"

cat >"$ir/init" <<EOF
#!/bin/sh
# morph86 storage test guest init.
/bin/busybox --install -s 2>/dev/null
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "MORPH86-GUEST-READY \$(uname -r)"
for m in$list; do
    insmod /lib/modules/\$m.ko || echo "MORPH86-STORAGE insmod \$m failed"
done
EOF
cat >>"$ir/init" <<'EOF'
# The SCSI scan is asynchronous: wait for the block devices.
for i in $(seq 1 100); do
    [ -b /dev/sda ] && [ -b /dev/sr0 ] && break
    sleep 0.1
done
for d in sda sr0 fd0; do
    if [ -b /dev/$d ]; then
        echo "MORPH86-STORAGE $d $(sha256sum /dev/$d | cut -d' ' -f1)"
        echo "MORPH86-INFO $d size $(blockdev --getsize64 /dev/$d)"
        for n in 1 18 36 72; do
            echo "MORPH86-INFO $d first $n sectors $(dd if=/dev/$d bs=512 count=$n 2>/dev/null | sha256sum | cut -d' ' -f1)"
        done
    else
        echo "MORPH86-STORAGE $d missing"
    fi
done
# 1 MiB of a pattern at 4 MiB into the disk, 2 sectors at 2000 into the
# floppy, through the page cache; sync writes them back. ("morph86-storage\n"
# doubled 16 times: busybox's yes | head would take billions of
# instructions.)
echo morph86-storage >/tmp/pattern
for i in $(seq 16); do cat /tmp/pattern /tmp/pattern >/tmp/p2; mv /tmp/p2 /tmp/pattern; done
echo "MORPH86-STEP write sda"
dd if=/tmp/pattern of=/dev/sda bs=4096 seek=1024 2>/dev/null
echo "MORPH86-STEP write fd0"
head -c 1024 /tmp/pattern | dd of=/dev/fd0 bs=512 seek=2000 2>/dev/null
echo "MORPH86-STEP sync"
sync
echo "MORPH86-STEP drop caches"
echo 3 >/proc/sys/vm/drop_caches
echo "MORPH86-STEP reread"
echo "MORPH86-STORAGE sda-reread $(dd if=/dev/sda bs=4096 skip=1024 count=256 2>/dev/null | sha256sum | cut -d' ' -f1)"
dmesg | grep -iE 'ata[0-9]|scsi|sd 0|sr 1|floppy|fd0|blk_update|I/O error' | sed 's/^/MORPH86-DMESG /'
echo "MORPH86-STORAGE-DONE"
poweroff -f
EOF
pack_initramfs initramfs-storage.cpio.gz
