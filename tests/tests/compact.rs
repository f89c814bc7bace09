//! Issue #12 §2: compaction (`RuntimeBuilder::compact_after`). A coroutine
//! parked longer than `after` has its stack copied to the heap and its
//! pages released; it gets its bytes back, at the same addresses, before it
//! runs again, or as soon as another thread touches them.
//!
//! Every test waits for compaction by polling `Stats::compacted` (with a
//! generous stall limit, never a timed assertion) and checks behaviour:
//! bytes, addresses, error codes, exit statuses. They run in both guard
//! modes (CI repeats the suite with `SPINDLE_GUARD=mprotect`).

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spindle::chan;
use spindle::stack::StackInfo;
use spindle::{Builder, Runtime};
use spindle_tests::{
    child_command, compaction_refused, is_child, run_child, run_command, stall_limit, SIGABRT,
};

const AFTER: Duration = Duration::from_millis(10);

/// A runtime with `workers` workers that compacts, or `None` where `build`
/// must refuse compaction (the mprotect fallback off x86_64) with an error
/// that names guard regions.
fn runtime(workers: usize) -> Option<Runtime> {
    let built = Runtime::builder()
        .workers(workers)
        .compact_after(AFTER)
        .build();
    if compaction_refused() {
        let Err(err) = built else {
            panic!("compaction must be refused in this guard mode");
        };
        assert!(err.to_string().contains("needs guard regions"), "{err}");
        return None;
    }
    Some(built.expect("compaction is available in this guard mode"))
}

