/* sensitive: the 17 sensitive but unprivileged instructions, from ring 0
 * and from ring 3, each run in loops (so a translator sees hot blocks that
 * hold them) and required to give the same result on every iteration.
 * Intel SDM Vol. 2: SGDT, SIDT, SLDT, SMSW, STR (the guest's own table
 * registers and CR0, never the host's; SLDT and STR into a 32-bit register
 * clear its high half on P6; the memory forms store 16 bits), PUSHF/POPF
 * and IRET (Vol. 1 §3.4.3, Vol. 3A §2.3: IF changes only when CPL <= IOPL,
 * IOPL only at CPL 0; VM, RF, VIP and VIF are never set by POPF and never
 * pushed by PUSHF), LAR, LSL, VERR, VERW (Vol. 3A §5.10.1: valid, null,
 * beyond the limit, system types, DPL below max(CPL, RPL), conforming
 * segments; they never fault), PUSH/POP Sreg and MOV Sreg (Vol. 3A §5.4,
 * §6.13 error codes; POP SS blocks the single-step trap for one
 * instruction, §6.8.3; a faulting POP leaves ESP unchanged), CALL, JMP and
 * RET far (§5.8: direct and through call gates, ring 3 -> ring 0 through a
 * DPL-3 gate, no privilege change by JMP, RET to an outer ring nulling data
 * segments whose DPL is below the new CPL), INT n (§6.12.1.1: gate DPL <
 * CPL -> #GP(n*8+2)) and IRET (within ring 0 and to ring 3).
 *
 * The values the registers must hold are the ones this kernel loads (the
 * library's GDT, IDT and TSS, an LDT, a second GDT/IDT/TSS, CR0.TS/MP set
 * and cleared), read in ring 0 and ring 3. */
#include "test.h"

const char test_name[] = "sensitive";

#define LOOPS 32

enum {
	E_LDT = GDT_FIRST_FREE, /* LDT descriptor, DPL 0 */
	E_TSS2,                 /* a second 32-bit TSS, DPL 0 */
	E_CG3,                  /* call gate DPL 3 -> KCODE:cg3_fn */
	E_CG0,                  /* call gate DPL 0 -> KCODE:cg0_fn */
	E_CONF,                 /* conforming readable code, DPL 0 */
	E_XO3,                  /* execute-only code, DPL 3 */
	E_SMALL3,               /* read-only data, DPL 3, byte limit 0x1234 */
	E_NP3,                  /* not-present data, DPL 3 */
	E_TSS3,                 /* an available TSS, DPL 3 */
	E_INTG3,                /* an interrupt gate (not valid in the GDT for LAR) */
	E_LARG3,                /* call gate DPL 3, offset 0 (LAR only) */
	E_LARG0,                /* call gate DPL 0, offset 0 (LAR only) */
	E_NP0,                  /* not-present data, DPL 0 */
	E_JG0,                  /* call gate DPL 0 -> KCODE:jg_fn (JMP) */
};
#define SEL(e) ((u16)((e) << 3))
#define S_LDT SEL(E_LDT)
#define S_TSS2 SEL(E_TSS2)
#define S_CG3 SEL(E_CG3)
#define S_CG0 SEL(E_CG0)
#define S_CONF SEL(E_CONF)
#define S_XO3 SEL(E_XO3)
#define S_SMALL3 SEL(E_SMALL3)
#define S_NP3 SEL(E_NP3)
#define S_TSS3 SEL(E_TSS3)
#define S_INTG3 SEL(E_INTG3)
#define S_LARG3 SEL(E_LARG3)
#define S_LARG0 SEL(E_LARG0)
#define S_NP0 SEL(E_NP0)
#define S_JG0 SEL(E_JG0)
#define BEYOND ((u16)(GDT_ENTRIES << 3))
/* The selectors the assembly below spells out. */
_Static_assert(S_CG3 == 0x50 && S_CG0 == 0x58 && S_JG0 == 0xA8, "selectors used in asm");

#define EFLAGS_CF 1u
#define EFLAGS_DF (1u << 10)
#define EFLAGS_AC (1u << 18)
#define EFLAGS_ID (1u << 21)
#define IOPL_MASK IOPL(3)

static u64 ldt_tab[4] __attribute__((aligned(8)));
static u32 tss2[26] __attribute__((aligned(8)));   /* 104 bytes, no I/O map */
static u32 tss3[26] __attribute__((aligned(8)));
static u64 gdt2[GDT_ENTRIES] __attribute__((aligned(8)));
static u32 ustack[1024] __attribute__((aligned(16)));

struct __attribute__((packed)) dtr { u16 limit; u32 base; };
struct half { u16 lo, hi; };
static void set_gdtr(void *base, u16 limit)
{
	struct dtr d = { limit, (u32)base };
	__asm__ volatile("lgdt %0" :: "m"(d) : "memory");
}
static void set_idtr(void *base, u16 limit)
{
	struct dtr d = { limit, (u32)base };
	__asm__ volatile("lidt %0" :: "m"(d) : "memory");
}

/* Index of the first of LOOPS values that differs from want, or -1. */
static int first_bad(volatile u32 *a, u32 want)
{
	for (int i = 0; i < LOOPS; i++)
		if (a[i] != want)
			return i;
	return -1;
}

static void check_loop(const char *name, volatile u32 *a, u32 want)
{
	int i = first_bad(a, want);
	if (i < 0)
		pass(name);
	else
		fail(name, "iteration %d: got %x, expected %x", i, a[i], want);
}

/* ---- SGDT, SIDT, SLDT, SMSW, STR ---- */

static struct dtr sg[LOOPS], si[LOOPS];
static volatile u32 sl[LOOPS], sm[LOOPS], st[LOOPS];
static struct half slm[LOOPS], smm[LOOPS], stm[LOOPS];

static void store_table_regs(void)
{
	for (int i = 0; i < LOOPS; i++) {
		u32 v;
		__asm__ volatile("sgdt %0" : "=m"(sg[i]) :: "memory");
		__asm__ volatile("sidt %0" : "=m"(si[i]) :: "memory");
		v = 0xFFFFFFFF;
		__asm__ volatile("sldt %0" : "+r"(v));
		sl[i] = v;
		slm[i].hi = 0xAAAA;
		__asm__ volatile("sldt %0" : "=m"(slm[i].lo) :: "memory");
		v = 0xFFFFFFFF;
		__asm__ volatile("smsw %0" : "+r"(v));
		sm[i] = v;
		smm[i].hi = 0xAAAA;
		__asm__ volatile("smsw %0" : "=m"(smm[i].lo) :: "memory");
		v = 0xFFFFFFFF;
		__asm__ volatile("str %0" : "+r"(v));
		st[i] = v;
		stm[i].hi = 0xAAAA;
		__asm__ volatile("str %0" : "=m"(stm[i].lo) :: "memory");
	}
}

