//! `grow`: watch a coroutine's stack grow page by page, then shrink.
//!
//! A spindle stack is a slot of `stack_max` bytes of *address space*; the
//! kernel commits a physical page only when the coroutine first touches it
//! (demand paging). So a stack "grows" without any copying: the coroutine
//! recurses, touches new pages, and each first touch is a page fault that
//! the kernel serves. When the coroutine ends and its stack goes back to the
//! pool, the runtime releases every page below the top one with
//! `MADV_DONTNEED`: the stack shrinks to one page.
//!
//! Here one coroutine recurses with B-byte frames (a `[u8; B]` array per
//! frame, passed through `black_box` so the compiler cannot drop it). At
//! each power-of-two depth it records how much stack it uses (the slot's top
//! minus the address of a local), how much of the slot is resident
//! (`mincore`), and the time since the recursion began. The runtime releases
//! finished stacks in batches (one system call for many), at the latest when
//! its worker goes idle, so after the join we let the worker go idle (a
//! short `spindle::sleep`) until the slot has shrunk. By default it stops
//! at about 3/4 of the slot; with `--depth` it stops there, or earlier if the
//! next frames would hit the guard page (this command never overflows: see
//! [`overflow`] for that).
//!
//! Then a second coroutine recurses as deep, returns, and *parks* (it waits
//! on a channel) instead of finishing: its frames are gone but its pages
//! stay resident until its worker's shrink pass gives back everything below
//! its stack pointer (`runtime/src/stack/shrink.rs`). We record its resident
//! stack when it parks and once the pass has run (polled every 5 ms, for up
//! to 3 s).

use std::time::Instant;

use serde::{Deserialize, Serialize};
use spindle::stack::StackInfo;
use spindle::Runtime;

use super::{overflow, Global, Measurement, Outcome};
use crate::cli::GrowArgs;
use crate::measure::stats;
use crate::present::units::binary;

#[derive(Clone, Debug)]
pub struct GrowConfig {
    pub frame_bytes: usize,
    pub depth: Option<u64>,
    pub stack_max: usize,
    pub repeat: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    pub depth: u64,
    pub stack_used_bytes: usize,
    pub resident_bytes: usize,
    pub elapsed_ns: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GrowResult {
    pub frame_bytes: usize,
    pub stack_max: usize,
    pub page_size: usize,
    pub start_window: usize,
    pub requested_depth: Option<u64>,
    pub reached_depth: u64,
    pub stopped_early: Option<String>,
    pub resident_at_start_bytes: usize,
    pub checkpoints: Vec<Checkpoint>,
    /// Right after `join`: the stack may still wait on the worker's list of
    /// stacks to release.
    pub resident_right_after_join_bytes: usize,
    /// After the worker went idle and released it.
    pub resident_after_return_bytes: usize,
    /// How long after the join that was (ns), polled every millisecond.
    pub shrink_after_ns: f64,
    pub next_coroutine_same_slot: bool,
    pub next_coroutine_resident_bytes: usize,
    /// A coroutine that went as deep and then parked: resident stack when
    /// it parked, before its worker's shrink pass.
    #[serde(default)]
    pub parked_before_shrink_bytes: usize,
    /// The same, after the shrink pass (or when the poll gave up).
    #[serde(default)]
    pub parked_after_shrink_bytes: usize,
    /// How long after the park that was (ns).
    #[serde(default)]
    pub parked_shrink_after_ns: f64,
}

impl GrowConfig {
    pub fn new(a: &GrowArgs, g: &Global) -> GrowConfig {
        GrowConfig {
            frame_bytes: a.frame_bytes,
            depth: a.depth,
            stack_max: a.stack_max.unwrap_or(g.stack_max),
            repeat: g.repeat.unwrap_or(1),
        }
    }
}

impl Measurement for GrowConfig {
    type Data = Vec<GrowResult>;
    const KEY: &'static str = "grow";

    fn runtime(&self) -> (usize, usize) {
        (1, self.stack_max)
    }

