//! A coroutine cancelled at shutdown while parked in a channel wait leaves
//! no entry behind in the channel's wait queues.
//!
//! The channel stays open through handles that plain threads hold. Before
//! the fix, the cancelled wait's entry stayed queued: a later send from a
//! plain thread "delivered" its value to the dead coroutine and returned
//! `Ok` (the value was lost), and a later receive took the value of a
//! cancelled sender, whose send never returned.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use spindle::chan::{self, Select};
use spindle::Runtime;
use spindle_tests::watchdog;

const LONG: Duration = Duration::from_secs(2);

/// Wait until the operation `add` puts in a select looks ready: here, until
/// a coroutine is parked on the other end of a rendezvous channel.
fn until_ready<'a>(add: impl Fn(&mut Select<'a>)) {
    loop {
        let mut sel = Select::new();
        add(&mut sel);
        if sel.try_ready().is_ok() {
            return;
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// Send `v` from a new plain thread (a rendezvous send blocks until taken).
fn send_later(tx: chan::Sender<u32>, v: u32) -> thread::JoinHandle<()> {
    thread::spawn(move || tx.send(v).expect("the plain receiver is alive"))
}

#[test]
fn a_cancelled_receive_leaves_no_entry_behind() {
    watchdog("cancelled recv", |_| {
        let rt = Arc::new(Runtime::builder().workers(1).build().unwrap());
        let (tx, rx) = chan::bounded::<u32>(0);
        let rx2 = rx.clone();
        rt.spawn(move || rx2.recv().ok());
        until_ready(|s| {
            s.send(&tx);
        });
        drop(rt);
        let sender = send_later(tx, 7);
        assert_eq!(
            rx.recv_timeout(LONG),
            Ok(7),
            "the value reaches the live receiver"
        );
        sender.join().unwrap();
    });
}

#[test]
fn a_cancelled_select_leaves_no_entry_behind() {
    watchdog("cancelled select", |_| {
        let rt = Arc::new(Runtime::builder().workers(1).build().unwrap());
        let (tx1, rx1) = chan::bounded::<u32>(0);
        let (tx2, rx2) = chan::bounded::<u32>(0);
        let (r1, r2) = (rx1.clone(), rx2.clone());
        rt.spawn(move || {
            spindle::select! {
                recv(r1) -> v => v.ok(),
                recv(r2) -> v => v.ok(),
            }
        });
        until_ready(|s| {
            s.send(&tx1);
        });
        until_ready(|s| {
            s.send(&tx2);
        });
        drop(rt);
        let s1 = send_later(tx1, 1);
        assert_eq!(
            rx1.recv_timeout(LONG),
            Ok(1),
            "channel 1 reaches the live receiver"
        );
        let s2 = send_later(tx2, 2);
        assert_eq!(
            rx2.recv_timeout(LONG),
            Ok(2),
            "channel 2 reaches the live receiver"
        );
        s1.join().unwrap();
        s2.join().unwrap();
    });
}

#[test]
fn a_cancelled_send_is_not_received_later() {
    watchdog("cancelled send", |_| {
        let rt = Arc::new(Runtime::builder().workers(1).build().unwrap());
        let (tx, rx) = chan::bounded::<u32>(0);
        let tx2 = tx.clone();
        rt.spawn(move || tx2.send(1).ok());
        until_ready(|s| {
            s.recv(&rx);
        });
        drop(rt);
        let sender = send_later(tx, 2);
        assert_eq!(
            rx.recv_timeout(LONG),
            Ok(2),
            "the live sender's value, not the cancelled one"
        );
        sender.join().unwrap();
        assert!(rx.recv().is_err(), "every sender is gone");
    });
}

#[test]
fn a_cancelled_send_on_a_closed_channel_is_not_received() {
    watchdog("cancelled send, no live sender", |_| {
        let rt = Arc::new(Runtime::builder().workers(1).build().unwrap());
        let (tx, rx) = chan::bounded::<u32>(0);
        rt.spawn(move || tx.send(1).ok());
        until_ready(|s| {
            s.recv(&rx);
        });
        drop(rt);
        assert!(
            rx.recv_timeout(LONG).is_err(),
            "the cancelled send never happened"
        );
    });
}

#[test]
fn a_cancelled_select_send_is_not_paired_later() {
    watchdog("cancelled select send", |_| {
        let rt = Arc::new(Runtime::builder().workers(1).build().unwrap());
        let (tx1, rx1) = chan::bounded::<u32>(0);
        let (tx2, rx2) = chan::bounded::<u32>(0);
        let (t1, t2) = (tx1.clone(), tx2.clone());
        rt.spawn(move || {
            spindle::select! {
                send(t1, 10) -> r => r.is_ok(),
                send(t2, 20) -> r => r.is_ok(),
            }
        });
        until_ready(|s| {
            s.recv(&rx1);
        });
        until_ready(|s| {
            s.recv(&rx2);
        });
        drop(rt);
        let sender = send_later(tx1, 1);
        assert_eq!(rx1.recv_timeout(LONG), Ok(1), "the live sender's value");
        sender.join().unwrap();
        drop(tx2);
        assert!(
            rx2.recv_timeout(LONG).is_err(),
            "every sender of channel 2 is gone"
        );
    });
}

/// Counts its drops.
struct Counted(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The value of a cancelled send is dropped at the cancellation, not left
/// in the dead coroutine's wait cell.
#[test]
fn a_cancelled_send_drops_its_value() {
    watchdog("cancelled send drops", |_| {
        let rt = Arc::new(Runtime::builder().workers(1).build().unwrap());
        let drops = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (tx, rx) = chan::bounded::<Counted>(0);
        let value = Counted(drops.clone());
        rt.spawn(move || tx.send(value).is_ok());
        until_ready(|s| {
            s.recv(&rx);
        });
        drop(rt);
        assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(rx.recv().is_err(), "the cancelled send never happened");
    });
}
