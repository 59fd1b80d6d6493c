/* PCI: configuration mechanism #1, bus 0 set up as SeaBIOS sets up an
 * i440FX/PIIX board (BARs, PIRQ routing, interrupt lines, the PIIX
 * functions' own registers), the PCI IRQ routing table ($PIR), and the
 * PCI BIOS functions of INT 1Ah (B1xxh). */
#include "bios.h"

u8 pci_last_bus;

/* The ISA IRQs PIRQ A-D are routed to (QEMU's and SeaBIOS's choice). */
static const u8 pirq_irq[4] = {10, 10, 11, 11};
#define PM_IO_BASE 0xB000
#define SMB_IO_BASE 0xB100
#define SCI_IRQ 9

static void cfg_addr(u16 bdf, u8 reg) { outl(0x80000000 | (u32)bdf << 8 | (reg & 0xFC), 0xCF8); }

u32 pci_cfg_read(u16 bdf, u8 reg, u8 size)
{
	cfg_addr(bdf, reg);
	u16 port = 0xCFC + (reg & 3);
	return size == 1 ? inb(port) : size == 2 ? inw(port) : inl(port);
}

void pci_cfg_write(u16 bdf, u8 reg, u8 size, u32 v)
{
	cfg_addr(bdf, reg);
	u16 port = 0xCFC + (reg & 3);
	if (size == 1)
		outb(v, port);
	else if (size == 2)
		outw(v, port);
	else
		outl(v, port);
}

/* Calls f for each function on bus 0; stops when f returns nonzero. */
static int pci_each(int (*f)(u16 bdf, void *arg), void *arg)
{
	for (u16 dev = 0; dev < 32; dev++) {
		for (u16 fn = 0; fn < 8; fn++) {
			u16 bdf = dev << 3 | fn;
			u32 id = pci_cfg_read(bdf, 0, 4);
			if ((id & 0xFFFF) == 0xFFFF || (id & 0xFFFF) == 0) {
				if (fn == 0)
					break;
				continue;
			}
			int r = f(bdf, arg);
			if (r)
				return r;
			if (fn == 0 && !(pci_cfg_read(bdf, 0x0E, 1) & 0x80))
				break;
		}
	}
	return 0;
}

struct bar {
	u16 bdf;
	u8 reg;
	u8 is64;
	u32 size;
};
#define MAX_BARS 48
static struct bar mem_bars[MAX_BARS];
static int n_mem_bars;
static u16 io_next = 0xC000;

static u32 align_up(u32 v, u32 a) { return (v + a - 1) & ~(a - 1); }

static void setup_bars(u16 bdf)
{
	u16 cmd = 0;
	for (u8 reg = 0x10; reg <= 0x24; reg += 4) {
		u32 old = pci_cfg_read(bdf, reg, 4);
		pci_cfg_write(bdf, reg, 4, 0xFFFFFFFF);
		u32 mask = pci_cfg_read(bdf, reg, 4);
		pci_cfg_write(bdf, reg, 4, old);
		if (!mask || mask == 0xFFFFFFFF)
			continue;
		if (mask & 1) {
			u32 size = ~(mask & 0xFFFC) + 1;
			size &= 0xFFFF;
			if (!size)
				continue;
			u32 base = align_up(io_next, MAX(size, 4));
			if (base + size > 0x10000)
				continue;
			pci_cfg_write(bdf, reg, 4, base | 1);
			io_next = base + size;
			cmd |= 1;
		} else {
			u32 size = ~(mask & ~0xF) + 1;
			int is64 = (mask & 6) == 4;
			if (n_mem_bars < MAX_BARS && size) {
				struct bar *b = &mem_bars[n_mem_bars++];
				b->bdf = bdf;
				b->reg = reg;
				b->is64 = is64;
				b->size = size;
			}
			if (is64) {
				pci_cfg_write(bdf, reg + 4, 4, 0);
				reg += 4;
			}
			cmd |= 2;
		}
	}
	if (cmd)
		pci_cfg_write(bdf, 0x04, 2, pci_cfg_read(bdf, 0x04, 2) | cmd | 4);
}

/* Memory BARs, largest first, from the top of the PCI hole (the I/O APIC
 * at 0xFEC00000) downwards, each aligned to its size. */
