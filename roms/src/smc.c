/* smc: self-modifying and cross-modifying code.
 * Intel SDM Vol. 3A §8.1.3 (handling self- and cross-modifying code: a
 * write to a code byte is seen by the next fetch of it, on P6 and later
 * even when the instruction is already prefetched or in the same block,
 * checked by physical address, so a write through another linear alias
 * counts), §11.6 (self-modifying code detection), Vol. 1 §7.3.9 (string
 * stores over code); QEMU's docs/specs/fw_cfg.rst (DMA), whose writes to
 * memory must reach later instruction fetches as CPU writes do.
 *
 * Every target is run several times before it is changed, so a translator
 * has made (and, with chaining, linked) a block of it; then it is changed
 * and run again, and the new behaviour must show at once:
 *   same-block-*  an instruction patches one later in its own basic block;
 *   same-page-*   a block patches another in its page (also from a hot loop
 *                 that calls the target on every iteration and patches it
 *                 halfway);
 *   other-page-*  the same with the target on another page;
 *   alias-*       paging maps one physical page at two more linear
 *                 addresses: written through one, run through another;
 *                 also a page-table change under a running address;
 *   string-*      REP MOVSB / REP STOSB / STOSD (forward and backward)
 *                 over code, including the instruction after the REP;
 *   dma-*         fw_cfg DMA reads the "QEMU" signature into an immediate,
 *                 of another page and of the instruction after the OUT
 *                 that starts the transfer.
 *
 * QEMU 7.2 TCG fails dma-same-block: the OUT that starts the DMA does not
 * end QEMU's translation block, so the rest of that block runs as it was
 * translated before the transfer (the SDM's cross-modifying rules do not
 * cover a device writing the next instruction, so real hardware may differ
 * too: morph86 makes the write visible at the next instruction, as it does
 * for a CPU store). */
#include "test.h"

const char test_name[] = "smc";

/* Targets return EAX; arguments by regparm(3): EAX, EDX, ECX. */
#define RP __attribute__((regparm(3)))
extern RP u32 sb_imm(u32 v);
extern RP u32 sb_op(u32 opcode, u32 x);
extern RP u32 sb_rmw(void);
extern RP u32 sb_far(u32 v);
extern RP u32 sb_jmp(u32 rel);
extern RP u32 sp_target(void);
extern RP void sp_patch(u32 v);
extern RP u32 loop_same(u32 n, u32 at, u32 v);
extern RP u32 loop_other(u32 n, u32 at, u32 v);
extern RP u32 op_target(void);
extern RP u32 str_self(u32 byte);
extern RP u32 dma_self(u32 desc_be);
extern RP u32 alias_fn(void);
extern RP u32 alias_loop(u32 n, u32 at, u32 v);
extern u8 sb_rmw_imm[], sp_target_imm[], same_tgt_imm[], other_tgt_imm[], op_target_imm[];
extern u8 dma_self_imm[], alias_page[], alias_fn_imm[], alias_tgt_imm[], alias_page2[];
extern u8 str_template[], str_template_end[];

#define ALIAS_X 0x40000000u /* alias_page, read-only */
#define ALIAS_W 0x40001000u /* alias_page, writable */
#define ALIAS_R 0x40002000u /* remapped between alias_page and alias_page2 */
#define AOFF(sym) ((u32)(sym) - (u32)alias_page)

