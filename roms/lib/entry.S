/* Multiboot v1 entry and the exception stubs of the test library. */
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003 /* page-align modules, memory info */

	.section .multiboot, "a"
	.align 4
	.long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

	.section .bss
	.align 16
	.globl stack_top, ring0_stack_top, user_stack_top
	.space 16384
stack_top:
	.space 16384
ring0_stack_top:
	.space 16384
user_stack_top:

	.text
	.globl _start
_start:
	cli
	mov $stack_top, %esp
	push %ebx
	push %eax
	call lib_start
1:	cli
	hlt
	jmp 1b

/* Stubs: vectors with an error code let the CPU push it; others push 0. */
	.altmacro
.macro STUB v
	.align 16
stub_\v:
	.if (\v == 8) || (\v >= 10 && \v <= 14) || (\v == 17)
	.else
	push $0
	.endif
	push $\v
	jmp isr_common
.endm

	.align 16
stubs:
	.set v, 0
	.rept 256
	STUB %v
	.set v, v + 1
	.endr

isr_common:
	pusha
	push %ds
	push %es
	push %fs
	push %gs
	mov $0x10, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %fs
	mov %ax, %gs
	cld
	push %esp
	call exc_dispatch
	add $4, %esp
	pop %gs
	pop %fs
	pop %es
	pop %ds
	popa
	add $8, %esp
	iret

	.section .data
	.align 4
	.globl isr_table
isr_table:
	.set v, 0
	.rept 256
	.long stubs + v * 16
	.set v, v + 1
	.endr

	.text
/* int tsetjmp(struct jmpbuf *) */
	.globl tsetjmp
tsetjmp:
	mov 4(%esp), %eax
	mov %ebx, 0(%eax)
	mov %esi, 4(%eax)
	mov %edi, 8(%eax)
	mov %ebp, 12(%eax)
	lea 4(%esp), %ecx
	mov %ecx, 16(%eax)
	mov (%esp), %ecx
	mov %ecx, 20(%eax)
	xor %eax, %eax
	ret

/* void tlongjmp(struct jmpbuf *, int): back to ring 0 with flat segments. */
	.globl tlongjmp
tlongjmp:
	mov 4(%esp), %edx
	mov 8(%esp), %eax
	mov $0x10, %cx
	mov %cx, %ds
	mov %cx, %es
	mov %cx, %fs
	mov %cx, %gs
	mov %cx, %ss
	mov 16(%edx), %esp
	mov 0(%edx), %ebx
	mov 4(%edx), %esi
	mov 8(%edx), %edi
	mov 12(%edx), %ebp
	pushl $0x2
	popf
	jmp *20(%edx)

/* void enter_user(fn, eflags): IRET to ring 3 at user_trampoline. */
	.globl enter_user
enter_user:
	mov 4(%esp), %eax
	mov 8(%esp), %ecx
	pushl $0x23
	pushl $user_stack_top
	push %ecx
	pushl $0x1B
	pushl $user_trampoline
	mov $0x23, %dx
	mov %dx, %ds
	mov %dx, %es
	mov %dx, %fs
	mov %dx, %gs
	iret
user_trampoline:
	call *%eax
	int $0x81
	ud2

	.section .note.GNU-stack, "", @progbits
