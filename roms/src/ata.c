/* ata: the PIIX3 IDE controller with a hard disk on the primary master and
 * a CD on the secondary master, driven as a simple driver would (ATA/ATAPI-7,
 * the PIIX datasheet's bus-master registers).
 *
 * The images are made by the test (tests/roms.rs) and are expected to hold:
 *   disk: DISK_SECTORS sectors, byte i of sector s = disk_byte(s, i);
 *   CD:   CD_SECTORS 2048-byte sectors, byte i of sector s = cd_byte(s, i).
 * The kernel writes sectors 100-101 by PIO and 30-31 by DMA with
 * new_byte(s, i); the test checks the image file afterwards.
 *
 * Checked: the IDE function on PCI (8086:7010, BAR4 in I/O space),
 * IDENTIFY (capacity, LBA48 and DMA support), PIO reads (rep insw, one DRQ
 * block per sector), PIO writes and FLUSH CACHE with read-back, LBA48 READ
 * SECTORS EXT, bus-master DMA reads through a two-entry PRD table and DMA
 * writes (status: interrupt set, active and error clear), an out-of-range
 * read failing, IRQ 14 delivered through the 8259A pair, and ATAPI: the
 * signature after a soft reset, IDENTIFY PACKET DEVICE, READ CAPACITY and READ(10) by PIO.
 *
 * With "writer" on its command line the kernel instead writes every sector
 * of the disk once, in order, one WRITE SECTORS command each, with
 * writer_byte(s, i), and prints "W s" after the drive reported each write
 * complete; then "WRITER-DONE". crates/morph86/tests/durability.rs kills
 * morph86 in the middle of that and checks the image. */
#include "test.h"
#include "multiboot.h"

const char test_name[] = "ata";

#define PRI 0x1F0
#define PRI_CTL 0x3F6
#define SEC 0x170
#define SEC_CTL 0x376

#define DISK_SECTORS 128
#define CD_SECTORS 16

#define ST_BSY 0x80
#define ST_DRDY 0x40
#define ST_DRQ 0x08
#define ST_ERR 0x01

#define SPIN 1000000
#define VEC 0x20

static inline u16 inw(u16 p) { u16 v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(p)); return v; }
static inline u32 inl(u16 p) { u32 v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(p)); return v; }
static inline void insw(u16 p, void *buf, u32 n)
{
	__asm__ volatile("rep insw" : "+D"(buf), "+c"(n) : "d"(p) : "memory");
}
static inline void outsw(u16 p, const void *buf, u32 n)
{
	__asm__ volatile("rep outsw" : "+S"(buf), "+c"(n) : "d"(p) : "memory");
}

static u8 disk_byte(u32 s, u32 i) { return (u8)(s * 37 + i + (i >> 8) * 11); }
static u8 cd_byte(u32 s, u32 i) { return (u8)(s * 13 + i * 5 + (i >> 8)); }
static u8 new_byte(u32 s, u32 i) { return (u8)(s * 5 + i * 3 + 0x5A); }

static u32 pci_read(u8 dev, u8 fn, u8 reg)
{
	outl(0xCF8, 0x80000000u | (u32)dev << 11 | (u32)fn << 8 | (reg & 0xFC));
	return inl(0xCFC);
}

static void pci_write(u8 dev, u8 fn, u8 reg, u32 v)
{
	outl(0xCF8, 0x80000000u | (u32)dev << 11 | (u32)fn << 8 | (reg & 0xFC));
	outl(0xCFC, v);
}

/* Waits for BSY to clear; returns the alternate status (0xFF on timeout). */
static u8 wait_ready(u16 ctl)
{
	for (u32 i = 0; i < SPIN; i++) {
		u8 s = inb(ctl);
		if (!(s & ST_BSY))
			return s;
	}
	return 0xFF;
}

/* Waits for DRQ or ERR with BSY clear. */
static u8 wait_drq(u16 ctl)
{
	for (u32 i = 0; i < SPIN; i++) {
		u8 s = inb(ctl);
		if (!(s & ST_BSY) && (s & (ST_DRQ | ST_ERR)))
			return s;
	}
	return 0xFF;
}

