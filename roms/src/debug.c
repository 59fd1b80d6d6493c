/* debug: debug exceptions.
 * Intel SDM Vol. 3A §17.2 (DR0-DR3, DR6 B0-B3/BS, DR7 L/G, R/W and LEN
 * encodings), §17.3.1.1 (instruction breakpoints are faults: RF lets the
 * instruction run on return), §17.3.1.2 (data breakpoints are traps),
 * §17.3.1.4 (single-step trap after each instruction with TF set at its
 * start; none after the POPF that sets TF), §6.8.3 (MOV SS / POP SS block
 * the single-step trap until after the next instruction). */
#include "test.h"

const char test_name[] = "debug";

#define MAXHIT 16
static volatile u32 hits, hit_eip[MAXHIT], hit_dr6[MAXHIT];
volatile u32 watch;

static inline void set_dr(int n, u32 v)
{
	switch (n) {
	case 0: __asm__ volatile("mov %0, %%dr0" :: "r"(v)); break;
	case 1: __asm__ volatile("mov %0, %%dr1" :: "r"(v)); break;
	case 6: __asm__ volatile("mov %0, %%dr6" :: "r"(v)); break;
	case 7: __asm__ volatile("mov %0, %%dr7" :: "r"(v)); break;
	}
}

static int db_hook(struct frame *f)
{
	u32 dr6;
	__asm__ volatile("mov %%dr6, %0" : "=r"(dr6));
	if (hits < MAXHIT) {
		hit_eip[hits] = f->eip;
		hit_dr6[hits] = dr6;
	}
	hits++;
	set_dr(6, 0);
	if (dr6 & 0xF)
		f->eflags |= EFLAGS_RF; /* resume past an instruction breakpoint */
	if (hits > 12)
		set_dr(7, 0), f->eflags &= ~EFLAGS_TF; /* runaway guard */
	return 1;
}

void ss_run(void), ss_2(void), ss_6(void);
void ms_run(void), ms_3(void), ms_4(void);
void bp_fn(void);
void dw_run(void), dw_after(void), dr_run(void), dr_after(void);
__asm__(
	".text\n"
	"ss_run:\n"
	"	pushf\n"
	"	orl $0x100, (%esp)\n"
	"	popf\n"
	"	nop\n"
	"ss_2:	nop\n"
	"	pushf\n"
	"	andl $~0x100, (%esp)\n"
	"	popf\n"
	"ss_6:	ret\n"
	"ms_run:\n"
	"	mov %ss, %eax\n"
	"	pushf\n"
	"	orl $0x100, (%esp)\n"
	"	popf\n"
	"	mov %eax, %ss\n"
	"ms_3:	nop\n"
	"ms_4:	pushf\n"
	"	andl $~0x100, (%esp)\n"
	"	popf\n"
	"	ret\n"
	"bp_fn:	nop\n"
	"	ret\n"
	"dw_run:\n"
	"	movl $5, watch\n"
	"dw_after:\n"
	"	ret\n"
	"dr_run:\n"
	"	mov watch, %eax\n"
	"dr_after:\n"
	"	ret\n");

static void reset_hits(void)
{
	hits = 0;
	set_dr(6, 0);
}

void test_main(void)
{
	exc_hooks[1] = db_hook;

	/* Single step: traps after nop, nop, pushf, and, popf. */
	reset_hits();
	ss_run();
	check_eq("single-step-count", hits, 5);
	check_eq("single-step-first-after-instruction", hit_eip[0], (u32)ss_2);
	check_eq("single-step-last", hit_eip[4], (u32)ss_6);
	check_eq("single-step-dr6-bs", hit_dr6[0] & 0x400F, 0x4000);

	/* MOV SS: no trap after it; the next one comes after the following nop. */
	reset_hits();
	ms_run();
	check_eq("mov-ss-shadow-first-trap", hit_eip[0], (u32)ms_4);
	check_eq("mov-ss-shadow-count", hits, 4);

	/* Instruction breakpoint in DR0 (R/W=00, LEN=00): a fault before it runs. */
	reset_hits();
	set_dr(0, (u32)bp_fn);
	set_dr(7, 0x1);
	bp_fn();
	set_dr(7, 0);
	check_eq("exec-bp-count", hits, 1);
	check_eq("exec-bp-eip", hit_eip[0], (u32)bp_fn);
	check_eq("exec-bp-dr6-b0", hit_dr6[0] & 0x400F, 0x1);

	/* Data breakpoint in DR1: R/W=01 (writes), LEN=11 (4 bytes); a trap. */
	reset_hits();
	set_dr(1, (u32)&watch);
	set_dr(7, 0x4 | (1u << 20) | (3u << 22) | 0x300);
	dr_run();
	check_eq("write-bp-ignores-read", hits, 0);
	dw_run();
	check_eq("write-bp-count", hits, 1);
	check_eq("write-bp-trap-eip", hit_eip[0], (u32)dw_after);
	check_eq("write-bp-dr6-b1", hit_dr6[0] & 0x400F, 0x2);
	check_eq("write-bp-value-written", watch, 5);
	/* R/W=11: reads and writes. */
	reset_hits();
	set_dr(7, 0x4 | (3u << 20) | (3u << 22) | 0x300);
	dr_run();
	check_eq("rw-bp-read-count", hits, 1);
	check_eq("rw-bp-read-eip", hit_eip[0], (u32)dr_after);
	/* Disabled by L1 = 0. */
	reset_hits();
	set_dr(7, (3u << 20) | (3u << 22));
	dw_run();
	check_eq("bp-disabled", hits, 0);
	set_dr(7, 0);
}
