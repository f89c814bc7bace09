//! Iterators over a receiver, as crossbeam-channel's: [`Iter`] waits for
//! each message and ends when the channel is closed and drained; [`TryIter`]
//! takes what is there now and ends at the first would-block.

use super::Receiver;

/// Blocking iterator: `Receiver::iter`, or `for msg in &rx`.
pub struct Iter<'a, T> {
    pub(crate) rx: &'a Receiver<T>,
}

/// Non-blocking iterator: `Receiver::try_iter`.
pub struct TryIter<'a, T> {
    pub(crate) rx: &'a Receiver<T>,
}

/// Owning blocking iterator: `for msg in rx`.
pub struct IntoIter<T> {
    pub(crate) rx: Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<T> std::iter::FusedIterator for Iter<'_, T> {}
impl<T> std::iter::FusedIterator for IntoIter<T> {}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    fn into_iter(self) -> IntoIter<T> {
        IntoIter { rx: self }
    }
}

macro_rules! opaque_debug {
    ($($ty:ident),*) => {$(
        impl<T> std::fmt::Debug for $ty<'_, T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(concat!(stringify!($ty), " { .. }"))
            }
        }
    )*};
}
opaque_debug!(Iter, TryIter);

impl<T> std::fmt::Debug for IntoIter<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad("IntoIter { .. }")
    }
}
