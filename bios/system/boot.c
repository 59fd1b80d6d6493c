/* Option ROMs, the boot order, INT 19h (boot) and INT 18h (the next
 * device, and what happens when there is none). */
#include "bios.h"
#include "disk.h"

extern int screen_ready;
void shadow_rom(u32 addr, u32 len);
extern char entry_int10_none[];

static u8 rom_checksum(u16 seg, u32 len)
{
	u8 sum = 0;
	for (u32 i = 0; i < len; i++)
		sum += rd8(seg + (i >> 4), i & 15);
	return sum;
}

/* Runs the option ROM at addr if there is a valid one; returns the space
 * it occupies afterwards (0 if none). */
static u32 run_rom(u32 addr)
{
	u16 seg = addr >> 4;
	if (rd16(seg, 0) != 0xAA55)
		return 0;
	u32 len = rd8(seg, 2) * 512;
	if (!len || addr + len > 0xE0000)
		return 0;
	if (rom_checksum(seg, len)) {
		printf("Option ROM at %x: bad checksum, skipped\n", addr);
		return len;
	}
	dprintf("option ROM at %x (%u bytes)\n", addr, len);
	shadow_rom(addr, len);
	struct bregs r;
	memset(&r, 0, sizeof(r));
	r.bx = 0xFFFF;
	r.dx = 0xFFFF;
	farcall(FARPTR(seg, 3), &r);
	u32 after = rd8(seg, 2) * 512;
	return after ? after : len;
}

/* The video BIOS at 0xC0000 first, so that later messages reach the screen. */
void option_roms(void)
{
	u32 vga = run_rom(0xC0000);
	u32 v10 = get_vector(0x10);
	screen_ready = vga && !(FP_SEG(v10) == BIOS_SEG && FP_OFF(v10) == (u16)(u32)entry_int10_none);
	dprintf("video BIOS: %s\n", screen_ready ? "present" : "none");
}

/* Then the other option ROMs, in 2 KiB steps through 0xC8000-0xDFFFF. */
void other_option_roms(void)
{
	for (u32 a = 0xC8000; a < 0xE0000;) {
		u32 len = run_rom(a);
		a += len ? (len + 2047) & ~2047 : 2048;
	}
}

/* --- the boot order --------------------------------------------------- */

enum { DEV_NONE, DEV_FLOPPY, DEV_HD, DEV_CDROM };
static u8 order[3];
static u8 norder;
static u8 boot_seq;
static u8 check_floppy_signature = 1;

/* QEMU's CMOS convention: 0x3D holds the first (low nibble) and second
 * devices, 0x38's high nibble the third; 1 floppy, 2 hard disk, 3 CD-ROM.
 * 0x38 bit 0 turns off the floppy boot signature check. */
void boot_order_setup(void)
{
	u8 a = cmos_read(0x3D), b = cmos_read(0x38);
	u8 nib[3] = {a & 0x0F, a >> 4, b >> 4};
	norder = 0;
	for (int i = 0; i < 3 && nib[i] >= DEV_FLOPPY && nib[i] <= DEV_CDROM; i++)
		order[norder++] = nib[i];
	if (!norder) {
		order[0] = DEV_HD;
		order[1] = DEV_FLOPPY;
		order[2] = DEV_CDROM;
		norder = 3;
	}
	check_floppy_signature = !(b & 1);
	dprintf("boot order:");
	for (int i = 0; i < norder; i++)
		dprintf(" %c", "?acd"[order[i]]);
	dprintf("\n");
}

/* Reads the first sector of drive to 0000:7C00 through INT 13h. */
static const char *read_boot_sector(u8 drive, int check_sig)
{
	struct bregs r;
	int ok = 0;
	for (int tries = 0; tries < 3 && !ok; tries++) {
		memset(&r, 0, sizeof(r));
		r.ax = 0x0201;
		r.cx = 0x0001;
		r.dl = drive;
		r.es = 0;
		r.bx = 0x7C00;
		call_int(0x13, &r);
		ok = !(r.flags & F_CF);
		if (!ok) {
			memset(&r, 0, sizeof(r));
			r.dl = drive;
			call_int(0x13, &r);
		}
	}
	if (!ok)
		return "could not read the boot disk";
	if (check_sig && rd16(0, 0x7DFE) != 0xAA55)
		return "not a bootable disk";
	return NULL;
}

static void try_device(u8 dev) 
{
	const char *err = NULL;
	u32 segoff = FARPTR(0, 0x7C00);
	u8 drive = 0;
	switch (dev) {
	case DEV_FLOPPY:
		printf("Booting from Floppy...\n");
		if (!floppy_count()) {
			err = "no floppy drive";
			break;
		}
		drive = 0x00;
		err = read_boot_sector(drive, check_floppy_signature);
		break;
	case DEV_HD:
		printf("Booting from Hard Disk...\n");
		if (!bda_rd8(BDA_HD_COUNT)) {
			err = "no hard disk";
			break;
		}
		drive = 0x80;
		err = read_boot_sector(drive, 1);
		break;
	case DEV_CDROM:
		printf("Booting from DVD/CD...\n");
		err = cdrom_boot(&segoff, &drive);
		break;
	}
	if (!err) {
		dprintf("booting %x:%x, drive %x\n", FP_SEG(segoff), FP_OFF(segoff), drive);
		stack_top = STACK_TOP;
		boot_jump(segoff, drive);
	}
	printf("Boot failed: %s\n\n", err);
}

static noreturn void boot_next(void)
{
	while (boot_seq < norder)
		try_device(order[boot_seq++]);
	printf("No bootable device.\n");
	printf("Press a key to try again.\n");
	kbd_wait_key(0);
	printf("\n");
	restart_boot();
}

void handle_19(struct bregs *r)
{
	(void)r;
	boot_seq = 0;
	boot_next();
}

void handle_18(struct bregs *r)
{
	(void)r;
	boot_next();
}
