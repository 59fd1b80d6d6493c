#!/usr/bin/env bash
# Builds the Linux test guest from Debian 12's i386 packages:
#
#   guest/bzImage             Debian's unmodified "686" kernel (linux-image-6.1.0-*-686)
#   guest/initramfs.cpio.gz   busybox-static with an /init that mounts proc, sys and
#                             devtmpfs, prints MORPH86-GUEST-READY and runs a shell
#                             (or, with morph86.poweroff on the command line,
#                             powers off at once)
#                             on the serial console (with morph86.vtshell on
#                             the console: console=tty0, the VGA and keyboard)
#   guest/config              the kernel's configuration
#   guest/VERSION             the kernel package name and version
#
# Downloads are cached in guest/cache/ (git-ignored with the rest of guest/): a
# second run uses the cached .deb files and needs no network. Pass --refresh to
# resolve and download the newest packages again.
#
# Needs: apt-get, apt-cache, dpkg, dpkg-deb, cpio, gzip. Adding the i386
# architecture and installing cpio need root (or sudo); with cached packages
# and cpio installed nothing needs root.
#
# Boot with e.g. the command line "console=ttyS0 earlyprintk=serial,ttyS0".
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
guest="$root/guest"
cache="$guest/cache"
refresh=0
for arg in "$@"; do
    case "$arg" in
    --refresh) refresh=1 ;;
    -h | --help)
        sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "build-guest.sh: unknown argument '$arg' (try --help)" >&2
        exit 2
        ;;
    esac
done

say() { echo "build-guest: $*" >&2; }
die() {
    echo "build-guest: error: $*" >&2
    exit 1
}

as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "'$*' needs root"
    fi
}

mkdir -p "$cache"

cached_kernel() { find "$cache" -maxdepth 1 -name 'linux-image-6.1.0-*-686_*_i386.deb' | sort -V | tail -n 1; }
cached_busybox() { find "$cache" -maxdepth 1 -name 'busybox-static_*_i386.deb' | sort -V | tail -n 1; }

kdeb="$(cached_kernel)"
bdeb="$(cached_busybox)"
if [ "$refresh" = 1 ] || [ -z "$kdeb" ] || [ -z "$bdeb" ]; then
    if ! dpkg --print-foreign-architectures | grep -qx i386; then
        say "adding the i386 architecture to dpkg"
        as_root dpkg --add-architecture i386
    fi
    say "apt-get update"
    # apt-get update can exit non-zero over a single index (say, a third-party
    # source without i386) while the Debian indexes are fine: carry on and let
    # the look-ups below decide.
    as_root apt-get update -qq || say "apt-get update reported errors; continuing"
    # The linux-image-686 metapackage depends on the current ABI's package,
    # e.g. linux-image-6.1.0-35-686.
    kpkg="$(apt-cache depends linux-image-686:i386 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-6\.1\.0-[0-9]*-686\)\(:i386\)\{0,1\}$/\1/p' | head -n 1)"
    if [ -z "$kpkg" ]; then
        kpkg="$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-686$' |
            awk '{print $1}' | sort -V | tail -n 1)"
    fi
    [ -n "$kpkg" ] || die "cannot find the linux-image-6.1.0-*-686 package (is Debian 12's i386 index available?)"
    say "downloading $kpkg:i386 and busybox-static:i386"
    (cd "$cache" && apt-get download -q "$kpkg:i386" "busybox-static:i386") ||
        die "apt-get download failed"
    kdeb="$(find "$cache" -maxdepth 1 -name "${kpkg}_*_i386.deb" | sort -V | tail -n 1)"
    bdeb="$(cached_busybox)"
    [ -n "$kdeb" ] && [ -n "$bdeb" ] || die "the downloaded packages are not in $cache"
else
    say "using cached packages (pass --refresh to download again)"
fi
say "kernel package:  $(basename "$kdeb")"
say "busybox package: $(basename "$bdeb")"

if ! command -v cpio >/dev/null; then
    say "installing cpio"
    as_root apt-get install -y -qq cpio >/dev/null || die "cpio is missing and could not be installed"
fi

# Extract what is needed: the kernel's /boot (vmlinuz, config, System.map;
# no modules) and the busybox binary.
rm -rf "$guest/kernel-root" "$guest/busybox-root" "$guest/initramfs"
mkdir -p "$guest/kernel-root" "$guest/busybox-root"
dpkg-deb --fsys-tarfile "$kdeb" | tar -x -C "$guest/kernel-root" --wildcards './boot/*'
dpkg-deb --fsys-tarfile "$bdeb" | tar -x -C "$guest/busybox-root" ./bin/busybox