static void check_table_regs(const char *ring, u32 gbase, u16 glim, u32 ibase, u16 ilim,
			     u16 ldtr, u16 msw, u16 tr)
{
	char name[48];
	const char *what[] = { "sgdt", "sidt", "sldt", "sldt-m16", "smsw", "smsw-m16", "str", "str-m16" };
	for (int k = 0; k < 8; k++) {
		int bad = -1;
		u32 got = 0, want = 0;
		for (int i = 0; i < LOOPS && bad < 0; i++) {
			switch (k) {
			case 0:
			case 1: break;
			case 2: got = sl[i]; want = ldtr; break;
			case 3: got = slm[i].lo | (u32)slm[i].hi << 16; want = ldtr | 0xAAAA0000u; break;
			case 4: got = sm[i] & 0xFFFF; want = msw; break; /* bits 31:16 undefined */
			case 5: got = smm[i].lo | (u32)smm[i].hi << 16; want = msw | 0xAAAA0000u; break;
			case 6: got = st[i]; want = tr; break;
			case 7: got = stm[i].lo | (u32)stm[i].hi << 16; want = tr | 0xAAAA0000u; break;
			}
			if (k < 2) {
				struct dtr *d = k ? &si[i] : &sg[i];
				if (d->base != (k ? ibase : gbase) || d->limit != (k ? ilim : glim))
					bad = i;
			} else if (got != want) {
				bad = i;
			}
		}
		/* name: e.g. "sgdt-r3-second" */
		char *p = name;
		for (const char *s = what[k]; *s;)
			*p++ = *s++;
		*p++ = '-';
		for (const char *s = ring; *s;)
			*p++ = *s++;
		*p = 0;
		if (bad < 0)
			pass(name);
		else if (k < 2)
			fail(name, "iteration %d: %x/%x, expected %x/%x", bad,
			     k ? si[bad].base : sg[bad].base, k ? si[bad].limit : sg[bad].limit,
			     k ? ibase : gbase, k ? ilim : glim);
		else
			fail(name, "iteration %d: got %x, expected %x", bad, got, want);
	}
}

static void table_registers(void)
{
	u16 msw = (u16)read_cr0();
	store_table_regs();
	check_table_regs("r0", (u32)gdt, sizeof gdt - 1, (u32)idt, sizeof idt - 1, S_LDT, msw, TSS_SEL);
	run_user(store_table_regs, 0);
	check_table_regs("r3", (u32)gdt, sizeof gdt - 1, (u32)idt, sizeof idt - 1, S_LDT, msw, TSS_SEL);

	/* Other values: a copy of the GDT, a shorter IDT limit, no LDT, a
	 * second TSS, CR0.TS and MP set. */
	memcpy(gdt2, gdt, sizeof gdt);
	set_gdtr(gdt2, sizeof gdt2 - 1);
	set_idtr(idt, 0x82 * 8 - 1);
	__asm__ volatile("lldt %w0" :: "r"(0));
	__asm__ volatile("ltr %w0" :: "r"(S_TSS2));
	write_cr0(read_cr0() | 0x8 | 0x2);
	msw = (u16)read_cr0();
	store_table_regs();
	check_table_regs("r0-second", (u32)gdt2, sizeof gdt2 - 1, (u32)idt, 0x82 * 8 - 1, 0, msw, S_TSS2);
	run_user(store_table_regs, 0);
	check_table_regs("r3-second", (u32)gdt2, sizeof gdt2 - 1, (u32)idt, 0x82 * 8 - 1, 0, msw, S_TSS2);
	check("smsw-sees-ts-and-mp", (msw & 0xA) == 0xA);

	__asm__ volatile("clts");
	write_cr0(read_cr0() & ~0x2u);
	set_gdtr(gdt, sizeof gdt - 1);
	set_idtr(idt, sizeof idt - 1);
	reload_tr(TSS_SEL);
	__asm__ volatile("lldt %w0" :: "r"(S_LDT));
	msw = (u16)read_cr0();
	run_user(store_table_regs, 0);
	check_table_regs("r3-restored", (u32)gdt, sizeof gdt - 1, (u32)idt, sizeof idt - 1, S_LDT, msw, TSS_SEL);
	check("smsw-sees-ts-clear", (msw & 0xA) == 0);
}

/* ---- PUSHF / POPF / IRET and the flags ---- */

static volatile u32 f_if[LOOPS], f_iopl[LOOPS], f_other[LOOPS], f_image[LOOPS];
static volatile u32 f_sys[LOOPS], f_iret_if[LOOPS], f_iret_iopl[LOOPS], f_popfw_if[LOOPS];

static u32 iret_flags(u32 v)
{
	u32 out;
	__asm__ volatile("push %1\n\t"
			 "push %%cs\n\t"
			 "push $1f\n\t"
			 "iret\n"
			 "1:\tpushf\n\t"
			 "pop %0"
			 : "=r"(out) : "r"(v) : "memory", "cc");
	return out;
}

static u32 popfw_flags(u32 v)
{
	u32 out;
	__asm__ volatile("pushw %w1\n\t"
			 "popfw\n\t"
			 "pushf\n\t"
			 "pop %0"
			 : "=r"(out) : "r"(v) : "memory", "cc");
	return out;
}

static void flag_loop(void)
{
	for (int i = 0; i < LOOPS; i++) {
		u32 before = read_eflags();
		write_eflags(before ^ EFLAGS_IF);
		f_if[i] = (read_eflags() ^ before) & EFLAGS_IF;
		write_eflags(before);
		write_eflags(before ^ IOPL_MASK);
		f_iopl[i] = (read_eflags() ^ before) & IOPL_MASK;
		write_eflags(before);
		write_eflags(before ^ (EFLAGS_AC | EFLAGS_ID | EFLAGS_NT | EFLAGS_DF));
		f_other[i] = (read_eflags() ^ before) & (EFLAGS_AC | EFLAGS_ID | EFLAGS_NT | EFLAGS_DF);
		write_eflags(before);
		f_image[i] = before & (EFLAGS_VM | EFLAGS_RF | EFLAGS_VIP | EFLAGS_VIF);
		write_eflags(before | EFLAGS_VM | EFLAGS_RF | EFLAGS_VIP | EFLAGS_VIF);
		f_sys[i] = read_eflags() & (EFLAGS_VM | EFLAGS_RF | EFLAGS_VIP | EFLAGS_VIF);
		write_eflags(before);
		f_iret_if[i] = (iret_flags(before ^ EFLAGS_IF) ^ before) & EFLAGS_IF;
		write_eflags(before);
		f_iret_iopl[i] = (iret_flags(before ^ IOPL_MASK) ^ before) & IOPL_MASK;
		write_eflags(before);
		f_popfw_if[i] = (popfw_flags(before ^ EFLAGS_IF) ^ before) & EFLAGS_IF;
		write_eflags(before);
	}
}

