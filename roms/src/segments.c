/* segments: protected-mode segment loads and checks.
 * Intel SDM Vol. 3A §3.4-3.5 (selectors, descriptors), §5.2-5.7 (limit,
 * type and privilege checks for data and stack segments), §6.13 (error
 * codes: selector index | TI, EXT = IDT = 0), Vol. 2 MOV (Sreg) "Protected
 * Mode Exceptions", LAR, LSL, VERR/VERW.
 *
 * QEMU TCG does not check data-segment limits, null selectors or
 * writability on memory accesses (only on loads), and does not set the
 * accessed bit on far JMP: the access-* / limit-* / expand-down-* / write-*
 * and lar-kcode-rights tests fail there; the SDM is the reference. */
#include "test.h"

const char test_name[] = "segments";

enum {
	S_FLAT = 8,   /* ring 0 data, flat */
	S_NP,         /* data, not present */
	S_RO,         /* read-only data */
	S_XO,         /* execute-only code */
	S_XR,         /* execute/read code */
	S_D3,         /* DPL 3 data */
	S_ED,         /* expand-down data, limit 0xFFF, B=1 */
	S_SMALL,      /* data, byte-granular limit 0xFF */
	S_LDT,        /* an LDT descriptor (system) */
	S_CGATE,      /* a call gate */
	S_TSS,        /* an available 32-bit TSS */
	S_CONF,       /* conforming execute/read code, DPL 0 */
	S_NPRO,       /* not-present read-only data */
	S_D1,         /* DPL 1 data */
};
#define SEL(i) ((u16)((i) << 3))

static u8 tss_dummy[104];

static int load_es(u16 sel)
{
	return TRY(__asm__ volatile("mov %0, %%es" :: "r"(sel) : "memory"));
}

static int load_ss(u16 sel)
{
	/* Loads SS and puts the kernel's SS back at once, keeping ESP. */
	return TRY(__asm__ volatile("mov %0, %%ss\n\tmov %1, %%ss" :: "r"(sel), "r"(KDATA) : "memory"));
}

static int read_es(u32 off, u32 *out)
{
	u32 v = 0;
	int r = TRY(__asm__ volatile("movl %%es:(%1), %0" : "=r"(v) : "r"(off) : "memory"));
	*out = v;
	return r;
}

static int lar(u16 sel, u32 *ar)
{
	u32 v = 0xDEAD, zf;
	__asm__ volatile("lar %2, %0\n\tsetz %b1\n\tmovzbl %b1, %1" : "+r"(v), "=q"(zf) : "r"((u32)sel) : "cc");
	*ar = v;
	return zf;
}

static int lsl(u16 sel, u32 *lim)
{
	u32 v = 0xDEAD, zf;
	__asm__ volatile("lsl %2, %0\n\tsetz %b1\n\tmovzbl %b1, %1" : "+r"(v), "=q"(zf) : "r"((u32)sel) : "cc");
	*lim = v;
	return zf;
}

static int verr(u16 sel)
{
	u8 zf;
	__asm__ volatile("verr %w1\n\tsetz %0" : "=q"(zf) : "r"(sel) : "cc");
	return zf;
}

static int verw(u16 sel)
{
	u8 zf;
	__asm__ volatile("verw %w1\n\tsetz %0" : "=q"(zf) : "r"(sel) : "cc");
	return zf;
}

static void restore_es(void) { __asm__ volatile("mov %0, %%es" :: "r"(KDATA)); }

