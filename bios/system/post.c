/* Power-on self test: the machine from reset to INT 19h. */
#include "bios.h"

u64 ram_size;
u32 ram_below_4g;

extern char entry_int08[], entry_int09[], entry_int0e[], entry_int10_none[], entry_int11[],
	entry_int12[], entry_int13[], entry_int14[], entry_int15[], entry_int16[], entry_int17[],
	entry_int18[], entry_int19[], entry_int1a[], entry_int40[], entry_int70[], entry_int71[],
	entry_int74[], entry_int75[], entry_int76[], entry_irq_master[], entry_irq_slave[],
	entry_int05[];

#define OFF(sym) ((u16)(u32)(sym))

void set_vector(u8 n, u16 seg, u16 off)
{
	wr16(0, n * 4, off);
	wr16(0, n * 4 + 2, seg);
}

u32 get_vector(u8 n) { return rd32(0, n * 4); }

/* The 8259 pair: vectors 08h and 70h, edge triggered; IRQ0, 1 and the
 * cascade unmasked, the rest as their handlers are installed. */
static void pic_setup(void)
{
	outb(0x11, 0x20);
	outb(0x11, 0xA0);
	outb(0x08, 0x21);
	outb(0x70, 0xA1);
	outb(0x04, 0x21);
	outb(0x02, 0xA1);
	outb(0x01, 0x21);
	outb(0x01, 0xA1);
	outb(0xF8, 0x21);
	outb(0xFF, 0xA1);
}

/* PIT channel 0: 18.2 Hz square wave; the speaker gate off. */
static void pit_setup(void)
{
	outb(0x36, 0x43);
	outb(0x00, 0x40);
	outb(0x00, 0x40);
	outb(inb(0x61) & 0xFC, 0x61);
}

/* RTC: the 32.768 kHz divider with a 1024 Hz periodic rate, 24-hour BCD,
 * no interrupts; pending flags cleared. */
static void rtc_setup(void)
{
	cmos_write(0x0A, 0x26);
	cmos_write(0x0B, (cmos_read(0x0B) & 0x01) | 0x02);
	cmos_read(0x0C);
	cmos_read(0x0D);
}

static u8 bcd2bin(u8 v) { return (v >> 4) * 10 + (v & 0x0F); }

/* Timer ticks since midnight, from the RTC. */
static u32 rtc_ticks(void)
{
	u32 start = 0;
	while ((cmos_read(0x0A) & 0x80) && ++start < 100000)
		;
	u32 s = bcd2bin(cmos_read(0x00)) + 60 * bcd2bin(cmos_read(0x02)) +
		3600 * bcd2bin(cmos_read(0x04));
	/* 1193180 / 65536 ticks a second. */
	return (u32)(((u64)s * 1193180) >> 16);
}

