/* iobitmap: IOPL and the TSS I/O permission bitmap.
 * Intel SDM Vol. 1 §19.5 (I/O privilege level), §19.5.2 (I/O permission
 * bit map: every bit of a multi-byte access must be clear; the processor
 * reads two bytes of the map, so the byte after the port's byte must be
 * inside the TSS limit; a map base beyond the limit denies every port),
 * Vol. 2 IN/OUT "#GP(0) if CPL > IOPL and any corresponding I/O permission
 * bit is set". */
#include "test.h"

const char test_name[] = "iobitmap";

static volatile u16 port;
static void u_inb(void) { __asm__ volatile("inb %%dx, %%al" :: "d"(port) : "eax"); }
static void u_inw(void) { __asm__ volatile("inw %%dx, %%ax" :: "d"(port) : "eax"); }
static void u_inl(void) { __asm__ volatile("inl %%dx, %%eax" :: "d"(port) : "eax"); }
static void u_outb(void) { __asm__ volatile("outb %%al, %%dx" :: "d"(port), "a"(0) ); }

static void allow(u16 p) { main_tss.iobitmap[p >> 3] &= (u8)~(1 << (p & 7)); }
static void deny(u16 p) { main_tss.iobitmap[p >> 3] |= (u8)(1 << (p & 7)); }

static int user_io(void (*fn)(void), u16 p, u32 eflags)
{
	port = p;
	return TRY(run_user(fn, eflags));
}

static void set_tss_limit(u32 limit)
{
	gdt_set(TSS_SEL >> 3, (u32)&main_tss, limit, 0x89, 0x00);
	reload_tr(TSS_SEL);
}

void test_main(void)
{
	allow(0x80);
	check_exc("inb-allowed", user_io(u_inb, 0x80, 0), -1, -1);
	check_exc("outb-allowed", user_io(u_outb, 0x80, 0), -1, -1);
	check_exc("inb-denied", user_io(u_inb, 0x81, 0), 13, 0);
	check_exc("inw-second-bit-denied", user_io(u_inw, 0x80, 0), 13, 0);
	allow(0x81);
	check_exc("inw-both-allowed", user_io(u_inw, 0x80, 0), -1, -1);
	allow(0x86);
	allow(0x87);
	check_exc("inl-straddles-map-bytes-denied", user_io(u_inl, 0x86, 0), 13, 0);
	allow(0x88);
	check_exc("inl-one-bit-still-denied", user_io(u_inl, 0x86, 0), 13, 0);
	allow(0x89);
	check_exc("inl-straddles-map-bytes-allowed", user_io(u_inl, 0x86, 0), -1, -1);
	deny(0x87);
	check_exc("inw-odd-port-denied", user_io(u_inw, 0x86, 0), 13, 0);
	check_exc("inb-next-to-denied", user_io(u_inb, 0x86, 0), -1, -1);

	/* IOPL >= CPL bypasses the map; ring 0 never consults it. */
	check_exc("iopl3-ignores-map", user_io(u_inb, 0x87, IOPL(3)), -1, -1);
	check_exc("ring0-ignores-map", TRY(u_inb()), -1, -1);
	check_exc("iopl2-ring3-uses-map", user_io(u_inb, 0x87, IOPL(2)), 13, 0);

	/* The TSS limit: map bytes 0..0x1F only (ports 0..0xFF). */
	allow(0xF8);
	set_tss_limit(TSS_IOMAP_OFFSET + 0x20 - 1);
	check_exc("limit-covers-both-map-bytes", user_io(u_inb, 0x80, 0), -1, -1);
	check_exc("limit-second-map-byte-outside", user_io(u_inb, 0xF8, 0), 13, 0);
	check_exc("limit-port-beyond", user_io(u_inb, 0x2F8, 0), 13, 0);
	/* A map base beyond the limit denies everything. */
	main_tss.iomap_base = 0xFFF0;
	set_tss_limit(sizeof main_tss - 1);
	check_exc("map-base-beyond-limit", user_io(u_inb, 0x80, 0), 13, 0);
	main_tss.iomap_base = TSS_IOMAP_OFFSET;
	set_tss_limit(sizeof main_tss - 1);
	check_exc("map-restored", user_io(u_inb, 0x80, 0), -1, -1);
}