static void check_flags(const char *tag, int if_changes, int iopl_changes)
{
	char name[64];
	const char *what[] = { "popf-if", "popf-iopl", "popf-ac-id-nt-df", "pushf-no-vm-rf-vip-vif",
			       "popf-never-sets-vm-rf-vip-vif", "iret-if", "iret-iopl", "popfw-if" };
	volatile u32 *arr[] = { f_if, f_iopl, f_other, f_image, f_sys, f_iret_if, f_iret_iopl, f_popfw_if };
	u32 want[] = { if_changes ? EFLAGS_IF : 0, iopl_changes ? IOPL_MASK : 0,
		       EFLAGS_AC | EFLAGS_ID | EFLAGS_NT | EFLAGS_DF, 0, 0,
		       if_changes ? EFLAGS_IF : 0, iopl_changes ? IOPL_MASK : 0,
		       if_changes ? EFLAGS_IF : 0 };
	for (int k = 0; k < 8; k++) {
		char *p = name;
		for (const char *s = what[k]; *s;)
			*p++ = *s++;
		*p++ = '-';
		for (const char *s = tag; *s;)
			*p++ = *s++;
		*p = 0;
		check_loop(name, arr[k], want[k]);
	}
}

static void flags(void)
{
	write_cr0(read_cr0() & ~(1u << 18)); /* AM off: AC must not check alignment */
	flag_loop();
	check_flags("r0", 1, 1);
	run_user(flag_loop, 0);
	check_flags("r3-iopl0-if0", 0, 0);
	run_user(flag_loop, EFLAGS_IF);
	check_flags("r3-iopl0-if1", 0, 0);
	run_user(flag_loop, IOPL(2) | EFLAGS_IF);
	check_flags("r3-iopl2-if1", 0, 0);
	run_user(flag_loop, IOPL(3));
	check_flags("r3-iopl3-if0", 1, 0);
	run_user(flag_loop, IOPL(3) | EFLAGS_IF);
	check_flags("r3-iopl3-if1", 1, 0);
}

/* ---- LAR, LSL, VERR, VERW ---- */

#define INV 0xDEAD
#define AR_MASK 0x00F0FE00 /* bits 19:16 undefined, the accessed bit varies */
struct desc_case {
	const char *name;
	u16 sel;
	u32 lar[2], lsl[2];
	u8 verr[2], verw[2];
};
#define TSS_LIMIT (sizeof main_tss - 1)
static const struct desc_case cases[] = {
	{ "null", 0, { INV, INV }, { INV, INV }, { 0, 0 }, { 0, 0 } },
	{ "kcode", KCODE, { 0x00C09A00, INV }, { 0xFFFFFFFF, INV }, { 1, 0 }, { 0, 0 } },
	{ "kdata", KDATA, { 0x00C09200, INV }, { 0xFFFFFFFF, INV }, { 1, 0 }, { 1, 0 } },
	{ "ucode", UCODE, { 0x00C0FA00, 0x00C0FA00 }, { 0xFFFFFFFF, 0xFFFFFFFF }, { 1, 1 }, { 0, 0 } },
	{ "udata", UDATA, { 0x00C0F200, 0x00C0F200 }, { 0xFFFFFFFF, 0xFFFFFFFF }, { 1, 1 }, { 1, 1 } },
	{ "busy-tss", TSS_SEL, { 0x00008A00, INV }, { TSS_LIMIT, INV }, { 0, 0 }, { 0, 0 } },
	{ "ldt", S_LDT, { 0x00008200, INV }, { sizeof ldt_tab - 1, INV }, { 0, 0 }, { 0, 0 } },
	{ "conforming", S_CONF, { 0x00C09E00, 0x00C09E00 }, { 0xFFFFFFFF, 0xFFFFFFFF }, { 1, 1 }, { 0, 0 } },
	{ "conforming-rpl3", S_CONF | 3, { 0x00C09E00, 0x00C09E00 }, { 0xFFFFFFFF, 0xFFFFFFFF }, { 1, 1 }, { 0, 0 } },
	{ "exec-only-dpl3", S_XO3, { 0x00C0F800, 0x00C0F800 }, { 0xFFFFFFFF, 0xFFFFFFFF }, { 0, 0 }, { 0, 0 } },
	{ "read-only-dpl3", S_SMALL3, { 0x0040F000, 0x0040F000 }, { 0x1234, 0x1234 }, { 1, 1 }, { 0, 0 } },
	{ "not-present-dpl3", S_NP3, { 0x00C07200, 0x00C07200 }, { 0xFFFFFFFF, 0xFFFFFFFF }, { 1, 1 }, { 1, 1 } },
	{ "tss-dpl3", S_TSS3, { 0x0000E800, 0x0000E800 }, { 103, 103 }, { 0, 0 }, { 0, 0 } },
	{ "int-gate", S_INTG3, { INV, INV }, { INV, INV }, { 0, 0 }, { 0, 0 } },
	{ "call-gate-dpl3", S_LARG3, { 0x0000EC00, 0x0000EC00 }, { INV, INV }, { 0, 0 }, { 0, 0 } },
	{ "call-gate-dpl0", S_LARG0, { 0x00008C00, INV }, { INV, INV }, { 0, 0 }, { 0, 0 } },
	{ "rpl3-dpl0", KDATA | 3, { INV, INV }, { INV, INV }, { 0, 0 }, { 0, 0 } },
	{ "beyond-limit", BEYOND, { INV, INV }, { INV, INV }, { 0, 0 }, { 0, 0 } },
};
#define NCASES (sizeof cases / sizeof cases[0])
static volatile u32 d_lar[NCASES][LOOPS], d_lsl[NCASES][LOOPS], d_verr[NCASES][LOOPS], d_verw[NCASES][LOOPS];

static void desc_loop(void)
{
	for (int i = 0; i < LOOPS; i++) {
		for (u32 c = 0; c < NCASES; c++) {
			u32 sel = cases[c].sel, v, zf;
			v = INV;
			__asm__ volatile("lar %2, %0\n\tsetz %b1\n\tmovzbl %b1, %1" : "+r"(v), "=q"(zf) : "r"(sel) : "cc");
			d_lar[c][i] = zf ? v & AR_MASK : v;
			v = INV;
			__asm__ volatile("lsl %2, %0\n\tsetz %b1\n\tmovzbl %b1, %1" : "+r"(v), "=q"(zf) : "r"(sel) : "cc");
			d_lsl[c][i] = zf ? v : (v == INV ? INV : 0xBAD00000 | v);
			__asm__ volatile("verr %w1\n\tsetz %b0\n\tmovzbl %b0, %0" : "=q"(zf) : "r"(sel) : "cc");
			d_verr[c][i] = zf;
			__asm__ volatile("verw %w1\n\tsetz %b0\n\tmovzbl %b0, %0" : "=q"(zf) : "r"(sel) : "cc");
			d_verw[c][i] = zf;
		}
	}
}

