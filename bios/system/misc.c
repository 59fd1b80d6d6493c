/* The smaller services: INT 05h, 11h, 12h, 14h (serial), 15h (system),
 * 17h (printer), 1Ah (time, PCI BIOS), IRQ8 (INT 70h) and IRQ12 (INT
 * 74h), and INT 10h before a video BIOS takes it. */
#include "bios.h"

void handle_05(struct bregs *r) { (void)r; }

void handle_11(struct bregs *r) { r->ax = bda_rd16(BDA_EQUIPMENT); }

void handle_12(struct bregs *r) { r->ax = bda_rd16(BDA_MEM_KB); }

/* INT 10h with no video BIOS: teletype output goes to the debug port, so
 * a machine without a display still shows what boot loaders print. */
void handle_10_none(struct bregs *r)
{
	if (r->ah == 0x0E)
		outb(r->al, DEBUG_PORT);
	else if (r->ah == 0x0F)
		r->ax = 0x5003;
}

/* --- serial and parallel ports ------------------------------------------ */

static const u16 com_ports[4] = {0x3F8, 0x2F8, 0x3E8, 0x2E8};
static const u16 lpt_ports[3] = {0x378, 0x278, 0x3BC};

void serial_lpt_setup(void)
{
	int ncom = 0, nlpt = 0;
	for (int i = 0; i < 4; i++) {
		u16 p = com_ports[i];
		outb(0x5A, p + 7);
		if (inb(p + 7) != 0x5A)
			continue;
		outb(0xA5, p + 7);
		if (inb(p + 7) != 0xA5)
			continue;
		outb(0x00, p + 1); /* interrupts off */
		bda_wr16(BDA_COM + 2 * ncom, p);
		bda_wr8(BDA_COM_TIMEOUT + ncom, 1);
		ncom++;
	}
	for (int i = 0; i < 3; i++) {
		u16 p = lpt_ports[i];
		outb(0x55, p);
		if (inb(p) != 0x55)
			continue;
		outb(0xAA, p);
		if (inb(p) != 0xAA)
			continue;
		bda_wr16(BDA_LPT + 2 * nlpt, p);
		bda_wr8(BDA_LPT_TIMEOUT + nlpt, 20);
		nlpt++;
	}
	u16 eq = bda_rd16(BDA_EQUIPMENT) & ~0xCE00;
	bda_wr16(BDA_EQUIPMENT, eq | ncom << 9 | nlpt << 14);
	dprintf("serial ports: %d, parallel ports: %d\n", ncom, nlpt);
}

/* Waits (halted between timer ticks) for (inb(port) & mask) to be set;
 * gives up after timeout ticks. */
static int wait_port(u16 port, u8 mask, u32 timeout)
{
	u32 start = ticks();
	for (int spin = 0;; spin++) {
		if (inb(port) & mask)
			return 1;
		if (spin > 16) {
			if (ticks_passed(start, timeout))
				return 0;
			wait_irq();
		}
	}
}

void handle_14(struct bregs *r)
{
	if (r->dx >= 4 || !bda_rd16(BDA_COM + 2 * r->dx)) {
		set_cf(r);
		return;
	}
	u16 p = bda_rd16(BDA_COM + 2 * r->dx);
	u32 timeout = bda_rd8(BDA_COM_TIMEOUT + r->dx) * 18 + 1;
	static const u16 divisor[8] = {1047, 768, 384, 192, 96, 48, 24, 12};
	clear_cf(r);
	switch (r->ah) {
	case 0x00: {
		u16 d = divisor[r->al >> 5];
		outb(0x80, p + 3);
		outb(d, p);
		outb(d >> 8, p + 1);
		outb(r->al & 0x1F, p + 3);
		r->ah = inb(p + 5);
		r->al = inb(p + 6);
		return;
	}
	case 0x01:
		if (!wait_port(p + 5, 0x20, timeout)) {
			r->ah = inb(p + 5) | 0x80;
			return;
		}
		outb(r->al, p);
		r->ah = inb(p + 5);
		return;
	case 0x02:
		if (!wait_port(p + 5, 0x01, timeout)) {
			r->ah = inb(p + 5) | 0x80;
			return;
		}
		r->al = inb(p);
		r->ah = inb(p + 5) & 0x1E;
		return;
	case 0x03:
		r->ah = inb(p + 5);
		r->al = inb(p + 6);
		return;
	default:
		set_cf(r);
	}
}

void handle_17(struct bregs *r)
{
	if (r->dx >= 3 || !bda_rd16(BDA_LPT + 2 * r->dx)) {
		r->ah = 0x00;
		return;
	}
	u16 p = bda_rd16(BDA_LPT + 2 * r->dx);
	switch (r->ah) {
	case 0x00:
		if (!wait_port(p + 1, 0x80, bda_rd8(BDA_LPT_TIMEOUT + r->dx) + 1)) {
			r->ah = ((inb(p + 1) & 0xF8) ^ 0x48) | 0x01;
			return;
		}
		outb(r->al, p);
		outb(0x0D, p + 2);
		outb(0x0C, p + 2);
		break;
	case 0x01:
		outb(0x08, p + 2);
		outb(0x0C, p + 2);
		break;
	}
	r->ah = (inb(p + 1) & 0xF8) ^ 0x48;
}

