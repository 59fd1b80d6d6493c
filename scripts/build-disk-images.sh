#!/usr/bin/env bash
# Builds bootable disk images for booting through morph86's BIOS with no
# --kernel, from Debian packages and on image files only (no root, no
# loop mounts): SYSLINUX with `syslinux --install --offset`, mtools,
# xorriso with isolinux.
#
#   guest/disks/floppy.img   1.44 MB FAT12 floppy with SYSLINUX: its prompt
#                            ("boot:"), then mboot.c32 loads roms/'s
#                            Multiboot kernel `segments` from the floppy
#   guest/disks/hd.img       64 MiB hard disk: syslinux's mbr.bin, one FAT
#                            partition at sector 2048 with SYSLINUX, the Debian
#                            guest kernel and guest/initramfs-disk.cpio.gz
#   guest/disks/cd.iso       El Torito ISO (isolinux, no emulation) with the
#                            same kernel and initramfs
#   guest/disks/HASHME.TXT   the file put on both hd.img and cd.iso (the
#                            guest hashes its copies; see tests/disk_boot.rs)
#
# The initramfs is the storage guest's (scripts/build-guest.sh, then the
# modules of scripts/build-storage-guest.sh) plus isofs, fat, vfat and NLS
# modules, with an /init that mounts /dev/sda1 and /dev/sr0 and prints
#   MORPH86-DISK <device> <sha256 of HASHME.TXT>
#   MORPH86-DISK-DONE
# With console=tty0 (the hd.img "vga" label) it prints the same on the VGA.
#
# Needs: syslinux, syslinux-common, isolinux, mtools, xorriso, fdisk (Debian:
# `apt-get install syslinux syslinux-common isolinux mtools xorriso fdisk`); for
# the hard disk and the CD also guest/ as scripts/build-guest.sh leaves it.
# Pass --floppy-only to build just the floppy (needs only roms/build.sh).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
guest="$root/guest"
out="$guest/disks"
die() {
    echo "build-disk-images: error: $*" >&2
    exit 1
}
floppy_only=0
[ "${1:-}" = "--floppy-only" ] && floppy_only=1
for t in syslinux mformat mcopy mmd xorriso; do
    command -v "$t" >/dev/null ||
        die "$t not found: apt-get install syslinux syslinux-common isolinux mtools xorriso fdisk"
done
if [ "$floppy_only" = 0 ]; then
    command -v sfdisk >/dev/null || die "sfdisk not found: apt-get install fdisk"
fi
mods=/usr/lib/syslinux/modules/bios
[ -f "$mods/ldlinux.c32" ] || die "no $mods (syslinux-common)"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export MTOOLS_SKIP_CHECK=1

# ---- (c) the floppy -------------------------------------------------------
sh "$root/roms/build.sh" >/dev/null
fd="$out/floppy.img"
rm -f "$fd"
mformat -C -i "$fd" -f 1440 -v MORPH86 ::
syslinux --install "$fd"
cat >"$work/syslinux.cfg" <<'CFG'
SERIAL 0 115200
SAY morph86 floppy: SYSLINUX is running
PROMPT 1
TIMEOUT 1
DEFAULT segments
LABEL segments
  KERNEL mboot.c32
  APPEND segments.elf
CFG
mcopy -i "$fd" "$work/syslinux.cfg" "$mods/mboot.c32" "$mods/libcom32.c32" ::
mcopy -i "$fd" "$root/roms/build/segments.elf" ::segments.elf
echo "built $fd"
[ "$floppy_only" = 1 ] && exit 0

# ---- the initramfs --------------------------------------------------------
kdeb="$(find "$guest/cache" -maxdepth 1 -name 'linux-image-6.1.0-*-686_*_i386.deb' 2>/dev/null | sort -V | tail -n 1)"
[ -n "$kdeb" ] && [ -f "$guest/bzImage" ] && [ -d "$guest/initramfs" ] ||
    die "run scripts/build-guest.sh first"
dpkg-deb --fsys-tarfile "$kdeb" | tar -x -C "$work" --wildcards './lib/modules/*'
moddir="$(find "$work/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -n 1)"
ir="$work/initramfs"
cp -a "$guest/initramfs" "$ir"
mkdir -p "$ir/lib/modules" "$ir/mnt/hd" "$ir/mnt/cd"
list=""
for m in crypto/crct10dif_common crypto/crct10dif_generic lib/crc-t10dif lib/crc64 \
    crypto/crc64_rocksoft_generic lib/crc64-rocksoft block/t10-pi drivers/scsi/scsi_common \
    drivers/scsi/scsi_mod drivers/ata/libata drivers/ata/ata_piix drivers/cdrom/cdrom \
    drivers/scsi/sr_mod drivers/scsi/sd_mod fs/isofs/isofs fs/fat/fat fs/fat/vfat \
    fs/nls/nls_cp437 fs/nls/nls_utf8 fs/nls/nls_ascii; do
    f="$(find "$moddir/kernel/$(dirname "$m")" -maxdepth 1 -name "$(basename "$m").ko*" 2>/dev/null | head -n 1)"
    if [ -z "$f" ]; then
        echo "build-disk-images: note: $m is not a module of this kernel (built in?)" >&2
        continue
    fi
    case "$f" in
    *.xz) xz -dc "$f" >"$ir/lib/modules/$(basename "$m").ko" ;;
    *) cp "$f" "$ir/lib/modules/$(basename "$m").ko" ;;
    esac
    list="$list $(basename "$m")"
