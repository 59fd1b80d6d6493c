/* The keyboard: the 8042 and keyboard set-up at POST, IRQ1 (INT 09h:
 * scan code set 1, as the 8042 translates it, into the BDA's buffer), and
 * INT 16h. */
#include "bios.h"

/* BDA 40:17 bits. */
#define KF_RSHIFT 0x01
#define KF_LSHIFT 0x02
#define KF_CTRL 0x04
#define KF_ALT 0x08
#define KF_SCROLL 0x10
#define KF_NUM 0x20
#define KF_CAPS 0x40
#define KF_INSERT 0x80
/* BDA 40:18 bits. */
#define KF1_LCTRL 0x01
#define KF1_LALT 0x02
#define KF1_SYSRQ 0x04
#define KF1_PAUSE 0x08
#define KF1_SCROLL 0x10
#define KF1_NUM 0x20
#define KF1_CAPS 0x40
#define KF1_INSERT 0x80
/* BDA 40:96 bits. */
#define KF2_LAST_E1 0x01
#define KF2_LAST_E0 0x02
#define KF2_RCTRL 0x04
#define KF2_RALT 0x08
#define KF2_101KBD 0x10

static int kbc_wait_write(void)
{
	for (int i = 0; i < 100000; i++)
		if (!(inb(0x64) & 0x02))
			return 0;
	return -1;
}

/* Reads a byte the 8042 or keyboard sent, waiting up to about half a second. */
static int kbc_read(void)
{
	u32 start = ticks();
	for (int spin = 0;; spin++) {
		if (inb(0x64) & 0x01)
			return inb(0x60);
		if (spin > 64) {
			if (ticks_passed(start, 10))
				return -1;
			wait_irq();
		}
	}
}

static void kbc_command(u8 cmd)
{
	kbc_wait_write();
	outb(cmd, 0x64);
}

static void kbc_data(u8 v)
{
	kbc_wait_write();
	outb(v, 0x60);
}

void kbd_init(void)
{
	/* Drain, self test, interface test. */
	for (int i = 0; i < 16 && (inb(0x64) & 1); i++)
		inb(0x60);
	kbc_command(0xAD);
	kbc_command(0xA7);
	for (int i = 0; i < 16 && (inb(0x64) & 1); i++)
		inb(0x60);
	kbc_command(0xAA);
	int r = kbc_read();
	if (r != 0x55) {
		dprintf("keyboard controller: self test gave %x\n", r);
		if (r < 0)
			return;
	}
	kbc_command(0xAB);
	kbc_read();
	/* Keyboard interrupt off while we talk to the keyboard. */
	kbc_command(0x60);
	kbc_data(0x30);
	kbc_command(0xAE);
	kbc_data(0xFF);
	int ack = kbc_read(), bat = kbc_read();
	if (ack != 0xFA || bat != 0xAA)
		dprintf("keyboard: reset gave %x %x\n", ack, bat);
	/* Default scan code set (2, translated to 1 by the 8042), scanning on. */
	kbc_data(0xF4);
	kbc_read();
	/* Translation, system flag, keyboard interrupt; the aux port off. */
	kbc_command(0x60);
	kbc_data(0x65);
	for (int i = 0; i < 16 && (inb(0x64) & 1); i++)
		inb(0x60);
	pic_unmask(1);
}

