/* kbd: a text console on the VGA driven by the 8042, for the window front
 * end's tests (scripts/window-test.sh): the keyboard and mouse reach the
 * guest through IRQ1 and IRQ12, the screen shows what was typed.
 *
 * The kernel clears the text screen (mode 3 as a BIOS or morph86's direct
 * boot leaves it), writes a title row (attribute 0x1F) and a prompt
 * (attribute 0x07 everywhere else), hides the hardware cursor, turns on
 * the 8042's set 2 to set 1 translation and the mouse's data reporting,
 * and then waits with HLT for interrupts. Every byte from the keyboard and
 * every mouse packet is logged on COM1 ("key 1e", "mouse 08 05 fb");
 * make codes of a US layout are echoed at the prompt, Enter runs the line:
 *   echo TEXT   prints TEXT on the next line
 *   exit        writes 0x10 to the exit port (status 33 under --exit-port)
 *   other       prints "unknown command: ..."
 * Each command and its output also go to COM1 ("> echo hi", "hi").
 * It prints READY on COM1 once it waits for keys. */
#include "test.h"

const char test_name[] = "kbd";

#define COLS 80
#define ROWS 25
#define TEXT ((volatile u16 *)0xB8000)
#define ATTR_TITLE 0x1F
#define ATTR_TEXT 0x07

static int row = 2, col;

static void scroll(void)
{
	for (int r = 2; r < ROWS - 1; r++)
		for (int c = 0; c < COLS; c++)
			TEXT[r * COLS + c] = TEXT[(r + 1) * COLS + c];
	for (int c = 0; c < COLS; c++)
		TEXT[(ROWS - 1) * COLS + c] = ATTR_TEXT << 8 | ' ';
	row = ROWS - 1;
}

static void newline(void)
{
	col = 0;
	if (++row >= ROWS)
		scroll();
}

static void vputc(char ch)
{
	if (ch == '\n') {
		newline();
		return;
	}
	if (col >= COLS)
		newline();
	TEXT[row * COLS + col++] = ATTR_TEXT << 8 | (u8)ch;
}

static void vputs(const char *s)
{
	while (*s)
		vputc(*s++);
}

/* Set 1 make codes 0x00-0x39 on a US layout, without and with Shift. */
static const char plain[58] =
	"\0\0331234567890-=\b\tqwertyuiop[]\n\0asdfghjkl;'`\0\\zxcvbnm,./\0*\0 ";
static const char shifted[58] =
	"\0\033!@#$%^&*()_+\b\tQWERTYUIOP{}\n\0ASDFGHJKL:\"~\0|ZXCVBNM<>?\0*\0 ";

/* Bytes from the interrupt handlers: (aux << 8) | byte. */
static volatile u16 ring[256];
static volatile u8 head, tail;

static int on_irq1(struct frame *f)
{
	(void)f;
	while (inb(0x64) & 1) {
		u8 st = inb(0x64);
		u8 b = inb(0x60);
		ring[head++] = (st & 0x20 ? 0x100 : 0) | b;
	}
	outb(0xA0, 0x20);
	outb(0x20, 0x20);
	return 1;
}

static void pic_init(void)
{
	outb(0x20, 0x11); outb(0xA0, 0x11); /* ICW1: edge, cascade, ICW4 */
	outb(0x21, 0x20); outb(0xA1, 0x28); /* vectors 0x20 and 0x28 */
	outb(0x21, 0x04); outb(0xA1, 0x02); /* cascade on IRQ2 */
	outb(0x21, 0x01); outb(0xA1, 0x01); /* 8086 mode */
	outb(0x21, 0xF9);                   /* IRQ1 and the cascade */
	outb(0xA1, 0xEF);                   /* IRQ12 */
}

static void kbc_wait(void)
{
	for (int i = 0; i < 100000 && (inb(0x64) & 2); i++)
		;
}

static void kbc_init(void)
{
	while (inb(0x64) & 1)
		(void)inb(0x60);
	kbc_wait();
	outb(0x64, 0x60);
	kbc_wait();
	outb(0x60, 0x47); /* IRQ1, IRQ12, system flag, translation to set 1 */
	kbc_wait();
	outb(0x64, 0xA8); /* mouse interface on */
	kbc_wait();
	outb(0x64, 0xD4);
	kbc_wait();
	outb(0x60, 0xF4); /* mouse: data reporting on (its ACK comes as IRQ12) */
}

static char line[COLS];
static int len;

static int starts(const char *s, const char *p)
{
	while (*p)
		if (*s++ != *p++)
			return 0;
	return 1;
}

static void prompt(void)
{
	vputs("> ");
}

static void run_line(void)
{
	line[len] = 0;
	printf("> %s\n", line);
	newline();
	if (starts(line, "echo ")) {
		vputs(line + 5);
		printf("%s\n", line + 5);
		newline();
	} else if (starts(line, "exit") && (line[4] == 0 || line[4] == ' ')) {
		printf("exit\n");
		outb(0xF4, 0x10);
	} else if (len) {
		vputs("unknown command: ");
		vputs(line);
		printf("unknown command: %s\n", line);
		newline();
	}
	len = 0;
	prompt();
}

static int shift, e0;
static u8 packet[3];
static int npacket;

static void key_byte(u8 b)
{
	printf("key %02x\n", b);
	if (b == 0xE0) {
		e0 = 1;
		return;
	}
	int ext = e0;
	e0 = 0;
	if (ext)
		return; /* arrows and the other extended keys: logged only */
	u8 code = b & 0x7F;
	int make = !(b & 0x80);
	if (code == 0x2A || code == 0x36) {
		shift = make;
		return;
	}
	if (!make || code >= sizeof plain)
		return;
	char ch = (shift ? shifted : plain)[code];
	if (ch == '\n') {
		run_line();
	} else if (ch == '\b') {
		if (len > 0) {
			len--;
			TEXT[row * COLS + --col] = ATTR_TEXT << 8 | ' ';
		}
	} else if (ch >= ' ' && len < COLS - 3) {
		line[len++] = ch;
		vputc(ch);
	}
}

static void mouse_byte(u8 b)
{
	if (npacket == 0 && (b == 0xFA || !(b & 0x08))) {
		printf("mouse-byte %02x\n", b); /* the ACK, or out of step */
		return;
	}
	packet[npacket++] = b;
	if (npacket == 3) {
		printf("mouse %02x %02x %02x\n", packet[0], packet[1], packet[2]);
		npacket = 0;
	}
}

void test_main(void)
{
	for (int i = 0; i < COLS * ROWS; i++)
		TEXT[i] = ATTR_TEXT << 8 | ' ';
	const char *title = " morph86 keyboard test";
	for (int c = 0; c < COLS; c++)
		TEXT[c] = ATTR_TITLE << 8 | ' ';
	for (int c = 0; title[c]; c++)
		TEXT[c] = ATTR_TITLE << 8 | (u8)title[c];
	outb(0x3D4, 0x0A);
	outb(0x3D5, 0x20); /* cursor off */
	vputs("Type a command (echo TEXT, exit) and press Enter.");
	newline();
	prompt();
	exc_hooks[0x21] = on_irq1;
	exc_hooks[0x2C] = on_irq1;
	pic_init();
	kbc_init();
	printf("READY\n");
	for (;;) {
		__asm__ volatile("sti; hlt; cli");
		while (tail != head) {
			u16 v = ring[tail++];
			if (v & 0x100)
				mouse_byte(v & 0xFF);
			else
				key_byte(v & 0xFF);
		}
	}
}
