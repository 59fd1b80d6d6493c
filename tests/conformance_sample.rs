//! A fast sample of the real-hardware single-step suites: every opcode file,
//! the first tests of each. The full suites run from `.ci/run` and with
//! `morph86 conformance`.

use morph86_cpu::CpuModel;
use morph86_difftest::conformance::{collect_files, metadata_for, Runner};
use morph86_difftest::moo::MooFile;

const PER_FILE: usize = 100;

fn sample(dir: &str, model: CpuModel) -> (usize, usize, Vec<String>) {
    let root = morph86_tests::testdata().join("singlestep").join(dir);
    let files = collect_files(std::slice::from_ref(&root)).expect("readable test directory");
    assert!(
        files.len() > 300,
        "expected the whole suite in {}, found {} files",
        root.display(),
        files.len()
    );
    let meta = metadata_for(&files[0]).expect("metadata.json beside the tests");
    let mut runner = Runner::new(model);
    let (mut passed, mut failed, mut notes) = (0, 0, Vec::new());
    for f in &files {
        let moo = MooFile::load(f).unwrap_or_else(|e| panic!("{e}"));
        for t in moo.tests.iter().take(PER_FILE) {
            match runner.run_test(t, &meta.lookup(&t.bytes)) {
                Ok(()) => passed += 1,
                Err(e) => {
                    failed += 1;
                    notes.push(format!("{}: {} {:02X?}: {e}", f.display(), t.name, t.bytes));
                }
            }
        }
    }
    (passed, failed, notes)
}

fn check(dir: &str, model: CpuModel) {
    let (passed, failed, notes) = sample(dir, model);
    let total = passed + failed;
    println!("{dir}: {passed} passed, {failed} failed");
    assert!(total >= 300 * PER_FILE / 2, "too few tests ran: {total}");
    // The suites' acceptance bar is 99.5 %; the sample must do at least as well.
    assert!(
        failed * 1000 <= total * 5,
        "{failed} of {total} failed:\n{}",
        notes.join("\n")
    );
}

#[test]
fn sample_8086() {
    check("8086/v1_binary", CpuModel::I8086);
}

#[test]
fn sample_80286() {
    check("80286/v1_real_mode", CpuModel::I80286);
}
