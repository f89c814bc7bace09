//! Channel errors, shaped exactly like crossbeam-channel's (same names,
//! variants, `Display` texts and conversions), so that code matching on them
//! ports by changing the import.

use std::error::Error;
use std::fmt;

/// `send` failed because every receiver is gone; the value comes back.
#[derive(PartialEq, Eq, Clone, Copy)]
pub struct SendError<T>(pub T);

/// Why `try_send` did not send; the value comes back.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum TrySendError<T> {
    /// The channel is full (a rendezvous channel: no receiver is waiting).
    Full(T),
    /// Every receiver is gone.
    Disconnected(T),
}

/// Why `send_timeout` / `send_deadline` did not send; the value comes back.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum SendTimeoutError<T> {
    /// The deadline passed with the channel still full.
    Timeout(T),
    /// Every receiver is gone.
    Disconnected(T),
}

/// `recv` failed because the channel is empty and every sender is gone.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct RecvError;

/// Why `try_recv` returned nothing.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub enum TryRecvError {
    /// Nothing to receive right now.
    Empty,
    /// Empty, and every sender is gone.
    Disconnected,
}

/// Why `recv_timeout` / `recv_deadline` returned nothing.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub enum RecvTimeoutError {
    /// The deadline passed with the channel still empty.
    Timeout,
    /// Empty, and every sender is gone.
    Disconnected,
}

/// `Select::try_select` found no operation ready.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct TrySelectError;

/// `Select::select_timeout` / `select_deadline` timed out.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct SelectTimeoutError;

/// `Select::try_ready` found no operation ready.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct TryReadyError;

/// `Select::ready_timeout` / `ready_deadline` timed out.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct ReadyTimeoutError;

const DISCONNECTED_SEND: &str = "sending on a disconnected channel";
const DISCONNECTED_RECV: &str = "receiving on an empty and disconnected channel";

/// `Debug` without a `T: Debug` bound (the value is not shown), `Display`
/// with a fixed text per variant, and `Error`: the shape of every error here.
macro_rules! describe {
    ($ty:ident<T> { $($variant:pat => $debug:expr, $text:expr;)* }) => {
        impl<T> fmt::Debug for $ty<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self { $($variant => $debug,)* })
            }
        }
        impl<T> fmt::Display for $ty<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self { $($variant => $text,)* })
            }
        }
        impl<T: Send> Error for $ty<T> {}
    };
    ($ty:ident { $($variant:pat => $text:expr;)* }) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self { $($variant => $text,)* })
            }
        }
        impl Error for $ty {}
    };
}

describe!(SendError<T> { SendError(_) => "SendError(..)", DISCONNECTED_SEND; });
describe!(TrySendError<T> {
    TrySendError::Full(_) => "Full(..)", "sending on a full channel";
    TrySendError::Disconnected(_) => "Disconnected(..)", DISCONNECTED_SEND;
});
describe!(SendTimeoutError<T> {
    SendTimeoutError::Timeout(_) => "SendTimeoutError(..)", "timed out waiting on send operation";
    SendTimeoutError::Disconnected(_) => "SendTimeoutError(..)", DISCONNECTED_SEND;
});
describe!(RecvError { RecvError => DISCONNECTED_RECV; });
describe!(TryRecvError {
    TryRecvError::Empty => "receiving on an empty channel";
    TryRecvError::Disconnected => DISCONNECTED_RECV;
});
describe!(RecvTimeoutError {
    RecvTimeoutError::Timeout => "timed out waiting on receive operation";
    RecvTimeoutError::Disconnected => "channel is empty and disconnected";
});
describe!(TrySelectError { TrySelectError => "all operations in select would block"; });
describe!(SelectTimeoutError { SelectTimeoutError => "timed out waiting on select"; });
describe!(TryReadyError { TryReadyError => "all operations in select would block"; });
describe!(ReadyTimeoutError { ReadyTimeoutError => "timed out waiting on ready"; });

impl<T> SendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> TrySendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(v) | TrySendError::Disconnected(v) => v,
        }
    }
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }
    pub fn is_disconnected(&self) -> bool {
        matches!(self, TrySendError::Disconnected(_))
    }
}

impl<T> SendTimeoutError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            SendTimeoutError::Timeout(v) | SendTimeoutError::Disconnected(v) => v,
        }
    }
    pub fn is_timeout(&self) -> bool {
        matches!(self, SendTimeoutError::Timeout(_))
    }
    pub fn is_disconnected(&self) -> bool {
        matches!(self, SendTimeoutError::Disconnected(_))
    }
}

impl TryRecvError {
    pub fn is_empty(&self) -> bool {
        matches!(self, TryRecvError::Empty)
    }
    pub fn is_disconnected(&self) -> bool {
        matches!(self, TryRecvError::Disconnected)
    }
}

impl RecvTimeoutError {
    pub fn is_timeout(&self) -> bool {
        matches!(self, RecvTimeoutError::Timeout)
    }
    pub fn is_disconnected(&self) -> bool {
        matches!(self, RecvTimeoutError::Disconnected)
    }
}

impl<T> From<SendError<T>> for TrySendError<T> {
    fn from(SendError(v): SendError<T>) -> Self {
        TrySendError::Disconnected(v)
    }
}

impl<T> From<SendError<T>> for SendTimeoutError<T> {
    fn from(SendError(v): SendError<T>) -> Self {
        SendTimeoutError::Disconnected(v)
    }
}

impl From<RecvError> for TryRecvError {
    fn from(_: RecvError) -> Self {
        TryRecvError::Disconnected
    }
}

impl From<RecvError> for RecvTimeoutError {
    fn from(_: RecvError) -> Self {
        RecvTimeoutError::Disconnected
    }
}
