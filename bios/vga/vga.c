/* INT 10h: mode setting, the cursor, text output and scrolling in text and
 * graphics modes, pixels, palettes and fonts; and the ROM's POST. */
#include "vga.h"

extern char int10_entry[];
#define OFF(sym) ((u16)(u32)(sym))

/* --- registers ---------------------------------------------------------- */

u16 crtc_port(void)
{
	u16 p = bda_rd16(BDA_CRTC_BASE);
	return p == CRTC_MONO ? CRTC_MONO : CRTC_COLOR;
}

static u16 status_port(void) { return crtc_port() + 6; }

u8 seq_read(u8 i)
{
	outb(i, SEQ_INDEX);
	return inb(SEQ_INDEX + 1);
}
void seq_write(u8 i, u8 v)
{
	outb(i, SEQ_INDEX);
	outb(v, SEQ_INDEX + 1);
}
u8 gc_read(u8 i)
{
	outb(i, GC_INDEX);
	return inb(GC_INDEX + 1);
}
void gc_write(u8 i, u8 v)
{
	outb(i, GC_INDEX);
	outb(v, GC_INDEX + 1);
}
u8 crtc_read(u8 i)
{
	outb(i, crtc_port());
	return inb(crtc_port() + 1);
}
void crtc_write(u8 i, u8 v)
{
	outb(i, crtc_port());
	outb(v, crtc_port() + 1);
}
/* The attribute controller; leaves palette access off (video on). */
void attr_write(u8 i, u8 v)
{
	inb(status_port());
	outb(i, ATTR_INDEX);
	outb(v, ATTR_INDEX);
	outb(0x20, ATTR_INDEX);
}
u8 attr_read(u8 i)
{
	inb(status_port());
	outb(i, ATTR_INDEX);
	u8 v = inb(ATTR_READ);
	inb(status_port());
	outb(0x20, ATTR_INDEX);
	return v;
}

void screen_disable(void) { seq_write(1, seq_read(1) | 0x20); }
void screen_enable(void) { seq_write(1, seq_read(1) & ~0x20); }

void dac_write(u8 start, u8 count, ROMPTR u8 *rgb)
{
	outb(start, DAC_WRITE_INDEX);
	for (u16 i = 0; i < (u16)count * 3; i++)
		outb(rgb[i], DAC_DATA);
}

/* The VGA's default 256-colour palette: the 16 CGA colours, 16 greys,
 * then 24 hues at three saturations and three intensities. */
static ROM u8 greys[16] = {0, 5, 8, 11, 14, 17, 20, 24, 28, 32, 36, 40, 45, 50, 56, 63};
static ROM u8 ramps[9][5] = {
	{0, 16, 31, 47, 63}, {31, 39, 47, 55, 63}, {45, 49, 54, 58, 63},
	{0, 7, 14, 21, 28},  {14, 17, 21, 24, 28}, {20, 22, 24, 26, 28},
	{0, 4, 8, 12, 16},   {8, 10, 12, 14, 16},  {11, 12, 13, 15, 16},
};

void load_palette_256(void)
{
	outb(0, DAC_WRITE_INDEX);
	for (u8 i = 0; i < 16; i++) {
		u8 hi = (i >> 3) & 1;
		u8 r = ((i >> 2) & 1) * 42 + hi * 21, g = ((i >> 1) & 1) * 42 + hi * 21,
		   b = (i & 1) * 42 + hi * 21;
		if (i == 6)
			g = 21;
		outb(r, DAC_DATA);
		outb(g, DAC_DATA);
		outb(b, DAC_DATA);
	}
	for (u8 i = 0; i < 16; i++) {
		outb(greys[i], DAC_DATA);
		outb(greys[i], DAC_DATA);
		outb(greys[i], DAC_DATA);
	}
	for (u8 set = 0; set < 9; set++) {
		ROMPTR u8 *v = ramps[set];
		for (u8 h = 0; h < 24; h++) {
			/* f(p): rises over p = 0..4, holds to 12, falls to 16, holds;
			 * red at p = h, green 8 hues behind, blue 8 ahead. */
			u8 c[3];
			for (u8 k = 0; k < 3; k++) {
				u8 p = (h + (k == 1 ? 16 : k == 2 ? 8 : 0)) % 24;
				c[k] = p < 4 ? v[p] : p <= 12 ? v[4] : p <= 15 ? v[16 - p] : v[0];
			}
			outb(c[0], DAC_DATA);
			outb(c[1], DAC_DATA);
			outb(c[2], DAC_DATA);
		}
	}
	for (u16 i = 0; i < 8 * 3; i++)
		outb(0, DAC_DATA);
}

/* --- state ------------------------------------------------------------ */

static ROMPTR struct vga_mode *cur_mode(void) { return find_mode(bda_rd8(BDA_VIDEO_MODE) & 0x7F); }

