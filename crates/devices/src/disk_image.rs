//! Disk image back ends: raw image files behind the ATA, ATAPI and floppy
//! drives.
//!
//! An image is opened in one of three modes ([`ImageMode`]):
//!
//! * **read-write**: every guest write goes to the file at once
//!   (`pwrite`, no user-space cache), so writes reach the file in the
//!   order the guest issued them and survive the emulator being killed;
//!   [`DiskImage::flush`] (the guest's FLUSH CACHE, and the end of the
//!   run, and `Drop`) makes them durable with `fdatasync`;
//! * **read-only**: guest writes are refused ([`ImageError::ReadOnly`]),
//!   which the drive turns into a guest-visible error;
//! * **snapshot**: the file is opened read-only and guest writes land in an
//!   in-memory overlay of whole sectors that reads see first; nothing ever
//!   reaches the file, and the overlay is dropped with the image.
//!
//! Opening checks the image up front, so a bad `--hda` is refused before
//! the run starts: a missing or unreadable file, something that is not a
//! regular file, an empty file, or a size that is not a whole number of
//! sectors (a truncated image) are each a clear [`ImageError`].

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use thiserror::Error;

/// How an image file is used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ImageMode {
    /// Reads and writes go to the file.
    #[default]
    ReadWrite,
    /// The guest may only read; its writes fail.
    ReadOnly,
    /// The guest's writes go to memory and are discarded at the end.
    Snapshot,
}

/// An image named on the command line: `FILE[,ro|,snapshot]` (QEMU-style
/// comma options; `,,` is a literal comma in the file name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSpec {
    /// The image file.
    pub path: PathBuf,
    /// How it is used.
    pub mode: ImageMode,
}

impl ImageSpec {
    /// A read-write image at `path`.
    pub fn new(path: impl Into<PathBuf>, mode: ImageMode) -> ImageSpec {
        ImageSpec {
            path: path.into(),
            mode,
        }
    }
}

impl FromStr for ImageSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<ImageSpec, String> {
        // Split on single commas; ",," stands for a comma in the name.
        let mut parts = vec![String::new()];
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            if c == ',' {
                if chars.peek() == Some(&',') {
                    chars.next();
                    parts.last_mut().expect("one part").push(',');
                } else {
                    parts.push(String::new());
                }
            } else {
                parts.last_mut().expect("one part").push(c);
            }
        }
        let path = parts.remove(0);
        if path.is_empty() {
            return Err("expected FILE[,ro|,snapshot]".into());
        }
        let mut mode = ImageMode::ReadWrite;
        for opt in parts {
            mode = match opt.as_str() {
                "ro" | "readonly" | "readonly=on" => ImageMode::ReadOnly,
                "snapshot" | "snapshot=on" => ImageMode::Snapshot,
                "rw" => ImageMode::ReadWrite,
                _ => {
                    return Err(format!(
                        "unknown image option {opt:?} (known: ro, snapshot)"
                    ))
                }
            };
        }
        Ok(ImageSpec {
            path: PathBuf::from(path),
            mode,
        })
    }
}

/// Why an image could not be opened or accessed.
#[derive(Debug, Error)]
pub enum ImageError {
    /// The file could not be opened (missing, no permission...).
    // The OS's words are part of the message rather than a `source`, so
    // that an error chain (anyhow's `{:#}`) does not print them twice.
    #[error("{}: cannot open the image: {err}", path.display())]
    Open {
        /// The image file.
        path: PathBuf,
        /// What the OS said.
        err: std::io::Error,
    },
    /// The path is a directory or a special file.
    #[error("{}: not a regular file", path.display())]
    NotAFile {
        /// The image file.
        path: PathBuf,
    },
    /// The file holds no data.
    #[error("{}: the image is empty", path.display())]
    Empty {
        /// The image file.
        path: PathBuf,
    },
    /// The size is not a whole number of sectors.
    #[error(
        "{}: {len} bytes is not a whole number of {sector_size}-byte sectors (a truncated image?)",
        path.display()
    )]
    Truncated {
        /// The image file.
        path: PathBuf,
        /// Its size in bytes.
        len: u64,
        /// The drive's sector size.
        sector_size: u32,
    },
    /// The size fits no floppy format the drive knows.
    #[error("{}: {len} bytes is not a floppy image size (160K..2.88M)", path.display())]
    FloppySize {
        /// The image file.
        path: PathBuf,
        /// Its size in bytes.
        len: u64,
    },
    /// An access past the last sector.
    #[error("sectors {lba}..{end} lie beyond the image's {sectors} sectors")]
    OutOfRange {
        /// First sector asked for.
        lba: u64,
        /// One past the last sector asked for.
        end: u64,
        /// The image's size in sectors.
        sectors: u64,
    },
    /// A write to a read-only image.
    #[error("{}: the image is read-only", path.display())]
    ReadOnly {
        /// The image file.
        path: PathBuf,
    },
    /// A read, write or sync failed on the host.
    #[error("{}: I/O error: {err}", path.display())]
    Io {
        /// The image file.
        path: PathBuf,
        /// What the OS said.
        err: std::io::Error,
    },
}

