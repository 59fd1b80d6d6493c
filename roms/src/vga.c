/* vga: the VGA and its Bochs VBE extensions, programmed through registers
 * only (no BIOS calls), as QEMU's -vga std and morph86 present them.
 *
 * Checked on every run: the PCI display function (1234:1111, class 0300,
 * BAR0 a prefetchable 16 MiB memory BAR), the DISPI ID and memory size
 * registers, the DAC's auto-incrementing read and write indexes, the
 * attribute controller's flip-flop reset by reading input status 1, the
 * latched write modes 0-3 with set/reset, rotation, logical functions, bit
 * mask and map mask, read modes 0 and 1, chain 4 addressing (byte x is
 * plane x & 3 at plane address x >> 2, where unchained Mode X finds it),
 * odd/even text addressing, and a VBE mode's linear framebuffer against
 * the banked window. Those follow the IBM VGA reference and FreeVGA; the
 * chain 4 plane address is QEMU 7.2's (the IBM part uses x & ~3).
 *
 * With "draw=13h", "draw=12h", "draw=vbe" or "draw=text" on the command
 * line it then draws a known picture in that mode (see the draw_*
 * functions; tests/vga.rs computes the same pictures), prints "READY" and
 * halts with interrupts off, for a screenshot: scripts/vga-crosscheck.sh
 * compares morph86's with QEMU's screendump. */
#include "test.h"
#include "multiboot.h"

const char test_name[] = "vga";

static inline void outw_(u16 p, u16 v) { __asm__ volatile("outw %0, %1" :: "a"(v), "Nd"(p)); }
static inline void outl_(u16 p, u32 v) { __asm__ volatile("outl %0, %1" :: "a"(v), "Nd"(p)); }
static inline u16 inw_(u16 p) { u16 v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(p)); return v; }
static inline u32 inl_(u16 p) { u32 v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(p)); return v; }

#define VGA ((volatile u8 *)0xA0000)
#define TEXT ((volatile u16 *)0xB8000)

/* ---- registers ---- */

static void seq(u8 i, u8 v) { outb(0x3C4, i); outb(0x3C5, v); }
static void gc(u8 i, u8 v) { outb(0x3CE, i); outb(0x3CF, v); }
static void crtc(u8 i, u8 v) { outb(0x3D4, i); outb(0x3D5, v); }
static void ac(u8 i, u8 v) { (void)inb(0x3DA); outb(0x3C0, i); outb(0x3C0, v); }

static void dac(u8 i, u8 r, u8 g, u8 b)
{
	outb(0x3C8, i);
	outb(0x3C9, r);
	outb(0x3C9, g);
	outb(0x3C9, b);
}

static void vbe(u16 i, u16 v) { outw_(0x1CE, i); outw_(0x1CF, v); }
static u16 vbe_get(u16 i) { outw_(0x1CE, i); return inw_(0x1CF); }

struct mode {
	u8 misc, seq[5], crtc[25], gc[9], ac[21];
};

