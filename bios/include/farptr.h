/* Access to memory outside the current data segment: seg:off pairs.
 *
 * Scalar accesses go through GS, which gcc never uses itself; the string
 * copies save and restore ES, because gcc's own inline string
 * instructions assume ES = DS. */
#ifndef FARPTR_H
#define FARPTR_H
#include "types.h"

static inline void set_gs(u16 seg) { asm volatile("movw %w0, %%gs" : : "rm"(seg) : "memory"); }

static inline u8 rd8(u16 seg, u16 off)
{
	u8 v;
	set_gs(seg);
	asm volatile("movb %%gs:(%k1), %b0" : "=q"(v) : "r"((u32)off) : "memory");
	return v;
}
static inline u16 rd16(u16 seg, u16 off)
{
	u16 v;
	set_gs(seg);
	asm volatile("movw %%gs:(%k1), %w0" : "=r"(v) : "r"((u32)off) : "memory");
	return v;
}
static inline u32 rd32(u16 seg, u16 off)
{
	u32 v;
	set_gs(seg);
	asm volatile("movl %%gs:(%k1), %0" : "=r"(v) : "r"((u32)off) : "memory");
	return v;
}
static inline void wr8(u16 seg, u16 off, u8 v)
{
	set_gs(seg);
	asm volatile("movb %b0, %%gs:(%k1)" : : "q"(v), "r"((u32)off) : "memory");
}
static inline void wr16(u16 seg, u16 off, u16 v)
{
	set_gs(seg);
	asm volatile("movw %w0, %%gs:(%k1)" : : "r"(v), "r"((u32)off) : "memory");
}
static inline void wr32(u16 seg, u16 off, u32 v)
{
	set_gs(seg);
	asm volatile("movl %0, %%gs:(%k1)" : : "r"(v), "r"((u32)off) : "memory");
}

/* Copies n bytes between far buffers (each within its 64 KiB segment). */
static inline void far_memcpy(u16 dseg, u16 doff, u16 sseg, u16 soff, u16 n)
{
	u32 d = doff, s = soff, c = n;
	asm volatile("pushw %%es\n\t"
		     "pushw %%ds\n\t"
		     "movw %w3, %%es\n\t"
		     "movw %w4, %%ds\n\t"
		     "cld\n\t"
		     "addr32 rep movsb\n\t"
		     "popw %%ds\n\t"
		     "popw %%es"
		     : "+D"(d), "+S"(s), "+c"(c)
		     : "r"(dseg), "r"(sseg)
		     : "memory");
}
/* Fills n bytes at seg:off with v. */
static inline void far_memset(u16 seg, u16 off, u8 v, u16 n)
{
	u32 d = off, c = n;
	asm volatile("pushw %%es\n\t"
		     "movw %w2, %%es\n\t"
		     "cld\n\t"
		     "addr32 rep stosb\n\t"
		     "popw %%es"
		     : "+D"(d), "+c"(c)
		     : "r"(seg), "a"(v)
		     : "memory");
}
/* Fills n words at seg:off with v. */
static inline void far_memset16(u16 seg, u16 off, u16 v, u16 n)
{
	u32 d = off, c = n;
	asm volatile("pushw %%es\n\t"
		     "movw %w2, %%es\n\t"
		     "cld\n\t"
		     "addr32 rep stosw\n\t"
		     "popw %%es"
		     : "+D"(d), "+c"(c)
		     : "r"(seg), "a"(v)
		     : "memory");
}

static inline u16 get_ds(void)
{
	u16 v;
	asm("movw %%ds, %w0" : "=r"(v));
	return v;
}
static inline u16 get_cs(void)
{
	u16 v;
	asm("movw %%cs, %w0" : "=r"(v));
	return v;
}
/* Copies n bytes from seg:off into the data segment. */
#define far_to_near(dst, seg, off, n) far_memcpy(get_ds(), (u16)(u32)(dst), (seg), (off), (n))
/* Copies n bytes from the data segment to seg:off. */
#define near_to_far(seg, off, src, n) far_memcpy((seg), (off), get_ds(), (u16)(u32)(src), (n))

/* A real-mode far pointer as stored in memory: offset, then segment. */
#define FARPTR(seg, off) (((u32)(seg) << 16) | (u16)(off))
#define FP_SEG(fp) ((u16)((fp) >> 16))
#define FP_OFF(fp) ((u16)(fp))

/* The BIOS data area. */
#define BDA_SEG 0x40
#define bda_rd8(o) rd8(BDA_SEG, (o))
#define bda_rd16(o) rd16(BDA_SEG, (o))
#define bda_rd32(o) rd32(BDA_SEG, (o))
#define bda_wr8(o, v) wr8(BDA_SEG, (o), (v))
#define bda_wr16(o, v) wr16(BDA_SEG, (o), (v))
#define bda_wr32(o, v) wr32(BDA_SEG, (o), (v))

#endif