static void ivt_setup(void)
{
	for (int n = 0; n < 256; n++)
		set_vector(n, BIOS_SEG, OFF(dummy_iret));
	for (int n = 0x08; n < 0x10; n++)
		set_vector(n, BIOS_SEG, OFF(entry_irq_master));
	for (int n = 0x70; n < 0x78; n++)
		set_vector(n, BIOS_SEG, OFF(entry_irq_slave));
	for (int n = 0x60; n < 0x68; n++)
		set_vector(n, 0, 0);
	set_vector(0x02, BIOS_SEG, 0xE2C3);
	set_vector(0x05, BIOS_SEG, OFF(entry_int05));
	set_vector(0x08, BIOS_SEG, OFF(entry_int08));
	set_vector(0x09, BIOS_SEG, OFF(entry_int09));
	set_vector(0x0E, BIOS_SEG, OFF(entry_int0e));
	set_vector(0x10, BIOS_SEG, OFF(entry_int10_none));
	set_vector(0x11, BIOS_SEG, OFF(entry_int11));
	set_vector(0x12, BIOS_SEG, OFF(entry_int12));
	set_vector(0x13, BIOS_SEG, OFF(entry_int13));
	set_vector(0x14, BIOS_SEG, OFF(entry_int14));
	set_vector(0x15, BIOS_SEG, OFF(entry_int15));
	set_vector(0x16, BIOS_SEG, OFF(entry_int16));
	set_vector(0x17, BIOS_SEG, OFF(entry_int17));
	set_vector(0x18, BIOS_SEG, OFF(entry_int18));
	set_vector(0x19, BIOS_SEG, OFF(entry_int19));
	set_vector(0x1A, BIOS_SEG, OFF(entry_int1a));
	set_vector(0x1D, BIOS_SEG, 0xF0A4);
	set_vector(0x1E, BIOS_SEG, OFF(diskette_param_table));
	set_vector(0x1F, 0, 0);
	set_vector(0x40, BIOS_SEG, OFF(entry_int40));
	set_vector(0x41, 0, 0);
	set_vector(0x46, 0, 0);
	set_vector(0x70, BIOS_SEG, OFF(entry_int70));
	set_vector(0x71, BIOS_SEG, OFF(entry_int71));
	set_vector(0x74, BIOS_SEG, OFF(entry_int74));
	set_vector(0x75, BIOS_SEG, OFF(entry_int75));
	set_vector(0x76, BIOS_SEG, OFF(entry_int76));
	set_vector(0x77, BIOS_SEG, OFF(entry_int76));
}

static void bda_setup(void)
{
	far_memset(BDA_SEG, 0, 0, 0x100);
	bda_wr16(BDA_EBDA_SEG, EBDA_SEG);
	bda_wr16(BDA_MEM_KB, BASE_MEM_KB);
	bda_wr16(BDA_KBD_START, BDA_KBD_BUF);
	bda_wr16(BDA_KBD_END, BDA_KBD_BUF + 32);
	bda_wr16(BDA_KBD_HEAD, BDA_KBD_BUF);
	bda_wr16(BDA_KBD_TAIL, BDA_KBD_BUF);
	bda_wr8(BDA_KBD_FLAG2, 0x10); /* a 101/102-key keyboard */
	bda_wr32(BDA_TICKS, rtc_ticks());
	/* The EBDA: its size in KiB in its first word. */
	far_memset(EBDA_SEG, 0, 0, EBDA_KB * 1024);
	wr16(EBDA_SEG, 0, EBDA_KB);
}

/* The memory size, from fw_cfg or else from CMOS as the machine set it,
 * written back into CMOS as SeaBIOS leaves it. */
static void memory_setup(void)
{
	ram_size = fwcfg_ram_size();
	if (!ram_size) {
		u32 above16 = cmos_read(0x34) | (u32)cmos_read(0x35) << 8;
		u32 ext = cmos_read(0x30) | (u32)cmos_read(0x31) << 8;
		ram_size = above16 ? ((u64)above16 << 16) + (16 << 20) : ((u64)ext << 10) + (1 << 20);
	}
	ram_below_4g = ram_size > 0xFEC00000ULL ? 0xFEC00000 : (u32)ram_size;
	u32 ext_kb = (ram_below_4g - 0x100000) >> 10;
	u32 above16 = ram_below_4g > 0x1000000 ? (ram_below_4g - 0x1000000) >> 16 : 0;
	if (ext_kb > 0xFFFF)
		ext_kb = 0xFFFF;
	if (above16 > 0xFFFF)
		above16 = 0xFFFF;
	u64 high = ram_size > ram_below_4g ? (ram_size - ram_below_4g) >> 16 : 0;
	cmos_write(0x15, 640 & 0xFF);
	cmos_write(0x16, 640 >> 8);
	cmos_write(0x17, ext_kb);
	cmos_write(0x18, ext_kb >> 8);
	cmos_write(0x30, ext_kb);
	cmos_write(0x31, ext_kb >> 8);
	cmos_write(0x34, above16);
	cmos_write(0x35, above16 >> 8);
	cmos_write(0x5B, high);
	cmos_write(0x5C, high >> 8);
	cmos_write(0x5D, high >> 16);
	u16 sum = 0;
	for (u8 i = 0x10; i <= 0x2D; i++)
		sum += cmos_read(i);
	cmos_write(0x2E, sum >> 8);
	cmos_write(0x2F, sum);
}

