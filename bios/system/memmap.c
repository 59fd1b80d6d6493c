/* The memory map: INT 15h E820h (the machine's map as fw_cfg's etc/e820
 * gives it), and the older E801h and 88h sizes. */
#include "bios.h"

struct e820_entry e820_map[E820_MAX];
int e820_count;

static void add(u64 addr, u64 size, u32 type)
{
	if (e820_count < E820_MAX && size) {
		struct e820_entry *e = &e820_map[e820_count++];
		e->addr = addr;
		e->size = size;
		e->type = type;
	}
}

/* Without fw_cfg: the same layout the machine's map has, from the RAM size. */
void e820_default(void)
{
	e820_count = 0;
	add(0, BASE_MEM_KB * 1024, 1);
	add(BASE_MEM_KB * 1024, EBDA_KB * 1024, 2);
	add(0xF0000, 0x10000, 2);
	add(0x100000, ram_below_4g - 0x100000, 1);
	add(0xFEC00000, 0x1000, 2);
	add(0xFEE00000, 0x1000, 2);
	add(0xFFFC0000, 0x40000, 2);
	if (ram_size > ram_below_4g)
		add(0x100000000ULL, ram_size - ram_below_4g, 1);
}

/* E820h: EBX is the index of the entry to return. */
void handle_15_e820(struct bregs *r)
{
	if (r->edx != 0x534D4150 || r->ecx < 20 || r->ebx >= (u32)e820_count) {
		fail(r, 0x86);
		return;
	}
	struct e820_entry *e = &e820_map[r->ebx];
	near_to_far(r->es, r->di, e, 20);
	r->ebx = r->ebx + 1 < (u32)e820_count ? r->ebx + 1 : 0;
	r->eax = 0x534D4150;
	r->ecx = 20;
	clear_cf(r);
}