static void assign_mem_bars(void)
{
	u32 top = 0xFEC00000;
	u32 floor = ram_below_4g > 0xE0000000 ? ram_below_4g : 0xE0000000;
	for (;;) {
		int best = -1;
		for (int i = 0; i < n_mem_bars; i++)
			if (mem_bars[i].size && (best < 0 || mem_bars[i].size > mem_bars[best].size))
				best = i;
		if (best < 0)
			break;
		struct bar *b = &mem_bars[best];
		u32 base = (top - b->size) & ~(b->size - 1);
		if (b->size > top || base < floor) {
			dprintf("PCI: no room for %x's BAR %x (%u bytes)\n", b->bdf, b->reg, b->size);
		} else {
			u32 low = pci_cfg_read(b->bdf, b->reg, 4) & 0xF;
			pci_cfg_write(b->bdf, b->reg, 4, base | low);
			top = base;
		}
		b->size = 0;
	}
}

static int setup_function(u16 bdf, void *arg)
{
	(void)arg;
	u32 id = pci_cfg_read(bdf, 0, 4);
	u32 class = pci_cfg_read(bdf, 0x08, 4) >> 8;
	u8 dev = bdf >> 3;
	dprintf("PCI %02x:%02x.%u %04x:%04x class %06x\n", 0, dev, bdf & 7, id & 0xFFFF, id >> 16,
		class);
	if ((class >> 8) == 0x0600)
		return 0; /* the host bridge */
	switch (id) {
	case 0x70008086: /* PIIX3 ISA bridge: PIRQ routes; ELCR: PCI IRQs level */
		for (int i = 0; i < 4; i++)
			pci_cfg_write(bdf, 0x60 + i, 1, pirq_irq[i]);
		outb(0, 0x4D0);
		outb(1 << (SCI_IRQ - 8) | 1 << (10 - 8) | 1 << (11 - 8), 0x4D1);
		return 0;
	case 0x70108086: /* PIIX3 IDE: decode both legacy channels */
		pci_cfg_write(bdf, 0x40, 2, 0x8000);
		pci_cfg_write(bdf, 0x42, 2, 0x8000);
		break;
	case 0x71138086: /* PIIX4 PM: the PM block where the FADT says, SMBus */
		pci_cfg_write(bdf, 0x40, 4, PM_IO_BASE | 1);
		pci_cfg_write(bdf, 0x80, 1, 1);
		pci_cfg_write(bdf, 0x90, 4, SMB_IO_BASE | 1);
		pci_cfg_write(bdf, 0xD2, 1, 0x09);
		pci_cfg_write(bdf, 0x3C, 1, SCI_IRQ);
		return 0;
	}
	setup_bars(bdf);
	u8 pin = pci_cfg_read(bdf, 0x3D, 1);
	if (pin >= 1 && pin <= 4)
		pci_cfg_write(bdf, 0x3C, 1, pirq_irq[(pin - 1 + dev - 1) & 3]);
	return 0;
}

void pci_setup(void)
{
	if (pci_cfg_read(0, 0, 4) == 0xFFFFFFFF) {
		dprintf("PCI: no host bridge\n");
		return;
	}
	n_mem_bars = 0;
	pci_each(setup_function, NULL);
	assign_mem_bars();
	pirq_table_setup();
}

/* --- the PCI IRQ routing table ($PIR), in the F segment ---------------- */

struct pir_slot {
	u8 bus, devfn;
	struct {
		u8 link;
		u16 bitmap;
	} packed pin[4];
	u8 slot, reserved;
} packed;

struct pir_header {
	char signature[4];
	u16 version;
	u16 size;
	u8 router_bus, router_devfn;
	u16 exclusive_irqs;
	u32 router_id;
	u32 miniport;
	u8 reserved[11];
	u8 checksum;
	struct pir_slot slots[8];
} packed;

#define PIR_OFFSET 0xF00 /* in the F segment's table area */
#define PIR_SLOTS 8

void pirq_table_setup(void)
{
	struct pir_header h;
	memset(&h, 0, sizeof(h));
	memcpy(h.signature, "$PIR", 4);
	h.version = 0x0100;
	h.size = sizeof(h);
	h.router_devfn = 1 << 3;
	h.router_id = 0x70008086;
	for (int i = 0; i < PIR_SLOTS; i++) {
		u8 dev = i + 1;
		struct pir_slot *s = &h.slots[i];
		s->devfn = dev << 3;
		for (int p = 0; p < 4; p++) {
			s->pin[p].link = 0x60 + ((p + dev - 1) & 3);
			s->pin[p].bitmap = 0xDEB8;
		}
		s->slot = dev == 1 ? 0 : dev;
	}
	u8 sum = 0;
	for (u32 i = 0; i < sizeof(h); i++)
		sum += ((u8 *)&h)[i];
	h.checksum = -sum;
	/* The table area is shared with the tables from fw_cfg. */
	for (u32 i = 0; i < sizeof(h); i++) {
		if (rd8(BIOS_SEG, PIR_OFFSET + i)) {
			dprintf("PCI: no room for the $PIR table at %x\n", 0xF0000 + PIR_OFFSET);
			return;
		}
	}
	near_to_far(BIOS_SEG, PIR_OFFSET, &h, sizeof(h));
}

