/* irqlat: when a pending maskable interrupt is taken, to the instruction.
 * Intel SDM Vol. 3A §6.8.1 (masking maskable hardware interrupts: IF,
 * and STI's delayed effect), §6.8.3 (MOV SS inhibits interrupts on the
 * instruction boundary after it); Vol. 2B STI ("If IF = 0, maskable
 * hardware interrupts remain inhibited on the instruction boundary
 * following an execution of STI"; the first of a chain of inhibiting
 * instructions is the only one guaranteed to inhibit, so none is chained
 * here), POPF and IRET (no delay: the interrupt is recognized on the next
 * boundary), MOV (loading SS), HLT (the saved EIP points after the HLT).
 *
 * The interrupt is PIT channel 0 (mode 0, a one-shot of PIT_COUNT ticks)
 * on IRQ0 of the 8259A master, remapped to vector 0x20, reaching the CPU
 * through the local APIC left in its firmware state (virtual wire, LINT0
 * ExtINT; or software-disabled, which passes INTR through). Each check arms
 * the one-shot with IF = 0, spins until the PIC's IRR (OCW3 read IRR) shows
 * IRQ0, then calls a window of marker instructions (win_* below); the
 * handler records the EIP and EAX of the first frame it sees and EOIs.
 * An interrupt the window did not take is drained afterwards with a
 * bounded STI spin, so a late delivery is reported as a FAIL, not a hang.
 *
 * The MOV SS check cannot make the interrupt pending under a MOV SS
 * shadow on demand (STI; MOV SS is a chain), so it runs a long loop of
 * (MOV SS, ADD) pairs with IF = 1 while the one-shot expires, eight times
 * with different expiry times and entry offsets, and checks the interrupt
 * never lands on the boundary right after a MOV SS.
 *
 * STI; HLT comes last: an emulator that never wakes from it ends the run
 * after the other results are out. One that takes the interrupt before
 * the HLT gets a second one-shot from the handler to wake the HLT. */
#include "test.h"

const char test_name[] = "irqlat";

#define VEC 0x20
#define PIT_COUNT 100          /* ~84 us */
#define SPIN 1000000           /* bound on every wait */

volatile u32 irq_count, irq_eip, irq_eax;

void win_stihlt_hlt(void);
static void pit_oneshot(u32 count);

static int irq0_hook(struct frame *f)
{
	if (irq_count++ == 0) {
		irq_eip = f->eip;
		irq_eax = f->eax;
	}
	/* Taken before the HLT of STI; HLT (no STI shadow): a second one-shot
	 * wakes the HLT, so the check fails instead of halting for good. */
	if (f->eip == (u32)win_stihlt_hlt)
		pit_oneshot(PIT_COUNT);
	outb(0x20, 0x20); /* non-specific EOI */
	return 1;
}

/* Windows, each called with IF = 0 and returning with IF = 0. The
 * *_expect labels are the return EIPs the SDM requires. */
void win_sti(void), win_sti_expect(void), win_sti_end(void);
void win_popf(void), win_popf_expect(void), win_popf_end(void);
void win_iret(void), win_iret_expect(void), win_iret_end(void);
void win_stinop(void), win_stinop_expect(void), win_stinop_end(void);
void win_sticli(void);
void win_stihlt(void), win_stihlt_expect(void), win_stihlt_end(void);
void win_movss(u32 skip);
void mss_begin(void), mss_loop(void), mss_tail(void), mss_end(void);

#define MSS_ITERS 20000
#define STR(x) #x
#define XSTR(x) STR(x)

