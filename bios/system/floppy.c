/* The floppy drives: an 82077AA controller at 0x3F0 (IRQ6) moving data
 * through channel 2 of the 8237 DMA controller. Drive types come from
 * CMOS 0x10 as QEMU sets them. Waits for the controller's interrupt halt
 * with interrupts on. */
#include "disk.h"

#define FDC_DOR 0x3F2
#define FDC_MSR 0x3F4
#define FDC_FIFO 0x3F5
#define FDC_DIR 0x3F7 /* read: disk change */
#define FDC_CCR 0x3F7 /* write: data rate */

#define MSR_RQM 0x80
#define MSR_DIO 0x40

#define CMD_SPECIFY 0x03
#define CMD_RECALIBRATE 0x07
#define CMD_SENSE_INT 0x08
#define CMD_SEEK 0x0F
#define CMD_READ 0xE6  /* multi-track, MFM, skip deleted */
#define CMD_WRITE 0xC5 /* multi-track, MFM */
#define CMD_VERIFY 0xF6
#define CMD_FORMAT 0x4D

/* Geometry and data rate (CCR) of each CMOS drive type. */
struct chs floppy_geometry(u8 type)
{
	switch (type) {
	case 1:
		return (struct chs){40, 2, 9};
	case 2:
		return (struct chs){80, 2, 15};
	case 3:
		return (struct chs){80, 2, 9};
	case 5:
		return (struct chs){80, 2, 36};
	default:
		return (struct chs){80, 2, 18};
	}
}

static u8 data_rate(u8 type)
{
	switch (type) {
	case 1:
	case 3:
		return 2; /* 250 kbit/s */
	case 5:
		return 3; /* 1 Mbit/s */
	default:
		return 0; /* 500 kbit/s */
	}
}

static u8 track[2] = {0xFF, 0xFF};

static int wait_irq6(void)
{
	u32 start = ticks();
	while (!(bda_rd8(BDA_FLOPPY_RECAL) & 0x80)) {
		if (ticks_passed(start, 40))
			return -1;
		wait_irq();
	}
	bda_wr8(BDA_FLOPPY_RECAL, bda_rd8(BDA_FLOPPY_RECAL) & ~0x80);
	return 0;
}

static int fdc_write(u8 v)
{
	for (int i = 0; i < 100000; i++) {
		u8 msr = inb(FDC_MSR);
		if ((msr & (MSR_RQM | MSR_DIO)) == MSR_RQM) {
			outb(v, FDC_FIFO);
			return 0;
		}
	}
	return -1;
}

static int fdc_read(void)
{
	for (int i = 0; i < 100000; i++) {
		u8 msr = inb(FDC_MSR);
		if ((msr & (MSR_RQM | MSR_DIO)) == (MSR_RQM | MSR_DIO))
			return inb(FDC_FIFO);
	}
	return -1;
}

static int sense_interrupt(u8 *st0, u8 *pcn)
{
	if (fdc_write(CMD_SENSE_INT))
		return -1;
	int a = fdc_read(), b = fdc_read();
	if (a < 0 || b < 0)
		return -1;
	*st0 = a;
	*pcn = b;
	return 0;
}

/* Resets the controller: DOR reset pulse, the four drives' sense
 * interrupts, SPECIFY. */
void floppy_reset(void)
{
	bda_wr8(BDA_FLOPPY_RECAL, 0);
	outb(0x00, FDC_DOR);
	io_delay();
	outb(0x0C, FDC_DOR);
	wait_irq6();
	for (int i = 0; i < 4; i++) {
		u8 st0, pcn;
		if (sense_interrupt(&st0, &pcn))
			break;
	}
	fdc_write(CMD_SPECIFY);
	fdc_write(0xAF); /* step rate, head unload */
	fdc_write(0x02); /* head load, DMA */
	track[0] = track[1] = 0xFF;
	bda_wr8(BDA_FLOPPY_MOTOR, 0);
}

static void motor_on(u8 unit)
{
	u8 motors = bda_rd8(BDA_FLOPPY_MOTOR);
	bda_wr8(BDA_FLOPPY_TIMEOUT, 0xFF);
	if (!(motors & (1 << unit))) {
		motors = (motors & 0xF0 & ~0x30) | (1 << unit);
		bda_wr8(BDA_FLOPPY_MOTOR, motors);
		outb(0x0C | unit | (0x10 << unit), FDC_DOR);
		msleep(250); /* spin-up */
	} else {
		outb(0x0C | unit | (0x10 << unit), FDC_DOR);
	}
}