/* --- INT 1Ah B1xxh: the PCI BIOS --------------------------------------- */

struct find_arg {
	u32 want;
	u32 mask;
	u8 use_class;
	u16 index;
	u16 found;
};

static int find_cb(u16 bdf, void *a)
{
	struct find_arg *f = a;
	u32 v = f->use_class ? pci_cfg_read(bdf, 0x08, 4) >> 8 : pci_cfg_read(bdf, 0, 4);
	if ((v & f->mask) != f->want)
		return 0;
	if (f->index--)
		return 0;
	f->found = bdf;
	return 1;
}

int pci_find_device(u16 vendor, u16 device, u16 index)
{
	struct find_arg f = {(u32)device << 16 | vendor, 0xFFFFFFFF, 0, index, 0};
	return pci_each(find_cb, &f) ? f.found : -1;
}

int pci_find_class(u32 class, u16 index)
{
	struct find_arg f = {class & 0xFFFFFF, 0xFFFFFF, 1, index, 0};
	return pci_each(find_cb, &f) ? f.found : -1;
}

#define PCI_OK 0x00
#define PCI_UNSUPPORTED 0x81
#define PCI_BAD_VENDOR 0x83
#define PCI_NOT_FOUND 0x86
#define PCI_BAD_REGISTER 0x87
#define PCI_BUFFER_SMALL 0x89

static void pci_result(struct bregs *r, u8 code)
{
	r->ah = code;
	if (code)
		set_cf(r);
	else
		clear_cf(r);
}

void handle_1a_pci(struct bregs *r)
{
	/* Only bus 0 exists: other buses read as absent functions. */
	u16 bdf = r->bx;
	switch (r->al) {
	case 0x01:
		r->al = 0x01; /* configuration mechanism #1 */
		r->bx = 0x0210;
		r->cl = pci_last_bus;
		r->edx = 0x20494350; /* "PCI " */
		r->edi = 0;
		pci_result(r, PCI_OK);
		return;
	case 0x02: {
		if (r->dx == 0xFFFF) {
			pci_result(r, PCI_BAD_VENDOR);
			return;
		}
		int f = pci_find_device(r->dx, r->cx, r->si);
		if (f < 0) {
			pci_result(r, PCI_NOT_FOUND);
			return;
		}
		r->bx = f;
		pci_result(r, PCI_OK);
		return;
	}
	case 0x03: {
		int f = pci_find_class(r->ecx, r->si);
		if (f < 0) {
			pci_result(r, PCI_NOT_FOUND);
			return;
		}
		r->bx = f;
		pci_result(r, PCI_OK);
		return;
	}
	case 0x08 ... 0x0D: {
		u8 size = (r->al - 0x08) % 3 == 0 ? 1 : (r->al - 0x08) % 3 == 1 ? 2 : 4;
		int write = r->al >= 0x0B;
		u16 reg = r->di;
		if (reg > 0xFF || (reg & (size - 1))) {
			pci_result(r, PCI_BAD_REGISTER);
			return;
		}
		if (bdf >> 8) {
			if (!write)
				r->ecx = size == 1 ? (r->ecx & ~0xFF) | 0xFF
					: size == 2 ? (r->ecx & ~0xFFFF) | 0xFFFF : 0xFFFFFFFF;
			pci_result(r, PCI_OK);
			return;
		}
		if (write) {
			pci_cfg_write(bdf, reg, size, r->ecx);
		} else {
			u32 v = pci_cfg_read(bdf, reg, size);
			if (size == 1)
				r->cl = v;
			else if (size == 2)
				r->cx = v;
			else
				r->ecx = v;
		}
		pci_result(r, PCI_OK);
		return;
	}
	case 0x0E: {
		/* ES:DI: {u16 size; u16 offset; u16 segment} of the caller's buffer. */
		u16 want = rd16(r->es, r->di);
		u16 len = PIR_SLOTS * sizeof(struct pir_slot);
		wr16(r->es, r->di, len);
		r->bx = 1 << 10 | 1 << 11; /* IRQs used only by PCI */
		if (want < len) {
			pci_result(r, PCI_BUFFER_SMALL);
			return;
		}
		u16 off = rd16(r->es, r->di + 2), seg = rd16(r->es, r->di + 4);
		far_memcpy(seg, off, BIOS_SEG, PIR_OFFSET + 32, len);
		pci_result(r, PCI_OK);
		return;
	}
	default:
		pci_result(r, PCI_UNSUPPORTED);
		return;
	}
}
