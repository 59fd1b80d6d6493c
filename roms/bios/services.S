/* An option ROM that tests the BIOS from inside a guest. POST far-calls
 * its initialisation entry (offset 3) after installing its services, as
 * it does for any option ROM in 0xC8000-0xDFFFF. The test harness sets
 * the byte at offset 6 to choose what it does (and makes the size byte
 * and checksum good):
 *
 *   0  call the services and report the results on port 0xE9, one per
 *      line, in the form tests/bios.rs parses;
 *   1  a reset test: the first POST sets shutdown code 0x0A with a resume
 *      address at 40:67 and resets through the 8042; the resumed code
 *      resets again through 0xCF9; the POST after that reports and goes
 *      on (CMOS 0x50 counts the steps). */
	.code16
	.text
	.globl _start
_start:
	.byte 0x55, 0xAA, 0
	.byte 0xE9			/* JMP near init (offset 3; mode at 6) */
	.word init - (. + 2)
mode:	.byte 0

init:
	pushal
	pushw %ds
	pushw %es
	movw %cs, %ax
	movw %ax, %ds
	cmpb $1, mode
	je reset_test
	call services
done:
	popw %es
	popw %ds
	popal
	lret

/* --- output on port 0xE9 ------------------------------------------------- */

/* Prints the NUL-terminated string at DS:SI. */
puts:
	pushw %ax
	pushw %dx
	movw $0xE9, %dx
1:	lodsb
	testb %al, %al
	jz 2f
	outb %al, %dx
	jmp 1b
2:	popw %dx
	popw %ax
	ret

putc:
	pushw %dx
	movw $0xE9, %dx
	outb %al, %dx
	popw %dx
	ret

/* Prints EAX as eight hex digits. */
hex32:
	pushl %eax
	pushw %cx
	movw $8, %cx
1:	roll $4, %eax
	pushl %eax
	andb $0x0F, %al
	addb $'0', %al
	cmpb $'9', %al
	jbe 2f
	addb $'a' - '9' - 1, %al
2:	call putc
	popl %eax
	loop 1b
	popw %cx
	popl %eax
	ret

space:
	pushw %ax
	movb $' ', %al
	call putc
	popw %ax
	ret

newline:
	pushw %ax
	movb $'\n', %al
	call putc
	popw %ax
	ret

/* Prints the label at SI, then EAX, EBX, ECX, EDX and the flags the
 * caller pushed (REPORT does both). */
.macro REPORT label
	pushfl
	movw $\label, %si
	call report
	addw $4, %sp
.endm

report:
	pushw %bp
	movw %sp, %bp
	call puts
	call space
	call hex32
	call space
	pushl %eax
	movl %ebx, %eax
	call hex32
	call space
	movl %ecx, %eax
	call hex32
	call space
	movl %edx, %eax
	call hex32
	call space
	movl 4(%bp), %eax
	call hex32
	call newline
	popl %eax
	popw %bp
	ret

/* --- the services ---------------------------------------------------------- */

services:
	/* INT 15h E820h into 0000:7E00, entry by entry. */
	xorl %ebx, %ebx
e820_loop:
	xorw %ax, %ax
	movw %ax, %es
	movw $0x7E00, %di
	movl $0xE820, %eax
	movl $0x534D4150, %edx
	movl $20, %ecx
	int $0x15
	jc e820_done
	movw $s_e820, %si
	call puts
	movl %es:0x7E04, %eax
	call hex32
	movl %es:0x7E00, %eax
	call hex32
	call space
	movl %es:0x7E0C, %eax
	call hex32
	movl %es:0x7E08, %eax
	call hex32
	call space
	movl %es:0x7E10, %eax
	call hex32
	call newline
	testl %ebx, %ebx
	jnz e820_loop
