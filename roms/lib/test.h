/* morph86 test-kernel library: serial output, test reporting, descriptor
 * tables and exception recovery for Multiboot v1 system-architecture tests.
 *
 * Exit convention (QEMU isa-debug-exit at port 0xF4, status = (v << 1) | 1):
 * every test passed -> write 0x10 (status 33); any failure -> 0x11 (35). */
#ifndef TEST_H
#define TEST_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

/* GDT layout shared by every kernel. Entries 8.. are free for tests. */
#define KCODE 0x08
#define KDATA 0x10
#define UCODE 0x1B /* 0x18 | RPL 3 */
#define UDATA 0x23 /* 0x20 | RPL 3 */
#define TSS_SEL 0x28
#define KCODE16 0x30
#define KDATA16 0x38
#define GDT_FIRST_FREE 8
#define GDT_ENTRIES 64

/* Vector used by user-mode code to return to ring 0 (DPL-3 interrupt gate). */
#define USER_EXIT_VECTOR 0x81

#define EFLAGS_TF (1u << 8)
#define EFLAGS_IF (1u << 9)
#define EFLAGS_NT (1u << 14)
#define EFLAGS_RF (1u << 16)
#define EFLAGS_VM (1u << 17)
#define EFLAGS_VIF (1u << 19)
#define EFLAGS_VIP (1u << 20)
#define IOPL(n) ((u32)(n) << 12)

struct __attribute__((packed)) tss32 {
	u32 link, esp0, ss0, esp1, ss1, esp2, ss2, cr3, eip, eflags;
	u32 eax, ecx, edx, ebx, esp, ebp, esi, edi;
	u32 es, cs, ss, ds, fs, gs, ldt;
	u16 trap, iomap_base;
	u8 intredir[32];      /* V86 interrupt redirection bitmap (CR4.VME) */
	u8 iobitmap[8192];    /* I/O permission bitmap */
	u8 iobitmap_end;      /* must be 0xFF */
};
#define TSS_IOMAP_OFFSET 136 /* offsetof(struct tss32, iobitmap) */

/* Frame built by the exception stubs (lowest address first). */
struct frame {
	u32 gs, fs, es, ds;
	u32 edi, esi, ebp, esp_at_pusha, ebx, edx, ecx, eax;
	u32 vector, error;
	u32 eip, cs, eflags;
	u32 esp, ss;              /* only after a privilege change */
	u32 v86_es, v86_ds, v86_fs, v86_gs; /* only from virtual-8086 mode */
};

/* The last exception seen. */
struct exc_record {
	u32 count, vector, error, eip, cs, eflags, esp, ss;
};
extern volatile struct exc_record last_exc;

/* A hook returns 1 to resume through IRET (the frame may be edited), 0 to
 * let the default handling (recovery or a fatal report) go on. */
typedef int (*exc_hook)(struct frame *f);
extern exc_hook exc_hooks[256];

struct jmpbuf { u32 ebx, esi, edi, ebp, esp, eip; };
int tsetjmp(struct jmpbuf *jb) __attribute__((returns_twice));
void tlongjmp(struct jmpbuf *jb, int v) __attribute__((noreturn));
extern struct jmpbuf *volatile exc_recover;

/* Runs `body`; evaluates to -1 when it completes, or to the vector of the
 * exception that ended it (details in last_exc). Segment registers are
 * reloaded with the kernel's flat selectors after an exception. */
#define TRY(body) ({                                              \
	struct jmpbuf _jb; volatile int _r = -1;                       \
	last_exc.vector = 0xFFFFFFFF;                             \
	exc_recover = &_jb;                                       \
	if (tsetjmp(&_jb) == 0) { body; }                         \
	else _r = (int)last_exc.vector;                           \
	exc_recover = 0;                                          \
	_r; })

extern u64 gdt[GDT_ENTRIES];
extern u64 idt[256];
extern struct tss32 main_tss;
extern u32 isr_table[256];
extern u8 ring0_stack_top[];

