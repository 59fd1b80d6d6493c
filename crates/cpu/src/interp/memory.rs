//! Linear-address accesses through the soft MMU.
//!
//! Every access after segmentation comes here: a TLB lookup that yields a
//! host pointer (or a physical address for the bus), and on a miss a page
//! walk (or the identity map when paging is off). Accesses that cross a page
//! translate both pages before touching memory, so a #PF on the second page
//! leaves nothing half-written.

use super::Cpu;
use crate::bus::Bus;
use crate::fault::{Exec, Fault};
use crate::mmu::{self, perm, pf, pte, TlbEntry, Walk};

impl Cpu {
    /// Brings the TLB in line with the bus: a changed mapping epoch (RAM
    /// replaced, or this is another bus) drops all entries; a page that
    /// gained a tracking flag (code, page table) loses its write pointers
    /// and nothing else.
    #[inline]
    pub(super) fn sync_tlb<B: Bus>(&mut self, bus: &mut B) {
        let e = bus.map_epoch();
        if e != self.tlb_epoch {
            self.tlb_epoch = e;
            self.tlb.flush(false);
        }
        bus.take_new_flags(&mut self.new_flags);
        if !self.new_flags.is_empty() {
            self.tlb.revoke_writes(&mut self.new_flags);
            self.new_flags.clear();
        }
        self.absorb_pt_writes(bus);
        self.tlb_entries = self.tlb.active_entries();
    }

    /// Lets the TLB see the guest's writes to page-table pages so far.
    #[inline]
    fn absorb_pt_writes<B: Bus>(&mut self, bus: &mut B) {
        bus.take_pt_writes(&mut self.pt_writes);
        if !self.pt_writes.is_empty() {
            self.tlb.page_tables_written(&self.pt_writes);
            // A page that no cached space uses as a table any more (a
            // page-table page the guest freed and reuses as data) loses its
            // mark, so that stores to it take the fast path again; a walk
            // that uses it marks it anew.
            for &page in &self.pt_writes {
                if !self.tlb.uses_table(page) {
                    bus.unmark_page_table(page);
                }
            }
            self.pt_writes.clear();
        }
    }

    /// The walker's own update of an entry's accessed/dirty bits. It changes
    /// no translation (and write permission is only cached once D is set),
    /// so unlike the guest's writes it must not make cached address spaces
    /// stale, which would defeat them on every first touch of a page.
    fn write_accessed_dirty<B: Bus>(&mut self, bus: &mut B, addr: u32, value: u32) {
        self.absorb_pt_writes(bus);
        bus.write_u32(addr, value);
        bus.take_pt_writes(&mut self.pt_writes);
        self.pt_writes.clear();
    }

    /// After a CR3 load: without PGE every translation goes, with PGE the
    /// global ones stay; recent address spaces are kept by the TLB.
    pub(super) fn switch_address_space(&mut self, old_cr3: u32) {
        self.tlb.switch_cr3(old_cr3, self.state.cr3);
    }

    /// Drops every cached translation.
    pub fn flush_tlb(&mut self) {
        self.tlb.flush(false);
    }

    /// True when CR0.PG is set.
    #[inline]
    pub fn paging(&self) -> bool {
        self.state.cr0 & 0x8000_0000 != 0
    }

    /// The TLB entry for `lin` allowing a `write` (or read/fetch) at `user` level.
    #[inline]
    pub(super) fn tlb_entry<B: Bus>(
        &mut self,
        bus: &mut B,
        lin: u32,
        write: bool,
        user: bool,
    ) -> Exec<TlbEntry> {
        let need = match (write, user) {
            (false, false) => perm::READ_SUP,
            (true, false) => perm::WRITE_SUP,
            (false, true) => perm::READ_USER,
            (true, true) => perm::WRITE_USER,
        };
        match self.tlb.lookup(lin, need) {
            Some(e) => Ok(e),
            None => self.tlb_fill(bus, lin, write, user),
        }
    }

    fn tlb_fill<B: Bus>(
        &mut self,
        bus: &mut B,
        lin: u32,
        write: bool,
        user: bool,
    ) -> Exec<TlbEntry> {
        let w = if self.paging() {
            self.walk(bus, lin, write, user)?
        } else {
            Walk {
                phys: lin & !0xFFF & self.a20_mask,
                perm: 0xF,
                global: false,
                tables: [u32::MAX; 2],
            }
        };
        let page = w.phys >> 12;
        let host_read = bus.page_ptr(page, false);
        let host_write = if w.perm & (perm::WRITE_SUP | perm::WRITE_USER) != 0 {
            bus.page_ptr(page, true)
        } else {
            None
        };
        let e = TlbEntry::new(lin, w.phys, w.perm, w.global, host_read, host_write);
        let tables = w.tables;
        let n = tables.iter().filter(|&&t| t != u32::MAX).count();
        self.tlb.insert(e, &tables[..n]);
        // Pages the walk read are page tables: writes to them must be seen.
        for &t in &tables[..n] {
            bus.mark_page_table(t);
        }
        if n > 0 {
            // Marking revokes write pointers to those pages (this entry's
            // too, when it maps one of them).
            self.sync_tlb(bus);
            return Ok(self.tlb.entry(lin).unwrap_or(e));
        }
        Ok(e)
    }

