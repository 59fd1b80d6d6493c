/* v86: virtual-8086 mode.
 * Intel SDM Vol. 3A §20.2 (entering V86 by IRET with VM=1, §20.2.7 I/O
 * through the bitmap only), §20.2.7/20.3 (IOPL-sensitive CLI, STI, PUSHF,
 * POPF, INT n, IRET: #GP(0) when IOPL < 3), §20.3.1 (exceptions and
 * interrupts to a ring-0 handler: the 9-dword frame, data segments zeroed),
 * §20.4 (CR4.VME: VIF/VIP, PUSHF shows VIF as IF and IOPL 3, STI with
 * VIP=1 -> #GP(0), Table 20-2 software-interrupt methods and the
 * interrupt redirection bitmap). Every V86 program ends in HLT, which is
 * privileged and raises #GP(0); the test checks where the program stopped.
 *
 * QEMU TCG does not implement CR4.VME virtualization (CLI/STI/PUSHF still
 * fault and INT n is never redirected), so the vme-* tests that expect
 * VIF handling and redirection fail there; the SDM is the reference. */
#include "test.h"

const char test_name[] = "v86";

#define V86_SEG 0x600
#define V86_BASE (V86_SEG << 4)
#define MEM16(off) (*(volatile u16 *)(V86_BASE + (off)))

void enter_v86(u32 eflags);
__asm__(
	".text\n"
	"enter_v86:\n"
	"	mov 4(%esp), %eax\n"
	"	push $0x600\n" /* gs */
	"	push $0x600\n" /* fs */
	"	push $0x600\n" /* ds */
	"	push $0x600\n" /* es */
	"	push $0x600\n" /* ss */
	"	push $0xFF0\n" /* esp */
	"	push %eax\n"
	"	push $0x600\n" /* cs */
	"	push $0\n"     /* eip */
	"	iret\n");

static volatile u32 h_ds, h_v86_ds, h_vm;

static int int42_hook(struct frame *f)
{
	h_ds = f->ds & 0xFFFF;
	h_v86_ds = f->v86_ds & 0xFFFF;
	h_vm = f->eflags & EFLAGS_VM;
	return 0; /* end the run through the recovery point */
}

static int run(const u8 *code, u32 len, u32 eflags)
{
	memcpy((void *)V86_BASE, code, len);
	return TRY(enter_v86(eflags | EFLAGS_VM | 2));
}

/* Checks that the program stopped with #GP(0) at offset `ip`. */
static void stopped_at(const char *name, int r, u32 ip)
{
	if (check_exc(name, r, 13, 0)) {
		if (last_exc.eip != ip || last_exc.cs != V86_SEG || !(last_exc.eflags & EFLAGS_VM))
			fail(name, "stopped at %x:%x eflags %x, expected 600:%x in V86",
			     last_exc.cs, last_exc.eip, last_exc.eflags, ip);
	}
}

