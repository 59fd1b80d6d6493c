//! morph86's binary translator (first stage).
//!
//! [`JitEngine`] is an engine behind the same contract as the reference
//! interpreter (`morph86_cpu::engine`): the same stop rules, the same
//! instruction counting, the same event log. At each instruction boundary
//! where translated code may run ([`morph86_cpu::Cpu::native_allowed`]) it
//! looks up the block at the physical address of CS:EIP, translating it on
//! a miss ([`translate`]), and runs it when the whole block fits in the
//! budget and in CS's limit; otherwise, and for every instruction not on the
//! translator's allow-list, the reference interpreter runs one instruction.
//!
//! # What this stage has, and what it has not yet
//!
//! - Blocks are runs of register-only integer instructions (the allow-list
//!   in [`translate`]); memory operands, control transfers and everything
//!   else run in the interpreter, so on real guests most instructions still
//!   do. Inline TLB accesses (the layout is in `morph86_cpu::mmu`), chaining,
//!   register allocation and lazy flags are the next steps.
//! - Coherence is per page: a block is keyed by its physical address and
//!   valid only at the code generation its page had when it was translated
//!   (`morph86_cpu::Bus::code_generation`), so a write to the page, through
//!   any alias or by DMA, retires its blocks and nothing else.
//! - The code cache ([`cache`]) is one region seen through a writable and
//!   an executable view of the same memory (W^X for every mapping); it is
//!   emptied whole when full.

pub mod cache;
pub mod translate;

use cache::CodeCache;
use dynasmrt::AssemblyOffset;
use morph86_cpu::{Bus, Cpu, Engine, EngineExit, RunRequest};
use translate::BlockInfo;

/// The default code-cache cap in bytes.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// Counters for `--stats`.
#[derive(Clone, Copy, Debug, Default)]
pub struct JitStats {
    /// Guest instructions run as translated code.
    pub native_insns: u64,
    /// Guest instructions run by the interpreter.
    pub interp_insns: u64,
    /// Blocks translated (including empty ones).
    pub blocks: u64,
    /// Translated blocks entered.
    pub block_runs: u64,
    /// Blocks found stale (their page was written) and translated again.
    pub invalidations: u64,
    /// Whole-cache flushes at the cap.
    pub flushes: u64,
    /// Blocks left before their end by an access the inline TLB check
    /// sent to the interpreter.
    pub early_exits: u64,
    /// Host time spent translating, in nanoseconds.
    pub translate_ns: u64,
    /// Block exits chained to the next block.
    pub links: u64,
    /// Guest instructions the interpreter ran from inside blocks (the
    /// helper list; counted in `native_insns` too).
    pub helper_insns: u64,
}

/// When CS, DS, ES and SS are flat 4 GiB segments (the data ones
/// writable, expand-up; SS 32-bit, so the stack pointer is ESP), so that
/// translated code computes linear addresses as effective addresses with
/// no limit checks: which of FS and GS are 4 GiB writable data segments too
/// (at any base; `translate::NEEDS_FS`, `NEEDS_GS`).
fn flat(cpu: &Cpu) -> Option<u8> {
    use morph86_cpu::state::attr;
    use morph86_cpu::SegReg;
    let s = &cpu.state;
    let data = attr::PRESENT | attr::S | attr::CODE | attr::DC | attr::RW;
    let big_data = |r: SegReg| {
        let g = s.seg(r);
        g.limit == u32::MAX && g.attr & data == attr::PRESENT | attr::S | attr::RW
    };
    let flat = s.eflags & (1 << 17) == 0
        && s.seg(SegReg::Cs).base == 0
        && s.seg(SegReg::Cs).limit == u32::MAX
        && s.seg(SegReg::Ss).is_32()
        && [SegReg::Ds, SegReg::Es, SegReg::Ss]
            .iter()
            .all(|&r| s.seg(r).base == 0 && big_data(r));
    flat.then(|| {
        let fs = if big_data(SegReg::Fs) {
            translate::NEEDS_FS
        } else {
            0
        };
        let gs = if big_data(SegReg::Gs) {
            translate::NEEDS_GS
        } else {
            0
        };
        fs | gs
    })
}

/// A slot of the block table: a translated block, the address and
/// privilege it was translated for, and the page generation it belongs to.
#[derive(Clone, Copy, Debug)]
struct Block {
    /// `phys | user << 32`, or `u64::MAX` when empty.
    key: u64,
    /// The EIP it was translated at: its code holds EIP-relative values
    /// (fall-through and branch targets, exit points), so the same
    /// physical code reached at another linear address (the kernel's
    /// identity mapping, then its high mapping) needs its own block.
    eip: u32,
    gen: u32,
    info: BlockInfo,
}

/// Room for a counter per iced-x86 mnemonic (there are fewer).
const MNEMONICS: usize = 4096;

/// Slots in the direct-mapped block table (a power of two).
const TABLE_SIZE: usize = 1 << 16;

const EMPTY_BLOCK: Block = Block {
    key: u64::MAX,
    eip: 0,
    gen: 0,
    info: BlockInfo {
        insns: 0,
        bytes: 0,
        entry: AssemblyOffset(0),
        stop: None,
        needs: 0,
    },
};

/// The table slot of a block key.
#[inline]
fn table_slot(key: u64, eip: u32) -> usize {
    ((key ^ (key >> 12) ^ (key >> 32) ^ u64::from(eip >> 16)) as usize) & (TABLE_SIZE - 1)
}

/// The translator as an engine.
pub struct JitEngine {
    /// Translated code (`None` if the host refused the mapping: then
    /// everything runs in the interpreter).
    cache: Option<CodeCache>,
    /// Blocks by guest physical address and privilege (user or not: the
    /// TLB tags their accesses check), direct-mapped: a block that loses
    /// its slot is translated again when next needed.
    blocks: Vec<Block>,
    /// The bus mapping the blocks were translated against (another bus, or
    /// RAM replaced wholesale, flushes them).
    bus_epoch: u64,
    /// Counters.
    pub stats: JitStats,
    /// Interpreter fallbacks, indexed by the mnemonic (as a number) that
    /// was not translated.
    fallbacks: Vec<u64>,
    /// The direct exits of the blocks in the cache; a block's function
    /// returns `index + 1` when it leaves through one.
    exits: Vec<ExitSite>,
    /// The exit the last block left through, to be linked to the next
    /// block if that one qualifies.
    pending_link: Option<u32>,
    /// Guest instructions in the blocks translated (for the mean length).
    translated_insns: u64,
    /// Blocks by guest EIP, for returns to jump to from translated code
    /// (`translate::emit_ret_lookup`): a fixed allocation whose address
    /// is built into the code, emptied with the cache.
    ret_cache: Box<[translate::RetEntry]>,
    /// The helper the blocks in the cache call (one per bus type: blocks
    /// made for another are dropped).
    helper_fn: usize,
    /// What a helper inside the last block ended the run with.
    helper_exit: Option<EngineExit>,
    /// A helper ran inside the last block: the mode and the TLB are
    /// worked out again, as after any interpreter step.
    helper_ran: bool,
}

/// What the helper inside translated code needs ([`step_helper`]): the
/// bus, the run's stop rules, and where it leaves what ended the run.
struct HelperFrame<B> {
    bus: *mut B,
    req: RunRequest,
    end: u64,
    exit: Option<EngineExit>,
    calls: u64,
    /// The helper's instruction (an STI) left an interrupt shadow and the
    /// block left after it: the shadow covers the next instruction, which
    /// has not run yet.
    keep_shadow: bool,
}

/// The address of [`step_helper`] for bus type `B`.
fn helper_addr<B: Bus>() -> usize {
    let f: extern "sysv64" fn(*mut Cpu, *mut HelperFrame<B>, u64, u64, u64) -> u32 =
        step_helper::<B>;
    f as usize
}

/// The helper behind `translate::Op::Helper` (see `translate::HelperCall`):
/// the interpreter runs the instruction at EIP from inside a block, under
/// the same stop rules as any interpreter step; the block goes on only
/// where translated code could have started (see [`block_goes_on`]).
extern "sysv64" fn step_helper<B: Bus>(
    cpu: *mut Cpu,
    frame: *mut HelperFrame<B>,
    k: u64,
    next: u64,
    page: u64,
) -> u32 {
    // SAFETY: translated code calls this only with the context and the
    // frame `try_native` passed the trampoline for this run of blocks:
    // both live across the call, and nothing else borrows them (the engine
    // is blocked in the call, its own references unused until it returns).
    let (cpu, frame) = unsafe { (&mut *cpu, &mut *frame) };
    // SAFETY: `frame.bus` is the engine's `&mut B` for this run, unused by
    // the engine while translated code runs.
    let bus = unsafe { &mut *frame.bus };
    frame.calls += 1;
    let page = page as u32;
    let gen = bus.code_generation(page);
    cpu.icount += k;
    let exit = morph86_cpu::engine::interpret_one(cpu, bus, frame.req, frame.end);
    if exit.is_none()
        && cpu.state.eip == next as u32
        && bus.code_generation(page) == gen
        && block_goes_on(cpu, frame.req)
    {
        // The block goes on: it counts its instructions when it leaves.
        cpu.icount -= k + 1;
        cpu.sync_memory(bus);
        return 1;
    }
    frame.exit = exit;
    frame.keep_shadow = cpu.interrupt_shadow();
    0
}

/// Whether a block may go on after its helper ran an instruction that
/// completed normally, left EIP on the next one and kept the block's page:
/// the engine's rules for entering translated code still hold (POPF may
/// set TF; STI or POPF may set IF, and a pending interrupt would then be
/// taken at the next boundary with no shadow, which translated code cannot
/// do). An STI shadow needs no rule here: without a pending interrupt it
/// matters only when the run ends right after the STI, which the
/// interpreter's stop rules see (the helper then leaves, and the engine
/// keeps the shadow).
fn block_goes_on(cpu: &Cpu, req: RunRequest) -> bool {
    cpu.native_allowed()
        && !(req.interrupt_pending && cpu.state.eflags & morph86_cpu::flags::IF != 0)
}

/// The first bytes of the linear page after `eip`'s, which the last
/// instruction of a block may cross into (the block checks them again each
/// time it runs: see `translate::emit_code_guard`), when the TLB holds
/// that page readable from RAM at this privilege; none otherwise (no page
/// walk here: it could set accessed bits the interpreter would not, if the
/// instruction never runs).
fn next_page_bytes<B: Bus>(cpu: &Cpu, bus: &mut B, eip: u32, user: bool) -> Vec<u8> {
    let Some(lin) = translate::next_page(eip) else {
        return Vec::new();
    };
    match cpu.tlb.entry(lin) {
        Some(e) if e.host(lin, false, user).is_some() => {
            (0..14).map(|k| bus.read_u8(e.phys + k)).collect()
        }
        _ => Vec::new(),
    }
}

