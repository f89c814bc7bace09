//! Synchronisation primitives that the `loom` model checker can replace.
//!
//! The park/unpark state machine, the wait cells and the channel core are
//! written against these names. A normal build uses `std`; a build with
//! `RUSTFLAGS="--cfg loom"` swaps in loom's versions so that `cargo test
//! --lib loom` explores every interleaving of those protocols (as tokio does).

#[cfg(loom)]
pub(crate) use loom::sync::{
    atomic::{fence, AtomicBool, AtomicU32, AtomicU8, AtomicUsize},
    Arc, Condvar, Mutex, MutexGuard,
};

#[cfg(not(loom))]
pub(crate) use std::sync::{
    atomic::{fence, AtomicBool, AtomicU32, AtomicU8, AtomicUsize},
    Arc, Condvar, Mutex, MutexGuard,
};

/// Lock a mutex, ignoring poisoning: the runtime's critical sections never
/// panic while holding a lock with broken invariants.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// [`lock`] for the `std` mutexes of modules that loom does not model.
pub(crate) fn lock_std<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
