/* gates: privilege transitions through interrupt, trap and call gates.
 * Intel SDM Vol. 3A §5.8 (calling procedures: call gates, §5.8.5 stack
 * switching and parameter copy, §5.8.6 RET to an outer level and the
 * data-segment nulling rule), §5.8.1.2 (conforming segments), §6.12
 * (interrupt/trap gates, stack switch through the TSS, IF for interrupt
 * gates), §6.12.1.1 (gate DPL check for INT n: #GP(vector*8+2)). */
#include "test.h"

const char test_name[] = "gates";

#define S_CG3 (8 << 3)    /* call gate, DPL 3, 2 parameters -> cg_target */
#define S_CG0 (9 << 3)    /* call gate, DPL 0 */
#define S_CONF (10 << 3)  /* conforming code, DPL 0 */

static volatile u32 hook_cpl, hook_if, hook_on_ring0_stack, hook_cs, hook_ss, hook_esp;
volatile u32 cg_cs, cg_ss, cg_esp, cg_stack[6];
volatile u32 u_ds, u_es, u_fs, u_cs, u_es2, conf_cs, u_esp_before, u_esp_after;

static int gate_hook(struct frame *f)
{
	u32 cs;
	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	hook_cpl = cs & 3;
	hook_if = read_eflags() & EFLAGS_IF;
	hook_on_ring0_stack = (u32)f < (u32)ring0_stack_top && (u32)f >= (u32)ring0_stack_top - 16384;
	hook_cs = f->cs & 0xFFFF;
	hook_ss = f->ss & 0xFFFF;
	hook_esp = f->esp;
	if (f->vector == 0x43)
		f->es = KDATA; /* IRET to ring 3 must null ES (DPL 0 data) */
	return 1;
}

static void u_int40(void) { __asm__ volatile("int $0x40"); }
static void u_int41(void) { __asm__ volatile("int $0x41"); }
static void u_int42(void) { __asm__ volatile("int $0x42"); }
void u_int43(void);
void u_callgate(void);
void u_conforming(void);
static void u_far_kcode(void) { __asm__ volatile("lcall $0x08, $0"); }
static void u_cg0(void) { __asm__ volatile("lcall %0, $0" :: "i"(S_CG0)); }

__asm__(
	".text\n"
	"u_int43:\n"
	"	int $0x43\n"
	"	mov %es, %eax\n"
	"	mov $0x23, %dx\n"
	"	mov %dx, %es\n"
	"	mov %eax, u_es2\n"
	"	ret\n"
	"u_callgate:\n"
	"	push %ebx\n"
	"	push $0x2222\n"
	"	push $0x1111\n"
	"	mov %esp, u_esp_before\n"
	"	lcall $0x43, $0\n" /* S_CG3 | RPL 3 */
	"	mov %ds, %eax\n"
	"	mov %es, %ebx\n"
	"	mov %fs, %ecx\n"
	"	mov $0x23, %dx\n"
	"	mov %dx, %ds\n"
	"	mov %dx, %es\n"
	"	mov %eax, u_ds\n"
	"	mov %ebx, u_es\n"
	"	mov %ecx, u_fs\n"
	"	mov %esp, u_esp_after\n"
	"	mov %cs, %eax\n"
	"	mov %eax, u_cs\n"
	"	pop %ebx\n"
	"	ret\n"
	/* Ring 0 target of the call gate: records what it sees, then returns
	 * to ring 3 with DS and ES holding a DPL-0 data segment. */
	"cg_target:\n"
	"	push %eax\n"
	"	mov $0x10, %ax\n"
	"	mov %ax, %ds\n"
	"	mov %ax, %es\n"
	"	pop %eax\n"
	"	mov %cs, cg_cs\n"
	"	mov %ss, cg_ss\n"
	"	mov %esp, cg_esp\n"
	"	push %eax\n"
	"	push %ecx\n"
	"	xor %ecx, %ecx\n"
	"1:	mov 8(%esp,%ecx,4), %eax\n"
	"	mov %eax, cg_stack(,%ecx,4)\n"
	"	inc %ecx\n"
	"	cmp $6, %ecx\n"
	"	jne 1b\n"
	"	pop %ecx\n"
	"	pop %eax\n"
	"	lret $8\n"
	"conf_fn:\n"
	"	push %eax\n"
	"	mov %cs, %eax\n"
	"	mov %eax, conf_cs\n"
	"	pop %eax\n"
	"	lret\n"
	"u_conforming:\n"
	"	lcall $0x53, $conf_fn\n" /* S_CONF | RPL 3 */
	"	ret\n");

