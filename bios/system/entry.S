/* The system BIOS's assembly: the reset vector and the IBM fixed entry
 * points, POST's first steps (shadowing, the data segment), the common
 * entry code of the C services, the small interrupt handlers, and helpers
 * C calls (software interrupts and far calls with a register set, flat
 * memory access through a short trip into protected mode, the jump to a
 * boot sector). */
#include "config.h"
#include "bregs.h"

	.code16
	.text

/* ------------------------------------------------------------------ */
/* Entry into C services.
 *
 * A vector points at a stub that pushes its C handler and jumps here.
 * The caller's stack then holds: handler (4), IP, CS, FLAGS. We push DS
 * and EAX there too (16 bytes in all on the caller's stack), switch to the
 * BIOS stack in DATA_SEG unless already on it, and call entry_dispatch(),
 * which copies the caller's registers into a struct bregs, runs the
 * handler and copies them back. */
	.globl entry_common
entry_common:
	pushw %ds
	pushl %eax
	movw %ss, %ax
	cmpw $DATA_SEG, %ax
	je 1f
	movw $DATA_SEG, %ax
	movw %ax, %ds
	movw %ss, tmp_ss
	movl %esp, tmp_esp
	movw %ax, %ss
	movl stack_top, %esp
	pushw tmp_ss
	pushl tmp_esp
	jmp 2f
1:	movl %esp, %eax
	pushw %ss
	pushl %eax
	movw $DATA_SEG, %ax
	movw %ax, %ds
2:	pushw %es
	pushw %fs
	pushw %gs
	pushal
	pushw %ds
	popw %es
	cld
	movl %esp, %eax
	calll entry_dispatch
	popal
	popw %gs
	popw %fs
	popw %es
	lssl (%esp), %esp
	popl %eax
	popw %ds
	addw $4, %sp
	iret

.macro SERVICE name, handler
	.globl \name
\name:
	pushl $\handler
	jmp entry_common
.endm

	SERVICE entry_int09, handle_09
	SERVICE entry_int10_none, handle_10_none
	SERVICE entry_int11, handle_11
	SERVICE entry_int12, handle_12
	SERVICE entry_int13, handle_13
	SERVICE entry_int14, handle_14
	SERVICE entry_int15, handle_15
	SERVICE entry_int16, handle_16
	SERVICE entry_int17, handle_17
	SERVICE entry_int18, handle_18
	SERVICE entry_int19, handle_19
	SERVICE entry_int1a, handle_1a
	SERVICE entry_int40, handle_40
	SERVICE entry_int70, handle_70
	SERVICE entry_int74, handle_74
	SERVICE entry_int05, handle_05

/* ------------------------------------------------------------------ */
/* Small hardware interrupt handlers, on the interrupted stack. */

/* IRQ0 (INT 08h): the tick count at 40:6C with the midnight flag, the
 * floppy motor timeout, then INT 1Ch, then EOI. */
	.globl entry_int08
entry_int08:
	pushw %ds
	pushl %eax
	pushw %dx
	movw $0x40, %ax
	movw %ax, %ds
	movl 0x6C, %eax
	incl %eax
	cmpl $0x1800B0, %eax
	jb 1f
	xorl %eax, %eax
	incb 0x70
1:	movl %eax, 0x6C
	movb 0x40, %al
	testb %al, %al
	jz 2f
	decb %al
	movb %al, 0x40
	jnz 2f
	/* Motors off, controller enabled, DMA on. */
	andb $0xF0, 0x3F
	movb $0x0C, %al
	movw $0x3F2, %dx
	outb %al, %dx
2:	int $0x1C
	cli
	movb $0x20, %al
	outb %al, $0x20
	popw %dx
	popl %eax
	popw %ds
	iret

/* IRQ6 (INT 0Eh): the floppy controller interrupted. */
	.globl entry_int0e
entry_int0e:
	pushw %ds
	pushw %ax
	movw $0x40, %ax
	movw %ax, %ds
	orb $0x80, 0x3E
	movb $0x20, %al
	outb %al, $0x20
	popw %ax
	popw %ds
	iret

/* IRQ14 and IRQ15 (INT 76h, 77h): a disk interrupted. */
	.globl entry_int76
entry_int76:
	pushw %ds
	pushw %ax
	movw $0x40, %ax
	movw %ax, %ds
	movb $0xFF, 0x8E
	movb $0x20, %al
	outb %al, $0xA0
	outb %al, $0x20
	popw %ax
	popw %ds
	iret

/* IRQ13 (INT 75h): the FPU's error; clear its busy latch and raise NMI's
 * vector as the AT does. */
	.globl entry_int75
entry_int75:
	pushw %ax
	xorb %al, %al
	outb %al, $0xF0
	movb $0x20, %al
	outb %al, $0xA0
	outb %al, $0x20
	popw %ax
	int $0x02
	iret

