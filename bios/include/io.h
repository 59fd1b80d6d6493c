/* Port I/O and a few privileged instructions. */
#ifndef IO_H
#define IO_H
#include "types.h"

static inline void outb(u8 v, u16 port) { asm volatile("outb %b0, %w1" : : "a"(v), "Nd"(port)); }
static inline void outw(u16 v, u16 port) { asm volatile("outw %w0, %w1" : : "a"(v), "Nd"(port)); }
static inline void outl(u32 v, u16 port) { asm volatile("outl %0, %w1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port)
{
	u8 v;
	asm volatile("inb %w1, %b0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline u16 inw(u16 port)
{
	u16 v;
	asm volatile("inw %w1, %w0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline u32 inl(u16 port)
{
	u32 v;
	asm volatile("inl %w1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline void cli(void) { asm volatile("cli" ::: "memory"); }
static inline void sti(void) { asm volatile("sti" ::: "memory"); }
static inline void hlt(void) { asm volatile("hlt" ::: "memory"); }
/* An I/O delay: a write to the POST port, as PC firmware does. */
static inline void io_delay(void) { outb(0, 0x80); }

static inline u32 bswap32(u32 v) { return __builtin_bswap32(v); }

/* Debug output on QEMU's debug console port (0xE9). */
#define DEBUG_PORT 0xE9

#endif