e820_done:
	movw $s_e820end, %si
	call puts

	int $0x12
	REPORT s_int12
	int $0x11
	REPORT s_int11
	movw $0x0200, %ax	/* printer 0 status: no parallel port here */
	xorw %dx, %dx
	int $0x17
	REPORT s_int17
	movw $0xE801, %ax
	int $0x15
	REPORT s_e801
	movb $0x88, %ah
	int $0x15
	REPORT s_int1588
	movb $0x02, %ah
	int $0x1A
	REPORT s_time
	movb $0x04, %ah
	int $0x1A
	REPORT s_date
	movw $0xB101, %ax
	int $0x1A
	REPORT s_pci
	movw $0xB102, %ax
	movw $0x7000, %cx
	movw $0x8086, %dx
	xorw %si, %si
	int $0x1A
	REPORT s_pcifind
	movb $0xC0, %ah
	int $0x15
	movzbl %es:2(%bx), %ecx
	REPORT s_c0
	movw $0x2402, %ax
	int $0x15
	REPORT s_a20
	movb $0x01, %ah
	int $0x16
	REPORT s_kbd
	/* INT 15h 86h: wait 100 ms (CX:DX microseconds). */
	xorb %ah, %ah
	int $0x1A
	pushw %dx
	movb $0x86, %ah
	movw $0x0001, %cx
	movw $0x86A0, %dx
	int $0x15
	setc %cl
	xorb %ah, %ah
	int $0x1A
	popw %bx
	subw %bx, %dx
	movw %dx, %bx
	movzbl %cl, %ecx
	REPORT s_wait
	movb $0x08, %ah
	movb $0x80, %dl
	int $0x13
	REPORT s_int13

	/* The tables, found by the usual scans of 0xE0000-0xFFFFF. */
	movl $0x20445352, %eax	/* "RSD " */
	movl $0x20525450, %edx	/* "PTR " */
	call scan8
	REPORT s_rsdp
	movl $0x5F504D5F, %eax	/* "_MP_" */
	xorl %edx, %edx
	call scan4
	REPORT s_mp
	movl $0x5F4D535F, %eax	/* "_SM_" */
	call scan4
	REPORT s_smbios

	/* A key through the 8042 (command D2: a byte as if the keyboard
	 * sent it), taken by IRQ1 into the buffer, read by INT 16h: 'a',
	 * then shift-'a'. */
	movb $0x1E, %al
	call kbd_byte
	movb $0x9E, %al
	call kbd_byte
	movb $0x2A, %al
	call kbd_byte
	movb $0x1E, %al
	call kbd_byte
	movb $0x9E, %al
	call kbd_byte
	movb $0xAA, %al
	call kbd_byte
	xorb %ah, %ah
	int $0x16
	movw %ax, %bx
	xorb %ah, %ah
	int $0x16
	movw %ax, %cx
	movb $0x02, %ah
	int $0x16
	REPORT s_keys

	/* INT 15h 87h: 16 bytes from 0000:7E00 to 2 MiB, and back to 0000:7F00. */
	xorw %ax, %ax
	movw %ax, %es
	movw $0x7A00, %di
	movw $24, %cx
	rep stosw
	movw $s_move, %si
	movw $0x7E00, %di
	movw $16, %cx
	rep movsb
	movw $0x7E00, %ax
	movb $0x00, %dl
	movw $0x0000, %bx
	movb $0x20, %dh
	call move16
	REPORT s_move1
	movw $0x0000, %ax
	movb $0x20, %dl
	movw $0x7F00, %bx
	movb $0x00, %dh
	call move16
	REPORT s_move2
	movw $s_moved, %si
	call puts
	pushw %ds
	xorw %ax, %ax
	movw %ax, %ds
	movw $0x7F00, %si
	movw $16, %cx
1:	lodsb
	call putc
	loop 1b
	popw %ds
	call newline

	/* INT 1Ah B10Eh: the PCI IRQ routing table into 0000:7B00. */
	xorw %ax, %ax
	movw %ax, %es
	movw $256, %es:0x7A00
	movw $0x7B00, %es:0x7A02
	movw %ax, %es:0x7A04
	movw $0x7A00, %di
	movw $0xB10E, %ax
	xorw %bx, %bx
	int $0x1A
	movw %es:0x7A00, %cx
	movw %es:0x7B00, %dx	/* first entry: bus, devfn */
	REPORT s_pirq

	/* INT 14h on COM1: 9600 baud, 8N1; then a line. */
	movw $0x00E3, %ax
	xorw %dx, %dx
	int $0x14
	movw $s_serial, %si
1:	lodsb
	testb %al, %al
	jz 2f
	movb $0x01, %ah
	xorw %dx, %dx
	int $0x14
	jmp 1b
2:
	/* Teletype output, which reaches the screen through the VGA BIOS. */
	movw $s_screen, %si
1:	lodsb
	testb %al, %al
	jz 2f
	movb $0x0E, %ah
	movw $0x0007, %bx
	int $0x10
	jmp 1b
2:	movw $s_done, %si
	call puts
	ret

/* Sends AL through the 8042 as keyboard data and lets IRQ1 take it. */
kbd_byte:
	pushw %ax
1:	inb $0x64, %al
	testb $2, %al
	jnz 1b
	movb $0xD2, %al
	outb %al, $0x64
