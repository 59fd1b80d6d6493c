//! Runs the real-hardware single-step suites (MOO files) against the interpreter.
//!
//! Conventions follow `../shared/tests-data/README.md`: load INIT registers
//! and RAM, execute (one instruction on the 8086; until HLT on the 80286),
//! then compare registers, FLAGS under the metadata's mask, and every RAM
//! byte the test lists or the interpreter wrote.

use crate::metadata::{Metadata, OpcodeInfo};
use crate::moo::{MooError, MooFile, MooTest, Regs16};
use morph86_cpu::{Bus, Cpu, CpuModel, FlatRam, SegReg, StepOutcome};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// RAM wrapper that remembers which bytes the CPU wrote.
struct TestBus {
    ram: FlatRam,
    written: Vec<u32>,
}

impl Bus for TestBus {
    fn read_u8(&mut self, addr: u32) -> u8 {
        self.ram.read_u8(addr)
    }
    fn write_u8(&mut self, addr: u32, value: u8) {
        self.written.push(addr);
        self.ram.write_u8(addr, value);
    }
    fn mark_code_page(&mut self, page: u32) {
        self.ram.mark_code_page(page);
    }
    fn code_generation(&self, page: u32) -> u32 {
        Bus::code_generation(&self.ram, page)
    }
}

/// Result of one file.
#[derive(Debug, Clone, Default)]
pub struct FileReport {
    /// File name (without directory).
    pub file: String,
    /// Tests that passed.
    pub passed: usize,
    /// Tests that failed.
    pub failed: usize,
    /// Failure descriptions (the first few).
    pub failures: Vec<String>,
    /// Failures per opcode key (e.g. "D0.4").
    pub failed_by_opcode: BTreeMap<String, usize>,
    /// Tests per opcode key.
    pub total_by_opcode: BTreeMap<String, usize>,
    /// `Some((meta_test_ct, header_count))` when the file's `META.test_ct`
    /// disagrees with its `MOO ` header (upstream writes a running total
    /// there); the header's count was used.
    pub meta_count_mismatch: Option<(u32, u32)>,
}

/// Runs every test of one MOO file for `model`.
pub struct Runner {
    model: CpuModel,
    cpu: Cpu,
    bus: TestBus,
    /// How many failure descriptions to keep per file.
    pub keep_failures: usize,
}

fn reg_list(r: &Regs16) -> [Option<u16>; 14] {
    let mut out = [None; 14];
    for (i, v) in out.iter_mut().enumerate() {
        *v = r.get(i);
    }
    out
}

impl Runner {
    /// A runner with RAM for `model` (1 MiB for the 8086, 16 MiB for the 80286).
    pub fn new(model: CpuModel) -> Runner {
        let size = match model {
            CpuModel::I8086 => 1 << 20,
            _ => 1 << 24,
        };
        Runner {
            model,
            cpu: Cpu::new(model),
            bus: TestBus {
                ram: FlatRam::new(size),
                written: Vec::new(),
            },
            keep_failures: 5,
        }
    }

    /// Runs one test; `Err` describes the mismatch.
    pub fn run_test(&mut self, t: &MooTest, info: &OpcodeInfo) -> Result<(), String> {
        let result = self.run_inner(t, info);
        // Restore RAM to zero at every address the test or the CPU touched.
        let ram = self.bus.ram.bytes_mut();
        for &(a, _) in t.init.ram.iter().chain(t.fina.ram.iter()) {
            if let Some(b) = ram.get_mut(a as usize) {
                *b = 0;
            }
        }
        for &a in &self.bus.written {
            if let Some(b) = ram.get_mut(a as usize) {
                *b = 0;
            }
        }
        self.bus.written.clear();
        result
    }