    fn run(&self) -> Result<Vec<GrowResult>, String> {
        stats::runs(self.repeat, || measure(self))
    }
}

/// `grow`, `grow --overflow`, or the overflowing child itself.
pub fn dispatch(a: &GrowArgs, g: &Global) -> Result<Outcome, String> {
    let stack_max = a.stack_max.unwrap_or(g.stack_max);
    if a.internal_overflow_child {
        overflow::child(stack_max)?;
        Err("the overflow child returned without overflowing".into())
    } else if a.overflow {
        super::outcome(overflow::OverflowConfig { stack_max })
    } else {
        super::outcome(GrowConfig::new(a, g))
    }
}

/// State carried down the recursion.
struct Walk {
    target: Option<u64>,
    /// Stop before using more than this many bytes of stack.
    limit: usize,
    top: usize,
    info: StackInfo,
    t0: Instant,
    next_checkpoint: u64,
    checkpoints: Vec<Checkpoint>,
    reached: u64,
    stopped_early: Option<String>,
}

impl Walk {
    fn checkpoint(&mut self, depth: u64, used: usize) {
        let elapsed_ns = self.t0.elapsed().as_nanos() as f64;
        let resident_bytes = self.info.resident_bytes().unwrap_or(0);
        self.checkpoints.push(Checkpoint {
            depth,
            stack_used_bytes: used,
            resident_bytes,
            elapsed_ns,
        });
    }
}

#[inline(never)]
fn recurse<const B: usize>(depth: u64, w: &mut Walk) {
    let frame = std::hint::black_box([depth as u8; B]);
    let used = w.top - (&frame as *const [u8; B] as usize);
    w.reached = depth;
    let per_frame = used.div_ceil(depth as usize);
    let room = used + 2 * per_frame <= w.limit;
    let done = w.target.is_some_and(|t| depth >= t) || !room;
    if depth == w.next_checkpoint || done {
        w.checkpoint(depth, used);
        w.next_checkpoint *= 2;
    }
    if !done {
        recurse::<B>(depth + 1, w);
    } else if !room && w.target.is_some() {
        w.stopped_early = Some(format!(
            "stopped at depth {depth}: about {per_frame} B per frame, so depth {} would \
             overflow the {} stack (raise --stack-max, or see an overflow with --overflow)",
            w.target.unwrap_or(0),
            binary(w.info.size as u64)
        ));
    }
    std::hint::black_box(&frame);
}

/// Dispatch to the recursion compiled for this frame size.
fn run_frames(frame_bytes: usize, w: &mut Walk) {
    match frame_bytes {
        64 => recurse::<64>(1, w),
        128 => recurse::<128>(1, w),
        256 => recurse::<256>(1, w),
        512 => recurse::<512>(1, w),
        1024 => recurse::<1024>(1, w),
        2048 => recurse::<2048>(1, w),
        4096 => recurse::<4096>(1, w),
        8192 => recurse::<8192>(1, w),
        16384 => recurse::<16384>(1, w),
        32768 => recurse::<32768>(1, w),
        _ => recurse::<65536>(1, w),
    }
}

/// Stack kept free below the deepest frame: the checkpoint's own calls
/// (mincore, a `Vec` push) need a few KiB.
fn margin(slot: usize) -> usize {
    (8 << 10).min(slot / 4)
}

/// Everything measured inside the runtime.
struct Observed {
    info: StackInfo,
    at_start: usize,
    walk: Walk,
    right_after: usize,
    after: usize,
    shrink_ns: f64,
    next: Option<(StackInfo, usize)>,
    parked: (usize, usize, f64),
}

/// The growing coroutine: find its slot, recurse, report.
fn grow(cfg: GrowConfig) -> Result<(StackInfo, usize, Walk), String> {
    let info = StackInfo::current().ok_or("the coroutine cannot find its stack slot")?;
    let at_start = info.resident_bytes().map_err(|e| format!("mincore: {e}"))?;
    let page = spindle::stack::page::page_size();
    let usable = info.size.saturating_sub(page + margin(info.size));
    let mut w = Walk {
        target: cfg.depth,
        limit: if cfg.depth.is_some() {
            usable
        } else {
            info.size / 4 * 3
        },
        top: info.top(),
        info,
        t0: Instant::now(),
        next_checkpoint: 1,
        checkpoints: Vec::with_capacity(64),
        reached: 0,
        stopped_early: None,
    };
    run_frames(cfg.frame_bytes, &mut w);
    Ok((info, at_start, w))
}

/// Runs inside `block_on`, on the runtime's single worker, so the second
/// coroutine is served from that worker's stack cache: the slot just freed.
fn observe(cfg: GrowConfig) -> Result<Observed, String> {
    let cfg_park = cfg.clone();
    let grower = spindle::Builder::new()
        .name("grow")
        .spawn(move || grow(cfg))
        .map_err(|e| format!("cannot spawn: {e}"))?;
    let (info, at_start, walk) = grower
        .join()
        .map_err(|_| "the growing coroutine panicked".to_string())??;
    let resident = || info.resident_bytes().map_err(|e| format!("mincore: {e}"));
    let right_after = resident()?;
    // Sleeping lets the worker go idle, and an idle worker releases the
    // deep pages of the stacks it collected. Poll for up to 1 s.
    let t0 = Instant::now();
    let window = spindle::stack::page::start_window();
    let mut after = right_after;
    for _ in 0..1000 {
        if after <= window {
            break;
        }
        spindle::sleep(std::time::Duration::from_millis(1));
        after = resident()?;
    }
    let shrink_ns = t0.elapsed().as_nanos() as f64;
    let next = spindle::Builder::new()
        .spawn(|| StackInfo::current().map(|i| (i, i.resident_bytes().unwrap_or(0))))
        .map_err(|e| format!("cannot spawn: {e}"))?
        .join()
        .map_err(|_| "the second coroutine panicked".to_string())?;
    let parked = park_deep(cfg_park)?;
    Ok(Observed {
        info,
        at_start,
        walk,
        right_after,
        after,
        shrink_ns,
        next,
        parked,
    })
}

/// A coroutine recurses as `grow` does, returns from the recursion and
/// parks. Returns its resident stack when it parked, once its worker's
/// shrink pass has given back the pages below its stack pointer (at most
/// two pages left, or after 3 s), and the time between the two (ns).
fn park_deep(cfg: GrowConfig) -> Result<(usize, usize, f64), String> {
    let (report, reported) = spindle::chan::bounded::<Result<(StackInfo, usize), String>>(1);
    let (wake, woken) = spindle::chan::bounded::<()>(0);
    let parker = spindle::Builder::new()
        .name("grow-park")
        .spawn(move || {
            let sent = grow(cfg).and_then(|(info, _, _)| {
                let resident = info.resident_bytes().map_err(|e| format!("mincore: {e}"))?;
                Ok((info, resident))
            });
            let _ = report.send(sent);
            let _ = woken.recv();
        })
        .map_err(|e| format!("cannot spawn: {e}"))?;
    let sent = reported
        .recv()
        .map_err(|_| "the parking coroutine panicked".to_string())?;
    let t0 = Instant::now();
    let measured = sent.and_then(|(info, before)| {
        let two_pages = 2 * spindle::stack::page::page_size();
        let mut after = before;
        while after > two_pages && t0.elapsed() < std::time::Duration::from_secs(3) {
            spindle::sleep(std::time::Duration::from_millis(5));
            after = info.resident_bytes().map_err(|e| format!("mincore: {e}"))?;
        }
        Ok((before, after, t0.elapsed().as_nanos() as f64))
    });
    drop(wake);
    parker
        .join()
        .map_err(|_| "the parking coroutine panicked".to_string())?;
    measured
}

pub fn measure(cfg: &GrowConfig) -> Result<GrowResult, String> {
    let rt = Runtime::builder()
        .workers(1)
        .stack_max(cfg.stack_max)
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let cfg2 = cfg.clone();
    let o = rt.block_on(move || observe(cfg2))?;
    let (same, next_resident) = match o.next {
        Some((i, r)) => (i == o.info, r),
        None => (false, 0),
    };
    Ok(GrowResult {
        frame_bytes: cfg.frame_bytes,
        stack_max: o.info.size,
        page_size: spindle::stack::page::page_size(),
        start_window: spindle::stack::page::start_window(),
        requested_depth: cfg.depth,
        reached_depth: o.walk.reached,
        stopped_early: o.walk.stopped_early,
        resident_at_start_bytes: o.at_start,
        checkpoints: o.walk.checkpoints,
        resident_right_after_join_bytes: o.right_after,
        resident_after_return_bytes: o.after,
        shrink_after_ns: o.shrink_ns,
        next_coroutine_same_slot: same,
        next_coroutine_resident_bytes: next_resident,
        parked_before_shrink_bytes: o.parked.0,
        parked_after_shrink_bytes: o.parked.1,
        parked_shrink_after_ns: o.parked.2,
    })
}
