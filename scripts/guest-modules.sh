# Sourced by scripts/build-storage-guest.sh and scripts/build-drm-guest.sh:
# the test guest's initramfs (from scripts/build-guest.sh) with modules of
# the cached Debian kernel package added, and its reproducible packing.
#
#   guest_with_modules "dir/mod dir/mod ..."   (paths under kernel/, in
#       dependency order): sets $ir, a copy of guest/initramfs with the
#       modules in lib/modules (decompressed), and $list, their names in
#       order; the copy lives in a temporary directory removed at exit.
#   pack_initramfs NAME: writes $ir to guest/NAME (newc cpio, gzip -9n,
#       times and owners zeroed, so the same input gives the same bytes).

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
guest="$root/guest"
die() {
    echo "$(basename "$0" .sh): error: $*" >&2
    exit 1
}

guest_with_modules() {
    local kdeb moddir m f
    kdeb="$(find "$guest/cache" -maxdepth 1 -name 'linux-image-6.1.0-*-686_*_i386.deb' 2>/dev/null | sort -V | tail -n 1)"
    [ -n "$kdeb" ] && [ -d "$guest/initramfs" ] || die "run scripts/build-guest.sh first"
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    dpkg-deb --fsys-tarfile "$kdeb" | tar -x -C "$work" --wildcards './lib/modules/*'
    moddir="$(find "$work/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -n 1)"
    [ -n "$moddir" ] || die "no modules in $(basename "$kdeb")"
    ir="$work/initramfs"
    cp -a "$guest/initramfs" "$ir"
    mkdir -p "$ir/lib/modules"
    list=""
    for m in $1; do
        f="$(find "$moddir/kernel/$(dirname "$m")" -maxdepth 1 -name "$(basename "$m").ko*" | head -n 1)"
        [ -n "$f" ] || die "module $m not in the kernel package"
        case "$f" in
        *.xz) xz -dc "$f" >"$ir/lib/modules/$(basename "$m").ko" ;;
        *) cp "$f" "$ir/lib/modules/$(basename "$m").ko" ;;
        esac
        list="$list $(basename "$m")"
    done
}

pack_initramfs() {
    chmod 755 "$ir/init"
    find "$ir" -exec touch -h -d @0 {} +
    (cd "$ir" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) |
        gzip -9n >"$guest/$1"
    echo "$(basename "$0" .sh): guest/$1: $(stat -c %s "$guest/$1") bytes" >&2
}