static u8 cols(void) { return bda_rd16(BDA_VIDEO_COLS); }
static u8 rows(void) { return bda_rd8(BDA_VIDEO_ROWS) + 1; }

static void get_cursor(u8 page, u8 *x, u8 *y)
{
	u16 p = bda_rd16(BDA_CURSOR_POS + 2 * (page & 7));
	*x = p;
	*y = p >> 8;
}

static void update_hw_cursor(void)
{
	ROMPTR struct vga_mode *m = cur_mode();
	if (!m || m->kind != MK_TEXT)
		return;
	u8 page = bda_rd8(BDA_VIDEO_PAGE), x, y;
	get_cursor(page, &x, &y);
	u16 a = bda_rd16(BDA_VIDEO_PAGESTART) / 2 + y * cols() + x;
	crtc_write(0x0E, a >> 8);
	crtc_write(0x0F, a);
}

static void set_cursor(u8 page, u8 x, u8 y)
{
	bda_wr16(BDA_CURSOR_POS + 2 * (page & 7), (u16)y << 8 | x);
	if (page == bda_rd8(BDA_VIDEO_PAGE))
		update_hw_cursor();
}

/* Programs the CRTC cursor for a BDA (CGA-style) cursor type, scaled to
 * the character height unless emulation is off. */
static void set_cursor_shape(u16 type)
{
	u8 start = type >> 8, end = type;
	u8 h = bda_rd8(BDA_CHAR_HEIGHT);
	if (!(bda_rd8(BDA_VIDEO_CTL) & 1) && h > 8 && end < 8 && start < 0x20) {
		if (end != start + 1)
			start = ((start + 1) * h / 8) - 1;
		else
			start = ((end + 1) * h / 8) - 2;
		end = ((end + 1) * h / 8) - 1;
	}
	crtc_write(0x0A, start);
	crtc_write(0x0B, end);
}

/* --- fonts -------------------------------------------------------------- */

/* Loads count glyphs of height h from seg:off, starting at character first,
 * into plane 2's font block. */
static void load_font(u16 seg, u16 off, u16 count, u16 first, u8 block, u8 h)
{
	u8 s2 = seq_read(2), s4 = seq_read(4), g4 = gc_read(4), g5 = gc_read(5), g6 = gc_read(6);
	seq_write(0, 0x01);
	seq_write(2, 0x04);
	seq_write(4, 0x07);
	seq_write(0, 0x03);
	gc_write(4, 0x02);
	gc_write(5, 0x00);
	gc_write(6, 0x04);
	u16 base = ((block & 3) << 14) | ((block & 4) << 11);
	for (u16 c = 0; c < count; c++) {
		u16 dst = base + (first + c) * 32;
		far_memcpy(0xA000, dst, seg, off + c * h, h);
		far_memset(0xA000, dst + h, 0, 32 - h);
	}
	seq_write(0, 0x01);
	seq_write(2, s2);
	seq_write(4, s4);
	seq_write(0, 0x03);
	gc_write(4, g4);
	gc_write(5, g5);
	gc_write(6, g6);
}

static u16 font_for(u8 h)
{
	return h >= 16 ? OFF(font8x16) : h >= 14 ? OFF(font8x14) : OFF(font8x8);
}

static void set_vector(u8 n, u16 seg, u16 off)
{
	wr16(0, n * 4, off);
	wr16(0, n * 4 + 2, seg);
}

/* A text mode's character height changed: rows, page size, CRTC. */
static void text_height(u8 h)
{
	u16 lines = 400;
	crtc_write(0x09, (crtc_read(0x09) & 0xE0) | (h - 1));
	u8 r = lines / h;
	bda_wr8(BDA_VIDEO_ROWS, r - 1);
	bda_wr8(BDA_CHAR_HEIGHT, h);
	bda_wr16(BDA_VIDEO_PAGESIZE, ((u16)r * cols() * 2 + 0xFF) & ~0xFF);
	crtc_write(0x12, (r * h - 1) & 0xFF);
	crtc_write(0x0A, h - 3);
	crtc_write(0x0B, h - 2);
}

/* --- mode setting ------------------------------------------------------- */

static void clear_screen(ROMPTR struct vga_mode *m)
{
	switch (m->kind) {
	case MK_TEXT:
		far_memset16(m->seg, 0, 0x0720, 0x4000);
		break;
	case MK_CGA:
		far_memset16(0xB800, 0, 0, 0x2000);
		break;
	default:
		seq_write(2, 0x0F);
		far_memset16(0xA000, 0, 0, 0x8000);
		break;
	}
}