    fn run_inner(&mut self, t: &MooTest, info: &OpcodeInfo) -> Result<(), String> {
        let init = reg_list(&t.init.regs);
        if init.iter().any(|v| v.is_none()) {
            return Err("INIT lacks a register".into());
        }
        let iv = |i: usize| init[i].unwrap_or(0);
        {
            let ram = self.bus.ram.bytes_mut();
            for &(a, v) in &t.init.ram {
                if let Some(b) = ram.get_mut(a as usize) {
                    *b = v;
                }
            }
        }
        self.cpu = Cpu::new(self.model);
        let s = &mut self.cpu.state;
        for (idx, r) in [
            (0usize, 0usize),
            (3, 1),
            (1, 2),
            (2, 3),
            (4, 8),
            (5, 9),
            (6, 10),
            (7, 11),
        ] {
            s.regs[idx] = u32::from(iv(r));
        }
        for (seg, r) in [
            (SegReg::Cs, 4),
            (SegReg::Ss, 5),
            (SegReg::Ds, 6),
            (SegReg::Es, 7),
        ] {
            s.load_seg_real(seg, iv(r));
        }
        s.eip = u32::from(iv(12));
        // The 80286 LOADALL image may hold IOPL/NT, which real mode cannot.
        self.cpu.set_flags_raw(u32::from(iv(13)));

        let mut exception = None;
        match self.model {
            CpuModel::I8086 => {
                // Exactly one instruction (REP counts stay below REP_CHUNK).
                match self.cpu.step(&mut self.bus) {
                    StepOutcome::Exception(f) => exception = Some(f),
                    StepOutcome::TripleFault(f) => return Err(format!("shutdown on {f}")),
                    _ => {}
                }
            }
            _ => {
                let mut halted = false;
                for _ in 0..64 {
                    match self.cpu.step(&mut self.bus) {
                        StepOutcome::Halted => {
                            halted = true;
                            break;
                        }
                        StepOutcome::Exception(f) => exception = exception.or(Some(f)),
                        StepOutcome::TripleFault(f) => return Err(format!("shutdown on {f}")),
                        StepOutcome::Executed => {}
                    }
                }
                if !halted {
                    return Err("did not reach HLT".into());
                }
            }
        }

        // Registers.
        let s = &self.cpu.state;
        let got: [u16; 14] = [
            s.regs[0] as u16,
            s.regs[3] as u16,
            s.regs[1] as u16,
            s.regs[2] as u16,
            s.segs[SegReg::Cs as usize].selector,
            s.segs[SegReg::Ss as usize].selector,
            s.segs[SegReg::Ds as usize].selector,
            s.segs[SegReg::Es as usize].selector,
            s.regs[4] as u16,
            s.regs[5] as u16,
            s.regs[6] as u16,
            s.regs[7] as u16,
            s.eip as u16,
            s.eflags as u16,
        ];
        let fina = reg_list(&t.fina.regs);
        let mut diffs = Vec::new();
        for i in 0..14 {
            let mut want = fina[i].unwrap_or(iv(i));
            let mut have = got[i];
            if i == 13 {
                if fina[i].is_none() {
                    want = self.expected_flags_unchanged(iv(13));
                }
                want &= info.flags_mask;
                have &= info.flags_mask;
            }
            if want != have {
                diffs.push(format!(
                    "{}: want {:04X} got {:04X}",
                    Regs16::NAMES[i],
                    want,
                    have
                ));
            }
        }

        // Memory: every listed byte, and every byte the CPU wrote.
        let flags_at = match (t.exception, exception) {
            // EXCP gives the FLAGS word's bus address, rounded down to even;
            // locate the word from the expected final SS:SP instead.
            (Some(_), _) => {
                let ss = u32::from(fina[5].unwrap_or(iv(5)));
                let sp = u32::from(fina[8].unwrap_or(iv(8)));
                Some(((ss << 4) + ((sp + 4) & 0xFFFF)) & 0xFF_FFFF)
            }
            (None, Some(f)) if self.model == CpuModel::I8086 && f.vector == 0 => {
                let ss = u32::from(s.segs[SegReg::Ss as usize].selector);
                Some(((ss << 4) + ((s.regs[4] + 4) & 0xFFFF)) & 0xFFFFF)
            }
            _ => None,
        };
        let mut expect: HashMap<u32, u8> = t.init.ram.iter().copied().collect();
        for &(a, v) in &t.fina.ram {
            expect.insert(a, v);
        }
        let mut addrs: Vec<u32> = t.fina.ram.iter().map(|&(a, _)| a).collect();
        addrs.extend(self.bus.written.iter().copied());
        addrs.sort_unstable();
        addrs.dedup();
        for a in addrs {
            let have = self
                .bus
                .ram
                .bytes()
                .get(a as usize)
                .copied()
                .unwrap_or(0xFF);
            let Some(&want) = expect.get(&a) else {
                diffs.push(format!("stray write [{a:05X}]={have:02X}"));
                continue;
            };
            let m = match flags_at {
                Some(f) if a == f => info.flags_mask as u8,
                Some(f) if a == f + 1 => (info.flags_mask >> 8) as u8,
                _ => 0xFF,
            };
            if want & m != have & m {
                diffs.push(format!("[{a:05X}] want {want:02X} got {have:02X}"));
            }
        }
        if diffs.is_empty() {
            Ok(())
        } else {
            Err(diffs.join(", "))
        }
    }