static void check_desc(int ring3)
{
	for (u32 c = 0; c < NCASES; c++) {
		const struct desc_case *k = &cases[c];
		char name[48];
		char *p = name;
		for (const char *s = ring3 ? "lar-lsl-verr-verw-r3-" : "lar-lsl-verr-verw-r0-"; *s;)
			*p++ = *s++;
		for (const char *s = k->name; *s;)
			*p++ = *s++;
		*p = 0;
		int bad = -1;
		for (int i = 0; i < LOOPS && bad < 0; i++)
			if (d_lar[c][i] != k->lar[ring3] || d_lsl[c][i] != k->lsl[ring3] ||
			    d_verr[c][i] != k->verr[ring3] || d_verw[c][i] != k->verw[ring3])
				bad = i;
		if (bad < 0)
			pass(name);
		else
			fail(name, "iteration %d: lar %x lsl %x verr %u verw %u, expected %x %x %u %u", bad,
			     d_lar[c][bad], d_lsl[c][bad], d_verr[c][bad], d_verw[c][bad],
			     k->lar[ring3], k->lsl[ring3], k->verr[ring3], k->verw[ring3]);
	}
}

/* ---- PUSH/POP Sreg, MOV Sreg ---- */

static volatile u32 s_movds[LOOPS], s_movcs[LOOPS], s_movss_m[LOOPS], s_push_ds[LOOPS];
static volatile u32 s_push_delta[LOOPS], s_pushw_delta[LOOPS], s_fs_to_gs[LOOPS], s_pop_es[LOOPS];
static volatile u32 s_pop_ss[LOOPS], s_mov_es[LOOPS];
static volatile u16 s_data_sel;

static void sreg_loop(void)
{
	for (int i = 0; i < LOOPS; i++) {
		u32 v = 0xFFFFFFFF, a, b;
		__asm__ volatile("mov %%ds, %0" : "+r"(v));
		s_movds[i] = v;
		v = 0xFFFFFFFF;
		__asm__ volatile("mov %%cs, %0" : "+r"(v));
		s_movcs[i] = v;
		struct half h = { 0, 0xAAAA };
		__asm__ volatile("mov %%ss, %0" : "=m"(h.lo) :: "memory");
		s_movss_m[i] = h.lo | (u32)h.hi << 16;
		__asm__ volatile("mov %%esp, %1\n\t"
				 "push %%ds\n\t"
				 "mov %%esp, %2\n\t"
				 "pop %0"
				 : "=r"(v), "=&r"(a), "=&r"(b) :: "memory");
		s_push_ds[i] = v & 0xFFFF; /* the upper half is implementation specific */
		s_push_delta[i] = a - b;
		__asm__ volatile("mov %%esp, %0\n\t"
				 "pushw %%ds\n\t"
				 "mov %%esp, %1\n\t"
				 "popw %%ax"
				 : "=&r"(a), "=&r"(b) :: "eax", "memory");
		s_pushw_delta[i] = a - b;
		/* FS -> GS by the stack, then GS back to what it held. */
		__asm__ volatile("push %%gs\n\t"
				 "push %%fs\n\t"
				 "pop %%gs\n\t"
				 "mov %%gs, %0\n\t"
				 "pop %%gs"
				 : "=r"(v) :: "memory");
		s_fs_to_gs[i] = v;
		/* POP ES of the data selector, then of null, then back. */
		__asm__ volatile("push %%es\n\t"
				 "pushl %1\n\t"
				 "pop %%es\n\t"
				 "mov %%es, %0\n\t"
				 "pushl $0\n\t"
				 "pop %%es\n\t"
				 "mov %%es, %%eax\n\t"
				 "shl $16, %%eax\n\t"
				 "or %%eax, %0\n\t"
				 "pop %%es"
				 : "=&r"(v) : "r"((u32)s_data_sel) : "eax", "memory");
		s_pop_es[i] = v;
		__asm__ volatile("push %%ss\n\t"
				 "pop %%ss\n\t"
				 "mov %%ss, %0"
				 : "=r"(v) :: "memory");
		s_pop_ss[i] = v;
		__asm__ volatile("mov %%es, %%edx\n\t"
				 "mov %1, %%es\n\t"
				 "mov %%es, %0\n\t"
				 "mov %%edx, %%es"
				 : "=r"(v) : "r"((u32)s_data_sel) : "edx", "memory");
		s_mov_es[i] = v;
	}
}

static void check_sregs(const char *ring, u16 ds, u16 cs, u16 ss)
{
	char name[48];
	const char *what[] = { "mov-r32-ds-zero-extends", "mov-r32-cs", "mov-m16-ss", "push-ds",
			       "push-sreg-esp-4", "pushw-sreg-esp-2", "push-fs-pop-gs", "pop-es-sel-and-null",
			       "push-pop-ss", "mov-es-r32" };
	volatile u32 *arr[] = { s_movds, s_movcs, s_movss_m, s_push_ds, s_push_delta, s_pushw_delta,
				s_fs_to_gs, s_pop_es, s_pop_ss, s_mov_es };
	u32 want[] = { ds, cs, ss | 0xAAAA0000u, ds, 4, 2, ds, ds, ss, ds };
	for (int k = 0; k < 10; k++) {
		char *p = name;
		for (const char *s = what[k]; *s;)
			*p++ = *s++;
		*p++ = '-';
		for (const char *s = ring; *s;)
			*p++ = *s++;
		*p = 0;
		check_loop(name, arr[k], want[k]);
	}
}

/* Faulting segment loads: the instruction labels and the ESP before them. */
void pop_ds_fault(u32 sel), pop_ds_at(void), pop_ss_fault(u32 sel), pop_ss_at(void);
void mov_ds_fault(u32 sel), mov_ds_at(void), mov_ss_fault(u32 sel), mov_cs_ud(void);
volatile u32 fault_esp;
__asm__(
	".text\n"
	/* pop_ds_fault(sel): POP DS of `sel` (stack argument). */
	"pop_ds_fault:\n"
	"	pushl 4(%esp)\n"
	"	mov %esp, fault_esp\n"
	"pop_ds_at:\n"
	"	pop %ds\n"
	"	push %ss\n"
	"	pop %ds\n"
	"	ret\n"
	"pop_ss_fault:\n"
	"	mov %ss, %ecx\n"
	"	pushl 4(%esp)\n"
	"	mov %esp, fault_esp\n"
	"pop_ss_at:\n"
	"	pop %ss\n"
	"	mov %ecx, %ss\n"
	"	ret\n"
	"mov_ds_fault:\n"
	"	mov 4(%esp), %eax\n"
	"mov_ds_at:\n"
	"	mov %eax, %ds\n"
	"	mov %ss, %eax\n"
	"	mov %eax, %ds\n"
	"	ret\n"
	"mov_ss_fault:\n"
	"	mov %ss, %ecx\n"
	"	mov 4(%esp), %eax\n"
	"	mov %eax, %ss\n"
	"	mov %ecx, %ss\n"
	"	ret\n"
	"mov_cs_ud:\n"
	"	.byte 0x8E, 0xC8\n" /* mov %eax, %cs */
	"	ret\n");