/* Port I/O. */
static inline void outb(u16 p, u8 v) { __asm__ volatile("outb %0, %1" :: "a"(v), "Nd"(p)); }
static inline void outw(u16 p, u16 v) { __asm__ volatile("outw %0, %1" :: "a"(v), "Nd"(p)); }
static inline void outl(u16 p, u32 v) { __asm__ volatile("outl %0, %1" :: "a"(v), "Nd"(p)); }
static inline u8 inb(u16 p) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(p)); return v; }

static inline u32 read_cr0(void) { u32 v; __asm__ volatile("mov %%cr0, %0" : "=r"(v)); return v; }
static inline void write_cr0(u32 v) { __asm__ volatile("mov %0, %%cr0" :: "r"(v) : "memory"); }
static inline u32 read_cr2(void) { u32 v; __asm__ volatile("mov %%cr2, %0" : "=r"(v)); return v; }
static inline u32 read_cr3(void) { u32 v; __asm__ volatile("mov %%cr3, %0" : "=r"(v)); return v; }
static inline void write_cr3(u32 v) { __asm__ volatile("mov %0, %%cr3" :: "r"(v) : "memory"); }
static inline u32 read_cr4(void) { u32 v; __asm__ volatile("mov %%cr4, %0" : "=r"(v)); return v; }
static inline void write_cr4(u32 v) { __asm__ volatile("mov %0, %%cr4" :: "r"(v) : "memory"); }
static inline u32 read_eflags(void) { u32 v; __asm__ volatile("pushf; pop %0" : "=r"(v)); return v; }
static inline void write_eflags(u32 v) { __asm__ volatile("push %0; popf" :: "r"(v) : "memory", "cc"); }
static inline u64 rdmsr(u32 msr) { u32 lo, hi; __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr)); return ((u64)hi << 32) | lo; }
static inline void wrmsr(u32 msr, u64 v) { __asm__ volatile("wrmsr" :: "c"(msr), "a"((u32)v), "d"((u32)(v >> 32))); }

/* Output. */
void putc(char c);
void puts(const char *s);
void printf(const char *fmt, ...);

/* Reporting. */
void pass(const char *name);
void fail(const char *name, const char *fmt, ...);
/* Passes when cond holds. */
int check(const char *name, int cond);
/* Passes when got == want; else prints both. */
int check_eq(const char *name, u32 got, u32 want);
/* Passes when the TRY result r is exception `vec` with error code `err`
 * (err < 0: do not check the error code). */
int check_exc(const char *name, int r, int vec, int err);
void finish(void) __attribute__((noreturn));
extern int tests_passed, tests_failed;

/* Descriptors. access = P|DPL|S|type byte; flags = G|D/B nibble (bits 7..4). */
void gdt_set(int idx, u32 base, u32 limit, u8 access, u8 flags);
void gdt_set_gate(int idx, u16 sel, u32 off, u8 access, u8 params);
void idt_set(int vec, u16 sel, u32 off, u8 access);
void idt_set_default(int vec); /* back to the library stub, DPL 0 interrupt gate */
void reload_tr(u16 sel);       /* clears the busy bit and loads TR */
void memset(void *d, int c, u32 n);
void *memcpy(void *d, const void *s, u32 n);

/* Runs fn in ring 3 with EFLAGS = eflags (IF, IOPL...) on a user stack,
 * returning to ring 0 when fn returns (through INT USER_EXIT_VECTOR).
 * Wrap it in TRY to catch exceptions raised in ring 3. */
void run_user(void (*fn)(void), u32 eflags);

/* The Multiboot magic (EAX) and information structure address (EBX) the
 * kernel was entered with. */
extern u32 mb_magic, mb_info;

/* Sets COM1 to 115200 8N1 (lib_start does it for kernels using it). */
void serial_init(void);

/* The kernel image in memory (from the linker script). */
extern u8 __kernel_start[], __kernel_end[];

/* Provided by each kernel. */
extern const char test_name[];
void test_main(void);

#endif
