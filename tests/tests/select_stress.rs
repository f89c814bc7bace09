//! Stress: many selects over shared channels, counted exactly once.
//!
//! Producers send through `select!` over several channels (and plain
//! sends), consumers receive through `Select` over all of them, removing a
//! channel once it is closed and drained; each value must arrive exactly once.
//! The other tests port programs from Go's `test/chan/`: `doubleselect.go`
//! (one sender selecting over four channels, forwarders in between),
//! `nonblock.go` (non-blocking sends and receives meeting blocking partners)
//! and a prime sieve whose filters select on their input and a quit channel
//! (after `sieve1.go`/`select3.go`). All run on a 2-worker runtime under a
//! watchdog, so a lost wake-up fails instead of hanging.

use std::time::Duration;

use spindle::chan::{bounded, Receiver, Select, Sender};
use spindle::Runtime;
use spindle_tests::{watchdog, Progress};

fn rt() -> Runtime {
    Runtime::builder().workers(2).build().unwrap()
}

/// Receive from every channel until all are closed and drained.
fn drain_all(rxs: &[Receiver<u64>], progress: &Progress) -> Vec<u64> {
    let mut got = Vec::new();
    let mut sel = Select::new();
    for rx in rxs {
        sel.recv(rx);
    }
    let mut open = rxs.len();
    while open > 0 {
        let oper = sel.select();
        let i = oper.index();
        match oper.recv(&rxs[i]) {
            Ok(v) => got.push(v),
            Err(_) => {
                sel.remove(i);
                open -= 1;
            }
        }
        if got.len() % 512 == 0 {
            progress.tick();
        }
    }
    got
}

fn many_selectors(cap: usize, progress: Progress) {
    const CHANS: usize = 4;
    const PRODUCERS: u64 = 6;
    const PER: u64 = 20_000;
    let rt = rt();
    let (txs, rxs): (Vec<Sender<u64>>, Vec<Receiver<u64>>) =
        (0..CHANS).map(|_| bounded(cap)).unzip();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let txs = txs.clone();
            rt.spawn(move || {
                for i in 0..PER {
                    let v = p * PER + i;
                    let (a, b) = ((v % 4) as usize, ((v / 4 + 1) % 4) as usize);
                    if i % 5 == 0 {
                        txs[a].send(v).unwrap();
                        continue;
                    }
                    spindle::select! {
                        send(txs[a], v) -> r => r.unwrap(),
                        send(txs[b], v) -> r => r.unwrap(),
                    }
                }
            })
        })
        .collect();
    drop(txs);
    let consumers: Vec<_> = (0..3)
        .map(|_| {
            let (rxs, progress) = (rxs.clone(), progress.clone());
            rt.spawn(move || drain_all(&rxs, &progress))
        })
        .collect();
    // This thread consumes too: a plain thread among the coroutines.
    let mut all = drain_all(&rxs, &progress);
    for p in producers {
        p.join().unwrap();
    }
    for c in consumers {
        all.extend(c.join().unwrap());
    }
    all.sort_unstable();
    let expected: Vec<u64> = (0..PRODUCERS * PER).collect();
    assert!(all == expected, "cap {cap}: lost or duplicated values");
}

#[test]
fn many_selectors_exactly_once() {
    for cap in [0, 1, 16] {
        watchdog(&format!("many selectors, cap {cap}"), move |p| {
            many_selectors(cap, p)
        });
    }
}

/// Selects with tiny timeouts on both sides: the timeout of one races the
/// arrival of the other all the time. Accepted sends == receives.
#[test]
fn selects_with_racing_timeouts_exactly_once() {
    watchdog("racing select timeouts", |progress| {
        let rt = rt();
        let (tx1, rx1) = bounded::<u64>(0);
        let (tx2, rx2) = bounded::<u64>(1);
        let senders: Vec<_> = (0..3u64)
            .map(|s| {
                let (tx1, tx2) = (tx1.clone(), tx2.clone());
                rt.spawn(move || {
                    let mut accepted = Vec::new();
                    for i in 0..3_000 {
                        let v = s << 32 | i;
                        let t = Duration::from_micros(20 + i % 100);
                        spindle::select! {
                            send(tx1, v) -> r => { r.unwrap(); accepted.push(v) }
                            send(tx2, v) -> r => { r.unwrap(); accepted.push(v) }
                            default(t) => {}
                        }
                    }
                    accepted
                })
            })
            .collect();
        drop((tx1, tx2));
        let receivers: Vec<_> = (0..2)
            .map(|_| {
                let (rx1, rx2, progress) = (rx1.clone(), rx2.clone(), progress.clone());
                rt.spawn(move || {
                    let mut got = Vec::new();
                    let (mut open1, mut open2) = (true, true);
                    while open1 || open2 {
                        let never = spindle::chan::never();
                        let r1 = if open1 { &rx1 } else { &never };
                        let r2 = if open2 { &rx2 } else { &never };
                        spindle::select! {
                            recv(r1) -> m => match m { Ok(v) => got.push(v), Err(_) => open1 = false },
                            recv(r2) -> m => match m { Ok(v) => got.push(v), Err(_) => open2 = false },
                            default(Duration::from_micros(30)) => progress.tick(),
                        }
                    }
                    got
                })
            })
            .collect();
        let mut accepted: Vec<u64> = senders
            .into_iter()
            .flat_map(|s| s.join().unwrap())
            .collect();
        let mut got: Vec<u64> = receivers
            .into_iter()
            .flat_map(|r| r.join().unwrap())
            .collect();
        accepted.sort_unstable();
        got.sort_unstable();
        assert_eq!(got.len(), accepted.len());
        assert!(
            got == accepted,
            "values received differ from values accepted"
        );
    });
}