void test_main(void)
{
	u32 v;
	gdt_set(S_FLAT, 0, 0xFFFFF, 0x92, 0xC0);
	gdt_set(S_NP, 0, 0xFFFFF, 0x12, 0xC0);
	gdt_set(S_RO, 0, 0xFFFFF, 0x90, 0xC0);
	gdt_set(S_XO, 0, 0xFFFFF, 0x98, 0xC0);
	gdt_set(S_XR, 0, 0xFFFFF, 0x9A, 0xC0);
	gdt_set(S_D3, 0, 0xFFFFF, 0xF2, 0xC0);
	gdt_set(S_ED, 0x200000, 0xFFF, 0x96, 0x40);
	gdt_set(S_SMALL, 0x200000, 0xFF, 0x92, 0x40);
	gdt_set(S_LDT, 0x300000, 0xFF, 0x82, 0x00);
	gdt_set_gate(S_CGATE, KCODE, 0x100000, 0xEC, 0);
	gdt_set(S_TSS, (u32)tss_dummy, 103, 0x89, 0x00);
	gdt_set(S_CONF, 0, 0xFFFFF, 0x9E, 0xC0);
	gdt_set(S_NPRO, 0, 0xFFFFF, 0x10, 0xC0);
	gdt_set(S_D1, 0, 0xFFFFF, 0xB2, 0xC0);

	/* §5.4 / MOV: data segment loads. */
	check_exc("mov-es-flat", load_es(SEL(S_FLAT)), -1, -1);
	check_exc("mov-es-null", load_es(0), -1, -1);
	check_exc("mov-es-null-rpl3", load_es(3), -1, -1);
	check_exc("mov-es-not-present", load_es(SEL(S_NP)), 11, SEL(S_NP));
	check_exc("mov-es-exec-only-code", load_es(SEL(S_XO)), 13, SEL(S_XO));
	check_exc("mov-es-exec-read-code", load_es(SEL(S_XR)), -1, -1);
	check_exc("mov-es-conforming-code", load_es(SEL(S_CONF) | 3), -1, -1);
	check_exc("mov-es-system-ldt", load_es(SEL(S_LDT)), 13, SEL(S_LDT));
	check_exc("mov-es-system-tss", load_es(SEL(S_TSS)), 13, SEL(S_TSS));
	check_exc("mov-es-beyond-gdt-limit", load_es(SEL(GDT_ENTRIES) | 3), 13, SEL(GDT_ENTRIES));
	/* LDTR holds its reset cache until LLDT; a null LLDT makes TI=1 loads fault. */
	__asm__ volatile("lldt %w0" :: "r"(0));
	check_exc("mov-es-ldt-selector-null-ldtr", load_es(0x0C | 3), 13, 0x0C);
	/* Privilege: DPL >= max(CPL, RPL) for data segments (§5.6). */
	check_exc("mov-es-rpl3-dpl0", load_es(KDATA | 3), 13, KDATA);
	check_exc("mov-es-rpl1-dpl1", load_es(SEL(S_D1) | 1), -1, -1);
	check_exc("mov-es-rpl2-dpl1", load_es(SEL(S_D1) | 2), 13, SEL(S_D1));
	check_exc("mov-es-rpl3-dpl3", load_es(SEL(S_D3) | 3), -1, -1);
	/* Priority: privilege/type checks come before the present check. */
	check_exc("mov-es-np-and-rpl-violation", load_es(SEL(S_NP) | 3), 13, SEL(S_NP));
	restore_es();

	/* Stack segment (MOV SS, §6.14 #SS / #GP rules). */
	check_exc("mov-ss-flat", load_ss(SEL(S_FLAT)), -1, -1);
	check_exc("mov-ss-null", load_ss(0), 13, 0);
	check_exc("mov-ss-read-only", load_ss(SEL(S_RO)), 13, SEL(S_RO));
	check_exc("mov-ss-code", load_ss(SEL(S_XR)), 13, SEL(S_XR));
	check_exc("mov-ss-rpl-ne-cpl", load_ss(KDATA | 3), 13, KDATA);
	check_exc("mov-ss-dpl-ne-cpl", load_ss(SEL(S_D3)), 13, SEL(S_D3));
	check_exc("mov-ss-not-present", load_ss(SEL(S_NP)), 12, SEL(S_NP));
	check_exc("mov-ss-not-present-read-only", load_ss(SEL(S_NPRO)), 13, SEL(S_NPRO));

	/* Using a null selector faults with #GP(0) (§5.4.1). */
	load_es(0);
	check_exc("access-through-null-es", read_es(0x100000, &v), 13, 0);
	restore_es();

	/* Limits (§5.3): byte-granular 0xFF. */
	/* Exception recovery reloads flat selectors, so ES is loaded again
	 * before every check. */
	load_es(SEL(S_SMALL));
	check_exc("limit-last-byte-ok", TRY(__asm__ volatile("movb %%es:0xFF, %%al" ::: "eax")), -1, -1);
	load_es(SEL(S_SMALL));
	check_exc("limit-beyond", read_es(0x100, &v), 13, 0);
	load_es(SEL(S_SMALL));
	check_exc("limit-dword-straddles", read_es(0xFD, &v), 13, 0);
	load_es(SEL(S_SMALL));
	check_exc("limit-dword-fits", read_es(0xFC, &v), -1, -1);
	/* Expand-down: valid offsets are limit+1 .. 0xFFFFFFFF (B=1). */
	*(volatile u32 *)0x202000 = 0x5EC5EC;
	load_es(SEL(S_ED));
	check_exc("expand-down-below-limit", read_es(0x800, &v), 13, 0);
	load_es(SEL(S_ED));
	check_exc("expand-down-at-limit", read_es(0xFFF, &v), 13, 0);
	load_es(SEL(S_ED));
	if (check_exc("expand-down-above-limit", read_es(0x2000, &v), -1, -1))
		check_eq("expand-down-reads-base-plus-offset", v, 0x5EC5EC);
	restore_es();
	/* Writing a read-only data segment. */
	load_es(SEL(S_RO));
	check_exc("write-read-only", TRY(__asm__ volatile("movl $1, %%es:0x200000" ::: "memory")), 13, 0);
	restore_es();
	/* Writing through a readable code segment. */
	load_es(SEL(S_XR));
	check_exc("write-code-segment", TRY(__asm__ volatile("movl $1, %%es:0x200000" ::: "memory")), 13, 0);
	restore_es();

	/* LAR: access rights. The accessed bit of KCODE is set: the CPU sets it
	 * when it loads CS (§3.4.5.1); QEMU TCG does not for far JMP. */
	/* LAR: access rights = descriptor dword 2 & 0x00F0FF00 (P6 family). */
	u32 ar;
	if (check("lar-kcode-valid", lar(KCODE, &ar)))
		check_eq("lar-kcode-rights", ar & 0x00F0FF00, 0x00C09B00); /* bits 19:16 undefined */
	check("lar-null-invalid", !lar(0, &ar) && ar == 0xDEAD);
	check("lar-beyond-limit-invalid", !lar(SEL(GDT_ENTRIES), &ar));
	check("lar-call-gate-valid", lar(SEL(S_CGATE), &ar) && (ar & 0xFF00) == 0xEC00);
	check("lar-tss-valid", lar(SEL(S_TSS), &ar) && (ar & 0xFF00) == 0x8900);
	check("lar-ldt-valid", lar(SEL(S_LDT), &ar) && (ar & 0xFF00) == 0x8200);
	check("lar-rpl3-dpl0-invalid", !lar(KDATA | 3, &ar));
	check("lar-conforming-rpl3-valid", lar(SEL(S_CONF) | 3, &ar));
	/* LSL: the scaled limit. */
	u32 lim;
	check("lsl-flat-4g", lsl(KCODE, &lim) && lim == 0xFFFFFFFF);
	check("lsl-small", lsl(SEL(S_SMALL), &lim) && lim == 0xFF);
	check("lsl-tss", lsl(SEL(S_TSS), &lim) && lim == 103);
	check("lsl-call-gate-invalid", !lsl(SEL(S_CGATE), &lim));
	check("lsl-null-invalid", !lsl(0, &lim));
	/* VERR / VERW. */
	check("verr-data", verr(KDATA));
	check("verr-exec-only-code", !verr(SEL(S_XO)));
	check("verr-exec-read-code", verr(SEL(S_XR)));
	check("verr-rpl3-dpl0", !verr(KDATA | 3));
	check("verr-conforming-rpl3", verr(SEL(S_CONF) | 3));
	check("verr-system", !verr(SEL(S_TSS)));
	check("verw-data", verw(KDATA));
	check("verw-read-only", !verw(SEL(S_RO)));
	check("verw-code", !verw(SEL(S_XR)));
	check("verw-null", !verw(0));
}
