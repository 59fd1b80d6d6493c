#!/usr/bin/env bash
# Builds guest/initramfs-drm.cpio.gz: the test guest's busybox initramfs
# (run scripts/build-guest.sh first) plus the Debian kernel's bochs-drm
# driver and what it needs (drm, drm_kms_helper, ttm, the VRAM helpers and
# the fbdev blit helpers), and an /init that loads them, reports what the
# driver made of morph86's VGA and writes lines to the framebuffer console
# (fbcon on bochs-drm's fbdev; see tests/vga.rs):
#
#   MORPH86-DRM fb0 <name> <virtual_size> <bits_per_pixel> <stride>
#   MORPH86-DRM-DONE    (after "MORPH86 BOCHS-DRM LINE 1..30" on tty1; the
#                        guest then idles)
#
# The modules come from the cached kernel package in guest/cache/, so this
# needs no network once build-guest.sh has run.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/guest-modules.sh"

# In dependency order (each module's `depends=` in its .modinfo).
mods="drivers/video/fbdev/core/fb_sys_fops drivers/video/fbdev/core/syscopyarea
drivers/video/fbdev/core/sysfillrect drivers/video/fbdev/core/sysimgblt
drivers/gpu/drm/drm drivers/gpu/drm/drm_kms_helper drivers/gpu/drm/ttm/ttm
drivers/gpu/drm/drm_ttm_helper drivers/gpu/drm/drm_vram_helper drivers/gpu/drm/tiny/bochs"
guest_with_modules "$mods"

cat >"$ir/init" <<EOF
#!/bin/sh
# morph86 bochs-drm test guest init.
/bin/busybox --install -s 2>/dev/null
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "MORPH86-GUEST-READY \$(uname -r)"
for m in$list; do
    insmod /lib/modules/\$m.ko || echo "MORPH86-DRM insmod \$m failed"
done
EOF
cat >>"$ir/init" <<'EOF'
for i in $(seq 1 100); do
    [ -c /dev/fb0 ] && break
    sleep 0.1
done
dmesg | grep -iE 'bochs|drm|fb0' | sed 's/^/MORPH86-DMESG /'
if [ -c /dev/fb0 ]; then
    g=/sys/class/graphics/fb0
    echo "MORPH86-DRM fb0 $(cat $g/name) $(cat $g/virtual_size) $(cat $g/bits_per_pixel) $(cat $g/stride)"
    # Text on the framebuffer console; the cursor off, so that only the
    # text is lit.
    printf '\033[?25l' >/dev/tty1
    for i in $(seq 30); do echo "MORPH86 BOCHS-DRM LINE $i" >/dev/tty1; done
    # fbcon draws into a shadow buffer that a worker copies to the VRAM.
    sleep 1
else
    echo "MORPH86-DRM fb0 missing"
fi
echo "MORPH86-DRM-DONE"
while true; do sleep 1000; done
EOF
pack_initramfs initramfs-drm.cpio.gz
