/* INT 13h (and INT 40h, its floppy-only half): drive numbers, CHS and
 * the EDD 3.0 extensions, over the floppy, ATA and ATAPI code and the El
 * Torito emulation. Floppies are drives 00h and 01h, ATA disks 80h up in
 * channel order, CD-ROMs E0h up (as SeaBIOS numbers them); an emulated
 * boot image takes 00h or 80h and moves the real drives up by one. */
#include "disk.h"

struct drive drives[MAX_DRIVES];

static struct drive *nth(u8 type, u8 n)
{
	for (int i = 0; i < MAX_DRIVES; i++) {
		struct drive *d = &drives[i];
		if (d->type == type && (type != DT_ATAPI || d->atapi_type == 5) && !n--)
			return d;
	}
	return NULL;
}

int floppy_count(void)
{
	int n = 0;
	while (nth(DT_FLOPPY, n))
		n++;
	return n + (cdemu.active && cdemu.emulated == 0x00);
}

static int hd_count(void)
{
	int n = 0;
	while (nth(DT_ATA, n))
		n++;
	return n;
}

/* The drive behind BIOS drive number dl; *emu when it is the El Torito
 * image. */
static struct drive *lookup(u8 dl, int *emu)
{
	*emu = 0;
	if (cdemu.active && dl == cdemu.emulated) {
		*emu = 1;
		return &drives[cdemu.cd];
	}
	if (dl < 0x80) {
		if (cdemu.active && cdemu.emulated == 0x00)
			dl--;
		return dl < 2 ? nth(DT_FLOPPY, dl) : NULL;
	}
	if (dl >= 0xE0)
		return nth(DT_ATAPI, dl - 0xE0);
	u8 n = dl - 0x80;
	if (cdemu.active && cdemu.emulated == 0x80)
		n--;
	return n < 0x60 ? nth(DT_ATA, n) : NULL;
}

static struct chs geometry(struct drive *d, int emu)
{
	return emu ? cdemu.chs : d->lchs;
}

static void set_status(struct bregs *r, u8 dl, u8 status)
{
	bda_wr8(dl < 0x80 ? BDA_FLOPPY_STATUS : BDA_HD_STATUS, status);
	r->ah = status;
	if (status)
		set_cf(r);
	else
		clear_cf(r);
}

static int transfer(struct drive *d, int emu, struct xfer *x, u8 op)
{
	if (emu) {
		if (op == 4) {
			x->done = x->count;
			return 0;
		}
		return cdemu_read(x);
	}
	switch (d->type) {
	case DT_FLOPPY:
		return floppy_transfer(x, op);
	case DT_ATA:
		if (op == 4) {
			x->done = x->count;
			return x->lba + x->count <= d->sectors ? 0 : DISK_ENOTFOUND;
		}
		return ata_transfer(x);
	case DT_ATAPI:
		if (op == 3)
			return DISK_EWRITEPROTECT;
		if (op == 4) {
			x->done = x->count;
			return 0;
		}
		if (x->seg == 0xFFFF && x->off == 0xFFFF)
			return DISK_EPARAM;
		return atapi_read(d, x->lba, x->count, x->seg, x->off, &x->done);
	}
	return DISK_EPARAM;
}

/* 02h, 03h, 04h: CH/CL cylinder and sector, DH head, AL sectors, ES:BX. */
static void chs_call(struct bregs *r, struct drive *d, int emu)
{
	u8 op = r->ah;
	struct chs g = geometry(d, emu);
	u16 cyl = r->ch | (r->cl & 0xC0) << 2;
	u8 sec = r->cl & 0x3F, head = r->dh, count = r->al;
	if (!count || count > 128 || !sec || sec > g.spt || head >= g.heads || cyl >= g.cyls ||
	    (d->type == DT_ATAPI && !emu)) {
		r->al = 0;
		set_status(r, r->dl, DISK_EPARAM);
		return;
	}
	struct xfer x = {
		.d = d,
		.lba = ((u64)cyl * g.heads + head) * g.spt + sec - 1,
		.count = count,
		.seg = r->es,
		.off = r->bx,
		.write = op == 3,
	};
	int st = transfer(d, emu, &x, op);
	r->al = x.done;
	set_status(r, r->dl, st);
}