extern char cg_target[], conf_fn[];

void test_main(void)
{
	for (int v = 0x40; v <= 0x43; v++)
		exc_hooks[v] = gate_hook;
	idt_set(0x40, KCODE, isr_table[0x40], 0xEE); /* interrupt gate, DPL 3 */
	idt_set(0x41, KCODE, isr_table[0x41], 0xEF); /* trap gate, DPL 3 */
	idt_set(0x42, KCODE, isr_table[0x42], 0x8E); /* interrupt gate, DPL 0 */
	idt_set(0x43, KCODE, isr_table[0x43], 0xEE);
	gdt_set_gate(S_CG3 >> 3, KCODE, (u32)cg_target, 0xEC, 2);
	gdt_set_gate(S_CG0 >> 3, KCODE, (u32)cg_target, 0x8C, 2);
	gdt_set(S_CONF >> 3, 0, 0xFFFFF, 0x9E, 0xC0);

	/* §6.12.1: INT n from ring 3 through a DPL-3 interrupt gate. */
	hook_cpl = 99;
	int r = TRY(run_user(u_int40, EFLAGS_IF));
	if (check_exc("int-gate-from-ring3-completes", r, -1, -1)) {
		check_eq("int-gate-handler-cpl0", hook_cpl, 0);
		check_eq("int-gate-clears-if", hook_if, 0);
		check("int-gate-stack-from-tss-esp0", hook_on_ring0_stack);
		check_eq("int-gate-frame-cs", hook_cs, UCODE);
		check_eq("int-gate-frame-ss", hook_ss, UDATA);
		check("int-gate-frame-esp-user",
		      hook_esp < (u32)ring0_stack_top + 16384 && hook_esp > (u32)ring0_stack_top);
	}
	r = TRY(run_user(u_int41, EFLAGS_IF));
	if (check_exc("trap-gate-from-ring3-completes", r, -1, -1))
		check_eq("trap-gate-keeps-if", hook_if, EFLAGS_IF);
	check_exc("int-dpl0-gate-from-ring3", TRY(run_user(u_int42, 0)), 13, 0x42 * 8 + 2);
	/* §5.8.6 / IRET: returning to an outer level nulls data segments whose
	 * DPL is below the new CPL. */
	u_es2 = 0xFFFF;
	if (check_exc("iret-to-ring3", TRY(run_user(u_int43, 0)), -1, -1))
		check_eq("iret-outer-nulls-dpl0-es", u_es2 & 0xFFFF, 0);

	/* §5.8.5: call gate to ring 0 with a stack switch and 2 parameters. */
	u_ds = u_es = u_fs = u_cs = 0xFFFF;
	r = TRY(run_user(u_callgate, 0));
	if (check_exc("call-gate-ring3-to-ring0", r, -1, -1)) {
		check_eq("call-gate-target-cs", cg_cs & 0xFFFF, KCODE);
		check_eq("call-gate-ss-from-tss", cg_ss & 0xFFFF, KDATA);
		check_eq("call-gate-esp-from-tss", cg_esp, (u32)ring0_stack_top - 24);
		check_eq("call-gate-pushed-cs", cg_stack[1] & 0xFFFF, UCODE);
		check_eq("call-gate-param0", cg_stack[2], 0x1111);
		check_eq("call-gate-param1", cg_stack[3], 0x2222);
		check_eq("call-gate-pushed-esp", cg_stack[4], u_esp_before);
		check_eq("call-gate-pushed-ss", cg_stack[5] & 0xFFFF, UDATA);
		check_eq("far-ret-outer-cs", u_cs & 0xFFFF, UCODE);
		check_eq("far-ret-imm-releases-caller-params", u_esp_after, u_esp_before + 8);
		check_eq("far-ret-outer-nulls-ds", u_ds & 0xFFFF, 0);
		check_eq("far-ret-outer-nulls-es", u_es & 0xFFFF, 0);
		check_eq("far-ret-outer-keeps-dpl3-fs", u_fs & 0xFFFF, UDATA);
	}
	check_exc("call-gate-dpl0-from-ring3", TRY(run_user(u_cg0, 0)), 13, S_CG0);
	check_exc("far-call-nonconforming-dpl0", TRY(run_user(u_far_kcode, 0)), 13, KCODE);

	/* §5.8.1.2: a conforming segment runs at the caller's CPL. */
	conf_cs = 0;
	if (check_exc("far-call-conforming", TRY(run_user(u_conforming, 0)), -1, -1))
		check_eq("conforming-keeps-cpl3", conf_cs & 0xFFFF, S_CONF | 3);
}