    /// FLAGS when the test lists none: the initial value as the chip holds it.
    fn expected_flags_unchanged(&self, init: u16) -> u16 {
        match self.model {
            CpuModel::I8086 => (init & 0x0FD5) | 0xF002,
            _ => (init & 0x0FD5) | 0x0002,
        }
    }

    /// Runs a whole file.
    pub fn run_file(
        &mut self,
        path: &Path,
        meta: Option<&Metadata>,
    ) -> Result<FileReport, MooError> {
        let moo = MooFile::load(path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut rep = FileReport {
            file: name,
            meta_count_mismatch: moo.meta_count_mismatch(),
            ..FileReport::default()
        };
        for (pos, t) in moo.tests.iter().enumerate() {
            let (info, key) = match meta {
                Some(m) => (m.lookup(&t.bytes), m.opcode_key(&t.bytes)),
                None => (
                    OpcodeInfo {
                        status: "unknown".into(),
                        flags_mask: 0xFFFF,
                    },
                    rep.file.clone(),
                ),
            };
            *rep.total_by_opcode.entry(key.clone()).or_default() += 1;
            match self.run_test(t, &info) {
                Ok(()) => rep.passed += 1,
                Err(e) => {
                    rep.failed += 1;
                    *rep.failed_by_opcode.entry(key).or_default() += 1;
                    if rep.failures.len() < self.keep_failures {
                        let bytes: Vec<String> =
                            t.bytes.iter().map(|b| format!("{b:02X}")).collect();
                        rep.failures.push(format!(
                            "#{} {} [{}]: {}",
                            pos,
                            t.name,
                            bytes.join(" "),
                            e
                        ));
                    }
                }
            }
        }
        Ok(rep)
    }
}

/// Expands files and directories into the list of `*.MOO.gz` / `*.MOO` files.
pub fn collect_files(inputs: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    let n = f
                        .file_name()
                        .map(|n| n.to_string_lossy().to_ascii_uppercase())
                        .unwrap_or_default();
                    n.ends_with(".MOO.GZ") || n.ends_with(".MOO")
                })
                .collect();
            v.sort();
            out.extend(v);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Finds `metadata.json` beside a test file.
pub fn metadata_for(file: &Path) -> Option<Metadata> {
    let m = file.parent()?.join("metadata.json");
    Metadata::load(&m).ok()
}

/// Totals over many files.
#[derive(Debug, Default)]
pub struct Summary {
    /// Per-file reports in file order.
    pub files: Vec<FileReport>,
    /// Files that could not be read.
    pub errors: Vec<String>,
}

impl Summary {
    /// Tests passed.
    pub fn passed(&self) -> usize {
        self.files.iter().map(|f| f.passed).sum()
    }
    /// Tests failed (unreadable files count as no tests; see [`Summary::unreadable`]).
    pub fn failed(&self) -> usize {
        self.files.iter().map(|f| f.failed).sum()
    }
    /// Files that could not be read or parsed.
    pub fn unreadable(&self) -> usize {
        self.errors.len()
    }
    /// Files whose `META.test_ct` disagrees with the `MOO ` header's count
    /// (a note, not a failure).
    pub fn meta_count_mismatches(&self) -> usize {
        self.files
            .iter()
            .filter(|f| f.meta_count_mismatch.is_some())
            .count()
    }
    /// The summary line: `conformance: N passed, M failed`, followed by
    /// `, K files unreadable` when some files could not be read, so a run
    /// that lost files never looks complete.
    pub fn line(&self) -> String {
        let mut s = format!(
            "conformance: {} passed, {} failed",
            self.passed(),
            self.failed()
        );
        if self.unreadable() > 0 {
            s.push_str(&format!(", {} files unreadable", self.unreadable()));
        }
        s
    }
    /// Whether the run succeeded: at most `max_fail` failed tests and every
    /// file read.
    pub fn ok(&self, max_fail: usize) -> bool {
        self.failed() <= max_fail && self.errors.is_empty()
    }
}

