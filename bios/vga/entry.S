/* The VGA BIOS's header and entry points. */
	.code16
	.section .header, "ax"
	.globl rom_header
rom_header:
	.byte 0x55, 0xAA
	.byte 0			/* size in 512-byte blocks: set by the build */
	jmp vga_init_entry
	.org 0x1E
	.ascii "IBM"		/* as VGA BIOSes have, for programs that look */
	.org 0x40

	.text
/* Option ROM initialisation, far-called by POST. */
vga_init_entry:
	pushal
	pushw %ds
	pushw %es
	pushw %fs
	pushw %gs
	movw %ss, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %cs, %ax
	movw %ax, %fs
	pushl %esp
	movzwl %sp, %esp
	cld
	calll vga_post
	popl %esp
	popw %gs
	popw %fs
	popw %es
	popw %ds
	popal
	lret

/* INT 10h, on the caller's stack: DS = ES = SS for C, FS = CS for the
 * ROM's tables; ESP's high half is kept and restored. */
	.globl int10_entry
int10_entry:
	pushal
	pushw %es
	pushw %ds
	pushw %fs
	pushw %gs
	movw %ss, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %cs, %ax
	movw %ax, %fs
	pushl %esp
	movzwl %sp, %esp
	cld
	leal 8(%esp), %eax
	calll vga_int10
	popl %esp
	popw %gs
	popw %fs
	popw %ds
	popw %es
	popal
	iret

/* The VBE window function (far-called, as ModeInfoBlock.WinFuncPtr). */
	.globl vbe_window_func
vbe_window_func:
	pushw %dx
	pushw %ax
	cmpb $1, %bh
	je 1f
	movw %dx, %ax
	pushw %ax
	movw $0x1CE, %dx
	movw $5, %ax
	outw %ax, %dx
	popw %ax
	movw $0x1CF, %dx
	outw %ax, %dx
	popw %ax
	popw %dx
	movw $0x004F, %ax
	lret
1:	movw $0x1CE, %dx
	movw $5, %ax
	outw %ax, %dx
	movw $0x1CF, %dx
	inw %dx, %ax
	movw %ax, %dx
	popw %ax
	addw $2, %sp
	movw $0x004F, %ax
	lret

/* Strings VBE hands out far pointers to. */
	.globl vbe_oem_string, vbe_vendor_string, vbe_product_string, vbe_revision_string
vbe_oem_string:
	.asciz "morph86 VGA BIOS"
vbe_vendor_string:
	.asciz "morph86"
vbe_product_string:
	.asciz "morph86 Bochs-compatible VBE adapter"
vbe_revision_string:
	.asciz "1.0"

/* The fonts, filled in by the build from the machine's 8x16 font: 8x16
 * (256 x 16 bytes), 8x14 and 8x8 derived from it. */
	.section .fonts, "a"
	.globl font8x16, font8x14, font8x8
font8x16:
	.fill 4096, 1, 0
font8x14:
	.fill 3584, 1, 0
font8x8:
	.fill 2048, 1, 0
