//! No lost wake-ups, and a scheduler that is fair about who runs.
//!
//! A lost wake-up (a waiter that misses the signal it waits for) shows up as
//! a hang, so every test here runs under [`watchdog`], which turns a stall
//! into a failure. Covered: ping-pong between coroutines on 2 workers, between
//! a coroutine and an OS thread, and between two runtimes (every round is a
//! park and a wake); `WaitGroup` with many waiters of both kinds; `join`
//! racing with a task that finishes at once; `sleep` waking (lower bound
//! only), not blocking its worker, and being fired by an idle worker while the
//! worker that armed it is busy; `yield_now` alternation on one worker; and
//! the `runnext` fairness rule: a ping-pong pair that keeps waking each other
//! must not starve a third coroutine on the same worker.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spindle::chan;
use spindle::sync::WaitGroup;
use spindle::Runtime;
use spindle_tests::{by_mode, stall_limit, watchdog};

/// Two coroutines bounce a counter over two rendezvous channels on 2 workers.
#[test]
fn ping_pong_between_coroutines_on_two_workers() {
    let rounds = by_mode(50_000, 5_000) as u64;
    let rt = Runtime::builder().workers(2).build().unwrap();
    let last = watchdog("coroutine ping-pong", move |progress| {
        let (ping_tx, ping_rx) = chan::bounded::<u64>(0);
        let (pong_tx, pong_rx) = chan::bounded::<u64>(0);
        let ponger = rt.spawn(move || {
            for v in ping_rx.iter() {
                pong_tx.send(v + 1).unwrap();
            }
        });
        let pinger = rt.spawn(move || {
            let mut v = 0;
            for _ in 0..rounds {
                ping_tx.send(v).unwrap();
                v = pong_rx.recv().unwrap();
                progress.tick();
            }
            v
        });
        let last = pinger.join().unwrap();
        ponger.join().unwrap();
        last
    });
    assert_eq!(last, rounds);
}

/// The same with one side an OS thread: coroutine parks, thread blocks.
#[test]
fn ping_pong_between_a_coroutine_and_a_thread() {
    let rounds = by_mode(20_000, 2_000) as u64;
    let rt = Runtime::builder().workers(2).build().unwrap();
    let last = watchdog("coroutine/thread ping-pong", move |progress| {
        for cap in [0, 1] {
            let (ping_tx, ping_rx) = chan::bounded::<u64>(cap);
            let (pong_tx, pong_rx) = chan::bounded::<u64>(cap);
            let ponger = rt.spawn(move || {
                for v in ping_rx.iter() {
                    pong_tx.send(v + 1).unwrap();
                }
            });
            let mut v = 0;
            for _ in 0..rounds {
                ping_tx.send(v).unwrap();
                v = pong_rx.recv().unwrap();
                progress.tick();
            }
            drop(ping_tx);
            ponger.join().unwrap();
            assert_eq!(v, rounds, "cap {cap}");
        }
        // And the other way round: the thread answers the coroutine.
        let (ping_tx, ping_rx) = chan::bounded::<u64>(0);
        let (pong_tx, pong_rx) = chan::bounded::<u64>(0);
        let ponger = std::thread::spawn(move || {
            for v in ping_rx.iter() {
                pong_tx.send(v + 1).unwrap();
            }
        });
        let v = rt.block_on(move || {
            let mut v = 0;
            for _ in 0..rounds {
                ping_tx.send(v).unwrap();
                v = pong_rx.recv().unwrap();
                progress.tick();
            }
            v
        });
        ponger.join().unwrap();
        v
    });
    assert_eq!(last, rounds);
}