/// A direct exit of a block in the cache, and what linking it needs.
#[derive(Clone, Copy, Debug)]
struct ExitSite {
    /// The cache offset of its `jmp rel32` field.
    at: usize,
    /// The guest EIP it goes to.
    target: u32,
    /// The physical page of its block, and that page's code generation
    /// when the block was translated.
    page: u32,
    gen: u32,
    user: bool,
    linked: bool,
    /// Times it was chained into another page (a stub whose checks fail
    /// returns to the engine, which may chain it again, a few times).
    relinks: u8,
    /// The physical page and code generation its stub into another page
    /// checks for, if it has one.
    stub: Option<(u32, u32)>,
}

/// Times an exit may be chained into another page anew when its target
/// maps elsewhere (ping-pong between mappings is then likely), and when
/// only the target page's code changed (the kernel patches its own text
/// while it boots, some pages dozens of times; every change costs a
/// translation anyway, and the stub is small).
const RELINKS_ELSEWHERE: u8 = 4;
const RELINKS_SAME_PAGE: u8 = 64;

// The engine moves with its machine to the emulator's thread.
const _: () = {
    const fn send<T: Send>() {}
    send::<JitEngine>();
};

impl Default for JitEngine {
    fn default() -> Self {
        Self::new(DEFAULT_CACHE_BYTES)
    }
}

impl JitEngine {
    /// An engine whose code cache holds at most `cap` bytes.
    pub fn new(cap: usize) -> JitEngine {
        let mut cache = CodeCache::new(cap.max(4096))
            .map_err(|e| tracing::warn!("no JIT code cache ({e}); interpreting"))
            .ok();
        // Every block is entered through the trampoline, at offset 0.
        if cache
            .as_mut()
            .and_then(|c| c.push_permanent(&translate::trampoline()))
            != Some(0)
        {
            cache = None;
        }
        JitEngine {
            cache,
            blocks: vec![EMPTY_BLOCK; TABLE_SIZE],
            bus_epoch: u64::MAX,
            stats: JitStats::default(),
            fallbacks: vec![0; MNEMONICS],
            exits: Vec::new(),
            pending_link: None,
            translated_insns: 0,
            helper_fn: 0,
            helper_exit: None,
            helper_ran: false,
            ret_cache: vec![translate::RetEntry::EMPTY; translate::RET_CACHE_SLOTS]
                .into_boxed_slice(),
        }
    }

    /// Host bytes of translated code.
    pub fn cache_bytes(&self) -> usize {
        self.cache.as_ref().map_or(0, CodeCache::used)
    }

    /// Drops every block.
    pub fn flush(&mut self) {
        self.blocks.fill(EMPTY_BLOCK);
        if let Some(c) = &mut self.cache {
            c.clear();
        }
        self.exits.clear();
        self.pending_link = None;
        self.ret_cache.fill(translate::RetEntry::EMPTY);
        self.stats.flushes += 1;
    }

    /// The block at physical `phys` (generation `gen`), translating it from
    /// the bytes to the end of its page on a miss (and those of the next
    /// page that `cpu`'s TLB shows, see [`next_page_bytes`]).
    fn block<B: Bus>(
        &mut self,
        (cpu, bus): (&Cpu, &mut B),
        phys: u32,
        gen: u32,
        eip: u32,
        user: bool,
    ) -> Option<BlockInfo> {
        if self.helper_fn != helper_addr::<B>() {
            // Blocks call the helper of the bus they were made for.
            self.flush();
            self.helper_fn = helper_addr::<B>();
        }
        let key = u64::from(phys) | u64::from(user) << 32;
        let slot = table_slot(key, eip);
        let b = &self.blocks[slot];
        if b.key == key && b.eip == eip {
            if b.gen == gen {
                return Some(b.info);
            }
            self.stats.invalidations += 1;
        }
        self.cache.as_ref()?;
        let t0 = std::time::Instant::now();
        // A block ends within its page and is at most MAX_BLOCK
        // instructions of at most 15 bytes.
        let page_end = (phys | 0xFFF) + 1;
        let end = page_end.min(phys + (translate::MAX_BLOCK * 15) as u32);
        let mut code: Vec<u8> = match bus.page_ptr(phys >> 12, false) {
            // SAFETY: a page pointer from the bus reaches the whole 4 KiB
            // page (its contract); phys..end lies inside that page.
            Some(p) => unsafe {
                std::slice::from_raw_parts(p.add((phys & 0xFFF) as usize), (end - phys) as usize)
            }
            .to_vec(),
            None => (phys..end).map(|a| bus.read_u8(a)).collect(),
        };
        if end == page_end {
            code.extend(next_page_bytes(cpu, bus, eip, user));
        }
        let mut info = None;
        // Twice at most: when the code does not fit, the cache is emptied
        // (with every exit, so the ids start again) and it is assembled anew.
        for _ in 0..2 {
            let first_id = self.exits.len() as u32 + 1;
            let mut asm = translate::Assembler::new(0);
            let ret_cache = Some(self.ret_cache.as_ptr());
            let helper = Some(translate::HelperCall {
                func: helper_addr::<B>(),
                page: phys >> 12,
            });
            let (mut block, sites) =
                translate::translate(&mut asm, &code, eip, user, first_id, ret_cache, helper);
            if block.insns == 0 {
                info = Some(block);
                break;
            }
            let bytes = asm.finalize().ok()?;
            let Some(at) = self.cache.as_mut()?.push(&bytes) else {
                self.flush();
                continue;
            };
            block.entry = AssemblyOffset(at);
            self.exits.extend(sites.iter().map(|site| ExitSite {
                at: at + site.at,
                target: site.target,
                page: phys >> 12,
                gen,
                user,
                linked: false,
                relinks: 0,
                stub: None,
            }));
            self.translated_insns += u64::from(block.insns);
            info = Some(block);
            break;
        }
        let info = info?;
        bus.mark_code_page(phys >> 12);
        self.blocks[slot] = Block {
            key,
            eip,
            gen,
            info,
        };
        self.stats.blocks += 1;
        self.stats.translate_ns += t0.elapsed().as_nanos() as u64;
        Some(info)
    }
}

impl<B: Bus> Engine<B> for JitEngine {
    fn name(&self) -> &'static str {
        "jit"
    }

    fn report(&self) -> String {
        let s = &self.stats;
        let total = (s.native_insns + s.interp_insns).max(1);
        let mut out = format!(
            "jit: {:.2} % of {} instructions ran as translated code ({:.2} % through helper calls to the interpreter from inside blocks)\n\
             jit: {} entries into translated code, {:.1} instructions each; {} early exits; {} links\n\
             jit: {} blocks translated (mean {:.1} instructions) in {:.3} s, {} invalidated, {} cache flushes, {} KiB of code\n",
            100.0 * s.native_insns as f64 / total as f64,
            total,
            100.0 * s.helper_insns as f64 / total as f64,
            s.block_runs,
            s.native_insns as f64 / s.block_runs.max(1) as f64,
            s.early_exits,
            s.links,
            s.blocks,
            self.translated_insns as f64 / s.blocks.max(1) as f64,
            s.translate_ns as f64 / 1e9,
            s.invalidations,
            s.flushes,
            self.cache_bytes() / 1024
        );
        let mut by: Vec<(iced_x86::Mnemonic, u64)> = iced_x86::Mnemonic::values()
            .filter_map(|m| Some((m, *self.fallbacks.get(m as usize)?)))
            .filter(|&(_, n)| n > 0)
            .collect();
        by.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
        let top: Vec<String> = by
            .iter()
            .take(20)
            .map(|(m, n)| format!("{m:?} {n}"))
            .collect();
        out += &format!(
            "jit: interpreter fallbacks by mnemonic (top 20): {}\n",
            top.join(", ")
        );
        out
    }

    fn run(&mut self, cpu: &mut Cpu, bus: &mut B, req: RunRequest) -> EngineExit {
        let end = cpu.icount.saturating_add(req.budget.max(1));
        cpu.budget_end = end;
        cpu.pending_events = u32::from(req.interrupt_pending);
        bus.take_device_access();
        if bus.map_epoch() != self.bus_epoch {
            self.bus_epoch = bus.map_epoch();
            self.flush();
        }
        // Whether translated code may run here, and whether the TLB must
        // first catch up with the bus: both can change only when the
        // interpreter has run (translated code loads no segment, changes
        // no mode, IF or mapping, and flags no page), so they are worked
        // out again only then.
        let mut fresh = true;
        let mut native_ok = false;
        let mut segs = 0;
        loop {
            if fresh {
                // Translated code changes IF only through a helper (STI,
                // POPF), which leaves the block when a pending interrupt
                // may then be taken (`block_goes_on`); so while IF = 0 no
                // window opens inside a block, and with IF = 1 an interrupt
                // is pending only under an interrupt shadow, which ends
                // after one instruction: that one runs in the interpreter.
                let window_may_open =
                    req.interrupt_pending && cpu.state.eflags & morph86_cpu::flags::IF != 0;
                let mode = (!window_may_open && cpu.native_allowed() && cpu.code32())
                    .then(|| flat(cpu))
                    .flatten();
                native_ok = mode.is_some();
                segs = mode.unwrap_or(0);
            }
            let mut finish = false;
            if native_ok {
                let ran = self.try_native(cpu, bus, fresh, segs, req, end);
                finish = ran == Err(Fallback::Slice);
                if let Ok(n) = ran {
                    fresh = std::mem::take(&mut self.helper_ran);
                    self.stats.native_insns += n;
                    if let Some(exit) = self.helper_exit.take() {
                        return exit;
                    }
                    if let Some(exit) = morph86_cpu::engine::after_instructions(cpu, req, end) {
                        return exit;
                    }
                    continue;
                }
            }
            fresh = true;
            self.pending_link = None;
            // When the block here does not fit in the budget, what is left
            // of it is shorter than a block: the interpreter finishes it,
            // rather than trying a block (and translating one that starts
            // one instruction later) at each instruction.
            loop {
                self.stats.interp_insns += 1;
                if let Some(exit) = morph86_cpu::engine::interpret_one(cpu, bus, req, end) {
                    return exit;
                }
                if !finish {
                    break;
                }
            }
        }
    }
}

/// Why no translated code ran at CS:EIP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fallback {
    /// The interpreter runs the instruction there.
    Step,
    /// The block there does not fit in what is left of the budget: the
    /// interpreter runs out the slice.
    Slice,
}