/// Runs `files` on `threads` threads.
pub fn run_files(
    files: &[PathBuf],
    model: CpuModel,
    threads: usize,
    keep_failures: usize,
) -> Summary {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Result<FileReport, String>)>> = Mutex::new(Vec::new());
    let metas: Mutex<HashMap<PathBuf, Option<Metadata>>> = Mutex::new(HashMap::new());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                let mut runner = Runner::new(model);
                runner.keep_failures = keep_failures;
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(f) = files.get(k) else { break };
                    let dir = f.parent().map(Path::to_path_buf).unwrap_or_default();
                    let meta = {
                        let mut m = metas.lock().unwrap_or_else(|e| e.into_inner());
                        m.entry(dir).or_insert_with(|| metadata_for(f)).clone()
                    };
                    let r = runner.run_file(f, meta.as_ref()).map_err(|e| e.to_string());
                    results
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((k, r));
                }
            });
        }
    });
    let mut v = results.into_inner().unwrap_or_else(|e| e.into_inner());
    v.sort_by_key(|(k, _)| *k);
    let mut sum = Summary::default();
    for (_, r) in v {
        match r {
            Ok(rep) => sum.files.push(rep),
            Err(e) => sum.errors.push(e),
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moo::tests::{chunk, counted, header, meta_chunk, ram_chunk, regs_chunk};

    /// An 80286 test the interpreter passes: NOP; HLT at 0000:0200.
    fn nop_test(index: u32) -> Vec<u8> {
        let mut p = index.to_le_bytes().to_vec();
        p.extend(chunk(b"NAME", &counted(b"nop")));
        p.extend(chunk(b"BYTS", &counted(&[0x90, 0xF4])));
        let mut regs = [0u16; 14];
        regs[8] = 0x100; // sp
        regs[12] = 0x200; // ip
        regs[13] = 0x0002; // flags
        let mut init = regs_chunk(0x3FFF, &regs);
        init.extend(ram_chunk(&[(0x200, 0x90), (0x201, 0xF4)]));
        p.extend(chunk(b"INIT", &init));
        let mut fina = regs_chunk(1 << 12, &[0x202]);
        fina.extend(ram_chunk(&[]));
        p.extend(chunk(b"FINA", &fina));
        chunk(b"TEST", &p)
    }

    fn nop_file(tests: u32, meta_test_ct: Option<u32>) -> Vec<u8> {
        let mut f = header(tests);
        if let Some(ct) = meta_test_ct {
            f.extend(meta_chunk(ct));
        }
        for i in 0..tests {
            f.extend(nop_test(i));
        }
        f
    }

    #[test]
    fn unreadable_files_show_in_the_summary_line() {
        let dir =
            std::env::temp_dir().join(format!("morph86-conformance-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Upstream's running total in META.test_ct: still read.
        std::fs::write(dir.join("00.MOO"), nop_file(3, Some(1503))).unwrap();
        std::fs::write(dir.join("01.MOO"), nop_file(2, Some(2))).unwrap();
        let good = nop_file(4, None);
        std::fs::write(dir.join("02.MOO"), &good[..good.len() - 10]).unwrap();
        std::fs::write(dir.join("03.MOO"), nop_file(1, None)).unwrap();
        let files = collect_files(std::slice::from_ref(&dir)).unwrap();
        assert_eq!(files.len(), 4);

        let sum = run_files(&files, CpuModel::I80286, 2, 5);
        assert_eq!((sum.passed(), sum.failed()), (6, 0), "{:?}", sum.files);
        assert_eq!(sum.unreadable(), 1);
        assert!(sum.errors[0].contains("02.MOO"), "{:?}", sum.errors);
        assert_eq!(sum.meta_count_mismatches(), 1);
        assert_eq!(sum.files[0].meta_count_mismatch, Some((1503, 3)));
        assert_eq!(
            sum.line(),
            "conformance: 6 passed, 0 failed, 1 files unreadable"
        );
        assert!(!sum.ok(0), "a lost file fails the run");
        assert!(!sum.ok(100));

        // Without the truncated file the line is the plain one and the run passes.
        let readable: Vec<PathBuf> = files
            .iter()
            .filter(|f| !f.ends_with("02.MOO"))
            .cloned()
            .collect();
        let sum = run_files(&readable, CpuModel::I80286, 1, 5);
        assert_eq!(sum.line(), "conformance: 6 passed, 0 failed");
        assert!(sum.ok(0));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
