/* QEMU's fw_cfg interface (ports 0x510/0x511, DMA at 0x514): how the BIOS
 * learns the RAM size, the e820 map and the firmware tables the machine
 * describes itself with. */
#include "bios.h"

#define FW_CFG_PORT 0x510
#define FW_CFG_DATA 0x511
#define FW_CFG_DMA 0x514
#define KEY_SIGNATURE 0x00
#define KEY_ID 0x01
#define KEY_RAM_SIZE 0x03
#define KEY_FILE_DIR 0x19

#define DMA_ERROR 1
#define DMA_READ 2
#define DMA_SKIP 4
#define DMA_SELECT 8

static int present = -1;
static int dma_ok;

void fwcfg_select(u16 select) { outw(select, FW_CFG_PORT); }

void fwcfg_read_more(void *buf, u32 len)
{
	u8 *b = buf;
	while (len--)
		*b++ = inb(FW_CFG_DATA);
}

void fwcfg_read(u16 select, void *buf, u32 len)
{
	fwcfg_select(select);
	fwcfg_read_more(buf, len);
}

int fwcfg_present(void)
{
	if (present < 0) {
		char sig[4];
		fwcfg_read(KEY_SIGNATURE, sig, 4);
		present = !memcmp(sig, "QEMU", 4);
		if (present) {
			u32 id = 0;
			fwcfg_read(KEY_ID, &id, 4);
			dma_ok = (id & 2) && inl(FW_CFG_DMA) == bswap32(0x51454d55);
		}
	}
	return present;
}

struct dma_desc {
	u32 control;
	u32 length;
	u32 addr_hi;
	u32 addr_lo;
} packed;

/* Reads len bytes of the selected item, from where the last read ended, to
 * physical address phys; through DMA when the device has it. */
void fwcfg_dma_read(u32 phys, u32 len)
{
	if (!dma_ok) {
		while (len) {
			u8 buf[64];
			u32 n = MIN(len, sizeof(buf));
			fwcfg_read_more(buf, n);
			flat_memcpy(phys, DATA_LIN(buf), n);
			phys += n;
			len -= n;
		}
		return;
	}
	static struct dma_desc d __attribute__((aligned(16)));
	d.control = bswap32(DMA_READ);
	d.length = bswap32(len);
	d.addr_hi = 0;
	d.addr_lo = bswap32(phys);
	barrier();
	outl(0, FW_CFG_DMA);
	outl(bswap32(DATA_LIN(&d)), FW_CFG_DMA + 4);
	barrier();
	if (d.control)
		dprintf("fw_cfg: DMA to %x (%u bytes) failed\n", phys, len);
}

int fwcfg_find(const char *name, u16 *select, u32 *size)
{
	if (!fwcfg_present())
		return 0;
	u32 count;
	fwcfg_read(KEY_FILE_DIR, &count, 4);
	count = bswap32(count);
	for (u32 i = 0; i < count && i < 256; i++) {
		struct {
			u32 size;
			u16 select;
			u16 reserved;
			char name[56];
		} packed f;
		fwcfg_read_more(&f, sizeof(f));
		f.name[55] = 0;
		if (!memcmp(f.name, name, strlen(name) + 1)) {
			*select = __builtin_bswap16(f.select);
			*size = bswap32(f.size);
			return 1;
		}
	}
	return 0;
}

u64 fwcfg_ram_size(void)
{
	if (!fwcfg_present())
		return 0;
	u64 v = 0;
	fwcfg_read(KEY_RAM_SIZE, &v, 8);
	return v;
}

/* A file of placed records: le32 address, le32 length, then the bytes,
 * copied to the address. Only RAM and the table area at the start of
 * the F segment (writable while POST runs) are accepted. */
static void load_records(const char *name)
{
	u16 sel;
	u32 size;
	if (!fwcfg_find(name, &sel, &size)) {
		dprintf("fw_cfg: no %s\n", name);
		return;
	}
	fwcfg_select(sel);
	u32 at = 0;
	while (at + 8 <= size) {
		u32 hdr[2];
		fwcfg_read_more(hdr, 8);
		u32 addr = hdr[0], len = hdr[1];
		at += 8;
		if (len > size - at)
			break;
		int in_ram = addr >= 0x100000 && addr + len <= ram_below_4g && addr + len > addr;
		int in_fseg = addr >= 0xF0000 && addr + len <= 0xF0000 + TABLES_END;
		if (!in_ram && !in_fseg) {
			dprintf("fw_cfg: %s: record at %x (%u bytes) refused\n", name, addr, len);
			break;
		}
		fwcfg_dma_read(addr, len);
		at += len;
	}
}

void fwcfg_load_tables(void)
{
	u16 sel;
	u32 size;
	if (fwcfg_find("etc/e820", &sel, &size)) {
		int n = MIN(size / sizeof(struct e820_entry), E820_MAX);
		fwcfg_read(sel, e820_map, n * sizeof(struct e820_entry));
		e820_count = n;
	}
	load_records("etc/morph86/acpi");
	load_records("etc/morph86/mptable");
	load_records("etc/morph86/smbios");
}
