/* modules: Multiboot modules and command lines as QEMU passes them.
 * The Multiboot Specification 0.6.96 §3.3 (mods_count, mods_addr, the
 * module structure and its string; cmdline) and §3.1.2 (header flag 0:
 * modules page-aligned), with QEMU's conventions for -kernel/-append/-initrd
 * (hw/i386/multiboot.c): the kernel's command line is "<kernel path>
 * <append>", each "-initrd" entry "<file> <args>" becomes a module whose
 * string is the whole entry, and ",," in the list is a literal comma.
 *
 * Run with (paths as given; only the file names are checked):
 *   -append "modtest one two"
 *   -initrd "roms/build/module-a.txt alpha=1 list=x,,y,roms/build/module-b.txt second arg"
 * build.sh writes module-a.txt and module-b.txt. */
#include "test.h"
#include "multiboot.h"

const char test_name[] = "modules";

static const char module_a[] = "morph86 test module A: the first of two\n";
#define B_LINES 300 /* "module B line NNN\n", 18 bytes each: 5400 bytes */
#define B_LEN (B_LINES * 18)

/* The string s is "<word ending in file> <args>". */
static void check_cmdline(const char *name, const char *s, const char *file, const char *args)
{
	u32 n = mb_strlen(s), flen = mb_strlen(file), alen = mb_strlen(args);
	u32 sp = 0;
	while (sp < n && s[sp] != ' ')
		sp++;
	int ok = sp < n && sp >= flen && mb_memeq(s + sp - flen, file, flen) &&
		 n - sp - 1 == alen && mb_memeq(s + sp + 1, args, alen);
	if (ok)
		pass(name);
	else
		fail(name, "\"%s\", expected \"<...%s> %s\"", s, file, args);
}

static int module_b_ok(const char *p, u32 len)
{
	if (len != B_LEN)
		return 0;
	for (u32 i = 0; i < B_LINES; i++) {
		const char *l = p + 18 * i;
		if (!mb_memeq(l, "module B line ", 14) || l[14] != (char)('0' + i / 100) ||
		    l[15] != (char)('0' + i / 10 % 10) || l[16] != (char)('0' + i % 10) ||
		    l[17] != '\n')
			return 0;
	}
	return 1;
}

void test_main(void)
{
	const struct mb_info *mbi = (const struct mb_info *)mb_info;
	u32 kstart = (u32)__kernel_start, kend = (u32)__kernel_end;
	check_eq("magic", mb_magic, MB_BOOT_MAGIC);
	check("info-apart-from-kernel", !mb_overlap(mb_info, sizeof *mbi, kstart, kend - kstart));
	if (!check("flags-cmdline-mods", (mbi->flags & (MBI_CMDLINE | MBI_MODS)) == (MBI_CMDLINE | MBI_MODS)))
		return;
	const char *cmd = (const char *)mbi->cmdline;
	check_cmdline("kernel-cmdline", cmd, "modules.elf", "modtest one two");
	check("cmdline-apart-from-kernel",
	      !mb_overlap(mbi->cmdline, mb_strlen(cmd) + 1, kstart, kend - kstart));
	if (!check_eq("mods-count", mbi->mods_count, 2))
		return;
	const struct mb_module *m = (const struct mb_module *)mbi->mods_addr;
	check("mods-list-apart-from-kernel",
	      !mb_overlap(mbi->mods_addr, 2 * sizeof *m, kstart, kend - kstart));
	check_cmdline("module-0-cmdline", (const char *)m[0].string, "module-a.txt", "alpha=1 list=x,y");
	check_cmdline("module-1-cmdline", (const char *)m[1].string, "module-b.txt", "second arg");
	u32 len0 = m[0].mod_end - m[0].mod_start, len1 = m[1].mod_end - m[1].mod_start;
	check_eq("module-0-length", len0, sizeof module_a - 1);
	check("module-0-contents", len0 == sizeof module_a - 1 &&
				       mb_memeq((const void *)m[0].mod_start, module_a, len0));
	check_eq("module-1-length", len1, B_LEN);
	check("module-1-contents", module_b_ok((const char *)m[1].mod_start, len1));
	check_eq("module-0-page-aligned", m[0].mod_start & 0xFFF, 0);
	check_eq("module-1-page-aligned", m[1].mod_start & 0xFFF, 0);
	check("modules-apart", !mb_overlap(m[0].mod_start, len0, m[1].mod_start, len1));
	check("modules-apart-from-kernel",
	      !mb_overlap(m[0].mod_start, len0, kstart, kend - kstart) &&
		      !mb_overlap(m[1].mod_start, len1, kstart, kend - kstart));
	int apart = 1;
	for (int i = 0; i < 2; i++) {
		u32 s = m[i].string, slen = mb_strlen((const char *)s) + 1;
		for (int j = 0; j < 2; j++) {
			u32 l = m[j].mod_end - m[j].mod_start;
			apart &= !mb_overlap(m[j].mod_start, l, mb_info, sizeof *mbi);
			apart &= !mb_overlap(m[j].mod_start, l, mbi->cmdline, mb_strlen(cmd) + 1);
			apart &= !mb_overlap(m[j].mod_start, l, s, slen);
			apart &= !mb_overlap(m[j].mod_start, l, mbi->mods_addr, 2 * sizeof *m);
		}
	}
	check("modules-apart-from-boot-info", apart);
}
