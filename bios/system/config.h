/* The system BIOS's memory layout.
 *
 * The BIOS image is 64 KiB at 0xF0000 (and 0xFFFF0000). POST copies it
 * into shadow RAM, where it runs from then on, and locks it read-only
 * before booting. Its first 4 KiB are left free in the image: the firmware
 * tables read from fw_cfg are written there (the RSDP at 0xF0000, the MP
 * table at 0xF0100, SMBIOS at 0xF0800).
 *
 * The E segment (0xE0000-0xEFFFF, a hole in the e820 map) is shadow RAM
 * the BIOS keeps writable: its C data (copied there from the image), and
 * the stack every service switches to. C code runs with DS = SS = DATA_SEG
 * and CS = 0xF000. */
#ifndef CONFIG_H
#define CONFIG_H

#define BIOS_SEG 0xF000
#define DATA_SEG 0xE000
#define STACK_TOP 0xFFF0
#define TABLES_END 0x1000

/* Conventional memory: 639 KiB, then a 1 KiB EBDA (as the machine's e820 map says). */
#define EBDA_SEG 0x9FC0
#define EBDA_KB 1
#define BASE_MEM_KB 639

#endif
