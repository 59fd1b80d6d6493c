/* CD-ROM boot by the El Torito specification: no emulation, and floppy
 * or hard disk emulation (the image then answers as drive 00h or 80h);
 * INT 13h 4B00h/4B01h. */
#include "disk.h"

struct cdemu cdemu;

/* The last CD sector read for an emulated drive (images are read in
 * 512-byte pieces of 2048-byte sectors). */
static u8 cdbuf[2048];
static u32 cdbuf_lba = 0xFFFFFFFF;
static u8 cdbuf_drive = 0xFF;

static int read_cd_sector(struct drive *d, u8 idx, u32 lba)
{
	if (cdbuf_lba == lba && cdbuf_drive == idx)
		return 0;
	u16 done;
	int r = atapi_read(d, lba, 1, DATA_SEG, (u16)(u32)cdbuf, &done);
	cdbuf_lba = r ? 0xFFFFFFFF : lba;
	cdbuf_drive = idx;
	return r;
}

/* Reads or refuses (writes: the image is read-only) sectors of the
 * emulated drive. */
int cdemu_read(struct xfer *x)
{
	struct drive *d = &drives[cdemu.cd];
	x->done = 0;
	if (x->write)
		return DISK_EWRITEPROTECT;
	while (x->done < x->count) {
		u64 v = x->lba + x->done;
		u32 lba = cdemu.lba + (u32)(v / 4);
		int r = read_cd_sector(d, cdemu.cd, lba);
		if (r)
			return r;
		u32 lin = (u32)x->seg * 16 + x->off + (u32)x->done * 512;
		far_memcpy(lin >> 4, lin & 15, DATA_SEG, (u16)(u32)cdbuf + (v % 4) * 512, 512);
		x->done++;
	}
	return DISK_OK;
}

static int first_cdrom(void)
{
	for (int i = 0; i < MAX_DRIVES; i++)
		if (drives[i].type == DT_ATAPI && drives[i].atapi_type == 5)
			return i;
	return -1;
}

/* Reads the boot record and catalogue, loads the boot image and sets up
 * its emulation; returns where to jump and the boot drive, or why not. */