static void lba28(u16 base, u32 lba, u8 count)
{
	outb(base + 6, 0xE0 | ((lba >> 24) & 0x0F));
	outb(base + 2, count);
	outb(base + 3, (u8)lba);
	outb(base + 4, (u8)(lba >> 8));
	outb(base + 5, (u8)(lba >> 16));
}

static u8 sector_buf[8 * 512] __attribute__((aligned(4096)));
static u8 dma_a[3 * 512] __attribute__((aligned(4096)));
static u8 dma_b[5 * 512] __attribute__((aligned(4096)));
static u32 prd[4] __attribute__((aligned(16)));
static u16 ident[256];
static u16 bm;

/* Sector s of the disk's initial contents compared with buf; returns the
 * first differing offset or -1. */
static int diff(const u8 *buf, u32 s, u8 (*f)(u32, u32), u32 ss)
{
	for (u32 i = 0; i < ss; i++)
		if (buf[i] != f(s, i))
			return (int)i;
	return -1;
}

static void test_pci(void)
{
	u32 id = pci_read(1, 1, 0);
	check_eq("IDE function is 8086:7010", id, 0x70108086);
	u32 bar4 = pci_read(1, 1, 0x20);
	check("BAR4 is an I/O BAR", (bar4 & 1) == 1 && (bar4 & 0xFFFC) != 0);
	bm = (u16)(bar4 & 0xFFFC);
	/* I/O decoding and bus mastering on. */
	u32 cmd = pci_read(1, 1, 0x04);
	pci_write(1, 1, 0x04, (cmd & 0xFFFF) | 0x05);
	check("IDETIM enables both channels",
	      (pci_read(1, 1, 0x40) & 0x80008000u) == 0x80008000u);
}

static void test_identify(void)
{
	outb(PRI_CTL, 0x02); /* nIEN: polled */
	outb(PRI + 6, 0xA0);
	u8 s = wait_ready(PRI_CTL);
	check("primary master ready", (s & (ST_DRDY | ST_BSY | ST_ERR)) == ST_DRDY);
	outb(PRI + 7, 0xEC);
	s = wait_drq(PRI_CTL);
	check_eq("IDENTIFY: DRQ", s & (ST_DRQ | ST_ERR), ST_DRQ);
	insw(PRI, ident, 256);
	check_eq("IDENTIFY: ATA device", ident[0] & 0x8000, 0);
	check_eq("IDENTIFY: LBA28 capacity", ident[60] | (u32)ident[61] << 16, DISK_SECTORS);
	check_eq("IDENTIFY: LBA48 capacity", ident[100] | (u32)ident[101] << 16, DISK_SECTORS);
	check("IDENTIFY: LBA48 supported", ident[83] & (1 << 10));
	check("IDENTIFY: LBA and DMA", (ident[49] & 0x300) == 0x300);
	check_eq("IDENTIFY: done", inb(PRI + 7) & (ST_DRQ | ST_ERR | ST_BSY), 0);
}

static void test_pio_read(void)
{
	lba28(PRI, 0, 4);
	outb(PRI + 7, 0x20);
	int bad = -1, blocks = 0;
	for (u32 s = 0; s < 4; s++) {
		if (wait_drq(PRI_CTL) & ST_ERR)
			break;
		(void)inb(PRI + 7);
		insw(PRI, sector_buf, 256);
		blocks++;
		if (bad < 0 && diff(sector_buf, s, disk_byte, 512) >= 0)
			bad = (int)s;
	}
	check_eq("PIO read: 4 DRQ blocks", blocks, 4);
	check_eq("PIO read: first bad sector (none)", (u32)bad, 0xFFFFFFFF);
	check_eq("PIO read: status after", wait_ready(PRI_CTL) & (ST_DRQ | ST_ERR | ST_DRDY), ST_DRDY);
}

