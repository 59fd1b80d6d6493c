/* Offsets in the BIOS data area (segment 0x40). */
#ifndef BDA_H
#define BDA_H

#define BDA_COM 0x00         /* 4 words: serial port bases */
#define BDA_LPT 0x08         /* 3 words: parallel port bases */
#define BDA_EBDA_SEG 0x0E    /* word */
#define BDA_EQUIPMENT 0x10   /* word */
#define BDA_MEM_KB 0x13      /* word: conventional memory in KiB */
#define BDA_KBD_FLAG0 0x17
#define BDA_KBD_FLAG1 0x18
#define BDA_KBD_ALT 0x19
#define BDA_KBD_HEAD 0x1A
#define BDA_KBD_TAIL 0x1C
#define BDA_KBD_BUF 0x1E     /* 16 words */
#define BDA_FLOPPY_RECAL 0x3E
#define BDA_FLOPPY_MOTOR 0x3F
#define BDA_FLOPPY_TIMEOUT 0x40
#define BDA_FLOPPY_STATUS 0x41
#define BDA_FLOPPY_RESULT 0x42 /* 7 bytes */
#define BDA_VIDEO_MODE 0x49
#define BDA_VIDEO_COLS 0x4A
#define BDA_VIDEO_PAGESIZE 0x4C
#define BDA_VIDEO_PAGESTART 0x4E
#define BDA_CURSOR_POS 0x50  /* 8 words */
#define BDA_CURSOR_TYPE 0x60
#define BDA_VIDEO_PAGE 0x62
#define BDA_CRTC_BASE 0x63
#define BDA_VIDEO_MSR 0x65
#define BDA_VIDEO_PAL 0x66
#define BDA_RESET_VECTOR 0x67 /* far pointer for shutdown codes 5 and 0xA */
#define BDA_TICKS 0x6C       /* dword */
#define BDA_MIDNIGHT 0x70
#define BDA_BREAK 0x71
#define BDA_RESET_FLAG 0x72  /* 0x1234: warm boot (Ctrl-Alt-Del) */
#define BDA_HD_STATUS 0x74
#define BDA_HD_COUNT 0x75
#define BDA_LPT_TIMEOUT 0x78
#define BDA_COM_TIMEOUT 0x7C
#define BDA_KBD_START 0x80
#define BDA_KBD_END 0x82
#define BDA_VIDEO_ROWS 0x84
#define BDA_CHAR_HEIGHT 0x85
#define BDA_VIDEO_CTL 0x87
#define BDA_VIDEO_SWITCHES 0x88
#define BDA_MODESET_CTL 0x89
#define BDA_DCC_INDEX 0x8A
#define BDA_FLOPPY_RATE 0x8B
#define BDA_HD_IRQ 0x8E      /* 0xFF once a disk interrupt came */
#define BDA_FLOPPY_MEDIA 0x90 /* 2 bytes: media state of drives 0 and 1 */
#define BDA_FLOPPY_TRACK 0x94 /* 2 bytes */
#define BDA_KBD_FLAG2 0x96
#define BDA_KBD_LED 0x97
#define BDA_WAIT_PTR 0x98    /* far pointer: user wait flag (INT 15h 83h) */
#define BDA_WAIT_COUNT 0x9C  /* dword: microseconds left */
#define BDA_WAIT_ACTIVE 0xA0 /* bit 0: a wait is running; bit 7: it has ended */
#define BDA_VIDEO_SAVEPTR 0xA8

/* Equipment word bits. */
#define EQ_FLOPPY 0x0001
#define EQ_FPU 0x0002
#define EQ_MOUSE 0x0004
#define EQ_VIDEO_80COL 0x0020

#endif
