/* VBE 3.0 (INT 10h AX=4Fxxh) on the Bochs "DISPI" interface (ports
 * 0x1CE/0x1CF): linear-framebuffer and banked modes up to 1024x768x32. */
#include "vga.h"

extern char vbe_window_func[], vbe_oem_string[], vbe_vendor_string[], vbe_product_string[],
	vbe_revision_string[];
#define OFF(sym) ((u16)(u32)(sym))
int vga_set_mode(u8 mode);

struct vbe_mode {
	u16 mode;
	u16 width, height;
	u8 bpp;
} packed;

static ROM struct vbe_mode vbe_modes[] = {
	{0x100, 640, 400, 8},   {0x101, 640, 480, 8},   {0x103, 800, 600, 8},
	{0x105, 1024, 768, 8},  {0x10D, 320, 200, 15},  {0x10E, 320, 200, 16},
	{0x10F, 320, 200, 24},  {0x110, 640, 480, 15},  {0x111, 640, 480, 16},
	{0x112, 640, 480, 24},  {0x113, 800, 600, 15},  {0x114, 800, 600, 16},
	{0x115, 800, 600, 24},  {0x116, 1024, 768, 15}, {0x117, 1024, 768, 16},
	{0x118, 1024, 768, 24}, {0x140, 320, 200, 32},  {0x141, 640, 400, 32},
	{0x142, 640, 480, 32},  {0x143, 800, 600, 32},  {0x144, 1024, 768, 32},
};

u16 dispi_read(u8 i)
{
	outw(i, DISPI_INDEX);
	return inw(DISPI_DATA);
}

void dispi_write(u8 i, u16 v)
{
	outw(i, DISPI_INDEX);
	outw(v, DISPI_DATA);
}

int dispi_present(void)
{
	dispi_write(DISPI_ID, 0xB0C5);
	u16 id = dispi_read(DISPI_ID);
	return id >= 0xB0C0 && id <= 0xB0C5;
}

void dispi_disable(void) { dispi_write(DISPI_ENABLE, 0); }

static u32 vram_size(void)
{
	u16 blocks = dispi_read(DISPI_VIDEO_MEMORY_64K);
	return blocks ? (u32)blocks << 16 : 8 << 20;
}

/* The framebuffer: BAR 0 of the Bochs VGA PCI function (1234:1111), or
 * Bochs's ISA default. */
static u32 lfb_base(void)
{
	for (u16 dev = 0; dev < 32; dev++) {
		outl(0x80000000 | (u32)dev << 11, 0xCF8);
		if (inl(0xCFC) == 0x11111234) {
			outl(0x80000010 | (u32)dev << 11, 0xCF8);
			return inl(0xCFC) & ~0xF;
		}
	}
	return 0xE0000000;
}

static u8 bytes_pp(u8 bpp) { return (bpp + 7) / 8; }

static ROMPTR struct vbe_mode *vbe_find(u16 mode)
{
	for (u8 i = 0; i < ARRAY_SIZE(vbe_modes); i++) {
		ROMPTR struct vbe_mode *m = &vbe_modes[i];
		if (m->mode == mode)
			return (u32)m->width * m->height * bytes_pp(m->bpp) <= vram_size() ? m : NULL;
	}
	return NULL;
}

static void put_farptr(u16 seg, u16 off, u16 pseg, u16 poff)
{
	wr16(seg, off, poff);
	wr16(seg, off + 2, pseg);
}

static void controller_info(struct vregs *r)
{
	u16 seg = r->es, off = r->di;
	int vbe2 = rd32(seg, off) == 0x32454256; /* "VBE2" */
	far_memset(seg, off, 0, vbe2 ? 512 : 256);
	wr32(seg, off, 0x41534556); /* "VESA" */
	wr16(seg, off + 4, 0x0300);
	u16 cs = get_cs();
	put_farptr(seg, off + 6, cs, OFF(vbe_oem_string));
	wr32(seg, off + 10, 0);
	u16 list = off + 0x22, n = 0;
	for (u8 i = 0; i < ARRAY_SIZE(vbe_modes); i++)
		if (vbe_find(vbe_modes[i].mode))
			wr16(seg, list + 2 * n++, vbe_modes[i].mode);
	wr16(seg, list + 2 * n, 0xFFFF);
	put_farptr(seg, off + 14, seg, list);
	wr16(seg, off + 18, vram_size() >> 16);
	if (vbe2) {
		wr16(seg, off + 20, 0x0100);
		put_farptr(seg, off + 22, cs, OFF(vbe_vendor_string));
		put_farptr(seg, off + 26, cs, OFF(vbe_product_string));
		put_farptr(seg, off + 30, cs, OFF(vbe_revision_string));
	}
	r->ax = 0x004F;
}