/// Wait until at least `n` stacks are compacted right now.
fn wait_compacted(rt: &Runtime, n: u64) {
    let t0 = Instant::now();
    loop {
        let c = rt.stats().compacted;
        if c >= n {
            return;
        }
        assert!(
            t0.elapsed() < stall_limit(),
            "only {c} of {n} stacks compacted after {:?}",
            t0.elapsed()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The bytes a coroutine keeps on its stack: 256 of them, its own pattern.
fn pattern(i: u64) -> [u8; 256] {
    std::array::from_fn(|k| (i as u8).wrapping_mul(31).wrapping_add(k as u8))
}

/// Coroutines holding a 256-byte local and pointers into their own stack
/// park on one channel, get compacted (no resident stack page left), are
/// woken, and find every byte and every pointer as they left them.
#[test]
fn compacted_coroutines_get_their_bytes_back_at_the_same_addresses() {
    const N: u64 = 200;
    let Some(rt) = runtime(2) else { return };
    let (tx, rx) = chan::bounded::<u64>(0);
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let rx = rx.clone();
            Builder::new()
                .spawn_on(&rt, move || {
                    let local = std::hint::black_box(pattern(i));
                    let here: *const [u8; 256] = &local;
                    let me = std::hint::black_box(&here);
                    let info = StackInfo::current().unwrap();
                    let _ = rx.recv().unwrap();
                    let same_place = std::ptr::eq(*me, &local);
                    let bytes_ok = local == pattern(i);
                    // SAFETY: `here` points to `local`, alive in this frame.
                    let through_pointer = unsafe { **me } == pattern(i);
                    (same_place && bytes_ok && through_pointer, info)
                })
                .unwrap()
        })
        .collect();
    wait_compacted(&rt, N);
    let stats = rt.stats();
    assert!(stats.compacted_bytes >= N * 256, "{stats:?}");
    for _ in 0..N {
        tx.send(0).unwrap();
    }
    for h in handles {
        let (ok, info) = h.join().unwrap();
        assert!(ok, "a woken coroutine found its stack changed");
        assert!(info.size > 0);
    }
    let stats = rt.stats();
    assert_eq!(stats.compacted, 0, "{stats:?}");
    assert!(stats.compactions >= N, "{stats:?}");
}

/// While compacted, a coroutine's stack holds no resident page at all.
#[test]
fn a_compacted_stack_has_no_resident_page() {
    let Some(rt) = runtime(2) else { return };
    let (tx, rx) = chan::bounded::<()>(0);
    let (info_tx, info_rx) = chan::bounded(1);
    let h = Builder::new()
        .spawn_on(&rt, move || {
            let local = std::hint::black_box(pattern(7));
            info_tx.send(StackInfo::current().unwrap()).unwrap();
            rx.recv().unwrap();
            local == pattern(7)
        })
        .unwrap();
    let info = info_rx.recv().unwrap();
    assert!(info.resident_bytes().unwrap() > 0);
    wait_compacted(&rt, 1);
    assert_eq!(info.resident_bytes().unwrap(), 0);
    tx.send(()).unwrap();
    assert!(h.join().unwrap());
}

/// The soundness case of the issue: a coroutine lends its locals to an OS
/// thread (`std::thread::scope`) and parks. Once the stack is compacted,
/// the thread reads and writes through its references: the fault handler
/// restores the bytes, the thread sees the right ones, and its writes are
/// not lost.
#[test]
fn a_foreign_thread_touching_a_compacted_stack_sees_the_right_bytes() {
    let Some(rt) = runtime(2) else { return };
    let (tx, rx) = chan::bounded::<()>(0);
    let go = Arc::new(AtomicBool::new(false));
    let go2 = go.clone();
    let h = Builder::new()
        .spawn_on(&rt, move || {
            let local = std::hint::black_box(pattern(3));
            let counter = AtomicU64::new(40);
            std::thread::scope(|s| {
                // Only the two references point into our stack: the spinning
                // below must not be what touches it.
                let (local, counter) = (&local, &counter);
                let reader = s.spawn(move || {
                    while !go2.load(Ordering::Acquire) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    let seen = *local; // reads the compacted stack
                    counter.fetch_add(2, Ordering::SeqCst); // writes it
                    seen == pattern(3)
                });
                rx.recv().unwrap(); // parks inside the scope
                let read_ok = reader.join().unwrap();
                read_ok && counter.load(Ordering::SeqCst) == 42 && *local == pattern(3)
            })
        })
        .unwrap();
    wait_compacted(&rt, 1);
    go.store(true, Ordering::Release);
    // The thread's touch restores the stack while its coroutine stays parked.
    let t0 = Instant::now();
    while rt.stats().resident_stack_bytes == 0 || rt.stats().compacted_bytes == 0 {
        assert!(t0.elapsed() < stall_limit(), "no restore seen");
        std::thread::sleep(Duration::from_millis(1));
    }
    tx.send(()).unwrap();
    assert!(h.join().unwrap(), "wrong bytes through a compacted stack");
    assert_eq!(rt.stats().compacted, 0);
}

/// A system call from another thread that reads or writes a compacted
/// stack fails with EFAULT (no signal, so no restore): `write(2)` from it,
/// `read(2)` into it. Not silent corruption: a read from `/dev/zero` would
/// have zeroed the bytes, and they are intact when the coroutine wakes.
#[test]
fn a_system_call_into_a_compacted_stack_gets_efault() {
    const EFAULT: i32 = 14;
    let Some(rt) = runtime(2) else { return };
    let (tx, rx) = chan::bounded::<()>(0);
    let go = Arc::new(AtomicBool::new(false));
    let go2 = go.clone();
    let done = Arc::new(AtomicBool::new(false));
    let done2 = done.clone();
    let h = Builder::new()
        .spawn_on(&rt, move || {
            let mut local = std::hint::black_box(pattern(9));
            let (write_err, read_err) = std::thread::scope(|s| {
                // Everything the thread needs moves to its own stack, except
                // the one reference into ours: its spinning must not touch
                // (and so restore) the compacted stack.
                let local = &mut local;
                let t = s.spawn(move || {
                    while !go2.load(Ordering::Acquire) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    let path = std::env::temp_dir()
                        .join(format!("spindle-compact-efault-{}", std::process::id()));
                    let mut out = std::fs::File::create(&path).unwrap();
                    let w = out.write(&local[..]).map_err(|e| e.raw_os_error());
                    let _ = std::fs::remove_file(&path);
                    let mut zero = std::fs::File::open("/dev/zero").unwrap();
                    let r = zero.read(&mut local[..]).map_err(|e| e.raw_os_error());
                    done2.store(true, Ordering::Release);
                    (w, r)
                });
                rx.recv().unwrap();
                t.join().unwrap()
            });
            (write_err, read_err, local == pattern(9))
        })
        .unwrap();
    wait_compacted(&rt, 1);
    go.store(true, Ordering::Release);
    // The thread's system calls happen while the coroutine stays parked.
    let t0 = Instant::now();
    while !done.load(Ordering::Acquire) {
        assert!(t0.elapsed() < stall_limit(), "the thread never finished");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(rt.stats().compacted, 1, "EFAULT must not restore the stack");
    tx.send(()).unwrap();
    let (w, r, intact) = h.join().unwrap();
    assert_eq!(w, Err(Some(EFAULT)), "write(2) from a compacted stack");
    assert_eq!(r, Err(Some(EFAULT)), "read(2) into a compacted stack");
    assert!(intact, "a failed read(2) changed the compacted bytes");
}

/// By default a coroutine parked on a channel is never compacted (only
/// sockets are, `compact_idle_sockets`).
#[test]
fn by_default_a_channel_park_is_not_compacted() {
    let rt = Runtime::builder()
        .workers(1)
        .compact_idle_sockets(Some(AFTER))
        .build()
        .unwrap();
    let (tx, rx) = chan::bounded::<()>(0);
    let h = spindle::Builder::new()
        .spawn_on(&rt, move || rx.recv().unwrap())
        .unwrap();
    std::thread::sleep(AFTER * 5);
    let stats = rt.stats();
    assert_eq!((stats.compacted, stats.compactions), (0, 0), "{stats:?}");
    tx.send(()).unwrap();
    h.join().unwrap();
}

/// A coroutine that keeps a pattern on its stack and parks reading a silent
/// socket; returns its handle once `rt` has run it, and the peer's end.
fn park_on_a_silent_socket(
    rt: &Runtime,
) -> (spindle::JoinHandle<([u8; 4], bool)>, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let h = Builder::new()
        .spawn_on(rt, move || {
            let local = std::hint::black_box(pattern(7));
            let mut conn = spindle::net::TcpStream::connect(addr).unwrap();
            let mut got = [0u8; 4];
            conn.read_exact(&mut got).unwrap();
            (got, local == pattern(7))
        })
        .unwrap();
    let (peer, _) = listener.accept().unwrap();
    (h, peer)
}

/// The default runtime compacts a coroutine idle on a socket for
/// `DEFAULT_SOCKET_COMPACT_AFTER` (with guard regions; not under the
/// mprotect fallback, where compaction costs mappings), and the woken
/// coroutine reads the bytes and finds its stack as it left it.
#[test]
fn by_default_a_coroutine_idle_on_a_socket_is_compacted() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let (h, mut peer) = park_on_a_silent_socket(&rt);
    if spindle_tests::guard_mode() == spindle::GuardMode::Regions
        && cfg!(target_arch = "x86_64")
        && std::env::var_os("SPINDLE_ASAN").is_none()
    {
        assert!(
            spindle::DEFAULT_SOCKET_COMPACT_AFTER <= Duration::from_secs(5),
            "the bench and this test wait for it"
        );
        wait_compacted(&rt, 1);
    } else {
        std::thread::sleep(spindle::DEFAULT_SOCKET_COMPACT_AFTER * 2);
        let stats = rt.stats();
        assert_eq!(stats.compactions, 0, "{stats:?}");
    }
    peer.write_all(b"ping").unwrap();
    let (got, intact) = h.join().unwrap();
    assert_eq!(&got, b"ping");
    assert!(intact, "the woken coroutine found its stack changed");
    assert_eq!(rt.stats().compacted, 0);
}

/// `compact_idle_sockets(None)` turns it off.
#[test]
fn compact_idle_sockets_none_turns_it_off() {
    let rt = Runtime::builder()
        .workers(1)
        .compact_idle_sockets(None)
        .build()
        .unwrap();
    let (h, mut peer) = park_on_a_silent_socket(&rt);
    std::thread::sleep(AFTER * 10);
    let stats = rt.stats();
    assert_eq!(stats.compactions, 0, "{stats:?}");
    peer.write_all(b"pong").unwrap();
    assert_eq!(h.join().unwrap(), (*b"pong", true));
}

/// A wild write into the guard page of a compacted coroutine is still a
/// guard hit, reported and aborted (in a child process); the restore path
/// does not swallow it.
#[test]
fn a_wild_write_to_a_compacted_coroutines_guard_is_still_reported() {
    const ROLE: &str = "compact-wild";
    if compaction_refused() {
        return; // `runtime`'s callers check the refusal
    }
    if is_child(ROLE) {
        let rt = runtime(2).expect("not refused: checked above");
        let (tx, rx) = chan::bounded::<()>(0);
        let (info_tx, info_rx) = chan::bounded(1);
        let _h = Builder::new()
            .name("victim")
            .spawn_on(&rt, move || {
                info_tx.send(StackInfo::current().unwrap()).unwrap();
                let _ = rx.recv();
            })
            .unwrap();
        let info = info_rx.recv().unwrap();
        wait_compacted(&rt, 1);
        let p = std::ptr::without_provenance_mut::<u8>(info.base);
        // SAFETY: deliberately unsound: the test wants the fault.
        unsafe { p.write_volatile(1) };
        drop(tx);
        return;
    }
    let run = run_command(child_command(
        "a_wild_write_to_a_compacted_coroutines_guard_is_still_reported",
        ROLE,
    ));
    run.assert_ran_one_test();
    assert_eq!(run.signal(), Some(SIGABRT), "\n{run}");
    assert!(
        run.stderr
            .contains("a thread outside any coroutine hit the guard page of coroutine #"),
        "\n{run}"
    );
    assert!(run.stderr.contains("(victim)"), "\n{run}");
}

/// Dropping a runtime unwinds its parked coroutines on their home workers:
/// compacted ones get their stacks back first, and their locals' destructors
/// run with the right values.
#[test]
fn shutdown_restores_compacted_coroutines_before_unwinding_them() {
    struct Guard(u64, [u8; 256], Arc<AtomicU64>);
    impl Drop for Guard {
        fn drop(&mut self) {
            if self.1 == pattern(self.0) {
                self.2.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    const N: u64 = 50;
    let ok = Arc::new(AtomicU64::new(0));
    let Some(rt) = runtime(2) else { return };
    let (tx, rx) = chan::bounded::<()>(0);
    for i in 0..N {
        let (rx, ok) = (rx.clone(), ok.clone());
        drop(
            Builder::new()
                .spawn_on(&rt, move || {
                    let _guard = Guard(i, pattern(i), ok);
                    let _ = rx.recv();
                })
                .unwrap(),
        );
    }
    wait_compacted(&rt, N);
    drop(rt);
    assert_eq!(
        ok.load(Ordering::SeqCst),
        N,
        "a destructor saw the wrong bytes"
    );
    drop(tx);
}

/// A coroutine that parks, is woken and parks again within one millisecond
/// is queued twice for compaction with the same park stamp; it must be
/// compacted once. (Twice, the second copy-out saved the zeros the first
/// left behind: under the mprotect fallback the coroutine woke on a zeroed
/// stack and its worker jumped to address 0, killing the process; with
/// guard regions the first buffer leaked and `compacted` stayed above 0.)
/// Run in a child process, which a crash cannot take the test run down with.
#[test]
fn a_coroutine_parked_twice_in_one_millisecond_is_compacted_once() {
    const ROLE: &str = "compact-twice";
    const N: u64 = 50;
    if compaction_refused() {
        return; // `runtime`'s callers check the refusal
    }
    if !is_child(ROLE) {
        run_child(
            "a_coroutine_parked_twice_in_one_millisecond_is_compacted_once",
            ROLE,
            &[],
        )
        .assert_passed();
        return;
    }
    // One worker: a coroutine's helper runs right after it parks, so the
    // two parks are microseconds apart (within one millisecond for nearly
    // all of the N; one such coroutine is enough).
    let rt = runtime(1).expect("not refused: checked above");
    let (tx, rx) = chan::bounded::<()>(0);
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let rx = rx.clone();
            Builder::new()
                .spawn_on(&rt, move || {
                    let local = std::hint::black_box(pattern(i));
                    let (ping_tx, ping_rx) = chan::bounded::<()>(0);
                    let helper = Builder::new().spawn(move || ping_tx.send(()).unwrap());
                    ping_rx.recv().unwrap(); // parks; the helper wakes it
                    helper.unwrap().join().unwrap();
                    rx.recv().unwrap(); // parks again, until compacted
                    local == pattern(i)
                })
                .unwrap()
        })
        .collect();
    wait_compacted(&rt, N);
    for _ in 0..N {
        tx.send(()).unwrap();
    }
    for h in handles {
        assert!(
            h.join().unwrap(),
            "a woken coroutine found its local changed"
        );
    }
    let stats = rt.stats();
    assert_eq!(
        (stats.compacted, stats.compacted_bytes),
        (0, 0),
        "every compaction undone by one restore: {stats:?}"
    );
}
