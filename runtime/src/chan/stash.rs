//! A type-erased owned value: what a select holds between choosing a receive
//! and the caller claiming the value with `SelectedOperation::recv`.
//!
//! `Select` handles channels of different element types, so the value a
//! receive took is kept without its type: two words inline if it fits (no
//! allocation for small messages), boxed otherwise, plus the function that
//! drops it if nobody claims it. `SelectedOperation::recv` knows the type
//! again (it checked that the receiver is the selected one) and takes it out.

use std::marker::PhantomData;
use std::mem::{align_of, size_of, MaybeUninit};

type Words = MaybeUninit<[usize; 2]>;

pub(crate) struct Stash {
    words: Words,
    drop_value: unsafe fn(&mut Words),
    /// Neither `Send` nor `Sync`: the value's type is forgotten, so the
    /// stash cannot promise what the value allows.
    _not_send: PhantomData<*const ()>,
}

const fn inline<T>() -> bool {
    size_of::<T>() <= size_of::<Words>() && align_of::<T>() <= align_of::<Words>()
}

impl Stash {
    pub fn new<T>(value: T) -> Stash {
        let mut words = Words::uninit();
        let slot = words.as_mut_ptr().cast::<T>();
        if inline::<T>() {
            // SAFETY: T fits the two words and their alignment.
            unsafe { slot.write(value) };
        } else {
            // SAFETY: a pointer fits the words.
            unsafe { slot.cast::<*mut T>().write(Box::into_raw(Box::new(value))) };
        }
        Stash {
            words,
            drop_value: drop_as::<T>,
            _not_send: PhantomData,
        }
    }

    /// Take the value out.
    ///
    /// # Safety
    /// The stash was made by `Stash::new::<T>`.
    pub unsafe fn take<T>(self) -> T {
        let mut this = std::mem::ManuallyDrop::new(self);
        // SAFETY: the caller's promise; ManuallyDrop keeps Drop from running.
        unsafe { read::<T>(&mut this.words) }
    }
}

/// # Safety
/// `words` holds a `T` written by `Stash::new::<T>`, read once.
unsafe fn read<T>(words: &mut Words) -> T {
    let slot = words.as_mut_ptr().cast::<T>();
    if inline::<T>() {
        // SAFETY: a T was written inline.
        unsafe { slot.read() }
    } else {
        // SAFETY: a Box<T> pointer was written; reclaimed once.
        unsafe { *Box::from_raw(slot.cast::<*mut T>().read()) }
    }
}

/// # Safety
/// As for [`read`].
unsafe fn drop_as<T>(words: &mut Words) {
    // SAFETY: the caller's promise.
    drop(unsafe { read::<T>(words) });
}

impl Drop for Stash {
    fn drop(&mut self) {
        // SAFETY: `drop_value` was made for the type `new` stored.
        unsafe { (self.drop_value)(&mut self.words) };
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn stash_round_trips_and_drops() {
        // SAFETY: each stash is taken with the type it was made with.
        unsafe {
            assert_eq!(Stash::new(7u8).take::<u8>(), 7);
            assert_eq!(Stash::new([3u64; 5]).take::<[u64; 5]>(), [3; 5]);
        }
        let rc = Rc::new(());
        drop(Stash::new(rc.clone()));
        drop(Stash::new((rc.clone(), [0u64; 4])));
        assert_eq!(Rc::strong_count(&rc), 1, "unclaimed values are dropped");
    }
}