static volatile u32 u_sel;
static void u_pop_ds(void) { pop_ds_fault(u_sel); }
static void u_pop_ss(void) { pop_ss_fault(u_sel); }
static void u_mov_ds(void) { mov_ds_fault(u_sel); }
static void u_mov_ss(void) { mov_ss_fault(u_sel); }
static void u_mov_cs(void) { mov_cs_ud(); }

/* Runs fn(sel) (ring 0) or fn in ring 3 LOOPS times; passes when every run
 * ends in exception vec with error err (vec < 0: no exception), and, when
 * at is given, at that EIP with ESP as it was before the instruction
 * (ring 3, where the frame holds ESP). */
static void fault_loop(const char *name, int ring3, void (*k)(u32), void (*u)(void), u32 sel,
		       int vec, int err, void (*at)(void))
{
	for (int i = 0; i < LOOPS; i++) {
		int r;
		u_sel = sel;
		fault_esp = 0;
		if (ring3)
			r = TRY(run_user(u, 0));
		else
			r = TRY(k(sel));
		if (r != vec || (vec >= 0 && err >= 0 && last_exc.error != (u32)err)) {
			fail(name, "iteration %d: vector %d error %x, expected %d %x", i, r, last_exc.error, vec, err);
			return;
		}
		if (at && vec >= 0 && last_exc.eip != (u32)at) {
			fail(name, "iteration %d: fault at %x, expected %x", i, last_exc.eip, (u32)at);
			return;
		}
		if (at && ring3 && vec >= 0 && fault_esp && last_exc.esp != fault_esp) {
			fail(name, "iteration %d: ESP %x at the fault, expected %x", i, last_exc.esp, fault_esp);
			return;
		}
	}
	pass(name);
}

static void segment_registers(void)
{
	s_data_sel = KDATA;
	sreg_loop();
	check_sregs("r0", KDATA, KCODE, KDATA);
	s_data_sel = UDATA;
	run_user(sreg_loop, 0);
	check_sregs("r3", UDATA, UCODE, UDATA);

	fault_loop("pop-ds-beyond-limit-r0", 0, pop_ds_fault, 0, BEYOND | 3, 13, BEYOND, pop_ds_at);
	fault_loop("pop-ds-not-present-r0", 0, pop_ds_fault, 0, S_NP0, 11, S_NP0, pop_ds_at);
	fault_loop("pop-ds-ldt-ti-null-ldtr-r0", 0, pop_ds_fault, 0, 0x14, 13, 0x14, pop_ds_at);
	fault_loop("pop-ds-null-ok-r0", 0, pop_ds_fault, 0, 0, -1, -1, 0);
	fault_loop("pop-ss-null-r0", 0, pop_ss_fault, 0, 0, 13, 0, pop_ss_at);
	fault_loop("pop-ss-rpl3-r0", 0, pop_ss_fault, 0, KDATA | 3, 13, KDATA, pop_ss_at);
	fault_loop("mov-ds-system-r0", 0, mov_ds_fault, 0, S_LDT, 13, S_LDT, mov_ds_at);
	fault_loop("mov-ds-exec-only-r0", 0, mov_ds_fault, 0, S_XO3, 13, S_XO3, mov_ds_at);
	fault_loop("mov-ss-code-r0", 0, mov_ss_fault, 0, KCODE, 13, KCODE, 0);
	fault_loop("mov-cs-ud-r0", 0, (void (*)(u32))mov_cs_ud, 0, 0, 6, -1, mov_cs_ud);

	fault_loop("pop-ds-dpl0-r3", 1, 0, u_pop_ds, KDATA, 13, KDATA, pop_ds_at);
	fault_loop("pop-ds-rpl3-dpl0-r3", 1, 0, u_pop_ds, KDATA | 3, 13, KDATA, pop_ds_at);
	fault_loop("pop-ds-not-present-r3", 1, 0, u_pop_ds, S_NP3 | 3, 11, S_NP3, pop_ds_at);
	fault_loop("pop-ds-conforming-ok-r3", 1, 0, u_pop_ds, S_CONF | 3, -1, -1, 0);
	fault_loop("pop-ss-null-r3", 1, 0, u_pop_ss, 0, 13, 0, pop_ss_at);
	fault_loop("pop-ss-dpl0-r3", 1, 0, u_pop_ss, KDATA, 13, KDATA, pop_ss_at);
	fault_loop("pop-ss-read-only-r3", 1, 0, u_pop_ss, S_SMALL3 | 3, 13, S_SMALL3, pop_ss_at);
	fault_loop("pop-ss-udata-ok-r3", 1, 0, u_pop_ss, UDATA, -1, -1, 0);
	fault_loop("mov-ds-kcode-r3", 1, 0, u_mov_ds, KCODE | 3, 13, KCODE, mov_ds_at);
	fault_loop("mov-ds-udata-ok-r3", 1, 0, u_mov_ds, UDATA, -1, -1, 0);
	fault_loop("mov-ss-ucode-r3", 1, 0, u_mov_ss, UCODE, 13, UCODE & ~3, 0);
	fault_loop("mov-cs-ud-r3", 1, 0, u_mov_cs, 0, 6, -1, mov_cs_ud);
}

/* POP SS blocks the single-step trap after it until after the next
 * instruction; POP DS does not. */
static volatile u32 db_hits, db_eip[8];
static int db_hook(struct frame *f)
{
	if (db_hits < 8)
		db_eip[db_hits] = f->eip;
	db_hits++;
	__asm__ volatile("mov %0, %%dr6" :: "r"(0));
	if (db_hits > 6)
		f->eflags &= ~EFLAGS_TF;
	return 1;
}
void popss_run(void), popss_2(void), popds_run(void), popds_1(void);
__asm__(
	".text\n"
	"popss_run:\n"
	"	push %ss\n"
	"	pushf\n"
	"	orl $0x100, (%esp)\n"
	"	popf\n"
	"	pop %ss\n"
	"	nop\n"
	"popss_2:\n"
	"	pushf\n"
	"	andl $~0x100, (%esp)\n"
	"	popf\n"
	"	ret\n"
	"popds_run:\n"
	"	push %ds\n"
	"	pushf\n"
	"	orl $0x100, (%esp)\n"
	"	popf\n"
	"	pop %ds\n"
	"popds_1:\n"
	"	nop\n"
	"	pushf\n"
	"	andl $~0x100, (%esp)\n"
	"	popf\n"
	"	ret\n");