int vga_set_mode(u8 req);
static int set_mode(u8 req)
{
	u8 mode = req & 0x7F, noclear = req & 0x80;
	ROMPTR struct vga_mode *m = find_mode(mode);
	if (!m)
		return 0;
	if (dispi_present())
		dispi_disable();
	bda_wr8(BDA_VGA_FLAGS, bda_rd8(BDA_VGA_FLAGS) & ~1);
	screen_disable();
	inb(STATUS_COLOR);
	inb(STATUS_MONO);
	outb(0x00, ATTR_INDEX);
	seq_write(0, 0x01);
	outb(m->misc, MISC_WRITE);
	for (u8 i = 0; i < 4; i++)
		seq_write(i + 1, m->seq[i] | (i == 0 ? 0x20 : 0));
	seq_write(0, 0x03);
	u16 crtc = (m->misc & 1) ? CRTC_COLOR : CRTC_MONO;
	bda_wr16(BDA_CRTC_BASE, crtc);
	crtc_write(0x11, crtc_read(0x11) & 0x7F);
	for (u8 i = 0; i < 25; i++)
		crtc_write(i, m->crtc[i]);
	inb(crtc + 6);
	for (u8 i = 0; i < 20; i++) {
		outb(i, ATTR_INDEX);
		outb(m->attr[i], ATTR_INDEX);
	}
	outb(0x14, ATTR_INDEX);
	outb(0x00, ATTR_INDEX);
	inb(crtc + 6);
	outb(0x20, ATTR_INDEX); /* palette access off: the attribute controller drives the display */
	for (u8 i = 0; i < 9; i++)
		gc_write(i, m->gc[i]);
	if (!(bda_rd8(BDA_MODESET_CTL) & 0x08)) {
		outb(0xFF, DAC_MASK);
		if (m->dac == 2) {
			load_palette_256();
		} else {
			ROMPTR u8 *p = m->dac == 1 ? palette_cga : m->dac == 3 ? palette_mono : palette_ega;
			dac_write(0, 64, p);
			for (u16 i = 64 * 3; i < 256 * 3; i++)
				outb(0, DAC_DATA);
		}
	}
	if (!noclear)
		clear_screen(m);
	bda_wr8(BDA_VIDEO_MODE, mode);
	bda_wr16(BDA_VIDEO_COLS, m->cols);
	bda_wr16(BDA_VIDEO_PAGESIZE, m->page_size);
	bda_wr16(BDA_VIDEO_PAGESTART, 0);
	for (u8 i = 0; i < 8; i++)
		bda_wr16(BDA_CURSOR_POS + 2 * i, 0);
	bda_wr8(BDA_VIDEO_PAGE, 0);
	bda_wr8(BDA_VIDEO_ROWS, m->rows - 1);
	bda_wr8(BDA_CHAR_HEIGHT, m->char_h);
	bda_wr8(BDA_VIDEO_CTL, 0x60 | noclear | (bda_rd8(BDA_VIDEO_CTL) & 1));
	bda_wr8(BDA_VIDEO_SWITCHES, 0x09);
	u8 msr = m->kind == MK_TEXT ? (m->cols == 80 ? 0x29 : 0x28) : m->width == 640 ? 0x1E : 0x0A;
	bda_wr8(BDA_VIDEO_MSR, mode == 7 ? 0x29 : msr);
	bda_wr8(BDA_VIDEO_PAL, mode == 6 ? 0x3F : 0x30);
	u16 eq = bda_rd16(BDA_EQUIPMENT) & ~0x30;
	bda_wr16(BDA_EQUIPMENT, eq | (mode == 7 ? 0x30 : 0x20));
	if (m->kind == MK_TEXT) {
		load_font(get_cs(), OFF(font8x16), 256, 0, 0, 16);
		u16 type = mode == 7 ? 0x0B0C : 0x0607;
		bda_wr16(BDA_CURSOR_TYPE, type);
		set_cursor_shape(type);
	}
	set_vector(0x43, get_cs(), font_for(m->char_h));
	set_vector(0x1F, get_cs(), OFF(font8x8) + 128 * 8);
	update_hw_cursor();
	screen_enable();
	return 1;
}

int vga_set_mode(u8 req) { return set_mode(req); }

/* --- text and pixels ------------------------------------------------------ */

static u16 page_base(u8 page)
{
	return (u16)(page & 7) * bda_rd16(BDA_VIDEO_PAGESIZE);
}

/* The glyph of character c (its first row's far address) for graphics modes. */
static void glyph(u8 c, u16 *seg, u16 *off)
{
	u32 v = rd32(0, 0x43 * 4);
	u8 h = bda_rd8(BDA_CHAR_HEIGHT);
	*seg = FP_SEG(v);
	*off = FP_OFF(v) + c * h;
}

static void planar_begin(u8 colour)
{
	seq_write(2, 0x0F);
	gc_write(0, colour & 0x0F);
	gc_write(1, 0x0F);
	gc_write(3, colour & 0x80 ? 0x18 : 0x00);
	gc_write(5, 0x00);
}

static void planar_end(void)
{
	gc_write(0, 0x00);
	gc_write(1, 0x00);
	gc_write(3, 0x00);
	gc_write(8, 0xFF);
}

/* Writes through the latches: bits of mask get the set/reset colour. */
static void planar_put(u16 off, u8 mask)
{
	gc_write(8, mask);
	volatile u8 latch unused = rd8(0xA000, off);
	wr8(0xA000, off, 0xFF);
}

static u16 cga_offset(u16 x_bytes, u16 y) { return (y & 1) * 0x2000 + (y >> 1) * 80 + x_bytes; }

/* Two bits per pixel, eight pixels: the 16-bit pattern of colour c where g has bits. */
static u16 cga4_expand(u8 g, u8 c)
{
	u16 v = 0;
	for (u8 b = 0; b < 8; b++)
		if (g & (0x80 >> b))
			v |= (u16)(c & 3) << (14 - 2 * b);
	return v;
}

static void gfx_char(ROMPTR struct vga_mode *m, u8 x, u8 y, u8 c, u8 colour)
{
	u16 gseg, goff;
	glyph(c, &gseg, &goff);
	u8 h = bda_rd8(BDA_CHAR_HEIGHT);
	u16 base = bda_rd16(BDA_VIDEO_PAGESTART);
	switch (m->kind) {
	case MK_PLANAR: {
		u16 bpr = m->width / 8;
		for (u8 i = 0; i < h; i++) {
			u8 g = rd8(gseg, goff + i);
			u16 off = base + ((u16)y * h + i) * bpr + x;
			if (colour & 0x80) {
				planar_begin(colour);
				planar_put(off, g);
			} else {
				planar_begin(colour);
				planar_put(off, g);
				planar_begin(0);
				planar_put(off, ~g);
			}
		}
		planar_end();
		break;
	}
	case MK_CGA:
		for (u8 i = 0; i < h; i++) {
			u8 g = rd8(gseg, goff + i);
			u16 yy = (u16)y * h + i;
			if (m->bpp == 2) {
				u16 v = cga4_expand(g, colour);
				u16 off = cga_offset(x * 2, yy);
				u8 hi = v >> 8, lo = v;
				if (colour & 0x80) {
					hi ^= rd8(0xB800, off);
					lo ^= rd8(0xB800, off + 1);
				}
				wr8(0xB800, off, hi);
				wr8(0xB800, off + 1, lo);
			} else {
				u16 off = cga_offset(x, yy);
				u8 v = colour & 1 ? g : 0;
				if (colour & 0x80)
					v ^= rd8(0xB800, off);
				wr8(0xB800, off, v);
			}
		}
		break;
	case MK_LINEAR:
		for (u8 i = 0; i < h; i++) {
			u8 g = rd8(gseg, goff + i);
			u16 off = ((u16)y * h + i) * 320 + x * 8;
			for (u8 b = 0; b < 8; b++) {
				u8 on = g & (0x80 >> b);
				if (colour & 0x80) {
					if (on)
						wr8(0xA000, off + b, rd8(0xA000, off + b) ^ (colour & 0x7F));
				} else {
					wr8(0xA000, off + b, on ? colour : 0);
				}
			}
		}
		break;
	}
}

static void put_pixel(ROMPTR struct vga_mode *m, u16 x, u16 y, u8 colour)
{
	u16 base = bda_rd16(BDA_VIDEO_PAGESTART);
	switch (m->kind) {
	case MK_PLANAR:
		planar_begin(colour);
		planar_put(base + y * (m->width / 8) + x / 8, 0x80 >> (x & 7));
		planar_end();
		break;
	case MK_CGA: {
		u16 off;
		u8 mask, v;
		if (m->bpp == 2) {
			off = cga_offset(x / 4, y);
			u8 sh = (3 - (x & 3)) * 2;
			mask = 3 << sh;
			v = (colour & 3) << sh;
		} else {
			off = cga_offset(x / 8, y);
			mask = 0x80 >> (x & 7);
			v = colour & 1 ? mask : 0;
		}
		u8 old = rd8(0xB800, off);
		wr8(0xB800, off, colour & 0x80 ? old ^ v : (old & ~mask) | v);
		break;
	}
	case MK_LINEAR: {
		u16 off = y * 320 + x;
		wr8(0xA000, off, colour & 0x80 ? rd8(0xA000, off) ^ (colour & 0x7F) : colour);
		break;
	}
	}
}

