/* A boot sector (or El Torito boot image) for the BIOS tests: it reports
 * on port 0xE9 what INT 13h tells it about its boot drive and what it
 * reads there, then halts. Lines: "BOOT dl", then "LABEL ax bx cx dx
 * flags" for each call, "DATA <8 bytes as text>" for each read. */
	.code16
	.text
	.globl _start
_start:
	ljmp $0x07C0, $start	/* entered at 0000:7C00 or 07C0:0000 */
start:
	cli
	xorw %ax, %ax
	movw %ax, %ss
	movw $0x7C00, %sp
	movw %cs, %ax
	movw %ax, %ds
	movw %ax, %es
	sti
	movb %dl, drive
	movw $s_boot, %si
	call puts
	movb drive, %al
	call hex8
	call newline

	movb $0x08, %ah		/* geometry */
	call int13
	movw $s_geom, %si
	call report

	cmpb $0x80, drive
	jb floppy

	movw $0x4100, %ax	/* EDD installation check */
	movw $0x55AA, %bx
	call int13
	movw $s_edd, %si
	call report

	movw $66, buf		/* drive parameters */
	movb $0x48, %ah
	movw $buf, %si
	call int13
	movw buf, %ax		/* size, total sectors (low), bytes/sector, 0BEDDh */
	movw buf + 16, %bx
	movw buf + 24, %cx
	movw buf + 30, %dx
	movw $s_params, %si
	call report

	movw $16, dap_lba	/* LBA 16 of a CD, else LBA 1 */
	cmpb $0xE0, drive
	jae 1f
	movw $1, dap_lba
1:	movb $0x42, %ah
	movw $dap, %si
	call int13
	call data

	cmpb $0xE0, drive
	jae cdrom
	movw $0x0201, %ax	/* CHS 0/1/1: LBA 63 (63 sectors a track) */
	movw $0x0001, %cx
	movb $0x01, %dh
	movw $buf, %bx
	call int13
	call data
	movw $2, dap_lba	/* write LBA 2 from our own image */
	movw $0, dap_off
	movb $0x43, %ah
	movw $dap, %si
	call int13
	movw $s_write, %si
	call report
	jmp done

cdrom:
	movw $0x4B01, %ax	/* El Torito status */
	movw $buf, %si
	call int13
	movw buf + 1, %ax	/* media, drive */
	movw buf + 4, %bx	/* image LBA (low) */
	movw buf + 14, %cx	/* sector count */
	movw buf + 12, %dx	/* load segment */
	movw $s_emu, %si
	call report
	jmp done

floppy:
	movw $0x0201, %ax	/* CHS 0/0/2: LBA 1 */
	movw $0x0002, %cx
	xorb %dh, %dh
	movw $buf, %bx
	call int13
	call data

done:
	movw $s_done, %si
	call puts
	cli
1:	hlt
	jmp 1b

/* INT 13h on the boot drive, with DS = ES = ours (08h returns a
 * floppy's parameter table in ES:DI). */
int13:
	pushw %cs
	popw %es
	movb drive, %dl
	int $0x13
	ret

/* Prints "DATA " and the first 8 bytes of buf as text, with the flags. */
data:
	pushf
	movw $s_data, %si
	call puts
	movw $buf, %si
	movw $8, %cx
1:	lodsb
	call putc
	loop 1b
	call space
	popw %ax
	call hex16
	jmp newline

/* Prints the label at SI, AX, BX, CX, DX and the flags. */
report:
	pushf
	pushw %ax
	call puts
	call space
	popw %ax
	call hex16
	call space
	movw %bx, %ax
	call hex16
	call space
	movw %cx, %ax
	call hex16
	call space
	movw %dx, %ax
	call hex16
	call space
	popw %ax
	call hex16
	/* fall through */
newline:
	movb $'\n', %al
	jmp putc
space:
	movb $' ', %al
putc:
	pushw %dx
	movw $0xE9, %dx
	outb %al, %dx
	popw %dx
	ret
puts:
	lodsb
	testb %al, %al
	jz 1f
	call putc
	jmp puts
1:	ret
hex16:
	pushw %ax
	movb %ah, %al
	call hex8
	popw %ax
hex8:
	pushw %ax
	shrb $4, %al
	call hex4
	popw %ax
hex4:
	andb $0x0F, %al
	addb $'0', %al
	cmpb $'9', %al
	jbe putc
	addb $7, %al
	jmp putc

s_boot:		.asciz "BOOT "
s_geom:		.asciz "GEOM"
s_edd:		.asciz "EDD"
s_params:	.asciz "PARAMS"
s_write:	.asciz "WRITE"
s_emu:		.asciz "EMU"
s_data:		.asciz "DATA "
s_done:		.asciz "BOOT DONE\n"
drive:		.byte 0
dap:		.byte 0x10, 0
		.word 1
dap_off:	.word buf
		.word 0x07C0
dap_lba:	.word 1, 0, 0, 0

	.org 510
	.byte 0x55, 0xAA
buf:
