/* fwcfg: QEMU's firmware configuration device and the firmware tables a
 * Multiboot boot finds.
 *
 * fw_cfg as QEMU's docs/specs/fw_cfg.rst describes it for x86: selector
 * 0x510 (16-bit), data 0x511 (8-bit), DMA address 0x514/0x518 (big-endian
 * halves; the low half starts the transfer), descriptor {be32 control,
 * be32 length, be64 address}, control bits ERROR 1, READ 2, SKIP 4,
 * SELECT 8. Checked: the "QEMU" signature and the feature bits (traditional
 * and DMA), the DMA signature "QEMU CFG", FW_CFG_NB_CPUS = 1 (and
 * FW_CFG_MAX_CPUS, which on x86 is one past the highest APIC ID, at least
 * that), FW_CFG_RAM_SIZE = the 128 MiB the tests give (-m 128 /
 * --memory 128), selectors that name nothing reading 0, the file directory
 * and the signature read through DMA equal to the traditional reads, SKIP,
 * and etc/e820 against the Multiboot memory map, entry by entry for the RAM
 * ranges: every RAM range of the Multiboot map lies in a RAM entry of
 * etc/e820, and every RAM entry of etc/e820 is covered by the Multiboot
 * map, the legacy hole 0xA0000..0x100000 aside. (QEMU's etc/e820 holds one
 * RAM entry per RAM block, and its Multiboot map is SeaBIOS's e820, which
 * carves out the EBDA, the BIOS area and SeaBIOS's own tables; morph86
 * gives the same map in both.)
 *
 * The firmware tables: an ACPI RSDP on a 16-byte boundary in
 * 0xE0000..0x100000 (ACPI 6.4 §5.2.5.1) with a valid checksum, pointing at
 * an RSDT with a valid checksum that the memory map does not call RAM; the
 * MP floating pointer "_MP_" (MP 1.4 §4.1) and the SMBIOS "_SM_" entry point
 * (DSP0134 §5.2.1) in 0xF0000..0x100000. QEMU's -kernel boot runs SeaBIOS,
 * which builds them; morph86 writes them for Multiboot boots as for Linux.
 *
 * On morph86, whose fw_cfg also carries etc/morph86/acpi, mptable and smbios
 * (records: le32 address, le32 length, bytes), the records must equal what
 * lies in memory at their addresses; under QEMU those files do not exist
 * and the kernel says so. */
#include "test.h"
#include "multiboot.h"

const char test_name[] = "fwcfg";

#define FW_SEL 0x510
#define FW_DATA 0x511
#define FW_DMA_HI 0x514
#define FW_DMA_LO 0x518

#define FW_SIGNATURE 0x00
#define FW_ID 0x01
#define FW_RAM_SIZE 0x03
#define FW_NB_CPUS 0x05
#define FW_MAX_CPUS 0x0F
#define FW_FILE_DIR 0x19

#define DMA_ERROR 1
#define DMA_READ 2
#define DMA_SKIP 4
#define DMA_SELECT 8

#define EXPECTED_RAM (128u << 20)

static inline void outw_(u16 p, u16 v) { __asm__ volatile("outw %0, %1" :: "a"(v), "Nd"(p)); }
static inline u32 inl(u16 p) { u32 v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(p)); return v; }
static inline u32 be32(u32 v) { return __builtin_bswap32(v); }
static inline u16 be16(u16 v) { return (u16)(v >> 8 | v << 8); }

static void fw_select(u16 key) { outw_(FW_SEL, key); }

static void fw_read(void *buf, u32 n)
{
	u8 *p = buf;
	while (n--)
		*p++ = inb(FW_DATA);
}

static u32 fw_read_u32(u16 key)
{
	u32 v;
	fw_select(key);
	fw_read(&v, 4);
	return v;
}

struct __attribute__((packed)) dma_access {
	u32 control, length;
	u32 address_hi, address_lo;
};

static volatile struct dma_access dma_desc __attribute__((aligned(16)));

/* Runs one DMA transfer; returns the control word it ended with. */
static u32 fw_dma(u32 control, const void *addr, u32 len)
{
	dma_desc.control = be32(control);
	dma_desc.length = be32(len);
	dma_desc.address_hi = 0;
	dma_desc.address_lo = be32((u32)addr);
	__asm__ volatile("" ::: "memory");
	outl(FW_DMA_HI, 0);
	outl(FW_DMA_LO, be32((u32)&dma_desc));
	for (u32 spin = 0; spin < 1000000; spin++) {
		u32 c = be32(dma_desc.control);
		if (!(c & ~DMA_ERROR))
			return c;
	}
	return be32(dma_desc.control);
}

