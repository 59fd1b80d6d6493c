/* A boot sector for the BIOS's VBE services (tests/bios.rs): it asks INT
 * 10h for the controller (4F00h) and for mode 142h, 640x480x32 (4F01h),
 * sets that mode with the linear framebuffer (4F02h, BX = 4142h), reports
 * each answer on port 0xE9 ("VBE00 ax version", "VBE01 ax attributes width
 * height bpp pitch lfb-high lfb-low", "VBE02 ax"), then switches to 32-bit
 * protected mode and fills the framebuffer with a pattern the test
 * recomputes: pixel (x, y) = (x & 0xFF) << 16 | (y & 0xFF) << 8 |
 * ((x ^ y) & 0xFF). It ends with "VBE DONE" and HLT. */
	.code16
	.text
	.globl _start
_start:
	ljmp $0x07C0, $start	/* linked at 0: CS = DS = ES = 07C0 */
start:
	cli
	xorw %ax, %ax
	movw %ax, %ss
	movw $0x7C00, %sp
	movw %cs, %ax
	movw %ax, %ds
	movw %ax, %es
	sti

	movw $0x4F00, %ax		/* controller information at DS:1000 */
	movl $0x32454256, 0x1000	/* "VBE2": ask for VBE 2.0+ fields */
	movw $0x1000, %di
	int $0x10
	pushw %ax
	movw $s_vbe00, %si
	call puts
	popw %ax
	call hex16
	movw 0x1004, %ax		/* version */
	call hex16
	cmpl $0x41534556, 0x1000	/* "VESA" */
	je 1f
	movw $s_nosig, %si
	call puts
1:	call newline

	movw $0x4F01, %ax		/* mode information at DS:1200 */
	movw $0x142, %cx
	movw $0x1200, %di
	int $0x10
	pushw %ax
	movw $s_vbe01, %si
	call puts
	popw %ax
	call hex16
	movw 0x1200, %ax		/* attributes */
	call hex16
	movw 0x1212, %ax		/* width */
	call hex16
	movw 0x1214, %ax		/* height */
	call hex16
	movzbw 0x1219, %ax		/* bits per pixel */
	call hex16
	movw 0x1210, %ax		/* bytes per scan line */
	call hex16
	movw 0x122A, %ax		/* PhysBasePtr, high then low */
	call hex16
	movw 0x1228, %ax
	call hex16
	call newline

	movw $0x4F02, %ax		/* set it, linear framebuffer */
	movw $0x4142, %bx
	int $0x10
	pushw %ax
	movw $s_vbe02, %si
	call puts
	popw %ax
	call hex16
	call newline

	/* Flat 32-bit protected mode (no return: the BIOS is done with). */
	cli
	lgdt gdt_desc
	movl %cr0, %eax
	orb $1, %al
	movl %eax, %cr0
	ljmp $0x08, $0x7C00 + pm

	.code32
pm:
	movw $0x10, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movl 0x7C00 + 0x1228, %edi	/* the framebuffer */
	movzwl 0x7C00 + 0x1210, %ebp	/* the pitch */
	xorl %edx, %edx			/* y */
row:
	pushl %edi
	xorl %ecx, %ecx			/* x */
col:
	movl %ecx, %eax
	andl $0xFF, %eax
	shll $16, %eax
	movl %edx, %ebx
	andl $0xFF, %ebx
	shll $8, %ebx
	orl %ebx, %eax
	movl %ecx, %ebx
	xorl %edx, %ebx
	andl $0xFF, %ebx
	orl %ebx, %eax
	movl %eax, (%edi,%ecx,4)
	incl %ecx
	cmpl $640, %ecx
	jb col
	popl %edi
	addl %ebp, %edi
	incl %edx
	cmpl $480, %edx
	jb row
	movl $0x7C00 + s_done, %esi
2:	lodsb
	testb %al, %al
	jz 3f
	outb %al, $0xE9
	jmp 2b
3:	hlt
	jmp 3b

	.code16
/* Prints the NUL-terminated string at DS:SI on port 0xE9. */
puts:
	lodsb
	testb %al, %al
	jz 1f
	outb %al, $0xE9
	jmp puts
1:	ret

/* Prints " " and AX in four hex digits. */
hex16:
	pushw %ax
	movb $' ', %al
	outb %al, $0xE9
	popw %ax
	pushw %ax
	movw $4, %cx
1:	rolw $4, %ax
	pushw %ax
	andb $0x0F, %al
	addb $'0', %al
	cmpb $'9', %al
	jbe 2f
	addb $7, %al
2:	outb %al, $0xE9
	popw %ax
	loop 1b
	popw %ax
	ret

newline:
	movb $'\n', %al
	outb %al, $0xE9
	ret

	.p2align 3
gdt:
	.quad 0
	.quad 0x00CF9A000000FFFF	/* 0x08: code, flat, 32-bit */
	.quad 0x00CF92000000FFFF	/* 0x10: data, flat */
gdt_desc:
	.word gdt_desc - gdt - 1
	.long 0x7C00 + gdt

s_vbe00: .asciz "VBE00"
s_vbe01: .asciz "VBE01"
s_vbe02: .asciz "VBE02"
s_nosig: .asciz " no-VESA"
s_done:	.asciz "VBE DONE\n"

	.org 510
	.word 0xAA55
