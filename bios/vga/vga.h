/* The VGA BIOS (the option ROM at 0xC0000 that owns INT 10h).
 *
 * It keeps no RAM of its own: its state is in the BIOS data area and in
 * the card's registers. C code runs on the caller's stack with DS = ES =
 * SS; the ROM's constant tables are reached through FS = CS (the ROM
 * declares them with the ROM macro below), other memory through the far
 * accessors (GS). The link script refuses any ordinary data section,
 * which would be read from the wrong segment. */
#ifndef VGA_H
#define VGA_H
#include "types.h"
#include "io.h"
#include "farptr.h"
#include "bda.h"

#define ROM const __seg_fs __attribute__((section(".romdata")))
#define ROMPTR const __seg_fs

/* The registers of an INT 10h call (PUSHAL's layout). */
#define VREG8(x) struct { u8 x##l, x##h; }
struct vregs {
	u16 ds, es;
	union { u32 edi; u16 di; };
	union { u32 esi; u16 si; };
	union { u32 ebp; u16 bp; };
	u32 esp_;
	union { u32 ebx; u16 bx; VREG8(b); };
	union { u32 edx; u16 dx; VREG8(d); };
	union { u32 ecx; u16 cx; VREG8(c); };
	union { u32 eax; u16 ax; VREG8(a); };
	u16 ip, cs, flags;
} packed;

/* VGA ports. */
#define ATTR_INDEX 0x3C0
#define ATTR_READ 0x3C1
#define MISC_WRITE 0x3C2
#define SEQ_INDEX 0x3C4
#define DAC_MASK 0x3C6
#define DAC_READ_INDEX 0x3C7
#define DAC_WRITE_INDEX 0x3C8
#define DAC_DATA 0x3C9
#define MISC_READ 0x3CC
#define GC_INDEX 0x3CE
#define CRTC_COLOR 0x3D4
#define CRTC_MONO 0x3B4
#define STATUS_COLOR 0x3DA
#define STATUS_MONO 0x3BA

/* Bochs DISPI (VBE) registers. */
#define DISPI_INDEX 0x1CE
#define DISPI_DATA 0x1CF
#define DISPI_ID 0
#define DISPI_XRES 1
#define DISPI_YRES 2
#define DISPI_BPP 3
#define DISPI_ENABLE 4
#define DISPI_BANK 5
#define DISPI_VIRT_WIDTH 6
#define DISPI_VIRT_HEIGHT 7
#define DISPI_X_OFFSET 8
#define DISPI_Y_OFFSET 9
#define DISPI_VIDEO_MEMORY_64K 10
#define DISPI_ENABLED 0x01
#define DISPI_GETCAPS 0x02
#define DISPI_8BIT_DAC 0x20
#define DISPI_LFB_ENABLED 0x40
#define DISPI_NOCLEARMEM 0x80

/* Where the VGA BIOS keeps its own bytes in the BDA (as SeaVGABIOS does). */
#define BDA_VGA_FLAGS 0xB9   /* bit 0: a VBE mode is set */
#define BDA_VBE_MODE 0xBA    /* word: the VBE mode, with the LFB bit */

/* Mode kinds. */
#define MK_TEXT 0
#define MK_CGA 1
#define MK_PLANAR 2
#define MK_LINEAR 3

struct vga_mode {
	u8 mode;
	u8 kind;
	u8 bpp;
	u8 char_h;
	u16 width, height;
	u8 cols, rows;
	u16 seg;
	u16 page_size;
	u8 dac;
	u8 misc;
	u8 seq[4];
	u8 crtc[25];
	u8 attr[20];
	u8 gc[9];
} packed;

/* vga.c */
u8 seq_read(u8 i);
void seq_write(u8 i, u8 v);
u8 gc_read(u8 i);
void gc_write(u8 i, u8 v);
u8 crtc_read(u8 i);
void crtc_write(u8 i, u8 v);
void attr_write(u8 i, u8 v);
u8 attr_read(u8 i);
u16 crtc_port(void);
void dac_write(u8 start, u8 count, ROMPTR u8 *rgb);
void load_palette_256(void);
void screen_disable(void);
void screen_enable(void);

/* vbe.c */
void vbe_call(struct vregs *r);
int dispi_present(void);
u16 dispi_read(u8 i);
void dispi_write(u8 i, u16 v);
void dispi_disable(void);

/* tables.c */
ROMPTR struct vga_mode *find_mode(u8 mode);
extern ROM u8 palette_ega[64 * 3];
extern ROM u8 palette_cga[64 * 3];
extern ROM u8 palette_mono[64 * 3];

/* fonts (entry.S) */
extern u8 font8x16[];
extern u8 font8x14[];
extern u8 font8x8[];

#endif
