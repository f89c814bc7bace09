//! The smallest end-to-end check: a runtime starts, a producer coroutine
//! sends 1..=1000 over a rendezvous channel, the consumer sums them, and
//! `block_on` hands the sum back to the test thread.

use spindle::{chan, Runtime};

#[test]
fn block_on_returns_and_channels_work() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let sum = rt.block_on(|| {
        let (tx, rx) = chan::bounded(0);
        let p = spindle::spawn(move || {
            for i in 1..=1000u64 {
                tx.send(i).unwrap();
            }
        });
        let s: u64 = rx.iter().sum();
        p.join().unwrap();
        s
    });
    assert_eq!(sum, 500500);
}
