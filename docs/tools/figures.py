#!/usr/bin/env python3
"""Draw the book's explanatory figures as SVG (Python 3, standard library only).

Run from the repository root:

    python3 docs/tools/figures.py

It writes docs/frame-and-prologue.svg, docs/address-space.svg,
docs/go-copy-and-double.svg, docs/gmp-and-workers.svg,
docs/store-buffering.svg and docs/shrink-compact-tradeoff.svg. The numbers
and code in them are not invented:

* the Go prologue is `go tool objdump -s main.sum` of GO_SOURCE below, built
  with `go build` (Go 1.27.3, linux/amd64);
* the Rust probe is `objdump -d --no-show-raw-insn -M intel` of RUST_SOURCE
  below, built with `rustc -O --edition 2021` (rustc 1.95.0, x86_64);
* stackNosplit, stackGuard and the 2 KiB minimum are Go 1.27.3's
  (src/runtime/stack.go, src/internal/abi/stack.go);
* the slab, slot and guard sizes are spindle's defaults on 4 KiB pages, and
  the 10^6-coroutine reservation is the `reserved_bytes` of
  `spindle-bench mem --count 1e6 --json` (chapter 1);
* MAX_BATCH = 32 is crossbeam-deque 0.8's, the 256-slot ring is Go's `p.runq`;
* the memory and wake-latency points of the trade-off chart (TRADEOFF below)
  are the TOTAL and "wake latency" lines of
  `spindle-bench mem --count 1000000 [--compact-after 10ms [--stack-max 64K]]`
  from docs/notes/compact.md, as printed in chapter 9 (2026-12-02, shared
  2-core VM), and Go's 2,747 B is chapter 7's `compare` figure at N = 10^6.

Rerun the two disassemblies to check them; the output goes in GO_ASM and
RUST_ASM.
"""

from pathlib import Path
from xml.sax.saxutils import escape

OUT = Path(__file__).resolve().parent.parent

GO_SOURCE = """package main

//go:noinline
func sum(n int) int {
	var buf [64]int
	for i := range buf {
		buf[i] = i * n
	}
	if n > 0 {
		return buf[n%64] + sum(n-1)
	}
	return buf[0]
}

func main() { println(sum(10)) }
"""

# go tool objdump -s main.sum (prologue and the morestack tail; body elided)
GO_ASM = [
    ("0x47db00", "LEAQ 0xfffffe68(SP), R12", "R12 = SP - 408 (frame 536 - StackSmall 128)"),
    ("0x47db08", "CMPQ R12, 0x10(R14)", "R14 = g; 0x10(R14) = g.stackguard0"),
    ("0x47db0c", "JBE 0x47dba9", "too low? grow the stack first"),
    ("0x47db12", "PUSHQ BP", "save the caller's frame pointer"),
    ("0x47db13", "MOVQ SP, BP", ""),
    ("0x47db16", "SUBQ $0x210, SP", "the frame: 528 B of locals and spills"),
    ("", "...", "the body"),
    ("0x47dba9", "MOVQ AX, 0x8(SP)", "spill the argument"),
    ("0x47dbae", "CALL runtime.morestack_noctxt.abi0(SB)", "copy to a stack twice the size"),
    ("0x47dbb3", "MOVQ 0x8(SP), AX", ""),
    ("0x47dbb8", "JMP main.sum(SB)", "and run the prologue again"),
]

RUST_SOURCE = """#[inline(never)]
#[no_mangle]
pub fn big_frame(n: usize) -> u8 {
    let mut buf = [0u8; 16 * 1024];
    buf[n % buf.len()] = n as u8;
    std::hint::black_box(&mut buf);
    buf[(n * 7) % buf.len()]
}
fn main() { println!("{}", big_frame(std::env::args().count())); }
"""

# objdump -d --no-show-raw-insn -M intel, function big_frame (first lines)
RUST_ASM = [
    ("142f0", "push r14", ""),
    ("142f2", "push rbx", ""),
    ("142f3", "sub rsp,0x1000", "move down one page (4 KiB) ..."),
    ("142fa", "mov QWORD PTR [rsp],0x0", "... and touch it: a guard page faults here"),
    ("14302", "sub rsp,0x1000", ""),
    ("14309", "mov QWORD PTR [rsp],0x0", ""),
    ("14311", "sub rsp,0x1000", ""),
    ("14318", "mov QWORD PTR [rsp],0x0", ""),
    ("14320", "sub rsp,0x1000", ""),
    ("14327", "mov QWORD PTR [rsp],0x0", "four pages probed: 16 KiB"),
    ("1432f", "push rax", "the last 8 B, within the page just touched"),
    ("", "...", "no check, no growth: the stack must be big enough"),
]