/* Scan code set 1 to keystrokes (scan << 8 | ASCII): normal, shift, control, alt. */
static const u16 keymap[0x59][4] = {
	[0x01] = {0x011B, 0x011B, 0x011B, 0x0100},
	[0x02] = {0x0231, 0x0221, 0, 0x7800},
	[0x03] = {0x0332, 0x0340, 0x0300, 0x7900},
	[0x04] = {0x0433, 0x0423, 0, 0x7A00},
	[0x05] = {0x0534, 0x0524, 0, 0x7B00},
	[0x06] = {0x0635, 0x0625, 0, 0x7C00},
	[0x07] = {0x0736, 0x075E, 0x071E, 0x7D00},
	[0x08] = {0x0837, 0x0826, 0, 0x7E00},
	[0x09] = {0x0938, 0x092A, 0, 0x7F00},
	[0x0A] = {0x0A39, 0x0A28, 0, 0x8000},
	[0x0B] = {0x0B30, 0x0B29, 0, 0x8100},
	[0x0C] = {0x0C2D, 0x0C5F, 0x0C1F, 0x8200},
	[0x0D] = {0x0D3D, 0x0D2B, 0, 0x8300},
	[0x0E] = {0x0E08, 0x0E08, 0x0E7F, 0x0E00},
	[0x0F] = {0x0F09, 0x0F00, 0x9400, 0xA500},
	[0x10] = {0x1071, 0x1051, 0x1011, 0x1000},
	[0x11] = {0x1177, 0x1157, 0x1117, 0x1100},
	[0x12] = {0x1265, 0x1245, 0x1205, 0x1200},
	[0x13] = {0x1372, 0x1352, 0x1312, 0x1300},
	[0x14] = {0x1474, 0x1454, 0x1414, 0x1400},
	[0x15] = {0x1579, 0x1559, 0x1519, 0x1500},
	[0x16] = {0x1675, 0x1655, 0x1615, 0x1600},
	[0x17] = {0x1769, 0x1749, 0x1709, 0x1700},
	[0x18] = {0x186F, 0x184F, 0x180F, 0x1800},
	[0x19] = {0x1970, 0x1950, 0x1910, 0x1900},
	[0x1A] = {0x1A5B, 0x1A7B, 0x1A1B, 0x1A00},
	[0x1B] = {0x1B5D, 0x1B7D, 0x1B1D, 0x1B00},
	[0x1C] = {0x1C0D, 0x1C0D, 0x1C0A, 0x1C00},
	[0x1E] = {0x1E61, 0x1E41, 0x1E01, 0x1E00},
	[0x1F] = {0x1F73, 0x1F53, 0x1F13, 0x1F00},
	[0x20] = {0x2064, 0x2044, 0x2004, 0x2000},
	[0x21] = {0x2166, 0x2146, 0x2106, 0x2100},
	[0x22] = {0x2267, 0x2247, 0x2207, 0x2200},
	[0x23] = {0x2368, 0x2348, 0x2308, 0x2300},
	[0x24] = {0x246A, 0x244A, 0x240A, 0x2400},
	[0x25] = {0x256B, 0x254B, 0x250B, 0x2500},
	[0x26] = {0x266C, 0x264C, 0x260C, 0x2600},
	[0x27] = {0x273B, 0x273A, 0, 0x2700},
	[0x28] = {0x2827, 0x2822, 0, 0x2800},
	[0x29] = {0x2960, 0x297E, 0, 0x2900},
	[0x2B] = {0x2B5C, 0x2B7C, 0x2B1C, 0x2B00},
	[0x2C] = {0x2C7A, 0x2C5A, 0x2C1A, 0x2C00},
	[0x2D] = {0x2D78, 0x2D58, 0x2D18, 0x2D00},
	[0x2E] = {0x2E63, 0x2E43, 0x2E03, 0x2E00},
	[0x2F] = {0x2F76, 0x2F56, 0x2F16, 0x2F00},
	[0x30] = {0x3062, 0x3042, 0x3002, 0x3000},
	[0x31] = {0x316E, 0x314E, 0x310E, 0x3100},
	[0x32] = {0x326D, 0x324D, 0x320D, 0x3200},
	[0x33] = {0x332C, 0x333C, 0, 0x3300},
	[0x34] = {0x342E, 0x343E, 0, 0x3400},
	[0x35] = {0x352F, 0x353F, 0, 0x3500},
	[0x37] = {0x372A, 0x372A, 0x9600, 0x3700},
	[0x39] = {0x3920, 0x3920, 0x3920, 0x3920},
	[0x3B] = {0x3B00, 0x5400, 0x5E00, 0x6800},
	[0x3C] = {0x3C00, 0x5500, 0x5F00, 0x6900},
	[0x3D] = {0x3D00, 0x5600, 0x6000, 0x6A00},
	[0x3E] = {0x3E00, 0x5700, 0x6100, 0x6B00},
	[0x3F] = {0x3F00, 0x5800, 0x6200, 0x6C00},
	[0x40] = {0x4000, 0x5900, 0x6300, 0x6D00},
	[0x41] = {0x4100, 0x5A00, 0x6400, 0x6E00},
	[0x42] = {0x4200, 0x5B00, 0x6500, 0x6F00},
	[0x43] = {0x4300, 0x5C00, 0x6600, 0x7000},
	[0x44] = {0x4400, 0x5D00, 0x6700, 0x7100},
	[0x47] = {0x4700, 0x4737, 0x7700, 0},
	[0x48] = {0x4800, 0x4838, 0x8D00, 0},
	[0x49] = {0x4900, 0x4939, 0x8400, 0},
	[0x4A] = {0x4A2D, 0x4A2D, 0x8E00, 0x4A00},
	[0x4B] = {0x4B00, 0x4B34, 0x7300, 0},
	[0x4C] = {0x4C00, 0x4C35, 0x8F00, 0},
	[0x4D] = {0x4D00, 0x4D36, 0x7400, 0},
	[0x4E] = {0x4E2B, 0x4E2B, 0x9000, 0x4E00},
	[0x4F] = {0x4F00, 0x4F31, 0x7500, 0},
	[0x50] = {0x5000, 0x5032, 0x9100, 0},
	[0x51] = {0x5100, 0x5133, 0x7600, 0},
	[0x52] = {0x5200, 0x5230, 0x9200, 0},
	[0x53] = {0x5300, 0x532E, 0x9300, 0},
	[0x56] = {0x565C, 0x567C, 0, 0},
	[0x57] = {0x8500, 0x8700, 0x8900, 0x8B00},
	[0x58] = {0x8600, 0x8800, 0x8A00, 0x8C00},
};

