/* tasks: hardware task switching.
 * Intel SDM Vol. 3A §7.3 (task switching: JMP, CALL, INT through a task
 * gate, IRET with NT), §7.4 (task linking: previous-task link, NT, busy
 * flag), §7.6 (16-bit TSS), Vol. 2 IRET "TASK-RETURN" (the link must name a
 * busy TSS, else #TS(selector) per Table 7-1), JMP/CALL (a busy TSS:
 * #GP(selector)). */
#include "test.h"

const char test_name[] = "tasks";

#define S_TB (8 << 3)
#define S_TC (9 << 3)
#define S_T16 (10 << 3)
#define ACCESS(sel) ((u8)(gdt[(sel) >> 3] >> 40))

static struct tss32 tss_b, tss_c;
static u16 tss16[22] __attribute__((aligned(16)));
static u8 task_stack[2][4096] __attribute__((aligned(16)));
volatile u32 t_tr, t_eflags, t_eax, t_a_access, t_self_access;

/* Task bodies. On entry, EBX holds the GDT access byte address of the task's
 * own descriptor. */
void task_jmp(void);
void task_ret(void);
__asm__(
	".text\n"
	"task_jmp:\n"
	"	str %ax\n"
	"	movzwl %ax, %eax\n"
	"	mov %eax, t_tr\n"
	"	pushf\n"
	"	popl t_eflags\n"
	"	mov %ecx, t_eax\n"
	"	movzbl gdt+5*8+5, %eax\n"
	"	mov %eax, t_a_access\n"
	"	movzbl (%ebx), %eax\n"
	"	mov %eax, t_self_access\n"
	"	ljmp $0x28, $0\n"
	"	jmp task_jmp\n"
	"task_ret:\n"
	"	str %ax\n"
	"	movzwl %ax, %eax\n"
	"	mov %eax, t_tr\n"
	"	pushf\n"
	"	popl t_eflags\n"
	"	mov %ecx, t_eax\n"
	"	movzbl gdt+5*8+5, %eax\n"
	"	mov %eax, t_a_access\n"
	"	movzbl (%ebx), %eax\n"
	"	mov %eax, t_self_access\n"
	"	iret\n"
	"	jmp task_ret\n");

static void init_task(struct tss32 *t, u16 sel, void (*entry)(void), int stack)
{
	memset(t, 0, 104);
	t->eip = (u32)entry;
	t->eflags = 0x2;
	t->esp = (u32)&task_stack[stack][4096];
	t->cs = KCODE;
	t->ss = t->ds = t->es = t->fs = t->gs = KDATA;
	t->ecx = 0x12345678;
	t->ebx = (u32)gdt + (sel >> 3) * 8 + 5;
	t->cr3 = read_cr3();
	t->iomap_base = 104;
	gdt_set(sel >> 3, (u32)t, 103, 0x89, 0x00);
}

static void clear_probe(void)
{
	t_tr = t_eflags = t_eax = t_a_access = t_self_access = 0xFFFFFFFF;
}

