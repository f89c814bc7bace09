//! The mprotect guard fallback, driven into the `vm.max_map_count` wall.
//!
//! Where `MADV_GUARD_INSTALL` does not work (kernels before 6.13, qemu-user),
//! spindle guards each stack with `mprotect`, which costs two VMAs per stack,
//! so a process with the stock `vm.max_map_count` (65530) fits about 32k
//! stacks. Past the limit *every* mmap fails, the allocator's included, so
//! the runtime must refuse in time, with an `io::Error` that names
//! `vm.max_map_count`, its value and the sysctl that raises it, and never
//! panic or abort.
//!
//! The test spawns parked coroutines with `Builder::spawn_on` until a spawn
//! fails, then checks the error, that the process can still allocate and
//! start a thread, that the parked coroutines can be released and joined,
//! and that spawning works again once their stacks are back in the pool.
//!
//! It needs mprotect mode. Under guard regions (a plain `cargo test` on a new
//! kernel) it re-runs itself in a child with `SPINDLE_GUARD=mprotect`, so the
//! fallback is covered everywhere. This binary holds only this test: it uses
//! up the whole process's VMA budget.

use spindle::stack::budget::{current_map_count, max_map_count};
use spindle::{Builder, GuardMode, Runtime};
use spindle_tests::{guard_mode, park_until_refused, run_child, watchdog, Parked};

const TEST: &str = "spawning_up_to_the_map_limit_fails_cleanly";

#[test]
fn spawning_up_to_the_map_limit_fails_cleanly() {
    if guard_mode() == GuardMode::Regions {
        let run = run_child(TEST, "mprotect-fallback", &[("SPINDLE_GUARD", "mprotect")]);
        eprintln!("{run}");
        run.assert_passed();
        return;
    }
    watchdog("mprotect fallback", |progress| {
        exhaust_and_recover(&progress)
    });
}

fn exhaust_and_recover(progress: &spindle_tests::Progress) {
    let limit = max_map_count();
    let rt = Runtime::builder().workers(2).build().unwrap();
    assert_eq!(rt.stats().guard_mode, GuardMode::Mprotect);

    let (Parked { handles, release }, err) = park_until_refused(&[&rt], progress);
    let parked = handles.len();
    eprintln!(
        "spawn #{} failed after {parked} stacks ({} maps, limit {limit}): {err}",
        parked + 1,
        current_map_count()
    );

    // The error is clear and actionable.
    let msg = err.to_string();
    assert!(msg.contains("vm.max_map_count"), "{msg}");
    assert!(msg.contains(&limit.to_string()), "{msg}");
    assert!(msg.contains("sysctl"), "{msg}");
    // It came near the wall, not at some unrelated early failure.
    assert!(
        parked > limit / 4,
        "gave up after only {parked} stacks (limit {limit} maps): {msg}"
    );
    // The process is still healthy: under the limit, able to allocate (a
    // big Vec is its own mmap), to start a thread, and to refuse again.
    assert!(current_map_count() < limit);
    let big = vec![1u8; 64 << 20];
    assert_eq!(big.iter().map(|&b| usize::from(b)).sum::<usize>(), 64 << 20);
    drop(big);
    assert_eq!(std::thread::spawn(|| 40 + 2).join().unwrap(), 42);
    assert!(Builder::new().spawn_on(&rt, || ()).is_err());
    progress.tick();

    // Release the parked coroutines: each wakes with RecvError.
    drop(release);
    let mut released = 0;
    for h in handles {
        assert!(h.join().expect("parked coroutine panicked"));
        released += 1;
        if released % 1024 == 0 {
            progress.tick();
        }
    }
    assert_eq!(released, parked);
    let stats = rt.stats();
    assert_eq!(stats.live, 0, "{stats:?}");
    assert!(stats.slots >= parked, "{stats:?}");

    // Their stacks are pooled: spawning works again, from a thread and from
    // a coroutine, without new VMAs.
    assert_eq!(rt.block_on(|| 7), 7);
    let v = rt.block_on(|| spindle::spawn(|| 8).join().unwrap());
    assert_eq!(v, 8);
    let again: Vec<_> = (0..1000).map(|i| rt.spawn(move || i)).collect();
    let sum: usize = again.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(sum, 999 * 1000 / 2);
}