struct __attribute__((packed)) fw_file {
	u32 size;
	u16 select, reserved;
	char name[56];
};

#define MAX_FILES 64
static struct {
	u32 count;
	struct fw_file f[MAX_FILES];
} dir, dir_dma;

static int streq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

static const struct fw_file *find_file(const char *name)
{
	u32 n = be32(dir.count);
	for (u32 i = 0; i < n && i < MAX_FILES; i++)
		if (streq(dir.f[i].name, name))
			return &dir.f[i];
	return 0;
}

/* A memory map entry, from either source. */
struct range {
	u64 base, len;
	u32 type;
};

#define MAX_RANGES 64
static struct range fw_map[MAX_RANGES], mb_map[MAX_RANGES];
static u32 fw_n, mb_n;
static u8 e820_raw[MAX_RANGES * 20];

/* Whether [base, end) lies inside one map entry of `type`. */
static int inside(const struct range *m, u32 n, u64 base, u64 end, u32 type)
{
	for (u32 i = 0; i < n; i++)
		if (m[i].type == type && m[i].base <= base && end <= m[i].base + m[i].len)
			return 1;
	return 0;
}

/* Whether every byte of [base, end) is in some entry of m (any type),
 * the legacy hole 0xA0000..0x100000 aside. */
static int covered(const struct range *m, u32 n, u64 base, u64 end)
{
	u64 at = base;
	while (at < end) {
		if (at >= 0xA0000 && at < 0x100000) {
			at = 0x100000;
			continue;
		}
		int moved = 0;
		for (u32 i = 0; i < n; i++) {
			if (m[i].base <= at && at < m[i].base + m[i].len) {
				at = m[i].base + m[i].len;
				moved = 1;
			}
		}
		if (!moved)
			return 0;
	}
	return 1;
}

static void print_map(const char *what, const struct range *m, u32 n)
{
	printf("%s:\n", what);
	for (u32 i = 0; i < n; i++)
		printf("  %x_%08x..%x_%08x type %u\n", (u32)(m[i].base >> 32), (u32)m[i].base,
		       (u32)((m[i].base + m[i].len) >> 32), (u32)(m[i].base + m[i].len), m[i].type);
}

static u8 sum(const u8 *p, u32 n)
{
	u8 s = 0;
	while (n--)
		s += *p++;
	return s;
}

/* The first 16-byte aligned `sig` in [from, to). */
static const u8 *scan(u32 from, u32 to, const char *sig, u32 len)
{
	for (u32 a = from; a < to; a += 16)
		if (mb_memeq((const void *)a, sig, len))
			return (const u8 *)a;
	return 0;
}

static u8 scratch[8192] __attribute__((aligned(16)));

static void check_signature_and_ids(void)
{
	char sig[5] = {0};
	fw_select(FW_SIGNATURE);
	fw_read(sig, 4);
	check("signature", mb_memeq(sig, "QEMU", 4));
	u32 id = fw_read_u32(FW_ID);
	check("id-traditional-and-dma", (id & 3) == 3);
	u32 hi = be32(inl(FW_DMA_HI)), lo = be32(inl(FW_DMA_LO));
	if (!check("dma-signature", hi == 0x51454d55 && lo == 0x20434647))
		printf("  DMA window reads %x %x\n", hi, lo);
	u16 nb = 0, max = 0;
	fw_select(FW_NB_CPUS);
	fw_read(&nb, 2);
	fw_select(FW_MAX_CPUS);
	fw_read(&max, 2);
	printf("FW_CFG_NB_CPUS %u, FW_CFG_MAX_CPUS %u\n", nb, max);
	check_eq("nb-cpus", nb, 1);
	if (!check("max-cpus-at-least-nb-cpus", max >= nb && max >= 1))
		printf("  FW_CFG_MAX_CPUS %u\n", max);
	u32 ram[2];
	fw_select(FW_RAM_SIZE);
	fw_read(ram, 8);
	check_eq("ram-size-high", ram[1], 0);
	check_eq("ram-size", ram[0], EXPECTED_RAM);
}

