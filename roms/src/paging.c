/* paging: 32-bit paging.
 * Intel SDM Vol. 3A §4.3 (32-bit paging, 4 MiB pages with CR4.PSE; bits
 * 21:17 of a 4 MiB PDE are reserved with MAXPHYADDR 36), §4.6 (access
 * rights, CR0.WP), §4.7 (#PF error code: P, W/R, U/S, RSVD; CR2), §4.8
 * (accessed and dirty flags), §4.10.2-4.10.4 (TLBs: global pages survive a
 * CR3 load, are flushed by toggling CR4.PGE; INVLPG). The stale-entry tests
 * rely on the TLB keeping a translation until it is invalidated, which every
 * P6 does; a TLB-less model is allowed to fail them (§4.10.2 permits but does
 * not require caching).
 *
 * QEMU TCG differs in two places: a reserved-bit fault reports error 8
 * (RSVD without P; §4.7 says P = 1 because the page is not "not present"),
 * and a CR3 load flushes global entries too (allowed, since caching is
 * optional, but not what a P6 does). */
#include "test.h"

const char test_name[] = "paging";

#define P 0x001
#define W 0x002
#define U 0x004
#define A 0x020
#define D 0x040
#define PS 0x080
#define G 0x100

static u32 pd[1024] __attribute__((aligned(4096)));
static u32 pt_low[2][1024] __attribute__((aligned(4096)));
static u32 pt_test[1024] __attribute__((aligned(4096)));

#define VT 0x40000000u /* test pages: pt_test */
#define PHYS 0x300000u /* backing pages 0x300000.. */
#define V(i) (VT + (i) * 4096u)
#define PHYS_PAGE(i) (PHYS + (i) * 4096u)

static volatile u32 sink;

static int rd(u32 va) { return TRY(sink = *(volatile u32 *)va); }
static int wr(u32 va, u32 v) { return TRY(*(volatile u32 *)va = v); }
static void invlpg(u32 va) { __asm__ volatile("invlpg (%0)" :: "r"(va) : "memory"); }

static volatile u32 user_va;
static void u_read(void) { sink = *(volatile u32 *)user_va; }
static void u_write(void) { *(volatile u32 *)user_va = 1; }

static void check_pf(const char *name, int r, u32 err, u32 va)
{
	if (check_exc(name, r, 14, (int)err))
		check_eq(name, read_cr2(), va);
}

void test_main(void)
{
	for (int i = 0; i < 2048; i++)
		pt_low[i / 1024][i % 1024] = (u32)i * 4096 | P | W | U;
	pd[0] = (u32)pt_low[0] | P | W | U;
	pd[1] = (u32)pt_low[1] | P | W | U;
	pd[VT >> 22] = (u32)pt_test | P | W | U;
	for (int i = 0; i < 8; i++)
		*(volatile u32 *)PHYS_PAGE(i) = 0xAAAA0000 + i;
	write_cr3((u32)pd);
	write_cr0(read_cr0() | 0x80000000u);
	check("paging-enabled", (read_cr0() & 0x80000000u) && *(volatile u32 *)PHYS_PAGE(1) == 0xAAAA0001);

	/* §4.7 error codes. */
	check_pf("pf-not-present-read", rd(V(0)), 0, V(0));
	check_pf("pf-not-present-write", wr(V(0) + 8, 1), 2, V(0) + 8);
	check_pf("pf-pde-not-present", rd(0x80001234), 0, 0x80001234);
	pt_test[1] = PHYS_PAGE(1) | P | U;           /* read-only user page */
	pt_test[2] = PHYS_PAGE(2) | P | W;           /* supervisor page */
	write_cr0(read_cr0() & ~0x10000u);
	check_exc("wp0-ring0-writes-read-only", wr(V(1), 0x11), -1, -1);
	check_eq("wp0-write-landed", *(volatile u32 *)PHYS_PAGE(1), 0x11);
	write_cr0(read_cr0() | 0x10000u);
	check_pf("wp1-ring0-write-read-only", wr(V(1) + 4, 0x12), 3, V(1) + 4);
	user_va = V(2) + 16;
	check_pf("pf-user-read-supervisor", TRY(run_user(u_read, 0)), 5, V(2) + 16);
	user_va = V(1) + 20;
	check_pf("pf-user-write-read-only", TRY(run_user(u_write, 0)), 7, V(1) + 20);
	check_exc("user-read-user-page", TRY(run_user(u_read, 0)), -1, -1);
	/* RSVD: a 4 MiB PDE with reserved bit 21 set. */
	write_cr4(read_cr4() | 0x10); /* PSE */
	pd[0x80000000u >> 22] = 0x00400000 | PS | P | W | (1u << 21);
	check_pf("pf-reserved-bit", rd(0x80000010), 9, 0x80000010);
	pd[0x80000000u >> 22] = 0;

	/* §4.8 accessed and dirty flags. */
	pt_test[3] = PHYS_PAGE(3) | P | W | U;
	pd[VT >> 22] &= ~(u32)A;
	invlpg(V(3));
	check_exc("ad-read", rd(V(3)), -1, -1);
	check_eq("ad-read-sets-pte-a", pt_test[3] & (A | D), A);
	check_eq("ad-read-sets-pde-a", pd[VT >> 22] & A, A);
	check_exc("ad-write", wr(V(3), 7), -1, -1);
	check_eq("ad-write-sets-pte-d", pt_test[3] & (A | D), A | D);

	/* 4 MiB page (CR4.PSE) mapping 0x80400000 -> 0x00400000. */
	pd[0x80400000u >> 22] = 0x00400000 | PS | P | W;
	check_exc("pse-4m-write", wr(0x80400010, 0x4D4D), -1, -1);
	check_eq("pse-4m-physical", *(volatile u32 *)0x400010, 0x4D4D);
	check_eq("pse-4m-pde-a-d", pd[0x80400000u >> 22] & (A | D), A | D);

	/* §4.10.4 INVLPG. */
	pt_test[4] = PHYS_PAGE(4) | P | W;
	invlpg(V(4));
	check_eq("tlb-fill", *(volatile u32 *)V(4), 0xAAAA0004);
	pt_test[4] = PHYS_PAGE(5) | P | W;
	check_eq("tlb-keeps-stale-entry", *(volatile u32 *)V(4), 0xAAAA0004);
	invlpg(V(4));
	check_eq("invlpg-flushes", *(volatile u32 *)V(4), 0xAAAA0005);
	/* Global pages survive a CR3 load; a CR4.PGE toggle flushes them. */
	write_cr4(read_cr4() | 0x80);
	pt_test[6] = PHYS_PAGE(4) | P | W | G;
	pt_test[7] = PHYS_PAGE(4) | P | W;
	invlpg(V(6));
	invlpg(V(7));
	check_eq("global-fill", *(volatile u32 *)V(6) + *(volatile u32 *)V(7), 2 * 0xAAAA0004);
	pt_test[6] = PHYS_PAGE(5) | P | W | G;
	pt_test[7] = PHYS_PAGE(5) | P | W;
	write_cr3(read_cr3());
	check_eq("global-survives-cr3-load", *(volatile u32 *)V(6), 0xAAAA0004);
	check_eq("nonglobal-flushed-by-cr3-load", *(volatile u32 *)V(7), 0xAAAA0005);
	write_cr4(read_cr4() & ~0x80u);
	write_cr4(read_cr4() | 0x80);
	check_eq("global-flushed-by-pge-toggle", *(volatile u32 *)V(6), 0xAAAA0005);

	write_cr0(read_cr0() & ~0x80000000u);
	check("paging-disabled", !(read_cr0() & 0x80000000u));
}