__asm__(
	".section .text.smc, \"ax\"\n"
	/* ---- page 1: same-block and same-page code ---- */
	".balign 4096\n"
	/* sb_imm(v): stores v into the immediate of the next MOV. */
	"sb_imm:\n"
	"	movl %eax, 1f+1\n"
	"1:	movl $0x11111111, %eax\n"
	"	ret\n"
	/* sb_op(opcode, x): 100 op x, where the byte store makes op ADD (01)
	 * or SUB (29) of the instruction two further on. */
	"sb_op:\n"
	"	movb %al, 1f\n"
	"	movl $100, %eax\n"
	"1:	.byte 0x01, 0xD0\n" /* add %edx, %eax */
	"	ret\n"
	/* sb_rmw(): increments the immediate of the next MOV in memory. */
	"sb_rmw:\n"
	"	addl $1, sb_rmw_imm\n"
	"	movl $0, %eax\n"
	"sb_rmw_imm = . - 4\n"
	"	ret\n"
	/* sb_far(v): patches an instruction 8 ALU instructions on. */
	"sb_far:\n"
	"	movl %eax, %ecx\n"
	"	movl %ecx, 1f+1\n" /* the ModRM form (89 0D), not A3 */
	"	movl %eax, %edx\n"
	"	addl $3, %edx\n"
	"	xorl %ecx, %ecx\n"
	"	subl %edx, %ecx\n"
	"	andl $0x7f, %ecx\n"
	"	orl %ecx, %edx\n"
	"	leal 4(%edx), %edx\n"
	"	movl %edx, %ecx\n"
	"1:	movl $0x11111111, %eax\n"
	"	ret\n"
	/* sb_jmp(rel): sets the displacement of the JMP after the store:
	 * 0 returns 1, 6 returns 2. */
	"sb_jmp:\n"
	"	movb %al, 1f+1\n"
	"1:	.byte 0xEB, 0x00\n" /* jmp +0 */
	"	movl $1, %eax\n"
	"	ret\n"
	"	movl $2, %eax\n"
	"	ret\n"
	/* sp_target() / sp_patch(v): two blocks of one page. */
	"sp_target:\n"
	"	movl $0x22222222, %eax\n"
	"sp_target_imm = . - 4\n"
	"	ret\n"
	"sp_patch:\n"
	"	movl %eax, sp_target_imm\n"
	"	ret\n"
	/* loop_same(n, at, v): sums n calls of same_tgt, storing v into its
	 * immediate before the call made when the down-counter equals `at`. */
	"loop_same:\n"
	"	push %ebx\n"
	"	push %esi\n"
	"	movl %eax, %esi\n"
	"	xorl %ebx, %ebx\n"
	"1:	cmpl %edx, %esi\n"
	"	jne 2f\n"
	"	movl %ecx, same_tgt_imm\n"
	"2:	call same_tgt\n"
	"	addl %eax, %ebx\n"
	"	subl $1, %esi\n"
	"	jnz 1b\n"
	"	movl %ebx, %eax\n"
	"	pop %esi\n"
	"	pop %ebx\n"
	"	ret\n"
	"same_tgt:\n"
	"	movl $3, %eax\n"
	"same_tgt_imm = . - 4\n"
	"	ret\n"
	/* loop_other: the same, calling other_tgt on page 2. */
	"loop_other:\n"
	"	push %ebx\n"
	"	push %esi\n"
	"	movl %eax, %esi\n"
	"	xorl %ebx, %ebx\n"
	"1:	cmpl %edx, %esi\n"
	"	jne 2f\n"
	"	movl %ecx, other_tgt_imm\n"
	"2:	call other_tgt\n"
	"	addl %eax, %ebx\n"
	"	subl $1, %esi\n"
	"	jnz 1b\n"
	"	movl %ebx, %eax\n"
	"	pop %esi\n"
	"	pop %ebx\n"
	"	ret\n"
	/* str_self(byte): REP STOSB writes `byte` over the immediate of the
	 * MOV right after it. */
	"str_self:\n"
	"	push %edi\n"
	"	movl $1f+1, %edi\n"
	"	movl $4, %ecx\n"
	"	rep stosb\n"
	"1:	movl $0x11111111, %eax\n"
	"	pop %edi\n"
	"	ret\n"
	/* dma_self(desc_be): starts the fw_cfg DMA transfer whose descriptor
	 * address (big-endian) is in EAX; the transfer writes the immediate of
	 * the MOV after the OUT. */
	"dma_self:\n"
	"	movl $0x518, %edx\n"
	"	outl %eax, %dx\n"
	"	movl $0x11111111, %eax\n"
	"dma_self_imm = . - 4\n"
	"	ret\n"
	/* ---- page 2: targets on another page ---- */
	".balign 4096\n"
	"other_tgt:\n"
	"	movl $7, %eax\n"
	"other_tgt_imm = . - 4\n"
	"	ret\n"
	"op_target:\n"
	"	movl $0x33333333, %eax\n"
	"op_target_imm = . - 4\n"
	"	ret\n"
	"	.fill 32, 1, 0x90\n"
	/* A replacement body for op_target, copied over it by string ops. */
	"str_template:\n"
	"	movl $0x44444444, %eax\n"
	"	addl $0x100, %eax\n"
	"	ret\n"
	"str_template_end:\n"
	/* ---- page 3: run through linear aliases (position independent) ---- */
	".balign 4096\n"
	"alias_page:\n"
	"alias_fn:\n"
	"	movl $0x55555555, %eax\n"
	"alias_fn_imm = . - 4\n"
	"	ret\n"
	/* alias_loop(n, at, v): loop_same run at ALIAS_X, patching alias_tgt
	 * through ALIAS_W. */
	"alias_loop:\n"
	"	push %ebx\n"
	"	push %esi\n"
	"	movl %eax, %esi\n"
	"	xorl %ebx, %ebx\n"
	"1:	cmpl %edx, %esi\n"
	"	jne 2f\n"
	"	movl %ecx, 0x40001000 + (alias_tgt_imm - alias_page)\n"
	"2:	call alias_tgt\n"
	"	addl %eax, %ebx\n"
	"	subl $1, %esi\n"
	"	jnz 1b\n"
	"	movl %ebx, %eax\n"
	"	pop %esi\n"
	"	pop %ebx\n"
	"	ret\n"
	"alias_tgt:\n"
	"	movl $9, %eax\n"
	"alias_tgt_imm = . - 4\n"
	"	ret\n"
	/* ---- page 4: what ALIAS_R maps after a page-table change ---- */
	".balign 4096\n"
	"alias_page2:\n"
	"	movl $0x66666666, %eax\n"
	"	ret\n"
	".balign 4096\n"
	".text\n");

