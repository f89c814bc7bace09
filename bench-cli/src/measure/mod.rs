//! How things are measured: the tools every subcommand shares.
//!
//! * [`procfs`]: what the kernel says about memory (RSS, page tables,
//!   MemAvailable, limits);
//! * [`alloc`]: the counting allocator that splits RSS into "runtime heap"
//!   and the rest;
//! * [`breakdown`]: resident memory split by mapping kind, page tables
//!   and malloc's own figures (`mem --breakdown`);
//! * [`child`]: running this binary as a child process (a fresh heap for
//!   each memory sample; an overflow that may abort);
//! * [`preflight`]: refusing a run that cannot fit, before it starts;
//! * [`stats`]: R samples into median, min and max;
//! * [`header`]: the machine a number was measured on;
//! * [`pipes`]: OS threads ping-ponging over pipes, the kernel's switch;
//! * [`goref`]: the Go reference program, built and run;
//! * [`row`]: one result row, measured or skipped;
//! * [`loopback`], [`netsys`], [`server`] and [`sockets`]: the `net`
//!   client (threads and epoll on loopback), its system calls, the server
//!   child it drives, and the kernel's socket figures and limits.
//!
//! Nothing here prints: presenting is [`present`](crate::present)'s job.

pub mod alloc;
pub mod breakdown;
pub mod child;
pub mod goref;
pub mod header;
pub mod loopback;
pub mod netsys;
pub mod pipes;
pub mod preflight;
pub mod procfs;
pub mod row;
pub mod server;
pub mod sockets;
pub mod stats;