/* IBM's register values for the BIOS modes. */
static const struct mode mode03 = {
	0x67, {0x03, 0x00, 0x03, 0x00, 0x02},
	{0x5F, 0x4F, 0x50, 0x82, 0x55, 0x81, 0xBF, 0x1F, 0x00, 0x4F, 0x0D, 0x0E, 0x00,
	 0x00, 0x00, 0x00, 0x9C, 0x8E, 0x8F, 0x28, 0x1F, 0x96, 0xB9, 0xA3, 0xFF},
	{0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x0E, 0x00, 0xFF},
	{0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x14, 0x07, 0x38, 0x39, 0x3A, 0x3B, 0x3C,
	 0x3D, 0x3E, 0x3F, 0x0C, 0x00, 0x0F, 0x08, 0x00},
};
static const struct mode mode12 = {
	0xE3, {0x03, 0x01, 0x0F, 0x00, 0x06},
	{0x5F, 0x4F, 0x50, 0x82, 0x54, 0x80, 0x0B, 0x3E, 0x00, 0x40, 0x00, 0x00, 0x00,
	 0x00, 0x00, 0x00, 0xEA, 0x8C, 0xDF, 0x28, 0x00, 0xE7, 0x04, 0xE3, 0xFF},
	{0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x0F, 0xFF},
	{0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C,
	 0x0D, 0x0E, 0x0F, 0x01, 0x00, 0x0F, 0x00, 0x00},
};
static const struct mode mode13 = {
	0x63, {0x03, 0x01, 0x0F, 0x00, 0x0E},
	{0x5F, 0x4F, 0x50, 0x82, 0x54, 0x80, 0xBF, 0x1F, 0x00, 0x41, 0x00, 0x00, 0x00,
	 0x00, 0x00, 0x00, 0x9C, 0x8E, 0x8F, 0x28, 0x40, 0x96, 0xB9, 0xA3, 0xFF},
	{0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x05, 0x0F, 0xFF},
	{0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C,
	 0x0D, 0x0E, 0x0F, 0x41, 0x00, 0x0F, 0x00, 0x00},
};

/* Sets a mode through the registers (VBE off, the screen off until
 * screen_on). */
static void set_mode(const struct mode *m)
{
	vbe(4, 0);
	(void)inb(0x3DA);
	outb(0x3C0, 0x00); /* palette address source off: screen blank */
	outb(0x3C2, m->misc);
	for (int i = 0; i < 5; i++)
		seq(i, m->seq[i]);
	crtc(0x11, 0); /* unlock CR0-7 */
	for (int i = 0; i < 25; i++)
		crtc(i, m->crtc[i]);
	for (int i = 0; i < 9; i++)
		gc(i, m->gc[i]);
	for (int i = 0; i < 21; i++)
		ac(i, m->ac[i]);
	outb(0x3C6, 0xFF);
}

static void screen_on(void)
{
	(void)inb(0x3DA);
	outb(0x3C0, 0x20);
}

/* ---- PCI ---- */

static u32 pci_read(u32 dev, u32 reg)
{
	outl_(0xCF8, 0x80000000u | dev << 11 | reg);
	return inl_(0xCFC);
}

static void pci_write(u32 dev, u32 reg, u32 v)
{
	outl_(0xCF8, 0x80000000u | dev << 11 | reg);
	outl_(0xCFC, v);
}

static u32 lfb;

static void check_pci(void)
{
	int dev;
	for (dev = 0; dev < 32; dev++)
		if (pci_read(dev, 0) == 0x11111234)
			break;
	if (!check("pci-1234-1111-present", dev < 32))
		return;
	check_eq("pci-class-vga", pci_read(dev, 8) >> 8, 0x030000);
	u32 bar = pci_read(dev, 0x10);
	check_eq("pci-bar0-prefetchable-memory", bar & 0xF, 0x8);
	lfb = bar & ~0xFu;
	check("pci-bar0-assigned", lfb != 0);
	check("pci-memory-decoding-on", pci_read(dev, 4) & 2);
	/* Sizing with decoding off, as an OS does, then back. */
	u32 cmd = pci_read(dev, 4);
	pci_write(dev, 4, cmd & ~2u);
	pci_write(dev, 0x10, 0xFFFFFFFF);
	check_eq("pci-bar0-16mib", pci_read(dev, 0x10), 0xFF000008);
	pci_write(dev, 0x10, bar);
	pci_write(dev, 4, cmd);
	check_eq("pci-bar0-restored", pci_read(dev, 0x10), bar);
}

/* ---- register semantics ---- */

static void check_vbe_ids(void)
{
	check("vbe-id", vbe_get(0) >= 0xB0C0 && vbe_get(0) <= 0xB0C5);
	vbe(0, 0xB0C4);
	check_eq("vbe-id-select", vbe_get(0), 0xB0C4);
	vbe(0, 0xB0C5);
	check_eq("vbe-memory-64k", vbe_get(0xA), 256);
	vbe(4, 2); /* GETCAPS */
	check("vbe-getcaps-bpp", vbe_get(3) == 32);
	vbe(4, 0);
}

