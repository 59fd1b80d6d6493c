/* The registers of a BIOS call, as the entry code hands them to C. */
#ifndef BREGS_H
#define BREGS_H
#ifndef __ASSEMBLER__
#include "types.h"

#define REG8(x) struct { u8 x##l, x##h; }
struct bregs {
	u16 ds, es;
	union { u32 edi; u16 di; };
	union { u32 esi; u16 si; };
	union { u32 ebp; u16 bp; };
	union { u32 ebx; u16 bx; REG8(b); };
	union { u32 edx; u16 dx; REG8(d); };
	union { u32 ecx; u16 cx; REG8(c); };
	union { u32 eax; u16 ax; REG8(a); };
	u16 ip, cs, flags;
} packed;
#endif

/* Offsets for the assembly helpers (checked in C with _Static_assert). */
#define BREGS_DS 0
#define BREGS_ES 2
#define BREGS_EDI 4
#define BREGS_ESI 8
#define BREGS_EBP 12
#define BREGS_EBX 16
#define BREGS_EDX 20
#define BREGS_ECX 24
#define BREGS_EAX 28
#define BREGS_IP 32
#define BREGS_CS 34
#define BREGS_FLAGS 36

#ifndef __ASSEMBLER__
static inline void set_cf(struct bregs *r) { r->flags |= F_CF; }
static inline void clear_cf(struct bregs *r) { r->flags &= ~F_CF; }
/* Success: CF clear, AH 0. */
static inline void ok(struct bregs *r)
{
	r->ah = 0;
	clear_cf(r);
}
/* Failure with status code in AH and CF set. */
static inline void fail(struct bregs *r, u8 code)
{
	r->ah = code;
	set_cf(r);
}

#endif /* __ASSEMBLER__ */

#endif