FONT = 'font-family="sans-serif" font-size="12"'
MONO = 'font-family="monospace" font-size="11.5"'


class Svg:
    def __init__(self, w, h, title):
        self.w, self.h = w, h
        self.parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
            f'viewBox="0 0 {w} {h}" {FONT}>',
            f"  <title>{escape(title)}</title>",
            '  <defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" '
            'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
            '<path d="M0 0 L10 5 L0 10 z" fill="#2c3e50"/></marker>'
            '<marker id="arrowred" viewBox="0 0 10 10" refX="9" refY="5" '
            'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
            '<path d="M0 0 L10 5 L0 10 z" fill="#c0392b"/></marker></defs>',
            f'  <rect width="{w}" height="{h}" fill="#ffffff"/>',
        ]

    def rect(self, x, y, w, h, fill="#ffffff", stroke="#55607a", extra=""):
        self.parts.append(
            f'  <rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{fill}" '
            f'stroke="{stroke}" {extra}/>'
        )

    def text(self, x, y, s, anchor="start", fill="#1d2433", bold=False, mono=False, size=None):
        attrs = MONO if mono else ""
        if size:
            attrs += f' font-size="{size}"'
        weight = ' font-weight="bold"' if bold else ""
        self.parts.append(
            f'  <text x="{x}" y="{y}" text-anchor="{anchor}" fill="{fill}"{weight} {attrs}>'
            f"{escape(s)}</text>"
        )

    def line(self, x1, y1, x2, y2, stroke="#2c3e50", arrow=False, dash=False, width=1, red=False):
        a = ' marker-end="url(#arrowred)"' if (arrow and red) else (
            ' marker-end="url(#arrow)"' if arrow else "")
        d = ' stroke-dasharray="4,3"' if dash else ""
        self.parts.append(
            f'  <line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{stroke}" '
            f'stroke-width="{width}"{a}{d}/>'
        )

    def path(self, d, stroke="#2c3e50", arrow=False, dash=False, red=False):
        a = ' marker-end="url(#arrowred)"' if (arrow and red) else (
            ' marker-end="url(#arrow)"' if arrow else "")
        ds = ' stroke-dasharray="4,3"' if dash else ""
        self.parts.append(f'  <path d="{d}" fill="none" stroke="{stroke}"{a}{ds}/>')

    def save(self, name):
        self.parts.append("</svg>\n")
        (OUT / name).write_text("\n".join(self.parts))
        print("wrote", OUT / name)


def code_box(svg, x, y, w, title, rows, addr_w=72, instr_w=250):
    """A disassembly listing: address, instruction, comment."""
    line_h = 17
    h = 30 + line_h * len(rows) + 8
    svg.rect(x, y, w, h, fill="#f7f8fb")
    svg.text(x + 10, y + 19, title, bold=True)
    for i, (addr, ins, note) in enumerate(rows):
        yy = y + 42 + i * line_h
        if addr:
            svg.text(x + 10, yy, addr, mono=True, fill="#7a8399")
        svg.text(x + 10 + addr_w, yy, ins, mono=True)
        if note:
            svg.text(x + 10 + addr_w + instr_w, yy, note, fill="#1f4f99", size=11.5)
    return h