/* The grey cursor keys (E0-prefixed 0x47-0x53): control and alt forms. */
static u16 grey_key(u8 sc, u8 flags)
{
	static const u8 ctrl[13] = {0x77, 0x8D, 0x84, 0, 0x73, 0, 0x74, 0, 0x75, 0x91, 0x76, 0x92, 0x93};
	static const u8 alt[13] = {0x97, 0x98, 0x99, 0, 0x9B, 0, 0x9D, 0, 0x9F, 0xA0, 0xA1, 0xA2, 0xA3};
	u8 i = sc - 0x47;
	if (flags & KF_ALT)
		return alt[i] << 8;
	if (flags & KF_CTRL)
		return ctrl[i] << 8 | 0xE0;
	return sc << 8 | 0xE0;
}

static int buffer_put(u16 key)
{
	u16 head = bda_rd16(BDA_KBD_HEAD), tail = bda_rd16(BDA_KBD_TAIL);
	u16 next = tail + 2;
	if (next >= bda_rd16(BDA_KBD_END))
		next = bda_rd16(BDA_KBD_START);
	if (next == head)
		return 0;
	wr16(BDA_SEG, tail, key);
	bda_wr16(BDA_KBD_TAIL, next);
	return 1;
}

static void set_leds(void)
{
	u8 f = bda_rd8(BDA_KBD_FLAG0);
	u8 leds = (f >> 4) & 7;
	u8 old = bda_rd8(BDA_KBD_LED);
	if ((old & 7) == leds)
		return;
	bda_wr8(BDA_KBD_LED, (old & ~7) | leds);
	/* The keyboard's acknowledgements are dropped by the IRQ handler. */
	kbc_data(0xED);
	kbc_data(leds);
}