static void motor_done(void) { bda_wr8(BDA_FLOPPY_TIMEOUT, 37); }

static int seek(u8 unit, u8 cyl)
{
	if (track[unit] == 0xFF) {
		bda_wr8(BDA_FLOPPY_RECAL, bda_rd8(BDA_FLOPPY_RECAL) & ~0x80);
		if (fdc_write(CMD_RECALIBRATE) || fdc_write(unit) || wait_irq6())
			return DISK_ETIMEOUT;
		u8 st0, pcn;
		if (sense_interrupt(&st0, &pcn) || (st0 & 0xC0))
			return DISK_ESEEK;
		track[unit] = 0;
	}
	if (track[unit] == cyl)
		return 0;
	bda_wr8(BDA_FLOPPY_RECAL, bda_rd8(BDA_FLOPPY_RECAL) & ~0x80);
	if (fdc_write(CMD_SEEK) || fdc_write(unit) || fdc_write(cyl) || wait_irq6())
		return DISK_ETIMEOUT;
	u8 st0, pcn;
	if (sense_interrupt(&st0, &pcn) || (st0 & 0xC0) || pcn != cyl) {
		track[unit] = 0xFF;
		return DISK_ESEEK;
	}
	track[unit] = cyl;
	bda_wr8(BDA_FLOPPY_TRACK + unit, cyl);
	return 0;
}

/* Programs 8237 channel 2 for len bytes at linear address lin (which
 * must not cross a 64 KiB boundary); to_memory for reads. */
static void dma_setup(u32 lin, u32 len, int to_memory)
{
	outb(0x06, 0x0A);
	outb(0x00, 0x0C);
	outb(to_memory ? 0x46 : 0x4A, 0x0B);
	outb(lin, 0x04);
	outb(lin >> 8, 0x04);
	outb(lin >> 16, 0x81);
	outb(0x00, 0x0C);
	outb(len - 1, 0x05);
	outb((len - 1) >> 8, 0x05);
	outb(0x02, 0x0A);
}

static int result_status(u8 *res)
{
	bda_wr8(BDA_FLOPPY_RESULT + 0, res[0]);
	for (int i = 0; i < 7; i++)
		bda_wr8(BDA_FLOPPY_RESULT + i, res[i]);
	if (!(res[0] & 0xC0))
		return 0;
	if (res[1] & 0x02)
		return DISK_EWRITEPROTECT;
	if (res[1] & 0x04)
		return DISK_ENOTFOUND;
	if (res[1] & 0x20)
		return DISK_ECRC;
	if (res[1] & 0x10)
		return 0x08;
	if (res[1] & 0x01)
		return DISK_EADDRMARK;
	return DISK_ECONTROLLER;
}

/* Runs a read, write or verify of n sectors starting at c/h/s of unit,
 * with DMA at lin. */
static int rw_sectors(struct drive *d, u8 cmd, u8 c, u8 h, u8 s, u8 n, u32 lin)
{
	u8 unit = d->channel;
	struct chs g = d->lchs;
	int r = seek(unit, c);
	if (r)
		return r;
	outb(data_rate(d->floppy_type), FDC_CCR);
	bda_wr8(BDA_FLOPPY_RATE, data_rate(d->floppy_type) << 6);
	dma_setup(lin, (u32)n * 512, cmd != CMD_WRITE);
	bda_wr8(BDA_FLOPPY_RECAL, bda_rd8(BDA_FLOPPY_RECAL) & ~0x80);
	u8 params[9] = {cmd, h << 2 | unit, c, h, s, 2, g.spt, 0x1B, 0xFF};
	for (int i = 0; i < 9; i++)
		if (fdc_write(params[i]))
			return DISK_ETIMEOUT;
	if (wait_irq6())
		return DISK_ETIMEOUT;
	u8 res[7];
	for (int i = 0; i < 7; i++) {
		int v = fdc_read();
		if (v < 0)
			return DISK_ETIMEOUT;
		res[i] = v;
	}
	return result_status(res);
}

/* Reads, writes or verifies (cmd) sectors of a floppy, a cylinder (both
 * heads) at most per controller command. */