/* Selectors that name nothing read zeros, traditionally and through DMA. */
static void check_empty_selectors(void)
{
	static const u16 keys[] = {0x3FFF, 0x7FFF, 0xFFFF, 0xBFFF, 0x8010, 0x0040, 0x1234, 0xC321};
	int ok = 1;
	for (u32 i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		u8 b[8];
		fw_select(keys[i]);
		fw_read(b, 8);
		for (int j = 0; j < 8; j++)
			if (b[j]) {
				ok = 0;
				printf("  selector %x byte %d reads %x\n", keys[i], j, b[j]);
			}
	}
	check("empty-selectors-read-zero", ok);
	/* Pseudo-random selectors beyond the 0x40 items of each table. */
	u32 x = 0x2545F491;
	ok = 1;
	for (int i = 0; i < 64; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		u16 k = (u16)x;
		if ((k & 0x3FFF) < 0x40)
			continue;
		u32 v = fw_read_u32(k);
		if (v) {
			ok = 0;
			printf("  selector %x reads %x\n", k, v);
		}
	}
	check("random-selectors-read-zero", ok);
	memset(scratch, 0xAA, 32);
	u32 c = fw_dma(0x3FFF << 16 | DMA_SELECT | DMA_READ, scratch, 32);
	int zero = 1;
	for (int i = 0; i < 32; i++)
		zero &= scratch[i] == 0;
	check("dma-read-of-nothing-gives-zeros", c == 0 && zero);
	/* A destination beyond RAM (256 MiB with 128 MiB of RAM) fails. */
	c = fw_dma(FW_SIGNATURE << 16 | DMA_SELECT | DMA_READ, (void *)0x10000000, 4);
	check_eq("dma-beyond-ram-sets-error", c, DMA_ERROR);
}

static void check_directory_and_dma(void)
{
	fw_select(FW_FILE_DIR);
	fw_read(&dir.count, 4);
	u32 n = be32(dir.count);
	if (!check("file-count", n > 0 && n <= MAX_FILES)) {
		printf("  %u files\n", n);
		return;
	}
	fw_read(dir.f, n * sizeof dir.f[0]);
	printf("fw_cfg files:\n");
	for (u32 i = 0; i < n; i++)
		printf("  %x %u %s\n", be16(dir.f[i].select), be32(dir.f[i].size), dir.f[i].name);
	u32 c = fw_dma(FW_FILE_DIR << 16 | DMA_SELECT | DMA_READ, &dir_dma, 4 + n * sizeof dir.f[0]);
	check_eq("dma-directory-status", c, 0);
	check("dma-directory-matches", mb_memeq(&dir_dma, &dir, 4 + n * sizeof dir.f[0]));
	/* The signature: skip 1 byte through DMA, read 2 through DMA, the last
	 * one through the data port. */
	memset(scratch, 0, 4);
	u32 c1 = fw_dma(FW_SIGNATURE << 16 | DMA_SELECT | DMA_SKIP, 0, 1);
	u32 c2 = fw_dma(DMA_READ, scratch, 2);
	u8 last = inb(FW_DATA);
	check("dma-skip-read-and-data-port",
	      c1 == 0 && c2 == 0 && scratch[0] == 'E' && scratch[1] == 'M' && last == 'U');
}

static void read_maps(void)
{
	const struct mb_info *mbi = (const struct mb_info *)mb_info;
	if (check("mb-flags-mmap", mbi->flags & MBI_MMAP)) {
		u32 at = mbi->mmap_addr, end = at + mbi->mmap_length;
		while (at < end && mb_n < MAX_RANGES) {
			const struct mb_mmap *e = (const struct mb_mmap *)at;
			mb_map[mb_n].base = e->base;
			mb_map[mb_n].len = e->len;
			mb_map[mb_n].type = e->type;
			mb_n++;
			at += e->size + 4;
		}
	}
	const struct fw_file *f = find_file("etc/e820");
	if (!check("etc-e820-present", f != 0))
		return;
	u32 size = be32(f->size);
	if (!check("etc-e820-size", size % 20 == 0 && size > 0 && size <= sizeof e820_raw)) {
		printf("  %u bytes\n", size);
		return;
	}
	fw_select(be16(f->select));
	fw_read(e820_raw, size);
	fw_n = size / 20;
	for (u32 i = 0; i < fw_n; i++) {
		const u8 *r = e820_raw + 20 * i;
		memcpy(&fw_map[i].base, r, 8);
		memcpy(&fw_map[i].len, r + 8, 8);
		memcpy(&fw_map[i].type, r + 16, 4);
	}
	/* The same file through DMA. */
	u32 c = fw_dma((u32)be16(f->select) << 16 | DMA_SELECT | DMA_READ, scratch, size);
	check("dma-etc-e820-matches", c == 0 && mb_memeq(scratch, e820_raw, size));
	print_map("etc/e820", fw_map, fw_n);
	print_map("multiboot memory map", mb_map, mb_n);
}

