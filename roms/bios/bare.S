/* A bare 64 KiB system ROM for `--bios`: from the reset vector it prints a
 * line on the debug console (port 0xE9) and halts. Nothing of morph86's
 * BIOS is underneath: this is the only code the machine runs. */
	.code16
	.text
	.globl _start
_start:
	cli
	movw %cs, %ax
	movw %ax, %ds
	movw $msg, %si
	movw $0xE9, %dx
1:	lodsb
	testb %al, %al
	jz 2f
	outb %al, %dx
	jmp 1b
2:	hlt
	jmp 2b

msg:
	.ascii "bare ROM: running from the reset vector, no BIOS underneath\n"
	.byte 0

	.org 0xFFF0
	ljmp $0xF000, $_start
	.org 0xFFF5
	.ascii "01/01/24"
	.org 0xFFFE
	.byte 0xFC, 0x00
