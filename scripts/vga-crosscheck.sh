#!/bin/sh
# Compares morph86's screenshots of roms/src/vga.c with QEMU's -vga std
# screendumps of the same kernel, pixel for pixel.
#
#   scripts/vga-crosscheck.sh [MODE...]      (modes: 13h 12h vbe text; default all)
#
# For each mode the kernel runs with "draw=MODE" on its command line: it
# programs the mode through registers only (no BIOS call), draws a known
# picture, prints READY and halts. morph86 takes --screenshot when the run
# ends; QEMU gets "screendump" on its monitor once READY is on its serial
# port. Both pictures go to $OUT (default target/vga-crosscheck), as
# morph86-MODE.png and qemu-MODE.ppm. A mode passes when the sizes match
# and every pixel does; the script exits 1 if any mode differs, 2 if
# something could not run.
#
# Needs qemu-system-i386 (Debian: qemu-system-x86) and python3. Builds the
# kernels, and morph86 (release) unless $MORPH86 names a binary.
set -u
cd "$(dirname "$0")/.."
roms/build.sh >/dev/null || exit 2
QEMU=${QEMU:-qemu-system-i386}
OUT=${OUT:-target/vga-crosscheck}
MORPH86=${MORPH86:-}
if [ -z "$MORPH86" ]; then
	cargo build --release -q -p morph86 || exit 2
	MORPH86=${CARGO_TARGET_DIR:-target}/release/morph86
fi
mkdir -p "$OUT"
[ $# -eq 0 ] && set -- 13h 12h vbe text
bad=0
for mode in "$@"; do
	"$MORPH86" run --kernel roms/build/vga.elf --append "draw=$mode" --serial none --display none \
		--no-reboot --timeout 120 --screenshot "$OUT/morph86-$mode.png" 2>"$OUT/morph86-$mode.log"
	python3 - "$QEMU" "$mode" "$OUT" <<'EOF'
import os, socket, struct, subprocess, sys, time, zlib

qemu, mode, out = sys.argv[1], sys.argv[2], sys.argv[3]


def qemu_screendump():
    """Runs the kernel under QEMU and screendumps it once it prints READY."""
    sock = os.path.join(out, f"qemu-{mode}.sock")
    serial = os.path.join(out, f"qemu-{mode}.serial")
    ppm = os.path.abspath(os.path.join(out, f"qemu-{mode}.ppm"))
    for p in (sock, serial, ppm):
        if os.path.exists(p):
            os.remove(p)
    proc = subprocess.Popen(
        [qemu, "-cpu", "pentium3", "-m", "128", "-kernel", "roms/build/vga.elf",
         "-append", f"draw={mode}", "-serial", f"file:{serial}", "-display", "none",
         "-vga", "std", "-no-reboot", "-monitor", f"unix:{sock},server=on,wait=off",
         "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            if os.path.exists(serial) and b"READY" in open(serial, "rb").read():
                break
            if proc.poll() is not None:
                raise SystemExit(f"QEMU ended before READY (status {proc.returncode})")
            time.sleep(0.1)
        else:
            raise SystemExit("QEMU: no READY within 60 s")
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock)
        s.sendall(f"screendump {ppm}\n".encode())
        while time.time() < deadline:
            time.sleep(0.2)
            if os.path.exists(ppm) and os.path.getsize(ppm) > 16:
                size = os.path.getsize(ppm)
                time.sleep(0.2)
                if os.path.getsize(ppm) == size:
                    break
        s.sendall(b"quit\n")
        time.sleep(0.3)
        s.close()
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=10)
    return read_ppm(ppm)


def read_ppm(path):
    data = open(path, "rb").read()
    fields, pos = [], 0
    while len(fields) < 4:
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos)
            continue
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    if fields[0] != b"P6" or fields[3] != b"255":
        raise SystemExit(f"{path}: not an 8-bit P6 PPM")
    w, h = int(fields[1]), int(fields[2])
    return w, h, data[pos + 1:pos + 1 + w * h * 3]


def read_png(path):
    """An 8-bit RGB PNG, as morph86 writes it."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise SystemExit(f"{path}: not a PNG")
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, color = struct.unpack(">IIBB", body[:10])
            if (depth, color) != (8, 2):
                raise SystemExit(f"{path}: not 8-bit RGB")
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride, rows, prev = zlib.decompress(idat), w * 3, [], bytearray(w * 3)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - 3] if i >= 3 else 0
            b = prev[i]
            c = prev[i - 3] if i >= 3 else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, b"".join(rows)


mw, mh, mpix = read_png(os.path.join(out, f"morph86-{mode}.png"))
qw, qh, qpix = qemu_screendump()
if (mw, mh) != (qw, qh):
    print(f"{mode:5} DIFFER: morph86 {mw}x{mh}, QEMU {qw}x{qh}")
    sys.exit(1)
diff = [i for i in range(mw * mh) if mpix[3 * i:3 * i + 3] != qpix[3 * i:3 * i + 3]]
if diff:
    print(f"{mode:5} DIFFER: {len(diff)} of {mw * mh} pixels ({mw}x{mh})")
    for i in diff[:5]:
        x, y = i % mw, i // mw
        print(f"      ({x}, {y}): morph86 {mpix[3*i:3*i+3].hex()} QEMU {qpix[3*i:3*i+3].hex()}")
    sys.exit(1)
print(f"{mode:5} same: {mw}x{mh}, every pixel")
EOF
	status=$?
	[ $status -eq 1 ] && bad=1
	[ $status -gt 1 ] && bad=2
done
exit $bad
