//! Stack overflow reports: a guard-page hit becomes one line and an abort.
//!
//! When a coroutine runs off the low end of its stack it touches the guard
//! page and the kernel raises SIGSEGV (SIGBUS on some systems). Like Go's
//! `fatal error: stack overflow`, we print one line and abort:
//!
//! ```text
//! spindle: coroutine #42 (parser) overflowed its 256 KiB stack
//! ```
//!
//! Rules the handler lives by:
//!
//! * **It runs on an alternate signal stack.** The faulting stack has no room
//!   left, so every thread that runs coroutines has a `sigaltstack`
//!   ([`ensure_altstack`]).
//! * **It finds the slot by fault address**, through the lock-free slab
//!   registry, never through a "current coroutine" pointer: a coroutine's
//!   stack is also used outside `resume` (a cancellation unwind, say).
//! * **It is async-signal-safe**: atomics, arithmetic, a stack buffer and
//!   `write(2)`; no allocation, no locks, no formatting machinery.
//! * **It chains.** A fault that is not a guard hit goes to the handler that
//!   was installed before ours (Rust's own main-thread overflow message, a
//!   debugger, or the default action), so real segfaults behave as before.

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::sync::Once;

use super::page::page_size;
use super::slab::{registry, Label, LABEL_BYTES, LABEL_NAME_BYTES};

/// The handlers we replaced, one per signal, written once before ours is live.
static mut PREVIOUS_SEGV: MaybeUninit<libc::sigaction> = MaybeUninit::uninit();
static mut PREVIOUS_BUS: MaybeUninit<libc::sigaction> = MaybeUninit::uninit();
static INSTALL: Once = Once::new();

/// Install the SIGSEGV/SIGBUS handler for the process (idempotent).
pub(crate) fn install_handler() {
    INSTALL.call_once(|| {
        // SAFETY: PREVIOUS_* are written here exactly once, before sigaction
        // makes `handle_fault` reachable; afterwards they are only read.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handle_fault as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            let prev_segv = &raw mut PREVIOUS_SEGV;
            let prev_bus = &raw mut PREVIOUS_BUS;
            libc::sigaction(libc::SIGSEGV, &action, (*prev_segv).as_mut_ptr());
            libc::sigaction(libc::SIGBUS, &action, (*prev_bus).as_mut_ptr());
        }
    });
}

thread_local! {
    /// The alternate signal stack this thread owns, if we had to make one.
    static ALTSTACK: Cell<usize> = const { Cell::new(0) };
}

/// Make sure the calling thread has an alternate signal stack. Rust's std
/// already gives its threads one; we add ours only where none is set. The
/// memory is deliberately kept for the life of the process, because a signal
/// can arrive while the thread is exiting.
pub(crate) fn ensure_altstack() {
    // SAFETY: stack_t is plain data; all-zero is a valid value.
    let mut current: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: sigaltstack with a null new stack only reads the current one.
    unsafe { libc::sigaltstack(std::ptr::null(), &mut current) };
    if current.ss_flags & libc::SS_DISABLE == 0 || ALTSTACK.with(|a| a.get()) != 0 {
        return;
    }
    let size = (64 << 10).max(libc::SIGSTKSZ).next_multiple_of(page_size());
    // SAFETY: a fresh anonymous mapping owned by this thread from now on.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return; // Overflows on this thread will then crash without a report.
    }
    let new = libc::stack_t {
        ss_sp: p,
        ss_flags: 0,
        ss_size: size,
    };
    // SAFETY: `new` describes memory we just mapped and never unmap.
    unsafe { libc::sigaltstack(&new, std::ptr::null_mut()) };
    ALTSTACK.with(|a| a.set(p as usize));
}

/// The signal handler. Async-signal-safe (see module docs).
extern "C" fn handle_fault(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    if let Some((slot_base, slot_size)) = registry::find_slot(addr) {
        if addr < slot_base + page_size() {
            report_overflow(slot_base, slot_size);
        }
    }
    chain(sig, info, ctx);
}

/// Write the one-line report and abort. Never returns.
fn report_overflow(slot_base: usize, slot_size: usize) -> ! {
    let label = (slot_base + slot_size - LABEL_BYTES) as *const Label;
    // SAFETY: the label lies in the slot's top page, which is mapped (the
    // slab is registered) and was written when the slot was handed out.
    let (id, name_len) = unsafe { ((*label).id, (*label).name_len as usize) };
    let name: &[u8] = if name_len == 0 {
        b"unnamed"
    } else {
        // SAFETY: as above; name_len was clamped to the buffer when written.
        unsafe { &(&(*label).name)[..name_len.min(LABEL_NAME_BYTES)] }
    };
    let mut buf = LineBuf::new();
    buf.push(b"spindle: coroutine #");
    buf.push_u64(id);
    buf.push(b" (");
    buf.push(name);
    buf.push(b") overflowed its ");
    buf.push_u64((slot_size >> 10) as u64);
    buf.push(b" KiB stack\n");
    // SAFETY: write(2) and abort(3) are async-signal-safe.
    unsafe {
        libc::write(2, buf.bytes.as_ptr().cast(), buf.len);
        libc::abort();
    }
}

/// Hand a fault that is not ours to whoever handled it before us.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: PREVIOUS_* were initialised before our handler was installed.
    let prev = unsafe {
        if sig == libc::SIGBUS {
            (&raw const PREVIOUS_BUS).read().assume_init()
        } else {
            (&raw const PREVIOUS_SEGV).read().assume_init()
        }
    };
    let handler = prev.sa_sigaction;
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // Restore the default action and return: the faulting instruction
        // runs again and the kernel applies it (core dump, exit status).
        // SAFETY: signal(2) is async-signal-safe.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            // SAFETY: the previous owner installed this as an SA_SIGINFO handler.
            unsafe { std::mem::transmute(handler) };
        f(sig, info, ctx);
    } else {
        // SAFETY: the previous owner installed this as a plain handler.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
        f(sig);
    }
}

/// A fixed-size line buffer on the signal stack.
struct LineBuf {
    bytes: [u8; 160],
    len: usize,
}

impl LineBuf {
    fn new() -> Self {
        LineBuf {
            bytes: [0; 160],
            len: 0,
        }
    }

    fn push(&mut self, s: &[u8]) {
        let n = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
    }

    fn push_u64(&mut self, mut v: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.push(&digits[i..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_buffer_formats_like_the_report() {
        let mut b = LineBuf::new();
        b.push(b"#");
        b.push_u64(0);
        b.push(b" ");
        b.push_u64(18446744073709551615);
        assert_eq!(&b.bytes[..b.len], b"#0 18446744073709551615");
    }
}