done
cat >"$ir/init" <<INIT
#!/bin/sh
/bin/busybox --install -s 2>/dev/null
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "MORPH86-GUEST-READY \$(uname -r)"
for m in$list; do insmod /lib/modules/\$m.ko 2>/dev/null; done
for i in 1 2 3 4 5 6 7 8 9 10; do
    [ -b /dev/sda1 ] && [ -b /dev/sr0 ] && break
    sleep 1
done
mount -t vfat -o ro /dev/sda1 /mnt/hd 2>/dev/null && echo "MORPH86-DISK sda1 \$(sha256sum /mnt/hd/HASHME.TXT | cut -d' ' -f1)"
mount -t iso9660 -o ro /dev/sr0 /mnt/cd 2>/dev/null && echo "MORPH86-DISK sr0 \$(sha256sum /mnt/cd/HASHME.TXT | cut -d' ' -f1)"
echo "MORPH86-DISK-DONE"
grep -q morph86.poweroff /proc/cmdline && poweroff -f
exec /bin/sh
INIT
chmod +x "$ir/init"
(cd "$ir" && find . | cpio -o -H newc --quiet | gzip -9) >"$out/initramfs-disk.cpio.gz"

# A file for the guest to hash: text that is the same on every build.
awk 'BEGIN { for (i = 0; i < 2000; i++) printf "morph86 disk check line %05d\n", i }' >"$out/HASHME.TXT"

# ---- (a) the hard disk: MBR, one FAT partition from sector 2048 ------------
hd="$out/hd.img"
rm -f "$hd"
size_mib=64
truncate -s "${size_mib}M" "$hd"
start=2048
sectors=$((size_mib * 2048 - start))
printf 'label: dos\nstart=%d, size=%d, type=c, bootable\n' "$start" "$sectors" | sfdisk -q "$hd"
dd if=/usr/lib/SYSLINUX/mbr.bin of="$hd" bs=440 count=1 conv=notrunc status=none
offset=$((start * 512))
mformat -i "$hd@@$offset" -T "$sectors" -h 16 -s 63 -H "$start" -v MORPH86HD ::
syslinux --install --offset "$offset" "$hd"
cat >"$work/syslinux.cfg" <<'CFG'
SERIAL 0 115200
PROMPT 0
TIMEOUT 1
DEFAULT serial
LABEL serial
  KERNEL bzImage
  APPEND initrd=initrd.gz console=ttyS0 vga=0x342 morph86.poweroff
LABEL vga
  KERNEL bzImage
  APPEND initrd=initrd.gz console=tty0 morph86.poweroff
CFG
mcopy -i "$hd@@$offset" "$work/syslinux.cfg" ::syslinux.cfg
mcopy -i "$hd@@$offset" "$guest/bzImage" ::bzImage
mcopy -i "$hd@@$offset" "$out/initramfs-disk.cpio.gz" ::initrd.gz
mcopy -i "$hd@@$offset" "$out/HASHME.TXT" ::HASHME.TXT
# The same disk booting to the VGA console (console=tty0).
cp "$hd" "$out/hd-vga.img"
sed 's/^DEFAULT serial/DEFAULT vga/' "$work/syslinux.cfg" >"$work/syslinux-vga.cfg"
mcopy -o -i "$out/hd-vga.img@@$offset" "$work/syslinux-vga.cfg" ::syslinux.cfg
echo "built $hd and $out/hd-vga.img"

# ---- (b) the El Torito ISO ------------------------------------------------
iso="$work/iso"
mkdir -p "$iso/isolinux"
cp /usr/lib/ISOLINUX/isolinux.bin "$mods/ldlinux.c32" "$iso/isolinux/"
cp "$guest/bzImage" "$iso/bzImage"
cp "$out/initramfs-disk.cpio.gz" "$iso/initrd.gz"
cp "$out/HASHME.TXT" "$iso/HASHME.TXT"
cat >"$iso/isolinux/isolinux.cfg" <<'CFG'
SERIAL 0 115200
PROMPT 0
TIMEOUT 1
DEFAULT serial
LABEL serial
  KERNEL /bzImage
  APPEND initrd=/initrd.gz console=ttyS0 morph86.poweroff
CFG
xorriso -as mkisofs -quiet -o "$out/cd.iso" -V MORPH86CD -J -R \
    -b isolinux/isolinux.bin -c isolinux/boot.cat \
    -no-emul-boot -boot-load-size 4 -boot-info-table "$iso"
echo "built $out/cd.iso"
