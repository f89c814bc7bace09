//! The mprotect VMA budget is the process's, not a runtime's (issue #9 §6).
//!
//! `vm.max_map_count` caps the maps of the whole process, so two runtimes in
//! mprotect guard mode draw on one budget. Each runtime used to count only
//! the maps it created itself: together they ran into the kernel's limit and
//! the next spawn failed with a bare "Cannot allocate memory". This test
//! parks coroutines on two runtimes, alternating, until a spawn fails, and
//! checks that the failure is the clear `vm.max_map_count` error and that
//! both runtimes recover.
//!
//! Like `mprotect_fallback.rs`, it re-runs itself in a child with
//! `SPINDLE_GUARD=mprotect` under guard regions, and it is alone in its
//! binary because it uses up the process's VMA budget.

use spindle::stack::budget::{current_map_count, max_map_count};
use spindle::{Builder, GuardMode, Runtime};
use spindle_tests::{guard_mode, park_until_refused, run_child, watchdog, Parked};

const TEST: &str = "two_runtimes_share_one_map_budget";

#[test]
fn two_runtimes_share_one_map_budget() {
    if guard_mode() == GuardMode::Regions {
        let run = run_child(TEST, "mprotect-two", &[("SPINDLE_GUARD", "mprotect")]);
        eprintln!("{run}");
        run.assert_passed();
        return;
    }
    watchdog("two runtimes at the map limit", |progress| {
        let limit = max_map_count();
        let runtimes = [
            Runtime::builder().workers(1).build().unwrap(),
            Runtime::builder().workers(1).build().unwrap(),
        ];
        let (Parked { handles, release }, err) =
            park_until_refused(&[&runtimes[0], &runtimes[1]], &progress);
        let parked = handles.len();
        eprintln!(
            "spawn #{} failed after {parked} stacks on two runtimes ({} maps, limit {limit}): {err}",
            parked + 1,
            current_map_count()
        );
        let msg = err.to_string();
        assert!(msg.contains("vm.max_map_count"), "{msg}");
        assert!(msg.contains("sysctl"), "{msg}");
        assert!(
            parked > limit / 4,
            "gave up after only {parked} stacks (limit {limit} maps): {msg}"
        );
        // Both runtimes are at the wall, and the process is still healthy.
        for rt in &runtimes {
            let again = Builder::new().spawn_on(rt, || ()).map(|_| ());
            let msg = again
                .expect_err("a spawn past the limit worked")
                .to_string();
            assert!(msg.contains("vm.max_map_count"), "{msg}");
        }
        assert_eq!(std::thread::spawn(|| 40 + 2).join().unwrap(), 42);
        progress.tick();

        drop(release);
        for (i, h) in handles.into_iter().enumerate() {
            assert!(h.join().expect("parked coroutine panicked"));
            if i % 1024 == 0 {
                progress.tick();
            }
        }
        for rt in &runtimes {
            assert_eq!(rt.block_on(|| 7), 7);
        }
    });
}
