/* faults: exception classes, priorities, double and triple faults.
 * Intel SDM Vol. 3A §6.13 (error codes: EXT for events external to the
 * program, IDT bit), §6.15 "Interrupt 8—Double Fault" (Table 6-5: benign,
 * contributory and page-fault classes; a contributory fault while
 * delivering a contributory fault is #DF with error code 0), "Interrupt
 * 11—Segment Not Present" (a not-present IDT gate), §6.9 and Vol. 2 INT n
 * (the gate DPL check comes before the present check), §6.15 triple fault
 * (shutdown). The kernel ends by printing its summary and then triple
 * faulting on purpose: the run must end there (status 0 with --no-reboot
 * under morph86 and -no-reboot under QEMU), never write the exit port.
 *
 * QEMU TCG leaves EXT clear in the #NP error code when delivering a
 * processor exception through a not-present gate (ud-gate-not-present-np
 * fails there); §6.13 sets EXT for an event external to the program,
 * which includes an earlier exception. */
#include "test.h"

const char test_name[] = "faults";

static void u_int60(void) { __asm__ volatile("int $0x60"); }
static void u_int61(void) { __asm__ volatile("int $0x61"); }

void test_main(void)
{
	/* A benign exception (#UD) whose gate is not present: #NP, EXT = 1. */
	idt[6] &= ~(1ull << 47);
	check_exc("ud-gate-not-present-np", TRY(__asm__ volatile("ud2")), 11, 6 * 8 + 2 + 1);
	idt_set_default(6);
	/* INT3 (software): #NP with EXT = 0. */
	idt[3] &= ~(1ull << 47);
	check_exc("int3-gate-not-present-np", TRY(__asm__ volatile("int3")), 11, 3 * 8 + 2);
	idt_set_default(3);
	/* Contributory (#GP) then contributory (#NP delivering it): #DF(0). */
	idt[13] &= ~(1ull << 47);
	int r = TRY(__asm__ volatile("mov %0, %%es" :: "r"(0x7FF8) : "memory"));
	check_exc("gp-then-np-double-fault", r, 8, 0);
	idt_set_default(13);
	/* Benign (#UD) then #GP from a gate beyond the IDT limit: just #GP. */
	struct { u16 limit; u32 base; } __attribute__((packed)) small = { 14 * 8 - 1, (u32)idt }, full = { sizeof idt - 1, (u32)idt };
	__asm__ volatile("lidt %0" :: "m"(small));
	r = TRY(__asm__ volatile("int $0x20"));
	__asm__ volatile("lidt %0" :: "m"(full));
	check_exc("int-beyond-idt-limit-gp", r, 13, 0x20 * 8 + 2);
	/* INT n: DPL check before the present check. */
	idt_set(0x60, KCODE, isr_table[0x60], 0x0E); /* DPL 0, not present */
	idt_set(0x61, KCODE, isr_table[0x61], 0x6E); /* DPL 3, not present */
	check_exc("int-dpl-before-present", TRY(run_user(u_int60, 0)), 13, 0x60 * 8 + 2);
	check_exc("int-not-present-dpl3", TRY(run_user(u_int61, 0)), 11, 0x61 * 8 + 2);
	/* #DE, a fault: the saved EIP is the DIV itself. */
	static volatile u32 div_at;
	r = TRY(__asm__ volatile("movl $1f, %0\n1:\tdivl %1" : "=m"(div_at) : "r"(0) : "eax", "edx"));
	if (check_exc("div-by-zero-de", r, 0, -1))
		check_eq("div-fault-eip", last_exc.eip, div_at);

	/* The summary now; then a triple fault: int3 with an empty IDT raises
	 * #GP, which cannot be delivered either (#DF), which cannot be
	 * delivered: shutdown. */
	printf("SUMMARY: %d passed, %d failed\n", tests_passed, tests_failed);
	printf("faults: triple-faulting on purpose\n");
	struct { u16 limit; u32 base; } __attribute__((packed)) none = { 0, 0 };
	__asm__ volatile("lidt %0\n\tint3" :: "m"(none));
	fail("triple-fault", "execution continued after a triple fault");
	finish();
}