    /// Walks the two-level page tables for `lin` (SDM Vol. 3A §4.3).
    fn walk<B: Bus>(&mut self, bus: &mut B, lin: u32, write: bool, user: bool) -> Exec<Walk> {
        let cr4 = self.state.cr4;
        let wp = self.state.cr0 & 0x1_0000 != 0;
        let code = (if write { pf::W } else { 0 }) | (if user { pf::U } else { 0 });
        let fault = |cpu: &mut Cpu, code: u32| -> Fault {
            cpu.state.cr2 = lin;
            mmu::page_fault(code)
        };
        let pde_addr = (self.state.cr3 & 0xFFFF_F000) | ((lin >> 20) & 0xFFC);
        let pde = bus.read_u32(pde_addr & self.a20_mask);
        if pde & pte::P == 0 {
            return Err(fault(self, code));
        }
        let large = cr4 & 0x10 != 0 && pde & pte::PS != 0;
        let pd_page = pde_addr >> 12;
        let pt_page = (pde & 0xFFFF_F000) >> 12;
        let (entry, entry_addr, us, rw, phys, global) = if large {
            if pde & 0x003F_E000 != 0 {
                // Bits 21:13 of a 4 MiB PDE are reserved without PSE-36.
                return Err(fault(self, code | pf::P | pf::RSVD));
            }
            (
                pde,
                pde_addr,
                pde & pte::US != 0,
                pde & pte::RW != 0,
                (pde & 0xFFC0_0000) | (lin & 0x003F_F000),
                pde & pte::G != 0,
            )
        } else {
            let pte_addr = (pde & 0xFFFF_F000) | ((lin >> 10) & 0xFFC);
            let p = bus.read_u32(pte_addr & self.a20_mask);
            if p & pte::P == 0 {
                return Err(fault(self, code));
            }
            // The directory entry was used: it is accessed even if the table entry faults below.
            if pde & pte::A == 0 {
                self.write_accessed_dirty(bus, pde_addr & self.a20_mask, pde | pte::A);
            }
            (
                p,
                pte_addr,
                pde & p & pte::US != 0,
                pde & p & pte::RW != 0,
                p & 0xFFFF_F000,
                p & pte::G != 0,
            )
        };
        if user && !us {
            return Err(fault(self, code | pf::P));
        }
        if write && !rw && (user || wp) {
            return Err(fault(self, code | pf::P));
        }
        let mut new = entry | pte::A;
        if write {
            new |= pte::D;
        }
        if new != entry {
            self.write_accessed_dirty(bus, entry_addr & self.a20_mask, new);
        }
        let mut perm = perm::READ_SUP;
        if us {
            perm |= perm::READ_USER;
        }
        // Writes are granted only once D is set, so the first write walks again.
        if new & pte::D != 0 {
            if rw || !wp {
                perm |= perm::WRITE_SUP;
            }
            if us && rw {
                perm |= perm::WRITE_USER;
            }
        }
        let tables = if large {
            [pd_page, u32::MAX]
        } else {
            [pd_page, pt_page]
        };
        Ok(Walk {
            phys: phys & !0xFFF,
            perm,
            global: global && cr4 & 0x80 != 0,
            tables,
        })
    }

    /// Translates `lin` for a `size`-byte access; returns the physical address
    /// of its first byte (the caller handles page crossings).
    #[inline]
    pub(super) fn translate_lin<B: Bus>(
        &mut self,
        bus: &mut B,
        lin: u32,
        write: bool,
        user: bool,
    ) -> Exec<u32> {
        let e = self.tlb_entry(bus, lin, write, user)?;
        Ok(e.phys | (lin & 0xFFF))
    }

