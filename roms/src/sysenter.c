/* sysenter: fast system calls.
 * Intel SDM Vol. 3A §5.8.7 (SYSENTER/SYSEXIT, IA32_SYSENTER_CS/ESP/EIP =
 * MSRs 0x174-0x176), Vol. 2 SYSENTER (CS = SYSENTER_CS & 0xFFFC, SS = CS + 8,
 * flat descriptors; VM, IF, RF cleared; #GP(0) when SYSENTER_CS[15:2] = 0)
 * and SYSEXIT (CS = SYSENTER_CS + 16 | 3, SS = SYSENTER_CS + 24 | 3, ESP = ECX,
 * EIP = EDX; #GP(0) at CPL != 0 or when SYSENTER_CS = 0). */
#include "test.h"

const char test_name[] = "sysenter";

volatile u32 se_cs, se_ss, se_esp, se_eflags, se_user_cs, se_user_ss, se_user_esp, se_esp_before;

void sysenter_entry(void);
void u_sysenter(void);
__asm__(
	".text\n"
	"sysenter_entry:\n"
	"	mov %cs, %eax\n"
	"	mov %eax, se_cs\n"
	"	mov %ss, %eax\n"
	"	mov %eax, se_ss\n"
	"	mov %esp, se_esp\n"
	"	pushf\n"
	"	popl se_eflags\n"
	"	sysexit\n"
	"u_sysenter:\n"
	"	push %ebx\n"
	"	mov %esp, %ecx\n"
	"	mov %esp, se_esp_before\n"
	"	mov $1f, %edx\n"
	"	sysenter\n"
	"1:	mov %cs, %eax\n"
	"	mov %eax, se_user_cs\n"
	"	mov %ss, %eax\n"
	"	mov %eax, se_user_ss\n"
	"	mov %esp, se_user_esp\n"
	"	pop %ebx\n"
	"	ret\n");

static void u_sysexit(void) { __asm__ volatile("sysexit"); }

#define SE_STACK_TOP ((u32)ring0_stack_top - 256)

void test_main(void)
{
	wrmsr(0x174, KCODE);
	wrmsr(0x175, SE_STACK_TOP);
	wrmsr(0x176, (u32)sysenter_entry);
	check_eq("msr-sysenter-cs", (u32)rdmsr(0x174), KCODE);
	check_eq("msr-sysenter-esp", (u32)rdmsr(0x175), SE_STACK_TOP);
	check_eq("msr-sysenter-eip", (u32)rdmsr(0x176), (u32)sysenter_entry);

	int r = TRY(run_user(u_sysenter, EFLAGS_IF));
	if (check_exc("sysenter-sysexit-round-trip", r, -1, -1)) {
		check_eq("sysenter-cs", se_cs & 0xFFFF, KCODE);
		check_eq("sysenter-ss", se_ss & 0xFFFF, KDATA);
		check_eq("sysenter-esp", se_esp, SE_STACK_TOP);
		check_eq("sysenter-clears-if", se_eflags & EFLAGS_IF, 0);
		check_eq("sysexit-cs", se_user_cs & 0xFFFF, UCODE);
		check_eq("sysexit-ss", se_user_ss & 0xFFFF, UDATA);
		check_eq("sysexit-esp-from-ecx", se_user_esp, se_esp_before);
	}
	/* RPL bits of SYSENTER_CS are ignored for SYSENTER. */
	wrmsr(0x174, KCODE | 3);
	r = TRY(run_user(u_sysenter, 0));
	if (check_exc("sysenter-cs-rpl-ignored", r, -1, -1))
		check_eq("sysenter-cs-rpl-cleared", se_cs & 0xFFFF, KCODE);
	wrmsr(0x174, KCODE);
	check_exc("sysexit-from-ring3", TRY(run_user(u_sysexit, 0)), 13, 0);
	wrmsr(0x174, 0);
	check_exc("sysenter-cs-zero", TRY(run_user(u_sysenter, 0)), 13, 0);
	check_exc("sysexit-cs-zero", TRY(__asm__ volatile("sysexit")), 13, 0);
	wrmsr(0x174, KCODE);
}