static u8 get_pixel(ROMPTR struct vga_mode *m, u16 x, u16 y)
{
	u16 base = bda_rd16(BDA_VIDEO_PAGESTART);
	switch (m->kind) {
	case MK_PLANAR: {
		u8 v = 0, g4 = gc_read(4);
		u16 off = base + y * (m->width / 8) + x / 8;
		for (u8 p = 0; p < 4; p++) {
			gc_write(4, p);
			if (rd8(0xA000, off) & (0x80 >> (x & 7)))
				v |= 1 << p;
		}
		gc_write(4, g4);
		return v;
	}
	case MK_CGA:
		if (m->bpp == 2)
			return (rd8(0xB800, cga_offset(x / 4, y)) >> ((3 - (x & 3)) * 2)) & 3;
		return (rd8(0xB800, cga_offset(x / 8, y)) >> (7 - (x & 7))) & 1;
	case MK_LINEAR:
		return rd8(0xA000, y * 320 + x);
	}
	return 0;
}

/* Writes character c (and attribute a when with_attr) at x, y of page. */
static void write_char(u8 page, u8 x, u8 y, u8 c, u8 a, int with_attr)
{
	ROMPTR struct vga_mode *m = cur_mode();
	if (!m)
		return;
	if (m->kind == MK_TEXT) {
		u16 off = page_base(page) + ((u16)y * cols() + x) * 2;
		wr8(m->seg, off, c);
		if (with_attr)
			wr8(m->seg, off + 1, a);
	} else {
		gfx_char(m, x, y, c, a);
	}
}

/* --- scrolling ------------------------------------------------------------ */

/* Copies character row src to dst between columns l and r (inclusive). */
static void copy_row(ROMPTR struct vga_mode *m, u8 page, u8 dst, u8 src, u8 l, u8 r)
{
	u16 n = r - l + 1;
	u8 h = bda_rd8(BDA_CHAR_HEIGHT);
	switch (m->kind) {
	case MK_TEXT: {
		u16 base = page_base(page);
		far_memcpy(m->seg, base + ((u16)dst * cols() + l) * 2, m->seg,
			   base + ((u16)src * cols() + l) * 2, n * 2);
		break;
	}
	case MK_PLANAR: {
		u16 bpr = m->width / 8, base = bda_rd16(BDA_VIDEO_PAGESTART);
		seq_write(2, 0x0F);
		gc_write(5, 0x01);
		for (u8 i = 0; i < h; i++)
			far_memcpy(0xA000, base + ((u16)dst * h + i) * bpr + l, 0xA000,
				   base + ((u16)src * h + i) * bpr + l, n);
		gc_write(5, 0x00);
		break;
	}
	case MK_CGA: {
		u8 w = m->bpp == 2 ? 2 : 1;
		for (u8 i = 0; i < h; i++)
			far_memcpy(0xB800, cga_offset(l * w, (u16)dst * h + i), 0xB800,
				   cga_offset(l * w, (u16)src * h + i), n * w);
		break;
	}
	case MK_LINEAR:
		for (u8 i = 0; i < h; i++)
			far_memcpy(0xA000, ((u16)dst * h + i) * 320 + l * 8, 0xA000,
				   ((u16)src * h + i) * 320 + l * 8, n * 8);
		break;
	}
}

/* Fills character row y between columns l and r with blanks of attribute
 * (text) or colour (graphics) a. */
static void clear_row(ROMPTR struct vga_mode *m, u8 page, u8 y, u8 l, u8 r, u8 a)
{
	u16 n = r - l + 1;
	u8 h = bda_rd8(BDA_CHAR_HEIGHT);
	switch (m->kind) {
	case MK_TEXT:
		far_memset16(m->seg, page_base(page) + ((u16)y * cols() + l) * 2, (u16)a << 8 | ' ', n);
		break;
	case MK_PLANAR: {
		u16 bpr = m->width / 8, base = bda_rd16(BDA_VIDEO_PAGESTART);
		planar_begin(a & 0x0F);
		gc_write(8, 0xFF);
		for (u8 i = 0; i < h; i++)
			far_memset(0xA000, base + ((u16)y * h + i) * bpr + l, 0xFF, n);
		planar_end();
		break;
	}
	case MK_CGA: {
		u8 w = m->bpp == 2 ? 2 : 1;
		u8 v = m->bpp == 2 ? (a & 3) * 0x55 : (a & 1 ? 0xFF : 0);
		for (u8 i = 0; i < h; i++)
			far_memset(0xB800, cga_offset(l * w, (u16)y * h + i), v, n * w);
		break;
	}
	case MK_LINEAR:
		for (u8 i = 0; i < h; i++)
			far_memset(0xA000, ((u16)y * h + i) * 320 + l * 8, a, n * 8);
		break;
	}
}