vmlinuz="$(find "$guest/kernel-root/boot" -maxdepth 1 -name 'vmlinuz-6.1*-686' | head -n 1)"
[ -n "$vmlinuz" ] || die "no boot/vmlinuz-6.1*-686 in $(basename "$kdeb")"
cp "$vmlinuz" "$guest/bzImage"
kver="${vmlinuz##*/vmlinuz-}"
# The kernel's configuration, for reference. (Debian's System.map is a stub;
# the symbols are in the separate -dbg package.)
cp "$guest/kernel-root/boot/config-$kver" "$guest/config"

# The initramfs. /dev/console comes from the kernel's built-in initramfs, so
# no device nodes (and no root) are needed here.
ir="$guest/initramfs"
mkdir -p "$ir"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,root,etc}
cp "$guest/busybox-root/bin/busybox" "$ir/bin/busybox"
applets=""
if applets="$("$ir/bin/busybox" --list-full 2>/dev/null)" && [ -n "$applets" ]; then
    :
else
    # The host cannot run the i386 binary: link the applets the guest needs;
    # /init adds the rest with `busybox --install -s`.
    applets="$(printf '%s\n' bin/sh bin/ash bin/cat bin/dmesg bin/echo bin/ls bin/mkdir \
        bin/mount bin/ps bin/sleep bin/umount bin/uname bin/cttyhack bin/setsid \
        sbin/poweroff sbin/reboot sbin/halt usr/bin/free usr/bin/uptime)"
fi
while IFS= read -r a; do
    [ -n "$a" ] || continue
    [ "$a" = bin/busybox ] && continue
    mkdir -p "$ir/$(dirname "$a")"
    ln -sf /bin/busybox "$ir/$a"
done <<<"$applets"

cat >"$ir/init" <<'EOF'
#!/bin/sh
# morph86 test guest init.
/bin/busybox --install -s 2>/dev/null
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "MORPH86-GUEST-READY $(uname -r)"
# With morph86.poweroff on the command line the guest powers off at once:
# a boot-to-poweroff run with no input, for comparing event logs.
case " $(cat /proc/cmdline) " in
*" morph86.poweroff "*) echo "MORPH86-GUEST-POWEROFF"; poweroff -f ;;
esac
# With morph86.job=NAME the guest runs one CPU-bound job between two markers
# and powers off (benches/guest-jobs.sh times it from the serial log).
for arg in $(cat /proc/cmdline); do
    case "$arg" in
    morph86.job=*)
        job="${arg#morph86.job=}"
        echo "MORPH86-JOB-START $job"
        case "$job" in
        sha256) dd if=/dev/zero bs=1M count=16 2>/dev/null | sha256sum ;;
        awk) awk 'BEGIN{s=0; for(i=1;i<=300000;i++){s+=(i%7)*1.000001/(i+1.5)}; printf "%.6f\n", s}' ;;
        *) echo "unknown job $job" ;;
        esac
        echo "MORPH86-JOB-END $job"
        poweroff -f ;;
    esac
done
export HOME=/root PATH=/bin:/sbin:/usr/bin:/usr/sbin PS1='morph86# '
cd /root
# With morph86.vtshell the shell runs on the console (console=tty0: the VGA
# and the keyboard) instead of the first serial port.
case " $(cat /proc/cmdline) " in
*" morph86.vtshell "*) vtshell=1 ;;
*) vtshell= ;;
esac
while :; do
    if [ -z "$vtshell" ] && [ -c /dev/ttyS0 ]; then
        setsid cttyhack sh </dev/ttyS0 >/dev/ttyS0 2>&1
    else
        setsid cttyhack sh
    fi
    echo "shell exited; starting another (poweroff -f to stop)"
done
EOF
chmod 755 "$ir/init"

# Fixed timestamps make the archive reproducible.
find "$ir" -exec touch -h -d @0 {} +
(cd "$ir" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) |
    gzip -9n >"$guest/initramfs.cpio.gz"
rm -rf "$guest/kernel-root" "$guest/busybox-root"

kpkg_name="$(dpkg-deb -f "$kdeb" Package)"
kpkg_ver="$(dpkg-deb -f "$kdeb" Version)"
printf '%s %s %s\n' "$kpkg_name" "$kpkg_ver" "$kver" >"$guest/VERSION"

say "kernel $kver ($kpkg_name $kpkg_ver)"
say "guest/bzImage: $(stat -c %s "$guest/bzImage") bytes"
say "guest/initramfs.cpio.gz: $(stat -c %s "$guest/initramfs.cpio.gz") bytes"
