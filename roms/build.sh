#!/bin/sh
# Builds the Multiboot test kernels in roms/src into roms/build/NAME.elf with
# Debian's gcc and binutils (no multilib needed: -ffreestanding -c, linked by ld),
# the kernel linked at 0x8000 (low/) into build/lowmem.elf, the module
# files the `modules` kernel checks, and the 16-bit ROMs in bios/ (for
# tests/bios.rs) into build/NAME.bin.
set -eu
cd "$(dirname "$0")"
CC=${CC:-gcc}
CFLAGS="-m32 -ffreestanding -fno-pic -fno-stack-protector -nostdlib -O2 -Wall -Wextra -Wno-clobbered --param=min-pagesize=0 \
 -fno-asynchronous-unwind-tables -mno-sse -mno-mmx -mno-80387 -fno-builtin -Ilib"
LDFLAGS="-m elf_i386 -nostdlib --no-warn-rwx-segments"
mkdir -p build/obj
$CC $CFLAGS -c lib/lib.c -o build/obj/lib.o
$CC $CFLAGS -c lib/entry.S -o build/obj/entry.o
for src in src/*.c; do
	name=$(basename "$src" .c)
	$CC $CFLAGS -c "$src" -o "build/obj/$name.o"
	ld $LDFLAGS -T lib/link.ld -o "build/$name.elf" \
		build/obj/entry.o build/obj/lib.o "build/obj/$name.o"
done
# lowmem: small enough for 0x8000..0x9000 (its link.ld asserts it).
$CC $CFLAGS -Os -ffunction-sections -fdata-sections -c lib/lib.c -o build/obj/lib-gc.o
$CC $CFLAGS -Os -ffunction-sections -fdata-sections -c low/lowmem.c -o build/obj/lowmem.o
$CC $CFLAGS -c low/entry.S -o build/obj/lowmem-entry.o
ld $LDFLAGS --gc-sections -T low/link.ld -o build/lowmem.elf \
	build/obj/lowmem-entry.o build/obj/lowmem.o build/obj/lib-gc.o
# 16-bit ROMs for the BIOS tests (tests/bios.rs): flat binaries linked at 0.
for src in bios/*.S; do
	name=$(basename "$src" .S)
	$CC -m32 -c "$src" -o "build/obj/rom-$name.o"
	ld -m elf_i386 -nostdlib -Ttext 0 --oformat binary -o "build/$name.bin" "build/obj/rom-$name.o"
done
# The modules `modules` checks (see src/modules.c).
printf 'morph86 test module A: the first of two\n' >build/module-a.txt
awk 'BEGIN { for (i = 0; i < 300; i++) printf "module B line %03d\n", i }' >build/module-b.txt
echo "built: $(ls build/*.elf build/*.bin | tr '\n' ' ')"