static void scroll(u8 lines, u8 a, u8 top, u8 l, u8 bottom, u8 r, int up)
{
	ROMPTR struct vga_mode *m = cur_mode();
	if (!m)
		return;
	u8 page = bda_rd8(BDA_VIDEO_PAGE);
	if (r >= cols())
		r = cols() - 1;
	if (bottom >= rows())
		bottom = rows() - 1;
	if (l > r || top > bottom)
		return;
	u8 height = bottom - top + 1;
	if (!lines || lines > height)
		lines = height;
	if (up) {
		for (u8 y = top; y + lines <= bottom; y++)
			copy_row(m, page, y, y + lines, l, r);
		for (u8 i = 0; i < lines; i++)
			clear_row(m, page, bottom - i, l, r, a);
	} else {
		for (s16 y = bottom; y - lines >= top; y--)
			copy_row(m, page, y, y - lines, l, r);
		for (u8 y = top; y < top + lines; y++)
			clear_row(m, page, y, l, r, a);
	}
}

/* --- teletype ------------------------------------------------------------- */

/* Writes c at the cursor of page as teletype output does: control
 * characters move the cursor, the screen scrolls at its end. */
static void tty_out(u8 page, u8 c, u8 a, int with_attr)
{
	u8 x, y;
	get_cursor(page, &x, &y);
	ROMPTR struct vga_mode *m = cur_mode();
	switch (c) {
	case 7:
		break;
	case 8:
		if (x)
			x--;
		break;
	case 10:
		y++;
		break;
	case 13:
		x = 0;
		break;
	default:
		write_char(page, x, y, c, a, with_attr || (m && m->kind != MK_TEXT));
		x++;
		break;
	}
	if (x >= cols()) {
		x = 0;
		y++;
	}
	if (y >= rows()) {
		u8 fill = 0;
		if (m && m->kind == MK_TEXT)
			fill = rd8(m->seg, page_base(page) + ((u16)(rows() - 1) * cols() + x) * 2 + 1);
		scroll(1, fill, 0, 0, rows() - 1, cols() - 1, 1);
		y = rows() - 1;
	}
	set_cursor(page, x, y);
}

static void teletype(u8 c, u8 colour) { tty_out(bda_rd8(BDA_VIDEO_PAGE), c, colour, 0); }

/* --- INT 10h ---------------------------------------------------------------- */

static void palette_call(struct vregs *r)
{
	switch (r->al) {
	case 0x00:
		attr_write(r->bl & 0x1F, r->bh);
		break;
	case 0x01:
		attr_write(0x11, r->bh);
		break;
	case 0x02:
		for (u8 i = 0; i < 16; i++)
			attr_write(i, rd8(r->es, r->dx + i));
		attr_write(0x11, rd8(r->es, r->dx + 16));
		break;
	case 0x03: {
		u8 v = attr_read(0x10);
		attr_write(0x10, r->bl ? v | 0x08 : v & ~0x08);
		break;
	}
	case 0x07:
		r->bh = attr_read(r->bl & 0x1F);
		break;
	case 0x08:
		r->bh = attr_read(0x11);
		break;
	case 0x09:
		for (u8 i = 0; i < 16; i++)
			wr8(r->es, r->dx + i, attr_read(i));
		wr8(r->es, r->dx + 16, attr_read(0x11));
		break;
	case 0x10:
		outb(r->bl, DAC_WRITE_INDEX);
		outb(r->dh, DAC_DATA);
		outb(r->ch, DAC_DATA);
		outb(r->cl, DAC_DATA);
		break;
	case 0x12:
		outb(r->bl, DAC_WRITE_INDEX);
		for (u16 i = 0; i < r->cx * 3; i++)
			outb(rd8(r->es, r->dx + i), DAC_DATA);
		break;
	case 0x13:
		if (r->bl == 0) {
			u8 v = attr_read(0x10);
			attr_write(0x10, r->bh ? v | 0x80 : v & ~0x80);
		} else {
			attr_write(0x14, r->bh);
		}
		break;
	case 0x15:
		outb(r->bl, DAC_READ_INDEX);
		r->dh = inb(DAC_DATA);
		r->ch = inb(DAC_DATA);
		r->cl = inb(DAC_DATA);
		break;
	case 0x17:
		outb(r->bl, DAC_READ_INDEX);
		for (u16 i = 0; i < r->cx * 3; i++)
			wr8(r->es, r->dx + i, inb(DAC_DATA));
		break;
	case 0x18:
		outb(r->bl, DAC_MASK);
		break;
	case 0x19:
		r->bl = inb(DAC_MASK);
		break;
	case 0x1A:
		r->bl = (attr_read(0x10) >> 7) & 1;
		r->bh = attr_read(0x14) & 0x0F;
		break;
	case 0x1B:
		for (u16 i = 0; i < r->cx; i++) {
			u8 idx = r->bl + i;
			outb(idx, DAC_READ_INDEX);
			u8 red = inb(DAC_DATA), g = inb(DAC_DATA), b = inb(DAC_DATA);
			u8 y = (77 * red + 151 * g + 28 * b + 0x80) >> 8;
			outb(idx, DAC_WRITE_INDEX);
			outb(y, DAC_DATA);
			outb(y, DAC_DATA);
			outb(y, DAC_DATA);
		}
		break;
	}
}