static void set_imm(u8 *at, u32 v) { *(volatile u32 *)at = v; }

/* Runs f `n` times; the value it returned if every call agreed, else ~0. */
static u32 run_n(RP u32 (*f)(void), int n)
{
	u32 first = f();
	for (int i = 1; i < n; i++)
		if (f() != first)
			return 0xFFFFFFFF;
	return first;
}

#define WARM 40

static void same_block(void)
{
	int ok = 1;
	for (u32 i = 0; i < 40; i++) {
		u32 v = 0x1000 * i + 0xA5;
		u32 r = sb_imm(v);
		if (r != v) {
			fail("same-block-imm", "call %u returned %x, expected %x", i, r, v);
			ok = 0;
			break;
		}
	}
	if (ok)
		pass("same-block-imm");
	ok = 1;
	for (u32 i = 0; i < 40; i++) {
		u32 op = (i / 3) & 1 ? 0x29 : 0x01; /* runs of the same opcode */
		u32 r = sb_op(op, i);
		u32 want = op == 0x01 ? 100 + i : 100 - i;
		if (r != want) {
			fail("same-block-opcode", "call %u (opcode %x) returned %x, expected %x", i, op, r, want);
			ok = 0;
			break;
		}
	}
	if (ok)
		pass("same-block-opcode");
	set_imm(sb_rmw_imm, 0);
	ok = 1;
	for (u32 i = 1; i <= 40; i++) {
		u32 r = sb_rmw();
		if (r != i) {
			fail("same-block-rmw", "call %u returned %x", i, r);
			ok = 0;
			break;
		}
	}
	if (ok)
		pass("same-block-rmw");
	ok = 1;
	for (u32 i = 0; i < 40; i++) {
		u32 v = ~i * 0x01010101;
		u32 r = sb_far(v);
		if (r != v) {
			fail("same-block-far-ahead", "call %u returned %x, expected %x", i, r, v);
			ok = 0;
			break;
		}
	}
	if (ok)
		pass("same-block-far-ahead");
	ok = 1;
	for (u32 i = 0; i < 40; i++) {
		u32 rel = (i / 4) & 1 ? 6 : 0;
		u32 r = sb_jmp(rel);
		if (r != (rel ? 2u : 1u)) {
			fail("same-block-jump-target", "call %u (rel %u) returned %x", i, rel, r);
			ok = 0;
			break;
		}
	}
	if (ok)
		pass("same-block-jump-target");
}