def frame_and_prologue():
    svg = Svg(1000, 580, "A call frame, a Go prologue's stack-bound check and a Rust stack probe")
    svg.text(20, 24, "A call frame on x86_64, and how Go and Rust keep it inside the stack", bold=True, size=14)
    # Left: the frame.
    x, w = 20, 170
    svg.text(x, 52, "higher addresses", fill="#55607a")
    rows = [
        ("caller's frame", "#e8ecf4", 60),
        ("return address", "#fde9c9", 26),
        ("saved frame pointer", "#fde9c9", 26),
        ("locals: buf [64]int\n= 512 B, spills", "#d6e6fb", 120),
    ]
    y = 60
    for label, fill, h in rows:
        svg.rect(x, y, w, h, fill=fill)
        for j, part in enumerate(label.split("\n")):
            svg.text(x + w / 2, y + h / 2 + 4 + (j - (label.count("\n")) / 2) * 15, part, anchor="middle")
        y += h
    svg.text(x + w + 8, y + 4, "< SP after the prologue", size=11)
    svg.text(x + w + 8, 60 + 60 + 26 + 4, "< SP after the call", size=11)
    svg.path(f"M{x + w + 4} 148 V{y - 2}", arrow=True)
    svg.text(x + w + 10, 220, "frame: 536 B", fill="#55607a", size=11)
    # free space and the limit
    svg.rect(x, y, w, 70, fill="#ffffff", stroke="#b8bfcc", extra='stroke-dasharray="4,3"')
    svg.text(x + w / 2, y + 40, "free stack", anchor="middle", fill="#55607a")
    y += 70
    svg.line(x - 10, y, x + w + 10, y, stroke="#c0392b", width=2)
    svg.text(x, y + 16, "Go: g.stackguard0 = lo + 928", fill="#c0392b")
    svg.text(x, y + 31, "(stackNosplit 800 + StackSmall 128)", fill="#c0392b", size=11)
    svg.rect(x, y + 40, w, 36, fill="#f4c7c3", stroke="#c0392b")
    svg.text(x + w / 2, y + 62, "Rust/spindle: guard page", anchor="middle", fill="#c0392b")
    svg.text(x, y + 96, "lower addresses", fill="#55607a")
    svg.text(x, y + 111, "(the stack grows down)", fill="#55607a")
    # Right: code boxes.
    bx, bw = 345, 640
    h1 = code_box(svg, bx, 40, bw, "Go 1.27.3: go tool objdump -s main.sum (a 536-byte frame)", GO_ASM,
                  addr_w=70, instr_w=290)
    y2 = 40 + h1 + 18
    code_box(svg, bx, y2, bw, "Rust 1.95.0: objdump -d of big_frame (a 16 KiB array, rustc -O)", RUST_ASM,
             addr_w=52, instr_w=205)
    foot = 568
    svg.text(20, foot - 14, "Go checks on every call and grows the stack (chapter 2). Rust probes only frames larger than a page, so that a guard page", fill="#55607a")
    svg.text(20, foot, "cannot be jumped over; running into it is a fatal overflow (chapter 3). Sources of both functions: docs/tools/figures.py.", fill="#55607a")
    svg.save("frame-and-prologue.svg")