/* IRQ9 (INT 71h): the redirected IRQ2; hand it to INT 0Ah's handler. */
	.globl entry_int71
entry_int71:
	pushw %ax
	movb $0x20, %al
	outb %al, $0xA0
	popw %ax
	int $0x0A
	iret

/* An interrupt from the master 8259 nobody handles: mask the line unless
 * it was spurious (IRQ7 not in service), then EOI. */
	.globl entry_irq_master
entry_irq_master:
	pushw %ax
	pushw %bx
	movb $0x0B, %al
	outb %al, $0x20
	inb $0x20, %al
	testb %al, %al
	jz 1f
	movb %al, %bl
	inb $0x21, %al
	orb %bl, %al
	andb $0xFB, %al
	outb %al, $0x21
	movb $0x20, %al
	outb %al, $0x20
1:	popw %bx
	popw %ax
	iret

/* The same for the slave 8259 (IRQ15 spurious when not in service). */
	.globl entry_irq_slave
entry_irq_slave:
	pushw %ax
	pushw %bx
	movb $0x0B, %al
	outb %al, $0xA0
	inb $0xA0, %al
	testb %al, %al
	jz 1f
	movb %al, %bl
	inb $0xA1, %al
	orb %bl, %al
	outb %al, $0xA1
	movb $0x20, %al
	outb %al, $0xA0
	outb %al, $0x20
1:	popw %bx
	popw %ax
	iret

	.globl entry_iret
entry_iret:
	iret

/* ------------------------------------------------------------------ */
/* POST, from the reset vector (CS = 0xF000, running from ROM).
 *
 * The shutdown byte (CMOS 0x0F) says whether this reset is a return from
 * protected mode that wants the machine as it was: 0x05 (EOI, then jump
 * through 40:67) and 0x0A (jump through 40:67). Those skip POST; anything
 * else is a full POST. */
	.globl post_entry
post_entry:
	cli
	cld
	movb $0x8F, %al		/* NMI off, shutdown status */
	outb %al, $0x70
	inb $0x71, %al
	movb %al, %bl
	movb $0x8F, %al
	outb %al, $0x70
	xorb %al, %al
	outb %al, $0x71
	cmpb $0x05, %bl
	je resume_eoi
	cmpb $0x0A, %bl
	je resume_jump

	/* Shadow the F segment: PAM0 = write to RAM, read from ROM; copy the
	 * image onto itself; then read and write RAM. */
	movb $0x20, %bl
	call set_pam0
	movw $BIOS_SEG, %ax
	movw %ax, %ds
	movw %ax, %es
	xorl %esi, %esi
	xorl %edi, %edi
	movl $0x4000, %ecx
	rep movsl
	movb $0x30, %bl
	call set_pam0
	/* The E segment: RAM, read and write. */
	call set_pam_eseg
	/* The data segment: copy initialised data, clear the rest. */
	movw $DATA_SEG, %ax
	movw %ax, %es
	movl $_data_lma, %esi
	movl $_data_start, %edi
	movl $_data_end, %ecx
	subl %edi, %ecx
	rep movsb
	movl $_bss_end, %ecx
	subl %edi, %ecx
	xorb %al, %al
	rep stosb
	movw %es, %ax
	movw %ax, %ds
	movw %ax, %ss
	movl $STACK_TOP, %esp
	xorw %ax, %ax
	movw %ax, %fs
	movw %ax, %gs
	calll post_main
1:	cli
	hlt
	jmp 1b

/* PAM0 (host bridge register 0x59) = BL. */
set_pam0:
	movl $0x80000058, %eax
	movw $0xCF8, %dx
	outl %eax, %dx
	movb %bl, %al
	movw $0xCFD, %dx
	outb %al, %dx
	ret

/* PAM5 and PAM6 (0x5E, 0x5F: 0xE0000-0xEFFFF) = read and write RAM. */
set_pam_eseg:
	movl $0x8000005C, %eax
	movw $0xCF8, %dx
	outl %eax, %dx
	movw $0x3333, %ax
	movw $0xCFE, %dx
	outw %ax, %dx
	ret

/* Shutdown code 0x05: flush the keyboard, EOI both 8259s, then as 0x0A. */
resume_eoi:
	inb $0x60, %al
	movb $0x20, %al
	outb %al, $0xA0
	outb %al, $0x20
/* Shutdown code 0x0A: shadow RAM as POST left it, then jump through 40:67. */
resume_jump:
	movb $0x10, %bl
	call set_pam0
	call set_pam_eseg
	movw $0x40, %ax
	movw %ax, %ds
	ljmp *0x67

/* ------------------------------------------------------------------ */
/* Helpers called from C (regparm(3): arguments in EAX, EDX, ECX). */

