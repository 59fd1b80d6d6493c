/* morph86 test-kernel library (see test.h). */
#include "test.h"

#define COM1 0x3F8

volatile struct exc_record last_exc;
exc_hook exc_hooks[256];
struct jmpbuf *volatile exc_recover;
static struct jmpbuf *volatile user_return;
int tests_passed, tests_failed;
u32 mb_magic, mb_info;

u64 gdt[GDT_ENTRIES] __attribute__((aligned(8)));
u64 idt[256] __attribute__((aligned(8)));
struct tss32 main_tss __attribute__((aligned(128)));

void enter_user(void (*fn)(void), u32 eflags);

void memset(void *d, int c, u32 n)
{
	u8 *p = d;
	while (n--)
		*p++ = (u8)c;
}

void *memcpy(void *d, const void *s, u32 n)
{
	u8 *p = d;
	const u8 *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

void serial_init(void)
{
	outb(COM1 + 1, 0x00); /* no interrupts */
	outb(COM1 + 3, 0x80); /* DLAB */
	outb(COM1 + 0, 0x01); /* 115200 baud */
	outb(COM1 + 1, 0x00);
	outb(COM1 + 3, 0x03); /* 8N1 */
	outb(COM1 + 2, 0x07); /* FIFOs on and cleared */
	outb(COM1 + 4, 0x03); /* DTR, RTS */
}

void putc(char c)
{
	int spin = 100000;
	if (c == '\n')
		putc('\r');
	while (!(inb(COM1 + 5) & 0x20) && --spin)
		;
	outb(COM1, (u8)c);
}

void puts(const char *s)
{
	while (*s)
		putc(*s++);
}

static void put_num(u32 v, int base, int width, char pad)
{
	char buf[12];
	int n = 0;
	do {
		u32 d = base == 16 ? (v & 15) : (v % 10);
		buf[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
		v = base == 16 ? v >> 4 : v / 10;
	} while (v);
	while (n < width--)
		putc(pad);
	while (n)
		putc(buf[--n]);
}

static void vprintf(const char *fmt, __builtin_va_list ap)
{
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			putc(*fmt);
			continue;
		}
		char pad = ' ';
		int width = 0;
		fmt++;
		if (*fmt == '0')
			pad = '0';
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		switch (*fmt) {
		case 'x': put_num(__builtin_va_arg(ap, u32), 16, width, pad); break;
		case 'u': put_num(__builtin_va_arg(ap, u32), 10, width, pad); break;
		case 'd': {
			int v = __builtin_va_arg(ap, int);
			if (v < 0) { putc('-'); v = -v; }
			put_num((u32)v, 10, width, pad);
			break;
		}
		case 's': puts(__builtin_va_arg(ap, const char *)); break;
		case 'c': putc((char)__builtin_va_arg(ap, int)); break;
		case '%': putc('%'); break;
		default: putc('?'); break;
		}
	}
}

void printf(const char *fmt, ...)
{
	__builtin_va_list ap;
	__builtin_va_start(ap, fmt);
	vprintf(fmt, ap);
	__builtin_va_end(ap);
}

void pass(const char *name)
{
	tests_passed++;
	printf("PASS %s\n", name);
}

void fail(const char *name, const char *fmt, ...)
{
	__builtin_va_list ap;
	tests_failed++;
	printf("FAIL %s: ", name);
	__builtin_va_start(ap, fmt);
	vprintf(fmt, ap);
	__builtin_va_end(ap);
	putc('\n');
}

int check(const char *name, int cond)
{
	if (cond)
		pass(name);
	else
		fail(name, "condition false");
	return cond;
}

int check_eq(const char *name, u32 got, u32 want)
{
	if (got == want) {
		pass(name);
		return 1;
	}
	fail(name, "got %x, expected %x", got, want);
	return 0;
}

int check_exc(const char *name, int r, int vec, int err)
{
	if (r == vec && (err < 0 || last_exc.error == (u32)err)) {
		pass(name);
		return 1;
	}
	if (r < 0)
		fail(name, "no exception, expected vector %d error %x", vec, (u32)err);
	else
		fail(name, "vector %d error %x at %x:%x, expected vector %d error %x",
		     r, last_exc.error, last_exc.cs, last_exc.eip, vec, (u32)err);
	return 0;
}

void finish(void)
{
	printf("SUMMARY: %d passed, %d failed\n", tests_passed, tests_failed);
	outb(0xF4, tests_failed ? 0x11 : 0x10);
	for (;;)
		__asm__ volatile("cli; hlt");
}

void gdt_set(int idx, u32 base, u32 limit, u8 access, u8 flags)
{
	u32 lo = (limit & 0xFFFF) | (base << 16);
	u32 hi = ((base >> 16) & 0xFF) | ((u32)access << 8) | (limit & 0xF0000) |
		 ((u32)(flags & 0xF0) << 16) | (base & 0xFF000000);
	gdt[idx] = ((u64)hi << 32) | lo;
}