def address_space():
    svg = Svg(1000, 600, "The process address space of a spindle program: slabs, slots, guard pages, thread stacks")
    svg.text(20, 24, "Where the stacks live: the address space of a process running spindle (x86_64, not to scale)", bold=True, size=14)
    x, w = 40, 300
    regions = [
        ("kernel (not accessible from user space)", "#e0e0e0", 34, None),
        ("~", None, 14, None),
        ("main thread's stack (grows down, up to 8 MiB)", "#d6e6fb", 40, None),
        ("~", None, 14, None),
        ("worker 1's thread stack: 256 KiB + guard", "#d6e6fb", 30, "thread"),
        ("worker 0's thread stack: 256 KiB + guard", "#d6e6fb", 30, "thread"),
        ("~", None, 14, None),
        ("slab 2: 64 MiB, 256 slots", "#dfe3ee", 44, "slab"),
        ("slab 1: 64 MiB, 256 slots", "#dfe3ee", 44, "slab"),
        ("slab 0: 64 MiB, 256 slots", "#dfe3ee", 44, "slab0"),
        ("~", None, 14, None),
        ("heap: task headers (80 B each), channels", "#e6f4e6", 40, None),
        ("program code and data", "#f0e6f4", 36, None),
    ]
    y = 44
    slab0 = None
    svg.text(x + w + 10, y + 40, "0x7fff_ffff_ffff: top of user space", fill="#55607a")
    for label, fill, h, kind in regions:
        if label == "~":
            svg.text(x + w / 2, y + 11, "...  gap  ...", anchor="middle", fill="#7a8399")
        else:
            svg.rect(x, y, w, h, fill=fill)
            svg.text(x + 8, y + h / 2 + 4, label)
            if kind == "thread":
                svg.rect(x, y + h - 5, w, 5, fill="#f4c7c3", stroke="#c0392b")
            if kind == "slab0":
                slab0 = (y, h)
        y += h
    svg.text(x + w + 10, y - 4, "low addresses", fill="#55607a")
    svg.text(20, 560, "Thread stacks come from mmap with a guard page below each (glibc; spindle asks std for 256 KiB per worker);", fill="#55607a")
    svg.text(20, 576, "slabs come from spindle's own mmap(MAP_NORESERVE) + MADV_NOHUGEPAGE. Addresses decrease downwards.", fill="#55607a")
    # Zoom into slab 0.
    sy, sh = slab0
    zx, zw = 430, 540
    zy = 300
    svg.line(x + w, sy, zx, zy, stroke="#e67e22", dash=True)
    svg.line(x + w, sy + sh, zx, zy + 150, stroke="#e67e22", dash=True)
    svg.rect(zx, zy, zw, 150, fill="#fbfcfe", stroke="#e67e22")
    svg.text(zx + 10, zy - 8, "slab 0, magnified: 256 slots of 256 KiB, back to back", bold=True)
    # draw 6 slots with a break
    slot_w = 80
    sx = zx + 12
    for i, label in enumerate(["slot 0", "slot 1", "slot 2", "...", "slot 254", "slot 255"]):
        if label == "...":
            svg.text(sx + slot_w / 2, zy + 80, "...", anchor="middle", fill="#7a8399")
            sx += slot_w * 0.6
            continue
        svg.rect(sx, zy + 20, slot_w, 100, fill="#ffffff")
        svg.rect(sx, zy + 20, 8, 100, fill="#f4c7c3", stroke="#c0392b")
        svg.rect(sx + slot_w - 10, zy + 20, 10, 100, fill="#3b7dd8", stroke="#1f4f99")
        svg.text(sx + slot_w / 2, zy + 136, label, anchor="middle", fill="#55607a")
        sx += slot_w + 4
    svg.text(zx + 12, zy + 176, "red: guard page at the low end (MADV_GUARD_INSTALL, or mprotect)", fill="#c0392b")
    svg.text(zx + 12, zy + 194, "blue: the top page, label + the frames of a parked coroutine (resident)", fill="#1f4f99")
    svg.text(zx + 12, zy + 212, "white: reserved, untouched: no RAM, only address space", fill="#55607a")
    svg.text(zx, 110, "Scale, for 10^6 parked coroutines (chapter 1):", bold=True)
    notes = [
        "address space reserved: 3,907 slabs = 262,194,331,648 B (244 GiB)",
        "of 128 TiB of user space on x86_64: 0.19 %",
        "resident: one 4 KiB page per slot, plus 513 B of page tables",
        "two worker threads: one thread stack each, whatever the number",
        "of coroutines they run",
    ]
    for i, n in enumerate(notes):
        svg.text(zx, 132 + i * 18, n)
    svg.save("address-space.svg")


