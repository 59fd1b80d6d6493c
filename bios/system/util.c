/* Small library: memory and string helpers, formatted output to the
 * screen (through INT 10h) and the debug port, software interrupts from C,
 * waiting with interrupts enabled, CMOS access. */
#include "bios.h"
#include <stdarg.h>

_Static_assert(sizeof(struct bregs) == 38, "struct bregs layout");
_Static_assert(__builtin_offsetof(struct bregs, eax) == BREGS_EAX, "eax");
_Static_assert(__builtin_offsetof(struct bregs, flags) == BREGS_FLAGS, "flags");

void *memcpy(void *d, const void *s, size_t n)
{
	u8 *dd = d;
	const u8 *ss = s;
	while (n--)
		*dd++ = *ss++;
	return d;
}

void *memset(void *d, int c, size_t n)
{
	u8 *dd = d;
	while (n--)
		*dd++ = c;
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const u8 *x = a, *y = b;
	for (; n; n--, x++, y++)
		if (*x != *y)
			return *x - *y;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

/* Set once INT 10h belongs to a video BIOS. */
int screen_ready;

void screen_putc(char c)
{
	if (!screen_ready)
		return;
	struct bregs r;
	memset(&r, 0, sizeof(r));
	if (c == '\n') {
		r.ah = 0x0E;
		r.al = '\r';
		r.bx = 0x0007;
		call_int(0x10, &r);
	}
	memset(&r, 0, sizeof(r));
	r.ah = 0x0E;
	r.al = c;
	r.bx = 0x0007;
	call_int(0x10, &r);
}

static void debug_putc(char c) { outb(c, DEBUG_PORT); }

static void put_num(void (*put)(char), u32 v, int base, int width, char pad, int neg, int upper)
{
	char buf[12];
	int n = 0;
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	do {
		buf[n++] = digits[v % base];
		v /= base;
	} while (v);
	if (neg)
		buf[n++] = '-';
	while (n < width--)
		put(pad);
	while (n)
		put(buf[--n]);
}

static void vformat(void (*put)(char), const char *fmt, va_list ap)
{
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			put(*fmt);
			continue;
		}
		fmt++;
		char pad = ' ';
		int width = 0;
		if (*fmt == '0') {
			pad = '0';
			fmt++;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l')
			fmt++;
		switch (*fmt) {
		case 'd': {
			s32 v = va_arg(ap, s32);
			put_num(put, v < 0 ? -v : v, 10, width, pad, v < 0, 0);
			break;
		}
		case 'u':
			put_num(put, va_arg(ap, u32), 10, width, pad, 0, 0);
			break;
		case 'x':
		case 'X':
			put_num(put, va_arg(ap, u32), 16, width, pad, 0, *fmt == 'X');
			break;
		case 'c':
			put(va_arg(ap, int));
			break;
		case 's': {
			const char *s = va_arg(ap, const char *);
			int len = strlen(s);
			while (len < width--)
				put(' ');
			while (*s)
				put(*s++);
			break;
		}
		case '%':
			put('%');
			break;
		default:
			put('%');
			put(*fmt);
			break;
		}
	}
}

/* To the debug port only. */
void dprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vformat(debug_putc, fmt, ap);
	va_end(ap);
}

static void both_putc(char c)
{
	debug_putc(c);
	screen_putc(c);
}

/* To the screen and the debug port. */
void printf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vformat(both_putc, fmt, ap);
	va_end(ap);
}

/* The BIOS stack's free part starts below the current stack pointer
 * while C hands control to other code (an interrupt handler of someone
 * else's, which may call us back from its own stack). */
static inline u32 reserve_stack(void)
{
	u32 saved = stack_top, esp;
	asm volatile("movl %%esp, %0" : "=r"(esp));
	stack_top = (esp - 16) & ~3;
	return saved;
}

void call_int(u8 vector, struct bregs *r)
{
	u32 saved = reserve_stack();
	__call_int(vector, r);
	stack_top = saved;
}

void farcall(u32 segoff, struct bregs *r)
{
	u32 saved = reserve_stack();
	__farcall(segoff, r);
	stack_top = saved;
}

/* Waits for the next interrupt with interrupts enabled (STI; HLT), from
 * code that otherwise runs with them disabled. */
void wait_irq(void)
{
	u32 saved = reserve_stack();
	asm volatile("sti\n\thlt\n\tcli" ::: "memory");
	stack_top = saved;
}

u32 ticks(void) { return bda_rd32(BDA_TICKS); }

/* True once n timer ticks (of 18.2 per second) have passed since start. */
int ticks_passed(u32 start, u32 n)
{
	u32 now = ticks();
	u32 d = now >= start ? now - start : now + 0x1800B0 - start;
	return d >= n;
}

/* Sleeps at least ms milliseconds, halted between timer ticks. */
void msleep(u32 ms)
{
	u32 start = ticks(), n = DIV_ROUND_UP(ms, 55) + 1;
	while (!ticks_passed(start, n))
		wait_irq();
}

u8 cmos_read(u8 index)
{
	outb(index | 0x80, 0x70);
	return inb(0x71);
}

void cmos_write(u8 index, u8 v)
{
	outb(index | 0x80, 0x70);
	outb(v, 0x71);
}

void pic_unmask(u8 irq)
{
	if (irq < 8) {
		outb(inb(0x21) & ~(1 << irq), 0x21);
	} else {
		outb(inb(0xA1) & ~(1 << (irq - 8)), 0xA1);
		outb(inb(0x21) & ~(1 << 2), 0x21);
	}
}

/* C side of entry_common: the frame it built on the BIOS stack. */
struct entry_frame {
	u32 edi, esi, ebp, esp, ebx, edx, ecx, eax;
	u16 gs, fs, es;
	u32 caller_esp;
	u16 caller_ss;
} packed;

typedef void (*handler_t)(struct bregs *);

/* The caller's stack holds EAX (4), DS (2), the handler (4) and the
 * interrupt frame: IP, CS, FLAGS. */
void entry_dispatch(struct entry_frame *f)
{
	u16 ss = f->caller_ss, sp = f->caller_esp;
	struct bregs r;
	r.eax = rd32(ss, sp);
	r.ds = rd16(ss, sp + 4);
	handler_t h = (handler_t)rd32(ss, sp + 6);
	r.ip = rd16(ss, sp + 10);
	r.cs = rd16(ss, sp + 12);
	r.flags = rd16(ss, sp + 14);
	r.es = f->es;
	r.edi = f->edi;
	r.esi = f->esi;
	r.ebp = f->ebp;
	r.ebx = f->ebx;
	r.edx = f->edx;
	r.ecx = f->ecx;
	h(&r);
	f->es = r.es;
	f->edi = r.edi;
	f->esi = r.esi;
	f->ebp = r.ebp;
	f->ebx = r.ebx;
	f->edx = r.edx;
	f->ecx = r.ecx;
	wr32(ss, sp, r.eax);
	wr16(ss, sp + 4, r.ds);
	wr16(ss, sp + 10, r.ip);
	wr16(ss, sp + 12, r.cs);
	wr16(ss, sp + 14, r.flags);
}

/* Variables the assembly uses. */
u32 stack_top = STACK_TOP;
u16 tmp_ss;
u32 tmp_esp;
u8 saved_gdtr[6];
