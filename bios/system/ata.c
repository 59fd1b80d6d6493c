/* ATA and ATAPI devices on the two legacy IDE channels (0x1F0/0x3F6 on
 * IRQ14, 0x170/0x376 on IRQ15): detection, PIO transfers (LBA28 and
 * LBA48), and ATAPI packet commands for CD-ROMs. Waits poll the
 * alternate status register and halt between polls with interrupts on;
 * the device's interrupt (or the next timer tick) ends the halt. */
#include "disk.h"

#define REG_DATA 0
#define REG_ERROR 1
#define REG_FEATURES 1
#define REG_COUNT 2
#define REG_LBA0 3
#define REG_LBA1 4
#define REG_LBA2 5
#define REG_DEVICE 6
#define REG_STATUS 7
#define REG_COMMAND 7

#define ST_BSY 0x80
#define ST_DRDY 0x40
#define ST_DF 0x20
#define ST_DRQ 0x08
#define ST_ERR 0x01

#define CMD_READ 0x20
#define CMD_READ_EXT 0x24
#define CMD_WRITE 0x30
#define CMD_WRITE_EXT 0x34
#define CMD_PACKET 0xA0
#define CMD_IDENTIFY_PACKET 0xA1
#define CMD_IDENTIFY 0xEC

/* Waits: ticks of 55 ms. */
#define T_CMD 18 * 5    /* a command: 5 s */
#define T_RESET 18 * 31 /* after a reset, ATA allows 31 s */

static const u16 iobase[2] = {0x1F0, 0x170};
static const u16 ctlbase[2] = {0x3F6, 0x376};

#define ERR_TIMEOUT (-1)
#define ERR_ABSENT (-2)

static void delay400(u8 ch)
{
	for (int i = 0; i < 4; i++)
		inb(ctlbase[ch]);
}

/* Waits until BSY is clear and (status & mask) == want; returns the
 * status (which may carry ERR or DF), or a negative error. */
static int wait_status(u8 ch, u8 mask, u8 want, u32 timeout)
{
	u32 start = ticks();
	for (int spin = 0;; spin++) {
		u8 st = inb(ctlbase[ch]);
		if (st == 0xFF)
			return ERR_ABSENT;
		if (!(st & ST_BSY) && ((st & (ST_ERR | ST_DF)) || (st & mask) == want))
			return st;
		if (spin >= 16) {
			if (ticks_passed(start, timeout))
				return ERR_TIMEOUT;
			wait_irq();
		}
	}
}

static int select_device(struct drive *d)
{
	u16 base = iobase[d->channel];
	outb(0xA0 | d->slave << 4, base + REG_DEVICE);
	delay400(d->channel);
	int st = wait_status(d->channel, 0, 0, T_CMD);
	return st < 0 ? st : 0;
}

/* Reads or writes words of PIO data at linear address lin (below 1 MiB). */
static void pio_in(u16 port, u32 lin, u32 words)
{
	u32 off = lin & 0xF, n = words;
	u16 seg = lin >> 4;
	asm volatile("pushw %%es\n\t"
		     "movw %w3, %%es\n\t"
		     "cld\n\t"
		     "addr32 rep insw\n\t"
		     "popw %%es"
		     : "+D"(off), "+c"(n)
		     : "d"(port), "r"(seg)
		     : "memory");
}

static void pio_out(u16 port, u32 lin, u32 words)
{
	u32 off = lin & 0xF, n = words;
	u16 seg = lin >> 4;
	asm volatile("pushw %%ds\n\t"
		     "movw %w3, %%ds\n\t"
		     "cld\n\t"
		     "addr32 rep outsw\n\t"
		     "popw %%ds"
		     : "+S"(off), "+c"(n)
		     : "d"(port), "r"(seg)
		     : "memory");
}

/* PIO data to or from anywhere: memory above 1 MiB goes through a bounce
 * buffer. */
static u8 bounce[2048];