static void check_dac(void)
{
	outb(0x3C8, 0x10);
	for (int i = 0; i < 6; i++)
		outb(0x3C9, 10 + i);
	check_eq("dac-write-index-advanced", inb(0x3C8), 0x12);
	check_eq("dac-state-write", inb(0x3C7) & 3, 0);
	outb(0x3C7, 0x10);
	check_eq("dac-state-read", inb(0x3C7) & 3, 3);
	u32 sum = 0;
	for (int i = 0; i < 6; i++)
		sum = sum << 4 | (inb(0x3C9) - 10);
	check_eq("dac-read-auto-increment", sum, 0x012345);
}

static void check_attribute_flip_flop(void)
{
	(void)inb(0x3DA);
	outb(0x3C0, 0x05);
	outb(0x3C0, 0x2A); /* palette 5 = 0x2A */
	outb(0x3C0, 0x06); /* index 6, flip-flop now at data */
	(void)inb(0x3DA); /* back to index */
	outb(0x3C0, 0x05 | 0x20); /* an index write, or palette 6 would read 0x25 */
	check_eq("ac-index-after-status-read", inb(0x3C1), 0x2A);
	outb(0x3C0, 0x05); /* data for index 5 */
	(void)inb(0x3DA);
	outb(0x3C0, 0x05 | 0x20);
	check_eq("ac-data-write", inb(0x3C1), 0x05);
}

/* Planar access at the window's byte `a` (mode 12h memory setup). */
static void check_latches(void)
{
	set_mode(&mode12);
	for (int i = 0; i < 16; i++)
		VGA[i] = 0;
	/* Fill planes 0-3 of byte 0 with 0x11, 0x22, 0x44, 0x88. */
	for (int p = 0; p < 4; p++) {
		seq(2, 1 << p);
		VGA[0] = 0x11 << p;
	}
	seq(2, 0x0F);
	gc(4, 2);
	check_eq("read-mode-0-plane-2", VGA[0], 0x44);
	/* Write mode 1: copy the latches to byte 1. */
	(void)VGA[0];
	gc(5, 0x01);
	VGA[1] = 0;
	gc(5, 0x00);
	u32 got = 0;
	for (int p = 0; p < 4; p++) {
		gc(4, p);
		got |= (u32)VGA[1] << (8 * p);
	}
	check_eq("write-mode-1-copies-latches", got, 0x88442211);
	/* Write mode 0 with set/reset on planes 0 and 3 (value 1), rotate 4,
	 * XOR with the latches, bit mask 0xF0. */
	gc(0, 0x01);
	gc(1, 0x09);
	gc(3, 0x18 | 4);
	gc(8, 0xF0);
	(void)VGA[0];
	VGA[2] = 0x3C; /* rotated: 0xC3 */
	gc(0, 0); gc(1, 0); gc(3, 0); gc(8, 0xFF);
	got = 0;
	for (int p = 0; p < 4; p++) {
		gc(4, p);
		got |= (u32)VGA[2] << (8 * p);
	}
	/* plane 0: (FF^11)&F0 | 11&0F = E1; plane 1: (C3^22)&F0 | 22&0F = E2;
	 * plane 2: (C3^44)&F0 | 44&0F = 84; plane 3: (00^88)&F0 | 88&0F = 88. */
	check_eq("write-mode-0-sr-rotate-xor-mask", got, 0x8884E2E1);
	/* Write mode 2 (colour 0b1010) under bit mask 0x0F, over zeroed latches. */
	(void)VGA[3];
	gc(5, 0x02);
	gc(8, 0x0F);
	VGA[3] = 0x0A;
	gc(8, 0xFF);
	gc(5, 0x00);
	got = 0;
	for (int p = 0; p < 4; p++) {
		gc(4, p);
		got |= (u32)VGA[3] << (8 * p);
	}
	check_eq("write-mode-2", got, 0x0F000F00);
	/* Write mode 3: set/reset 0b0110 is the colour, the CPU byte ANDs the
	 * bit mask. */
	gc(0, 0x06);
	gc(5, 0x03);
	(void)VGA[4];
	VGA[4] = 0x81;
	gc(5, 0x00);
	gc(0, 0x00);
	got = 0;
	for (int p = 0; p < 4; p++) {
		gc(4, p);
		got |= (u32)VGA[4] << (8 * p);
	}
	check_eq("write-mode-3", got, 0x00818100);
	/* Read mode 1: pixels of byte 0 equal to colour 0b0101 (planes: 11, 22,
	 * 44, 88: pixel bit b has colour bit p = ((0x11 << p) >> b) & 1). */
	gc(2, 0x05);
	gc(7, 0x0F);
	gc(5, 0x08);
	u8 rm1 = VGA[0];
	gc(7, 0x00);
	u8 all = VGA[0];
	gc(5, 0x00);
	u8 want = 0;
	for (int b = 0; b < 8; b++) {
		int c = 0;
		for (int p = 0; p < 4; p++)
			c |= (((0x11 << p) >> b) & 1) << p;
		if (c == 5)
			want |= 1 << b;
	}
	check_eq("read-mode-1-compare", rm1, want);
	check_eq("read-mode-1-dont-care", all, 0xFF);
	/* Map mask: only plane 1. */
	seq(2, 0x02);
	VGA[5] = 0x5A;
	seq(2, 0x0F);
	got = 0;
	for (int p = 0; p < 4; p++) {
		gc(4, p);
		got |= (u32)VGA[5] << (8 * p);
	}
	gc(4, 0);
	check_eq("map-mask", got, 0x00005A00);
}