/* 42h, 43h, 44h: the disk address packet at DS:SI. */
static void ext_call(struct bregs *r, struct drive *d, int emu)
{
	u16 ds = r->ds, si = r->si;
	u8 size = rd8(ds, si);
	u16 count = rd16(ds, si + 2);
	struct xfer x = {
		.d = d,
		.lba = rd32(ds, si + 8) | (u64)rd32(ds, si + 12) << 32,
		.count = count,
		.off = rd16(ds, si + 4),
		.seg = rd16(ds, si + 6),
		.write = r->ah == 0x43,
	};
	if (size < 0x10 || (x.seg == 0xFFFF && x.off == 0xFFFF && size < 0x18)) {
		set_status(r, r->dl, DISK_EPARAM);
		return;
	}
	if (x.seg == 0xFFFF && x.off == 0xFFFF) {
		if (rd32(ds, si + 20)) {
			set_status(r, r->dl, DISK_EPARAM);
			return;
		}
		x.flat = rd32(ds, si + 16);
	}
	u8 op = r->ah == 0x42 ? 2 : r->ah == 0x43 ? 3 : 4;
	int st = count ? transfer(d, emu, &x, op) : 0;
	wr16(ds, si + 2, x.done);
	set_status(r, r->dl, st);
}

/* 48h: drive parameters, with EDD 3.0's device path for ATA and ATAPI. */
static void params_call(struct bregs *r, struct drive *d, int emu)
{
	u16 ds = r->ds, si = r->si;
	u16 size = rd16(ds, si);
	if (size < 26 || (d->type == DT_FLOPPY && !emu)) {
		set_status(r, r->dl, DISK_EPARAM);
		return;
	}
	u16 flags;
	u32 c, h, s;
	u64 sectors;
	u16 bps;
	if (emu) {
		struct chs g = cdemu.chs;
		flags = 0x0002;
		c = g.cyls;
		h = g.heads;
		s = g.spt;
		sectors = (u64)c * h * s;
		bps = 512;
	} else if (d->type == DT_ATAPI) {
		if (!d->sectors)
			atapi_capacity(d);
		flags = 0x0074;
		c = h = s = 0xFFFFFFFF;
		sectors = d->sectors ? d->sectors : 0xFFFFFFFFFFFFFFFFULL;
		bps = 2048;
	} else {
		struct chs g = d->pchs.cyls ? d->pchs : d->lchs;
		flags = 0x0002;
		c = g.cyls;
		h = g.heads;
		s = g.spt;
		sectors = d->sectors;
		bps = 512;
	}
	wr16(ds, si, 26);
	wr16(ds, si + 2, flags);
	wr32(ds, si + 4, c);
	wr32(ds, si + 8, h);
	wr32(ds, si + 12, s);
	wr32(ds, si + 16, sectors);
	wr32(ds, si + 20, sectors >> 32);
	wr16(ds, si + 24, bps);
	if (!emu && size >= 30)
		ata_fill_edd(d, ds, si, size);
	set_status(r, r->dl, 0);
}