/* void __call_int(u32 vector, struct bregs *r): a software interrupt
 * with r's registers; r gets the registers and flags back. */
	.globl __call_int
__call_int:
	pushal
	pushw %ds
	pushw %es
	pushw %fs
	pushw %gs
	pushl %edx			/* r */
	xorw %bx, %bx
	movw %bx, %fs
	movzbl %al, %ebx
	pushl %fs:(,%ebx,4)		/* the handler's address */
	pushfw				/* an INT's frame: flags, CS, IP */
	pushw %cs
	pushw $ret_int
	jmp load_and_go
ret_int:
	pushfw
	jmp save_results

/* void __farcall(u32 segoff, struct bregs *r): a far call to seg:off
 * that ends in RETF, with r's registers. */
	.globl __farcall
__farcall:
	pushal
	pushw %ds
	pushw %es
	pushw %fs
	pushw %gs
	pushl %edx			/* r */
	pushl %eax			/* the target */
	pushw $0			/* where an INT frame keeps its flags */
	pushw %cs
	pushw $ret_far
	jmp load_and_go
ret_far:
	addw $2, %sp
	pushfw
	jmp save_results

/* Stack: IP, CS, flags (3 words), target (4), r (4), saved state. */
load_and_go:
	cli
	movw BREGS_ES(%edx), %es
	movl BREGS_EAX(%edx), %eax
	movl BREGS_EBX(%edx), %ebx
	movl BREGS_ECX(%edx), %ecx
	movl BREGS_ESI(%edx), %esi
	movl BREGS_EDI(%edx), %edi
	movl BREGS_EBP(%edx), %ebp
	pushl BREGS_EDX(%edx)
	movw BREGS_DS(%edx), %ds
	popl %edx
	ljmp *6(%esp)

/* Stack: the callee's flags (2), target (4), r (4), saved state. */
save_results:
	cli
	pushw %ds
	pushl %edx
	movw %ss, %dx
	movw %dx, %ds
	movl 12(%esp), %edx
	movl %eax, BREGS_EAX(%edx)
	movl %ebx, BREGS_EBX(%edx)
	movl %ecx, BREGS_ECX(%edx)
	movl %esi, BREGS_ESI(%edx)
	movl %edi, BREGS_EDI(%edx)
	movl %ebp, BREGS_EBP(%edx)
	movw %es, BREGS_ES(%edx)
	popl %eax
	movl %eax, BREGS_EDX(%edx)
	popw %ax
	movw %ax, BREGS_DS(%edx)
	popw %ax
	movw %ax, BREGS_FLAGS(%edx)
	addw $8, %sp
	popw %gs
	popw %fs
	popw %es
	popw %ds
	popal
	retl

/* void boot_jump(u32 segoff, u32 drive): enters a boot sector (or boot
 * image) at seg:off with DL = drive, SS:SP = 0000:7C00, DS = ES = 0 and
 * interrupts on. */
	.globl boot_jump
boot_jump:
	cli
	xorw %cx, %cx
	movw %cx, %ss
	movl $0x7C00, %esp
	pushw $0x0202
	pushl %eax
	movw %cx, %ds
	movw %cx, %es
	movw %cx, %fs
	movw %cx, %gs
	movzbl %dl, %edx
	xorl %eax, %eax
	xorl %ebx, %ebx
	xorl %ecx, %ecx
	xorl %esi, %esi
	xorl %edi, %edi
	xorl %ebp, %ebp
	iret

/* void restart_boot(void): INT 19h again on an empty BIOS stack. */
	.globl restart_boot
restart_boot:
	cli
	movw $DATA_SEG, %ax
	movw %ax, %ss
	movl $STACK_TOP, %esp
	movl %esp, stack_top
	int $0x19
1:	hlt
	jmp 1b

/* Flat 32-bit access through protected mode: a GDT with a flat 4 GiB data
 * segment (0x08) and a 64 KiB one (0x10) to leave real-mode limits
 * behind. Interrupts stay off throughout; the caller's GDTR is kept. */
	.p2align 3
bios_gdt:
	.quad 0
	.quad 0x00CF93000000FFFF
	.quad 0x000093000000FFFF
bios_gdt_desc:
	.word 23
	.long BIOS_SEG * 16 + bios_gdt

/* Into protected mode with DS = ES = the flat segment. EAX is kept. */
pm_on:
	pushl %eax
	sgdtl saved_gdtr
	lgdtl %cs:bios_gdt_desc
	movl %cr0, %eax
	orb $1, %al
	movl %eax, %cr0
	jmp 1f
1:	movw $0x08, %ax
	movw %ax, %ds
	movw %ax, %es
	popl %eax
	ret