__asm__(
	".text\n"
	/* STI, then exactly one instruction, then the interrupt: EAX = 1. */
	".globl win_sti, win_sti_expect, win_sti_end\n"
	"win_sti:\n"
	"	xor %eax, %eax\n"
	"	sti\n"
	"	inc %eax\n"
	"win_sti_expect:\n"
	"	inc %eax\n"
	"	inc %eax\n"
	"	inc %eax\n"
	"	cli\n"
	"win_sti_end:\n"
	"	ret\n"
	/* POPF setting IF: taken right after the POPF: EAX = 0. */
	".globl win_popf, win_popf_expect, win_popf_end\n"
	"win_popf:\n"
	"	xor %eax, %eax\n"
	"	pushf\n"
	"	orl $0x200, (%esp)\n"
	"	popf\n"
	"win_popf_expect:\n"
	"	inc %eax\n"
	"	inc %eax\n"
	"	inc %eax\n"
	"	cli\n"
	"win_popf_end:\n"
	"	ret\n"
	/* IRET setting IF: taken before the first instruction at its target. */
	".globl win_iret, win_iret_expect, win_iret_end\n"
	"win_iret:\n"
	"	xor %eax, %eax\n"
	"	pushf\n"
	"	orl $0x200, (%esp)\n"
	"	push %cs\n"
	"	push $win_iret_expect\n"
	"	iret\n"
	"	ud2\n"
	"win_iret_expect:\n"
	"	inc %eax\n"
	"	inc %eax\n"
	"	inc %eax\n"
	"	cli\n"
	"win_iret_end:\n"
	"	ret\n"
	/* STI; NOP; CLI: the NOP runs, then the interrupt, before the CLI. */
	".globl win_stinop, win_stinop_expect, win_stinop_end\n"
	"win_stinop:\n"
	"	sti\n"
	"	nop\n"
	"win_stinop_expect:\n"
	"	cli\n"
	"win_stinop_end:\n"
	"	ret\n"
	/* STI; CLI: no boundary with IF = 1 and no shadow: not taken. */
	".globl win_sticli\n"
	"win_sticli:\n"
	"	sti\n"
	"	cli\n"
	"	ret\n"
	/* STI; HLT: the HLT runs (in the shadow), the interrupt wakes it. */
	".globl win_stihlt, win_stihlt_hlt, win_stihlt_expect, win_stihlt_end\n"
	"win_stihlt:\n"
	"	sti\n"
	"win_stihlt_hlt:\n"
	"	hlt\n"
	"win_stihlt_expect:\n"
	"	cli\n"
	"win_stihlt_end:\n"
	"	ret\n"
	/* win_movss(skip): enter the pair loop skip (0..3) NOPs early, so the
	 * one-shot expires at a different phase each time; loop until the
	 * interrupt is taken or MSS_ITERS loops pass. Pairs are 4 bytes:
	 * MOV SS at offset 0 mod 4, ADD at 2 mod 4 (inhibited boundary). */
	".globl win_movss, mss_begin, mss_loop, mss_tail, mss_end\n"
	"win_movss:\n"
	"	push %esi\n"
	"	mov 8(%esp), %ecx\n"
	"	neg %ecx\n"
	"	lea mss_loop(%ecx), %ecx\n"
	"	mov %ss, %edx\n"
	"	xor %eax, %eax\n"
	"	mov $" XSTR(MSS_ITERS) ", %esi\n"
	"mss_begin:\n"
	"	sti\n"
	"	jmp *%ecx\n"
	"	nop\n"
	"	nop\n"
	"	nop\n"
	"	nop\n"
	"mss_loop:\n"
	"	.rept 64\n"
	"	mov %edx, %ss\n"
	"	add %edx, %eax\n"
	"	.endr\n"
	"mss_tail:\n"
	"	cmpl $0, irq_count\n"
	"	jne 1f\n"
	"	dec %esi\n"
	"	jnz mss_loop\n"
	"1:	cli\n"
	"mss_end:\n"
	"	pop %esi\n"
	"	ret\n"
	"	.if (mss_tail - mss_loop) != 64 * 4\n"
	"	.error \"MOV SS pairs are not 4 bytes\"\n"
	"	.endif\n"
);

static u8 pic_irr(void)
{
	outb(0x20, 0x0A); /* OCW3: read IRR */
	return inb(0x20);
}

static void pic_init(void)
{
	outb(0x20, 0x11); outb(0xA0, 0x11);  /* ICW1: edge, cascade, ICW4 */
	outb(0x21, VEC); outb(0xA1, VEC + 8); /* ICW2 */
	outb(0x21, 0x04); outb(0xA1, 0x02);  /* ICW3 */
	outb(0x21, 0x01); outb(0xA1, 0x01);  /* ICW4: 8086 mode */
	outb(0x21, 0xFE);                    /* IRQ0 only */
	outb(0xA1, 0xFF);
}

/* Starts the PIT one-shot of `count` ticks (IF = 0). */
static void pit_oneshot(u32 count)
{
	outb(0x43, 0x30); /* channel 0, LSB then MSB, mode 0, binary */
	outb(0x40, count & 0xFF);
	outb(0x40, count >> 8);
}

/* With IF = 0: clears the record, starts the one-shot and waits for IRQ0
 * in the IRR. Returns 0 when it is pending, else a reason. */
static const char *arm(void)
{
	irq_count = 0;
	irq_eip = 0;
	irq_eax = 0xFFFFFFFF;
	if (pic_irr() & 1)
		return "IRQ0 already pending before the one-shot was armed";
	pit_oneshot(PIT_COUNT);
	for (u32 i = 0; i < SPIN; i++)
		if (pic_irr() & 1)
			return irq_count ? "taken with IF = 0" : 0;
	return "IRQ0 never showed in the IRR";
}

/* With IF = 0: lets a pending IRQ0 in with a bounded STI spin. */
static void drain(void)
{
	u32 c0 = irq_count;
	__asm__ volatile("sti");
	for (u32 i = 0; i < SPIN && irq_count == c0; i++)
		__asm__ volatile("pause" ::: "memory");
	__asm__ volatile("cli");
}

/* One window: armed, run, checked against `expect`; `eax` is the number
 * of INCs the window must have run when the interrupt arrives. */