void test_main(void)
{
	u32 ebx_keep = 0xCAFEF00D, ebx_after;
	main_tss.cr3 = read_cr3();

	/* JMP to a TSS: no link, NT clear, the old task's busy flag cleared. */
	init_task(&tss_b, S_TB, task_jmp, 0);
	clear_probe();
	int r = TRY(__asm__ volatile("ljmp %1, $0" : "+b"(ebx_keep) : "i"(S_TB) : "memory"));
	ebx_after = ebx_keep;
	if (check_exc("jmp-task-round-trip", r, -1, -1)) {
		check_eq("jmp-task-tr", t_tr, S_TB);
		check_eq("jmp-task-registers-from-tss", t_eax, 0x12345678);
		check_eq("jmp-task-nt-clear", t_eflags & EFLAGS_NT, 0);
		check_eq("jmp-task-new-busy", t_self_access, 0x8B);
		check_eq("jmp-task-old-not-busy", t_a_access, 0x89);
		check_eq("jmp-task-no-link", tss_b.link, 0);
		check_eq("jmp-back-old-not-busy", ACCESS(S_TB), 0x89);
		check_eq("jmp-back-main-busy", ACCESS(TSS_SEL), 0x8B);
		check_eq("jmp-back-registers-restored", ebx_after, 0xCAFEF00D);
		u16 tr;
		__asm__ volatile("str %0" : "=r"(tr));
		check_eq("jmp-back-tr", tr, TSS_SEL);
		check_eq("jmp-task-saved-eip", tss_b.eip != (u32)task_jmp, 1);
	}

	/* CALL to a TSS: link = caller, NT set, caller stays busy; IRET returns. */
	init_task(&tss_b, S_TB, task_ret, 0);
	clear_probe();
	r = TRY(__asm__ volatile("lcall %0, $0" :: "i"(S_TB) : "memory"));
	if (check_exc("call-task-round-trip", r, -1, -1)) {
		check_eq("call-task-tr", t_tr, S_TB);
		check_eq("call-task-nt-set", t_eflags & EFLAGS_NT, EFLAGS_NT);
		check_eq("call-task-link", tss_b.link, TSS_SEL);
		check_eq("call-task-caller-busy", t_a_access, 0x8B);
		check_eq("call-task-callee-busy", t_self_access, 0x8B);
		check_eq("iret-task-callee-not-busy", ACCESS(S_TB), 0x89);
		check_eq("iret-task-caller-nt-clear", read_eflags() & EFLAGS_NT, 0);
		check_eq("iret-task-saved-nt-clear", tss_b.eflags & EFLAGS_NT, 0);
	}

	/* INT n through a task gate. */
	init_task(&tss_c, S_TC, task_ret, 1);
	idt_set(0x50, S_TC, 0, 0x85);
	clear_probe();
	r = TRY(__asm__ volatile("int $0x50" ::: "memory"));
	if (check_exc("int-task-gate-round-trip", r, -1, -1)) {
		check_eq("int-task-gate-tr", t_tr, S_TC);
		check_eq("int-task-gate-nt", t_eflags & EFLAGS_NT, EFLAGS_NT);
		check_eq("int-task-gate-link", tss_c.link, TSS_SEL);
		check_eq("int-task-gate-callee-not-busy-after", ACCESS(S_TC), 0x89);
	}

	/* Busy TSS: JMP or CALL to the current task faults with #GP(selector). */
	check_exc("jmp-busy-tss", TRY(__asm__ volatile("ljmp $0x28, $0")), 13, TSS_SEL);
	check_exc("call-busy-tss", TRY(__asm__ volatile("lcall $0x28, $0")), 13, TSS_SEL);
	/* IRET with NT whose link names an available (not busy) TSS. */
	init_task(&tss_b, S_TB, task_ret, 0);
	main_tss.link = S_TB;
	r = TRY(__asm__ volatile("pushf\n\torl %0, (%%esp)\n\tpopf\n\tiret" :: "i"(EFLAGS_NT) : "memory"));
	/* Table 7-1: a not-busy TSS on IRET is #TS (JMP/CALL/INT: #GP). */
	check_exc("iret-nt-link-not-busy", r, 10, S_TB);
	main_tss.link = 0;

	/* 16-bit TSS: code below 64 KiB (IP is 16 bits). */
	static const u8 blob[] = {
		0xC7, 0x05, 0x00, 0x58, 0x00, 0x00, 0xDE, 0xC0, 0x00, 0x00, /* movl $0xC0DE, 0x5800 */
		0xCF,                                                       /* iret */
	};
	memcpy((void *)0x5000, blob, sizeof blob);
	*(volatile u32 *)0x5800 = 0;
	memset(tss16, 0, sizeof tss16);
	tss16[7] = 0x5000;   /* ip */
	tss16[8] = 0x0002;   /* flags */
	tss16[12] = 0x5F00;  /* sp */
	tss16[17] = KDATA;   /* es */
	tss16[18] = KCODE;   /* cs */
	tss16[19] = KDATA;   /* ss */
	tss16[20] = KDATA;   /* ds */
	gdt_set(S_T16 >> 3, (u32)tss16, 43, 0x81, 0x00);
	r = TRY(__asm__ volatile("lcall %0, $0" :: "i"(S_T16) : "memory"));
	if (check_exc("call-16bit-tss-round-trip", r, -1, -1)) {
		check_eq("16bit-task-ran", *(volatile u32 *)0x5800, 0xC0DE);
		check_eq("16bit-tss-link", tss16[0], TSS_SEL);
		check_eq("16bit-tss-saved-ip", tss16[7], 0x500B);
		/* §7.3 step 8: IRET clears NT in the saved image of the old task. */
		check_eq("16bit-tss-saved-nt-clear", tss16[8] & EFLAGS_NT, 0);
		check_eq("16bit-tss-not-busy-after", ACCESS(S_T16), 0x81);
	}
}