static void data_in(u16 port, u32 lin, u32 bytes)
{
	if (lin + bytes <= 0x100000) {
		pio_in(port, lin, bytes / 2);
		return;
	}
	while (bytes) {
		u32 n = MIN(bytes, sizeof(bounce));
		pio_in(port, DATA_LIN(bounce), n / 2);
		flat_memcpy(lin, DATA_LIN(bounce), n);
		lin += n;
		bytes -= n;
	}
}

static void data_out(u16 port, u32 lin, u32 bytes)
{
	if (lin + bytes <= 0x100000) {
		pio_out(port, lin, bytes / 2);
		return;
	}
	while (bytes) {
		u32 n = MIN(bytes, sizeof(bounce));
		flat_memcpy(DATA_LIN(bounce), lin, n);
		pio_out(port, DATA_LIN(bounce), n / 2);
		lin += n;
		bytes -= n;
	}
}

static int disk_error(int st)
{
	if (st == ERR_TIMEOUT || st == ERR_ABSENT)
		return DISK_ETIMEOUT;
	if (st & ST_DF)
		return DISK_EFAULT;
	return DISK_ENOTFOUND;
}

/* The linear address of sector i of a transfer. */
static u32 xfer_lin(struct xfer *x, u32 byte_off)
{
	if (x->seg == 0xFFFF && x->off == 0xFFFF)
		return x->flat + byte_off;
	return (u32)x->seg * 16 + x->off + byte_off;
}

int ata_transfer(struct xfer *x)
{
	struct drive *d = x->d;
	u8 ch = d->channel;
	u16 base = iobase[ch];
	x->done = 0;
	while (x->done < x->count) {
		u16 n = MIN(x->count - x->done, 128);
		u64 lba = x->lba + x->done;
		if (lba + n > d->sectors)
			return DISK_ENOTFOUND;
		int st = select_device(d);
		if (st < 0)
			return disk_error(st);
		outb(0x00, ctlbase[ch]); /* interrupts on */
		int ext = d->lba48 && (lba + n > 0x0FFFFFFF);
		if (ext) {
			outb(0, base + REG_COUNT);
			outb(lba >> 24, base + REG_LBA0);
			outb(lba >> 32, base + REG_LBA1);
			outb(lba >> 40, base + REG_LBA2);
			outb(n, base + REG_COUNT);
			outb(lba, base + REG_LBA0);
			outb(lba >> 8, base + REG_LBA1);
			outb(lba >> 16, base + REG_LBA2);
			outb(0x40 | d->slave << 4, base + REG_DEVICE);
			outb(x->write ? CMD_WRITE_EXT : CMD_READ_EXT, base + REG_COMMAND);
		} else {
			outb(0xE0 | d->slave << 4 | ((lba >> 24) & 0x0F), base + REG_DEVICE);
			outb(n, base + REG_COUNT);
			outb(lba, base + REG_LBA0);
			outb(lba >> 8, base + REG_LBA1);
			outb(lba >> 16, base + REG_LBA2);
			outb(x->write ? CMD_WRITE : CMD_READ, base + REG_COMMAND);
		}
		delay400(ch);
		for (u16 i = 0; i < n; i++) {
			st = wait_status(ch, ST_DRQ, ST_DRQ, T_CMD);
			if (st < 0 || (st & (ST_ERR | ST_DF))) {
				inb(base + REG_STATUS);
				return disk_error(st);
			}
			u32 lin = xfer_lin(x, (u32)(x->done + i) * 512);
			if (x->write)
				data_out(base + REG_DATA, lin, 512);
			else
				data_in(base + REG_DATA, lin, 512);
			if (!x->write)
				inb(base + REG_STATUS); /* acknowledge the block's interrupt */
		}
		st = wait_status(ch, 0, 0, T_CMD);
		inb(base + REG_STATUS);
		if (st < 0 || (st & (ST_ERR | ST_DF)))
			return disk_error(st);
		x->done += n;
	}
	return DISK_OK;
}

/* --- ATAPI --------------------------------------------------------------- */

