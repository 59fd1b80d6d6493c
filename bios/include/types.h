/* Basic types and helpers shared by the system BIOS and the VGA BIOS.
 * Both are compiled with gcc -m16: 32-bit C that runs in real mode, where
 * every pointer is a 16-bit offset into DS (or SS, which is the same
 * segment wherever C runs). Other memory is reached through the far
 * accessors in farptr.h. */
#ifndef TYPES_H
#define TYPES_H

typedef unsigned char u8;
typedef signed char s8;
typedef unsigned short u16;
typedef signed short s16;
typedef unsigned int u32;
typedef signed int s32;
typedef unsigned long long u64;
typedef signed long long s64;
typedef u32 size_t;

#define NULL ((void *)0)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define noreturn __attribute__((noreturn))
#define packed __attribute__((packed))
#define unused __attribute__((unused))
#define barrier() asm volatile("" ::: "memory")

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define DIV_ROUND_UP(n, d) (((n) + (d) - 1) / (d))

/* Flags in the caller's FLAGS image. */
#define F_CF (1 << 0)
#define F_ZF (1 << 6)
#define F_IF (1 << 9)

#endif