static void read_back(u32 lba, u8 count, u8 *buf)
{
	lba28(PRI, lba, count);
	outb(PRI + 7, 0x20);
	for (u32 s = 0; s < count; s++) {
		if (wait_drq(PRI_CTL) & ST_ERR)
			return;
		insw(PRI, buf + 512 * s, 256);
	}
}

static void test_pio_write(void)
{
	lba28(PRI, 100, 2);
	outb(PRI + 7, 0x30);
	for (u32 s = 0; s < 2; s++) {
		for (u32 i = 0; i < 512; i++)
			sector_buf[i] = new_byte(100 + s, i);
		u8 st = wait_drq(PRI_CTL);
		if (st & ST_ERR) {
			fail("PIO write", "status %x", st);
			return;
		}
		outsw(PRI, sector_buf, 256);
	}
	u8 st = wait_ready(PRI_CTL);
	check_eq("PIO write: status after", st & (ST_DRQ | ST_ERR), 0);
	outb(PRI + 7, 0xE7); /* FLUSH CACHE */
	check_eq("FLUSH CACHE", wait_ready(PRI_CTL) & (ST_ERR | ST_DRDY), ST_DRDY);
	memset(sector_buf, 0, 1024);
	read_back(100, 2, sector_buf);
	check("PIO write: read back",
	      diff(sector_buf, 100, new_byte, 512) < 0 && diff(sector_buf + 512, 101, new_byte, 512) < 0);
}

static void test_lba48(void)
{
	outb(PRI + 6, 0x40);
	outb(PRI + 2, 0); outb(PRI + 3, 0); outb(PRI + 4, 0); outb(PRI + 5, 0);
	outb(PRI + 2, 2); outb(PRI + 3, 120); outb(PRI + 4, 0); outb(PRI + 5, 0);
	outb(PRI + 7, 0x24);
	int ok = 1;
	for (u32 s = 0; s < 2; s++) {
		if (wait_drq(PRI_CTL) & ST_ERR) {
			ok = 0;
			break;
		}
		insw(PRI, sector_buf, 256);
		ok &= diff(sector_buf, 120 + s, disk_byte, 512) < 0;
	}
	check("READ SECTORS EXT", ok);
}

/* Waits for the bus master's interrupt bit; returns the BM status. The
 * bit follows the drive's INTRQ, so DMA runs with nIEN clear (the CPU is
 * kept away by CLI and the masked PIC). */
static u8 bm_wait(void)
{
	for (u32 i = 0; i < SPIN; i++) {
		u8 s = inb(bm + 2);
		if (s & 0x04)
			return s;
	}
	return 0xFF;
}

static void test_dma_read(void)
{
	memset(dma_a, 0, sizeof dma_a);
	memset(dma_b, 0, sizeof dma_b);
	prd[0] = (u32)dma_a;
	prd[1] = sizeof dma_a;
	prd[2] = (u32)dma_b;
	prd[3] = sizeof dma_b | 0x80000000u;
	outb(bm, 0x00);
	outb(bm + 2, 0x06); /* clear interrupt and error */
	outl(bm + 4, (u32)prd);
	outb(bm, 0x08); /* device to memory */
	outb(PRI_CTL, 0x00);
	lba28(PRI, 10, 8);
	outb(PRI + 7, 0xC8);
	outb(bm, 0x09);
	u8 s = bm_wait();
	outb(bm, 0x00);
	check_eq("DMA read: BM status (int, not active, no error)", s & 0x07, 0x04);
	check_eq("DMA read: drive status", wait_ready(PRI_CTL) & (ST_DRQ | ST_ERR | ST_DRDY), ST_DRDY);
	int ok = 1;
	for (u32 k = 0; k < 3; k++)
		ok &= diff(dma_a + 512 * k, 10 + k, disk_byte, 512) < 0;
	for (u32 k = 0; k < 5; k++)
		ok &= diff(dma_b + 512 * k, 13 + k, disk_byte, 512) < 0;
	check("DMA read: data in both regions", ok);
	outb(bm + 2, 0x06);
	(void)inb(PRI + 7);
	outb(PRI_CTL, 0x02);
}