void gdt_set_gate(int idx, u16 sel, u32 off, u8 access, u8 params)
{
	u32 lo = (off & 0xFFFF) | ((u32)sel << 16);
	u32 hi = (off & 0xFFFF0000) | ((u32)access << 8) | (params & 0x1F);
	gdt[idx] = ((u64)hi << 32) | lo;
}

void idt_set(int vec, u16 sel, u32 off, u8 access)
{
	u32 lo = (off & 0xFFFF) | ((u32)sel << 16);
	u32 hi = (off & 0xFFFF0000) | ((u32)access << 8);
	idt[vec] = ((u64)hi << 32) | lo;
}

void idt_set_default(int vec)
{
	idt_set(vec, KCODE, isr_table[vec], 0x8E);
}

void reload_tr(u16 sel)
{
	gdt[sel >> 3] &= ~(1ull << 41); /* busy -> available */
	__asm__ volatile("ltr %0" :: "r"(sel));
}

static void tables_init(void)
{
	struct { u16 limit; u32 base; } __attribute__((packed)) gdtr, idtr;
	memset(gdt, 0, sizeof gdt);
	gdt_set(1, 0, 0xFFFFF, 0x9A, 0xC0); /* ring 0 code */
	gdt_set(2, 0, 0xFFFFF, 0x92, 0xC0); /* ring 0 data */
	gdt_set(3, 0, 0xFFFFF, 0xFA, 0xC0); /* ring 3 code */
	gdt_set(4, 0, 0xFFFFF, 0xF2, 0xC0); /* ring 3 data */
	gdt_set(5, (u32)&main_tss, sizeof main_tss - 1, 0x89, 0x00);
	gdt_set(6, 0, 0xFFFF, 0x9A, 0x00);  /* 16-bit ring 0 code */
	gdt_set(7, 0, 0xFFFF, 0x92, 0x00);  /* 16-bit ring 0 data */
	gdtr.limit = sizeof gdt - 1;
	gdtr.base = (u32)gdt;
	__asm__ volatile("lgdt %0\n\t"
			 "ljmp $0x08, $1f\n1:\n\t"
			 "mov $0x10, %%ax\n\t"
			 "mov %%ax, %%ds\n\tmov %%ax, %%es\n\tmov %%ax, %%fs\n\t"
			 "mov %%ax, %%gs\n\tmov %%ax, %%ss"
			 :: "m"(gdtr) : "eax", "memory");
	for (int v = 0; v < 256; v++)
		idt_set_default(v);
	idt_set(USER_EXIT_VECTOR, KCODE, isr_table[USER_EXIT_VECTOR], 0xEE);
	idtr.limit = sizeof idt - 1;
	idtr.base = (u32)idt;
	__asm__ volatile("lidt %0" :: "m"(idtr));
	memset(&main_tss, 0, sizeof main_tss);
	main_tss.ss0 = KDATA;
	main_tss.esp0 = (u32)ring0_stack_top;
	main_tss.iomap_base = TSS_IOMAP_OFFSET;
	memset(main_tss.intredir, 0xFF, sizeof main_tss.intredir);
	memset(main_tss.iobitmap, 0xFF, sizeof main_tss.iobitmap);
	main_tss.iobitmap_end = 0xFF;
	__asm__ volatile("ltr %w0" :: "r"(TSS_SEL));
}

void exc_dispatch(struct frame *f)
{
	u32 v = f->vector;
	last_exc.count++;
	last_exc.vector = v;
	last_exc.error = f->error;
	last_exc.eip = f->eip;
	last_exc.cs = f->cs & 0xFFFF;
	last_exc.eflags = f->eflags;
	last_exc.esp = f->esp;
	last_exc.ss = f->ss & 0xFFFF;
	if (exc_hooks[v] && exc_hooks[v](f))
		return;
	if (v == USER_EXIT_VECTOR && user_return) {
		struct jmpbuf *j = user_return;
		user_return = 0;
		tlongjmp(j, 1);
	}
	if (exc_recover) {
		struct jmpbuf *j = exc_recover;
		exc_recover = 0;
		user_return = 0;
		tlongjmp(j, 1);
	}
	fail("unexpected-exception", "vector %u error %x at %x:%x eflags %x",
	     v, f->error, f->cs & 0xFFFF, f->eip, f->eflags);
	finish();
}

void run_user(void (*fn)(void), u32 eflags)
{
	struct jmpbuf jb;
	if (tsetjmp(&jb) == 0) {
		user_return = &jb;
		enter_user(fn, eflags | 2);
	}
	user_return = 0;
}

void lib_start(u32 magic, u32 info)
{
	mb_magic = magic;
	mb_info = info;
	serial_init();
	outb(0x21, 0xFF); /* mask both PICs: no stray IRQs on any vector */
	outb(0xA1, 0xFF);
	printf("morph86 test kernel: %s\n", test_name);
	if (magic != 0x2BADB002)
		fail("multiboot-magic", "EAX %x", magic);
	tables_init();
	test_main();
	finish();
}