impl JitEngine {
    /// Runs the translated block at CS:EIP (and whatever it chains to), if
    /// there is one that fits the budget; returns the instructions retired,
    /// or why it ran none.
    /// `sync`: the TLB must catch up with the bus first; `segs`: the
    /// usable segments beyond the flat ones (see [`flat`]).
    fn try_native<B: Bus>(
        &mut self,
        cpu: &mut Cpu,
        bus: &mut B,
        sync: bool,
        segs: u8,
        req: RunRequest,
        end: u64,
    ) -> Result<u64, Fallback> {
        let phys = if sync {
            cpu.code_address(bus).ok_or(Fallback::Step)?
        } else {
            cpu.code_address_synced(bus).ok_or(Fallback::Step)?
        };
        let gen = bus.code_generation(phys >> 12);
        let eip = cpu.state.eip;
        let user = cpu.state.cpl() == 3;
        let before = self.stats.blocks;
        let info = self
            .block((cpu, bus), phys, gen, eip, user)
            .ok_or(Fallback::Step)?;
        if self.stats.blocks != before {
            // Translating marked the page as code: its write pointers go
            // before the block runs, so that a store into it is seen.
            cpu.sync_memory(bus);
        }
        if info.insns == 0 {
            if let Some(slot) = info.stop.and_then(|m| self.fallbacks.get_mut(m as usize)) {
                *slot += 1;
            }
            return Err(Fallback::Step);
        }
        if info.needs & !segs != 0 {
            self.pending_link = None;
            return Err(Fallback::Step);
        }
        let gen_at = bus.code_generation_ptr(phys >> 12);
        if let Some(id) = self.pending_link.take() {
            self.link(id, info, (phys, gen, gen_at), user, eip);
        }
        let entry = self
            .cache
            .as_ref()
            .ok_or(Fallback::Step)?
            .entry(info.entry.0);
        if let Some(gen_at) = gen_at {
            // Returns to this EIP may come straight here.
            self.ret_cache[translate::RetEntry::slot(eip)] = translate::RetEntry {
                eip,
                phys_page: phys & !0xFFF,
                gen,
                key: u32::from(user),
                gen_at: gen_at as usize,
                code: entry as usize,
            };
        }
        if cpu.icount + u64::from(info.insns) > end {
            return Err(Fallback::Slice);
        }
        let start = cpu.icount;
        let exit;
        // SAFETY: `entry` is the executable address of a complete function
        // this engine's translator emitted and copied whole into the code
        // cache, which still holds it: a flush empties the block table and
        // the exits with the cache, so no block or link outlives its code.
        // The function follows the System V ABI, takes the CPU's context in
        // rdi, touches only the context's registers, EIP, EFLAGS and
        // instruction count at their fixed offsets and guest RAM through
        // host addresses that the TLB's tags vouch for (see `translate`),
        // and may jump to other blocks of the cache only through links made
        // by `link`, which keep the same guarantees.
        //
        // The trampoline at offset 0 (see `translate::trampoline`) is itself
        // such a function, taking the block's address in rsi and the
        // helper's frame in rdx (valid for the call: see `step_helper`); it keeps the
        // host's callee-saved registers and moves the guest's registers into
        // their host registers and back.
        let mut frame = HelperFrame {
            bus: bus as *mut B,
            req,
            end,
            exit: None,
            calls: 0,
            keep_shadow: false,
        };
        unsafe {
            let tramp = self.cache.as_ref().ok_or(Fallback::Step)?.entry(0);
            let f: extern "sysv64" fn(*mut Cpu, *const u8, *mut HelperFrame<B>) -> u32 =
                std::mem::transmute(tramp);
            exit = f(cpu, entry, &mut frame);
        }
        self.stats.helper_insns += frame.calls;
        self.helper_ran = frame.calls > 0;
        self.helper_exit = frame.exit;
        self.stats.block_runs += 1;
        let ran = cpu.icount - start;
        match exit {
            translate::EXIT_EARLY => self.stats.early_exits += 1,
            translate::EXIT_UNLINKED => {}
            id => self.pending_link = Some(id),
        }
        if ran == 0 {
            // The budget or the first access stopped it: the interpreter
            // runs the instruction.
            return Err(Fallback::Step);
        }
        if !frame.keep_shadow {
            cpu.retired_native();
        }
        Ok(ran)
    }