static void cpuid(u32 leaf, u32 *a, u32 *b, u32 *c, u32 *d)
{
	asm volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf));
}

/* The local APIC in virtual-wire mode: LINT0 ExtINT (the 8259's INTR),
 * LINT1 NMI, software-enabled with spurious vector 0xFF. */
static void lapic_setup(void)
{
	u32 a, b, c, d;
	cpuid(1, &a, &b, &c, &d);
	if (!(d & (1 << 9)))
		return;
	flat_write32(0xFEE000F0, 0x1FF);
	flat_write32(0xFEE00350, 0x700);
	flat_write32(0xFEE00360, 0x400);
}

static int fpu_present(void)
{
	u16 sw = 0xFFFF;
	asm volatile("fninit\n\tfnstsw %0" : "+m"(sw));
	return (sw & 0xFF) == 0;
}

/* PAM register and nibble for a 16 KiB segment at addr (0xC0000-0xEFFFF). */
static void pam_set(u32 addr, u8 bits)
{
	u32 i = (addr - 0xC0000) >> 14;
	u8 reg = 0x5A + (i >> 1);
	u8 v = pci_cfg_read(0, reg, 1);
	v = (i & 1) ? (v & 0x0F) | (bits << 4) : (v & 0xF0) | bits;
	pci_cfg_write(0, reg, 1, v);
}

/* Option ROM areas in use, by 16 KiB segment of 0xC0000-0xDFFFF. */
static u8 rom_segments;

/* Copies the ROM at addr (len bytes) into shadow RAM that stays writable
 * until shadow_lock(). */
void shadow_rom(u32 addr, u32 len)
{
	for (u32 a = addr & ~0x3FFF; a < addr + len && a < 0xE0000; a += 0x4000) {
		u32 i = (a - 0xC0000) >> 14;
		if (rom_segments & (1 << i))
			continue;
		rom_segments |= 1 << i;
		pam_set(a, 2); /* read ROM, write RAM */
		far_memcpy(a >> 4, 0, a >> 4, 0, 0x4000);
		pam_set(a, 3);
	}
}

/* Before booting: the BIOS and option ROMs read-only; the E segment stays
 * writable RAM (the BIOS's data and stack). */
void shadow_lock(void)
{
	for (int i = 0; i < 8; i++)
		if (rom_segments & (1 << i))
			pam_set(0xC0000 + i * 0x4000, 1);
	pci_cfg_write(0, 0x59, 1, 0x10);
}

extern int screen_ready;

void post_main(void)
{
	int warm = bda_rd16(BDA_RESET_FLAG) == 0x1234;
	dprintf("morph86 BIOS: POST%s\n", warm ? " (warm boot)" : "");
	pic_setup();
	pit_setup();
	rtc_setup();
	ivt_setup();
	bda_setup();
	memory_setup();
	e820_default();
	fwcfg_load_tables();
	dprintf("RAM: %u MiB; e820: %d entries\n", (u32)(ram_size >> 20), e820_count);
	lapic_setup();
	pci_setup();
	u16 equipment = EQ_VIDEO_80COL;
	if (fpu_present())
		equipment |= EQ_FPU;
	bda_wr16(BDA_EQUIPMENT, equipment);
	kbd_init();
	serial_lpt_setup();
	pic_unmask(8);
	pic_unmask(14);
	pic_unmask(15);
	option_roms();
	printf("morph86 BIOS\n%u MiB RAM\n\n", (u32)(ram_size >> 20));
	disk_setup();
	other_option_roms();
	boot_order_setup();
	shadow_lock();
	restart_boot();
}
