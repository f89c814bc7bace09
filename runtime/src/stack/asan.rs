//! AddressSanitizer and reused stacks.
//!
//! ASan keeps a shadow byte for every 8 bytes of memory, and an instrumented
//! function poisons the redzones around its locals on entry and clears them
//! on return. A coroutine's frames do not always return: a panic that
//! unwinds across a coroutine stack reaches `__asan_handle_no_return`, which
//! ASan ignores on a stack it does not know ("stack type: default"). So a
//! finished coroutine can leave poisoned shadow behind in its slot, and the
//! next coroutine built there (corosensei writes its initial frame with
//! uninstrumented stores) is then reported as a stack-buffer-overflow that
//! never happened. Clearing the slot's shadow when a stack is handed out
//! removes that stale state.
//!
//! Only in builds made with `--cfg spindle_asan` (`.ci/run` sets it next to
//! `-Zsanitizer=address`); everywhere else this is an empty inline function.

use super::Stack;

#[cfg(spindle_asan)]
extern "C" {
    fn __asan_unpoison_memory_region(addr: *const std::ffi::c_void, size: usize);
}

/// Clear ASan's shadow for everything above the guard page of `stack`.
#[cfg(spindle_asan)]
pub(crate) fn forget_stale_poison(stack: &Stack) {
    let (addr, len) = stack.whole_range();
    // SAFETY: the range is this stack's own mapped slot above its guard page;
    // unpoisoning only changes ASan's shadow bytes, never the memory itself.
    unsafe { __asan_unpoison_memory_region(addr as *const std::ffi::c_void, len) };
}

/// Without ASan there is nothing to clear.
#[cfg(not(spindle_asan))]
#[inline(always)]
pub(crate) fn forget_stale_poison(_stack: &Stack) {}
