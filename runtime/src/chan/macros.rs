//! `spindle::select!`: crossbeam-channel's macro, built on [`Select`].
//!
//! ```text
//! select! {
//!     recv(r) -> msg => body,        // msg: Result<T, RecvError>
//!     send(s, value) -> res => body, // res: Result<(), SendError<T>>
//!     default => body,               // or default(timeout) => body
//! }
//! ```
//!
//! The expansion adds each case to a `Select`, chooses one (`select`,
//! `try_select` with `default`, `select_timeout` with `default(t)`),
//! completes it, and runs its body. A send's value is evaluated only if that
//! send is chosen. Bodies may `break`, `continue` or `return`.
//!
//! [`Select`]: crate::chan::Select

/// Wait on several channel operations and run the body of the one that
/// completes (see [`chan::Select`](crate::chan::Select)).
///
/// ```
/// use spindle::chan::{after, bounded};
/// use std::time::Duration;
///
/// let (tx, rx) = bounded::<u32>(1);
/// tx.send(7).unwrap();
/// let got = spindle::select! {
///     recv(rx) -> msg => msg.unwrap(),
///     recv(after(Duration::from_secs(5))) -> _ => 0,
/// };
/// assert_eq!(got, 7);
/// ```
#[macro_export]
macro_rules! select {
    ($($tokens:tt)*) => {
        $crate::__select_internal!(@parse [] $($tokens)*)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __select_internal {
    // ---- parse: one case head at a time, then its body ----
    (@parse [$($cases:tt)*] recv($r:expr $(,)?) -> $res:pat => $($rest:tt)*) => {
        $crate::__select_internal!(@body [$($cases)*] (recv $r, $res) $($rest)*)
    };
    (@parse [$($cases:tt)*] send($s:expr, $m:expr $(,)?) -> $res:pat => $($rest:tt)*) => {
        $crate::__select_internal!(@body [$($cases)*] (send $s, $m, $res) $($rest)*)
    };
    (@parse [$($cases:tt)*] default => $($rest:tt)*) => {
        $crate::__select_internal!(@body [$($cases)*] (default) $($rest)*)
    };
    (@parse [$($cases:tt)*] default($t:expr $(,)?) => $($rest:tt)*) => {
        $crate::__select_internal!(@body [$($cases)*] (timeout $t) $($rest)*)
    };
    (@parse [$($cases:tt)*]) => {
        $crate::__select_internal!(@add sel [$($cases)*] [] [])
    };
    (@parse [$($cases:tt)*] $($bad:tt)+) => {
        compile_error!("select!: expected `recv(r) -> pat => body`, `send(s, v) -> pat => body`, `default => body` or `default(timeout) => body`")
    };

    // A body: an expression and a comma, a block (comma optional), or the
    // last expression.
    (@body [$($cases:tt)*] $head:tt $body:expr, $($rest:tt)*) => {
        $crate::__select_internal!(@parse [$($cases)* ($head $body)] $($rest)*)
    };
    (@body [$($cases:tt)*] $head:tt $body:block $($rest:tt)*) => {
        $crate::__select_internal!(@parse [$($cases)* ($head $body)] $($rest)*)
    };
    (@body [$($cases:tt)*] $head:tt $body:expr) => {
        $crate::__select_internal!(@parse [$($cases)* ($head $body)])
    };

    // ---- add: register each operation on one `Select`, naming its end and
    // index with identifiers that are fresh in each step (hygiene) ----
    (@add $sel:ident [] [$($done:tt)*] [$($default:tt)*]) => {{
        #[allow(unused_mut)]
        let mut $sel = $crate::chan::Select::new();
        $crate::__select_internal!(@ops $sel [$($done)*] [] [$($default)*])
    }};
    (@add $sel:ident [(default $body:expr) $($rest:tt)*] [$($done:tt)*] []) => {
        $crate::__select_internal!(@add $sel [$($rest)*] [$($done)*] [(default $body)])
    };
    (@add $sel:ident [((default) $body:expr) $($rest:tt)*] [$($done:tt)*] []) => {
        $crate::__select_internal!(@add $sel [$($rest)*] [$($done)*] [(default $body)])
    };
    (@add $sel:ident [((timeout $t:expr) $body:expr) $($rest:tt)*] [$($done:tt)*] []) => {
        $crate::__select_internal!(@add $sel [$($rest)*] [$($done)*] [(timeout $t, $body)])
    };
    (@add $sel:ident [((default) $body:expr) $($rest:tt)*] $done:tt [$($default:tt)+]) => {
        compile_error!("select!: more than one `default` case")
    };
    (@add $sel:ident [((timeout $t:expr) $body:expr) $($rest:tt)*] $done:tt [$($default:tt)+]) => {
        compile_error!("select!: more than one `default` case")
    };
    (@add $sel:ident [$case:tt $($rest:tt)*] [$($done:tt)*] $default:tt) => {
        $crate::__select_internal!(@add $sel [$($rest)*] [$($done)* $case] $default)
    };

    (@ops $sel:ident [((recv $r:expr, $res:pat) $body:expr) $($rest:tt)*] [$($ready:tt)*] $default:tt) => {
        match &$r {
            end => {
                let end: &$crate::chan::Receiver<_> = end;
                let index = $sel.recv(end);
                $crate::__select_internal!(@ops $sel [$($rest)*] [$($ready)* (recv end, index, $res, $body)] $default)
            }
        }
    };
    (@ops $sel:ident [((send $s:expr, $m:expr, $res:pat) $body:expr) $($rest:tt)*] [$($ready:tt)*] $default:tt) => {
        match &$s {
            end => {
                let end: &$crate::chan::Sender<_> = end;
                let index = $sel.send(end);
                $crate::__select_internal!(@ops $sel [$($rest)*] [$($ready)* (send end, $m, index, $res, $body)] $default)
            }
        }
    };

    // ---- choose, then complete the chosen case and run its body ----
    (@ops $sel:ident [] $cases:tt []) => {{
        let oper = $sel.select();
        ::std::mem::drop($sel);
        $crate::__select_internal!(@complete oper $cases)
    }};
    (@ops $sel:ident [] $cases:tt [(default $body:expr)]) => {
        $crate::__select_internal!(@fallback $sel $cases ($sel.try_select()) $body)
    };
    (@ops $sel:ident [] $cases:tt [(timeout $t:expr, $body:expr)]) => {
        $crate::__select_internal!(@fallback $sel $cases ($sel.select_timeout($t)) $body)
    };
    (@fallback $sel:ident $cases:tt ($choose:expr) $body:expr) => {
        match $choose {
            ::std::result::Result::Ok(oper) => {
                ::std::mem::drop($sel);
                $crate::__select_internal!(@complete oper $cases)
            }
            ::std::result::Result::Err(_) => {
                ::std::mem::drop($sel);
                $body
            }
        }
    };

    (@complete $oper:ident [(recv $end:ident, $index:ident, $res:pat, $body:expr) $($rest:tt)*]) => {
        if $oper.index() == $index {
            let $res = $oper.recv($end);
            $body
        } else {
            $crate::__select_internal!(@complete $oper [$($rest)*])
        }
    };
    (@complete $oper:ident [(send $end:ident, $m:expr, $index:ident, $res:pat, $body:expr) $($rest:tt)*]) => {
        if $oper.index() == $index {
            let $res = $oper.send($end, $m);
            $body
        } else {
            $crate::__select_internal!(@complete $oper [$($rest)*])
        }
    };
    (@complete $oper:ident []) => {
        ::std::unreachable!("select!: the chosen operation is one of the cases")
    };
}
