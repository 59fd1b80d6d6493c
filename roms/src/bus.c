/*
 * bus: the PC's interrupt sources and timers, checked against each other.
 *
 * - 8259A (Intel 8259A datasheet): ICW1-4 remap to 0x20/0x28, EOI, OCW1
 *   masking, the slave cascade on IR2.
 * - 8254 (Intel 82C54 datasheet): channel 0 mode 2 at 1000 Hz on IRQ 0.
 * - MC146818: periodic interrupt at 1024 Hz (register A rate 6) on IRQ 8,
 *   acknowledged by reading register C.
 * - 16550A: THRE interrupt on IRQ 4 with OUT2 gating; loopback data and the
 *   receive-data interrupt identification (no IRQ: OUT2 is looped back).
 * - Local APIC (SDM Vol. 3A §10.5.4): timer calibrated against the PIT in
 *   one-shot mode, then periodic at 1 kHz, EOI, masking through the LVT.
 *
 * Rates are measured against each other (PIT ticks are the time base), so
 * the checks hold on any machine whose timers keep their nominal ratios:
 * each rate must be within 1 % of nominal.
 */
#include "test.h"

const char test_name[] = "bus";

static volatile u32 pit_ticks, rtc_ticks, apic_ticks, uart_irqs, uart_thre, uart_rx_irqs;
static volatile u8 uart_rx;

#define LAPIC ((volatile u32 *)0xFEE00000)
#define LAPIC_REG(off) LAPIC[(off) / 4]

static int pit_hook(struct frame *f)
{
	(void)f;
	pit_ticks++;
	outb(0x20, 0x20);
	return 1;
}

static int rtc_hook(struct frame *f)
{
	(void)f;
	outb(0x70, 0x0C);
	if (inb(0x71) & 0x40)
		rtc_ticks++;
	outb(0xA0, 0x20);
	outb(0x20, 0x20);
	return 1;
}

static int uart_hook(struct frame *f)
{
	(void)f;
	u8 iir = inb(0x3FA);
	uart_irqs++;
	if ((iir & 0x0F) == 0x02)
		uart_thre++;
	if ((iir & 0x0F) == 0x04) {
		uart_rx = inb(0x3F8);
		uart_rx_irqs++;
	}
	outb(0x20, 0x20);
	return 1;
}

static int apic_hook(struct frame *f)
{
	(void)f;
	apic_ticks++;
	LAPIC_REG(0xB0) = 0;
	return 1;
}

static void wait_pit(u32 ticks)
{
	u32 end = pit_ticks + ticks;
	while ((int)(pit_ticks - end) < 0)
		__asm__ volatile("hlt");
}

/* Passes when got is within 1 % of want. */
static void check_rate(const char *name, u32 got, u32 want)
{
	u32 tol = want / 100 + 1;
	if (!check(name, got + tol >= want && got <= want + tol))
		check_eq(name, got, want);
}