1:	inb $0x64, %al
	testb $2, %al
	jnz 1b
	popw %ax
	outb %al, $0x60
	sti
	nop
	nop
	cli
	ret

/* INT 15h 87h for 8 words: source AX + DL << 16, destination BX + DH << 16,
 * with the descriptor table at 0000:7A00. */
move16:
	pushw %es
	xorw %si, %si
	movw %si, %es
	movw $0xFFFF, %es:0x7A10
	movw %ax, %es:0x7A12
	movb %dl, %es:0x7A14
	movb $0x93, %es:0x7A15
	movw $0xFFFF, %es:0x7A18
	movw %bx, %es:0x7A1A
	movb %dh, %es:0x7A1C
	movb $0x93, %es:0x7A1D
	movw $0x7A00, %si
	movw $8, %cx
	movb $0x87, %ah
	int $0x15
	popw %es
	ret

/* Finds EAX:EDX (8 bytes) on a 16-byte boundary in 0xE0000-0xFFFFF;
 * EBX = the linear address found, or 0. */
scan8:
	pushw %es
	movw $0xE000, %bx
1:	movw %bx, %es
	cmpl %es:0, %eax
	jne 2f
	cmpl %es:4, %edx
	je 3f
2:	incw %bx
	jnz 1b
	xorl %ebx, %ebx
	popw %es
	ret
3:	movzwl %bx, %ebx
	shll $4, %ebx
	popw %es
	ret

/* The same for 4 bytes. */
scan4:
	pushw %es
	movw $0xE000, %bx
1:	movw %bx, %es
	cmpl %es:0, %eax
	je 3f
	incw %bx
	jnz 1b
	xorl %ebx, %ebx
	popw %es
	ret
3:	movzwl %bx, %ebx
	shll $4, %ebx
	popw %es
	ret

/* --- the reset test ---------------------------------------------------------- */

cmos_read:		/* AL = index -> AL */
	outb %al, $0x70
	inb $0x71, %al
	ret
cmos_write:		/* AH = index, AL = value */
	xchgb %al, %ah
	outb %al, $0x70
	xchgb %al, %ah
	outb %al, $0x71
	ret

reset_test:
	movb $0x50, %al
	call cmos_read
	cmpb $2, %al
	je after_cold_reset
	movw $s_first, %si
	call puts
	movw $0x5001, %ax
	call cmos_write
	/* 40:67 = our resume code; shutdown code 0x0A; reset by the 8042. */
	xorw %ax, %ax
	movw %ax, %es
	movw $resume, %es:0x467
	movw %cs, %es:0x469
	movw $0x0F0A, %ax
	call cmos_write
	movb $0xFE, %al
	outb %al, $0x64
1:	hlt
	jmp 1b

resume:
	movw %cs, %ax
	movw %ax, %ds
	movw $s_resumed, %si
	call puts
	movw $0x5002, %ax
	call cmos_write
	movb $0x06, %al
	movw $0xCF9, %dx
	outb %al, %dx
1:	hlt
	jmp 1b

after_cold_reset:
	movw $0x5000, %ax
	call cmos_write
	movw $s_again, %si
	call puts
	jmp done

s_e820:		.asciz "E820 "
s_e820end:	.asciz "E820 end\n"
s_int12:	.asciz "INT12"
s_int11:	.asciz "INT11"
s_int17:	.asciz "INT17"
s_e801:		.asciz "E801"
s_int1588:	.asciz "INT1588"
s_time:		.asciz "TIME"
s_date:		.asciz "DATE"
s_pci:		.asciz "PCI"
s_pcifind:	.asciz "PCIFIND"
s_c0:		.asciz "C0"
s_a20:		.asciz "A20"
s_kbd:		.asciz "KBD"
s_wait:		.asciz "WAIT"
s_int13:	.asciz "INT13"
s_rsdp:		.asciz "RSDP"
s_mp:		.asciz "MP"
s_smbios:	.asciz "SMBIOS"
s_keys:		.asciz "KEYS"
s_move:		.ascii "BLOCK MOVE TEST!"
s_move1:	.asciz "MOVE1"
s_move2:	.asciz "MOVE2"
s_moved:	.asciz "MOVED "
s_pirq:		.asciz "PIRQ"
s_serial:	.asciz "INT 14h on COM1\n"
s_screen:	.asciz "Hello from the option ROM"
s_done:		.asciz "DONE\n"
s_first:	.asciz "RESET TEST: first POST\n"
s_resumed:	.asciz "RESET TEST: resumed through 40:67\n"
s_again:	.asciz "RESET TEST: POST after the cold reset\n"