def go_copy_and_double():
    svg = Svg(1000, 520, "Go's copy-and-double: a 2 KiB stack copied into a 4 KiB one, pointers adjusted")
    svg.text(20, 24, "Go's copy-and-double (newstack → copystack): before and after", bold=True, size=14)
    old_lo, old_hi = 0xC000100000, 0xC000100800
    new_lo, new_hi = 0xC000180000, 0xC000181000
    delta = new_hi - old_hi
    x_off = 0x1A0  # x lives 416 B below hi, inside f's frame
    px_per_b = 300 / 4096  # 4 KiB = 300 px tall
    base_y = 440
    notes = [
        "Every pointer into the old stack moves by the same delta = new.hi − old.hi = "
        f"{delta:#x}: in frames (adjustpointers,",
        "from the compiler's pointer maps), in the goroutine's channel wait records (adjustsudogs), in defers",
        "and panics. Then the old stack is freed. Rust cannot do this: it does not know where its pointers are.",
    ]
    for i, n in enumerate(notes):
        svg.text(20, 50 + i * 17, n, size=11.5)

    def stack(x, lo, hi, title, frames, last_dashed):
        h = (hi - lo) * px_per_b
        top = base_y - h
        svg.text(x, top - 12, title, bold=True)
        svg.rect(x, top, 220, h, fill="#ffffff")
        svg.text(x + 230, top + 4, f"hi = {hi:#x}", mono=True)
        svg.text(x + 230, base_y + 4, f"lo = {lo:#x}", mono=True)
        guard_y = base_y - 928 * px_per_b
        svg.line(x - 6, guard_y, x + 226, guard_y, stroke="#c0392b", dash=True)
        svg.text(x + 230, guard_y + 18, "stackguard0 = lo + 928", fill="#c0392b")
        y = top
        ys = {}
        for i, (name, size, fill) in enumerate(frames):
            fh = size * px_per_b
            extra = 'stroke-dasharray="4,3"' if (last_dashed and i == len(frames) - 1) else ""
            svg.rect(x, y, 220, fh, fill=fill, extra=extra)
            svg.text(x + 110, y + fh / 2 + 4, name, anchor="middle", size=11)
            ys[name] = (y, fh)
            y += fh
        svg.text(x - 4, y + 4, "SP h needs >" if last_dashed else "SP >", anchor="end", size=11)
        return ys

    f = "f: local x"
    g = "g: p := &x"
    old = stack(90, old_lo, old_hi, "Before: 2 KiB, h's frame would cross stackguard0",
                [("main's frames", 320, "#e8ecf4"), (f, 400, "#d6e6fb"), (g, 300, "#d6e6fb"),
                 ("h: needs 220 B more", 220, "#fde9c9")], True)
    new = stack(560, new_lo, new_hi, "After: 4 KiB at a new address, h runs",
                [("main's frames", 320, "#e8ecf4"), (f, 400, "#d6e6fb"), (g, 300, "#d6e6fb"),
                 ("h", 220, "#fde9c9")], False)
    for sx, ys, hi in ((90, old, old_hi), (560, new, new_hi)):
        gy, gh = ys[g]
        fy, fh = ys[f]
        svg.path(f"M{sx} {gy + gh / 2} C {sx - 30} {gy + gh / 2}, {sx - 30} {fy + fh / 2}, {sx - 2} {fy + fh / 2}",
                 arrow=True, red=True)
        svg.text(sx, base_y + 24, f"p = &x = {hi - x_off:#x}", mono=True, fill="#c0392b")
    svg.path("M440 330 C 480 300, 510 290, 548 290", arrow=True)
    svg.text(470, 250, "copy the used part,", anchor="middle")
    svg.text(470, 265, "aligned at hi", anchor="middle")
    svg.text(20, 505, "Drawn to scale: 1 px = 13.65 B. Addresses are examples; the 928 B guard is Go 1.27.3's stackGuard on linux/amd64.", fill="#55607a")
    svg.save("go-copy-and-double.svg")