/// Many rounds of: K workers each do `done`, W coroutine waiters and a few
/// thread waiters `wait`. A waiter must neither hang (lost wake-up) nor return
/// before the last `done` (checked with a counter bumped before each `done`).
#[test]
fn wait_group_releases_many_waiters_only_at_zero() {
    let rounds = by_mode(50, 10);
    const JOBS: usize = 16;
    const CO_WAITERS: usize = 200;
    const THREAD_WAITERS: usize = 4;
    let rt = Arc::new(Runtime::builder().workers(2).build().unwrap());
    let rt2 = rt.clone();
    watchdog("wait group", move |progress| {
        let rt = rt2;
        for round in 0..rounds {
            let wg = WaitGroup::new();
            let jobs_done = Arc::new(AtomicUsize::new(0));
            wg.add(JOBS);
            let check = {
                let jobs_done = jobs_done.clone();
                move |who: &str| {
                    let seen = jobs_done.load(Ordering::SeqCst);
                    assert_eq!(
                        seen, JOBS,
                        "round {round}: {who} woke with {seen}/{JOBS} done"
                    );
                }
            };
            let co_waiters: Vec<_> = (0..CO_WAITERS)
                .map(|_| {
                    let (wg, check) = (wg.clone(), check.clone());
                    rt.spawn(move || {
                        wg.wait();
                        check("coroutine waiter");
                    })
                })
                .collect();
            let thread_waiters: Vec<_> = (0..THREAD_WAITERS)
                .map(|_| {
                    let (wg, check) = (wg.clone(), check.clone());
                    std::thread::spawn(move || {
                        wg.wait();
                        check("thread waiter");
                    })
                })
                .collect();
            let jobs: Vec<_> = (0..JOBS)
                .map(|_| {
                    let (wg, jobs_done) = (wg.clone(), jobs_done.clone());
                    rt.spawn(move || {
                        spindle::yield_now();
                        jobs_done.fetch_add(1, Ordering::SeqCst);
                        wg.done();
                    })
                })
                .collect();
            for h in jobs.into_iter().chain(co_waiters) {
                h.join().expect("job or waiter panicked");
            }
            for t in thread_waiters {
                t.join().expect("thread waiter panicked");
            }
            assert_eq!(wg.count(), 0);
            wg.wait(); // at zero: returns at once
            progress.tick();
        }
    });
    assert_eq!(rt.stats().live, 0);
}

/// `join` racing with completion: tasks that return at once, joined right
/// after the spawn, from threads (several at once) and from coroutines. The
/// joiner sets its "waiting" bit while the finisher sets "complete"; either
/// order must end in a returned value, never a hang.
#[test]
fn join_races_with_immediate_completion() {
    let per_joiner = by_mode(5_000, 500);
    let rt = Arc::new(Runtime::builder().workers(2).build().unwrap());
    let rt2 = rt.clone();
    watchdog("join race", move |progress| {
        let rt = rt2;
        let threads: Vec<_> = (0..3)
            .map(|t| {
                let (rt, progress) = (rt.clone(), progress.clone());
                std::thread::spawn(move || {
                    for i in 0..per_joiner {
                        let v = t * 1_000_000 + i;
                        assert_eq!(rt.spawn(move || v).join().unwrap(), v);
                        progress.tick();
                    }
                })
            })
            .collect();
        let from_coroutines: Vec<_> = (0..3)
            .map(|c| {
                let progress = progress.clone();
                rt.spawn(move || {
                    for i in 0..per_joiner {
                        let v = c * 1_000_000 + i;
                        assert_eq!(spindle::spawn(move || v).join().unwrap(), v);
                        progress.tick();
                    }
                })
            })
            .collect();
        // Join handles passed to another thread, joined there while the task
        // may still be running.
        let (htx, hrx) = std::sync::mpsc::channel();
        let remote = std::thread::spawn(move || {
            let mut n = 0;
            for h in hrx {
                let h: spindle::JoinHandle<usize> = h;
                n += h.join().unwrap();
            }
            n
        });
        for _ in 0..per_joiner {
            htx.send(rt.spawn(|| 1usize)).unwrap();
        }
        drop(htx);
        assert_eq!(remote.join().unwrap(), per_joiner);
        for t in threads {
            t.join().unwrap();
        }
        for c in from_coroutines {
            c.join().unwrap();
        }
    });
    let stats = rt.stats();
    assert_eq!(stats.live, 0, "{stats:?}");
}

