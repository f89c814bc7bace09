//! `Runtime::builder()` rejects absurd settings with an error that names the
//! limit, instead of panicking ("capacity overflow") or aborting on a huge
//! allocation (issue #9 §6).

use spindle::{Runtime, MAX_WORKERS};

fn build_error(workers: usize) -> String {
    Runtime::builder()
        .workers(workers)
        .build()
        .map(|_| ())
        .expect_err("an absurd worker count was accepted")
        .to_string()
}

#[test]
fn absurd_worker_counts_are_rejected_naming_the_limit() {
    for n in [0, MAX_WORKERS + 1, 100_000_000_000, usize::MAX] {
        let msg = build_error(n);
        assert!(
            msg.contains(&MAX_WORKERS.to_string()) && msg.contains(&format!("got {n}")),
            "workers({n}): {msg}"
        );
    }
}

#[test]
fn the_limit_itself_is_accepted() {
    let rt = Runtime::builder().workers(MAX_WORKERS).build().unwrap();
    assert_eq!(rt.stats().workers, MAX_WORKERS);
    assert_eq!(rt.block_on(|| 3), 3);
}