static void check_chain4(void)
{
	set_mode(&mode13);
	for (int x = 0; x < 16; x++)
		VGA[x] = 0x40 + x;
	check_eq("chain4-read", VGA[6], 0x46);
	/* Unchain: plane 2 at address 1 holds byte 6. */
	seq(4, 0x06);
	gc(5, 0x00);
	gc(4, 2);
	check_eq("chain4-plane-x-and-3", VGA[1], 0x46);
	gc(4, 3);
	check_eq("chain4-plane-3-address-3", VGA[3], 0x4F);
	seq(4, 0x0E);
	gc(5, 0x40);
}

static void check_odd_even(void)
{
	set_mode(&mode03);
	TEXT[0] = 0x1F00 | 'A';
	TEXT[1] = 0x2E00 | 'b';
	/* Planar view: character bytes in plane 0, attributes in plane 1. */
	seq(4, 0x06);
	gc(5, 0x00);
	gc(6, 0x04);
	gc(4, 0);
	u32 c = VGA[0] | VGA[1] << 8;
	gc(4, 1);
	u32 a = VGA[0] | VGA[1] << 8;
	gc(4, 0);
	seq(4, 0x02);
	gc(5, 0x10);
	gc(6, 0x0E);
	check_eq("odd-even-characters-in-plane-0", c, 'A' | 'b' << 8);
	check_eq("odd-even-attributes-in-plane-1", a, 0x2E1F);
	check_eq("odd-even-read-back", TEXT[1], 0x2E00 | 'b');
}

static void check_vbe_lfb(void)
{
	if (!lfb)
		return;
	vbe(4, 0);
	vbe(1, 320);
	vbe(2, 200);
	vbe(3, 8);
	vbe(4, 0x41);
	check_eq("vbe-enabled", vbe_get(4), 0x41);
	check_eq("vbe-virt-height", vbe_get(7), (16u << 20) / 320);
	volatile u8 *fb = (volatile u8 *)lfb;
	check_eq("vbe-cleared", fb[1000], 0);
	fb[0x10005] = 0x77;
	vbe(5, 1); /* bank 1: LFB bytes 0x10000.. at A0000 */
	check_eq("vbe-bank-window-reads-lfb", VGA[5], 0x77);
	VGA[6] = 0x66;
	check_eq("vbe-lfb-reads-bank-window", fb[0x10006], 0x66);
	vbe(5, 0);
	vbe(4, 0);
}

