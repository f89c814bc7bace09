//! The rest of the crossbeam-shaped channel API: iterators, `len`,
//! `is_empty`, `is_full`, `capacity`, `same_channel`, and the error types
//! (their `Display` texts are crossbeam's, so messages match after a port).

use spindle::chan::{
    bounded, ReadyTimeoutError, RecvError, RecvTimeoutError, SelectTimeoutError, SendError,
    SendTimeoutError, TryReadyError, TryRecvError, TrySelectError, TrySendError,
};
use spindle::Runtime;

#[test]
fn iterators() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    rt.block_on(|| {
        let (tx, rx) = bounded::<u32>(2);
        let producer = spindle::spawn(move || {
            for i in 0..10 {
                tx.send(i).unwrap();
            }
        });
        let got: Vec<u32> = rx.iter().take(3).collect();
        assert_eq!(got, [0, 1, 2]);
        let rest: Vec<u32> = (&rx).into_iter().collect();
        assert_eq!(rest, (3..10).collect::<Vec<_>>());
        producer.join().unwrap();

        let (tx, rx) = bounded::<u32>(4);
        for i in 0..3 {
            tx.send(i).unwrap();
        }
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(rx.try_iter().next(), None, "try_iter stops when empty");
        tx.send(7).unwrap();
        drop(tx);
        let owned: Vec<u32> = rx.into_iter().collect();
        assert_eq!(owned, [7]);
    });
}

#[test]
fn lengths_and_capacity() {
    let (tx, rx) = bounded::<u32>(2);
    assert_eq!((tx.capacity(), rx.capacity()), (Some(2), Some(2)));
    assert!(tx.is_empty() && rx.is_empty() && !rx.is_full());
    tx.send(1).unwrap();
    assert_eq!((tx.len(), rx.len()), (1, 1));
    tx.send(2).unwrap();
    assert!(tx.is_full() && rx.is_full());
    rx.recv().unwrap();
    assert_eq!(rx.len(), 1);

    let (tx, rx) = bounded::<u32>(0);
    assert_eq!(rx.capacity(), Some(0));
    assert!(
        tx.is_empty() && tx.is_full(),
        "a rendezvous channel is both"
    );
    assert_eq!(rx.len(), 0);
}

#[test]
fn same_channel() {
    let (tx1, rx1) = bounded::<u32>(1);
    let (tx2, rx2) = bounded::<u32>(1);
    assert!(tx1.same_channel(&tx1.clone()));
    assert!(rx1.same_channel(&rx1.clone()));
    assert!(!tx1.same_channel(&tx2));
    assert!(!rx1.same_channel(&rx2));
}

#[test]
fn error_texts_and_conversions_match_crossbeam() {
    assert_eq!(
        SendError(1).to_string(),
        "sending on a disconnected channel"
    );
    assert_eq!(format!("{:?}", SendError(1)), "SendError(..)");
    assert_eq!(SendError(3).into_inner(), 3);
    assert_eq!(
        TrySendError::Full(1).to_string(),
        "sending on a full channel"
    );
    assert_eq!(
        TrySendError::Disconnected(1).to_string(),
        "sending on a disconnected channel"
    );
    assert!(TrySendError::Full(1).is_full() && TrySendError::Disconnected(1).is_disconnected());
    assert_eq!(
        SendTimeoutError::Timeout(1).to_string(),
        "timed out waiting on send operation"
    );
    assert_eq!(SendTimeoutError::Timeout(5).into_inner(), 5);
    assert_eq!(
        SendTimeoutError::from(SendError(2)),
        SendTimeoutError::Disconnected(2)
    );
    assert_eq!(
        TrySendError::from(SendError(2)),
        TrySendError::Disconnected(2)
    );
    assert_eq!(
        RecvError.to_string(),
        "receiving on an empty and disconnected channel"
    );
    assert_eq!(
        TryRecvError::Empty.to_string(),
        "receiving on an empty channel"
    );
    assert_eq!(TryRecvError::from(RecvError), TryRecvError::Disconnected);
    assert_eq!(
        RecvTimeoutError::Timeout.to_string(),
        "timed out waiting on receive operation"
    );
    assert_eq!(
        RecvTimeoutError::Disconnected.to_string(),
        "channel is empty and disconnected"
    );
    assert_eq!(
        RecvTimeoutError::from(RecvError),
        RecvTimeoutError::Disconnected
    );
    assert!(RecvTimeoutError::Timeout.is_timeout());
    assert_eq!(
        TrySelectError.to_string(),
        "all operations in select would block"
    );
    assert_eq!(
        SelectTimeoutError.to_string(),
        "timed out waiting on select"
    );
    assert_eq!(format!("{TryReadyError:?}"), "TryReadyError");
    assert_eq!(format!("{ReadyTimeoutError:?}"), "ReadyTimeoutError");
    // They are errors, so `?` into Box<dyn Error> works.
    fn boxed() -> Result<(), Box<dyn std::error::Error>> {
        let (tx, rx) = bounded::<u32>(0);
        drop(rx);
        tx.send(1)?;
        Ok(())
    }
    assert!(boxed().is_err());
}
