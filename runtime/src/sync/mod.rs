//! Synchronisation for coroutines and threads alike.
//!
//! Like the channels, these park a coroutine (without blocking its worker)
//! and block a plain thread.

mod wait_group;

pub use wait_group::WaitGroup;