/* ---- pictures ---- */

/* Mode 13h: DAC entry i = (i & 63, (i >> 2) & 63, 63 - (i & 63)); pixel
 * (x, y) = (x + 3 y) ^ (x >> 3), written as bytes on even lines and as
 * dwords on odd lines; then a 20x10 box of colour 255 at (150, 90). */
static void draw_13h(void)
{
	set_mode(&mode13);
	for (int i = 0; i < 256; i++)
		dac(i, i & 63, (i >> 2) & 63, 63 - (i & 63));
	screen_on();
	for (int y = 0; y < 200; y++) {
		if (y & 1) {
			volatile u32 *row = (volatile u32 *)(VGA + y * 320);
			for (int x = 0; x < 320; x += 4) {
				u32 v = 0;
				for (int k = 0; k < 4; k++)
					v |= (u32)(u8)(((x + k) + 3 * y) ^ ((x + k) >> 3)) << (8 * k);
				row[x / 4] = v;
			}
		} else {
			for (int x = 0; x < 320; x++)
				VGA[y * 320 + x] = (u8)((x + 3 * y) ^ (x >> 3));
		}
	}
	for (int y = 90; y < 100; y++)
		for (int x = 150; x < 170; x++)
			VGA[y * 320 + x] = 255;
}

/* Mode 12h: DAC entry i (0-15) = (4 i, 63 - 4 i, 9 i & 63), attribute
 * palette identity. Bands of colour (bx / 5 + y / 32) & 15 per byte column
 * bx (write mode 2); a box of colour 14 at bytes 12-37, lines 200-259
 * (write mode 0, set/reset); a diagonal of colour 15 at x = y + 80 (write
 * mode 2, one pixel's bit mask); colour XOR 5 over bytes 40-49, lines
 * 100-149 (write mode 0, XOR, planes 0 and 2); colour 9 on every other
 * pixel of bytes 60-69, lines 300-309 (write mode 3, CPU byte 0xAA). */
static void draw_12h(void)
{
	set_mode(&mode12);
	for (int i = 0; i < 16; i++)
		dac(i, 4 * i, 63 - 4 * i, (9 * i) & 63);
	screen_on();
	gc(5, 0x02);
	gc(8, 0xFF);
	for (int y = 0; y < 480; y++)
		for (int bx = 0; bx < 80; bx++)
			VGA[y * 80 + bx] = (bx / 5 + y / 32) & 15;
	gc(5, 0x00);
	gc(0, 14);
	gc(1, 0x0F);
	for (int y = 200; y < 260; y++)
		for (int bx = 12; bx < 38; bx++)
			VGA[y * 80 + bx] = 0;
	gc(1, 0x00);
	gc(5, 0x02);
	for (int y = 0; y < 480; y++) {
		int x = y + 80;
		gc(8, 0x80 >> (x & 7));
		(void)VGA[y * 80 + x / 8];
		VGA[y * 80 + x / 8] = 15;
	}
	gc(8, 0xFF);
	gc(5, 0x00);
	gc(3, 0x18);
	seq(2, 0x05);
	for (int y = 100; y < 150; y++)
		for (int bx = 40; bx < 50; bx++) {
			(void)VGA[y * 80 + bx];
			VGA[y * 80 + bx] = 0xFF;
		}
	seq(2, 0x0F);
	gc(3, 0x00);
	gc(5, 0x03);
	gc(0, 9);
	for (int y = 300; y < 310; y++)
		for (int bx = 60; bx < 70; bx++) {
			(void)VGA[y * 80 + bx];
			VGA[y * 80 + bx] = 0xAA;
		}
	gc(5, 0x00);
	gc(0, 0);
}

