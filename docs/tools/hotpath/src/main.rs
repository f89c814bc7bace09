// The hot-path probe of docs/notes/netpoll.md: `hotpath <handoff|yield|spawnjoin> N`,
// counted with `valgrind --tool=callgrind` (N and 0, subtracted).
use std::env;
fn main() {
    let mode = env::args().nth(1).unwrap();
    let n: u64 = env::args().nth(2).unwrap().parse().unwrap();
    let rt = spindle::Runtime::builder().workers(1).build().unwrap();
    match mode.as_str() {
        "handoff" => rt.block_on(move || {
            let (tx1, rx1) = spindle::chan::bounded::<u64>(0);
            let (tx2, rx2) = spindle::chan::bounded::<u64>(0);
            let echo = spindle::spawn(move || {
                while let Ok(v) = rx1.recv() {
                    if tx2.send(v).is_err() { break; }
                }
            });
            for i in 0..n { tx1.send(i).unwrap(); rx2.recv().unwrap(); }
            drop(tx1);
            echo.join().unwrap();
        }),
        "yield" => rt.block_on(move || {
            let other = spindle::spawn(move || { for _ in 0..n { spindle::yield_now(); } });
            for _ in 0..n { spindle::yield_now(); }
            other.join().unwrap();
        }),
        "spawnjoin" => rt.block_on(move || {
            for i in 0..n { let h = spindle::spawn(move || i); assert_eq!(h.join().unwrap(), i); }
        }),
        _ => panic!("mode"),
    }
}
