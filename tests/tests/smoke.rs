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