static volatile u32 ss_first[LOOPS], ss_count[LOOPS], ds_first[LOOPS], ds_count[LOOPS];
static void shadow_run(void)
{
	/* Only ring 0 code touches the counters between runs (the hook). */
	for (int i = 0; i < LOOPS; i++) {
		db_hits = 0;
		popss_run();
		ss_first[i] = db_eip[0];
		ss_count[i] = db_hits;
		db_hits = 0;
		popds_run();
		ds_first[i] = db_eip[0];
		ds_count[i] = db_hits;
	}
}

static void pop_ss_shadow(void)
{
	exc_hooks[1] = db_hook;
	shadow_run();
	check_loop("pop-ss-shadow-first-trap-r0", ss_first, (u32)popss_2);
	check_loop("pop-ss-shadow-count-r0", ss_count, 4);
	check_loop("pop-ds-no-shadow-first-trap-r0", ds_first, (u32)popds_1);
	check_loop("pop-ds-no-shadow-count-r0", ds_count, 5);
	run_user(shadow_run, 0);
	check_loop("pop-ss-shadow-first-trap-r3", ss_first, (u32)popss_2);
	check_loop("pop-ss-shadow-count-r3", ss_count, 4);
	check_loop("pop-ds-no-shadow-first-trap-r3", ds_first, (u32)popds_1);
	check_loop("pop-ds-no-shadow-count-r3", ds_count, 5);
	exc_hooks[1] = 0;
}

/* ---- CALL, JMP, RET far ---- */

volatile u32 t_cs, t_ss, t_esp, t_ret_cs, t_before_esp;
volatile u32 r_ds, r_es, r_fs, r_cs;
void far_fn(void), cg0_fn(void), cg3_fn(void), jg_fn(void), ufar_fn(void);
u32 far_direct(void), far_indirect(void), far_gate0(void), jmp_direct(void), jmp_gate0(void);
u32 retf_imm(void);
void u_gate3(void), u_callk(void), u_jmpgate3(void), u_callgate0(void), u_retf_inner(void);
void u_far_self(void), u_jmp_self(void);
void retf_to_ring3(u32 *stack_top);
__asm__(
	".text\n"
	/* Far targets: record CS, the pushed CS and ESP, return far. */
	"far_fn:\n"
	"	mov %cs, t_cs\n"
	"	mov 4(%esp), %eax\n"
	"	mov %eax, t_ret_cs\n"
	"	mov %esp, t_esp\n"
	"	lret\n"
	"far_direct:\n"
	"	mov %esp, t_before_esp\n"
	"	lcall $0x08, $far_fn\n"
	"	mov t_cs, %eax\n"
	"	ret\n"
	"far_indirect:\n"
	"	lcall *far_ptr\n"
	"	mov t_cs, %eax\n"
	"	ret\n"
	/* Through the DPL-0 gate at the same privilege: no stack switch. */
	"far_gate0:\n"
	"	mov %esp, t_before_esp\n"
	"	lcall $0x58, $0\n"
	"	mov t_cs, %eax\n"
	"	ret\n"
	"cg0_fn:\n"
	"	mov %cs, t_cs\n"
	"	mov %ss, t_ss\n"
	"	mov %esp, t_esp\n"
	"	lret\n"
	"jmp_direct:\n"
	"	xor %eax, %eax\n"
	"	ljmp $0x08, $1f\n"
	"	mov $0xBAD, %eax\n"
	"1:	mov %cs, %ecx\n"
	"	or %ecx, %eax\n"
	"	ret\n"
	/* JMP through a DPL-0 gate to jg_fn, which jumps back far. */
	"jmp_gate0:\n"
	"	xor %eax, %eax\n"
	"	ljmp $0xA8, $0\n"
	"	mov $0xBAD, %eax\n"
	"jmp_gate0_back:\n"
	"	ret\n"
	"jg_fn:\n"
	"	mov %cs, %eax\n"
	"	ljmp *back_ptr\n"
	/* RET far with an immediate releases the parameters. */
	"retf_imm:\n"
	"	push $0x1111\n"
	"	push $0x2222\n"
	"	mov %esp, t_before_esp\n"
	"	lcall $0x08, $1f\n"
	"	mov %esp, %eax\n"
	"	sub t_before_esp, %eax\n" /* 8: the two parameters released */
	"	ret\n"
	"1:	lret $8\n"
	/* Ring 3: through the DPL-3 gate to ring 0 (cg3_fn), which loads DS and
	 * ES with the DPL-0 data segment before returning: RET nulls them. */
	"u_gate3:\n"
	"	mov %esp, t_before_esp\n"
	"	lcall $0x53, $0\n"
	"	mov %ds, %eax\n"
	"	mov %es, %ecx\n"
	"	mov %fs, %edx\n"
	"	push %ss\n"
	"	pop %ds\n"
	"	push %ss\n"
	"	pop %es\n"
	"	mov %eax, r_ds\n"
	"	mov %ecx, r_es\n"
	"	mov %edx, r_fs\n"
	"	mov %cs, r_cs\n"
	"	ret\n"
	"cg3_fn:\n"
	"	mov %cs, t_cs\n"
	"	mov %ss, t_ss\n"
	"	mov %esp, t_esp\n"
	"	mov 4(%esp), %eax\n"
	"	mov %eax, t_ret_cs\n"
	"	mov $0x10, %eax\n"
	"	mov %eax, %ds\n"
	"	mov %eax, %es\n"
	"	lret\n"
	"u_callk:\n"
	"	lcall $0x08, $far_fn\n"
	"	ret\n"
	"u_jmpgate3:\n"
	"	ljmp $0x53, $0\n"
	"	ret\n"
	"u_callgate0:\n"
	"	lcall $0x5B, $0\n"
	"	ret\n"
	/* RET far from ring 3 to ring 0 code: #GP(selector). */
	"u_retf_inner:\n"
	"	push $0x08\n"
	"	push $far_fn\n"
	"	lret\n"
	/* Ring 3 far call and jump to its own code segment. */
	"u_far_self:\n"
	"	lcall $0x1B, $ufar_fn\n"
	"	ret\n"
	"ufar_fn:\n"
	"	mov %cs, t_cs\n"
	"	mov 4(%esp), %eax\n"
	"	mov %eax, t_ret_cs\n"
	"	lret\n"
	"u_jmp_self:\n"
	"	ljmp $0x1B, $1f\n"
	"	ret\n"
	"1:	mov %cs, t_cs\n"
	"	ret\n"
	/* retf_to_ring3(stack): RET far from ring 0 to ring 3 code that
	 * records its segment registers and leaves through INT 0x81. DS and
	 * ES hold the DPL-0 data segment, FS and GS the DPL-3 one. */
	"retf_to_ring3:\n"
	"	mov 4(%esp), %eax\n"
	"	mov $0x23, %ecx\n"
	"	mov %ecx, %fs\n"
	"	mov %ecx, %gs\n"
	"	push $0x23\n"
	"	push %eax\n"
	"	push $0x1B\n"
	"	push $1f\n"
	"	lret\n"
	"1:	mov %ds, %eax\n"
	"	mov %es, %ecx\n"
	"	mov %fs, %edx\n"
	"	push %ss\n"
	"	pop %ds\n"
	"	mov %eax, r_ds\n"
	"	mov %ecx, r_es\n"
	"	mov %edx, r_fs\n"
	"	mov %cs, r_cs\n"
	"	int $0x81\n"
	"	ud2\n"
	".data\n"
	"far_ptr: .long far_fn\n"
	"	.word 0x08\n"
	"back_ptr: .long jmp_gate0_back\n"
	"	.word 0x08\n"
	".text\n");