static void test_dma_write(void)
{
	for (u32 k = 0; k < 2; k++)
		for (u32 i = 0; i < 512; i++)
			dma_a[512 * k + i] = new_byte(30 + k, i);
	prd[0] = (u32)dma_a;
	prd[1] = 1024 | 0x80000000u;
	outb(bm, 0x00);
	outl(bm + 4, (u32)prd);
	outb(PRI_CTL, 0x00);
	lba28(PRI, 30, 2);
	outb(PRI + 7, 0xCA);
	outb(bm, 0x01); /* memory to device */
	u8 s = bm_wait();
	outb(bm, 0x00);
	check_eq("DMA write: BM status", s & 0x07, 0x04);
	check_eq("DMA write: drive status", wait_ready(PRI_CTL) & (ST_DRQ | ST_ERR), 0);
	outb(bm + 2, 0x06);
	(void)inb(PRI + 7);
	outb(PRI_CTL, 0x02);
	memset(sector_buf, 0, 1024);
	read_back(30, 2, sector_buf);
	check("DMA write: read back",
	      diff(sector_buf, 30, new_byte, 512) < 0 && diff(sector_buf + 512, 31, new_byte, 512) < 0);
}

static void test_out_of_range(void)
{
	lba28(PRI, DISK_SECTORS, 1);
	outb(PRI + 7, 0x20);
	u8 s = wait_drq(PRI_CTL);
	u8 e = inb(PRI + 1);
	check("read past the end: ERR", (s & ST_ERR) && !(s & ST_DRQ));
	check("read past the end: IDNF or ABRT", e & 0x14);
}

static volatile u32 irq14_count;
static volatile u8 irq14_status;

static int irq14_hook(struct frame *f)
{
	(void)f;
	irq14_count++;
	irq14_status = inb(PRI + 7); /* acknowledges INTRQ */
	outb(0xA0, 0x20);
	outb(0x20, 0x20);
	return 1;
}

static void test_interrupt(void)
{
	outb(0x20, 0x11); outb(0xA0, 0x11);
	outb(0x21, VEC); outb(0xA1, VEC + 8);
	outb(0x21, 0x04); outb(0xA1, 0x02);
	outb(0x21, 0x01); outb(0xA1, 0x01);
	outb(0x21, 0xFB); /* cascade only */
	outb(0xA1, 0xBF); /* IRQ 14 only */
	exc_hooks[VEC + 14] = irq14_hook;
	(void)inb(PRI + 7);
	outb(PRI_CTL, 0x00); /* interrupts on */
	__asm__ volatile("sti");
	lba28(PRI, 5, 1);
	outb(PRI + 7, 0x40); /* READ VERIFY SECTORS */
	for (u32 i = 0; i < SPIN && !irq14_count; i++)
		;
	__asm__ volatile("cli");
	check_eq("IRQ 14 taken once", irq14_count, 1);
	check_eq("IRQ 14: status read in the handler", irq14_status & (ST_BSY | ST_ERR | ST_DRDY), ST_DRDY);
	outb(PRI_CTL, 0x02);
	outb(0x21, 0xFF);
	outb(0xA1, 0xFF);
}