/* Sum of loop_*(n, at, v) when the target returned `old` before. */
static u32 loop_sum(u32 n, u32 at, u32 old, u32 v)
{
	return at == 0 || at > n ? n * old : (n - at) * old + at * v;
}

static void same_and_other_page(void)
{
	set_imm(sp_target_imm, 0x22222222);
	check_eq("same-page-warm", run_n(sp_target, WARM), 0x22222222);
	int ok = 1;
	for (u32 i = 0; i < 8 && ok; i++) {
		u32 v = 0x5000 + i;
		sp_patch(v);
		u32 r = run_n(sp_target, 4);
		if (r != v) {
			fail("same-page-block", "after patch %u: %x, expected %x", i, r, v);
			ok = 0;
		}
	}
	if (ok)
		pass("same-page-block");

	/* Hot loops: warm without a patch, then patch halfway, repeatedly. */
	set_imm(same_tgt_imm, 3);
	check_eq("same-page-loop-warm", loop_same(100, 0, 0), 300);
	u32 old = 3;
	ok = 1;
	for (u32 i = 0; i < 6 && ok; i++) {
		u32 v = 10 + i, at = 17 + i * 5;
		u32 r = loop_same(50, at, v), want = loop_sum(50, at, old, v);
		if (r != want) {
			fail("same-page-loop-patch", "round %u: %x, expected %x", i, r, want);
			ok = 0;
		}
		old = v;
	}
	if (ok)
		pass("same-page-loop-patch");
	check_eq("same-page-loop-after", loop_same(20, 0, 0), 20 * old);

	set_imm(other_tgt_imm, 7);
	check_eq("other-page-loop-warm", loop_other(100, 0, 0), 700);
	old = 7;
	ok = 1;
	for (u32 i = 0; i < 6 && ok; i++) {
		u32 v = 20 + i, at = 13 + i * 7;
		u32 r = loop_other(50, at, v), want = loop_sum(50, at, old, v);
		if (r != want) {
			fail("other-page-loop-patch", "round %u: %x, expected %x", i, r, want);
			ok = 0;
		}
		old = v;
	}
	if (ok)
		pass("other-page-loop-patch");
	/* Patched from C (yet another page) between hot runs. */
	set_imm(other_tgt_imm, 0x1234);
	check_eq("other-page-from-c", loop_other(30, 0, 0), 30 * 0x1234);
	set_imm(op_target_imm, 0x33333333);
	check_eq("other-page-warm", run_n(op_target, WARM), 0x33333333);
	set_imm(op_target_imm, 0x77777777);
	check_eq("other-page-block", run_n(op_target, 4), 0x77777777);
}