static void check_maps_agree(void)
{
	if (!fw_n || !mb_n)
		return;
	int ok = 1;
	for (u32 i = 0; i < mb_n; i++) {
		const struct range *r = &mb_map[i];
		if (r->type == 1 && !inside(fw_map, fw_n, r->base, r->base + r->len, 1)) {
			ok = 0;
			printf("  multiboot RAM %x..%x is not RAM in etc/e820\n", (u32)r->base,
			       (u32)(r->base + r->len));
		}
	}
	check("mb-ram-is-e820-ram", ok);
	ok = 1;
	for (u32 i = 0; i < fw_n; i++) {
		const struct range *r = &fw_map[i];
		if (r->type == 1 && !covered(mb_map, mb_n, r->base, r->base + r->len)) {
			ok = 0;
			printf("  etc/e820 RAM %x..%x is not all in the multiboot map\n", (u32)r->base,
			       (u32)(r->base + r->len));
		}
	}
	check("e820-ram-in-mb-map", ok);
	/* Both say where memory ends: 128 MiB (etc/e820: its RAM, ACPI and
	 * NVS entries; the Multiboot map: anything from 1 MiB below the
	 * memory-mapped devices). */
	u64 fw_top = 0, mb_top = 0;
	for (u32 i = 0; i < fw_n; i++)
		if (fw_map[i].type != 2 && fw_map[i].base + fw_map[i].len > fw_top &&
		    fw_map[i].base < 0xC0000000u)
			fw_top = fw_map[i].base + fw_map[i].len;
	for (u32 i = 0; i < mb_n; i++)
		if (mb_map[i].base >= 0x100000 && mb_map[i].base < 0xC0000000u &&
		    mb_map[i].base + mb_map[i].len > mb_top)
			mb_top = mb_map[i].base + mb_map[i].len;
	check_eq("e820-ram-top", (u32)fw_top, EXPECTED_RAM);
	check_eq("mb-map-top", (u32)mb_top, EXPECTED_RAM);
	check("low-ram-in-both", inside(fw_map, fw_n, 0, 0x9FC00, 1) && inside(mb_map, mb_n, 0, 0x9FC00, 1));
}

static void check_tables(void)
{
	const u8 *rsdp = scan(0xE0000, 0x100000, "RSD PTR ", 8);
	if (!check("acpi-rsdp-found", rsdp != 0))
		return;
	check_eq("acpi-rsdp-checksum", sum(rsdp, 20), 0);
	u32 rsdt = *(const u32 *)(rsdp + 16);
	const u8 *t = (const u8 *)rsdt;
	u32 len = *(const u32 *)(t + 4);
	check("acpi-rsdt", mb_memeq(t, "RSDT", 4) && len >= 36 && len < 4096 && sum(t, len) == 0);
	int reserved = 0;
	for (u32 i = 0; i < mb_n; i++)
		if (mb_map[i].type != 1 && mb_map[i].base <= rsdt &&
		    rsdt + len <= mb_map[i].base + mb_map[i].len)
			reserved = 1;
	if (!check("acpi-rsdt-not-ram", reserved))
		printf("  RSDT at %x\n", rsdt);
	const u8 *mp = scan(0xF0000, 0x100000, "_MP_", 4);
	check("mp-floating-pointer", mp && sum(mp, 16) == 0);
	const u8 *sm = scan(0xF0000, 0x100000, "_SM_", 4);
	check("smbios-entry-point", sm && sum(sm, sm[5]) == 0);
}

/* morph86's own table files: each record equals memory at its address. */
static void check_morph86_records(void)
{
	static const char *const names[] = {"etc/morph86/acpi", "etc/morph86/mptable",
					    "etc/morph86/smbios"};
	for (int i = 0; i < 3; i++) {
		const struct fw_file *f = find_file(names[i]);
		if (!f) {
			printf("note: no %s (not morph86)\n", names[i]);
			continue;
		}
		fw_select(be16(f->select));
		u32 left = be32(f->size);
		int ok = 1, records = 0;
		while (left >= 8 && ok) {
			u32 hdr[2];
			fw_read(hdr, 8);
			left -= 8;
			if (hdr[1] > left) {
				ok = 0;
				break;
			}
			const u8 *mem = (const u8 *)hdr[0];
			for (u32 k = 0; k < hdr[1]; k++)
				if (inb(FW_DATA) != mem[k])
					ok = 0;
			left -= hdr[1];
			records++;
		}
		printf("  %s: %d records\n", names[i], records);
		check(names[i], ok && left == 0 && records > 0);
	}
}

void test_main(void)
{
	check_signature_and_ids();
	check_empty_selectors();
	check_directory_and_dma();
	read_maps();
	check_maps_agree();
	check_tables();
	check_morph86_records();
}