static void test_atapi(void)
{
	/* A soft reset puts the signature in place (firmware may have run
	 * commands that changed the registers since power-on). */
	outb(SEC_CTL, 0x06);
	for (int i = 0; i < 100; i++)
		(void)inb(SEC_CTL);
	outb(SEC_CTL, 0x02);
	wait_ready(SEC_CTL);
	outb(SEC + 6, 0xA0);
	wait_ready(SEC_CTL);
	check("ATAPI signature after SRST", inb(SEC + 4) == 0x14 && inb(SEC + 5) == 0xEB);
	outb(SEC + 7, 0xA1);
	u8 s = wait_drq(SEC_CTL);
	check_eq("IDENTIFY PACKET: DRQ", s & (ST_DRQ | ST_ERR), ST_DRQ);
	insw(SEC, ident, 256);
	check_eq("IDENTIFY PACKET: ATAPI CD-ROM", ident[0] & 0xDF00, 0x8500);

	/* READ CAPACITY */
	u8 cdb[12] = {0x25};
	outb(SEC + 1, 0);
	outb(SEC + 4, 8);
	outb(SEC + 5, 0);
	outb(SEC + 7, 0xA0);
	wait_drq(SEC_CTL);
	outsw(SEC, cdb, 6);
	s = wait_drq(SEC_CTL);
	u32 cap[2] = {0, 0};
	if (!(s & ST_ERR))
		insw(SEC, cap, 4);
	check_eq("READ CAPACITY: last LBA", __builtin_bswap32(cap[0]), CD_SECTORS - 1);
	check_eq("READ CAPACITY: block size", __builtin_bswap32(cap[1]), 2048);
	wait_ready(SEC_CTL);

	/* READ(10) of sectors 3-4, PIO, 2048-byte byte count limit. */
	u8 rd[12] = {0x28, 0, 0, 0, 0, 3, 0, 0, 2};
	outb(SEC + 4, 0x00);
	outb(SEC + 5, 0x08);
	outb(SEC + 7, 0xA0);
	wait_drq(SEC_CTL);
	outsw(SEC, rd, 6);
	u32 got = 0;
	int blocks = 0;
	for (;;) {
		s = wait_drq(SEC_CTL);
		if ((s & ST_ERR) || !(s & ST_DRQ) || got >= 4096)
			break;
		u32 n = inb(SEC + 4) | (u32)inb(SEC + 5) << 8;
		if (n == 0 || got + n > 4096)
			break;
		insw(SEC, sector_buf + got, n / 2);
		got += n;
		blocks++;
	}
	check_eq("READ(10): bytes", got, 4096);
	check_eq("READ(10): DRQ blocks", blocks, 2);
	check("READ(10): data",
	      diff(sector_buf, 3, cd_byte, 2048) < 0 && diff(sector_buf + 2048, 4, cd_byte, 2048) < 0);
	check_eq("READ(10): reason at the end", inb(SEC + 2) & 3, 3);
	check_eq("READ(10): status at the end", inb(SEC + 7) & (ST_DRQ | ST_ERR | ST_BSY), 0);
}

static u8 writer_byte(u32 s, u32 i) { return (u8)(s * 7 + i * 13 + 0xA5); }

static int has_word(const char *s, const char *w)
{
	for (; *s; s++) {
		const char *a = s, *b = w;
		while (*b && *a == *b)
			a++, b++;
		if (!*b)
			return 1;
	}
	return 0;
}

static void writer(void)
{
	outb(PRI_CTL, 0x02);
	outb(PRI + 6, 0xA0);
	wait_ready(PRI_CTL);
	outb(PRI + 7, 0xEC);
	wait_drq(PRI_CTL);
	insw(PRI, ident, 256);
	u32 sectors = ident[60] | (u32)ident[61] << 16;
	printf("WRITER %u sectors\n", sectors);
	for (u32 s = 0; s < sectors; s++) {
		for (u32 i = 0; i < 512; i++)
			sector_buf[i] = writer_byte(s, i);
		lba28(PRI, s, 1);
		outb(PRI + 7, 0x30);
		if (wait_drq(PRI_CTL) & ST_ERR)
			break;
		outsw(PRI, sector_buf, 256);
		u8 st = wait_ready(PRI_CTL);
		if (st & (ST_ERR | ST_DRQ)) {
			printf("WRITER error %x at %u\n", st, s);
			break;
		}
		printf("W %u\n", s);
	}
	puts("WRITER-DONE\n");
	finish();
}

void test_main(void)
{
	const struct mb_info *mbi = (const struct mb_info *)mb_info;
	if ((mbi->flags & MBI_CMDLINE) && has_word((const char *)mbi->cmdline, "writer"))
		writer();
	test_pci();
	test_identify();
	test_pio_read();
	test_pio_write();
	test_lba48();
	test_dma_read();
	test_dma_write();
	test_out_of_range();
	test_interrupt();
	test_atapi();
}