static void string_writes(void)
{
	u32 n = (u32)(str_template_end - str_template);
	/* REP MOVSB of a new body over a hot target. */
	set_imm(op_target_imm, 0x33333333);
	check_eq("string-warm", run_n(op_target, WARM), 0x33333333);
	const u8 *src = str_template;
	u8 *dst = (u8 *)op_target;
	__asm__ volatile("cld; rep movsb" : "+S"(src), "+D"(dst), "+c"(n) :: "memory");
	check_eq("string-rep-movsb", run_n(op_target, 4), 0x44444544);
	/* REP STOSB over its immediate. */
	dst = (u8 *)op_target + 1;
	u32 cnt = 4;
	__asm__ volatile("cld; rep stosb" : "+D"(dst), "+c"(cnt) : "a"(0x5A) : "memory");
	check_eq("string-rep-stosb", run_n(op_target, 4), 0x5A5A5B5A);
	/* STOSD, then a backward REP MOVSB restoring the original MOV. */
	static const u8 orig[6] = { 0xB8, 0x33, 0x33, 0x33, 0x33, 0xC3 };
	dst = (u8 *)op_target + 1;
	__asm__ volatile("cld; stosl" : "+D"(dst) : "a"(0x01020304) : "memory");
	check_eq("string-stosd", run_n(op_target, 4), 0x01020404);
	src = orig + 5;
	dst = (u8 *)op_target + 5;
	cnt = 6;
	__asm__ volatile("std; rep movsb; cld" : "+S"(src), "+D"(dst), "+c"(cnt) :: "memory");
	check_eq("string-rep-movsb-backward", run_n(op_target, 4), 0x33333333);
	/* REP STOSB over the instruction after it (same block). */
	int ok = 1;
	for (u32 i = 0; i < 24 && ok; i++) {
		u32 b = 0x30 + i;
		u32 r = str_self(b);
		if (r != b * 0x01010101) {
			fail("string-same-block", "call %u returned %x, expected %x", i, r, b * 0x01010101);
			ok = 0;
		}
	}
	if (ok)
		pass("string-same-block");
}

/* fw_cfg DMA (see fwcfg.c). */
struct __attribute__((packed)) dma_access {
	u32 control, length, address_hi, address_lo;
};
static volatile struct dma_access desc __attribute__((aligned(16)));
static inline u32 be32(u32 v) { return __builtin_bswap32(v); }
#define DMA_READ 2
#define DMA_SKIP 4
#define DMA_SELECT 8
#define QEMU_SIG 0x554D4551 /* "QEMU" read as a little-endian dword */

static void dma_prepare(u32 control, void *addr, u32 len)
{
	desc.control = be32(control);
	desc.length = be32(len);
	desc.address_hi = 0;
	desc.address_lo = be32((u32)addr);
	__asm__ volatile("" ::: "memory");
}

static int dma_done(void)
{
	for (u32 spin = 0; spin < 100000; spin++)
		if (!(be32(desc.control) & ~1u))
			return be32(desc.control) == 0;
	return 0;
}

static void dma_writes(void)
{
	/* Key 0 (the signature) selected and read into the target's immediate. */
	set_imm(op_target_imm, 0x33333333);
	check_eq("dma-warm", run_n(op_target, WARM), 0x33333333);
	dma_prepare(DMA_SELECT | DMA_READ, op_target_imm, 4);
	outl(0x514, 0);
	outl(0x518, be32((u32)&desc));
	if (check("dma-transfer-done", dma_done()))
		check_eq("dma-other-page", run_n(op_target, 4), QEMU_SIG);
	/* The instruction after the OUT: warm with SKIP (no write), then READ. */
	int ok = 1;
	for (u32 i = 0; i < WARM && ok; i++) {
		set_imm(dma_self_imm, 0x11111111);
		dma_prepare(DMA_SELECT | DMA_SKIP, 0, 4);
		outl(0x514, 0);
		u32 r = dma_self(be32((u32)&desc));
		if (r != 0x11111111) {
			fail("dma-same-block-warm", "run %u: %x", i, r);
			ok = 0;
		}
	}
	if (ok)
		pass("dma-same-block-warm");
	dma_prepare(DMA_SELECT | DMA_READ, dma_self_imm, 4);
	outl(0x514, 0);
	check_eq("dma-same-block", dma_self(be32((u32)&desc)), QEMU_SIG);
	check_eq("dma-same-block-again", dma_self(be32((u32)&desc)), QEMU_SIG);
}

/* Paging for the alias tests: the first 8 MiB identity-mapped, and three
 * more linear pages. */
#define P 1
#define W 2
static u32 pd[1024] __attribute__((aligned(4096)));
static u32 pt_low[2][1024] __attribute__((aligned(4096)));
static u32 pt_alias[1024] __attribute__((aligned(4096)));
static void invlpg(u32 va) { __asm__ volatile("invlpg (%0)" :: "r"(va) : "memory"); }