static void process_key(u8 sc)
{
	u8 f0 = bda_rd8(BDA_KBD_FLAG0), f1 = bda_rd8(BDA_KBD_FLAG1), f2 = bda_rd8(BDA_KBD_FLAG2);
	if (sc == 0xE0) {
		bda_wr8(BDA_KBD_FLAG2, f2 | KF2_LAST_E0);
		return;
	}
	if (sc == 0xE1) {
		bda_wr8(BDA_KBD_FLAG2, f2 | KF2_LAST_E1);
		return;
	}
	int e0 = f2 & KF2_LAST_E0, e1 = f2 & KF2_LAST_E1;
	f2 &= ~(KF2_LAST_E0 | KF2_LAST_E1);
	int up = sc & 0x80;
	u8 code = sc & 0x7F;
	if (e1) {
		/* Pause: E1 1D 45 E1 9D C5; not modelled. */
		if (code == 0x1D)
			f2 |= KF2_LAST_E1;
		bda_wr8(BDA_KBD_FLAG2, f2);
		return;
	}
	switch (code) {
	case 0x2A: /* left shift (E0 2A is a fake shift: ignored) */
	case 0x36:
		if (!e0) {
			u8 bit = code == 0x2A ? KF_LSHIFT : KF_RSHIFT;
			f0 = up ? f0 & ~bit : f0 | bit;
		}
		break;
	case 0x1D:
		if (e0)
			f2 = up ? f2 & ~KF2_RCTRL : f2 | KF2_RCTRL;
		else
			f1 = up ? f1 & ~KF1_LCTRL : f1 | KF1_LCTRL;
		f0 = (f1 & KF1_LCTRL) || (f2 & KF2_RCTRL) ? f0 | KF_CTRL : f0 & ~KF_CTRL;
		break;
	case 0x38:
		if (e0)
			f2 = up ? f2 & ~KF2_RALT : f2 | KF2_RALT;
		else
			f1 = up ? f1 & ~KF1_LALT : f1 | KF1_LALT;
		f0 = (f1 & KF1_LALT) || (f2 & KF2_RALT) ? f0 | KF_ALT : f0 & ~KF_ALT;
		break;
	case 0x3A:
		if (up)
			f1 &= ~KF1_CAPS;
		else if (!(f1 & KF1_CAPS)) {
			f1 |= KF1_CAPS;
			f0 ^= KF_CAPS;
		}
		break;
	case 0x45:
		if (up)
			f1 &= ~KF1_NUM;
		else if (!(f1 & KF1_NUM)) {
			f1 |= KF1_NUM;
			f0 ^= KF_NUM;
		}
		break;
	case 0x46:
		if (up)
			f1 &= ~KF1_SCROLL;
		else if (!(f1 & KF1_SCROLL)) {
			f1 |= KF1_SCROLL;
			f0 ^= KF_SCROLL;
		}
		break;
	default:
		if (up)
			break;
		if (code == 0x53 && (f0 & KF_CTRL) && (f0 & KF_ALT)) {
			/* Ctrl-Alt-Del: a warm boot through the 8042's reset line. */
			bda_wr16(BDA_RESET_FLAG, 0x1234);
			kbc_command(0xFE);
			for (;;)
				hlt();
		}
		if (code == 0x52 && !(f0 & (KF_CTRL | KF_ALT))) {
			int digit = !e0 && !(f0 & KF_NUM) != !(f0 & (KF_LSHIFT | KF_RSHIFT));
			if (!digit)
				f0 ^= KF_INSERT;
		}
		u16 key = 0;
		if (e0) {
			if (code >= 0x47 && code <= 0x53 && code != 0x4A && code != 0x4E && code != 0x4C)
				key = grey_key(code, f0);
			else if (code == 0x1C)
				key = f0 & KF_ALT ? 0xA600 : f0 & KF_CTRL ? 0xE00A : 0xE00D;
			else if (code == 0x35)
				key = f0 & KF_ALT ? 0xA400 : f0 & KF_CTRL ? 0x9500 : 0xE02F;
		} else if (code < ARRAY_SIZE(keymap)) {
			const u16 *k = keymap[code];
			int shift = (f0 & (KF_LSHIFT | KF_RSHIFT)) != 0;
			u8 ascii = k[0] & 0xFF;
			if ((ascii >= 'a' && ascii <= 'z') && (f0 & KF_CAPS))
				shift = !shift;
			if (code >= 0x47 && code <= 0x53 && code != 0x4A && code != 0x4E && (f0 & KF_NUM))
				shift = !shift;
			if (f0 & KF_ALT)
				key = k[3];
			else if (f0 & KF_CTRL)
				key = k[2];
			else
				key = k[shift ? 1 : 0];
		}
		if (key)
			buffer_put(key);
		break;
	}
	bda_wr8(BDA_KBD_FLAG0, f0);
	bda_wr8(BDA_KBD_FLAG1, f1);
	bda_wr8(BDA_KBD_FLAG2, f2);
	set_leds();
}

