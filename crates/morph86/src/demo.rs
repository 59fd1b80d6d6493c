//! The built-in demo: what `morph86 run` (and plain `morph86`) boots when
//! no kernel, firmware or drive is named. A small disk made from
//! `roms/demo/demo.S` (built with the BIOS by the `morph86-bios` crate) is
//! attached as the primary hard disk and the machine powers on through
//! morph86's BIOS: text through INT 10h, then a Mandelbrot set in mode
//! 13h, then a text summary, then a halt that ends the run.
//!
//! Headless, the text screen at the end is printed as the run's summary.
//! A window front end uses [`DemoDisk::attach`] the same way and shows the
//! screen instead.

use crate::run_cmd::{BootOrder, RunArgs};
use anyhow::{bail, Context, Result};
use morph86_devices::{ImageMode, ImageSpec};
use morph86_machine::bios::BootDevice;
use morph86_machine::VgaModel;
use std::path::PathBuf;

/// The demo disk's size: 1 MiB.
const DEMO_SECTORS: usize = 2048;

/// The demo disk's image file, removed when this is dropped (the machine
/// keeps it open, in snapshot mode, so nothing is ever written to it).
pub struct DemoDisk {
    path: PathBuf,
}

impl DemoDisk {
    /// Writes the demo disk to a temporary file and sets `a` up to boot it
    /// through the BIOS. Options the demo cannot honour are refused.
    pub fn attach(a: &mut RunArgs) -> Result<DemoDisk> {
        if a.vga == VgaModel::None {
            bail!("the built-in demo draws on the VGA: it cannot run with --vga none");
        }
        let path = std::env::temp_dir().join(format!("morph86-demo-{}.img", std::process::id()));
        std::fs::write(&path, morph86_bios::demo_disk(DEMO_SECTORS))
            .with_context(|| format!("writing the demo disk {}", path.display()))?;
        a.hda = Some(ImageSpec::new(&path, ImageMode::Snapshot));
        a.boot = Some(BootOrder(vec![BootDevice::HardDisk]));
        Ok(DemoDisk { path })
    }
}

impl Drop for DemoDisk {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Prints the text screen as the headless demo's summary: its rows up to
/// the last non-blank one.
pub fn print_summary(text: &str) {
    let rows: Vec<&str> = text.lines().map(str::trim_end).collect();
    let n = rows
        .iter()
        .rposition(|r| !r.is_empty())
        .map_or(0, |i| i + 1);
    println!("---- morph86 demo: the screen at the end of the run ----");
    for r in &rows[..n] {
        println!("{r}");
    }
    println!("--------------------------------------------------------");
}
