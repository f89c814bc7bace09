//! Shrinking: a parked coroutine gives back the stack pages below its frames.
//!
//! A stack grows by demand paging and, until now, shrank only when its
//! coroutine finished. A long-lived coroutine that once recursed 200 KiB
//! deep kept 200 KiB while it waited. But everything below a parked
//! coroutine's stack pointer is dead: nothing may read it before the
//! coroutine runs again, and when it does, its next frames overwrite it. So
//! those pages can be released with `MADV_DONTNEED`; the next touch gets a
//! fresh zero page (Go shrinks stacks too, at GC time, by copying them to a
//! smaller one; spindle cannot move a stack, so it releases the dead part).
//!
//! **Where the stack pointer is.** corosensei keeps the stack pointer of a
//! suspended coroutine to itself. So the coroutine records it just before
//! it switches out (`sched/context.rs`, `suspend`): one inline read of the
//! `rsp`/`sp` register ([`stack_pointer`]) and one plain store into its
//! heap task state (no system call, no locked instruction). The switch
//! itself then writes a little below that point: the frame of corosensei's
//! `Yielder::suspend` if it is not inlined, and the registers its
//! `switch_yield` saves: `push rbp; push rbx; push rax` (24 bytes) on
//! x86_64 (corosensei 0.3.4, `src/arch/x86_64.rs`), `stp x19, x29, [sp,
//! #-32]!` (32 bytes) on aarch64 (`src/arch/aarch64.rs`). [`MARGIN`] keeps
//! 256 bytes below the recorded point on both; the unit test below measures
//! how deep the switch really writes and fails if that is more.
//!
//! **The word.** The task keeps one *shrink word*: the recorded stack
//! pointer, with two flag bits in its low bits (it is 16-byte aligned when
//! stored): [`SEEN`] (a shrink pass has seen the coroutine parked at this
//! point once) and [`SHRUNK`] (its dead pages are released). Every switch
//! out writes a fresh word with both bits clear. Only the home worker
//! writes or reads it: the coroutine writes it while running there (a
//! started coroutine never leaves its home, `sched/worker.rs`), and the
//! home worker's pass reads and flags it between two coroutines, when none
//! of them runs. So the word needs no synchronisation at all.
//!
//! The pass itself (which coroutines, how often, how many ranges per
//! system call) is [`ShrinkPass`], run by each worker (figures:
//! `docs/notes/shrink.md`).

/// Bytes below the recorded stack pointer that the switch may still write
/// (see the module docs): 24 measured in a release build, 616 in a debug
/// build on x86_64 (where `Yielder::suspend` is not inlined). A multiple of
/// 16, so that the flags fit below it.
pub(crate) const MARGIN: usize = 2048;

/// Shrink word flag: a pass has seen the coroutine parked at this point.
pub(crate) const SEEN: u32 = 1;
/// Shrink word flag: its pages below the recorded point are released.
pub(crate) const SHRUNK: u32 = 2;
const FLAGS: u32 = 15;

/// The shrink word a coroutine stores when it switches out with its stack
/// pointer at `sp`: the low 32 bits of `sp` rounded down to 16 bytes, flags
/// clear ([`recorded_sp`] rebuilds the rest from the slot's top). Zero means
/// "not recorded" (and is what an architecture without a reader stores).
#[inline(always)]
pub(crate) fn word_for(sp: usize) -> u32 {
    sp as u32 & !FLAGS
}

/// The stack pointer recorded in `word` by a coroutine whose slot ends at
/// `top` (slots are smaller than 4 GiB, `slab.rs`), or `None` if none was.
pub(crate) fn recorded_sp(word: u32, top: usize) -> Option<usize> {
    let low = word & !FLAGS;
    if low == 0 {
        return None;
    }
    Some(top - ((top as u32).wrapping_sub(low) as usize))
}

/// The calling function's stack pointer, or 0 on an architecture whose
/// register we do not read (then nothing is ever shrunk).
#[inline(always)]
pub(crate) fn stack_pointer() -> usize {
    #[allow(unused_mut)]
    let mut sp = 0usize;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: copies a register; touches no memory, no flags, no stack.
    unsafe {
        std::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags));
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above.
    unsafe {
        std::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags));
    }
    sp
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::coroutine::Suspend;
    use corosensei::stack::DefaultStack;
    use corosensei::{Coroutine, CoroutineResult};

    const PATTERN: u8 = 0xA5;
    const PROBE: usize = 4096;

    /// Measure how far below the recorded stack pointer a switch out
    /// writes: the coroutine fills the 4 KiB below its stack pointer with a
    /// pattern, records it and suspends as `context::suspend` does; the
    /// parent then looks for the lowest byte the switch changed.
    #[test]
    #[cfg_attr(spindle_asan, ignore = "ASan's fake stacks change the frames")]
    fn the_switch_writes_within_the_margin() {
        if stack_pointer() == 0 {
            return; // an architecture we do not read: nothing is shrunk
        }
        let mut co: Coroutine<(), Suspend, (), DefaultStack> = Coroutine::new(|yielder, ()| {
            let sp = std::hint::black_box(stack_pointer());
            SP.with(|c| c.set(sp));
            for a in sp - PROBE..sp {
                // SAFETY: dead memory of this coroutine's stack, below its
                // stack pointer; no call runs between this and the switch.
                unsafe { (a as *mut u8).write_volatile(PATTERN) };
            }
            yielder.suspend(Suspend::Park);
        });
        thread_local! { static SP: std::cell::Cell<usize> = const { std::cell::Cell::new(0) }; }
        assert!(matches!(
            co.resume(()),
            CoroutineResult::Yield(Suspend::Park)
        ));
        let sp = SP.with(|c| c.get());
        let lowest = (sp - PROBE..sp)
            // SAFETY: the coroutine's stack is mapped while `co` lives.
            .find(|&a| unsafe { (a as *const u8).read_volatile() } != PATTERN)
            .expect("the switch saved something below the stack pointer");
        let depth = sp - lowest;
        eprintln!("the switch wrote {depth} bytes below the recorded stack pointer");
        assert!(depth <= MARGIN, "{depth} > MARGIN ({MARGIN})");
        assert!(matches!(co.resume(()), CoroutineResult::Return(())));
    }

    #[test]
    fn words_rebuild_the_stack_pointer() {
        assert_eq!(MARGIN % 16, 0);
        let top = 0x7fff_1240_0000usize;
        for sp in [
            top - 16,
            top - 0x3_0000,
            top - 0x1234_5670,
            top - 0xffff_fff0,
        ] {
            let word = word_for(sp + 7);
            assert_eq!(word & FLAGS, 0);
            assert_eq!(recorded_sp(word | SEEN | SHRUNK, top), Some(sp), "{sp:#x}");
        }
        assert_eq!(recorded_sp(0, top), None);
    }
}