static void font_call(struct vregs *r)
{
	u16 cs = get_cs();
	switch (r->al) {
	case 0x00:
	case 0x10:
		load_font(r->es, r->bp, r->cx, r->dx, r->bl, r->bh);
		if (r->al == 0x10)
			text_height(r->bh);
		break;
	case 0x01:
	case 0x11:
		load_font(cs, OFF(font8x14), 256, 0, r->bl, 14);
		if (r->al == 0x11)
			text_height(14);
		break;
	case 0x02:
	case 0x12:
		load_font(cs, OFF(font8x8), 256, 0, r->bl, 8);
		if (r->al == 0x12)
			text_height(8);
		break;
	case 0x04:
	case 0x14:
		load_font(cs, OFF(font8x16), 256, 0, r->bl, 16);
		if (r->al == 0x14)
			text_height(16);
		break;
	case 0x03:
		seq_write(3, r->bl);
		break;
	case 0x20:
		set_vector(0x1F, r->es, r->bp);
		break;
	case 0x21:
	case 0x22:
	case 0x23:
	case 0x24: {
		u8 h = r->al == 0x21 ? r->cx : r->al == 0x22 ? 14 : r->al == 0x23 ? 8 : 16;
		u16 off = r->al == 0x21 ? r->bp : font_for(h);
		set_vector(0x43, r->al == 0x21 ? r->es : cs, off);
		u8 rws = r->bl == 0 ? r->dl : r->bl == 1 ? 14 : r->bl == 2 ? 25 : 43;
		bda_wr8(BDA_VIDEO_ROWS, rws - 1);
		bda_wr8(BDA_CHAR_HEIGHT, h);
		break;
	}
	case 0x30: {
		u16 seg = cs, off;
		switch (r->bh) {
		case 0: {
			u32 v = rd32(0, 0x1F * 4);
			seg = FP_SEG(v);
			off = FP_OFF(v);
			break;
		}
		case 1: {
			u32 v = rd32(0, 0x43 * 4);
			seg = FP_SEG(v);
			off = FP_OFF(v);
			break;
		}
		case 2:
		case 5:
			off = OFF(font8x14);
			break;
		case 3:
			off = OFF(font8x8);
			break;
		case 4:
			off = OFF(font8x8) + 128 * 8;
			break;
		default:
			off = OFF(font8x16);
			break;
		}
		r->es = seg;
		r->bp = off;
		r->cx = bda_rd8(BDA_CHAR_HEIGHT);
		r->dl = bda_rd8(BDA_VIDEO_ROWS);
		break;
	}
	}
}

static void alt_call(struct vregs *r)
{
	switch (r->bl) {
	case 0x10:
		r->bh = crtc_port() == CRTC_MONO;
		r->bl = 0x03;
		r->ch = 0;
		r->cl = bda_rd8(BDA_VIDEO_SWITCHES) & 0x0F;
		break;
	case 0x30: {
		u8 ctl = bda_rd8(BDA_MODESET_CTL) & ~0x90;
		if (r->al == 0)
			ctl |= 0x80;
		else if (r->al == 2)
			ctl |= 0x10;
		bda_wr8(BDA_MODESET_CTL, ctl);
		r->al = 0x12;
		break;
	}
	case 0x31:
		bda_wr8(BDA_MODESET_CTL, (bda_rd8(BDA_MODESET_CTL) & ~0x08) | (r->al ? 0x08 : 0));
		r->al = 0x12;
		break;
	case 0x32:
		outb(r->al ? inb(MISC_READ) & ~0x02 : inb(MISC_READ) | 0x02, MISC_WRITE);
		r->al = 0x12;
		break;
	case 0x33:
		bda_wr8(BDA_MODESET_CTL, (bda_rd8(BDA_MODESET_CTL) & ~0x02) | (r->al ? 0 : 0x02));
		r->al = 0x12;
		break;
	case 0x34:
		bda_wr8(BDA_VIDEO_CTL, (bda_rd8(BDA_VIDEO_CTL) & ~0x01) | (r->al & 1));
		r->al = 0x12;
		break;
	case 0x36:
		if (r->al)
			screen_disable();
		else
			screen_enable();
		r->al = 0x12;
		break;
	}
}

static void write_string(struct vregs *r)
{
	u8 page = r->bh, ox, oy;
	get_cursor(page, &ox, &oy);
	set_cursor(page, r->dl, r->dh);
	u16 off = r->bp;
	for (u16 i = 0; i < r->cx; i++) {
		u8 c = rd8(r->es, off++);
		u8 a = r->bl;
		if (r->al & 2)
			a = rd8(r->es, off++);
		tty_out(page, c, a, 1);
	}
	if (!(r->al & 1))
		set_cursor(page, ox, oy);
}