/* VBE 640x480x32 through the linear framebuffer: pixel (x, y) = red x,
 * green y (both low 8 bits), blue (x + y) / 4; a 64x48 white box at
 * (288, 216) drawn through the banked window at A0000. */
static void draw_vbe(void)
{
	if (!lfb) {
		fail("vbe-no-lfb", "no framebuffer");
		return;
	}
	set_mode(&mode03);
	vbe(4, 0);
	vbe(1, 640);
	vbe(2, 480);
	vbe(3, 32);
	vbe(4, 0x41);
	screen_on();
	volatile u32 *fb = (volatile u32 *)lfb;
	for (int y = 0; y < 480; y++)
		for (int x = 0; x < 640; x++)
			fb[y * 640 + x] = (x & 0xFF) << 16 | (y & 0xFF) << 8 | (((x + y) / 4) & 0xFF);
	for (int y = 216; y < 264; y++)
		for (int x = 288; x < 352; x++) {
			u32 at = (y * 640 + x) * 4;
			vbe(5, at >> 16);
			*(volatile u32 *)(VGA + (at & 0xFFFF)) = 0x00FFFFFF;
		}
	vbe(5, 0);
}

/* Mode 3 with a font of the kernel's own in plane 2 (glyph row r of
 * character c = (c * 7 + r * 13) ^ (r << 4) & 0xFF, rows 0-15) and
 * 80x25 cells of character (x + 7 y) % 0xB0 with attribute
 * (x + y) % 0x70 + 1 (no blinking attributes, no line-graphics
 * characters), the cursor off. DAC entries 0-63 = (i, 63 - i, i / 2). */
static void draw_text(void)
{
	set_mode(&mode03);
	for (int i = 0; i < 64; i++)
		dac(i, i, 63 - i, i / 2);
	/* Font load: plane 2 alone, planar addressing at A0000. */
	seq(2, 0x04);
	seq(4, 0x06);
	gc(4, 0x02);
	gc(5, 0x00);
	gc(6, 0x04);
	for (int c = 0; c < 256; c++)
		for (int r = 0; r < 32; r++)
			VGA[c * 32 + r] = r < 16 ? (u8)(((c * 7 + r * 13) ^ (r << 4)) & 0xFF) : 0;
	seq(2, 0x03);
	seq(4, 0x02);
	gc(4, 0x00);
	gc(5, 0x10);
	gc(6, 0x0E);
	crtc(0x0A, 0x20); /* cursor off */
	screen_on();
	for (int y = 0; y < 25; y++)
		for (int x = 0; x < 80; x++)
			TEXT[y * 80 + x] = (u16)(((x + y) % 0x70 + 1) << 8 | (x + 7 * y) % 0xB0);
}

static int has_arg(const char *cmd, const char *arg)
{
	for (; cmd && *cmd; cmd++) {
		const char *a = arg, *c = cmd;
		while (*a && *c == *a)
			a++, c++;
		if (!*a && (*c == 0 || *c == ' '))
			return 1;
	}
	return 0;
}

void test_main(void)
{
	struct mb_info *mbi = (struct mb_info *)mb_info;
	const char *cmd = (mbi->flags & MBI_CMDLINE) ? (const char *)mbi->cmdline : "";
	check_pci();
	check_vbe_ids();
	check_dac();
	check_attribute_flip_flop();
	check_latches();
	check_chain4();
	check_odd_even();
	check_vbe_lfb();
	void (*draw)(void) = 0;
	if (has_arg(cmd, "draw=13h"))
		draw = draw_13h;
	else if (has_arg(cmd, "draw=12h"))
		draw = draw_12h;
	else if (has_arg(cmd, "draw=vbe"))
		draw = draw_vbe;
	else if (has_arg(cmd, "draw=text"))
		draw = draw_text;
	if (!draw)
		finish();
	draw();
	printf("SUMMARY: %d passed, %d failed\n", tests_passed, tests_failed);
	printf("READY\n");
	for (;;)
		__asm__ volatile("cli; hlt");
}