/// Go's doubleselect.go: one sender selects over four rendezvous channels;
/// a forwarder per channel passes values on to one receiver, which must see
/// each value exactly once.
#[test]
fn doubleselect() {
    watchdog("doubleselect", |progress| {
        let rt = rt();
        const N: u64 = 20_000;
        rt.block_on(move || {
            let chans: Vec<_> = (0..4).map(|_| bounded::<u64>(0)).collect();
            let (out_tx, out_rx) = bounded::<u64>(0);
            let txs: Vec<_> = chans.iter().map(|(t, _)| t.clone()).collect();
            let sender = spindle::spawn(move || {
                for i in 0..N {
                    spindle::select! {
                        send(txs[0], i) -> r => r.unwrap(),
                        send(txs[1], i) -> r => r.unwrap(),
                        send(txs[2], i) -> r => r.unwrap(),
                        send(txs[3], i) -> r => r.unwrap(),
                    }
                }
            });
            let forwarders: Vec<_> = chans
                .into_iter()
                .map(|(_, rx)| {
                    let out = out_tx.clone();
                    spindle::spawn(move || {
                        for v in rx {
                            out.send(v).unwrap();
                        }
                    })
                })
                .collect();
            drop(out_tx);
            let mut seen = vec![false; N as usize];
            for v in out_rx {
                assert!(
                    !std::mem::replace(&mut seen[v as usize], true),
                    "duplicate {v}"
                );
                if v % 1024 == 0 {
                    progress.tick();
                }
            }
            assert!(seen.iter().all(|&s| s), "a value was lost");
            sender.join().unwrap();
            for f in forwarders {
                f.join().unwrap();
            }
        });
    });
}

/// Go's nonblock.go: a non-blocking send or receive (select with default)
/// retried against a partner that blocks must get through, for rendezvous
/// and buffered channels, without ever blocking itself.
#[test]
fn nonblock() {
    watchdog("nonblock", |progress| {
        let rt = rt();
        rt.block_on(move || {
            for cap in [0usize, 1, 8] {
                for round in 0..50u32 {
                    progress.tick();
                    // Non-blocking send to a blocking receiver.
                    let (tx, rx) = bounded::<u32>(cap);
                    let receiver = spindle::spawn(move || rx.recv().unwrap());
                    let mut tries = 0u64;
                    loop {
                        spindle::select! {
                            send(tx, round) -> r => { r.unwrap(); break }
                            default => { tries += 1; spindle::yield_now() }
                        }
                        assert!(tries < 10_000_000, "cap {cap}: send never went through");
                    }
                    assert_eq!(receiver.join().unwrap(), round);
                    // Non-blocking receive from a blocking sender.
                    let (tx, rx) = bounded::<u32>(cap);
                    let sender = spindle::spawn(move || tx.send(round).unwrap());
                    let got = loop {
                        spindle::select! {
                            recv(rx) -> m => break m.unwrap(),
                            default => spindle::yield_now(),
                        }
                    };
                    assert_eq!(got, round);
                    sender.join().unwrap();
                    // Nothing to do: both fall through to default at once.
                    let (tx, rx) = bounded::<u32>(0);
                    let r = spindle::select! { recv(rx) -> _ => 1, default => 0 };
                    let s = spindle::select! { send(tx, 1) -> _ => 1, default => 0 };
                    assert_eq!((r, s), (0, 0));
                }
            }
        });
    });
}

/// A prime sieve (after Go's sieve1.go) whose filters select on their input
/// and on a quit channel; closing quit stops every filter.
#[test]
fn sieve_with_quit() {
    watchdog("sieve", |_| {
        let rt = rt();
        rt.block_on(|| {
            let (quit_tx, quit_rx) = bounded::<()>(0);
            let (gen_tx, mut input) = bounded::<u64>(0);
            let q = quit_rx.clone();
            let generator = spindle::spawn(move || {
                for i in 2.. {
                    spindle::select! {
                        send(gen_tx, i) -> r => if r.is_err() { return },
                        recv(q) -> _ => return,
                    }
                }
            });
            let mut primes = Vec::new();
            let mut filters = Vec::new();
            for _ in 0..100 {
                let p = input.recv().unwrap();
                primes.push(p);
                let (tx, rx) = bounded::<u64>(0);
                let q = quit_rx.clone();
                let from = std::mem::replace(&mut input, rx);
                filters.push(spindle::spawn(move || loop {
                    spindle::select! {
                        recv(from) -> v => {
                            let Ok(v) = v else { return };
                            if v % p != 0 {
                                spindle::select! {
                                    send(tx, v) -> r => if r.is_err() { return },
                                    recv(q) -> _ => return,
                                }
                            }
                        }
                        recv(q) -> _ => return,
                    }
                }));
            }
            drop(quit_tx); // closing quit makes `recv(q)` ready everywhere
            drop(input);
            generator.join().unwrap();
            for f in filters {
                f.join().unwrap();
            }
            assert_eq!(primes[..10], [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
            assert_eq!(primes[99], 541);
        });
    });
}