int floppy_transfer(struct xfer *x, u8 op)
{
	struct drive *d = x->d;
	struct chs g = d->lchs;
	u8 cmd = op == 3 ? CMD_WRITE : op == 4 ? CMD_VERIFY : CMD_READ;
	x->done = 0;
	if (x->lba + x->count > (u64)g.cyls * g.heads * g.spt)
		return DISK_ENOTFOUND;
	u32 lin = (u32)x->seg * 16 + x->off;
	if (cmd != CMD_VERIFY && (lin & 0xFFFF) + (u32)x->count * 512 > 0x10000)
		return DISK_EBOUNDARY;
	motor_on(d->channel);
	int r = 0;
	while (x->done < x->count) {
		u32 lba = x->lba + x->done;
		u8 c = lba / (g.heads * g.spt), h = (lba / g.spt) % g.heads, s = lba % g.spt + 1;
		u16 left_in_cyl = (g.heads - h) * g.spt - (s - 1);
		u8 n = MIN(x->count - x->done, left_in_cyl);
		/* Verify reads into the BIOS's own scratch space. */
		static u8 scratch[512] __attribute__((aligned(512)));
		if (cmd == CMD_VERIFY)
			n = 1;
		u32 at = cmd == CMD_VERIFY ? DATA_LIN(scratch) : lin + (u32)x->done * 512;
		r = rw_sectors(d, cmd == CMD_VERIFY ? CMD_READ : cmd, c, h, s, n, at);
		if (r) {
			/* One reset and recalibrate, then once more. */
			floppy_reset();
			motor_on(d->channel);
			r = rw_sectors(d, cmd == CMD_VERIFY ? CMD_READ : cmd, c, h, s, n, at);
			if (r)
				break;
		}
		x->done += n;
	}
	motor_done();
	return r;
}

/* INT 13h 05h: formats a track from the C/H/R/N table at seg:off. */
int floppy_format(struct drive *d, u8 cyl, u8 head, u8 count, u16 seg, u16 off)
{
	u32 lin = (u32)seg * 16 + off;
	if ((lin & 0xFFFF) + (u32)count * 4 > 0x10000)
		return DISK_EBOUNDARY;
	motor_on(d->channel);
	int r = seek(d->channel, cyl);
	if (!r) {
		outb(data_rate(d->floppy_type), FDC_CCR);
		dma_setup(lin, (u32)count * 4, 0);
		bda_wr8(BDA_FLOPPY_RECAL, bda_rd8(BDA_FLOPPY_RECAL) & ~0x80);
		u8 params[6] = {CMD_FORMAT, head << 2 | d->channel, 2, count, 0x54, 0xF6};
		for (int i = 0; i < 6 && !r; i++)
			if (fdc_write(params[i]))
				r = DISK_ETIMEOUT;
		if (!r && wait_irq6())
			r = DISK_ETIMEOUT;
		if (!r) {
			u8 res[7];
			for (int i = 0; i < 7 && !r; i++) {
				int v = fdc_read();
				if (v < 0)
					r = DISK_ETIMEOUT;
				res[i] = v;
			}
			if (!r)
				r = result_status(res);
		}
	}
	motor_done();
	return r;
}

/* The drives CMOS 0x10 describes (high nibble A:, low nibble B:). */
void floppy_setup(void)
{
	u8 types = cmos_read(0x10);
	u8 t[2] = {types >> 4, types & 0x0F};
	int n = 0;
	for (u8 unit = 0; unit < 2; unit++) {
		if (t[unit] < 1 || t[unit] > 5)
			continue;
		struct drive *d = &drives[n];
		memset(d, 0, sizeof(*d));
		d->type = DT_FLOPPY;
		d->channel = unit;
		d->floppy_type = t[unit];
		d->sector_size = 512;
		d->lchs = d->pchs = floppy_geometry(t[unit]);
		d->sectors = (u64)d->lchs.cyls * d->lchs.heads * d->lchs.spt;
		dprintf("floppy %c: type %u\n", 'A' + unit, t[unit]);
		n++;
	}
	if (n) {
		pic_unmask(6);
		floppy_reset();
	}
	u16 eq = bda_rd16(BDA_EQUIPMENT) & ~0x00C1;
	if (n)
		eq |= EQ_FLOPPY | (n - 1) << 6;
	bda_wr16(BDA_EQUIPMENT, eq);
	/* Media state: a 1.44 MB drive with known media (as the AT BIOS). */
	bda_wr8(BDA_FLOPPY_MEDIA, n ? 0x17 : 0);
	bda_wr8(BDA_FLOPPY_MEDIA + 1, n > 1 ? 0x17 : 0);
}