/* --- INT 15h ---------------------------------------------------------- */

static int a20_enabled(void)
{
	u8 lo = rd8(0x0000, 0x0500), hi = rd8(0xFFFF, 0x0510);
	wr8(0x0000, 0x0500, ~hi);
	int on = rd8(0xFFFF, 0x0510) == hi;
	wr8(0x0000, 0x0500, lo);
	return on;
}

static void set_a20(int on)
{
	u8 v = inb(0x92);
	outb(on ? (v | 0x02) & ~0x01 : v & ~0x03, 0x92);
	/* The 8042's gate too: the address line is masked only when both are off. */
	for (int i = 0; i < 100000 && (inb(0x64) & 2); i++)
		;
	outb(0xD1, 0x64);
	for (int i = 0; i < 100000 && (inb(0x64) & 2); i++)
		;
	outb(on ? 0xDF : 0xDD, 0x60);
	for (int i = 0; i < 100000 && (inb(0x64) & 2); i++)
		;
}

static void rtc_periodic(int on)
{
	u8 b = cmos_read(0x0B);
	cmos_write(0x0B, on ? b | 0x40 : b & ~0x40);
	if (on)
		pic_unmask(8);
}

/* Starts an RTC-timed wait of us microseconds that sets bit 7 of the byte
 * at seg:off when it ends (INT 15h 83h and 86h). */
static int start_wait(u32 us, u16 seg, u16 off)
{
	if (bda_rd8(BDA_WAIT_ACTIVE) & 1)
		return 0;
	bda_wr32(BDA_WAIT_COUNT, us);
	bda_wr16(BDA_WAIT_PTR, off);
	bda_wr16(BDA_WAIT_PTR + 2, seg);
	bda_wr8(BDA_WAIT_ACTIVE, 1);
	rtc_periodic(1);
	return 1;
}

/* IRQ8: the periodic interrupt counts a running wait down (976 us a
 * tick); the alarm calls INT 4Ah. */
void handle_70(struct bregs *r)
{
	(void)r;
	u8 c = cmos_read(0x0C);
	if ((c & 0x40) && (bda_rd8(BDA_WAIT_ACTIVE) & 1)) {
		s32 left = (s32)bda_rd32(BDA_WAIT_COUNT) - 976;
		bda_wr32(BDA_WAIT_COUNT, left);
		if (left <= 0) {
			u16 seg = bda_rd16(BDA_WAIT_PTR + 2), off = bda_rd16(BDA_WAIT_PTR);
			bda_wr8(BDA_WAIT_ACTIVE, bda_rd8(BDA_WAIT_ACTIVE) & ~1);
			wr8(seg, off, rd8(seg, off) | 0x80);
			rtc_periodic(0);
		}
	}
	if (c & 0x20) {
		struct bregs a;
		memset(&a, 0, sizeof(a));
		outb(0x20, 0xA0);
		outb(0x20, 0x20);
		call_int(0x4A, &a);
		return;
	}
	outb(0x20, 0xA0);
	outb(0x20, 0x20);
}

/* IRQ12: no mouse support; drop the byte. */
void handle_74(struct bregs *r)
{
	(void)r;
	if ((inb(0x64) & 0x21) == 0x21)
		inb(0x60);
	outb(0x20, 0xA0);
	outb(0x20, 0x20);
}

/* INT 15h 87h: copies CX words between the 24/32-bit bases of the
 * descriptors at ES:SI+10h (source) and +18h (destination). */
static void block_move(struct bregs *r)
{
	u32 count = (u32)r->cx * 2;
	if (r->cx > 0x8000) {
		fail(r, 0x01);
		return;
	}
	u16 gs = r->es, gdt = r->si;
	u32 src = rd16(gs, gdt + 0x12) | (u32)rd8(gs, gdt + 0x14) << 16 | (u32)rd8(gs, gdt + 0x17) << 24;
	u32 dst = rd16(gs, gdt + 0x1A) | (u32)rd8(gs, gdt + 0x1C) << 16 | (u32)rd8(gs, gdt + 0x1F) << 24;
	int a20 = a20_enabled();
	if (!a20)
		set_a20(1);
	flat_memcpy(dst, src, count);
	if (!a20)
		set_a20(0);
	ok(r);
	r->flags |= F_ZF;
}