static void disk_call(struct bregs *r, int floppy_only)
{
	u8 dl = r->dl;
	if (r->ah == 0x4B) {
		handle_13_4b(r);
		return;
	}
	if (floppy_only && dl >= 0x80) {
		set_status(r, dl, DISK_EPARAM);
		return;
	}
	int emu;
	struct drive *d = lookup(dl, &emu);
	if (!d) {
		if (r->ah == 0x15) {
			r->ah = 0;
			clear_cf(r);
			return;
		}
		if (r->ah == 0x08 && dl < 0x80) {
			r->ax = 0;
			r->bx = 0;
			r->cx = 0;
			r->dx = 0;
			set_status(r, dl, DISK_EPARAM);
			return;
		}
		set_status(r, dl, DISK_EPARAM);
		return;
	}
	int is_cd = d->type == DT_ATAPI && !emu;
	struct chs g = geometry(d, emu);
	switch (r->ah) {
	case 0x00:
		if (d->type == DT_FLOPPY && !emu)
			floppy_reset();
		set_status(r, dl, 0);
		return;
	case 0x01: {
		u8 st = bda_rd8(dl < 0x80 ? BDA_FLOPPY_STATUS : BDA_HD_STATUS);
		r->ah = st;
		if (st)
			set_cf(r);
		else
			clear_cf(r);
		return;
	}
	case 0x02:
	case 0x03:
	case 0x04:
		chs_call(r, d, emu);
		return;
	case 0x05:
		if (d->type == DT_FLOPPY && !emu)
			set_status(r, dl, floppy_format(d, r->ch, r->dh, r->al, r->es, r->bx));
		else
			set_status(r, dl, emu ? DISK_EWRITEPROTECT : 0);
		return;
	case 0x08: {
		if (is_cd) {
			set_status(r, dl, DISK_EPARAM);
			return;
		}
		u16 maxc = MIN(g.cyls, 1024) - 1;
		r->ch = maxc;
		r->cl = (g.spt & 0x3F) | ((maxc >> 2) & 0xC0);
		r->dh = g.heads - 1;
		r->al = 0;
		if (dl < 0x80) {
			r->bh = 0;
			r->bl = emu ? (cdemu.media == 1 ? 2 : cdemu.media == 2 ? 4 : 5) : d->floppy_type;
			r->dl = floppy_count();
			r->es = BIOS_SEG;
			r->di = (u16)(u32)diskette_param_table;
		} else {
			r->dl = bda_rd8(BDA_HD_COUNT);
		}
		set_status(r, dl, 0);
		return;
	}
	case 0x09:
	case 0x0C:
	case 0x0D:
	case 0x10:
	case 0x11:
	case 0x14:
	case 0x17:
	case 0x47:
	case 0x4E:
		set_status(r, dl, 0);
		return;
	case 0x15:
		if (dl < 0x80) {
			r->ah = 0x02;
		} else if (is_cd) {
			r->ah = 0x02;
		} else {
			u64 n = emu ? (u64)g.cyls * g.heads * g.spt : d->sectors;
			if (n > 0xFFFFFFFF)
				n = 0xFFFFFFFF;
			r->cx = n >> 16;
			r->dx = n;
			r->ah = 0x03;
		}
		bda_wr8(dl < 0x80 ? BDA_FLOPPY_STATUS : BDA_HD_STATUS, 0);
		clear_cf(r);
		return;
	case 0x16:
		set_status(r, dl, 0);
		return;
	case 0x18:
		if (dl < 0x80) {
			r->es = BIOS_SEG;
			r->di = (u16)(u32)diskette_param_table;
			set_status(r, dl, 0);
		} else {
			set_status(r, dl, DISK_EPARAM);
		}
		return;
	case 0x41:
		if (r->bx != 0x55AA || (dl < 0x80 && !emu)) {
			set_status(r, dl, DISK_EPARAM);
			return;
		}
		r->bx = 0xAA55;
		r->ah = 0x30;
		r->cx = 0x0007;
		clear_cf(r);
		return;
	case 0x42:
	case 0x43:
	case 0x44:
		ext_call(r, d, emu);
		return;
	case 0x45:
		r->al = 0;
		set_status(r, dl, is_cd ? 0 : DISK_EPARAM);
		return;
	case 0x46:
		set_status(r, dl, is_cd ? 0 : DISK_EPARAM);
		return;
	case 0x48:
		params_call(r, d, emu);
		return;
	default:
		set_status(r, dl, DISK_EPARAM);
		return;
	}
}

void handle_13(struct bregs *r) { disk_call(r, 0); }
void handle_40(struct bregs *r) { disk_call(r, 1); }

/* The fixed disk parameter tables INT 41h and 46h point at. */
static u8 fdpt[2][16];

void disk_setup(void)
{
	memset(drives, 0, sizeof(drives));
	floppy_setup();
	ata_setup();
	int hds = hd_count();
	bda_wr8(BDA_HD_COUNT, hds);
	for (int i = 0; i < 2 && i < hds; i++) {
		struct drive *d = nth(DT_ATA, i);
		u8 *t = fdpt[i];
		memset(t, 0, 16);
		t[0] = d->lchs.cyls;
		t[1] = d->lchs.cyls >> 8;
		t[2] = d->lchs.heads;
		t[5] = 0xFF;
		t[6] = 0xFF;
		t[8] = d->lchs.heads > 8 ? 0x08 : 0;
		t[12] = t[0];
		t[13] = t[1];
		t[14] = d->lchs.spt;
		set_vector(i ? 0x46 : 0x41, DATA_SEG, (u16)(u32)t);
	}
	for (int i = 0; i < MAX_DRIVES; i++) {
		struct drive *d = &drives[i];
		if (d->type == DT_ATA)
			printf("Hard disk %x: %s (%u MiB)\n", 0x80 + (i - floppy_count()), d->model,
			       (u32)(d->sectors >> 11));
		else if (d->type == DT_ATAPI)
			printf("%s: %s\n", d->atapi_type == 5 ? "CD-ROM" : "ATAPI device", d->model);
		else if (d->type == DT_FLOPPY)
			printf("Floppy %c: %s\n", 'A' + d->channel,
			       d->floppy_type == 4 ? "1.44 MB" : d->floppy_type == 5 ? "2.88 MB" :
			       d->floppy_type == 2 ? "1.2 MB" : d->floppy_type == 3 ? "720 KB" : "360 KB");
	}
}
