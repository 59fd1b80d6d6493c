/* Disks: the drives INT 13h serves, and how they are reached. */
#ifndef DISK_H
#define DISK_H
#include "bios.h"

int floppy_count(void);
const char *cdrom_boot(u32 *segoff, u8 *drive);

#endif
