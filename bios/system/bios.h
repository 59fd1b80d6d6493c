/* Declarations shared by the system BIOS's C files. */
#ifndef BIOS_H
#define BIOS_H
#include "types.h"
#include "io.h"
#include "farptr.h"
#include "bregs.h"
#include "bda.h"
#include "config.h"

/* util.c */
void *memcpy(void *d, const void *s, size_t n);
void *memset(void *d, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
void dprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void screen_putc(char c);
void call_int(u8 vector, struct bregs *r);
void farcall(u32 segoff, struct bregs *r);
void wait_irq(void);
u32 ticks(void);
int ticks_passed(u32 start, u32 n);
void udelay_busy(u32 us);
void msleep(u32 ms);
u8 cmos_read(u8 index);
void cmos_write(u8 index, u8 v);
void pic_unmask(u8 irq);

/* entry.S */
void __call_int(u32 vector, struct bregs *r);
void __farcall(u32 segoff, struct bregs *r);
void boot_jump(u32 segoff, u32 drive) noreturn;
void restart_boot(void) noreturn;
u32 flat_read32(u32 addr);
void flat_write32(u32 addr, u32 value);
void flat_memcpy(u32 dst, u32 src, u32 len);
extern u8 font8x8[];
extern u8 config_table[];
extern u8 diskette_param_table[];
extern u8 dummy_iret[];
extern u32 stack_top;

/* The linear address of something in the data segment. */
#define DATA_LIN(p) ((u32)DATA_SEG * 16 + (u32)(p))

/* post.c */
extern u64 ram_size;      /* RAM in bytes */
extern u32 ram_below_4g;  /* end of RAM below 4 GiB */
void set_vector(u8 n, u16 seg, u16 off);
u32 get_vector(u8 n);
void shadow_lock(void);

/* memmap.c */
struct e820_entry {
	u64 addr;
	u64 size;
	u32 type;
} packed;
#define E820_MAX 32
extern struct e820_entry e820_map[E820_MAX];
extern int e820_count;
void e820_default(void);
void handle_15_e820(struct bregs *r);

/* fwcfg.c */
int fwcfg_present(void);
int fwcfg_find(const char *name, u16 *select, u32 *size);
void fwcfg_read(u16 select, void *buf, u32 len);
void fwcfg_select(u16 select);
void fwcfg_read_more(void *buf, u32 len);
void fwcfg_dma_read(u32 phys, u32 len);
u64 fwcfg_ram_size(void);
void fwcfg_load_tables(void);

/* pci.c */
u32 pci_cfg_read(u16 bdf, u8 reg, u8 size);
void pci_cfg_write(u16 bdf, u8 reg, u8 size, u32 v);
void pci_setup(void);
void pirq_table_setup(void);
void handle_1a_pci(struct bregs *r);
int pci_find_device(u16 vendor, u16 device, u16 index);
int pci_find_class(u32 class, u16 index);
extern u8 pci_last_bus;

/* kbd.c */
void kbd_init(void);
void handle_09(struct bregs *r);
void handle_16(struct bregs *r);
int kbd_wait_key(u32 timeout_ticks);

/* misc.c */
void handle_11(struct bregs *r);
void handle_12(struct bregs *r);
void handle_14(struct bregs *r);
void handle_15(struct bregs *r);
void handle_17(struct bregs *r);
void handle_1a(struct bregs *r);
void handle_70(struct bregs *r);
void handle_74(struct bregs *r);
void handle_05(struct bregs *r);
void handle_10_none(struct bregs *r);
void serial_lpt_setup(void);

/* disk.c */
void disk_setup(void);
void handle_13(struct bregs *r);
void handle_40(struct bregs *r);

/* boot.c */
void option_roms(void);
void other_option_roms(void);
void handle_18(struct bregs *r);
void handle_19(struct bregs *r);
void boot_order_setup(void);

#endif