void handle_15(struct bregs *r)
{
	switch (r->ah) {
	case 0x24:
		switch (r->al) {
		case 0x00:
		case 0x01:
			set_a20(r->al);
			ok(r);
			return;
		case 0x02:
			r->al = a20_enabled();
			r->cx = 0;
			ok(r);
			return;
		case 0x03:
			r->bx = 3;
			ok(r);
			return;
		}
		fail(r, 0x86);
		return;
	case 0x4F:
		set_cf(r);
		return;
	case 0x83:
		if (r->al == 0x01) {
			bda_wr8(BDA_WAIT_ACTIVE, 0);
			rtc_periodic(0);
			ok(r);
			return;
		}
		if (!start_wait((u32)r->cx << 16 | r->dx, r->es, r->bx)) {
			fail(r, 0x80);
			return;
		}
		ok(r);
		return;
	case 0x85:
	case 0x90:
	case 0x91:
		ok(r);
		return;
	case 0x86: {
		if (!start_wait((u32)r->cx << 16 | r->dx, BDA_SEG, BDA_WAIT_ACTIVE)) {
			fail(r, 0x83);
			return;
		}
		while (!(bda_rd8(BDA_WAIT_ACTIVE) & 0x80))
			wait_irq();
		bda_wr8(BDA_WAIT_ACTIVE, 0);
		ok(r);
		return;
	}
	case 0x87:
		block_move(r);
		return;
	case 0x88: {
		u32 kb = (ram_below_4g - 0x100000) >> 10;
		r->ax = kb > 0xFC00 ? 0xFC00 : kb;
		clear_cf(r);
		return;
	}
	case 0xC0:
		r->es = BIOS_SEG;
		r->bx = (u16)(u32)config_table;
		ok(r);
		return;
	case 0xC1:
		r->es = bda_rd16(BDA_EBDA_SEG);
		clear_cf(r);
		return;
	case 0xE8:
		if (r->al == 0x01) {
			u32 top = ram_below_4g;
			u32 low = top > 0x1000000 ? 0x3C00 : (top - 0x100000) >> 10;
			u32 high = top > 0x1000000 ? (top - 0x1000000) >> 16 : 0;
			r->ax = r->cx = low;
			r->bx = r->dx = high;
			clear_cf(r);
			return;
		}
		if (r->al == 0x20) {
			handle_15_e820(r);
			return;
		}
		fail(r, 0x86);
		return;
	default:
		fail(r, 0x86);
		return;
	}
}

/* --- INT 1Ah ---------------------------------------------------------- */

/* Waits until the RTC is not about to update; false if it never settles. */
static int rtc_ready(void)
{
	for (int i = 0; i < 100000; i++)
		if (!(cmos_read(0x0A) & 0x80))
			return 1;
	return 0;
}

void handle_1a(struct bregs *r)
{
	switch (r->ah) {
	case 0x00: {
		u32 t = bda_rd32(BDA_TICKS);
		r->cx = t >> 16;
		r->dx = t;
		r->al = bda_rd8(BDA_MIDNIGHT);
		bda_wr8(BDA_MIDNIGHT, 0);
		clear_cf(r);
		return;
	}
	case 0x01:
		bda_wr32(BDA_TICKS, (u32)r->cx << 16 | r->dx);
		bda_wr8(BDA_MIDNIGHT, 0);
		clear_cf(r);
		return;
	case 0x02:
		if (!rtc_ready()) {
			set_cf(r);
			return;
		}
		r->ch = cmos_read(0x04);
		r->cl = cmos_read(0x02);
		r->dh = cmos_read(0x00);
		r->dl = cmos_read(0x0B) & 1;
		clear_cf(r);
		return;
	case 0x03: {
		rtc_ready();
		u8 b = cmos_read(0x0B);
		cmos_write(0x0B, b | 0x80);
		cmos_write(0x04, r->ch);
		cmos_write(0x02, r->cl);
		cmos_write(0x00, r->dh);
		cmos_write(0x0B, (b & 0x7E) | 0x02 | (r->dl & 1));
		clear_cf(r);
		return;
	}
	case 0x04:
		if (!rtc_ready()) {
			set_cf(r);
			return;
		}
		r->ch = cmos_read(0x32);
		r->cl = cmos_read(0x09);
		r->dh = cmos_read(0x08);
		r->dl = cmos_read(0x07);
		clear_cf(r);
		return;
	case 0x05: {
		rtc_ready();
		u8 b = cmos_read(0x0B);
		cmos_write(0x0B, b | 0x80);
		cmos_write(0x32, r->ch);
		cmos_write(0x09, r->cl);
		cmos_write(0x08, r->dh);
		cmos_write(0x07, r->dl);
		cmos_write(0x0B, b & 0x7F);
		clear_cf(r);
		return;
	}
	case 0x06: {
		u8 b = cmos_read(0x0B);
		if (b & 0x20) {
			set_cf(r);
			return;
		}
		cmos_write(0x05, r->ch);
		cmos_write(0x03, r->cl);
		cmos_write(0x01, r->dh);
		cmos_read(0x0C);
		cmos_write(0x0B, (b & 0x7F) | 0x20);
		pic_unmask(8);
		clear_cf(r);
		return;
	}
	case 0x07:
		cmos_write(0x0B, cmos_read(0x0B) & ~0x20);
		clear_cf(r);
		return;
	case 0xB1:
		handle_1a_pci(r);
		return;
	default:
		set_cf(r);
		return;
	}
}
