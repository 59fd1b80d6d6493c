/* Multiboot v1 boot information (the Multiboot Specification 0.6.96, §3.3). */
#ifndef MULTIBOOT_H
#define MULTIBOOT_H

#include "test.h"

#define MB_BOOT_MAGIC 0x2BADB002
#define MBI_MEM (1u << 0)
#define MBI_CMDLINE (1u << 2)
#define MBI_MODS (1u << 3)
#define MBI_MMAP (1u << 6)

struct __attribute__((packed)) mb_info {
	u32 flags, mem_lower, mem_upper, boot_device, cmdline;
	u32 mods_count, mods_addr;
	u32 syms[4];
	u32 mmap_length, mmap_addr;
	u32 drives_length, drives_addr, config_table, boot_loader_name;
	u32 apm_table, vbe[4];
};

struct __attribute__((packed)) mb_module {
	u32 mod_start, mod_end, string, reserved;
};

struct __attribute__((packed)) mb_mmap {
	u32 size;
	u64 base, len;
	u32 type;
};

/* Whether [a, a + alen) and [b, b + blen) share a byte. */
static inline int mb_overlap(u32 a, u32 alen, u32 b, u32 blen)
{
	return a < b + blen && b < a + alen;
}

static inline u32 mb_strlen(const char *s)
{
	u32 n = 0;
	while (s[n])
		n++;
	return n;
}

/* Whether the n bytes at a and b are equal. */
static inline int mb_memeq(const void *a, const void *b, u32 n)
{
	const u8 *p = a, *q = b;
	for (u32 i = 0; i < n; i++)
		if (p[i] != q[i])
			return 0;
	return 1;
}

#endif