void test_main(void)
{
	exc_hooks[0x20] = pit_hook;
	exc_hooks[0x28] = rtc_hook;
	exc_hooks[0x24] = uart_hook;
	exc_hooks[0x40] = apic_hook;

	/* 8259A pair: edge triggered, vectors 0x20 and 0x28, cascade on IR2. */
	outb(0x20, 0x11); outb(0xA0, 0x11);
	outb(0x21, 0x20); outb(0xA1, 0x28);
	outb(0x21, 0x04); outb(0xA1, 0x02);
	outb(0x21, 0x01); outb(0xA1, 0x01);
	outb(0x21, 0xFA); /* IRQ 0 and the cascade */
	outb(0xA1, 0xFE); /* IRQ 8 */
	check_eq("pic-imr-readback", inb(0x21), 0xFA);

	/* 8254 channel 0, mode 2, 1193 counts: 1000.15 Hz. */
	outb(0x43, 0x34);
	outb(0x40, 1193 & 0xFF);
	outb(0x40, 1193 >> 8);

	/* RTC periodic interrupt at 1024 Hz. */
	outb(0x70, 0x8A); outb(0x71, 0x26);
	outb(0x70, 0x8B); outb(0x71, inb(0x71) | 0x40);
	outb(0x70, 0x0C); (void)inb(0x71);

	__asm__ volatile("sti");
	wait_pit(10);
	u32 p0 = pit_ticks, r0 = rtc_ticks;
	wait_pit(500);
	u32 dp = pit_ticks - p0, dr = rtc_ticks - r0;
	check("pit-interrupts-arrive", dp >= 500);
	/* 500 PIT ticks = 0.49993 s; at 1024 Hz that is 511.9 RTC ticks. */
	check_rate("rtc-rate-vs-pit", dr, 512);

	/* Masking IRQ 0 stops PIT interrupts; the RTC keeps running. */
	outb(0x21, 0xFB);
	u32 pm = pit_ticks, rm = rtc_ticks;
	while (rtc_ticks - rm < 100)
		__asm__ volatile("hlt");
	check_eq("pit-masked-no-interrupts", pit_ticks - pm, 0);
	outb(0x21, 0xFA);
	wait_pit(5);
	check("pit-unmasked-resumes", pit_ticks - pm >= 5);

	/* The RTC's periodic interrupt off. */
	outb(0x70, 0x8B); outb(0x71, inb(0x71) & ~0x40);
	outb(0xA1, 0xFF);

	/* UART: THRE interrupt with OUT2, then loopback with RDA. */
	outb(0x21, 0xEA); /* + IRQ 4 */
	outb(0x3FC, 0x0B); /* DTR, RTS, OUT2 */
	outb(0x3F9, 0x02);
	wait_pit(2);
	check("uart-thre-interrupt", uart_thre >= 1);
	outb(0x3F9, 0x00);
	/* Loopback: OUT2 no longer reaches the IRQ line on a PC, so the
	 * receive-data interrupt is only visible in IIR. */
	outb(0x21, 0xFA);
	outb(0x3FC, 0x18); /* loopback + OUT2 */
	outb(0x3F9, 0x01);
	outb(0x3F8, 'Z');
	for (int i = 0; i < 1000 && !(inb(0x3FD) & 1); i++)
		;
	u8 iir = inb(0x3FA) & 0x0F, rx = inb(0x3F8);
	outb(0x3F9, 0x00);
	outb(0x3FC, 0x03); /* back to normal before printing */
	/* Received data available, or its FIFO character-timeout form. */
	if (!check("uart-loopback-iir-rda", iir == 0x04 || iir == 0x0C))
		check_eq("uart-loopback-iir-rda", iir, 0x04);
	check_eq("uart-loopback-data", rx, 'Z');
	check_eq("uart-loopback-no-irq", uart_rx_irqs, 0);

	/* Local APIC: enable, calibrate the timer against the PIT. */
	LAPIC_REG(0xF0) = 0x1FF;        /* software enable, spurious 0xFF */
	LAPIC_REG(0x80) = 0;            /* TPR */
	LAPIC_REG(0x3E0) = 0x3;         /* divide by 16 */
	LAPIC_REG(0x320) = 0x10040;     /* one-shot, masked */
	wait_pit(1);
	LAPIC_REG(0x380) = 0xFFFFFFFF;
	wait_pit(100);
	u32 per_100ms = 0xFFFFFFFF - LAPIC_REG(0x390);
	check("apic-timer-counts", per_100ms > 1000);
	/* Periodic at 1 kHz: one period is per_100ms / 100 counts. */
	LAPIC_REG(0x320) = 0x20040;     /* periodic, vector 0x40 */
	LAPIC_REG(0x380) = per_100ms / 100;
	wait_pit(5);
	u32 a0 = apic_ticks;
	p0 = pit_ticks;
	wait_pit(300);
	check_rate("apic-timer-rate-vs-pit", apic_ticks - a0, pit_ticks - p0);
	/* Masked through the LVT: no more timer interrupts. */
	LAPIC_REG(0x320) = 0x30040;
	wait_pit(2);
	a0 = apic_ticks;
	wait_pit(50);
	check_eq("apic-timer-masked", apic_ticks - a0, 0);
	LAPIC_REG(0x380) = 0;
	__asm__ volatile("cli");
}
