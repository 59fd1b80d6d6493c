#!/usr/bin/env python3
"""Writes crates/devices/src/vga/font.rs from the Spleen bitmap fonts.

Spleen (https://github.com/fcambus/spleen), Copyright (c) 2018-2026
Frederic Cambus, BSD 2-Clause licence. Inputs, from a Spleen 2.2.0 checkout:

  cp437/spleen-8x16-ibm-437.bdf   the 256 glyphs in code page 437 order
  spleen-5x8.bdf                  printable ASCII for the 8x8 set

  scripts/gen-vga-font.py SPLEEN_DIR > crates/devices/src/vga/font.rs

The 8x14 set is the 8x16 set without its first and last rows (blank in
letters; box drawing and blocks run on unchanged). The 8x8 set takes
printable ASCII from Spleen 5x8 (one column in from the left) and
squeezes every other glyph of the 8x16 set by ORing pairs of rows (the
shades 0xB0-0xB2 take every other row instead, keeping their dither).
"""
import re
import sys

LICENCE = """// The VGA fonts: Spleen 8x16 in code page 437 order, and 8x14 and 8x8
// sets derived from Spleen (see scripts/gen-vga-font.py, which wrote this
// file).
//
// Spleen is Copyright (c) 2018-2026, Frederic Cambus. All rights reserved.
//
// Redistribution and use in source and binary forms, with or without
// modification, are permitted provided that the following conditions are met:
//
//   * Redistributions of source code must retain the above copyright
//     notice, this list of conditions and the following disclaimer.
//
//   * Redistributions in binary form must reproduce the above copyright
//     notice, this list of conditions and the following disclaimer in the
//     documentation and/or other materials provided with the distribution.
//
// THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"
// AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
// IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE
// ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS
// BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR
// CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF
// SUBSTITUTE GOODS OR SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS
// INTERRUPTION) HOWEVER CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN
// CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE)
// ARISING IN ANY WAY OUT OF THE USE OF THIS SOFTWARE, EVEN IF ADVISED OF THE
// POSSIBILITY OF SUCH DAMAGE.
"""


def glyphs(path, height):
    text = open(path).read()
    out = {}
    for m in re.finditer(r"ENCODING (\d+)\n.*?BBX (\d+) (\d+) (-?\d+) (-?\d+)\nBITMAP\n(.*?)ENDCHAR", text, re.S):
        code, w, h = int(m.group(1)), int(m.group(2)), int(m.group(3))
        rows = [int(x, 16) for x in m.group(6).split()]
        if w > 8 or h != height or len(rows) != height:
            raise SystemExit(f"{path}: glyph {code} is {w}x{h}, not 8x{height}")
        out[code] = rows
    return out


def table(name, doc, data, height):
    lines = [f"/// {doc}", "#[rustfmt::skip]", f"pub static {name}: [u8; {256 * height}] = ["]
    for code in range(256):
        rows = ", ".join(f"0x{b:02X}" for b in data[code])
        lines.append(f"    {rows}, // 0x{code:02X}")
    lines.append("];")
    return "\n".join(lines)


def main():
    root = sys.argv[1].rstrip("/")
    f16 = glyphs(f"{root}/cp437/spleen-8x16-ibm-437.bdf", 16)
    f5x8 = glyphs(f"{root}/spleen-5x8.bdf", 8)
    if sorted(f16) != list(range(256)):
        raise SystemExit("the 8x16 CP437 font does not hold 256 glyphs")
    f14 = {c: f16[c][1:15] for c in range(256)}
    f8 = {}
    for c in range(256):
        if 0x20 <= c < 0x7F:
            f8[c] = [r >> 1 for r in f5x8[c]]
        elif 0xB0 <= c <= 0xB2:
            # Shades: every other row keeps the dither (ORing fills it in).
            f8[c] = f16[c][0::2]
        else:
            g = f16[c]
            f8[c] = [g[2 * i] | g[2 * i + 1] for i in range(8)]
    print(LICENCE)
    print("//! The glyph sets the VGA's power-on text mode loads into plane 2 and")
    print("//! that a BIOS can load with INT 10h AX=11xxh: 256 glyphs each, in code")
    print("//! page 437 order, one byte per row, the leftmost pixel in bit 7.")
    print()
    print(table("FONT_8X16", "Spleen 8x16 (BSD-2-Clause), 16 rows per glyph.", f16, 16))
    print()
    print(table("FONT_8X14", "8x14: Spleen 8x16 without its first and last rows.", f14, 14))
    print()
    print(table("FONT_8X8", "8x8: Spleen 5x8 for printable ASCII, Spleen 8x16 squeezed to 8 rows for the rest.", f8, 8))


main()
