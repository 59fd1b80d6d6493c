//! What the VGA renders into: a frame of pixels, and the seam to whatever
//! shows it (a window, a screenshot). The VGA never knows which.

use serde::{Deserialize, Serialize};

/// A rendered screen: `width` x `height` pixels, row after row, each
/// `0x00RRGGBB`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The pixels, `width * height` of them.
    pub pixels: Vec<u32>,
}

impl Frame {
    /// A black frame of the given size.
    pub fn new(width: u32, height: u32) -> Frame {
        Frame {
            width,
            height,
            pixels: vec![0; width as usize * height as usize],
        }
    }

    /// Makes the frame `width` x `height` (black) unless it already is;
    /// true when it changed.
    pub fn resize(&mut self, width: u32, height: u32) -> bool {
        if self.width == width && self.height == height {
            return false;
        }
        *self = Frame::new(width, height);
        true
    }

    /// The pixel at (`x`, `y`), if inside.
    pub fn pixel(&self, x: u32, y: u32) -> Option<u32> {
        (x < self.width && y < self.height)
            .then(|| self.pixels[y as usize * self.width as usize + x as usize])
    }

    /// The pixels as RGB bytes, row after row (for PNG and PPM files).
    pub fn rgb_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.pixels.len() * 3);
        for &p in &self.pixels {
            out.extend_from_slice(&[(p >> 16) as u8, (p >> 8) as u8, p as u8]);
        }
        out
    }
}

/// The part of a frame that changed in one render.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirtyRect {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

impl DirtyRect {
    /// The whole of a `width` x `height` frame.
    pub fn full(width: u32, height: u32) -> DirtyRect {
        DirtyRect {
            x: 0,
            y: 0,
            width,
            height,
        }
    }

    /// The smallest rectangle holding both.
    pub fn union(self, o: DirtyRect) -> DirtyRect {
        let x = self.x.min(o.x);
        let y = self.y.min(o.y);
        let right = (self.x + self.width).max(o.x + o.width);
        let bottom = (self.y + self.height).max(o.y + o.height);
        DirtyRect {
            x,
            y,
            width: right - x,
            height: bottom - y,
        }
    }
}

/// Something that shows frames: a window front end, a recorder. The
/// machine hands it each frame that changed, with the part that did.
pub trait Display {
    /// `frame` changed within `dirty` since the last call.
    fn show(&mut self, frame: &Frame, dirty: DirtyRect);
}

/// Grows an optional rectangle by another.
pub(crate) fn grow(acc: &mut Option<DirtyRect>, r: DirtyRect) {
    if r.width == 0 || r.height == 0 {
        return;
    }
    *acc = Some(match *acc {
        Some(a) => a.union(r),
        None => r,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_rects() {
        let mut f = Frame::new(2, 2);
        assert!(!f.resize(2, 2));
        f.pixels[3] = 0x00AB_CDEF;
        assert_eq!(f.pixel(1, 1), Some(0xABCDEF));
        assert_eq!(f.pixel(2, 0), None);
        assert_eq!(&f.rgb_bytes()[9..], &[0xAB, 0xCD, 0xEF]);
        assert!(f.resize(3, 1));
        assert_eq!(f.pixels, vec![0; 3]);
        let mut acc = None;
        grow(&mut acc, DirtyRect::full(0, 5));
        assert_eq!(acc, None, "empty rectangles add nothing");
        grow(
            &mut acc,
            DirtyRect {
                x: 4,
                y: 1,
                width: 2,
                height: 2,
            },
        );
        grow(
            &mut acc,
            DirtyRect {
                x: 1,
                y: 5,
                width: 1,
                height: 1,
            },
        );
        assert_eq!(
            acc,
            Some(DirtyRect {
                x: 1,
                y: 1,
                width: 5,
                height: 5
            })
        );
    }
}
