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
//! A fault in a guard page is not always an overflow: a wild write from
//! elsewhere (another coroutine, a thread) can land in it too. Then the line
//! names both sides instead:
//!
//! ```text
//! spindle: coroutine #7 (worker) hit the guard page of coroutine #42 (parser)
//! ```
//!
//! **Overflow or wild write?** The handler asks where the faulting thread's
//! stack pointer was, from the registers the kernel saved (`ucontext_t`),
//! not from a "current coroutine" thread-local (see below). An overflow
//! faults with the stack pointer *at* the guard page: inside it (stack
//! probes move it page by page), just above it (a push, a store into a frame
//! that ends there), or less than a page below it (one unprobed frame
//! allocation that jumped over the page boundary). So a guard hit is an
//! overflow if the stack pointer lies within one page of the guard page,
//! and a wild write otherwise. This needs no bookkeeping on the switch path
//! and reads only the signal frame. (On an architecture where we do not read
//! the saved stack pointer, every guard hit is reported as an overflow.)
//!
//! **The name** is escaped and cut when the label is written, at spawn
//! (`escape_name`): control characters become `\n`, `\u{1b}`..., so a name
//! cannot forge a second line, and the cut falls on a character boundary.
//! The handler only copies the stored bytes. The label is not in the stack
//! (whose pages may have been released while its coroutine was parked) but
//! in its slab's side table, found by slot index (`slab.rs`).
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
//! * **It restores compacted stacks.** A fault inside a compacted stack
//!   (not its guard page) is another thread touching a parked coroutine's
//!   stack: the handler copies the bytes back and returns, and the access
//!   runs again (`compact/mod.rs`).
//! * **It chains.** A fault that is not a guard hit goes to the handler that
//!   was installed before ours (Rust's own main-thread overflow message, a
//!   debugger, or the default action), so real segfaults behave as before.

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::sync::Once;

use super::page::page_size;
use super::slab::{registry, LABEL_NAME_BYTES};

/// Write `name` into `out` as the report prints it: backslashes doubled,
/// control characters escaped as Rust does (`\n`, `\u{1b}`), everything
/// else as is; cut before the first character or escape that does not fit
/// whole. Returns the bytes written. Runs at spawn, not in the handler.
pub(crate) fn escape_name(name: &str, out: &mut [u8]) -> usize {
    let mut len = 0;
    for c in name.chars() {
        let mut piece = [0u8; 12];
        let n = if c == '\\' || c.is_control() {
            let mut n = 0;
            for e in c.escape_default() {
                n += e.encode_utf8(&mut piece[n..]).len();
            }
            n
        } else {
            c.encode_utf8(&mut piece).len()
        };
        if len + n > out.len() {
            break;
        }
        out[len..len + n].copy_from_slice(&piece[..n]);
        len += n;
    }
    len
}

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
    if let Some(guarded) = registry::find(addr) {
        if addr < guarded.base + page_size() {
            let mut buf = LineBuf::new();
            buf.push(b"spindle: ");
            // SAFETY: the kernel passes the interrupted context to an
            // SA_SIGINFO handler.
            match unsafe { stack_pointer(ctx) } {
                Some(sp) if !near_guard(sp, guarded.base) => {
                    match registry::find(sp) {
                        Some(culprit) => buf.push_coroutine(culprit),
                        None => buf.push(b"a thread outside any coroutine"),
                    }
                    buf.push(b" hit the guard page of ");
                    buf.push_coroutine(guarded);
                    buf.push(b"\n");
                }
                _ => {
                    buf.push_coroutine(guarded);
                    buf.push(b" overflowed its ");
                    buf.push_u64((guarded.size >> 10) as u64);
                    buf.push(b" KiB stack\n");
                }
            }
            // SAFETY: write(2) and abort(3) are async-signal-safe.
            unsafe {
                libc::write(2, buf.bytes.as_ptr().cast(), buf.len);
                libc::abort();
            }
        }
    }
    // A fault in a compacted stack (`compact/`): restore it and retry.
    if sig == libc::SIGSEGV && super::compact::restore_on_fault(addr) {
        return;
    }
    chain(sig, info, ctx);
}

/// Is a stack pointer at `sp` within one page of the guard page of the slot
/// at `slot_base` (below it, in it, or above it)? Then the fault there is
/// that stack's overflow (module docs).
fn near_guard(sp: usize, slot_base: usize) -> bool {
    let page = page_size();
    sp >= slot_base.saturating_sub(page) && sp < slot_base + 2 * page
}

/// The interrupted thread's stack pointer, from the saved registers.
///
/// # Safety
/// `ctx` is the `ucontext_t` the kernel passed to an `SA_SIGINFO` handler.
#[allow(unused_variables)]
unsafe fn stack_pointer(ctx: *mut libc::c_void) -> Option<usize> {
    let uc = ctx as *const libc::ucontext_t;
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    // SAFETY: the caller passes the kernel's ucontext_t.
    return Some(unsafe { (*uc).uc_mcontext.gregs[libc::REG_RSP as usize] } as usize);
    #[cfg(all(target_os = "linux", target_arch = "aarch64"))]
    // SAFETY: the caller passes the kernel's ucontext_t.
    return Some(unsafe { (*uc).uc_mcontext.sp } as usize);
    #[allow(unreachable_code)]
    None
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
    bytes: [u8; 256],
    len: usize,
}

impl LineBuf {
    fn new() -> Self {
        LineBuf {
            bytes: [0; 256],
            len: 0,
        }
    }

    fn push(&mut self, s: &[u8]) {
        let n = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
    }

    /// `coroutine #<id> (<name>)` of a slot, from its label.
    fn push_coroutine(&mut self, slot: registry::Found) {
        let label = slot.label;
        // SAFETY: the label lies in the slab's side table, which lives while
        // the slab is registered, and was written when the slot was handed
        // out (or zeroed when the slab was reserved).
        let (id, name_len) = unsafe { ((*label).id, (*label).name_len as usize) };
        self.push(b"coroutine #");
        self.push_u64(id);
        self.push(b" (");
        if name_len == 0 {
            self.push(b"unnamed");
        } else {
            // SAFETY: as above; name_len was clamped to the buffer when written.
            self.push(unsafe { &(&(*label).name)[..name_len.min(LABEL_NAME_BYTES)] });
        }
        self.push(b")");
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

    fn escaped(name: &str) -> String {
        let mut out = [0u8; LABEL_NAME_BYTES];
        let n = escape_name(name, &mut out);
        String::from_utf8(out[..n].to_vec()).expect("escape_name cut a character")
    }

    #[test]
    fn names_are_escaped_and_cut_on_a_character_boundary() {
        assert_eq!(escaped("parser"), "parser");
        assert_eq!(escaped("a\nb\t\\\u{1b}"), "a\\nb\\t\\\\\\u{1b}");
        // 1 + 7 * 2 bytes fit in 16; the 8th 'é' would not.
        assert_eq!(
            escaped(&format!("x{}", "é".repeat(20))),
            format!("x{}", "é".repeat(7))
        );
        // An escape is never cut in half: 15 bytes, then `\n` does not fit.
        assert_eq!(escaped(&format!("{}\n", "y".repeat(15))), "y".repeat(15));
    }

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