/// A raw image file, in whole sectors (see the module docs).
#[derive(Debug)]
pub struct DiskImage {
    file: File,
    path: PathBuf,
    mode: ImageMode,
    sector_size: u32,
    sectors: u64,
    /// Snapshot mode: the sectors the guest wrote, by number.
    overlay: BTreeMap<u64, Box<[u8]>>,
    /// Read-write mode: written since the last sync.
    unsynced: bool,
}

impl DiskImage {
    /// Opens the image `spec` names with `sector_size`-byte sectors (512
    /// for disks and floppies, 2048 for CDs), checking it as the module
    /// docs say.
    pub fn open(spec: &ImageSpec, sector_size: u32) -> Result<DiskImage, ImageError> {
        let path = spec.path.clone();
        let file = OpenOptions::new()
            .read(true)
            .write(spec.mode == ImageMode::ReadWrite)
            .open(&path)
            .map_err(|err| ImageError::Open {
                path: path.clone(),
                err,
            })?;
        let meta = file.metadata().map_err(|err| ImageError::Open {
            path: path.clone(),
            err,
        })?;
        if !meta.is_file() {
            return Err(ImageError::NotAFile { path });
        }
        let len = meta.len();
        if len == 0 {
            return Err(ImageError::Empty { path });
        }
        if !len.is_multiple_of(u64::from(sector_size)) {
            return Err(ImageError::Truncated {
                path,
                len,
                sector_size,
            });
        }
        let mut img = DiskImage {
            file,
            path,
            mode: spec.mode,
            sector_size,
            sectors: len / u64::from(sector_size),
            overlay: BTreeMap::new(),
            unsynced: false,
        };
        // Unreadable files are refused now rather than at the guest's
        // first read.
        let mut first = vec![0; sector_size as usize];
        img.read_sectors(0, &mut first)?;
        Ok(img)
    }

    /// Opens a read-write image at `path` (a shorthand for tests and tools).
    pub fn open_path(
        path: impl AsRef<Path>,
        mode: ImageMode,
        sector_size: u32,
    ) -> Result<DiskImage, ImageError> {
        DiskImage::open(&ImageSpec::new(path.as_ref(), mode), sector_size)
    }

    /// The image file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How the image is used.
    pub fn mode(&self) -> ImageMode {
        self.mode
    }

    /// True when guest writes are refused.
    pub fn read_only(&self) -> bool {
        self.mode == ImageMode::ReadOnly
    }

    /// Bytes per sector.
    pub fn sector_size(&self) -> u32 {
        self.sector_size
    }

    /// Size in sectors.
    pub fn sectors(&self) -> u64 {
        self.sectors
    }

    /// Size in bytes.
    pub fn len_bytes(&self) -> u64 {
        self.sectors * u64::from(self.sector_size)
    }

    /// Sector count of `len` bytes, checking that `lba..` fits the image.
    fn span(&self, lba: u64, len: usize) -> Result<u64, ImageError> {
        let ss = u64::from(self.sector_size);
        let count = (len as u64).div_ceil(ss);
        let end = lba.saturating_add(count);
        if !(len as u64).is_multiple_of(ss) || end > self.sectors {
            return Err(ImageError::OutOfRange {
                lba,
                end,
                sectors: self.sectors,
            });
        }
        Ok(count)
    }

    fn io_error(&self, err: std::io::Error) -> ImageError {
        ImageError::Io {
            path: self.path.clone(),
            err,
        }
    }

