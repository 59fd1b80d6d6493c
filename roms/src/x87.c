/* x87: basic results, masked and unmasked exceptions, #NM.
 * Intel SDM Vol. 1 §8.1.3 (status word), §8.1.5 (precision control),
 * §8.5 (exception conditions; masked responses: infinity for a divide by
 * zero, the real indefinite QNaN for an invalid operation), §8.7 (unmasked
 * exceptions: CR0.NE=1 -> #MF at the next waiting x87 instruction;
 * CR0.NE=0 -> FERR#, no #MF); Vol. 3A §2.5 / Table 2-2 (CR0.EM, MP, TS and
 * #NM for x87 instructions and WAIT). */
#include "test.h"

const char test_name[] = "x87";

static volatile u64 d;
static volatile u32 f32;
static volatile u8 ext[10];
static volatile int i10 = 10, i4 = 4, i3 = 3, i2 = 2, i1 = 1;
static volatile double zero_d = 0.0, minus1 = -1.0;
static volatile u16 cw;

static u32 sw(void)
{
	u16 s;
	__asm__ volatile("fnstsw %0" : "=m"(s));
	return s;
}

static int check64(const char *name, u64 got, u64 want)
{
	if (got == want) {
		pass(name);
		return 1;
	}
	fail(name, "got %08x%08x, expected %08x%08x", (u32)(got >> 32), (u32)got,
	     (u32)(want >> 32), (u32)want);
	return 0;
}

static void fldcw(u16 v)
{
	cw = v;
	__asm__ volatile("fldcw %0" :: "m"(cw));
}

void fwait_at(void);

void test_main(void)
{
	write_cr0((read_cr0() & ~0xCu) | 0x22); /* EM=0, TS=0, MP=1, NE=1 */
	__asm__ volatile("fninit");
	check_eq("fninit-sw", sw(), 0);

	__asm__ volatile("fld1\n\tfld1\n\tfaddp\n\tfld1\n\tfaddp\n\tfstpl %0" : "=m"(d));
	check64("fadd-double", d, 0x4008000000000000ull);
	__asm__ volatile("fildl %1\n\tfidivl %2\n\tfstpl %0" : "=m"(d) : "m"(i10), "m"(i4));
	check64("fdiv-double", d, 0x4004000000000000ull);
	__asm__ volatile("fildl %1\n\tfimull %2\n\tfstpl %0" : "=m"(d) : "m"(i2), "m"(i3));
	check64("fmul-double", d, 0x4018000000000000ull);
	__asm__ volatile("fildl %1\n\tfsqrt\n\tfstpl %0" : "=m"(d) : "m"(i2));
	check64("fsqrt-double", d, 0x3FF6A09E667F3BCDull);
	__asm__ volatile("fildl %1\n\tfidivl %2\n\tfstps %0" : "=m"(f32) : "m"(i1), "m"(i3));
	check_eq("fdiv-single", f32, 0x3EAAAAAB);
	check_eq("precision-flag", sw() & 0x20, 0x20);
	__asm__ volatile("fildl %1\n\tfidivl %2\n\tfstpt %0" : "=m"(ext) : "m"(i1), "m"(i3));
	check64("fdiv-extended-mantissa", *(volatile u64 *)ext, 0xAAAAAAAAAAAAAAABull);
	check_eq("fdiv-extended-exponent", *(volatile u16 *)(ext + 8), 0x3FFD);
	/* Precision control = single: 1/3 rounded to 24 bits in the register. */
	fldcw(0x007F);
	__asm__ volatile("fildl %1\n\tfidivl %2\n\tfstpl %0" : "=m"(d) : "m"(i1), "m"(i3));
	check64("pc-single-fdiv", d, 0x3FD5555560000000ull);
	fldcw(0x037F);
	/* Condition codes. */
	__asm__ volatile("fninit\n\tfld1\n\tftst\n\tfstp %%st(0)" ::: "memory");
	check_eq("ftst-positive", sw() & 0x4500, 0);
	__asm__ volatile("fldz\n\tftst\n\tfstp %%st(0)" ::: "memory");
	check_eq("ftst-zero", sw() & 0x4500, 0x4000);
	__asm__ volatile("fld1\n\tficoml %0\n\tfstp %%st(0)" :: "m"(i2));
	check_eq("fcom-less", sw() & 0x4500, 0x0100);

	/* Masked exceptions: results and flags. */
	__asm__ volatile("fninit\n\tfld1\n\tfdivl %1\n\tfstpl %0" : "=m"(d) : "m"(zero_d));
	check64("masked-zero-divide-infinity", d, 0x7FF0000000000000ull);
	check_eq("masked-zero-divide-ze", sw() & 0x3F, 0x04);
	__asm__ volatile("fninit\n\tfldl %1\n\tfsqrt\n\tfstpl %0" : "=m"(d) : "m"(minus1));
	check64("masked-invalid-indefinite", d, 0xFFF8000000000000ull);
	check_eq("masked-invalid-ie", sw() & 0x3F, 0x01);

	/* Unmasked zero divide with CR0.NE = 1: #MF at the next waiting instruction. */
	__asm__ volatile("fninit");
	fldcw(0x037B);
	int r = TRY(__asm__ volatile("fld1\n\tfdivl %0\n\t"
				     ".globl fwait_at\nfwait_at:\tfwait" :: "m"(zero_d)));
	if (check_exc("unmasked-ne1-mf", r, 16, -1))
		check_eq("unmasked-ne1-mf-eip", last_exc.eip, (u32)fwait_at);
	check_eq("unmasked-sw-es-b-ze", sw() & 0x80BF, 0x8084);
	__asm__ volatile("fnclex\n\tfninit");
	/* CR0.NE = 0: FERR# instead (the PIC is masked): no #MF. */
	write_cr0(read_cr0() & ~0x20u);
	fldcw(0x037B);
	r = TRY(__asm__ volatile("fld1\n\tfdivl %0\n\tfwait" :: "m"(zero_d)));
	check_exc("unmasked-ne0-no-mf", r, -1, -1);
	__asm__ volatile("fnclex\n\tfninit");
	write_cr0(read_cr0() | 0x20);

	/* #NM (Table 2-2). */
	write_cr0(read_cr0() | 0x8); /* TS */
	check_exc("ts-fld-nm", TRY(__asm__ volatile("fld1")), 7, -1);
	check_exc("ts-mp-fwait-nm", TRY(__asm__ volatile("fwait")), 7, -1);
	write_cr0(read_cr0() & ~0x2u); /* MP = 0 */
	check_exc("ts-no-mp-fwait-ok", TRY(__asm__ volatile("fwait")), -1, -1);
	__asm__ volatile("clts");
	write_cr0(read_cr0() | 0x4); /* EM */
	check_exc("em-fld-nm", TRY(__asm__ volatile("fld1")), 7, -1);
	check_exc("em-fwait-ok", TRY(__asm__ volatile("fwait")), -1, -1);
	write_cr0((read_cr0() & ~0x4u) | 0x2);
	check_exc("fpu-usable-again", TRY(__asm__ volatile("fninit\n\tfld1\n\tfstp %%st(0)" ::: "memory")), -1, -1);
}