/* IRQ1. */
void handle_09(struct bregs *r)
{
	(void)r;
	if (inb(0x64) & 0x01) {
		u8 sc = inb(0x60);
		if (sc != 0xFA && sc != 0xFE && sc != 0x00 && sc != 0xFF) {
			struct bregs k;
			memset(&k, 0, sizeof(k));
			k.ah = 0x4F;
			k.al = sc;
			k.flags = F_CF;
			call_int(0x15, &k);
			if (k.flags & F_CF)
				process_key(k.al);
		}
	}
	outb(0x20, 0x20);
}

/* The next keystroke, if any (consuming it when take). */
static int buffer_get(u16 *key, int take)
{
	u16 head = bda_rd16(BDA_KBD_HEAD), tail = bda_rd16(BDA_KBD_TAIL);
	if (head == tail)
		return 0;
	*key = rd16(BDA_SEG, head);
	if (take) {
		head += 2;
		if (head >= bda_rd16(BDA_KBD_END))
			head = bda_rd16(BDA_KBD_START);
		bda_wr16(BDA_KBD_HEAD, head);
	}
	return 1;
}

/* Keystrokes only the extended functions (10h, 11h) return are dropped
 * for the old ones; E0 codes become plain ones. */
static int legacy_key(u16 *key)
{
	u8 scan = *key >> 8, ascii = *key;
	if (scan == 0xE0) {
		*key = (ascii == 0x0D || ascii == 0x0A ? 0x1C00 : 0x3500) | ascii;
		return 1;
	}
	if (ascii == 0xE0 && scan)
		*key = scan << 8;
	if (scan > 0x84)
		return 0;
	return 1;
}

/* Waits for a keystroke for up to timeout_ticks (0: forever). Returns the
 * key, or -1 on timeout. */
int kbd_wait_key(u32 timeout_ticks)
{
	u32 start = ticks();
	for (;;) {
		u16 key;
		if (buffer_get(&key, 1))
			return key;
		if (timeout_ticks && ticks_passed(start, timeout_ticks))
			return -1;
		wait_irq();
	}
}

void handle_16(struct bregs *r)
{
	u16 key;
	switch (r->ah) {
	case 0x00:
	case 0x10:
		for (;;) {
			while (!buffer_get(&key, 1))
				wait_irq();
			if (r->ah == 0x10 || legacy_key(&key))
				break;
		}
		r->ax = key;
		return;
	case 0x01:
	case 0x11:
		for (;;) {
			if (!buffer_get(&key, 0)) {
				r->flags |= F_ZF;
				return;
			}
			if (r->ah == 0x11 || legacy_key(&key))
				break;
			buffer_get(&key, 1);
		}
		r->ax = key;
		r->flags &= ~F_ZF;
		return;
	case 0x02:
		r->al = bda_rd8(BDA_KBD_FLAG0);
		return;
	case 0x12:
		r->al = bda_rd8(BDA_KBD_FLAG0);
		r->ah = (bda_rd8(BDA_KBD_FLAG1) & 0xF3) | (bda_rd8(BDA_KBD_FLAG2) & 0x0C) |
			(bda_rd8(BDA_KBD_FLAG1) & KF1_SYSRQ ? 0x80 : 0);
		return;
	case 0x03:
		return;
	case 0x05:
		r->al = buffer_put(r->cx) ? 0 : 1;
		return;
	case 0x09:
		r->al = 0x30; /* typematic rate and delay settable, 10h-12h present */
		return;
	case 0x0A:
		r->bx = 0x41AB;
		return;
	default:
		return;
	}
}