void vga_int10(struct vregs *r)
{
	ROMPTR struct vga_mode *m;
	switch (r->ah) {
	case 0x00:
		if (set_mode(r->al)) {
			u8 mode = r->al & 0x7F;
			r->al = mode > 7 ? 0x20 : mode == 6 ? 0x3F : 0x30;
		}
		break;
	case 0x01:
		bda_wr16(BDA_CURSOR_TYPE, r->cx);
		set_cursor_shape(r->cx);
		break;
	case 0x02:
		set_cursor(r->bh, r->dl, r->dh);
		break;
	case 0x03: {
		u8 x, y;
		get_cursor(r->bh, &x, &y);
		r->dl = x;
		r->dh = y;
		r->cx = bda_rd16(BDA_CURSOR_TYPE);
		break;
	}
	case 0x05: {
		m = cur_mode();
		if (!m)
			break;
		u8 page = r->al & 7;
		u16 start = page_base(page);
		bda_wr8(BDA_VIDEO_PAGE, page);
		bda_wr16(BDA_VIDEO_PAGESTART, start);
		u16 a = m->kind == MK_TEXT ? start / 2 : start;
		crtc_write(0x0C, a >> 8);
		crtc_write(0x0D, a);
		update_hw_cursor();
		break;
	}
	case 0x06:
	case 0x07:
		scroll(r->al, r->bh, r->ch, r->cl, r->dh, r->dl, r->ah == 0x06);
		break;
	case 0x08: {
		m = cur_mode();
		u8 x, y;
		get_cursor(r->bh, &x, &y);
		if (m && m->kind == MK_TEXT)
			r->ax = rd16(m->seg, page_base(r->bh) + ((u16)y * cols() + x) * 2);
		else
			r->ax = 0;
		break;
	}
	case 0x09:
	case 0x0A: {
		u8 x, y;
		get_cursor(r->bh, &x, &y);
		for (u16 i = 0; i < r->cx; i++) {
			u8 xx = (x + i) % cols();
			u16 yy = y + (x + i) / cols();
			if (yy >= rows())
				break;
			write_char(r->bh, xx, yy, r->al, r->bl,
				   r->ah == 0x09 || (cur_mode() && cur_mode()->kind != MK_TEXT));
		}
		break;
	}
	case 0x0B:
		if (r->bh == 0) {
			attr_write(0x11, r->bl & 0x1F);
			m = cur_mode();
			if (m && m->kind != MK_TEXT)
				attr_write(0, (r->bl & 0x07) | ((r->bl & 0x10) ? 0x10 : 0));
		} else {
			u8 p = r->bl & 1;
			for (u8 i = 1; i < 4; i++)
				attr_write(i, (i * 2 + p - 1) | 0x10);
		}
		break;
	case 0x0C:
		m = cur_mode();
		if (m && m->kind != MK_TEXT && r->cx < m->width && r->dx < m->height)
			put_pixel(m, r->cx, r->dx, r->al);
		break;
	case 0x0D:
		m = cur_mode();
		r->al = (m && m->kind != MK_TEXT && r->cx < m->width && r->dx < m->height)
				? get_pixel(m, r->cx, r->dx)
				: 0;
		break;
	case 0x0E:
		teletype(r->al, r->bl);
		break;
	case 0x0F:
		r->al = bda_rd8(BDA_VIDEO_MODE) | (bda_rd8(BDA_VIDEO_CTL) & 0x80);
		r->ah = cols();
		r->bh = bda_rd8(BDA_VIDEO_PAGE);
		break;
	case 0x10:
		palette_call(r);
		break;
	case 0x11:
		font_call(r);
		break;
	case 0x12:
		alt_call(r);
		break;
	case 0x13:
		write_string(r);
		break;
	case 0x1A:
		if (r->al == 0x00) {
			r->bx = bda_rd8(BDA_DCC_INDEX);
			r->al = 0x1A;
		} else if (r->al == 0x01) {
			bda_wr8(BDA_DCC_INDEX, r->bl);
			r->al = 0x1A;
		}
		break;
	case 0x4F:
		vbe_call(r);
		break;
	}
}

/* The ROM's initialisation: INT 10h and the BDA's video fields, then
 * mode 3. */
void vga_post(void)
{
	u16 cs = get_cs();
	set_vector(0x10, cs, OFF(int10_entry));
	set_vector(0x6D, cs, OFF(int10_entry));
	bda_wr8(BDA_VIDEO_CTL, 0x60);
	bda_wr8(BDA_VIDEO_SWITCHES, 0x09);
	bda_wr8(BDA_MODESET_CTL, 0x51);
	bda_wr8(BDA_DCC_INDEX, 0x08);
	bda_wr32(BDA_VIDEO_SAVEPTR, 0);
	bda_wr16(BDA_VBE_MODE, 0);
	set_mode(0x03);
}