static void aliases(void)
{
	for (u32 i = 0; i < 2048; i++)
		pt_low[i / 1024][i % 1024] = i * 4096 | P | W;
	pd[0] = (u32)pt_low[0] | P | W;
	pd[1] = (u32)pt_low[1] | P | W;
	pd[ALIAS_X >> 22] = (u32)pt_alias | P | W;
	pt_alias[0] = (u32)alias_page | P;      /* ALIAS_X: read-only */
	pt_alias[1] = (u32)alias_page | P | W;  /* ALIAS_W */
	pt_alias[2] = (u32)alias_page | P;      /* ALIAS_R */
	write_cr3((u32)pd);
	write_cr0(read_cr0() | 0x80000000u);

	RP u32 (*fx)(void) = (RP u32 (*)(void))(ALIAS_X + AOFF(alias_fn));
	RP u32 (*fr)(void) = (RP u32 (*)(void))(ALIAS_R + AOFF(alias_fn));
	set_imm(alias_fn_imm, 0x55555555);
	check_eq("alias-warm", run_n(fx, WARM), 0x55555555);
	/* Written through ALIAS_W, run through ALIAS_X. */
	*(volatile u32 *)(ALIAS_W + AOFF(alias_fn_imm)) = 0x5555AAAA;
	check_eq("alias-write-other-run", run_n(fx, 4), 0x5555AAAA);
	/* Run through three addresses, written through the identity mapping. */
	u32 a = run_n(alias_fn, WARM), b = run_n(fr, WARM);
	if (a == 0x5555AAAA && b == a)
		pass("alias-identity-warm");
	else
		fail("alias-identity-warm", "identity %x, r %x", a, b);
	*(volatile u32 *)alias_fn_imm = 0x0BADC0DE;
	a = run_n(alias_fn, 4), b = run_n(fx, 4);
	u32 c = run_n(fr, 4);
	if (a == 0x0BADC0DE && b == a && c == a)
		pass("alias-write-identity-run-all");
	else
		fail("alias-write-identity-run-all", "identity %x, x %x, r %x", a, b, c);
	/* A hot loop at ALIAS_X patching its callee through ALIAS_W. */
	RP u32 (*loop)(u32, u32, u32) = (RP u32 (*)(u32, u32, u32))(ALIAS_X + AOFF(alias_loop));
	set_imm(alias_tgt_imm, 9);
	check_eq("alias-loop-warm", loop(100, 0, 0), 900);
	u32 old = 9;
	int ok = 1;
	for (u32 i = 0; i < 6 && ok; i++) {
		u32 v = 40 + i, at = 11 + i * 6;
		u32 r = loop(50, at, v), want = loop_sum(50, at, old, v);
		if (r != want) {
			fail("alias-loop-patch", "round %u: %x, expected %x", i, r, want);
			ok = 0;
		}
		old = v;
	}
	if (ok)
		pass("alias-loop-patch");
	/* The identity mapping sees what the alias wrote. */
	check_eq("alias-loop-identity-view", loop_sum(10, 0, old, 0), alias_loop(10, 0, 0));
	/* A page-table change under a hot linear address: ALIAS_R now maps
	 * alias_page2, whose first instruction returns another value. */
	check_eq("remap-warm", run_n(fr, WARM), 0x0BADC0DE);
	pt_alias[2] = (u32)alias_page2 | P;
	invlpg(ALIAS_R);
	check_eq("remap-runs-new-page", run_n(fr, 4), 0x66666666);
	pt_alias[2] = (u32)alias_page | P;
	invlpg(ALIAS_R);
	check_eq("remap-back", run_n(fr, 4), 0x0BADC0DE);

	write_cr0(read_cr0() & ~0x80000000u);
}

void test_main(void)
{
	same_block();
	same_and_other_page();
	string_writes();
	dma_writes();
	aliases();
}