def gmp_and_workers():
    svg = Svg(1000, 680, "Go's G, M and P next to spindle's workers: runnext, pinned queue, inbox, "
              "spawn slot, deque and injector")
    svg.text(20, 24, "Who runs what: Go's G/M/P (left) and spindle's workers (right)", bold=True, size=14)

    def queue(x, y, n, w=20, label=None, fill="#d6e6fb", more=False):
        for i in range(n):
            svg.rect(x + i * w, y, w - 2, 20, fill=fill)
        if more:
            svg.text(x + n * w + 4, y + 14, "...", fill="#7a8399")
        if label:
            svg.text(x, y - 6, label, size=11)

    # Go side
    gx = 20
    svg.rect(gx, 40, 460, 590, fill="#fbfcfe")
    svg.text(gx + 10, 60, "Go (runtime/proc.go, runtime2.go)", bold=True)
    queue(gx + 20, 90, 6, label="global run queue sched.runq (unbounded, under a lock)", more=True)
    for i, px in enumerate([gx + 20, gx + 240]):
        py = 150
        svg.rect(px, py, 200, 150, fill="#ffffff")
        svg.text(px + 8, py + 18, f"P{i} (GOMAXPROCS of them)", bold=True)
        svg.rect(px + 8, py + 30, 60, 22, fill="#fde9c9")
        svg.text(px + 38, py + 45, "runnext", anchor="middle", size=11)
        queue(px + 8, py + 76, 8, w=20, label="runq: ring of 256 G", more=True)
        svg.text(px + 8, py + 118, "steal: half, up to 128", size=11)
        svg.text(px + 8, py + 134, "(and runnext, if the ring is empty)", size=11)
        svg.rect(px + 40, py + 180, 120, 40, fill="#e6f4e6")
        svg.text(px + 100, py + 204, f"M{i}: OS thread", anchor="middle")
        svg.line(px + 100, py + 150, px + 100, py + 180, arrow=False)
        svg.text(px + 106, py + 170, "holds", size=11, fill="#55607a")
        svg.rect(px + 40, py + 240, 120, 28, fill="#d6e6fb")
        svg.text(px + 100, py + 258, "G running", anchor="middle")
        svg.line(px + 100, py + 220, px + 100, py + 240)
    svg.rect(gx + 20, 440, 200, 40, fill="#e6f4e6", extra='stroke-dasharray="4,3"')
    svg.text(gx + 120, 458, "M2 in a system call:", anchor="middle", size=11)
    svg.text(gx + 120, 472, "handoffp gives its P away", anchor="middle", size=11)
    svg.text(gx + 240, 462, "sysmon preempts a G after 10 ms", size=11)
    svg.text(gx + 20, 520, "Any G may be stolen and run on any M, started or not.", size=11)
    svg.path(f"M{gx + 240} 240 C {gx + 225} 215, {gx + 225} 215, {gx + 208} 240", arrow=True, dash=True)

    # spindle side
    sx = 510
    svg.rect(sx, 40, 470, 590, fill="#fbfcfe")
    svg.text(sx + 10, 60, "spindle (runtime/src/sched/)", bold=True)
    queue(sx + 20, 90, 6, label="injector: crossbeam Injector, for spawns from outside the workers",
          more=True)
    pinned_fill, free_fill = "#f6dede", "#d6e6fb"
    for i, wx in enumerate([sx + 20, sx + 250]):
        wy = 150
        svg.rect(wx, wy, 200, 300, fill="#ffffff")
        svg.text(wx + 8, wy + 18, f"worker {i}: one OS thread", bold=True)
        svg.text(wx + 8, wy + 33, "(an M and a P in one)", size=11, fill="#55607a")
        svg.text(wx + 8, wy + 52, "started: pinned here", size=11, bold=True)
        svg.rect(wx + 8, wy + 60, 60, 22, fill="#fde9c9")
        svg.text(wx + 38, wy + 75, "runnext", anchor="middle", size=11)
        svg.text(wx + 74, wy + 75, "≤ 32 picks in a row", size=11)
        queue(wx + 8, wy + 104, 6, w=20, label="pinned: yielded or displaced", fill=pinned_fill,
              more=True)
        queue(wx + 8, wy + 146, 4, w=20, label="inbox: woken by other threads", fill=pinned_fill,
              more=True)
        svg.text(wx + 8, wy + 186, "unstarted: stealable", size=11, bold=True)
        svg.rect(wx + 8, wy + 194, 70, 22, fill="#fde9c9")
        svg.text(wx + 43, wy + 209, "spawn slot", anchor="middle", size=11)
        svg.text(wx + 84, wy + 209, "stolen after 3 µs", size=11)
        queue(wx + 8, wy + 238, 8, w=20, label="deque: FIFO, grows", fill=free_fill, more=True)
        svg.text(wx + 8, wy + 274, "steal: about half, at most 32", size=11)
        svg.text(wx + 8, wy + 290, "(+ stack cache, dirty list)", size=11, fill="#55607a")
        svg.rect(wx + 40, wy + 312, 120, 28, fill="#d6e6fb")
        svg.text(wx + 100, wy + 330, "coroutine running", anchor="middle")
        svg.line(wx + 100, wy + 300, wx + 100, wy + 312)
    # thieves: worker 1 takes worker 0's unstarted work only
    svg.path(f"M{sx + 250} {150 + 248} C {sx + 235} {150 + 228}, {sx + 235} {150 + 228}, "
             f"{sx + 218} {150 + 248}", arrow=True, dash=True)
    svg.path(f"M{sx + 250} {150 + 205} C {sx + 235} {150 + 185}, {sx + 235} {150 + 185}, "
             f"{sx + 218} {150 + 205}", arrow=True, dash=True)
    notes = [
        "A wake on the task's home worker goes to runnext; from any other",
        "thread, to the home's inbox, and that worker is woken.",
        "A spawn goes to the spawn slot and wakes an idle worker; the",
        "previous spawn moves to the deque.",
        "Every 61st pick a worker looks at its inbox, spawn slot, deque",
        "and the injector first (Go: the global queue).",
        "No preemption, no hand-off in system calls.",
    ]
    for k, t in enumerate(notes):
        svg.text(sx + 20, 512 + k * 16, t, size=11)
    svg.text(20, 660, "Dashed arrows: stealing. Red-tinted queues hold started coroutines, which never "
             "change thread; Go's ring of 256 overflows into the global queue.", fill="#55607a", size=11)
    svg.save("gmp-and-workers.svg")