static void window(const char *name, void (*fn)(void), void (*expect)(void),
		   void (*end)(void), u32 eax)
{
	const char *why = arm();
	if (why) {
		fail(name, "%s", why);
		drain();
		return;
	}
	fn();
	u32 n = irq_count, eip = irq_eip, got_eax = irq_eax;
	u32 lo = (u32)fn, want = (u32)expect;
	if (n == 0) {
		drain();
		if (irq_count)
			fail(name, "not taken in the window %x..%x; taken after its CLI at %x, expected at %x (+%u)",
			     lo, (u32)end, irq_eip, want, want - lo);
		else
			fail(name, "not taken in the window, nor by a later STI spin; expected at %x (+%u)",
			     want, want - lo);
		return;
	}
	if (eip != want)
		fail(name, "taken at %x (+%u), expected at %x (+%u)", eip, eip - lo, want, want - lo);
	else if (got_eax != eax)
		fail(name, "taken at %x with EAX %u, expected %u", eip, got_eax, eax);
	else if (n != 1)
		fail(name, "%u interrupts for one IRQ0 edge", n);
	else
		pass(name);
}

/* MOV SS: MSS_ROUNDS rounds of the pair loop, the one-shot started with
 * IF = 0 just before each, one PIT tick longer each round and entered
 * 0..3 NOPs early, so that the expiry falls at different places in the
 * loop. The interrupt must land in the loop, never on the boundary right
 * after a MOV SS. */
#define MSS_ROUNDS 8
static void check_movss(void)
{
	const char *name = "movss-shadow";
	int at[MSS_ROUNDS];
	for (u32 r = 0; r < MSS_ROUNDS; r++) {
		irq_count = 0;
		irq_eip = 0;
		if (pic_irr() & 1) {
			fail(name, "round %u: IRQ0 already pending before the one-shot was armed", r);
			drain();
			return;
		}
		pit_oneshot(PIT_COUNT + r);
		win_movss(r % 4);
		u32 n = irq_count, eip = irq_eip;
		if (n == 0) {
			drain();
			fail(name, "round %u: no interrupt in %u loops", r, MSS_ITERS);
			return;
		}
		if (eip < (u32)mss_begin || eip > (u32)mss_end) {
			fail(name, "round %u: taken at %x, outside the loop %x..%x",
			     r, eip, (u32)mss_begin, (u32)mss_end);
			return;
		}
		if (eip >= (u32)mss_loop && eip < (u32)mss_tail && (eip - (u32)mss_loop) % 4 == 2) {
			fail(name, "round %u: taken at %x, right after the MOV SS at %x",
			     r, eip, eip - 2);
			return;
		}
		at[r] = (int)(eip - (u32)mss_loop);
	}
	/* Where the rounds landed (pairs end at +256), to see the coverage. */
	printf("info: MOV SS rounds taken at mss_loop offsets");
	for (u32 r = 0; r < MSS_ROUNDS; r++)
		printf(" %d", at[r]);
	printf("\n");
	pass(name);
}

void test_main(void)
{
	exc_hooks[VEC] = irq0_hook;
	pic_init();
	u32 svr = *(volatile u32 *)0xFEE000F0, lint0 = *(volatile u32 *)0xFEE00350;
	printf("info: IA32_APIC_BASE %x, APIC SVR %x, LVT LINT0 %x\n",
	       (u32)rdmsr(0x1B), svr, lint0);

	/* The one-shot is held in the IRR while IF = 0, then delivered. */
	const char *why = arm();
	if (why) {
		fail("irq0-pending-under-cli", "%s", why);
		finish();
	}
	pass("irq0-pending-under-cli");
	for (u32 i = 0; i < 1000; i++)
		(void)pic_irr();
	check_eq("irq0-held-while-if-clear", irq_count, 0);
	drain();
	check_eq("irq0-delivered-after-sti", irq_count, 1);

	window("sti-shadow-one-insn", win_sti, win_sti_expect, win_sti_end, 1);
	window("popf-no-shadow", win_popf, win_popf_expect, win_popf_end, 0);
	window("iret-no-shadow", win_iret, win_iret_expect, win_iret_end, 0);
	window("sti-nop-cli-window", win_stinop, win_stinop_expect, win_stinop_end, 0);

	/* STI; CLI: the only boundary with IF = 1 is in the STI shadow. */
	why = arm();
	if (why) {
		fail("sti-cli-no-window", "%s", why);
	} else {
		win_sticli();
		u32 n = irq_count, eip = irq_eip;
		if (n)
			fail("sti-cli-no-window", "taken at %x (win_sti_cli %x)", eip, (u32)win_sticli);
		else
			pass("sti-cli-no-window");
	}
	drain();

	check_movss();

	window("sti-hlt", win_stihlt, win_stihlt_expect, win_stihlt_end, 0);
	__asm__ volatile("cli");
}
