//! Builds the system BIOS (`system/`) and the VGA BIOS (`vga/`) from their
//! C and assembly sources with gcc (`-m16`), ld and objcopy, the same GNU
//! toolchain the test kernels in `roms/` need.

use std::path::{Path, PathBuf};
use std::process::Command;

const CFLAGS: &[&str] = &[
    "-m16",
    "-march=i386",
    "-Os",
    "-std=gnu11",
    "-ffreestanding",
    "-fno-pic",
    "-fno-pie",
    "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables",
    "-fno-unwind-tables",
    "-mregparm=3",
    "-mpreferred-stack-boundary=2",
    "-mno-sse",
    "-mno-mmx",
    "-mno-80387",
    "-fno-builtin",
    "-fno-strict-aliasing",
    "-fno-delete-null-pointer-checks",
    "-fno-common",
    "-fno-jump-tables",
    "-fno-tree-switch-conversion",
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
];

fn tool(var: &str, default: &str) -> String {
    println!("cargo:rerun-if-env-changed={var}");
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!(
            "\n\nmorph86-bios: cannot run {:?} ({e}).\nBuilding the BIOS needs gcc and binutils (ld, objcopy): \
             on Debian, `apt-get install gcc binutils`.\n\n",
            cmd.get_program()
        )
    });
    if !out.status.success() {
        panic!(
            "\n\nmorph86-bios: {what} failed:\n{}{}\n",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Compiler warnings reach the cargo output.
    for line in String::from_utf8_lossy(&out.stderr).lines() {
        println!("cargo:warning={what}: {line}");
    }
}

fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("c" | "S")))
        .collect();
    v.sort();
    v
}

/// Compiles and links one ROM; returns the flat binary.
fn build_rom(root: &Path, out: &Path, name: &str) -> Vec<u8> {
    let cc = tool("CC", "gcc");
    let ld = tool("LD", "ld");
    let objcopy = tool("OBJCOPY", "objcopy");
    let src = root.join(name);
    let obj_dir = out.join(name);
    std::fs::create_dir_all(&obj_dir).expect("object directory");
    let mut objs = Vec::new();
    for s in sources(&src) {
        let o = obj_dir.join(s.file_name().unwrap()).with_extension("o");
        run(
            Command::new(&cc)
                .args(CFLAGS)
                .arg("-I")
                .arg(root.join("include"))
                .arg("-I")
                .arg(&src)
                .arg("-c")
                .arg(&s)
                .arg("-o")
                .arg(&o),
            &format!("compiling {}", s.display()),
        );
        objs.push(o);
    }
    let elf = out.join(format!("{name}.elf"));
    run(
        Command::new(&ld)
            .args([
                "-m",
                "elf_i386",
                "-nostdlib",
                "--no-check-sections",
                "-z",
                "noexecstack",
                "-T",
            ])
            .arg(src.join("link.ld"))
            .arg("-o")
            .arg(&elf)
            .args(&objs),
        &format!("linking the {name} BIOS"),
    );
    let bin = out.join(format!("{name}.bin"));
    run(
        Command::new(&objcopy)
            .args(["-O", "binary"])
            .arg(&elf)
            .arg(&bin),
        &format!("objcopy of the {name} BIOS"),
    );
    std::fs::read(&bin).expect("ROM image")
}

/// Assembles the demo disk's program (`roms/demo/demo.S`, what `morph86
/// run` boots with no options) into a flat binary linked at 0x7C00.
fn build_demo(root: &Path, out: &Path) -> Vec<u8> {
    let cc = tool("CC", "gcc");
    let ld = tool("LD", "ld");
    let src = root.join("../roms/demo/demo.S");
    println!("cargo:rerun-if-changed={}", src.display());
    let obj = out.join("demo.o");
    run(
        Command::new(&cc)
            .args(["-m32", "-c"])
            .arg(&src)
            .arg("-o")
            .arg(&obj),
        "assembling the demo disk",
    );
    let bin = out.join("demo.bin");
    run(
        Command::new(&ld)
            .args([
                "-m",
                "elf_i386",
                "-nostdlib",
                "-Ttext",
                "0x7C00",
                "--oformat",
                "binary",
                "-o",
            ])
            .arg(&bin)
            .arg(&obj),
        "linking the demo disk",
    );
    std::fs::read(&bin).expect("demo.bin")
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    for d in ["include", "system", "vga"] {
        println!("cargo:rerun-if-changed={}", root.join(d).display());
    }
    let bios = build_rom(&root, &out, "system");
    assert_eq!(
        bios.len(),
        0x10000,
        "the system BIOS must be exactly 64 KiB"
    );
    std::fs::write(out.join("bios.bin"), &bios).expect("bios.bin");

    // The VGA BIOS: padded to 512-byte blocks, its size byte, a checksum.
    let mut vga = build_rom(&root, &out, "vga");
    // At least one byte of padding: the checksum byte.
    vga.resize((vga.len() + 1).div_ceil(512) * 512, 0);
    assert!(vga.len() <= 0x8000, "the VGA BIOS must fit 32 KiB");
    vga[2] = (vga.len() / 512) as u8;
    let sum = vga.iter().fold(0u8, |s, &b| s.wrapping_add(b));
    let last = vga.len() - 1;
    vga[last] = vga[last].wrapping_sub(sum);
    std::fs::write(out.join("vgabios.bin"), &vga).expect("vgabios.bin");

    // The demo: a boot sector and three more (it loads them itself).
    let mut demo = build_demo(&root, &out);
    assert!(demo.len() <= 4 * 512, "the demo program must fit 4 sectors");
    assert_eq!(&demo[510..512], &[0x55, 0xAA], "the demo's boot signature");
    demo.resize(4 * 512, 0);
    std::fs::write(out.join("demo-disk.bin"), &demo).expect("demo-disk.bin");
}
