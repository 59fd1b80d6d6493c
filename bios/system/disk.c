/* INT 13h (placeholder until the drives are written). */
#include "disk.h"

int floppy_count(void) { return 0; }
const char *cdrom_boot(u32 *segoff, u8 *drive)
{
	(void)segoff;
	(void)drive;
	return "no CD-ROM drive";
}
void disk_setup(void) {}
void handle_13(struct bregs *r) { fail(r, 0x01); }
void handle_40(struct bregs *r) { fail(r, 0x01); }
