//! Shrinking (`runtime/src/stack/shrink.rs`): a parked coroutine gives back
//! the stack pages below its live frames, and keeps the ones above.
//!
//! * A coroutine that recursed 200 KiB deep and then parks is back to at
//!   most two resident stack pages (the issue asks for "within a second";
//!   the pass runs 100-200 ms after the park, and the tests wait up to 30 s
//!   so that a loaded machine cannot fail them: behaviour, not timing).
//! * A coroutine parked *deep*, with 100 frames of its own above the parked
//!   point and dead pages below it, loses only the dead pages: after the
//!   shrink every frame still holds what it wrote, and it can go deep again.
//!
//! Both run under both guard modes (the tests re-run themselves with
//! `SPINDLE_GUARD=mprotect`) and size everything in pages from sysconf.

use std::hint::black_box;
use std::time::{Duration, Instant};

use spindle::stack::page::{page_size, round_up};
use spindle::stack::StackInfo;
use spindle::{chan, GuardMode, Runtime};
use spindle_tests::{guard_mode, is_child, run_child};

/// How long a test waits for the pass before it gives up.
const PATIENCE: Duration = Duration::from_secs(30);

/// Touch 200 KiB of stack below the caller; return the lowest address used.
#[inline(never)]
fn touch_200_kib() -> usize {
    let mut a = [0u8; 200 << 10];
    let a = black_box(&mut a);
    for i in (0..a.len()).step_by(256) {
        a[i] = 1;
    }
    black_box(a).as_ptr() as usize
}

/// Re-run `test` with mprotect guard pages (once, from the default run).
fn also_with_mprotect(test: &str) {
    if guard_mode() == GuardMode::Regions && !is_child("mprotect") {
        run_child(test, "mprotect", &[("SPINDLE_GUARD", "mprotect")]).assert_passed();
    }
}

/// The runtime both tests use: two workers, stacks of up to 1 MiB (room
/// for 200 KiB below 100 KiB of frames).
fn runtime() -> Runtime {
    Runtime::builder()
        .workers(2)
        .stack_max(round_up(1 << 20))
        .build()
        .unwrap()
}

/// Wait until `info`'s slot has at most `bytes` resident; the last reading.
fn wait_for_resident_at_most(info: StackInfo, bytes: usize) -> usize {
    let t0 = Instant::now();
    loop {
        let resident = info.resident_bytes().expect("mincore");
        if resident <= bytes || t0.elapsed() > PATIENCE {
            return resident;
        }
        spindle::sleep(Duration::from_millis(10));
    }
}

const SHALLOW_TEST: &str = "a_coroutine_that_went_deep_shrinks_to_two_pages_when_parked";

#[test]
fn a_coroutine_that_went_deep_shrinks_to_two_pages_when_parked() {
    also_with_mprotect(SHALLOW_TEST);
    let page = page_size();
    runtime().block_on(move || {
        let (report, reported) = chan::bounded::<(StackInfo, usize)>(1);
        let (wake, woken) = chan::bounded::<()>(0);
        let h = spindle::spawn(move || {
            let kept = black_box([0x5Au8; 256]);
            black_box(touch_200_kib());
            let info = StackInfo::current().expect("on a coroutine stack");
            let deep = info.resident_bytes().expect("mincore");
            report.send((info, deep)).unwrap();
            woken.recv().unwrap();
            assert!(
                black_box(kept).iter().all(|&b| b == 0x5A),
                "a live local changed"
            );
            // The released pages come back on demand.
            black_box(touch_200_kib());
        });
        let (info, deep) = reported.recv().unwrap();
        assert!(
            deep >= 200 << 10,
            "only {deep} bytes resident after going 200 KiB deep"
        );
        let resident = wait_for_resident_at_most(info, 2 * page);
        assert!(
            resident <= 2 * page,
            "still {resident} bytes resident {PATIENCE:?} after the park (page {page})"
        );
        wake.send(()).unwrap();
        h.join().unwrap();
    });
}

/// Recurse `depth` frames of about 1 KiB, each filled with its own byte;
/// at the bottom, go 200 KiB deeper and come back, report, and park; after
/// the wake-up, check every frame on the way back up. Returns how many
/// frames held the right bytes.
#[inline(never)]
fn deep_then_park(
    depth: u32,
    report: &chan::Sender<(StackInfo, usize)>,
    woken: &chan::Receiver<()>,
) -> u32 {
    let frame = black_box([depth as u8; 1024]);
    let below = if depth == 0 {
        black_box(touch_200_kib());
        let info = StackInfo::current().expect("on a coroutine stack");
        report
            .send((info, info.resident_bytes().expect("mincore")))
            .unwrap();
        woken.recv().unwrap();
        0
    } else {
        deep_then_park(depth - 1, report, woken)
    };
    below + u32::from(black_box(frame).iter().all(|&b| b == depth as u8))
}

const DEEP_TEST: &str = "a_coroutine_parked_deep_keeps_its_frames";

#[test]
fn a_coroutine_parked_deep_keeps_its_frames() {
    also_with_mprotect(DEEP_TEST);
    const FRAMES: u32 = 100;
    runtime().block_on(move || {
        let (report, reported) = chan::bounded::<(StackInfo, usize)>(1);
        let (wake, woken) = chan::bounded::<()>(0);
        let h = spindle::spawn(move || deep_then_park(FRAMES, &report, &woken));
        let (info, deep) = reported.recv().unwrap();
        assert!(deep >= (200 << 10) + (FRAMES as usize) * 1024, "{deep}");
        // The 200 KiB below the parked point go (at least 100 KiB of them
        // whatever the page size: up to 64 KiB pages), the frames above stay.
        let shrunk = deep - (100 << 10);
        let resident = wait_for_resident_at_most(info, shrunk);
        assert!(resident <= shrunk, "not shrunk: {resident} of {deep} bytes");
        assert!(
            resident >= (FRAMES as usize) * 1024,
            "live frames released: {resident}"
        );
        wake.send(()).unwrap();
        assert_eq!(h.join().unwrap(), FRAMES + 1, "a frame lost its bytes");
    });
}