    /// Reads `size` (1, 2 or 4) bytes at linear `lin`.
    #[inline]
    pub(super) fn lin_read<B: Bus>(
        &mut self,
        bus: &mut B,
        lin: u32,
        size: u32,
        user: bool,
    ) -> Exec<u32> {
        if self.state.dr[7] & 0xFF != 0 {
            self.check_data_breakpoints(lin, size, false);
        }
        let off = lin & 0xFFF;
        if off + size <= 4096 {
            let e = self.tlb_entry(bus, lin, false, user)?;
            if let Some(p) = e.host(lin, false, user) {
                // SAFETY: a matching read tag means `addend + lin` lies in a
                // 4 KiB RAM page that the bus guaranteed valid while its map
                // epoch is unchanged (checked by `sync_tlb` at every step),
                // and off + size <= 4096 keeps the access inside it.
                unsafe {
                    return Ok(match size {
                        1 => u32::from(*p),
                        2 => u32::from(u16::from_le_bytes(std::ptr::read_unaligned(
                            p as *const [u8; 2],
                        ))),
                        _ => u32::from_le_bytes(std::ptr::read_unaligned(p as *const [u8; 4])),
                    });
                }
            }
            let a = e.phys | off;
            return Ok(match size {
                1 => u32::from(bus.read_u8(a)),
                2 => u32::from(bus.read_u16(a)),
                _ => bus.read_u32(a),
            });
        }
        // Crossing a page: translate both pages first, then read bytewise.
        let first = self.translate_lin(bus, lin, false, user)?;
        let second = self.translate_lin(bus, (lin | 0xFFF).wrapping_add(1), false, user)?;
        let mut v = 0;
        for k in 0..size {
            let o = off + k;
            let a = if o < 4096 {
                first + k
            } else {
                second + (o - 4096)
            };
            v |= u32::from(bus.read_u8(a)) << (8 * k);
        }
        Ok(v)
    }

    /// Writes `size` (1, 2 or 4) bytes at linear `lin`.
    #[inline]
    pub(super) fn lin_write<B: Bus>(
        &mut self,
        bus: &mut B,
        lin: u32,
        size: u32,
        v: u32,
        user: bool,
    ) -> Exec {
        if self.state.dr[7] & 0xFF != 0 {
            self.check_data_breakpoints(lin, size, true);
        }
        let off = lin & 0xFFF;
        if off + size <= 4096 {
            let e = self.tlb_entry(bus, lin, true, user)?;
            if let Some(p) = e.host(lin, true, user) {
                // SAFETY: as in `lin_read`; a write tag matches only for pages
                // the bus reported writable without tracking (no code, no
                // tables), and `sync_tlb` revokes it when that changes.
                unsafe {
                    match size {
                        1 => *p = v as u8,
                        2 => std::ptr::write_unaligned(p as *mut [u8; 2], (v as u16).to_le_bytes()),
                        _ => std::ptr::write_unaligned(p as *mut [u8; 4], v.to_le_bytes()),
                    }
                }
                return Ok(());
            }
            let a = e.phys | off;
            match size {
                1 => bus.write_u8(a, v as u8),
                2 => bus.write_u16(a, v as u16),
                _ => bus.write_u32(a, v),
            }
            // The write may have been the one the page was tracked for (a
            // clean video page, now dirty; a code page, now plain): if the
            // bus now lets writes in directly, so does the TLB entry.
            if let Some(p) = bus.page_ptr(e.phys >> 12, true) {
                self.tlb.grant_write(lin, p);
            }
            return Ok(());
        }
        let first = self.translate_lin(bus, lin, true, user)?;
        let second = self.translate_lin(bus, (lin | 0xFFF).wrapping_add(1), true, user)?;
        for k in 0..size {
            let o = off + k;
            let a = if o < 4096 {
                first + k
            } else {
                second + (o - 4096)
            };
            bus.write_u8(a, (v >> (8 * k)) as u8);
        }
        Ok(())
    }

    /// Checks that every page of the `len`-byte linear range at `lin` allows
    /// the access, so that a multi-part store can fault before writing anything.
    pub(super) fn probe_lin_range<B: Bus>(
        &mut self,
        bus: &mut B,
        lin: u32,
        len: u32,
        write: bool,
    ) -> Exec {
        let user = self.user();
        let last = lin.wrapping_add(len.max(1) - 1);
        let mut page = lin & !0xFFF;
        loop {
            let a = if page == lin & !0xFFF { lin } else { page };
            self.translate_lin(bus, a, write, user)?;
            if page == last & !0xFFF {
                return Ok(());
            }
            page = page.wrapping_add(0x1000);
        }
    }

    /// Reads a system structure (GDT, LDT, IDT, TSS): supervisor access whatever the CPL.
    #[inline]
    pub(super) fn sys_read<B: Bus>(&mut self, bus: &mut B, lin: u32, size: u32) -> Exec<u32> {
        self.lin_read(bus, lin, size, false)
    }

    /// Writes a system structure (supervisor access).
    #[inline]
    pub(super) fn sys_write<B: Bus>(&mut self, bus: &mut B, lin: u32, size: u32, v: u32) -> Exec {
        self.lin_write(bus, lin, size, v, false)
    }

    /// True for the 8086 model (no segment limits, no paging).
    #[inline]
    pub(super) fn model_is_8086(&self) -> bool {
        self.model == crate::model::CpuModel::I8086
    }

    /// True when data accesses are checked as user-mode accesses (CPL 3).
    #[inline]
    pub(super) fn user(&self) -> bool {
        self.state.cpl() == 3
    }
}
