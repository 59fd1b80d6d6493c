/* lowmem: a Multiboot kernel linked at 0x8000 that ends below 0x9000.
 * The Multiboot Specification 0.6.96 §3.1.2 (without header flag 16 the
 * loader loads the kernel by its ELF program headers: segments at their
 * addresses, the part past p_filesz zeroed) and §3.3 (the information
 * structure and what it points to may be placed anywhere except the memory
 * reserved for the kernel and the modules): the loader must put its
 * own data outside 0x8000..__kernel_end and leave the kernel's data intact.
 * Uses the test library's output and reporting only (no descriptor tables).
 *
 * QEMU 7.2 fails flags-mem-mmap here: EBX = 0x9500 holds zeros, while the
 * command line QEMU built sits at 0x9000, the page after the kernel, where
 * QEMU keeps its buffer of command lines and modules; that buffer, loaded
 * after the information structure, apparently covers it. */
#include "test.h"
#include "multiboot.h"

const char test_name[] = "lowmem";

/* A pattern in .data, ending right before the bss: the loader must copy it
 * and must not place anything over it. */
static volatile u8 pattern[64] = {
#define P4(i) (u8)(i * 7 + 3), (u8)((i + 1) * 7 + 3), (u8)((i + 2) * 7 + 3), (u8)((i + 3) * 7 + 3)
	P4(0), P4(4), P4(8), P4(12), P4(16), P4(20), P4(24), P4(28),
	P4(32), P4(36), P4(40), P4(44), P4(48), P4(52), P4(56), P4(60),
};
static volatile u8 zeroed[256];

void low_main(u32 magic, u32 info)
{
	const struct mb_info *mbi = (const struct mb_info *)info;
	u32 kstart = (u32)__kernel_start, kend = (u32)__kernel_end;
	serial_init();
	printf("morph86 test kernel: %s\n", test_name);
	check_eq("magic", magic, MB_BOOT_MAGIC);
	check_eq("linked-at-0x8000", kstart, 0x8000);
	check("ends-below-0x9000", kend <= 0x9000);
	int ok = 1;
	for (u32 i = 0; i < sizeof pattern; i++)
		ok &= pattern[i] == (u8)(i * 7 + 3);
	check("data-intact", ok);
	ok = 1;
	for (u32 i = 0; i < sizeof zeroed; i++)
		ok &= zeroed[i] == 0;
	check("bss-zeroed", ok);
	check("info-apart-from-kernel", !mb_overlap(info, sizeof *mbi, kstart, kend - kstart));
	check("info-in-usable-ram",
	      (info >= 0x500 && info + sizeof *mbi <= 0x9FC00) || info >= 0x100000);
	printf("boot information at %x, flags %x\n", info, mbi->flags);
	if (check("flags-mem-mmap", (mbi->flags & (MBI_MEM | MBI_MMAP)) == (MBI_MEM | MBI_MMAP))) {
		check("mem-lower", mbi->mem_lower >= 512 && mbi->mem_lower <= 640);
		check("mem-upper", mbi->mem_upper >= 64 * 1024);
		check("mmap-apart-from-kernel",
		      !mb_overlap(mbi->mmap_addr, mbi->mmap_length, kstart, kend - kstart));
		const struct mb_mmap *e = (const struct mb_mmap *)mbi->mmap_addr;
		check("mmap-first-entry", e->size >= 20 && e->base == 0 && e->type == 1 &&
						  e->len >= 0x80000);
	}
	if (mbi->flags & MBI_CMDLINE)
		check("cmdline-apart-from-kernel",
		      !mb_overlap(mbi->cmdline, mb_strlen((const char *)mbi->cmdline) + 1, kstart,
				  kend - kstart));
	finish();
}
