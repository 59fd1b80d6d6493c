#!/bin/sh
# Builds the Multiboot test kernels in roms/src into roms/build/NAME.elf with
# Debian's gcc and binutils (no multilib needed: -ffreestanding -c, linked by ld).
set -eu
cd "$(dirname "$0")"
CC=${CC:-gcc}
CFLAGS="-m32 -ffreestanding -fno-pic -fno-stack-protector -nostdlib -O2 -Wall -Wextra -Wno-clobbered --param=min-pagesize=0 \
 -fno-asynchronous-unwind-tables -mno-sse -mno-mmx -mno-80387 -fno-builtin -Ilib"
mkdir -p build/obj
$CC $CFLAGS -c lib/lib.c -o build/obj/lib.o
$CC $CFLAGS -c lib/entry.S -o build/obj/entry.o
for src in src/*.c; do
	name=$(basename "$src" .c)
	$CC $CFLAGS -c "$src" -o "build/obj/$name.o"
	ld -m elf_i386 -nostdlib --no-warn-rwx-segments -T lib/link.ld -o "build/$name.elf" \
		build/obj/entry.o build/obj/lib.o "build/obj/$name.o"
done
echo "built: $(ls build/*.elf | tr '\n' ' ')"
