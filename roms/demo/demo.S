/* morph86's built-in demo disk: what `morph86 run` boots with no options.
 * A boot sector that loads the rest of the program with INT 13h, then
 * writes a screen of text through INT 10h (coloured with function 13h),
 * draws a Mandelbrot set in mode 13h with a caption in the BIOS's font,
 * reads the picture back for a checksum, and returns to text mode with a
 * summary before halting with interrupts off (which ends the run).
 * Every service is the BIOS's: nothing here touches a device directly.
 * Linked at 0x7C00 (flat binary; the BIOS jumps to 0000:7C00). */
	.code16
	.text
	.globl _start
_start:
	ljmp $0, $start
start:
	cli
	xorw %ax, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw $0x7C00, %sp
	sti
	cld
	movb %dl, drive
	/* The rest of the program: sectors 2.. of track 0, head 0. */
	movw $0x0200 + STAGE2_SECTORS, %ax
	movw $0x0002, %cx
	xorb %dh, %dh
	movw $0x7E00, %bx
	int $0x13
	jnc stage2
	movw $s_loadfail, %si
1:	lodsb
	testb %al, %al
	jz 2f
	movb $0x0E, %ah
	xorw %bx, %bx
	int $0x10
	jmp 1b
2:	cli
	hlt
	jmp 2b

s_loadfail: .asciz "morph86 demo: INT 13h could not read the rest of the program"
drive:	.byte 0

	.org 510
	.word 0xAA55

/* ---- Stage 2, at 0x7E00 ---------------------------------------------- */
stage2:
	movw $0x0003, %ax		/* 80x25 colour text */
	int $0x10
	/* A blue bar for the title, row 0; AH=09h: AL=' ', BL=attr, CX=80 at the cursor (0,0). */
	movw $0x0920, %ax
	movw $0x001F, %bx
	movw $80, %cx
	int $0x10
	movw $0x0000, %dx
	movb $0x1F, %bl
	movw $s_title, %si
	call cputs

	movw $0x0200, %dx		/* row 2 */
	movb $0x0F, %bl
	movw $s_booted, %si
	call cputs
	movb drive, %al
	call hex8
	movb $'h', %al
	call putc

	movw $0x0300, %dx
	movb $0x07, %bl
	movw $s_base, %si
	call cputs
	int $0x12
	call dec16
	movw $s_kib, %si
	call puts

	/* INT 15h E801h: AX = KiB from 1 to 16 MiB, BX = 64 KiB blocks above. */
	movw $0x0400, %dx
	movb $0x07, %bl
	movw $s_mem, %si
	call cputs
	movw $0xE801, %ax
	int $0x15
	jc 1f
	shrw $4, %bx
	shrw $10, %ax
	addw %bx, %ax
	incw %ax
	call dec16
	movw $s_mib, %si
	call puts
	jmp 2f
1:	movw $s_unknown, %si
	call puts
2:
	movw $0x0500, %dx
	movb $0x07, %bl
	movw $s_clock, %si
	call cputs
	movb $0x02, %ah			/* INT 1Ah 02h: RTC time, BCD */
	int $0x1A
	movb %ch, %al
	call hex8
	movb $':', %al
	call putc
	movb %cl, %al
	call hex8
	movb $':', %al
	call putc
	movb %dh, %al
	call hex8

	movw $0x0700, %dx
	movb $0x0E, %bl
	movw $s_next, %si
	call cputs
	call pause

	/* ---- Mode 13h: a Mandelbrot set, fixed point with 12 fraction bits. */
	movw $0x0013, %ax
	int $0x10
	pushw $0xA000
	popw %es
	xorw %di, %di
	movl $-4915, y0			/* ci = -1.2 */
	xorw %si, %si			/* row */
row:
	movl $-10240, x0		/* cr = -2.5 */
	xorw %cx, %cx			/* column */
col:
	xorl %eax, %eax			/* zr */
	xorl %ebx, %ebx			/* zi */
	movw $ITER, iter
iterate:
	movl %eax, %edx
	imull %edx, %edx		/* zr^2 */
	sarl $12, %edx
	movl %edx, zr2
	movl %ebx, %edx
	imull %edx, %edx		/* zi^2 */
	sarl $12, %edx
	movl %edx, zi2
	addl zr2, %edx
	cmpl $4 * 4096, %edx
	jg escaped
	imull %eax, %ebx		/* zi = 2 zr zi + ci */
	sarl $11, %ebx
	addl y0, %ebx
	movl zr2, %eax			/* zr = zr^2 - zi^2 + cr */
	subl zi2, %eax
	addl x0, %eax
	decw iter
	jnz iterate
	xorb %al, %al			/* inside: black */
	jmp plot
escaped:
	movw iter, %ax
	addb $32, %al			/* the default palette's colour wheels */