/* Sends a 12-byte packet and reads what the device returns (up to len
 * bytes to linear address lin; the rest is dropped). Returns 0, a
 * negative wait error, or the sense key (from the error register) + 1. */
static int packet(struct drive *d, const u8 *pkt, u32 lin, u32 len, u32 *got)
{
	u8 ch = d->channel;
	u16 base = iobase[ch];
	*got = 0;
	int st = select_device(d);
	if (st < 0)
		return st;
	outb(0x00, ctlbase[ch]);
	outb(0x00, base + REG_FEATURES);
	outb(0xFE, base + REG_LBA1);
	outb(0xFF, base + REG_LBA2);
	outb(CMD_PACKET, base + REG_COMMAND);
	delay400(ch);
	st = wait_status(ch, ST_DRQ, ST_DRQ, T_CMD);
	if (st < 0)
		return st;
	if (st & ST_ERR)
		return (inb(base + REG_ERROR) >> 4) + 1;
	pio_out(base + REG_DATA, DATA_LIN(pkt), 6);
	for (;;) {
		delay400(ch);
		st = wait_status(ch, 0, 0, T_CMD * 2);
		if (st < 0)
			return st;
		if (st & (ST_ERR | ST_DF)) {
			inb(base + REG_STATUS);
			return (inb(base + REG_ERROR) >> 4) + 1;
		}
		if (!(st & ST_DRQ))
			break;
		u32 n = inb(base + REG_LBA1) | (u32)inb(base + REG_LBA2) << 8;
		if (!n || n & 1)
			return ERR_TIMEOUT;
		u32 keep = *got >= len ? 0 : MIN(n, len - *got);
		if (keep)
			data_in(base + REG_DATA, lin + *got, keep);
		for (u32 i = keep; i < n; i += 2)
			inw(base + REG_DATA);
		*got += n;
	}
	inb(base + REG_STATUS);
	return 0;
}

/* Waits (up to about 5 s) for a CD-ROM to be ready: 0 when it is, else
 * DISK_ENOMEDIA or DISK_ENOTREADY. */
int atapi_ready(struct drive *d)
{
	u32 start = ticks();
	for (;;) {
		u8 tur[12] = {0x00};
		u32 got;
		int r = packet(d, tur, 0, 0, &got);
		if (r == 0)
			return 0;
		if (r < 0 && r == ERR_ABSENT)
			return DISK_ENOTREADY;
		u8 sense[18] = {0};
		u8 rs[12] = {0x03, 0, 0, 0, sizeof(sense), 0};
		if (packet(d, rs, DATA_LIN(sense), sizeof(sense), &got) == 0 && got >= 13) {
			u8 key = sense[2] & 0x0F, asc = sense[12];
			if (key == 0x02 && asc == 0x3A)
				return DISK_ENOMEDIA;
		}
		if (ticks_passed(start, 18 * 5))
			return DISK_ENOTREADY;
		msleep(100);
	}
}

int atapi_capacity(struct drive *d)
{
	u8 cap[8];
	u8 rc[12] = {0x25};
	u32 got;
	if (packet(d, rc, DATA_LIN(cap), sizeof(cap), &got) || got < 8)
		return DISK_ENOTREADY;
	u32 last = (u32)cap[0] << 24 | (u32)cap[1] << 16 | (u32)cap[2] << 8 | cap[3];
	d->sectors = (u64)last + 1;
	d->sector_size = 2048;
	return 0;
}

/* Reads count 2048-byte sectors from lba to seg:off. */
int atapi_read(struct drive *d, u32 lba, u16 count, u16 seg, u16 off, u16 *done)
{
	*done = 0;
	while (*done < count) {
		u16 n = MIN(count - *done, 16);
		u32 at = lba + *done;
		u8 rd[12] = {0x28, 0, at >> 24, at >> 16, at >> 8, at, 0, n >> 8, n, 0};
		u32 got, lin = (u32)seg * 16 + off + (u32)*done * 2048;
		int r = packet(d, rd, lin, (u32)n * 2048, &got);
		if (r)
			return r < 0 ? DISK_ETIMEOUT : DISK_ENOTFOUND;
		if (got < (u32)n * 2048)
			return DISK_ENOTFOUND;
		*done += n;
	}
	return DISK_OK;
}