def store_buffering():
    svg = Svg(1000, 530, "The store-buffering race that lost a wake-up, as a timeline")
    svg.text(20, 24, "The lost wake-up of chapter 5: store buffering, step by step", bold=True, size=14)
    lanes = [("waker (core 0)", 70), ("memory (shared cache)", 210), ("worker running the task (core 1)", 350)]
    for name, y in lanes:
        svg.text(20, y - 18, name, bold=True)
        svg.line(20, y, 980, y, stroke="#b8bfcc")
    # time axis
    svg.line(20, 470, 980, 470, arrow=True)
    svg.text(980, 490, "time", anchor="end", fill="#55607a")
    steps = [150, 370, 590, 810]
    for i, sx in enumerate(steps):
        svg.text(sx, 488, f"t{i + 1}", anchor="middle", fill="#55607a")
        svg.line(sx, 40, sx, 465, stroke="#eef0f5")
    # memory initial values
    svg.rect(20, 200, 100, 56, fill="#ffffff")
    svg.text(26, 218, "state: SCHEDULED", size=10.5)
    svg.text(26, 234, "cell: Waiting", size=10.5)
    svg.text(26, 250, "(initial)", size=10.5, fill="#7a8399")
    # t1 stores go to store buffers
    svg.rect(95, 60, 120, 36, fill="#fde9c9", stroke="#e67e22")
    svg.text(155, 76, "store cell = Delivered", anchor="middle", size=10.5)
    svg.text(155, 90, "(waits in store buffer)", anchor="middle", size=10.5, fill="#b35900")
    svg.rect(80, 340, 150, 36, fill="#fde9c9", stroke="#e67e22")
    svg.text(155, 356, "write state = RUNNING", anchor="middle", size=10.5)
    svg.text(155, 370, "(not yet visible to core 0)", anchor="middle", size=10.5, fill="#b35900")
    # t2 loads read old values from memory
    svg.rect(310, 60, 120, 36, fill="#d6e6fb", stroke="#1f4f99")
    svg.text(370, 76, "load state", anchor="middle", size=10.5)
    svg.text(370, 90, "→ SCHEDULED (old)", anchor="middle", size=10.5)
    svg.line(370, 198, 370, 98, stroke="#1f4f99", arrow=True)
    svg.rect(310, 340, 120, 36, fill="#d6e6fb", stroke="#1f4f99")
    svg.text(370, 356, "load cell", anchor="middle", size=10.5)
    svg.text(370, 370, "→ Waiting (old)", anchor="middle", size=10.5)
    svg.line(370, 222, 370, 338, stroke="#1f4f99", arrow=True)
    svg.rect(320, 190, 100, 36, fill="#ffffff")
    svg.text(370, 206, "still SCHEDULED,", anchor="middle", size=10.5)
    svg.text(370, 220, "still Waiting", anchor="middle", size=10.5)
    # t3 drain
    svg.line(155, 98, 560, 196, stroke="#e67e22", arrow=True, dash=True)
    svg.line(155, 338, 560, 226, stroke="#e67e22", arrow=True, dash=True)
    svg.rect(540, 190, 110, 36, fill="#ffffff")
    svg.text(595, 206, "state: RUNNING", anchor="middle", size=10.5)
    svg.text(595, 220, "cell: Delivered", anchor="middle", size=10.5)
    svg.text(595, 246, "buffers drain, too late", anchor="middle", size=10.5, fill="#b35900")
    svg.rect(500, 60, 200, 36, fill="#f2f2f2")
    svg.text(600, 76, "saw SCHEDULED: \"it is queued,", anchor="middle", size=10.5)
    svg.text(600, 90, "it will see my value\": no wake", anchor="middle", size=10.5)
    svg.rect(500, 340, 200, 36, fill="#f2f2f2")
    svg.text(600, 356, "saw Waiting: nothing to receive;", anchor="middle", size=10.5)
    svg.text(600, 370, "the task parks again", anchor="middle", size=10.5)
    # t4 lost
    svg.rect(730, 340, 240, 36, fill="#f4c7c3", stroke="#c0392b")
    svg.text(850, 356, "commit_park: RUNNING → PARKED succeeds", anchor="middle", size=10.5)
    svg.text(850, 370, "nobody will ever wake it: lost", anchor="middle", size=10.5, fill="#c0392b")
    fix = ["The fix then: wake always did a read-modify-",
           "write on the state (NOTIFIED), commit_park a",
           "compare_exchange. RMWs on one location are",
           "totally ordered: one of them sees the other."]
    for i, t in enumerate(fix):
        svg.text(730, 400 + i * 15, t, size=11)
    svg.text(20, 505, "Each thread writes one location, then reads the other. Unless all four accesses are SeqCst (or RMWs on one location), the memory model", fill="#55607a", size=11)
    svg.text(20, 519, "allows both reads to see the old values: loom found this interleaving; a store waiting in a store buffer is how real CPUs produce it.", fill="#55607a", size=11)
    svg.save("store-buffering.svg")