    /// Reads whole sectors from `lba` into `buf` (a multiple of the sector
    /// size long).
    pub fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), ImageError> {
        let count = self.span(lba, buf.len())?;
        let ss = self.sector_size as usize;
        self.file
            .read_exact_at(buf, lba * ss as u64)
            .map_err(|e| self.io_error(e))?;
        if !self.overlay.is_empty() {
            for (&n, data) in self.overlay.range(lba..lba + count) {
                let at = (n - lba) as usize * ss;
                buf[at..at + ss].copy_from_slice(data);
            }
        }
        Ok(())
    }

    /// Writes whole sectors from `data` at `lba`: to the file (read-write),
    /// to the overlay (snapshot), or not at all (read-only: an error).
    pub fn write_sectors(&mut self, lba: u64, data: &[u8]) -> Result<(), ImageError> {
        self.span(lba, data.len())?;
        match self.mode {
            ImageMode::ReadOnly => Err(ImageError::ReadOnly {
                path: self.path.clone(),
            }),
            ImageMode::Snapshot => {
                let ss = self.sector_size as usize;
                for (i, sector) in data.chunks_exact(ss).enumerate() {
                    self.overlay.insert(lba + i as u64, sector.into());
                }
                Ok(())
            }
            ImageMode::ReadWrite => {
                self.file
                    .write_all_at(data, lba * u64::from(self.sector_size))
                    .map_err(|e| self.io_error(e))?;
                self.unsynced = true;
                Ok(())
            }
        }
    }

    /// Makes the writes so far durable (a no-op unless the image is
    /// read-write and was written since the last flush).
    pub fn flush(&mut self) -> Result<(), ImageError> {
        if self.unsynced {
            self.file.sync_data().map_err(|e| self.io_error(e))?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Sectors held in the snapshot overlay.
    pub fn overlay_sectors(&self) -> usize {
        self.overlay.len()
    }
}

impl Drop for DiskImage {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::error!("{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn pattern(sectors: usize) -> Vec<u8> {
        (0..sectors * 512)
            .map(|i| (i / 512 * 7 + i) as u8)
            .collect()
    }

    #[test]
    fn parses_specs() {
        let s: ImageSpec = "a.img".parse().unwrap();
        assert_eq!(s, ImageSpec::new("a.img", ImageMode::ReadWrite));
        let s: ImageSpec = "dir/a.img,ro".parse().unwrap();
        assert_eq!(s, ImageSpec::new("dir/a.img", ImageMode::ReadOnly));
        let s: ImageSpec = "a,,b.img,snapshot".parse().unwrap();
        assert_eq!(s, ImageSpec::new("a,b.img", ImageMode::Snapshot));
        assert!("a.img,bogus".parse::<ImageSpec>().is_err());
        assert!(",ro".parse::<ImageSpec>().is_err());
        assert!("".parse::<ImageSpec>().is_err());
    }

    #[test]
    fn bad_images_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.img");
        let e = DiskImage::open_path(&missing, ImageMode::ReadWrite, 512).unwrap_err();
        assert!(matches!(e, ImageError::Open { .. }), "{e}");
        assert!(e.to_string().contains("missing.img"), "{e}");
        let empty = image(&dir, "empty.img", &[]);
        let e = DiskImage::open_path(&empty, ImageMode::ReadOnly, 512).unwrap_err();
        assert!(matches!(e, ImageError::Empty { .. }), "{e}");
        let short = image(&dir, "short.img", &[0; 1000]);
        let e = DiskImage::open_path(&short, ImageMode::Snapshot, 512).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        // A CD image must be whole 2048-byte sectors.
        let cd = image(&dir, "cd.iso", &[0; 512 * 3]);
        assert!(DiskImage::open_path(&cd, ImageMode::ReadOnly, 2048).is_err());
        let e = DiskImage::open_path(dir.path(), ImageMode::ReadOnly, 512).unwrap_err();
        assert!(matches!(e, ImageError::NotAFile { .. }), "{e}");
    }

    #[test]
    fn read_write_goes_to_the_file_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = image(&dir, "rw.img", &pattern(8));
        let mut img = DiskImage::open_path(&p, ImageMode::ReadWrite, 512).unwrap();
        assert_eq!(img.sectors(), 8);
        let mut buf = vec![0; 1024];
        img.read_sectors(3, &mut buf).unwrap();
        assert_eq!(buf, pattern(8)[3 * 512..5 * 512]);
        // Two writes to one sector: the file holds the later, before any
        // flush (nothing is cached in the process).
        img.write_sectors(2, &[0xAA; 512]).unwrap();
        img.write_sectors(2, &[0xBB; 1024]).unwrap();
        let on_disk = std::fs::read(&p).unwrap();
        assert!(on_disk[1024..2048].iter().all(|&b| b == 0xBB));
        img.flush().unwrap();
        assert!(img.write_sectors(7, &[0; 1024]).is_err(), "past the end");
        assert!(img.read_sectors(8, &mut buf[..512]).is_err());
        assert!(img.read_sectors(u64::MAX, &mut buf[..512]).is_err());
        drop(img);
        assert_eq!(std::fs::read(&p).unwrap(), on_disk);
    }

    #[test]
    fn read_only_refuses_writes() {
        let dir = tempfile::tempdir().unwrap();
        let p = image(&dir, "ro.img", &pattern(2));
        let mut img = DiskImage::open_path(&p, ImageMode::ReadOnly, 512).unwrap();
        let e = img.write_sectors(0, &[1; 512]).unwrap_err();
        assert!(matches!(e, ImageError::ReadOnly { .. }), "{e}");
        let mut buf = vec![0; 512];
        img.read_sectors(0, &mut buf).unwrap();
        assert_eq!(buf, pattern(2)[..512]);
        drop(img);
        assert_eq!(std::fs::read(&p).unwrap(), pattern(2));
    }

    #[test]
    fn snapshot_never_touches_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = image(&dir, "snap.img", &pattern(4));
        let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
        let mut img = DiskImage::open_path(&p, ImageMode::Snapshot, 512).unwrap();
        img.write_sectors(1, &[0x11; 1024]).unwrap();
        let mut buf = vec![0; 2048];
        img.read_sectors(0, &mut buf).unwrap();
        assert_eq!(buf[..512], pattern(4)[..512]);
        assert!(buf[512..1536].iter().all(|&b| b == 0x11));
        assert_eq!(buf[1536..], pattern(4)[1536..2048]);
        assert_eq!(img.overlay_sectors(), 2);
        img.flush().unwrap();
        drop(img);
        assert_eq!(std::fs::read(&p).unwrap(), pattern(4));
        assert_eq!(std::fs::metadata(&p).unwrap().modified().unwrap(), mtime);
    }
}