/* --- detection ------------------------------------------------------------ */

static void copy_model(char *dst, const u16 *id)
{
	for (int i = 0; i < 20; i++) {
		dst[2 * i] = id[27 + i] >> 8;
		dst[2 * i + 1] = id[27 + i];
	}
	dst[40] = 0;
	for (int i = 39; i >= 0 && (dst[i] == ' ' || !dst[i]); i--)
		dst[i] = 0;
}

/* The geometry INT 13h reports for a disk: the drive's own while it
 * covers the disk within 1024 cylinders, else LBA-assisted translation
 * (63 sectors, 16-255 heads). */
void chs_for_size(u64 sectors, struct chs *c)
{
	static const u16 heads[] = {16, 32, 64, 128, 255};
	if (c->cyls && c->heads && c->spt && c->cyls <= 1024 && c->heads <= 16 &&
	    (u64)c->cyls * c->heads * c->spt <= sectors)
		return;
	u32 n = sectors > 0xFFFFFFFF ? 0xFFFFFFFF : (u32)sectors;
	u16 h = 255;
	for (u32 i = 0; i < ARRAY_SIZE(heads); i++) {
		if (n / ((u32)heads[i] * 63) <= 1024) {
			h = heads[i];
			break;
		}
	}
	u32 cyl = n / ((u32)h * 63);
	c->heads = h;
	c->spt = 63;
	c->cyls = cyl > 1024 ? 1024 : cyl ? cyl : 1;
}

static int ndrives_found;

static void add_drive(u8 ch, u8 slave, int atapi)
{
	u16 base = iobase[ch];
	if (ndrives_found >= MAX_DRIVES)
		return;
	struct drive *d = &drives[ndrives_found];
	memset(d, 0, sizeof(*d));
	d->channel = ch;
	d->slave = slave;
	if (select_device(d) < 0)
		return;
	outb(atapi ? CMD_IDENTIFY_PACKET : CMD_IDENTIFY, base + REG_COMMAND);
	delay400(ch);
	int st = wait_status(ch, ST_DRQ, ST_DRQ, T_CMD);
	if (st < 0 || (st & ST_ERR)) {
		inb(base + REG_STATUS);
		return;
	}
	u16 id[256];
	pio_in(base + REG_DATA, DATA_LIN(id), 256);
	inb(base + REG_STATUS);
	copy_model(d->model, id);
	if (atapi) {
		d->type = DT_ATAPI;
		d->atapi_type = (id[0] >> 8) & 0x1F;
		d->sector_size = 2048;
	} else {
		d->type = DT_ATA;
		d->sector_size = 512;
		d->lba48 = (id[83] >> 10) & 1;
		u64 n28 = id[60] | (u32)id[61] << 16;
		u64 n48 = id[100] | (u64)id[101] << 16 | (u64)id[102] << 32 | (u64)id[103] << 48;
		d->sectors = d->lba48 && n48 ? n48 : n28;
		d->pchs.cyls = id[1];
		d->pchs.heads = id[3];
		d->pchs.spt = id[6];
		if (!d->sectors)
			d->sectors = (u64)d->pchs.cyls * d->pchs.heads * d->pchs.spt;
		d->lchs = d->pchs;
		chs_for_size(d->sectors, &d->lchs);
		if (!d->sectors)
			return;
	}
	dprintf("ata%u-%u: %s %s, %u MiB\n", ch, slave, atapi ? "ATAPI" : "ATA", d->model,
		(u32)(d->sectors * d->sector_size >> 20));
	ndrives_found++;
}

/* Finds the devices on both channels: a register echo tells whether a
 * device answers, a soft reset its signature (ATA or ATAPI). */