/* Back to real mode with 64 KiB limits, DS = DATA_SEG. EAX is kept. */
pm_off:
	pushl %eax
	movw $0x10, %ax
	movw %ax, %ds
	movw %ax, %es
	movl %cr0, %eax
	andb $0xFE, %al
	movl %eax, %cr0
	jmp 1f
1:	movw $DATA_SEG, %ax
	movw %ax, %ds
	lgdtl saved_gdtr
	popl %eax
	ret

/* u32 flat_read32(u32 addr) */
	.globl flat_read32
flat_read32:
	pushfl
	cli
	pushw %ds
	pushw %es
	pushl %ebx
	movl %eax, %ebx
	call pm_on
	movl (%ebx), %eax
	call pm_off
	popl %ebx
	popw %es
	popw %ds
	popfl
	retl

/* void flat_write32(u32 addr, u32 value) */
	.globl flat_write32
flat_write32:
	pushfl
	cli
	pushw %ds
	pushw %es
	pushl %ebx
	movl %eax, %ebx
	call pm_on
	movl %edx, (%ebx)
	call pm_off
	popl %ebx
	popw %es
	popw %ds
	popfl
	retl

/* void flat_memcpy(u32 dst, u32 src, u32 len) */
	.globl flat_memcpy
flat_memcpy:
	pushfl
	cli
	pushw %ds
	pushw %es
	pushl %esi
	pushl %edi
	movl %eax, %edi
	movl %edx, %esi
	call pm_on
	cld
	movl %ecx, %edx
	shrl $2, %ecx
	addr32 rep movsl
	movl %edx, %ecx
	andl $3, %ecx
	addr32 rep movsb
	call pm_off
	popl %edi
	popl %esi
	popw %es
	popw %ds
	popfl
	retl

/* ------------------------------------------------------------------ */
/* The IBM PC/AT fixed entry points and tables (0xFE000-0xFFFFF). */
	.section .fixed, "ax"
	.org 0x05B
	jmp post_entry
	.org 0x2C3		/* NMI */
	iret
	.org 0x3FE		/* INT 13h, hard disk */
	jmp entry_int13
	.org 0x401		/* fixed disk parameter table */
	.fill 16, 1, 0
	.org 0x6F2		/* INT 19h */
	jmp entry_int19
	.org 0x6F5		/* configuration table (INT 15h C0h) */
	.globl config_table
config_table:
	.word 8
	.byte 0xFC		/* model: AT */
	.byte 0x00		/* submodel */
	.byte 0x01		/* BIOS revision */
	.byte 0x74		/* second 8259, RTC, INT 15h 4Fh called, EBDA */
	.byte 0x40		/* INT 16h AH=09h */
	.byte 0, 0, 0
	.org 0x729		/* baud rate divisors, 110 to 9600 */
	.word 0x417, 0x300, 0x180, 0xC0, 0x60, 0x30, 0x18, 0x0C
	.org 0x739		/* INT 14h */
	jmp entry_int14
	.org 0x82E		/* INT 16h */
	jmp entry_int16
	.org 0x987		/* INT 09h */
	jmp entry_int09
	.org 0xC59		/* INT 13h, diskette (INT 40h) */
	jmp entry_int40
	.org 0xF57		/* INT 0Eh */
	jmp entry_int0e
	.org 0xFC7		/* diskette parameter table (INT 1Eh): 1.44 MB */
	.globl diskette_param_table
diskette_param_table:
	.byte 0xAF, 0x02, 0x25, 0x02, 0x12, 0x1B, 0xFF, 0x6C, 0xF6, 0x0F, 0x08
	.org 0xFD2		/* INT 17h */
	jmp entry_int17
	.org 0x1045		/* INT 10h, older entry */
	jmp entry_int10_none
	.org 0x1065		/* INT 10h */
	jmp entry_int10_none
	.org 0x10A4		/* video parameter table (INT 1Dh) */
	.fill 88, 1, 0
	.org 0x1841		/* INT 12h */
	jmp entry_int12
	.org 0x184D		/* INT 11h */
	jmp entry_int11
	.org 0x1859		/* INT 15h */
	jmp entry_int15
	.org 0x1A6E		/* 8x8 font, characters 0-127 (filled in by the build) */
	.globl font8x8
font8x8:
	.fill 1024, 1, 0
	.org 0x1E6E		/* INT 1Ah */
	jmp entry_int1a
	.org 0x1EA5		/* INT 08h */
	jmp entry_int08
	.org 0x1F53		/* dummy IRET */
	.globl dummy_iret
dummy_iret:
	iret
	.org 0x1F54		/* INT 05h, print screen */
	jmp entry_int05
	.org 0x1FF0		/* the reset vector */
	ljmp $BIOS_SEG, $0xE05B
	.org 0x1FF5
	.ascii "01/01/24"
	.org 0x1FFE
	.byte 0xFC		/* model: AT */
	.byte 0x00