/* Red, green, blue, reserved: mask size and position. */
static void colour_fields(u8 bpp, u8 f[8])
{
	static ROM u8 fields[4][8] = {
		{5, 10, 5, 5, 5, 0, 1, 15}, /* 15 */
		{5, 11, 6, 5, 5, 0, 0, 0},  /* 16 */
		{8, 16, 8, 8, 8, 0, 0, 0},  /* 24 */
		{8, 16, 8, 8, 8, 0, 8, 24}, /* 32 */
	};
	int i = bpp == 15 ? 0 : bpp == 16 ? 1 : bpp == 24 ? 2 : bpp == 32 ? 3 : -1;
	for (u8 k = 0; k < 8; k++)
		f[k] = i < 0 ? 0 : fields[i][k];
}

static void mode_info(struct vregs *r)
{
	ROMPTR struct vbe_mode *m = vbe_find(r->cx & 0x1FF);
	if (!m || !dispi_present()) {
		r->ax = 0x014F;
		return;
	}
	u16 seg = r->es, off = r->di;
	u16 bpl = m->width * bytes_pp(m->bpp);
	u32 pages = vram_size() / ((u32)bpl * m->height);
	pages = pages ? pages - 1 : 0;
	if (pages > 255)
		pages = 255;
	far_memset(seg, off, 0, 256);
	wr16(seg, off + 0, 0x009B); /* supported, colour, graphics, no VGA window layout, LFB */
	wr8(seg, off + 2, 0x07);
	wr16(seg, off + 4, 64);
	wr16(seg, off + 6, 64);
	wr16(seg, off + 8, 0xA000);
	put_farptr(seg, off + 12, get_cs(), OFF(vbe_window_func));
	wr16(seg, off + 16, bpl);
	wr16(seg, off + 18, m->width);
	wr16(seg, off + 20, m->height);
	wr8(seg, off + 22, 8);
	wr8(seg, off + 23, 16);
	wr8(seg, off + 24, 1);
	wr8(seg, off + 25, m->bpp);
	wr8(seg, off + 26, 1);
	wr8(seg, off + 27, m->bpp <= 8 ? 4 : 6);
	wr8(seg, off + 29, pages);
	wr8(seg, off + 30, 1);
	u8 f[8];
	colour_fields(m->bpp, f);
	for (u8 k = 0; k < 8; k++) {
		wr8(seg, off + 31 + k, f[k]);
		wr8(seg, off + 54 + k, f[k]);
	}
	wr8(seg, off + 39, m->bpp == 32 ? 0x02 : 0);
	wr32(seg, off + 40, lfb_base());
	wr16(seg, off + 50, bpl);
	wr8(seg, off + 52, pages);
	wr8(seg, off + 53, pages);
	r->ax = 0x004F;
}

static void set_vbe_mode(struct vregs *r)
{
	u16 mode = r->bx & 0x1FF;
	int lfb = r->bx & 0x4000, noclear = r->bx & 0x8000;
	if (mode < 0x100) {
		vga_set_mode(mode | (noclear ? 0x80 : 0));
		r->ax = 0x004F;
		return;
	}
	ROMPTR struct vbe_mode *m = vbe_find(mode);
	if (!m || !dispi_present()) {
		r->ax = 0x014F;
		return;
	}
	if (m->bpp <= 8)
		load_palette_256();
	/* The VGA side in graphics mode, the A0000 window as the bank window. */
	gc_write(6, 0x05);
	gc_write(5, 0x40);
	seq_write(4, 0x0E);
	attr_write(0x10, 0x41);
	dispi_disable();
	dispi_write(DISPI_BPP, m->bpp);
	dispi_write(DISPI_XRES, m->width);
	dispi_write(DISPI_YRES, m->height);
	dispi_write(DISPI_BANK, 0);
	dispi_write(DISPI_VIRT_WIDTH, m->width);
	dispi_write(DISPI_X_OFFSET, 0);
	dispi_write(DISPI_Y_OFFSET, 0);
	dispi_write(DISPI_ENABLE, DISPI_ENABLED | (lfb ? DISPI_LFB_ENABLED : 0) |
					  (noclear ? DISPI_NOCLEARMEM : 0));
	bda_wr8(BDA_VIDEO_MODE, 0xFF);
	bda_wr8(BDA_VGA_FLAGS, bda_rd8(BDA_VGA_FLAGS) | 1);
	bda_wr16(BDA_VBE_MODE, r->bx & 0x41FF);
	r->ax = 0x004F;
}

static u8 cur_bpp(void) { return dispi_read(DISPI_BPP); }