void ata_setup(void)
{
	ndrives_found = 0;
	for (int i = 0; i < MAX_DRIVES; i++)
		if (drives[i].type == DT_FLOPPY)
			ndrives_found = i + 1;
	for (u8 ch = 0; ch < 2; ch++) {
		u16 base = iobase[ch];
		if (inb(base + REG_STATUS) == 0xFF && inb(ctlbase[ch]) == 0xFF)
			continue;
		u8 present[2] = {0, 0};
		for (u8 s = 0; s < 2; s++) {
			outb(0xA0 | s << 4, base + REG_DEVICE);
			delay400(ch);
			outb(0x55, base + REG_COUNT);
			outb(0xAA, base + REG_LBA0);
			outb(0xAA, base + REG_COUNT);
			outb(0x55, base + REG_LBA0);
			outb(0x55, base + REG_COUNT);
			outb(0xAA, base + REG_LBA0);
			present[s] = inb(base + REG_COUNT) == 0x55 && inb(base + REG_LBA0) == 0xAA;
		}
		if (!present[0] && !present[1])
			continue;
		/* Soft reset, interrupts off while it runs. */
		outb(0x06, ctlbase[ch]);
		io_delay();
		outb(0x02, ctlbase[ch]);
		msleep(2);
		outb(0xA0, base + REG_DEVICE);
		delay400(ch);
		if (wait_status(ch, 0, 0, T_RESET) < 0)
			continue;
		for (u8 s = 0; s < 2; s++) {
			if (!present[s])
				continue;
			outb(0xA0 | s << 4, base + REG_DEVICE);
			delay400(ch);
			u8 l1 = inb(base + REG_LBA1), l2 = inb(base + REG_LBA2);
			if (l1 == 0x14 && l2 == 0xEB) {
				add_drive(ch, s, 1);
			} else if ((l1 == 0 && l2 == 0) || (l1 == 0x3C && l2 == 0xC3)) {
				u8 st = inb(base + REG_STATUS);
				if (st && st != 0xFF)
					add_drive(ch, s, 0);
			}
		}
		outb(0x00, ctlbase[ch]);
	}
}

/* EDD 3.0's device path for INT 13h 48h: the IDE function's PCI address,
 * the channel and master/slave. */
void ata_fill_edd(struct drive *d, u16 seg, u16 off, u16 size)
{
	static u8 dpte[16];
	memset(dpte, 0, sizeof(dpte));
	dpte[0] = iobase[d->channel];
	dpte[1] = iobase[d->channel] >> 8;
	dpte[2] = ctlbase[d->channel];
	dpte[3] = ctlbase[d->channel] >> 8;
	dpte[4] = 0xA0 | d->slave << 4 | (d->type == DT_ATA ? 0x40 : 0);
	dpte[6] = d->channel ? 15 : 14;
	dpte[7] = 1;
	dpte[10] = (d->type == DT_ATA ? 0x10 : 0x40) | (d->type == DT_ATAPI ? 0x60 : 0);
	dpte[14] = 0x11;
	u8 sum = 0;
	for (int i = 0; i < 15; i++)
		sum += dpte[i];
	dpte[15] = -sum;
	if (size < 30)
		return;
	wr16(seg, off + 26, (u16)(u32)dpte);
	wr16(seg, off + 28, DATA_SEG);
	if (size < 66) {
		wr16(seg, off, 30);
		return;
	}
	u8 p[36];
	memset(p, 0, sizeof(p));
	p[0] = 0xDD;
	p[1] = 0xBE;
	p[2] = 36;
	memcpy(p + 6, "PCI ", 4);
	memcpy(p + 10, d->type == DT_ATA ? "ATA     " : "ATAPI   ", 8);
	p[18] = 0; /* bus */
	p[19] = 1; /* device: the PIIX3 */
	p[20] = 1; /* function: IDE */
	p[21] = d->channel;
	p[26] = d->slave;
	sum = 0;
	for (int i = 0; i < 35; i++)
		sum += p[i];
	p[35] = -sum;
	near_to_far(seg, off + 30, p, sizeof(p));
	wr16(seg, off, 66);
}