/// `sleep` lasts at least as long as asked (lower bound only: never assert an
/// upper bound on a shared machine), from coroutines on both workers at once,
/// with deadlines in mixed order.
#[test]
fn sleep_lasts_at_least_the_duration() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let shortfalls = watchdog("sleep", move |_| {
        let handles: Vec<_> = (0..64u64)
            .map(|i| {
                let d = Duration::from_millis(1 + (i * 7) % 30);
                rt.spawn(move || {
                    let start = Instant::now();
                    spindle::sleep(d);
                    let took = start.elapsed();
                    (took < d).then_some((d, took))
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    assert!(shortfalls.is_empty(), "woke early: {shortfalls:?}");
}

/// On one worker, a sleeping coroutine must not block the worker thread:
/// another coroutine runs while it sleeps. The runner counts the times it
/// observed the sleeper *inside* `sleep`; with a thread-blocking sleep that
/// can never happen on a single worker.
#[test]
fn sleep_does_not_block_the_worker() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let (observed, slept) = watchdog("sleep on 1 worker", move |_| {
        rt.block_on(|| {
            let asleep = Arc::new(AtomicBool::new(false));
            let woke = Arc::new(AtomicBool::new(false));
            let d = Duration::from_millis(30);
            let sleeper = {
                let (asleep, woke) = (asleep.clone(), woke.clone());
                spindle::spawn(move || {
                    asleep.store(true, Ordering::SeqCst);
                    let start = Instant::now();
                    spindle::sleep(d);
                    let slept = start.elapsed();
                    woke.store(true, Ordering::SeqCst);
                    slept
                })
            };
            let runner = spindle::spawn(move || {
                let mut observed = 0u64;
                while !woke.load(Ordering::SeqCst) {
                    if asleep.load(Ordering::SeqCst) {
                        observed += 1;
                    }
                    spindle::yield_now();
                }
                observed
            });
            let slept = sleeper.join().unwrap();
            (runner.join().unwrap(), slept)
        })
    });
    assert!(slept >= Duration::from_millis(30), "slept only {slept:?}");
    assert!(
        observed > 0,
        "the other coroutine never ran while the sleeper slept: sleep blocked the worker"
    );
}

/// Wait until every worker of a fresh, unused runtime has gone to sleep for
/// lack of work (each counts one sleep; nothing can wake them yet), so that
/// the next wake-up takes the "sleeping worker is notified" path.
fn wait_until_all_workers_sleep(rt: &Runtime) {
    let workers = rt.stats().workers as u64;
    while rt.stats().worker_sleeps < workers {
        std::thread::yield_now();
    }
}

/// New work must wake an idle worker even while another worker is busy. A
/// coroutine spins (without yielding) on one worker until a flag is set; a
/// plain thread then spawns the coroutine that sets it. The spawn goes to the
/// injector and must wake the other, idle, worker. The spinner gives up after
/// a long while, so a runtime that leaves the new work waiting for the busy
/// worker fails instead of hanging. Both workers are asleep at the start, so
/// the spinner runs on a worker that was woken for it.
#[test]
fn new_work_wakes_an_idle_worker_while_the_other_is_busy() {
    const ROUNDS: usize = 3;
    let give_up = stall_limit() / 12;
    watchdog("idle worker wake-up", move |progress| {
        for round in 0..ROUNDS {
            let rt = Runtime::builder().workers(2).build().unwrap();
            wait_until_all_workers_sleep(&rt);
            let flag = Arc::new(AtomicBool::new(false));
            let (started_tx, started_rx) = std::sync::mpsc::channel();
            let f = flag.clone();
            let spinner = rt.spawn(move || {
                started_tx.send(()).unwrap();
                let start = Instant::now();
                while !f.load(Ordering::SeqCst) {
                    if start.elapsed() > give_up {
                        return false;
                    }
                    std::hint::spin_loop();
                }
                true
            });
            started_rx.recv().unwrap();
            let setter = rt.spawn(move || flag.store(true, Ordering::SeqCst));
            assert!(
                spinner.join().unwrap(),
                "round {round}: a coroutine spawned from a thread did not run for {give_up:?} \
                 although a worker was idle: the idle worker was never woken"
            );
            setter.join().unwrap();
            progress.tick();
        }
    });
}

/// A due timer must fire while a worker is idle. The sleeping coroutine and
/// a spinning one run at the same time, so on two workers; the sleeper arms
/// its timer and parks, and its worker then has nothing to do while the
/// other spins (without yielding) until the sleeper sets a flag. The idle
/// worker must notice the timer (an idle worker "sleeps no longer than the
/// earliest deadline") and run the sleeper. The spinner gives up after a
/// long while so that a runtime that never fires the timer fails the test
/// instead of hanging it. Both workers are asleep at the start.
#[test]
fn an_idle_worker_fires_a_due_timer_while_the_other_is_busy() {
    const ROUNDS: usize = 3;
    let give_up = stall_limit() / 12;
    watchdog("timer on an idle worker", move |progress| {
        for round in 0..ROUNDS {
            let rt = Runtime::builder().workers(2).build().unwrap();
            wait_until_all_workers_sleep(&rt);
            let woke_in_time = rt.block_on(move || {
                let woke = Arc::new(AtomicBool::new(false));
                let (up_a, up_b) = (
                    Arc::new(AtomicBool::new(false)),
                    Arc::new(AtomicBool::new(false)),
                );
                let both_up = move |me: &AtomicBool, other: &AtomicBool| {
                    me.store(true, Ordering::SeqCst);
                    let start = Instant::now();
                    while !other.load(Ordering::SeqCst) && start.elapsed() < give_up {
                        std::hint::spin_loop();
                    }
                };
                let (flag, a2, b2) = (woke.clone(), up_a.clone(), up_b.clone());
                let spinner = spindle::spawn(move || {
                    both_up(&a2, &b2);
                    let start = Instant::now();
                    while !flag.load(Ordering::SeqCst) {
                        if start.elapsed() > give_up {
                            return false;
                        }
                        std::hint::spin_loop();
                    }
                    true
                });
                let sleeper = spindle::spawn(move || {
                    both_up(&up_b, &up_a);
                    spindle::sleep(Duration::from_millis(1));
                    woke.store(true, Ordering::SeqCst);
                });
                sleeper.join().unwrap();
                spinner.join().unwrap()
            });
            assert!(
                woke_in_time,
                "round {round}: a 1 ms sleep was not woken in {give_up:?} although its \
                 worker was idle: an idle worker did not fire the due timer"
            );
            progress.tick();
        }
    });
}

/// Channels between coroutines of two different runtimes: a wake from
/// runtime B's worker must reach runtime A's queues (through its injector),
/// not B's.
#[test]
fn ping_pong_across_two_runtimes() {
    let rounds = by_mode(10_000, 1_000) as u64;
    let rt_a = Runtime::builder().workers(1).build().unwrap();
    let rt_b = Runtime::builder().workers(1).build().unwrap();
    let last = watchdog("cross-runtime ping-pong", move |progress| {
        let (ping_tx, ping_rx) = chan::bounded::<u64>(0);
        let (pong_tx, pong_rx) = chan::bounded::<u64>(0);
        let ponger = rt_b.spawn(move || {
            for v in ping_rx.iter() {
                pong_tx.send(v + 1).unwrap();
            }
        });
        let last = rt_a.block_on(move || {
            let mut v = 0;
            for _ in 0..rounds {
                ping_tx.send(v).unwrap();
                v = pong_rx.recv().unwrap();
                progress.tick();
            }
            v
        });
        ponger.join().unwrap();
        let (a, b) = (rt_a.stats(), rt_b.stats());
        assert_eq!((a.live, b.live), (0, 0), "{a:?} {b:?}");
        assert_eq!(
            (a.spawned, b.spawned),
            (1, 1),
            "each runtime ran its own coroutine"
        );
        last
    });
    assert_eq!(last, rounds);
}

/// Two coroutines that only yield, on one worker: each `yield_now` sends the
/// caller to the back of the queue, so they alternate and neither starves.
#[test]
fn yield_now_alternates_two_coroutines_on_one_worker() {
    const TURNS: usize = 2_000;
    let rt = Runtime::builder().workers(1).build().unwrap();
    let log = watchdog("yield alternation", move |_| {
        rt.block_on(|| {
            let log = Arc::new(Mutex::new(Vec::with_capacity(2 * TURNS)));
            let spawn_yielder = |id: u8| {
                let log = log.clone();
                spindle::spawn(move || {
                    for _ in 0..TURNS {
                        log.lock().unwrap().push(id);
                        spindle::yield_now();
                    }
                })
            };
            let a = spawn_yielder(b'a');
            let b = spawn_yielder(b'b');
            a.join().unwrap();
            b.join().unwrap();
            Arc::try_unwrap(log).unwrap().into_inner().unwrap()
        })
    });
    assert_eq!(log.len(), 2 * TURNS);
    // Both finish, and no coroutine runs twice in a row while the other is
    // still runnable (allowing for the start, where one may begin first).
    let longest_run = log.chunk_by(|x, y| x == y).map(<[u8]>::len).max().unwrap();
    assert!(
        longest_run <= 2,
        "a yielding coroutine ran {longest_run} times in a row: {}",
        String::from_utf8_lossy(&log[..log.len().min(200)])
    );
}

/// `runnext` fairness: a ping-pong pair on one worker wakes each other
/// forever through `runnext`; a third coroutine waiting in the local queue
/// must still get turns and finish. The pair gives up after a very large
/// number of rounds, so a starving scheduler fails the test instead of
/// hanging it.
#[test]
fn runnext_cannot_starve_the_local_queue() {
    const ROUND_LIMIT: u64 = 1_000_000;
    const THIRD_STEPS: u64 = 100;
    let rt = Runtime::builder().workers(1).build().unwrap();
    let (rounds, third_steps) = watchdog("runnext fairness", move |progress| {
        rt.block_on(move || {
            let stop = Arc::new(AtomicBool::new(false));
            let (ping_tx, ping_rx) = chan::bounded::<u64>(0);
            let (pong_tx, pong_rx) = chan::bounded::<u64>(0);
            let ponger = spindle::spawn(move || {
                for v in ping_rx.iter() {
                    pong_tx.send(v).unwrap();
                }
            });
            let pinger = {
                let stop = stop.clone();
                spindle::spawn(move || {
                    let mut rounds = 0;
                    while !stop.load(Ordering::SeqCst) && rounds < ROUND_LIMIT {
                        ping_tx.send(rounds).unwrap();
                        rounds = pong_rx.recv().unwrap() + 1;
                        if rounds % 1024 == 0 {
                            progress.tick();
                        }
                    }
                    rounds
                })
            };
            // The third coroutine: work that needs many turns of its own.
            let third = spindle::spawn(move || {
                let mut steps = 0;
                for _ in 0..THIRD_STEPS {
                    steps += 1;
                    spindle::yield_now();
                }
                stop.store(true, Ordering::SeqCst);
                steps
            });
            let third_steps = third.join().unwrap();
            let rounds = pinger.join().unwrap();
            ponger.join().unwrap();
            (rounds, third_steps)
        })
    });
    assert_eq!(third_steps, THIRD_STEPS);
    assert!(
        rounds < ROUND_LIMIT,
        "the ping-pong pair ran {rounds} rounds without the third coroutine finishing: \
         runnext starves the local queue"
    );
}