static volatile u32 c_a[LOOPS], c_b[LOOPS], c_c[LOOPS], c_d[LOOPS], c_e[LOOPS];

static void u_far_loop(void)
{
	for (int i = 0; i < LOOPS; i++) {
		t_cs = 0;
		u_gate3();
		c_a[i] = t_cs | t_ss << 16;
		c_b[i] = r_ds | r_es << 16;
		c_c[i] = r_fs | r_cs << 16;
		c_d[i] = t_esp;
		c_e[i] = t_ret_cs;
	}
}

static void u_self_loop(void)
{
	for (int i = 0; i < LOOPS; i++) {
		t_cs = 0;
		u_far_self();
		c_a[i] = t_cs | (t_ret_cs & 0xFFFF) << 16;
		t_cs = 0;
		u_jmp_self();
		c_b[i] = t_cs;
	}
}

static void far_transfers(void)
{
	gdt_set_gate(E_CG3, KCODE, (u32)cg3_fn, 0xEC, 0);
	gdt_set_gate(E_CG0, KCODE, (u32)cg0_fn, 0x8C, 0);
	gdt_set_gate(E_JG0, KCODE, (u32)jg_fn, 0x8C, 0);

	/* Ring 0. */
	for (int i = 0; i < LOOPS; i++) {
		u32 cs = far_direct();
		c_a[i] = cs | (t_ret_cs & 0xFFFF) << 16;
		c_b[i] = t_before_esp - t_esp; /* CS:EIP pushed */
		c_c[i] = far_indirect();
		cs = far_gate0();
		c_d[i] = cs | t_ss << 16;
		c_e[i] = t_before_esp - t_esp;
	}
	check_loop("call-far-direct-r0", c_a, KCODE | KCODE << 16);
	check_loop("call-far-direct-pushes-8-r0", c_b, 8);
	check_loop("call-far-indirect-r0", c_c, KCODE);
	check_loop("call-gate-same-level-r0", c_d, KCODE | KDATA << 16);
	check_loop("call-gate-same-level-no-stack-switch-r0", c_e, 8);
	for (int i = 0; i < LOOPS; i++) {
		c_a[i] = jmp_direct();
		c_b[i] = jmp_gate0();
		c_c[i] = retf_imm();
	}
	check_loop("jmp-far-direct-r0", c_a, KCODE);
	check_loop("jmp-gate-same-level-r0", c_b, KCODE);
	check_loop("ret-far-imm-releases-r0", c_c, 8);

	/* Ring 3 -> ring 0 through the DPL-3 gate, RET back nulling DS/ES. */
	run_user(u_far_loop, 0);
	check_loop("call-gate-r3-to-r0-cs-ss", c_a, KCODE | KDATA << 16);
	check_loop("ret-far-outer-nulls-ds-es", c_b, 0);
	check_loop("ret-far-outer-keeps-fs-cs", c_c, UDATA | UCODE << 16);
	check_loop("call-gate-r3-pushed-cs", c_e, UCODE);
	check_loop("call-gate-r3-stack-from-tss", c_d, (u32)ring0_stack_top - 16);
	run_user(u_self_loop, 0);
	check_loop("call-far-direct-r3", c_a, UCODE | UCODE << 16);
	check_loop("jmp-far-direct-r3", c_b, UCODE);
	fault_loop("call-far-dpl0-code-r3", 1, 0, u_callk, 0, 13, KCODE, 0);
	fault_loop("jmp-gate-to-inner-r3", 1, 0, u_jmpgate3, 0, 13, KCODE, 0);
	fault_loop("call-gate-dpl0-r3", 1, 0, u_callgate0, 0, 13, S_CG0, 0);
	fault_loop("ret-far-to-inner-r3", 1, 0, u_retf_inner, 0, 13, KCODE, 0);

	/* Ring 0 -> ring 3 by RET far. */
	int ok = 1;
	for (int i = 0; i < LOOPS && ok; i++) {
		r_ds = r_es = r_fs = r_cs = 0xFFFF;
		int r = TRY(retf_to_ring3(&ustack[1024]));
		if (r != USER_EXIT_VECTOR || (r_ds & 0xFFFF) != 0 || (r_es & 0xFFFF) != 0 ||
		    (r_fs & 0xFFFF) != UDATA || (r_cs & 0xFFFF) != UCODE) {
			fail("ret-far-r0-to-r3-nulls-ds-es", "iteration %d: exit %d ds %x es %x fs %x cs %x",
			     i, r, r_ds, r_es, r_fs, r_cs);
			ok = 0;
		}
	}
	if (ok)
		pass("ret-far-r0-to-r3-nulls-ds-es");
}

/* ---- INT n and IRET ---- */

static volatile u32 int_hits, int_cs, int_cpl, int_if;
static int int_hook(struct frame *f)
{
	u32 cs;
	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	int_hits++;
	int_cs = f->cs & 0xFFFF;
	int_cpl = cs & 3;
	int_if = read_eflags() & EFLAGS_IF;
	return 1;
}
static volatile u32 n_a[LOOPS], n_b[LOOPS];
static void int_loop(void)
{
	for (int i = 0; i < LOOPS; i++) {
		int_hits = 0;
		__asm__ volatile("int $0x41");
		n_a[i] = int_hits | int_cs << 8 | int_cpl << 24;
		int_hits = 0;
		__asm__ volatile("int $0x43");
		n_b[i] = int_hits | int_if << 8;
	}
}
static void int_loop_r0(void)
{
	int_loop();
	for (int i = 0; i < LOOPS; i++) {
		int_hits = 0;
		__asm__ volatile("int $0x40");
		n_b[i] = int_hits | int_cs << 8;
	}
}
static void u_int40(void) { __asm__ volatile("int $0x40"); }
static void u_int3(void) { __asm__ volatile("int3"); }
static void u_int13(void) { __asm__ volatile("int $0x0D"); }

