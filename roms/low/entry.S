/* Multiboot v1 entry of the kernel linked at 0x8000 (low/link.ld): a small
 * stack in its own bss, then low_main(magic, info). */
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000002 /* memory info */

	.section .multiboot, "a"
	.align 4
	.long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

	.section .bss
	.align 16
	.space 1024
stack_top:

	.text
	.globl _start
_start:
	cli
	mov $stack_top, %esp
	push %ebx
	push %eax
	call low_main
1:	cli
	hlt
	jmp 1b

	.section .note.GNU-stack, "", @progbits