# Chapter 9: (label, bytes per parked coroutine, wake latency in µs, note).
# From docs/notes/compact.md's runs, printed in docs/09-shrinking-and-compacting.md.
TRADEOFF = [
    ("spindle, resident (shrink on)", 4794, 3.3, "4,096 B stack page + 513 B page tables"),
    ("spindle, compact_after 10 ms", 1236, 32.5, "no stack page; 505 B buffer, 515 B page tables"),
    ("spindle, compact_after 10 ms, stack_max 64 KiB", 865, 52.2, "the same, 519 B buffer, 130 B page tables"),
]
GO_PARKED = 2747  # chapter 7, compare, N = 10^6


def shrink_compact_tradeoff():
    svg = Svg(1000, 520, "Memory per parked coroutine against the wake latency of one coroutine")
    svg.text(20, 24, "Memory per parked coroutine against the wake latency of one coroutine (N = 10^6)",
             bold=True, size=14)
    svg.text(20, 44, "spindle-bench mem --count 1000000 [--compact-after 10ms [--stack-max 64K]], 2026-12-02, "
             "a shared 2-core VM (load average 10 to 17): latencies are rough.", size=11.5, fill="#55607a")
    x0, x1, y0, y1 = 110, 930, 440, 80  # plot area: x grows right, y grows up
    max_b, max_us = 5000, 80
    px = lambda b: x0 + (x1 - x0) * b / max_b
    py = lambda us: y0 - (y0 - y1) * us / max_us
    svg.line(x0, y0, x1, y0)
    svg.line(x0, y0, x0, y1)
    for b in range(0, max_b + 1, 1000):
        svg.line(px(b), y0, px(b), y0 + 5)
        svg.text(px(b), y0 + 20, f"{b:,} B", anchor="middle", size=11)
    for us in range(0, max_us + 1, 10):
        svg.line(x0 - 5, py(us), x0, py(us))
        svg.text(x0 - 9, py(us) + 4, f"{us} µs", anchor="end", size=11)
        if us:
            svg.line(x0, py(us), x1, py(us), stroke="#e3e6ee")
    svg.text((x0 + x1) / 2, y0 + 42, "memory per parked coroutine: RSS + page tables, bytes (lower is better)",
             anchor="middle")
    svg.parts.append(f'  <text x="30" y="{(y0 + y1) / 2}" text-anchor="middle" fill="#1d2433" '
                     f'transform="rotate(-90 30 {(y0 + y1) / 2})">wake latency of one coroutine '
                     '(median of 21; lower is better)</text>')
    gx = px(GO_PARKED)
    svg.line(gx, y0, gx, y1, stroke="#1f7a4d", dash=True)
    svg.text(gx + 6, py(65), f"Go: {GO_PARKED:,} B per parked goroutine (chapter 7)", fill="#1f7a4d", size=11.5)
    svg.text(gx + 6, py(65) + 15, "(its wake latency was not measured here)", fill="#1f7a4d", size=11)
    offsets = [(-12, -14, "end"), (12, -4, "start"), (12, 22, "start")]
    for (label, b, us, note), (dx, dy, anchor) in zip(TRADEOFF, offsets):
        x, y = px(b), py(us)
        svg.parts.append(f'  <circle cx="{x}" cy="{y}" r="6" fill="#1f4f99"/>')
        svg.text(x + dx, y + dy, f"{label}: {b:,} B, {us} µs", anchor=anchor, size=11.5, bold=True)
        svg.text(x + dx, y + dy + 15, note, anchor=anchor, size=11, fill="#55607a")
    svg.text(20, 505, "Compacting takes the stack page away (and a smaller stack_max the page tables) and "
             "costs the wake-up a restore: guard removal, copy-in, open.", fill="#55607a", size=11.5)
    svg.save("shrink-compact-tradeoff.svg")


if __name__ == "__main__":
    frame_and_prologue()
    address_space()
    go_copy_and_double()
    gmp_and_workers()
    store_buffering()
    shrink_compact_tradeoff()