const char *cdrom_boot(u32 *segoff, u8 *drive)
{
	int idx = first_cdrom();
	if (idx < 0)
		return "no CD-ROM drive";
	struct drive *d = &drives[idx];
	int r = atapi_ready(d);
	if (r == DISK_ENOMEDIA)
		return "no disc in the CD-ROM drive";
	if (r || atapi_capacity(d))
		return "the CD-ROM drive is not ready";
	/* Sector 17: the boot record volume descriptor. */
	static const char torito[] = "EL TORITO SPECIFICATION";
	if (read_cd_sector(d, idx, 17))
		return "could not read the CD";
	if (cdbuf[0] != 0 || memcmp(cdbuf + 1, "CD001", 5) || cdbuf[6] != 1 ||
	    memcmp(cdbuf + 7, torito, sizeof(torito) - 1))
		return "not a bootable CD (no El Torito boot record)";
	u32 catalog = cdbuf[0x47] | (u32)cdbuf[0x48] << 8 | (u32)cdbuf[0x49] << 16 |
		      (u32)cdbuf[0x4A] << 24;
	if (catalog >= d->sectors || read_cd_sector(d, idx, catalog))
		return "could not read the CD's boot catalogue";
	/* The validation entry: header 1, key 55 AA, words summing to 0. */
	u16 sum = 0;
	for (int i = 0; i < 32; i += 2)
		sum += cdbuf[i] | cdbuf[i + 1] << 8;
	if (cdbuf[0] != 1 || cdbuf[0x1E] != 0x55 || cdbuf[0x1F] != 0xAA || sum)
		return "the CD's boot catalogue is damaged (bad validation entry)";
	u8 *e = cdbuf + 32;
	if (e[0] != 0x88)
		return "the CD's boot catalogue has no bootable entry";
	u8 media = e[1] & 0x0F;
	u16 load_seg = e[2] | e[3] << 8;
	u16 count = e[6] | e[7] << 8;
	u32 lba = e[8] | (u32)e[9] << 8 | (u32)e[10] << 16 | (u32)e[11] << 24;
	if (!load_seg)
		load_seg = 0x07C0;
	if (media > 4 || lba >= d->sectors)
		return "the CD's boot catalogue is damaged (bad default entry)";
	memset(&cdemu, 0, sizeof(cdemu));
	cdemu.cd = idx;
	cdemu.lba = lba;
	cdemu.media = media;
	cdemu.load_seg = load_seg;
	cdemu.count = count;
	cdemu.booted = 1;
	if (media == 0) {
		/* No emulation: count 512-byte sectors (at least one CD sector). */
		u16 n = count ? DIV_ROUND_UP(count, 4) : 1;
		u32 end = (u32)load_seg * 16 + (u32)n * 2048;
		if (load_seg < 0x50 || end > (u32)BASE_MEM_KB * 1024)
			return "the CD's boot image does not fit in conventional memory";
		u16 done;
		if (atapi_read(d, lba, n, load_seg, 0, &done))
			return "could not read the CD's boot image";
		cdemu.emulated = 0xE0;
		cdemu.boot_drive = 0xE0;
		*drive = 0xE0;
		*segoff = FARPTR(load_seg, 0);
		return NULL;
	}
	if (media == 4) {
		/* Hard disk emulation: the geometry from the image's MBR. */
		if (read_cd_sector(d, idx, lba))
			return "could not read the CD's boot image";
		u8 *p = cdbuf + 0x1BE;
		u8 heads = p[5] + 1, spt = p[6] & 0x3F;
		u16 cyls = (p[7] | (p[6] & 0xC0) << 2) + 1;
		if (cdbuf[0x1FE] != 0x55 || cdbuf[0x1FF] != 0xAA || !spt)
			return "the CD's hard disk image has no partition table";
		cdemu.chs = (struct chs){cyls, heads, spt};
		cdemu.emulated = 0x80;
		bda_wr8(BDA_HD_COUNT, bda_rd8(BDA_HD_COUNT) + 1);
	} else {
		cdemu.chs = floppy_geometry(media == 1 ? 2 : media == 2 ? 4 : 5);
		cdemu.emulated = 0x00;
		u16 eq = bda_rd16(BDA_EQUIPMENT);
		u8 n = (eq & EQ_FLOPPY) ? ((eq >> 6) & 3) + 2 : 1;
		bda_wr16(BDA_EQUIPMENT, (eq & ~0xC0) | EQ_FLOPPY | (MIN(n, 4) - 1) << 6);
	}
	cdemu.active = 1;
	cdemu.boot_drive = cdemu.emulated;
	/* Load the first sectors (usually one) of the image. */
	struct xfer x = {.d = d, .lba = 0, .count = count ? count : 1, .seg = load_seg, .off = 0};
	if (cdemu_read(&x))
		return "could not read the CD's boot image";
	*drive = cdemu.emulated;
	*segoff = FARPTR(load_seg, 0);
	return NULL;
}

/* INT 13h 4B00h (terminate emulation) and 4B01h (status): the
 * specification packet at DS:SI. */
void handle_13_4b(struct bregs *r)
{
	if (r->al > 1 || !cdemu.booted) {
		fail(r, DISK_EPARAM);
		return;
	}
	struct drive *d = &drives[cdemu.cd];
	u8 p[0x13];
	memset(p, 0, sizeof(p));
	p[0] = 0x13;
	p[1] = cdemu.media;
	p[2] = cdemu.boot_drive;
	p[3] = d->channel;
	memcpy(p + 4, &cdemu.lba, 4);
	p[8] = d->slave;
	memcpy(p + 12, &cdemu.load_seg, 2);
	memcpy(p + 14, &cdemu.count, 2);
	u16 cyl = cdemu.chs.cyls ? cdemu.chs.cyls - 1 : 0;
	p[16] = cyl;
	p[17] = cdemu.chs.spt | (cyl >> 2 & 0xC0);
	p[18] = cdemu.chs.heads ? cdemu.chs.heads - 1 : 0;
	near_to_far(r->ds, r->si, p, sizeof(p));
	if (r->al == 0 && cdemu.active) {
		cdemu.active = 0;
		if (cdemu.emulated == 0x80)
			bda_wr8(BDA_HD_COUNT, bda_rd8(BDA_HD_COUNT) - 1);
	}
	ok(r);
}
