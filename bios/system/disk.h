/* Disks: the drives INT 13h serves and how each kind is reached. */
#ifndef DISK_H
#define DISK_H
#include "bios.h"

/* INT 13h status codes. */
#define DISK_OK 0x00
#define DISK_EPARAM 0x01
#define DISK_EADDRMARK 0x02
#define DISK_EWRITEPROTECT 0x03
#define DISK_ENOTFOUND 0x04
#define DISK_ECHANGED 0x06
#define DISK_EBOUNDARY 0x09
#define DISK_EMEDIA 0x0C
#define DISK_ECRC 0x10
#define DISK_ECONTROLLER 0x20
#define DISK_ENOMEDIA 0x31
#define DISK_ESEEK 0x40
#define DISK_ETIMEOUT 0x80
#define DISK_ENOTREADY 0xAA
#define DISK_EFAULT 0xBB

enum { DT_NONE, DT_FLOPPY, DT_ATA, DT_ATAPI };

struct chs {
	u16 cyls, heads, spt;
};

struct drive {
	u8 type;
	u8 channel; /* ATA channel (0, 1), or the floppy unit */
	u8 slave;
	u8 lba48;
	u8 atapi_type;    /* ATAPI: peripheral device type (5: CD-ROM) */
	u8 floppy_type;   /* CMOS drive type (1-5) */
	u16 sector_size;
	u64 sectors;
	struct chs pchs;  /* as the device reports it */
	struct chs lchs;  /* as INT 13h reports it */
	char model[41];
};

#define MAX_DRIVES 8
extern struct drive drives[MAX_DRIVES];

/* El Torito emulation: which drive number stands for the image. */
struct cdemu {
	u8 active;
	u8 media;       /* 1-3 floppy types, 4 hard disk; 0 no emulation */
	u8 emulated;    /* the drive number it answers to */
	u8 cd;          /* index of the CD-ROM drive in drives[] */
	u32 lba;        /* where the image starts, in CD sectors */
	u16 load_seg;
	u16 count;      /* virtual sectors loaded at boot */
	struct chs chs;
	u8 booted;      /* a CD boot happened (for 4B01) */
	u8 boot_drive;
};
extern struct cdemu cdemu;

/* A transfer: count sectors at lba of drive d, to or from the real-mode
 * buffer seg:off (or, when seg is 0xFFFF and off 0xFFFF, flat address
 * flat), in the drive's sector size. */
struct xfer {
	struct drive *d;
	u64 lba;
	u16 count;
	u16 seg, off;
	u32 flat;
	u8 write;
	u16 done; /* sectors transferred */
};

/* ata.c */
void ata_setup(void);
int ata_transfer(struct xfer *x);
int atapi_read(struct drive *d, u32 lba, u16 count, u16 seg, u16 off, u16 *done);
int atapi_ready(struct drive *d);
int atapi_capacity(struct drive *d);
void ata_fill_edd(struct drive *d, u16 seg, u16 off, u16 size);

/* floppy.c */
void floppy_setup(void);
int floppy_transfer(struct xfer *x, u8 cmd);
int floppy_format(struct drive *d, u8 track, u8 head, u8 count, u16 seg, u16 off);
void floppy_reset(void);
struct chs floppy_geometry(u8 type);

/* cdrom.c */
const char *cdrom_boot(u32 *segoff, u8 *drive);
int cdemu_read(struct xfer *x);
void handle_13_4b(struct bregs *r);

/* disk.c */
int floppy_count(void);
void chs_for_size(u64 sectors, struct chs *c);

#endif