static void scanline(struct vregs *r)
{
	u8 bpp = bytes_pp(cur_bpp());
	if (!(dispi_read(DISPI_ENABLE) & DISPI_ENABLED) || !bpp) {
		r->ax = 0x034F;
		return;
	}
	switch (r->bl) {
	case 0x00:
		dispi_write(DISPI_VIRT_WIDTH, r->cx);
		break;
	case 0x02:
		dispi_write(DISPI_VIRT_WIDTH, r->cx / bpp);
		break;
	case 0x01:
		break;
	case 0x03: {
		u32 max = vram_size() / dispi_read(DISPI_YRES) / bpp;
		r->bx = max > 0xFFFF / bpp ? (0xFFFF / bpp) * bpp : max * bpp;
		r->cx = r->bx / bpp;
		r->dx = dispi_read(DISPI_YRES);
		r->ax = 0x004F;
		return;
	}
	default:
		r->ax = 0x014F;
		return;
	}
	u16 w = dispi_read(DISPI_VIRT_WIDTH);
	r->bx = w * bpp;
	r->cx = w;
	r->dx = vram_size() / ((u32)w * bpp);
	r->ax = 0x004F;
}

static void save_restore(struct vregs *r)
{
	switch (r->dl) {
	case 0x00:
		r->bx = 1;
		break;
	case 0x01:
		if (r->cx & 0x08)
			for (u8 i = 1; i <= 9; i++)
				wr16(r->es, r->bx + 2 * i, dispi_read(i));
		break;
	case 0x02:
		if (r->cx & 0x08) {
			dispi_disable();
			for (u8 i = 1; i <= 9; i++)
				if (i != DISPI_ENABLE)
					dispi_write(i, rd16(r->es, r->bx + 2 * i));
			dispi_write(DISPI_ENABLE, rd16(r->es, r->bx + 2 * DISPI_ENABLE));
		}
		break;
	default:
		r->ax = 0x014F;
		return;
	}
	r->ax = 0x004F;
}

void vbe_call(struct vregs *r)
{
	if (!dispi_present() && r->al != 0x00) {
		r->ax = 0x014F;
		return;
	}
	switch (r->al) {
	case 0x00:
		if (!dispi_present()) {
			r->ax = 0x014F;
			return;
		}
		controller_info(r);
		return;
	case 0x01:
		mode_info(r);
		return;
	case 0x02:
		set_vbe_mode(r);
		return;
	case 0x03:
		r->bx = (bda_rd8(BDA_VGA_FLAGS) & 1) ? bda_rd16(BDA_VBE_MODE) : bda_rd8(BDA_VIDEO_MODE);
		r->ax = 0x004F;
		return;
	case 0x04:
		save_restore(r);
		return;
	case 0x05:
		if (r->bh == 0)
			dispi_write(DISPI_BANK, r->dx);
		else
			r->dx = dispi_read(DISPI_BANK);
		r->ax = 0x004F;
		return;
	case 0x06:
		scanline(r);
		return;
	case 0x07:
		if (r->bl == 0x00 || r->bl == 0x80) {
			dispi_write(DISPI_X_OFFSET, r->cx);
			dispi_write(DISPI_Y_OFFSET, r->dx);
		} else if (r->bl == 0x01) {
			r->bh = 0;
			r->cx = dispi_read(DISPI_X_OFFSET);
			r->dx = dispi_read(DISPI_Y_OFFSET);
		} else {
			r->ax = 0x014F;
			return;
		}
		r->ax = 0x004F;
		return;
	case 0x08:
		if (r->bl > 1) {
			r->ax = 0x014F;
			return;
		}
		r->bh = 6;
		r->ax = 0x004F;
		return;
	case 0x09:
		if (r->bl == 0x00 || r->bl == 0x80) {
			outb(r->dl, DAC_WRITE_INDEX);
			for (u16 i = 0; i < r->cx; i++) {
				u16 e = r->di + 4 * i;
				outb(rd8(r->es, e + 2), DAC_DATA);
				outb(rd8(r->es, e + 1), DAC_DATA);
				outb(rd8(r->es, e + 0), DAC_DATA);
			}
		} else if (r->bl == 0x01) {
			outb(r->dl, DAC_READ_INDEX);
			for (u16 i = 0; i < r->cx; i++) {
				u16 e = r->di + 4 * i;
				wr8(r->es, e + 2, inb(DAC_DATA));
				wr8(r->es, e + 1, inb(DAC_DATA));
				wr8(r->es, e + 0, inb(DAC_DATA));
				wr8(r->es, e + 3, 0);
			}
		} else {
			r->ax = 0x014F;
			return;
		}
		r->ax = 0x004F;
		return;
	default:
		r->ax = 0x0100;
		return;
	}
}