    /// Links exit `id` (the one the last block left through) to the block
    /// `info` just found at physical `phys` (code generation `gen`, readable
    /// at `gen_at`) for `eip`, if the link stays right for as long as the
    /// exit's own block can run with the same privilege and segments.
    ///
    /// Within one physical page at one generation a plain jump does: a
    /// write to the page retires both blocks at once, and the linear page
    /// of a direct jump within a page maps to the same physical page. Into
    /// another page the jump goes through a stub ([`translate::chain_stub`])
    /// that checks the mapping in the TLB and the page's generation first.
    fn link(
        &mut self,
        id: u32,
        info: BlockInfo,
        (phys, gen, gen_at): (u32, u32, Option<*const u32>),
        user: bool,
        eip: u32,
    ) {
        let Some(site) = id
            .checked_sub(1)
            .and_then(|k| self.exits.get_mut(k as usize))
        else {
            return;
        };
        let cross = site.page != phys >> 12;
        let limit = match site.stub {
            // Its stub already goes to this block: it left because the
            // TLB did not hold the page then (a new address space, say),
            // which the engine's run of the block has just mended.
            Some(stub) if stub == (phys >> 12, gen) => return,
            Some((page, _)) if page == phys >> 12 => RELINKS_SAME_PAGE,
            _ => RELINKS_ELSEWHERE,
        };
        if site.target != eip
            || site.user != user
            || (!cross && (site.linked || site.gen != gen))
            || (cross && site.relinks >= limit)
        {
            return;
        }
        let Some(cache) = self.cache.as_mut() else {
            return;
        };
        if !cross {
            cache.patch_jump(site.at, info.entry.0);
            site.linked = true;
            self.stats.links += 1;
            return;
        }
        let Some(gen_at) = gen_at else {
            return;
        };
        let (stub, back, jump) = translate::chain_stub(eip, phys & !0xFFF, user, gen_at, gen);
        if stub.is_empty() {
            return;
        }
        // No room: the exit stays unlinked (a flush here would take the
        // block about to run with it).
        let Some(at) = cache.push(&stub) else {
            return;
        };
        for field in back {
            cache.patch_jump(at + field, site.at + 4);
        }
        cache.patch_jump(at + jump, info.entry.0);
        cache.patch_jump(site.at, at);
        site.linked = true;
        site.relinks += 1;
        site.stub = Some((phys >> 12, gen));
        self.stats.links += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use morph86_cpu::{CpuModel, FlatRam, Interpreter};

    use morph86_cpu::robustness::Xorshift as Rng;

    /// A random program mixing allow-listed forms with ones the interpreter
    /// runs (stack and memory accesses, shifts, flag reads), ending in HLT.
    fn program(rng: &mut Rng, len: usize) -> Vec<u8> {
        let mut p = Vec::new();
        for _ in 0..len {
            let r = rng.below(8) as u8;
            let s = rng.below(8) as u8;
            // ESP is left alone: the stack must stay in RAM.
            let (r, s) = (if r == 4 { 0 } else { r }, if s == 4 { 1 } else { s });
            let modrm = 0xC0 | s << 3 | r;
            let imm = (rng.next() as u32).to_le_bytes();
            match rng.below(14) {
                0 => p.extend([0x89, modrm]),
                1 => {
                    p.push(0xB8 + r);
                    p.extend(imm);
                }
                2 => {
                    let op = [0x01, 0x11, 0x19, 0x21, 0x09, 0x29, 0x31, 0x39, 0x85];
                    p.extend([op[rng.below(9) as usize], modrm]);
                }
                3 => {
                    p.extend([0x81, 0xC0 | (rng.below(8) as u8) << 3 | r]);
                    p.extend(imm);
                }
                4 => p.extend([0x83, 0xC0 | (rng.below(8) as u8) << 3 | r, imm[0]]),
                5 => p.push(0x40 + r),
                6 => p.push(0x48 + r),
                7 => p.push(0x90),
                8 => p.extend([0x50 + r, 0x58 + s]),
                9 => p.extend([0x9C, 0x58 + r]),
                10 => p.extend([0x9F, 0x9E]),
                11 => p.extend([0xD1, 0xE0 | r]),
                12 => p.extend([0x89, 0x05 | s << 3, 0x00, 0x30, 0, 0]),
                _ => p.extend([0x8B, 0x05 | r << 3, 0x00, 0x30, 0, 0]),
            }
        }
        p.push(0xF4);
        p
    }

    fn machine(code: &[u8], seed: u64) -> (Cpu, FlatRam) {
        let mut ram = FlatRam::new(0x10000);
        ram.bytes_mut()[0x1000..0x1000 + code.len()].copy_from_slice(code);
        let mut cpu = Cpu::new(CpuModel::P6);
        cpu.state.set_flat32(true);
        cpu.state.eip = 0x1000;
        let mut rng = Rng(seed | 1);
        for r in 0..8 {
            cpu.state.regs[r] = rng.next() as u32;
        }
        cpu.state.regs[4] = 0x8000;
        cpu.state.eflags = 0x2 | (rng.next() as u32 & 0x8D5);
        (cpu, ram)
    }

    fn run<E: Engine<FlatRam>>(e: &mut E, cpu: &mut Cpu, ram: &mut FlatRam) {
        for _ in 0..10_000 {
            let req = RunRequest {
                budget: 37,
                interrupt_pending: false,
            };
            // A fault with no IDT (a GS limit in `later_forms...`) shuts
            // the CPU down: an end too, which both engines must reach alike.
            if matches!(
                e.run(cpu, ram, req),
                EngineExit::Halted | EngineExit::Shutdown(_)
            ) {
                return;
            }
        }
        panic!("no HLT");
    }

    /// Fills the data pages the random programs use (0x3000-0x4FFF) with
    /// bytes drawn from `seed`.
    fn fill_data(ram: &mut FlatRam, seed: u64) {
        for k in 0..0x2000 {
            ram.bytes_mut()[0x3000 + k] = (seed >> (k % 56)) as u8;
        }
    }

    /// Runs `code` from the same start under the interpreter and under
    /// `jit`, after `setup` on both machines, and checks that the CPU
    /// state, the instruction count and RAM agree; returns the JIT's CPU.
    fn agree(
        jit: &mut JitEngine,
        code: &[u8],
        seed: u64,
        what: &str,
        setup: impl Fn(&mut Cpu, &mut FlatRam),
    ) -> Cpu {
        let (mut a, mut ram_a) = machine(code, seed);
        let (mut b, mut ram_b) = machine(code, seed);
        setup(&mut a, &mut ram_a);
        setup(&mut b, &mut ram_b);
        run(&mut Interpreter, &mut a, &mut ram_a);
        run(jit, &mut b, &mut ram_b);
        assert_eq!(a.state, b.state, "{what}: {code:02x?}");
        assert_eq!(a.icount, b.icount, "{what}");
        assert_eq!(ram_a.bytes(), ram_b.bytes(), "{what}");
        b
    }

    #[test]
    fn mov_and_alu_agree_with_the_interpreter() {
        // mov eax,-1; add eax,1; adc ebx,ecx; sbb edx,eax; and esi,edi;
        // inc eax; dec ebx; xor ecx,ecx; cmp edx,7; test eax,eax; hlt
        let code = [
            0xB8, 0xFF, 0xFF, 0xFF, 0xFF, 0x83, 0xC0, 0x01, 0x11, 0xCB, 0x19, 0xC2, 0x21, 0xFE,
            0x40, 0x4B, 0x31, 0xC9, 0x83, 0xFA, 0x07, 0x85, 0xC0, 0xF4,
        ];
        let (mut a, mut ram_a) = machine(&code, 7);
        let (mut b, mut ram_b) = machine(&code, 7);
        run(&mut Interpreter, &mut a, &mut ram_a);
        let mut jit = JitEngine::default();
        run(&mut jit, &mut b, &mut ram_b);
        assert_eq!(a.state, b.state);
        assert_eq!(a.icount, b.icount);
        assert!(jit.stats.native_insns >= 10, "{:?}", jit.stats);
    }

    #[test]
    fn random_blocks_agree_with_the_interpreter() {
        let mut rng = Rng(0x1234_5678_9ABC_DEF1);
        let mut jit = JitEngine::new(1 << 16);
        for case in 0..300 {
            let code = program(&mut rng, 40);
            let seed = rng.next();
            agree(&mut jit, &code, seed, &format!("case {case}"), |_, _| {});
        }
        // About half of these programs is on the allow-list and much of
        // the rest on the helper list, which makes blocks longer than the
        // 37-instruction budgets `run` gives: those run in the interpreter.
        assert!(
            jit.stats.native_insns * 4 > jit.stats.interp_insns,
            "{:?}",
            jit.stats
        );
        assert!(jit.stats.flushes >= 300, "every case brings a new RAM");
    }

    /// Loops and forward branches on every condition, over random ALU
    /// work: the flags the branches test come from translated and from
    /// interpreted instructions alike.
    #[test]
    fn loops_agree_with_the_interpreter() {
        let mut rng = Rng(0xB1A5_ED00_0000_0001);
        let mut jit = JitEngine::default();
        for case in 0..200 {
            // mov dword [0x3010], n; l: body; dec dword [0x3010]; jnz l;
            // hlt, where the body has random ops (which may write any
            // register, so the counter lives in memory), each maybe skipped
            // by a random Jcc rel8.
            let mut body = Vec::new();
            for _ in 0..8 {
                let op = program(&mut rng, 1);
                let op = &op[..op.len() - 1]; // without its HLT
                if rng.below(2) == 0 {
                    body.extend([0x70 + rng.below(16) as u8, op.len() as u8]);
                }
                body.extend_from_slice(op);
            }
            let mut code = vec![
                0xC7,
                0x05,
                0x10,
                0x30,
                0,
                0,
                1 + rng.below(20) as u8,
                0,
                0,
                0,
            ];
            code.extend(&body);
            code.extend([0xFF, 0x0D, 0x10, 0x30, 0, 0]);
            let back = -(body.len() as i32 + 6 + 6);
            code.extend([0x0F, 0x85]);
            code.extend(back.to_le_bytes());
            code.push(0xF4);
            let seed = rng.next();
            let (mut a, mut ram_a) = machine(&code, seed);
            let (mut b, mut ram_b) = machine(&code, seed);
            run(&mut Interpreter, &mut a, &mut ram_a);
            run(&mut jit, &mut b, &mut ram_b);
            assert_eq!(a.state, b.state, "case {case}: {code:02x?}");
            assert_eq!(a.icount, b.icount, "case {case}");
        }
        assert!(jit.stats.block_runs > 1000, "{:?}", jit.stats);
        assert!(jit.stats.links > 0, "loops chain: {:?}", jit.stats);
    }

    /// A random program with memory operands in every addressing form the
    /// translator takes (base, index, scale, displacement), aligned and
    /// misaligned, in RAM, beyond RAM (open bus) and in the code's own page.
    fn memory_program(rng: &mut Rng, len: usize) -> Vec<u8> {
        let mut p = Vec::new();
        for _ in 0..len {
            // ESI and EDI hold the addresses, ESP the stack: never written.
            let r = [0u8, 1, 2, 3, 5][rng.below(5) as usize];
            // Address: ESI (= 0x3000 + small) + EDI (0..3) * scale + disp,
            // or an absolute one.
            let disp: u32 = match rng.below(8) {
                0 => 0xFFFF_0000,                        // beyond RAM
                1 => 0xFFFF_E800 + rng.below(64) as u32, // the code page, past the code
                2 => rng.below(64) as u32 * 4 + 1,       // misaligned
                _ => rng.below(64) as u32 * 4,
            };
            let sib_form = rng.below(2) == 0;
            let opcode = [
                0x8B, 0x89, 0x03, 0x01, 0x2B, 0x29, 0x33, 0x31, 0x3B, 0x39, 0x85, 0x13, 0x19, 0x23,
                0x0B,
            ][rng.below(15) as usize];
            match rng.below(6) {
                0 => p.extend([0x50 + r, 0x58 + [0u8, 1, 2, 3, 5][rng.below(5) as usize]]),
                1 => {
                    // mov dword [esi + disp32], imm32
                    p.extend([0xC7, 0x86]);
                    p.extend(disp.to_le_bytes());
                    p.extend((rng.next() as u32).to_le_bytes());
                }
                2 => {
                    // op dword [esi + disp32], imm8
                    p.extend([0x83, 0x86 | (rng.below(8) as u8) << 3]);
                    p.extend(disp.to_le_bytes());
                    p.push(rng.next() as u8);
                }
                _ if sib_form => {
                    // op r, [esi + edi*scale + disp32]
                    let scale = rng.below(4) as u8;
                    p.extend([opcode, 0x84 | r << 3, scale << 6 | 7 << 3 | 6]);
                    p.extend(disp.to_le_bytes());
                }
                _ => {
                    // op r, [disp32]
                    p.extend([opcode, 0x05 | r << 3]);
                    p.extend(disp.wrapping_add(0x3000).to_le_bytes());
                }
            }
            if rng.below(4) == 0 {
                // Some register work between accesses.
                p.extend([
                    0x01,
                    0xC0 | (rng.below(8) as u8) << 3 | (rng.below(4) as u8),
                ]);
            }
        }
        p.push(0xF4);
        p
    }

    #[test]
    fn memory_blocks_agree_with_the_interpreter() {
        let mut rng = Rng(0x3E30_0000_0000_0007);
        let mut jit = JitEngine::default();
        for case in 0..300 {
            let code = memory_program(&mut rng, 30);
            let seed = rng.next();
            agree(
                &mut jit,
                &code,
                seed,
                &format!("case {case}"),
                |cpu, ram| {
                    cpu.state.regs[6] = 0x3000 + (seed as u32 & 0x3C);
                    cpu.state.regs[7] = (seed >> 8) as u32 & 3;
                    fill_data(ram, seed);
                },
            );
        }
        // Each program runs once, so first touches of a page miss the TLB
        // and leave the block; a third of the accesses are meant to.
        assert!(jit.stats.early_exits > 100, "{:?}", jit.stats);
        assert!(jit.stats.native_insns > 1000, "{:?}", jit.stats);
    }

    /// A random program of the later forms: IMUL, SETcc, CMOVcc, NOT, NEG,
    /// INC/DEC of memory, rotates, shifts by CL, 16-bit moves and shifts,
    /// BSWAP and FS/GS-relative accesses; registers and memory at ESI + disp (in
    /// RAM, misaligned, on the code page, or beyond RAM), flags read by
    /// the conditions from earlier random ALU work.
    fn later_program(rng: &mut Rng, len: usize) -> Vec<u8> {
        let mut p = Vec::new();
        for _ in 0..len {
            // ESI holds addresses and ESP the stack: never written.
            let pick = |rng: &mut Rng| [0u8, 1, 2, 3, 5, 7][rng.below(6) as usize];
            let (r, s) = (pick(rng), pick(rng));
            let disp: u32 = match rng.below(8) {
                0 => 0xFFFF_0000,
                1 => 0xFFFF_E800 + rng.below(64) as u32,
                2 => rng.below(64) as u32 * 4 + 1,
                _ => rng.below(64) as u32 * 4,
            };
            let cc = rng.below(16) as u8;
            let reg_rm = 0xC0 | r << 3 | s;
            let mem_rm = 0x86 | r << 3; // [esi + disp32]
            let with_mem = |p: &mut Vec<u8>, ops: &[u8], rm: u8| {
                p.extend(ops);
                p.push(rm);
                p.extend(disp.to_le_bytes());
            };
            match rng.below(18) {
                0 => p.extend([0x0F, 0xAF, reg_rm]),
                1 => with_mem(&mut p, &[0x0F, 0xAF], mem_rm),
                2 => p.extend([0x6B, reg_rm, rng.next() as u8]),
                3 => {
                    p.extend([0x69, reg_rm]);
                    p.extend((rng.next() as u32).to_le_bytes());
                }
                4 => p.extend([0x0F, 0x90 + cc, 0xC0 | s]),
                5 => with_mem(&mut p, &[0x0F, 0x90 + cc], 0x86),
                6 => p.extend([0x0F, 0x40 + cc, reg_rm]),
                7 => with_mem(&mut p, &[0x0F, 0x40 + cc], mem_rm),
                8 => p.extend([0xF7, 0xD0 | (2 + rng.below(2) as u8) << 3 | s]),
                9 => with_mem(&mut p, &[0xF7], 0x86 | (2 + rng.below(2) as u8) << 3),
                10 => with_mem(&mut p, &[0xFF], 0x86 | (rng.below(2) as u8) << 3),
                11 => p.extend([0xC1, 0xC0 | (rng.below(2) as u8) << 3 | s, rng.next() as u8]),
                12 => {
                    // shl/shr/sar r, cl (ECX is random: often a count of 0)
                    let k = [4u8, 5, 7][rng.below(3) as usize];
                    p.extend([0xD3, 0xC0 | k << 3 | s]);
                }
                13 => with_mem(&mut p, &[0x66, [0x89, 0x8B][rng.below(2) as usize]], mem_rm),
                14 => {
                    let k = [4u8, 5, 7][rng.below(3) as usize];
                    p.extend([0x66, 0xC1, 0xC0 | k << 3 | s, rng.below(18) as u8]);
                }
                15 => {
                    // an FS- or GS-relative load, store or increment
                    let seg = [0x64u8, 0x65][rng.below(2) as usize];
                    let op = [0x8B, 0x89, 0x03, 0xFF][rng.below(4) as usize];
                    let rm = if op == 0xFF { 0x86 } else { mem_rm };
                    with_mem(&mut p, &[seg, op], rm);
                }
                16 => p.extend([0x0F, 0xC8 | r]), // bswap r
                _ => {
                    // flags from random ALU work
                    let op = [0x01, 0x29, 0x21, 0x39][rng.below(4) as usize];
                    p.extend([op, reg_rm]);
                }
            }
        }
        p.push(0xF4);
        p
    }

    /// A random program of flag producers (32-bit ALU on registers and
    /// memory, INC, DEC), then loads, stores, moves and LEA, then a reader
    /// of the producer's flags (ADC, SBB, CMOVcc, SETcc on registers and
    /// memory, a Jcc over an instruction): the pending flags on their way
    /// from the host's flags through rax and the slot. Memory at ESI +
    /// disp, in RAM, misaligned, beyond RAM or on the code's page, so that
    /// early exits find them in every place.
    fn pending_flags_program(rng: &mut Rng, len: usize) -> Vec<u8> {
        let mut p = Vec::new();
        let pick = |rng: &mut Rng| [0u8, 1, 2, 3, 5, 7][rng.below(6) as usize];
        let disp = |rng: &mut Rng| -> u32 {
            match rng.below(10) {
                0 => 0xFFFF_0000,
                1 => 0xFFFF_E800 + rng.below(64) as u32,
                2 => rng.below(64) as u32 * 4 + 1,
                _ => rng.below(64) as u32 * 4,
            }
        };
        let with_mem = |p: &mut Vec<u8>, ops: &[u8], reg: u8, d: u32| {
            p.extend(ops);
            p.push(0x86 | reg << 3); // [esi + disp32]
            p.extend(d.to_le_bytes());
        };
        for _ in 0..len {
            let (r, s) = (pick(rng), pick(rng));
            // The producer.
            let alu = [0x01u8, 0x29, 0x39, 0x21, 0x31, 0x09, 0x85][rng.below(7) as usize];
            match rng.below(5) {
                0 => p.extend([alu, 0xC0 | r << 3 | s]),
                1 => with_mem(&mut p, &[alu | 2], r, disp(rng)),
                2 if alu != 0x85 => with_mem(&mut p, &[alu], r, disp(rng)),
                3 => p.extend([0xFF, 0xC0 | (rng.below(2) as u8) << 3 | r]),
                _ => p.extend([0x83, 0xC0 | (rng.below(8) as u8) << 3 | r, rng.next() as u8]),
            }
            // What keeps them pending.
            for _ in 0..rng.below(4) {
                let d = pick(rng);
                match rng.below(6) {
                    0 => with_mem(&mut p, &[0x8B], d, disp(rng)),
                    1 => with_mem(&mut p, &[0x89], d, disp(rng)),
                    2 => p.extend([0x8D, 0x40 | d << 3 | pick(rng), rng.next() as u8]),
                    3 => p.extend([0x89, 0xC0 | pick(rng) << 3 | d]),
                    4 => with_mem(&mut p, &[0x0F, 0xB6], d, disp(rng)),
                    _ => p.extend([0x50 + d, 0x58 + pick(rng)]),
                }
            }
            // The readers: one, sometimes two (the second finds the flags
            // where the first left them).
            for _ in 0..1 + rng.below(2) {
                let cc = rng.below(16) as u8;
                let (r, s) = (pick(rng), pick(rng));
                match rng.below(8) {
                    0 => p.extend([[0x11u8, 0x19][rng.below(2) as usize], 0xC0 | r << 3 | s]),
                    1 => with_mem(
                        &mut p,
                        &[[0x13u8, 0x1B][rng.below(2) as usize]],
                        r,
                        disp(rng),
                    ),
                    2 => with_mem(
                        &mut p,
                        &[[0x11u8, 0x19][rng.below(2) as usize]],
                        r,
                        disp(rng),
                    ),
                    3 => p.extend([0x0F, 0x40 + cc, 0xC0 | r << 3 | s]),
                    4 => with_mem(&mut p, &[0x0F, 0x40 + cc], r, disp(rng)),
                    5 => p.extend([0x0F, 0x90 + cc, 0xC0 | r]),
                    6 => with_mem(&mut p, &[0x0F, 0x90 + cc], 0, disp(rng)),
                    // jcc over an INC
                    _ => p.extend([0x70 + cc, 1, 0x40 + r]),
                }
            }
        }
        p.push(0xF4);
        p
    }

    #[test]
    fn pending_flags_reach_their_readers() {
        let mut rng = Rng(0x0F1A_6500_0000_0011);
        let mut jit = JitEngine::default();
        for case in 0..400 {
            let code = pending_flags_program(&mut rng, 12);
            let seed = rng.next();
            agree(
                &mut jit,
                &code,
                seed,
                &format!("case {case}"),
                |cpu, ram| {
                    cpu.state.regs[6] = 0x3000 + (seed as u32 & 0x3C);
                    fill_data(ram, seed);
                },
            );
        }
        assert!(jit.stats.early_exits > 100, "{:?}", jit.stats);
        assert!(jit.stats.native_insns > 5000, "{:?}", jit.stats);
    }

    #[test]
    fn rdtsc_reads_the_virtual_counter() {
        // l: rdtsc; add ebx,eax; add ecx,1; cmp ecx,200; jne l; hlt -- the
        // counts the loop reads (summed in EBX) are the interpreter's, block
        // or not; with CR4.TSD at CPL 0 it still runs, in ring 3 it would
        // fault (the interpreter's affair).
        let code = [
            0x0F, 0x31, 0x01, 0xC3, 0x83, 0xC1, 0x01, 0x81, 0xF9, 200, 0, 0, 0, 0x75, 0xF1, 0xF4,
        ];
        let mut jit = JitEngine::default();
        for tsd in [false, true] {
            let b = agree(&mut jit, &code, 5, "rdtsc", |cpu, _| {
                cpu.state.regs[1] = 0;
                cpu.state.tsc = 0x1234_5678_9000;
                if tsd {
                    cpu.state.cr4 |= 4;
                }
            });
            assert_eq!(b.state.regs[1], 200);
        }
        assert!(jit.stats.native_insns > 500, "{:?}", jit.stats);
    }

    #[test]
    fn later_forms_agree_with_the_interpreter() {
        let mut rng = Rng(0x1A7E_F0A5_0000_0003);
        let mut jit = JitEngine::default();
        for case in 0..400 {
            let code = later_program(&mut rng, 30);
            let seed = rng.next();
            agree(
                &mut jit,
                &code,
                seed,
                &format!("case {case}"),
                |cpu, ram| {
                    use morph86_cpu::SegReg;
                    cpu.state.regs[6] = 0x3000 + (seed as u32 & 0x3C);
                    // FS at a base inside RAM; GS sometimes too small for
                    // translated code (a 64 KiB limit): then the interpreter.
                    cpu.state.segs[SegReg::Fs as usize] = cpu.state.segs[SegReg::Ds as usize];
                    cpu.state.segs[SegReg::Fs as usize].base = 0x1000;
                    cpu.state.segs[SegReg::Gs as usize] = cpu.state.segs[SegReg::Ds as usize];
                    cpu.state.segs[SegReg::Gs as usize].base = 0x2000;
                    if seed & 1 == 0 {
                        cpu.state.segs[SegReg::Gs as usize].limit = 0xFFFF;
                    }
                    fill_data(ram, seed);
                },
            );
        }
        assert!(jit.stats.native_insns > 5000, "{:?}", jit.stats);
    }

    #[test]
    fn a_nearby_operand_beyond_the_checked_page_is_checked_again() {
        // mov esi,0xf000; mov ecx,3; again: mov eax,[esi+0xff8];
        // add eax,[esi+0xffc]; movzx edx,word [esi+0xfff];
        // mov ebx,[esi+0x1000]; dec ecx; jnz again; hlt. Once the TLB holds
        // the page, the second access reuses the first's check (the same
        // page); the word straddles the next page and the dword is in it
        // (beyond RAM: open bus, through the interpreter): they must not.
        let code = [
            0xBE, 0x00, 0xF0, 0, 0, 0xB9, 3, 0, 0, 0, 0x8B, 0x86, 0xF8, 0x0F, 0, 0, 0x03, 0x86,
            0xFC, 0x0F, 0, 0, 0x0F, 0xB7, 0x96, 0xFF, 0x0F, 0, 0, 0x8B, 0x9E, 0x00, 0x10, 0, 0,
            0x49, 0x75, 0xE4, 0xF4,
        ];
        let mut jit = JitEngine::default();
        let b = agree(&mut jit, &code, 9, "page end", |_, _| {});
        assert_eq!(b.state.regs[3], u32::MAX, "open bus");
        assert_eq!(b.state.regs[2] >> 8, 0xFF, "open bus");
        assert!(jit.stats.native_insns >= 6, "{:?}", jit.stats);
    }

    #[test]
    fn a_checked_operand_is_forgotten_when_its_base_changes() {
        // mov esi,0x3000; mov ecx,3; again: mov eax,[esi]; movzx esi,cl;
        // mov ebx,[esi+4]; setnz dl; movzx esi,dl; add ebx,[esi+0x3000];
        // mov esi,0x3000; dec ecx; jnz again; hlt: after each register form
        // that writes ESI the next access must not reuse the last check.
        let code = [
            0xBE, 0x00, 0x30, 0, 0, 0xB9, 3, 0, 0, 0, 0x8B, 0x06, 0x0F, 0xB6, 0xF1, 0x8B, 0x5E,
            0x04, 0x0F, 0x95, 0xC2, 0x0F, 0xB6, 0xF2, 0x03, 0x9E, 0x00, 0x30, 0, 0, 0xBE, 0x00,
            0x30, 0, 0, 0x49, 0x75, 0xE4, 0xF4,
        ];
        let mut jit = JitEngine::default();
        agree(&mut jit, &code, 11, "base changes", |_, ram| {
            for k in 0..0x4000 {
                ram.bytes_mut()[k + 0x3000] = (k * 7 + 1) as u8;
                ram.bytes_mut()[k % 0x800] ^= (k * 13) as u8;
            }
        });
        assert!(jit.stats.native_insns >= 20, "{:?}", jit.stats);
    }

    #[test]
    fn a_chained_block_checks_its_segment_needs() {
        use morph86_cpu::SegReg;
        // mov ecx,3; jmp short +0; mov eax,gs:[0x2000]; dec ecx; hlt. The
        // first run links the jump into the GS block; then GS shrinks (as a
        // segment load in the interpreter would leave it) and the run from
        // the top must not take the link into a block whose GS operand
        // needs a limit check: the interpreter's #GP ends it (no IDT).
        let code = [
            0xB9, 3, 0, 0, 0, 0xEB, 0x00, 0x65, 0x8B, 0x05, 0x00, 0x20, 0, 0, 0x49, 0xF4,
        ];
        let mut jit = JitEngine::default();
        let (mut a, mut ram_a) = machine(&code, 5);
        let (mut b, mut ram_b) = machine(&code, 5);
        for cpu in [&mut a, &mut b] {
            cpu.state.segs[SegReg::Gs as usize] = cpu.state.segs[SegReg::Ds as usize];
        }
        run(&mut Interpreter, &mut a, &mut ram_a);
        run(&mut jit, &mut b, &mut ram_b);
        assert!(jit.stats.links > 0, "{:?}", jit.stats);
        for cpu in [&mut a, &mut b] {
            cpu.state.segs[SegReg::Gs as usize].limit = 0xFFF;
            cpu.state.eip = 0x1000;
            cpu.state.halted = false;
        }
        run(&mut Interpreter, &mut a, &mut ram_a);
        run(&mut jit, &mut b, &mut ram_b);
        assert_eq!(a.state, b.state);
        assert_eq!(a.icount, b.icount);
        assert_eq!(
            (b.state.eip, b.state.regs[1]),
            (0x1007, 3),
            "stopped at the GS access"
        );
    }

    /// Random BT*, PUSH m32, LEAVE, DIV, string instructions (either
    /// direction) and indirect jumps and calls, with the flags made visible.
    fn late_program(rng: &mut Rng, len: usize) -> Vec<u8> {
        // mov esi,0x3000; mov edi,0x4000
        let mut p = vec![0xBE, 0x00, 0x30, 0, 0, 0xBF, 0x00, 0x40, 0, 0];
        for _ in 0..len {
            let r = [0u8, 1, 2, 3][rng.below(4) as usize];
            let s = [0u8, 1, 2, 3][rng.below(4) as usize];
            let ext = rng.below(4) as u8; // BT, BTS, BTR, BTC
            let alu16 = [0x01u8, 0x11, 0x19, 0x21, 0x09, 0x29, 0x31, 0x39, 0x85];
            match rng.below(10) {
                // push imm32 / imm8; pop r
                8 => {
                    if rng.below(2) == 0 {
                        p.push(0x68);
                        p.extend((rng.next() as u32).to_le_bytes());
                    } else {
                        p.extend([0x6A, rng.next() as u8]);
                    }
                    p.push(0x58 | r);
                }
                // 16-bit ALU: registers, an immediate, memory at [esi+d8]
                9 => match rng.below(3) {
                    0 => p.extend([0x66, alu16[rng.below(9) as usize], 0xC0 | s << 3 | r]),
                    1 => p.extend([0x66, 0x83, 0xC0 | ext << 3 | r, rng.next() as u8]),
                    _ => p.extend([
                        0x66,
                        alu16[rng.below(9) as usize],
                        0x46 | s << 3,
                        rng.below(32) as u8 * 4 + 1,
                    ]),
                },
                0 => p.extend([0x0F, 0xA3 + ext * 8, 0xC0 | s << 3 | r]),
                1 => p.extend([0x0F, 0xBA, 0xE0 | ext << 3 | r, rng.next() as u8]),
                2 => p.extend([
                    0x0F,
                    0xBA,
                    0x66 | ext << 3,
                    rng.below(32) as u8 * 4,
                    rng.next() as u8,
                ]),
                3 => p.extend([0xFF, 0x76, rng.below(32) as u8 * 4, 0x58 | r]),
                // push ebp; mov ebp,esp; push r; leave
                4 => p.extend([0x55, 0x89, 0xE5, 0x50 | r, 0xC9]),
                // xor edx,edx / mov edx,small; or ecx,1; div ecx (or a #DE)
                5 => {
                    match rng.below(8) {
                        0 => p.extend([0xBA, 7, 0, 0, 0]),
                        // EDX = the divisor: the quotient does not fit
                        1 => p.extend([0x83, 0xC9, 0x01, 0x89, 0xCA]),
                        _ => p.extend([0x31, 0xD2]),
                    }
                    p.extend([0x83, 0xC9, 0x01, 0xF7, 0xF1]);
                }
                6 => {
                    if rng.below(4) == 0 {
                        p.push([0xFC, 0xFD][rng.below(2) as usize]); // cld / std
                    }
                    let ops = [0xAC, 0xAD, 0xAA, 0xAB, 0xA4, 0xA5, 0xAE];
                    p.push(ops[rng.below(ops.len() as u64) as usize]);
                }
                _ => {
                    // mov r, next; jmp r / call r (then drop the return
                    // address: pop r)
                    let at = 0x1000 + p.len() as u32 + 5 + 2;
                    p.push(0xB8 | r);
                    p.extend(at.to_le_bytes());
                    if rng.below(2) == 0 {
                        p.extend([0xFF, 0xE0 | r]);
                    } else {
                        p.extend([0xFF, 0xD0 | r]);
                        p.push(0x58 | r);
                    }
                }
            }
            // pushfd; pop ebx: the flags the op left become visible.
            p.extend([0x9C, 0x5B]);
        }
        p.push(0xF4);
        p
    }

    #[test]
    fn late_forms_agree_with_the_interpreter() {
        let mut rng = Rng(0x1A7E_F0A5_0000_0005);
        let mut jit = JitEngine::default();
        for case in 0..300 {
            let code = late_program(&mut rng, 25);
            let seed = rng.next();
            agree(&mut jit, &code, seed, &format!("case {case}"), |_, ram| {
                fill_data(ram, seed);
            });
        }
        assert!(jit.stats.native_insns > 10_000, "{:?}", jit.stats);
    }

    /// Random instructions from the helper list (x87 with memory operands,
    /// flag and width conversions, XCHG/CMPXCHG/XADD, MUL/IMUL/IDIV, BSF,
    /// SHLD, CPUID, REP string instructions, PUSHFD) mixed with translated
    /// work, and a store through a helper into the running page.
    fn helper_program(rng: &mut Rng, len: usize) -> Vec<u8> {
        // mov esi,0x3000; mov edi,0x4000
        let mut p = vec![0xBE, 0x00, 0x30, 0, 0, 0xBF, 0x00, 0x40, 0, 0];
        for _ in 0..len {
            let r = [0u8, 1, 2, 3][rng.below(4) as usize];
            let s = [0u8, 1, 2, 3][rng.below(4) as usize];
            let d8 = rng.below(32) as u8 * 8;
            match rng.below(16) {
                // fld qword [esi+d]; fadd qword [esi+d']; fstp qword [esi+d'']
                0 => p.extend([
                    0xDD,
                    0x46,
                    d8,
                    0xDC,
                    0x46,
                    rng.below(32) as u8 * 8,
                    0xDD,
                    0x5E,
                    d8,
                ]),
                // fild dword [esi+d]; fmul st0,st0; fistp dword [esi+d]; fnstsw ax; sahf
                1 => p.extend([0xDB, 0x46, d8, 0xD8, 0xC8, 0xDB, 0x5E, d8, 0xDF, 0xE0, 0x9E]),
                2 => p.extend([
                    [0x9E, 0x9F, 0xFC, 0xF8, 0xF9, 0xF5, 0x99, 0x98][rng.below(8) as usize]
                ]),
                3 => p.extend([0x87, 0xC0 | s << 3 | r]),
                4 => p.extend([0x0F, 0xB1, 0xC0 | s << 3 | r]),
                5 => p.extend([0x0F, 0xC1, 0x46 | s << 3, d8]),
                6 => p.extend([0xF7, [0xE0u8, 0xE8][rng.below(2) as usize] | r]),
                // or ecx,1; cdq; idiv ecx
                7 => p.extend([0x83, 0xC9, 0x01, 0x99, 0xF7, 0xF9]),
                8 => p.extend([0x0F, [0xBC, 0xBD][rng.below(2) as usize], 0xC0 | s << 3 | r]),
                9 => p.extend([0x0F, 0xA4, 0xC0 | s << 3 | r, rng.next() as u8 & 31]),
                // mov ecx,small; rep stosb / rep movsb; reset esi, edi
                10 => {
                    p.extend([0xB9, rng.below(40) as u8, 0, 0, 0, 0xF3]);
                    p.push([0xAA, 0xA4][rng.below(2) as usize]);
                    p.extend([0xBE, 0x00, 0x30, 0, 0, 0xBF, 0x00, 0x40, 0, 0]);
                }
                // in al,0x80; out 0x80,al; in eax,dx; out dx,ax (ports the
                // test bus leaves open: no device exit)
                11 => p.extend([0xE4, 0x80, 0xE6, 0x80, 0xED, 0x66, 0xEF]),
                // cli | sti | pushfd; popfd | pushfd; xor dword [esp],IF; popfd
                12 => match rng.below(4) {
                    0 => p.push(0xFA),
                    1 => p.push(0xFB),
                    2 => p.extend([0x9C, 0x9D]),
                    _ => p.extend([0x9C, 0x81, 0x34, 0x24, 0x00, 0x02, 0, 0, 0x9D]),
                },
                // mov ecx,bit; bt/bts/btr/btc [esi+d],ecx
                13 => {
                    p.extend([0xB9, rng.next() as u8, 0, 0, 0, 0x0F]);
                    p.extend([[0xA3, 0xAB, 0xB3, 0xBB][rng.below(4) as usize], 0x4E, d8]);
                }
                // Forms the translator leaves to the helper: push ds; pop r |
                // mov r,ss | 16-bit add | rcl r,1 | shr byte [esi+d],3 |
                // tzcnt r,r' | push dword [esi+d]; pop dword [edi+d]
                14 => match rng.below(7) {
                    0 => p.extend([0x1E, 0x58 | r]),
                    1 => p.extend([0x8C, 0xD0 | r]),
                    2 => p.extend([0x66, 0x01, 0xC0 | s << 3 | r]),
                    3 => p.extend([0xD1, 0xD0 | r]),
                    4 => p.extend([0xC0, 0x6E, d8, 3]),
                    5 => p.extend([0xF3, 0x0F, 0xBC, 0xC0 | s << 3 | r]),
                    _ => p.extend([0xFF, 0x76, d8, 0x8F, 0x47, d8]),
                },
                _ => p.extend([0x9C, 0x58 | r, 0x01, 0xC0 | s << 3 | r]),
            }
        }
        // A helper's store over the next instruction of its own block:
        // mov edx,0x345678bf; xchg [next],edx; next: mov edi,0x12000000;
        // nop x3 -- the new code (mov edi,0x12345678) runs.
        p.extend([0xBA, 0xBF, 0x78, 0x56, 0x34, 0x87, 0x15]);
        let next = 0x1000 + p.len() as u32 + 4;
        p.extend(next.to_le_bytes());
        p.extend([0xBF, 0, 0, 0, 0x12, 0x90, 0x90, 0x90]);
        p.extend([0x0F, 0xA2, 0xF4]); // cpuid; hlt
        p
    }

    #[test]
    fn helper_instructions_agree_with_the_interpreter() {
        let mut rng = Rng(0x4E1F_E400_0000_0007);
        let mut jit = JitEngine::default();
        for case in 0..300 {
            let code = helper_program(&mut rng, 20);
            let seed = rng.next();
            let b = agree(&mut jit, &code, seed, &format!("case {case}"), |_, ram| {
                fill_data(ram, seed);
            });
            if b.state.eip == 0x1000 + code.len() as u32 {
                // It reached the end (a #DE or an x87 fault may stop it).
                assert_eq!(b.state.regs[7], 0x1234_5678, "case {case}");
            }
        }
        assert!(jit.stats.helper_insns > 1000, "{:?}", jit.stats);
    }

    /// An instruction that crosses into the next page ends its block, which
    /// checks the instruction's bytes there each time it runs: a loop whose
    /// ADD's immediate lies half in the next page, which the loop changes
    /// there once, in its tenth turn from the end (a page the block's own
    /// generation does not cover).
    #[test]
    fn an_instruction_crossing_a_page_checks_its_bytes_there() {
        let mut code = vec![0xF4; 0x1015];
        // mov eax,[0x2000] (the next page into the TLB); mov ecx,40;
        // jmp 0x1FF8
        code[..15].copy_from_slice(&[
            0xA1, 0x00, 0x20, 0, 0, 0xB9, 40, 0, 0, 0, 0xE9, 0xE9, 0x0F, 0, 0,
        ]);
        // 0x1FF8: inc edx; nop x3; add ebx,0x01020304 (0x1FFC-0x2001);
        // 0x2002: cmp ecx,10; jne 0x200D; inc byte [0x2000];
        // 0x200D: dec ecx; jnz 0x1FF8; hlt
        code[0xFF8..].copy_from_slice(&[
            0x42, 0x90, 0x90, 0x90, 0x81, 0xC3, 0x04, 0x03, 0x02, 0x01, 0x83, 0xF9, 0x0A, 0x75,
            0x06, 0xFE, 0x05, 0x00, 0x20, 0, 0, 0x49, 0x0F, 0x85, 0xE4, 0xFF, 0xFF, 0xFF, 0xF4,
        ]);
        let mut jit = JitEngine::default();
        let b = agree(&mut jit, &code, 3, "crossing", |_, _| {});
        assert_eq!(b.state.eip, 0x2015);
        // The ADD ran in its block in the 30 turns before the change, and
        // in the interpreter in the 10 after (27 instructions in all ran
        // there; 50 when the ADD never runs in a block).
        assert!(jit.stats.interp_insns < 35, "{:?}", jit.stats);
    }

    /// STI, CLI and POPF run through the helper: a block must leave where a
    /// pending interrupt becomes deliverable (after the instruction an STI
    /// shadow covers), and the shadow must stay when the STI is the last
    /// instruction a run retired (a budget may end there). Each program runs
    /// under every budget for its first run, then with an interrupt
    /// pending; both engines must stop alike.
    #[test]
    fn interrupt_windows_after_helpers_match_the_interpreter() {
        // cli; inc eax; sti; hlt -- the STI ends its block.
        let last = [0xFA, 0x40, 0xFB, 0xF4];
        // cli; inc eax; sti; inc ebx; inc ecx; cli; pushfd;
        // or dword [esp],IF; popfd; inc edx; hlt
        let within = [
            0xFA, 0x40, 0xFB, 0x43, 0x41, 0xFA, 0x9C, 0x81, 0x0C, 0x24, 0x00, 0x02, 0, 0, 0x9D,
            0x42, 0xF4,
        ];
        // cli; inc eax; pushfd; or dword [esp],IF; popfd; inc edx; hlt
        let popf = [
            0xFA, 0x40, 0x9C, 0x81, 0x0C, 0x24, 0x00, 0x02, 0, 0, 0x9D, 0x42, 0xF4,
        ];
        let mut jit = JitEngine::default();
        for code in [&last[..], &within[..], &popf[..]] {
            for first in 1..12 {
                let mut trace = Vec::new();
                for e in [&mut Interpreter as &mut dyn Engine<FlatRam>, &mut jit] {
                    let (mut cpu, mut ram) = machine(code, 5);
                    let mut stops = Vec::new();
                    let mut req = RunRequest {
                        budget: first,
                        interrupt_pending: false,
                    };
                    for _ in 0..8 {
                        let exit = e.run(&mut cpu, &mut ram, req);
                        stops.push((exit, cpu.state.eip, cpu.icount, cpu.interrupt_shadow()));
                        if exit != EngineExit::Budget {
                            break;
                        }
                        req = RunRequest {
                            budget: 37,
                            interrupt_pending: true,
                        };
                    }
                    trace.push((stops, cpu.state));
                }
                assert_eq!(trace[0], trace[1], "{code:02x?}, first budget {first}");
            }
        }
        assert!(jit.stats.helper_insns > 10, "{:?}", jit.stats);
    }

    #[test]
    fn the_interpreter_finishes_a_budget_too_short_for_the_block() {
        // 40 times add eax,ebx; then inc ecx; jmp back to the start: a
        // 42-instruction block, run once, with 1 to 41 instructions of
        // the budget left after it.
        let mut code = [0x01, 0xD8].repeat(40);
        code.extend([0x41, 0xEB, 0xAD]);
        for budget in 43..84 {
            let mut states = Vec::new();
            let mut jit = JitEngine::default();
            for e in [&mut Interpreter as &mut dyn Engine<FlatRam>, &mut jit] {
                let (mut cpu, mut ram) = machine(&code, 5);
                cpu.state.regs[3] = 3;
                let req = RunRequest {
                    budget,
                    interrupt_pending: false,
                };
                assert_eq!(e.run(&mut cpu, &mut ram, req), EngineExit::Budget);
                states.push((cpu.state, cpu.icount));
            }
            assert_eq!(states[0], states[1], "budget {budget}");
            // The rest ran in the interpreter: no block that starts inside
            // this one was translated for it, or tried.
            let s = &jit.stats;
            assert_eq!((s.blocks, s.block_runs), (1, 1), "budget {budget}: {s:?}");
            assert_eq!(s.interp_insns, budget - 42, "budget {budget}: {s:?}");
        }
    }

    /// Random x87 work: loads, stores and arithmetic on memory (all sizes,
    /// one access crossing a page), computing register forms of every
    /// escape, FCOMI/FCMOVcc against integer flags, FNSTSW AX, the control
    /// instructions that end a native run (FLDCW sometimes unmasking
    /// exceptions, FNSTCW, FNCLEX, FNINIT), and integer work between.
    fn x87_program(rng: &mut Rng, len: usize) -> Vec<u8> {
        // mov esi,0x3000; fninit (or not: the reset control word unmasks
        // every exception, so nothing runs natively until one comes)
        let mut p = vec![0xBE, 0x00, 0x30, 0, 0];
        if rng.below(8) != 0 {
            p.extend([0xDB, 0xE3]);
        }
        for _ in 0..len {
            let r = [0u8, 1, 3][rng.below(3) as usize];
            let d8 = rng.below(30) as u8 * 8 + rng.below(2) as u8 * 4;
            if rng.below(4) == 0 {
                // jne +0: blocks end here (they must fit the tests' budget).
                p.extend([0x75, 0x00]);
            }
            match rng.below(16) {
                // A memory form with [esi+d8].
                0..=5 => {
                    let (op, modrm) = rng.x87_form(Some(0x46));
                    p.extend([op, modrm, d8]);
                }
                // A register form.
                6..=9 => p.extend(<[u8; 2]>::from(rng.x87_form(None))),
                // fld qword [esi+d8]; fld st0 — keeps the stack busy.
                10 => p.extend([0xDD, 0x46, d8, 0xD9, 0xC0]),
                // cmp r,[esi+d8]; fcmovcc st0,st(i) | fucomip st0,st1; setb al
                11 => {
                    p.extend([0x3B, 0x46 | r << 3, d8]);
                    let cc = rng.below(8) as u8;
                    p.extend([0xDA + (cc >> 2), 0xC0 | (cc & 3) << 3 | rng.below(8) as u8]);
                    p.extend([0xDF, 0xE9, 0x0F, 0x92, 0xC0]);
                }
                // fnstsw ax; add ebx,eax
                12 => p.extend([0xDF, 0xE0, 0x01, 0xC3]),
                // fldcw [esi+d8] with a control word that masks everything
                // (often) or not; fnstcw [esi+d8+2]
                13 => {
                    let cw: u16 = if rng.below(4) == 0 {
                        rng.next() as u16
                    } else {
                        0x037F | (rng.next() as u16 & 0x0C00)
                    };
                    // mov word [esi+0xF0],cw; fldcw [esi+0xF0]; fnstcw [esi+d8]
                    p.extend([0x66, 0xC7, 0x46, 0xF0]);
                    p.extend(cw.to_le_bytes());
                    p.extend([0xD9, 0x6E, 0xF0, 0xD9, 0x7E, d8]);
                }
                // fnclex or fninit; an access that crosses into the next page
                14 => match rng.below(3) {
                    0 => p.extend([0xDB, 0xE2]),
                    1 => p.extend([0xDB, 0xE3]),
                    // fld qword [0x3ffc]
                    _ => p.extend([0xDD, 0x05, 0xFC, 0x3F, 0, 0]),
                },
                // Integer work: add r,[esi+d8]; inc r
                _ => p.extend([0x03, 0x46 | r << 3, d8, 0x40 | r]),
            }
        }
        p.push(0xF4);
        p
    }

    #[test]
    fn x87_runs_agree_with_the_interpreter() {
        let mut rng = Rng(0x0087_87A1_2026_1130);
        let mut jit = JitEngine::default();
        for case in 0..600 {
            let code = x87_program(&mut rng, 30);
            let seed = rng.next();
            agree(&mut jit, &code, seed, &format!("case {case}"), |_, ram| {
                for k in 0..0x2000 {
                    // Bytes that make normals, denormals, NaNs, zeros.
                    ram.bytes_mut()[0x3000 + k] = match (seed >> (k % 61)) & 7 {
                        0 => 0,
                        1 => 0xFF,
                        2 => 0x3F,
                        _ => (seed >> (k % 53)) as u8 ^ k as u8,
                    };
                }
            });
        }
        assert!(jit.stats.native_insns > 20_000, "{:?}", jit.stats);
    }

    /// Random register work with shifts by immediates and by 1, and LEA in
    /// its addressing forms (no memory access), for function bodies.
    fn body(rng: &mut Rng, len: usize) -> Vec<u8> {
        let mut p = Vec::new();
        for _ in 0..len {
            let r = [0u8, 1, 2, 3, 5, 6, 7][rng.below(7) as usize];
            let s = rng.below(8) as u8;
            match rng.below(6) {
                0 => p.extend([
                    0xC1,
                    0xC0 | [4u8, 5, 7][rng.below(3) as usize] << 3 | r,
                    rng.next() as u8,
                ]),
                1 => p.extend([0xD1, 0xC0 | [4u8, 5, 7][rng.below(3) as usize] << 3 | r]),
                2 => p.extend([0x8D, 0x40 | r << 3 | (s & 3), rng.next() as u8]),
                3 => {
                    p.extend([
                        0x8D,
                        0x84 | r << 3,
                        (rng.below(4) as u8) << 6 | (s & 3) << 3 | 6,
                    ]);
                    p.extend((rng.next() as u32).to_le_bytes());
                }
                _ => {
                    let op = [0x01, 0x11, 0x19, 0x21, 0x09, 0x29, 0x31, 0x39, 0x85];
                    p.extend([op[rng.below(9) as usize], 0xC0 | s << 3 | r]);
                }
            }
            if rng.below(3) == 0 {
                // pushfd; pop r: every flag the op left becomes visible.
                p.extend([0x9C, 0x58 + [0u8, 1, 2, 3, 5, 6, 7][rng.below(7) as usize]]);
            }
        }
        p
    }

    #[test]
    fn calls_shifts_and_lea_agree_with_the_interpreter() {
        let mut rng = Rng(0xCA11_5EED);
        let mut jit = JitEngine::default();
        for case in 0..200 {
            let funcs = [0x1400u32, 0x1500, 0x1600];
            let with_arg: Vec<bool> = (0..3).map(|_| rng.below(2) == 0).collect();
            let mut code = vec![0x90u8; 0x700];
            let mut at = 0usize;
            for _ in 0..8 {
                let f = rng.below(3) as usize;
                if with_arg[f] {
                    code[at] = 0x50; // push eax
                    at += 1;
                }
                let rel = funcs[f].wrapping_sub(0x1000 + at as u32 + 5);
                code[at] = 0xE8;
                code[at + 1..at + 5].copy_from_slice(&rel.to_le_bytes());
                at += 5;
                code[at..at + 2].copy_from_slice(&[0x01, 0xD8]); // add eax, ebx
                at += 2;
            }
            code[at] = 0xF4;
            for (k, f) in funcs.iter().enumerate() {
                let mut b = body(&mut rng, 12);
                if with_arg[k] {
                    b.extend([0xC2, 4, 0]);
                } else {
                    b.push(0xC3);
                }
                let o = (f - 0x1000) as usize;
                code[o..o + b.len()].copy_from_slice(&b);
            }
            let seed = rng.next();
            agree(&mut jit, &code, seed, &format!("case {case}"), |_, _| {});
        }
        assert!(
            jit.stats.native_insns > 2 * jit.stats.interp_insns,
            "{:?}",
            jit.stats
        );
    }

    /// Byte operations in register (AL..BH) and memory forms, MOVZX and
    /// MOVSX from bytes and words, with the flags made visible.
    #[test]
    fn byte_ops_agree_with_the_interpreter() {
        let mut rng = Rng(0xB17E_0000_0000_0011);
        let mut jit = JitEngine::default();
        for case in 0..300 {
            let mut p = Vec::new();
            for _ in 0..30 {
                // r/m: a byte register, or [esi + disp8] in the data window.
                let rm = |rng: &mut Rng, reg: u8| -> Vec<u8> {
                    if rng.below(2) == 0 {
                        vec![0xC0 | reg << 3 | rng.below(8) as u8]
                    } else {
                        vec![0x46 | reg << 3, rng.below(128) as u8]
                    }
                };
                let reg = rng.below(8) as u8;
                match rng.below(6) {
                    0 => {
                        let op = [
                            0x88u8, 0x8A, 0x00, 0x02, 0x10, 0x12, 0x18, 0x1A, 0x28, 0x2A, 0x20,
                            0x22, 0x08, 0x0A, 0x30, 0x32, 0x38, 0x3A, 0x84,
                        ];
                        p.push(op[rng.below(op.len() as u64) as usize]);
                        p.extend(rm(&mut rng, reg));
                    }
                    1 => {
                        p.push(0x80);
                        let n = rng.below(8) as u8;
                        p.extend(rm(&mut rng, n));
                        p.push(rng.next() as u8);
                    }
                    2 => {
                        p.push(0xC6);
                        p.extend(rm(&mut rng, 0));
                        p.push(rng.next() as u8);
                    }
                    3 => p.extend([0xB0 + reg, rng.next() as u8]),
                    4 => {
                        let dst = [0u8, 1, 2, 3, 5][rng.below(5) as usize];
                        p.extend([0x0F, [0xB6, 0xB7, 0xBE, 0xBF][rng.below(4) as usize]]);
                        p.extend(rm(&mut rng, dst));
                    }
                    _ => p.extend([0x9C, 0x58 + [0u8, 1, 2, 3, 5][rng.below(5) as usize]]),
                }
            }
            p.push(0xF4);
            let seed = rng.next();
            agree(&mut jit, &p, seed, &format!("case {case}"), |cpu, ram| {
                cpu.state.regs[6] = 0x3000;
                for k in 0..0x100 {
                    ram.bytes_mut()[0x3000 + k] = (seed >> (k % 57)) as u8;
                }
            });
        }
        assert!(
            jit.stats.native_insns > jit.stats.interp_insns,
            "{:?}",
            jit.stats
        );
    }

    /// The same physical code run at two linear addresses (as the kernel
    /// runs first identity-mapped, then high) gets a block for each: a
    /// block's EIP-relative values belong to the address it was made at.
    #[test]
    fn one_physical_block_at_two_linear_addresses() {
        // inc eax; jmp +0 (to the next instruction); hlt
        let code = [0x40, 0xEB, 0x00, 0xF4];
        let (mut b, mut ram) = machine(&code, 1);
        let mut jit = JitEngine::default();
        run(&mut jit, &mut b, &mut ram);
        assert_eq!(b.state.eip, 0x1004);
        // Paging maps linear 0x40001000 to physical 0x1000 as well.
        let (mut c, mut ram2) = machine(&code, 1);
        let pd = 0x6000usize;
        let pt = 0x7000usize;
        let bytes = ram2.bytes_mut();
        bytes[pd..pd + 4].copy_from_slice(&(pt as u32 | 3).to_le_bytes());
        bytes[pd + 4 * 0x100..pd + 4 * 0x100 + 4].copy_from_slice(&(pt as u32 | 3).to_le_bytes());
        for k in 0..16u32 {
            let at = pt + 4 * k as usize;
            bytes[at..at + 4].copy_from_slice(&(k << 12 | 3).to_le_bytes());
        }
        c.state.cr3 = pd as u32;
        c.state.cr0 |= 0x8000_0000;
        c.state.regs[4] = 0x8000;
        // First at 0x1000 (identity), then at 0x40001000 (the alias).
        run(&mut jit, &mut c, &mut ram2);
        assert_eq!(c.state.eip, 0x1004);
        c.state.eip = 0x4000_1000;
        c.state.halted = false;
        run(&mut jit, &mut c, &mut ram2);
        assert_eq!(c.state.eip, 0x4000_1004, "the alias's own EIPs");
    }

    /// A block that rewrites its own page between runs is translated again.
    #[test]
    fn a_written_page_retires_its_blocks() {
        // l: mov eax,1; mov [0x1001],ebx (rewrites the immediate); dec ecx;
        // jnz l; hlt
        let code = [
            0xB8, 0x01, 0, 0, 0, 0x89, 0x1D, 0x01, 0x10, 0, 0, 0x49, 0x75, 0xF2, 0xF4,
        ];
        let (mut a, mut ram_a) = machine(&code, 3);
        let (mut b, mut ram_b) = machine(&code, 3);
        for cpu in [&mut a, &mut b] {
            cpu.state.regs[1] = 3;
            cpu.state.regs[3] = 0x77;
        }
        run(&mut Interpreter, &mut a, &mut ram_a);
        let mut jit = JitEngine::default();
        run(&mut jit, &mut b, &mut ram_b);
        assert_eq!(a.state, b.state);
        assert_eq!(b.state.regs[0], 0x77);
        assert!(jit.stats.invalidations > 0);
    }

    /// A jump into another page whose code changed a few times (the
    /// kernel patches its text at boot) is chained again each time, and
    /// stays chained once the changes stop.
    #[test]
    fn a_link_into_a_page_rewritten_a_few_times_is_made_again() {
        // 0x1000: l: jmp m
        // 0x2000: m: mov [esi],ebx; dec edx; jnz +5; mov esi,0x5000;
        //         dec ecx; jnz l; hlt
        // ESI points into the second page for its first 8 rounds.
        let mut code = vec![0u8; 0x1012];
        code[..5].copy_from_slice(&[0xE9, 0xFB, 0x0F, 0, 0]);
        code[0x1000..0x1011].copy_from_slice(&[
            0x89, 0x1E, 0x4A, 0x75, 0x05, 0xBE, 0x00, 0x50, 0, 0, 0x49, 0x0F, 0x85, 0xEF, 0xEF,
            0xFF, 0xFF,
        ]);
        code[0x1011] = 0xF4;
        let mut states = Vec::new();
        let mut jit = JitEngine::default();
        for e in [&mut Interpreter as &mut dyn Engine<FlatRam>, &mut jit] {
            let (mut cpu, mut ram) = machine(&code, 7);
            cpu.state.regs[1] = 300;
            cpu.state.regs[2] = 8;
            cpu.state.regs[6] = 0x2100;
            let req = RunRequest {
                budget: 100_000,
                interrupt_pending: false,
            };
            assert_eq!(e.run(&mut cpu, &mut ram, req), EngineExit::Halted);
            states.push((cpu.state, cpu.icount));
        }
        assert_eq!(states[0], states[1]);
        assert_eq!(states[1].0.regs[1], 0, "{:?}", states[1]);
        // Each rewrite costs a few entries; the 292 rounds after them none.
        assert!(jit.stats.block_runs < 100, "{:?}", jit.stats);
    }

    /// A tiny cache is flushed and refilled, with the same results.
    #[test]
    fn a_tiny_cache_still_gives_the_same_results() {
        let mut rng = Rng(99);
        let mut jit = JitEngine::new(0);
        for _ in 0..50 {
            let code = program(&mut rng, 30);
            let (mut a, mut ram_a) = machine(&code, 5);
            let (mut b, mut ram_b) = machine(&code, 5);
            run(&mut Interpreter, &mut a, &mut ram_a);
            run(&mut jit, &mut b, &mut ram_b);
            assert_eq!(a.state, b.state);
        }
        assert!(jit.stats.flushes > 0);
    }
}