void iret_to_ring3(u32 *stack_top, u32 eflags), u_iret_inner(void);
u32 iret_r0_flags(u32 eflags);
volatile u32 i_cs, i_ss, i_fl, i_ds;
__asm__(
	".text\n"
	/* iret_to_ring3(stack, eflags): IRET to ring 3 code that records CS,
	 * SS, EFLAGS and DS (DS held the DPL-0 data segment: nulled) and
	 * leaves through INT 0x81. */
	"iret_to_ring3:\n"
	"	mov 4(%esp), %eax\n"
	"	mov 8(%esp), %ecx\n"
	"	push $0x23\n"
	"	push %eax\n"
	"	push %ecx\n"
	"	push $0x1B\n"
	"	push $1f\n"
	"	iret\n"
	"1:	mov %ds, %eax\n"
	"	push %ss\n"
	"	pop %ds\n"
	"	mov %eax, i_ds\n"
	"	mov %cs, i_cs\n"
	"	mov %ss, i_ss\n"
	"	pushf\n"
	"	popl i_fl\n"
	"	int $0x81\n"
	"	ud2\n"
	/* iret_r0_flags(eflags): IRET within ring 0; returns the flags after. */
	"iret_r0_flags:\n"
	"	pushf\n"
	"	pushl 8(%esp)\n"
	"	push %cs\n"
	"	push $1f\n"
	"	iret\n"
	"1:	pushf\n"
	"	pop %eax\n"
	"	popf\n"
	"	ret\n"
	/* IRET from ring 3 to ring 0 code: #GP(selector). */
	"u_iret_inner:\n"
	"	pushf\n"
	"	push $0x08\n"
	"	push $far_fn\n"
	"	iret\n");

static void interrupts(void)
{
	for (int v = 0x40; v <= 0x43; v++)
		exc_hooks[v] = int_hook;
	idt_set(0x40, KCODE, isr_table[0x40], 0x8E); /* interrupt gate, DPL 0 */
	idt_set(0x41, KCODE, isr_table[0x41], 0xEE); /* interrupt gate, DPL 3 */
	idt_set(0x43, KCODE, isr_table[0x43], 0xEF); /* trap gate, DPL 3 */

	int_loop_r0();
	check_loop("int-dpl3-gate-r0", n_a, 1 | KCODE << 8);
	check_loop("int-dpl0-gate-r0", n_b, 1 | KCODE << 8);
	run_user(int_loop, EFLAGS_IF);
	check_loop("int-dpl3-gate-r3", n_a, 1 | UCODE << 8);
	check_loop("int-trap-gate-keeps-if-r3", n_b, 1 | EFLAGS_IF << 8);
	fault_loop("int-dpl0-gate-r3", 1, 0, u_int40, 0, 13, 0x40 * 8 + 2, 0);
	fault_loop("int3-dpl0-gate-r3", 1, 0, u_int3, 0, 13, 3 * 8 + 2, 0);
	fault_loop("int-exception-vector-r3", 1, 0, u_int13, 0, 13, 0x0D * 8 + 2, 0);

	/* IRET within ring 0 sets what it pops, IOPL and IF included. */
	int ok = 1;
	for (int i = 0; i < LOOPS && ok; i++) {
		u32 want = 2 | EFLAGS_CF | IOPL(1) | EFLAGS_IF | EFLAGS_AC;
		u32 got = iret_r0_flags(want) &
			  (2 | EFLAGS_CF | IOPL_MASK | EFLAGS_IF | EFLAGS_AC | EFLAGS_DF | EFLAGS_NT | EFLAGS_TF);
		if (got != want) {
			fail("iret-r0-same-level", "iteration %d: flags %x, expected %x", i, got, want);
			ok = 0;
		}
	}
	if (ok)
		pass("iret-r0-same-level");
	/* IRET to ring 3. */
	ok = 1;
	for (int i = 0; i < LOOPS && ok; i++) {
		u32 fl = 2 | IOPL(i & 3) | (i & 1 ? EFLAGS_IF : 0);
		i_cs = i_ss = i_fl = i_ds = 0xFFFF;
		int r = TRY(iret_to_ring3(&ustack[1024], fl));
		if (r != USER_EXIT_VECTOR || (i_cs & 0xFFFF) != UCODE || (i_ss & 0xFFFF) != UDATA ||
		    (i_fl & (IOPL_MASK | EFLAGS_IF)) != (fl & (IOPL_MASK | EFLAGS_IF)) || (i_ds & 0xFFFF) != 0) {
			fail("iret-r0-to-r3", "iteration %d: exit %d cs %x ss %x eflags %x ds %x", i, r,
			     i_cs, i_ss, i_fl, i_ds);
			ok = 0;
		}
	}
	if (ok)
		pass("iret-r0-to-r3");
	fault_loop("iret-r3-to-r0", 1, 0, u_iret_inner, 0, 13, KCODE, 0);
	for (int v = 0x40; v <= 0x43; v++) {
		exc_hooks[v] = 0;
		idt_set_default(v);
	}
}

void test_main(void)
{
	gdt_set(E_LDT, (u32)ldt_tab, sizeof ldt_tab - 1, 0x82, 0x00);
	tss2[1] = (u32)ring0_stack_top; /* esp0 */
	tss2[2] = KDATA;                /* ss0 */
	tss2[25] = 104u << 16;          /* I/O map base beyond the limit */
	gdt_set(E_TSS2, (u32)tss2, 103, 0x89, 0x00);
	gdt_set(E_CONF, 0, 0xFFFFF, 0x9E, 0xC0);
	gdt_set(E_XO3, 0, 0xFFFFF, 0xF8, 0xC0);
	gdt_set(E_SMALL3, 0, 0x1234, 0xF0, 0x40);
	gdt_set(E_NP3, 0, 0xFFFFF, 0x72, 0xC0);
	gdt_set(E_TSS3, (u32)tss3, 103, 0xE9, 0x00);
	gdt_set_gate(E_INTG3, KCODE, 0, 0xEE, 0);
	gdt_set_gate(E_LARG3, KCODE, 0, 0xEC, 0);
	gdt_set_gate(E_LARG0, KCODE, 0, 0x8C, 0);
	gdt_set(E_NP0, 0, 0xFFFFF, 0x12, 0xC0);
	__asm__ volatile("lldt %w0" :: "r"(S_LDT));

	table_registers();
	flags();
	desc_loop();
	check_desc(0);
	run_user(desc_loop, 0);
	check_desc(1);
	__asm__ volatile("lldt %w0" :: "r"(0)); /* for the TI=1 fault below */
	segment_registers();
	pop_ss_shadow();
	far_transfers();
	interrupts();
}