void test_main(void)
{
	static const u8 p_int42[] = { 0xCD, 0x42, 0xF4 };
	static const u8 p_cli[] = { 0xFA, 0xF4 };
	static const u8 p_pushf[] = { 0x9C, 0xF4 };
	static const u8 p_popf[] = { 0x6A, 0x02, 0x9D, 0xF4 }; /* push 2; popf */
	static const u8 p_iret[] = { 0xCF, 0xF4 };
	static const u8 p_sti[] = { 0xFB, 0xF4 };
	/* cli; pushf; pop ax; mov [0x800],ax; sti; pushf; pop ax; mov [0x802],ax; hlt */
	static const u8 p_flags[] = { 0xFA, 0x9C, 0x58, 0xA3, 0x00, 0x08, 0xFB, 0x9C, 0x58,
				      0xA3, 0x02, 0x08, 0xF4 };
	static const u8 p_in80[] = { 0xE4, 0x80, 0xF4 };
	static const u8 p_int44[] = { 0xCD, 0x44, 0xF4 };
	static const u8 p_int45[] = { 0xCD, 0x45, 0xF4 };

	exc_hooks[0x42] = int42_hook;
	idt_set(0x42, KCODE, isr_table[0x42], 0xEE);

	/* IOPL 3: INT n goes to the protected-mode handler (method 1). */
	int r = run(p_int42, sizeof p_int42, IOPL(3));
	if (check_exc("v86-int-iopl3-to-ring0", r, 0x42, -1)) {
		check_eq("v86-int-frame-cs", last_exc.cs, V86_SEG);
		check_eq("v86-int-frame-eip", last_exc.eip, 2);
		check_eq("v86-int-frame-vm", h_vm, EFLAGS_VM);
		check_eq("v86-int-handler-ds-zeroed", h_ds, 0);
		check_eq("v86-int-frame-saved-ds", h_v86_ds, V86_SEG);
	}
	/* IOPL-sensitive instructions with IOPL 0 (VME off). */
	stopped_at("v86-cli-iopl0", run(p_cli, sizeof p_cli, 0), 0);
	stopped_at("v86-sti-iopl0", run(p_sti, sizeof p_sti, 0), 0);
	stopped_at("v86-pushf-iopl0", run(p_pushf, sizeof p_pushf, 0), 0);
	stopped_at("v86-popf-iopl0", run(p_popf, sizeof p_popf, 0), 2);
	stopped_at("v86-iret-iopl0", run(p_iret, sizeof p_iret, 0), 0);
	stopped_at("v86-int-iopl0", run(p_int42, sizeof p_int42, 0), 0);
	/* IOPL 3: they work. */
	MEM16(0x800) = MEM16(0x802) = 0xFFFF;
	stopped_at("v86-cli-sti-pushf-iopl3", run(p_flags, sizeof p_flags, IOPL(3)), 12);
	check_eq("v86-pushf-after-cli", MEM16(0x800) & EFLAGS_IF, 0);
	check_eq("v86-pushf-after-sti", MEM16(0x802) & EFLAGS_IF, EFLAGS_IF);
	/* I/O in V86 is governed by the bitmap alone, even with IOPL 3. */
	main_tss.iobitmap[0x80 >> 3] |= 1;
	stopped_at("v86-in-denied-by-bitmap", run(p_in80, sizeof p_in80, IOPL(3)), 0);
	main_tss.iobitmap[0x80 >> 3] &= (u8)~1;
	stopped_at("v86-in-allowed-by-bitmap", run(p_in80, sizeof p_in80, 0), 2);

	/* CR4.VME (§20.4). */
	write_cr4(read_cr4() | 1);
	MEM16(0x800) = 0xFFFF;
	memcpy((void *)V86_BASE, (const u8[]){ 0xFA, 0x9C, 0x58, 0xA3, 0x00, 0x08, 0xF4 }, 7);
	r = TRY(enter_v86(EFLAGS_VM | EFLAGS_VIF | 2));
	stopped_at("vme-cli-pushf-run", r, 6);
	check_eq("vme-cli-clears-vif", last_exc.eflags & EFLAGS_VIF, 0);
	check_eq("vme-pushf-if-is-vif", MEM16(0x800) & EFLAGS_IF, 0);
	check_eq("vme-pushf-iopl-3", MEM16(0x800) & IOPL(3), IOPL(3));
	memcpy((void *)V86_BASE, (const u8[]){ 0xFB, 0x9C, 0x58, 0xA3, 0x00, 0x08, 0xF4 }, 7);
	r = TRY(enter_v86(EFLAGS_VM | 2));
	stopped_at("vme-sti-pushf-run", r, 6);
	check_eq("vme-sti-sets-vif", last_exc.eflags & EFLAGS_VIF, EFLAGS_VIF);
	check_eq("vme-sti-leaves-if", last_exc.eflags & EFLAGS_IF, 0);
	check_eq("vme-pushf-if-is-vif-set", MEM16(0x800) & EFLAGS_IF, EFLAGS_IF);
	stopped_at("vme-sti-with-vip", run(p_sti, sizeof p_sti, EFLAGS_VIP), 0);
	/* Redirection bitmap clear: INT 0x44 goes to the 8086 handler in the IVT. */
	static const u8 handler[] = { 0xC6, 0x06, 0x10, 0x08, 0x55, 0xCF }; /* mov byte [0x810],0x55; iret */
	memcpy((void *)(V86_BASE + 0x100), handler, sizeof handler);
	*(volatile u16 *)(0x44 * 4) = 0x100;
	*(volatile u16 *)(0x44 * 4 + 2) = V86_SEG;
	*(volatile u8 *)(V86_BASE + 0x810) = 0;
	main_tss.intredir[0x44 >> 3] &= (u8)~(1 << (0x44 & 7));
	memcpy((void *)V86_BASE, p_int44, sizeof p_int44);
	r = TRY(enter_v86(EFLAGS_VM | EFLAGS_VIF | 2));
	stopped_at("vme-int-redirected-to-ivt", r, 2);
	check_eq("vme-ivt-handler-ran", *(volatile u8 *)(V86_BASE + 0x810), 0x55);
	/* Redirection bit set, IOPL < 3: #GP(0) (method 3). */
	stopped_at("vme-int-not-redirected-iopl0", run(p_int45, sizeof p_int45, 0), 0);
	write_cr4(read_cr4() & ~1u);
}
