//! spindle's hot loops in a crate of their own, built as a user's crate is.
//!
//! `spindle-bench` is a crate that depends on `spindle` with Cargo's default
//! release profile, so its loops should compile to what a user's program
//! gets. This program checks that claim from outside the workspace: the same
//! loops, in a crate whose only dependency is `spindle` by path, built with
//! the default profile. `count.sh` runs it and `spindle-bench switch --row`
//! under callgrind and prints instructions per operation for both;
//! `docs/notes/runtime-figures.md` (*What a user's crate gets*) has the
//! figures. Run from the repository root:
//!
//!     cargo build --release --manifest-path docs/tools/downstream/Cargo.toml
//!     docs/tools/downstream/target/release/downstream pingpong 1000000
//!
//! Modes (N operations on a one-worker runtime, `WORKERS` to change that):
//! `pingpong` (N one-way hand-offs over two rendezvous channels), `yield`
//! (N yields by two coroutines), `select` (`pingpong` receiving with
//! `select!` over two channels), `spawnjoin` (N spawn+join pairs). Prints
//! the wall-clock ns per operation, start-up excluded.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(Ok(n))) = (args.get(1), args.get(2).map(|n| n.parse::<u64>())) else {
        eprintln!("usage: downstream pingpong|yield|select|spawnjoin N");
        std::process::exit(2);
    };
    let run: fn(u64) = match mode.as_str() {
        "pingpong" => pingpong,
        "yield" => yields,
        "select" => select,
        "spawnjoin" => spawnjoin,
        _ => {
            eprintln!("downstream: unknown mode {mode:?}");
            std::process::exit(2);
        }
    };
    let workers = std::env::var("WORKERS").map_or(1, |w| w.parse().expect("WORKERS: a number"));
    let rt = spindle::Runtime::builder()
        .workers(workers)
        .build()
        .expect("runtime");
    let ns = rt.block_on(move || {
        let t0 = std::time::Instant::now();
        run(n);
        t0.elapsed().as_nanos() as f64 / n.max(1) as f64
    });
    println!("{ns:.1} ns/op");
}

/// N one-way hand-offs: this coroutine sends, an echo coroutine sends back.
fn pingpong(n: u64) {
    let (ping_tx, ping_rx) = spindle::chan::bounded::<u64>(0);
    let (pong_tx, pong_rx) = spindle::chan::bounded::<u64>(0);
    let echo = spindle::spawn(move || {
        while let Ok(v) = ping_rx.recv() {
            if pong_tx.send(v).is_err() {
                break;
            }
        }
    });
    for i in 0..n / 2 {
        if ping_tx.send(i).is_err() || pong_rx.recv().is_err() {
            break;
        }
    }
    drop(ping_tx);
    let _ = echo.join();
}

/// N yields, by two coroutines taking turns.
fn yields(n: u64) {
    let each = n / 2;
    let body = move || {
        for _ in 0..each {
            spindle::yield_now();
        }
    };
    let a = spindle::spawn(body);
    let b = spindle::spawn(body);
    let _ = a.join();
    let _ = b.join();
}

/// `pingpong`, every receive a `select!` over its channel and an idle one.
fn select(n: u64) {
    let (ping_tx, ping_rx) = spindle::chan::bounded::<u64>(0);
    let (pong_tx, pong_rx) = spindle::chan::bounded::<u64>(0);
    let (_idle_tx, idle_rx) = spindle::chan::bounded::<u64>(0);
    let idle = idle_rx.clone();
    let echo = spindle::spawn(move || loop {
        let v = spindle::select! {
            recv(ping_rx) -> v => v,
            recv(idle) -> v => v,
        };
        if v.map(|v| pong_tx.send(v)).is_err() {
            break;
        }
    });
    for i in 0..n / 2 {
        if ping_tx.send(i).is_err() {
            break;
        }
        let back = spindle::select! {
            recv(pong_rx) -> v => v,
            recv(idle_rx) -> v => v,
        };
        if back.is_err() {
            break;
        }
    }
    drop(ping_tx);
    let _ = echo.join();
}

/// N spawn+join pairs, one at a time.
fn spawnjoin(n: u64) {
    for i in 0..n {
        let _ = spindle::spawn(move || std::hint::black_box(i)).join();
    }
}