plot:
	stosb
	addl $44, x0			/* 3.5 / 320 */
	incw %cx
	cmpw $320, %cx
	jb col
	addl $49, y0			/* 2.4 / 200 */
	incw %si
	cmpw $200, %si
	jb row

	/* A caption in the BIOS's 8x8 font, white on the picture. */
	xorw %ax, %ax
	movw %ax, %es
	movw $0x0000, %dx
	movb $0x0F, %bl
	movw $s_caption, %si
	call cputs

	/* A checksum of the picture, read back from video memory. */
	pushw %ds
	pushw $0xA000
	popw %ds
	xorw %si, %si
	xorw %dx, %dx
	movw $64000, %cx
	xorb %ah, %ah
1:	lodsb
	addw %ax, %dx
	rolw $1, %dx
	loop 1b
	popw %ds
	movw %dx, checksum
	call pause

	/* ---- Back to text mode with the summary. */
	movw $0x0003, %ax
	int $0x10
	movw $0x0920, %ax
	movw $0x002F, %bx
	movw $80, %cx
	int $0x10
	movw $0x0000, %dx
	movb $0x2F, %bl
	movw $s_done, %si
	call cputs
	movw $0x0200, %dx
	movb $0x07, %bl
	movw $s_summary1, %si
	call cputs
	movw $0x0300, %dx
	movw $s_summary2, %si
	call cputs
	movw checksum, %ax
	movb %ah, %al
	call hex8
	movb checksum, %al
	call hex8
	movw $0x0500, %dx
	movb $0x0E, %bl
	movw $s_bye, %si
	call cputs
	movw $0x0600, %dx
	movw $s_bye2, %si
	call cputs
	movw $0x0800, %dx		/* leave the cursor below */
	movb $0x02, %ah
	xorb %bh, %bh
	int $0x10
	cli
1:	hlt
	jmp 1b

/* Waits about a second (INT 15h 86h; with interrupts on, so the timer
 * keeps the virtual clock moving). */
pause:
	movw $0x000F, %cx
	movw $0x4240, %dx
	movb $0x86, %ah
	int $0x15
	ret

/* Writes the NUL-terminated string at SI at row DH, column DL in
 * attribute BL (INT 10h 13h, cursor moved), page 0. ES must be 0. */
cputs:
	pushw %es
	pushw %ds
	popw %es
	movw %si, %bp
	xorw %cx, %cx
1:	lodsb
	testb %al, %al
	jz 2f
	incw %cx
	jmp 1b
2:	movw $0x1301, %ax
	xorb %bh, %bh
	int $0x10
	popw %es
	ret

/* Teletype output of the string at SI, and of the character in AL. */
puts:
	lodsb
	testb %al, %al
	jz 1f
	call putc
	jmp puts
1:	ret
putc:
	pushw %bx
	movb $0x0E, %ah
	movw $0x0007, %bx
	int $0x10
	popw %bx
	ret

/* AL in hex. */
hex8:
	pushw %ax
	shrb $4, %al
	call nibble
	popw %ax
nibble:
	andb $0x0F, %al
	addb $'0', %al
	cmpb $'9', %al
	jbe putc
	addb $'A' - '9' - 1, %al
	jmp putc

/* AX in decimal. */
dec16:
	xorw %cx, %cx
	movw $10, %bx
1:	xorw %dx, %dx
	divw %bx
	pushw %dx
	incw %cx
	testw %ax, %ax
	jnz 1b
2:	popw %ax
	addb $'0', %al
	call putc
	loop 2b
	ret

s_title:	.asciz " morph86 demo disk "
s_booted:	.asciz "Booted by morph86's BIOS (INT 19h) from drive "
s_base:		.asciz "Base memory (INT 12h): "
s_kib:		.asciz " KiB"
s_mem:		.asciz "Memory (INT 15h E801h): "
s_mib:		.asciz " MiB"
s_unknown:	.asciz "unknown"
s_clock:	.asciz "RTC time (INT 1Ah): "
s_next:		.asciz "Next: a Mandelbrot set in mode 13h (320x200, 256 colours)."
s_caption:	.asciz "morph86: mode 13h"
s_done:		.asciz " morph86 demo: done "
s_summary1:	.asciz "Text through INT 10h, then a Mandelbrot set drawn in mode 13h."
s_summary2:	.asciz "Picture checksum, read back from video memory: "
s_bye:		.asciz "Boot your own images: morph86 run --hda disk.img (or --cdrom, --fda)."
s_bye2:		.asciz "The machine halts now."

	.set ITER, 48
	.set STAGE2_SECTORS, 3
	.balign 4
x0:	.long 0
y0:	.long 0
zr2:	.long 0
zi2:	.long 0
iter:	.word 0
checksum: .word 0
/* The build checks that the program fits 1 + STAGE2_SECTORS sectors. */
