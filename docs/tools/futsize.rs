// futsize: how big a parked Rust `async` task is. An `async fn` compiles to
// a state machine holding only the locals alive across each `.await`;
// `size_of_val` of the future is what a parked task keeps (chapter 8).
// Build and run from the repository root:
//
//     rustc --edition 2021 -O -o /tmp/futsize docs/tools/futsize.rs && /tmp/futsize
//
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A future that is pending once, like a receive that has to wait.
struct Park(bool);
impl Future for Park {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            Poll::Pending
        }
    }
}

async fn recv_loop() -> u64 {
    let mut sum = 0u64;
    for i in 0..3u64 {
        Park(false).await;
        sum += i;
    }
    sum
}

async fn with_buffer() -> u8 {
    let buf = [1u8; 1024]; // lives across the await: part of the future
    Park(false).await;
    buf[7]
}

async fn buffer_dropped_before() -> u8 {
    let x = {
        let buf = [1u8; 1024];
        buf[7]
    }; // dead before the await: not stored
    Park(false).await;
    x
}

async fn nested() -> u64 {
    recv_loop().await + with_buffer().await as u64
}

fn main() {
    println!(
        "recv_loop (a u64 and a loop counter across an await): {} B",
        std::mem::size_of_val(&recv_loop())
    );
    println!(
        "with_buffer (1 KiB array held across an await):        {} B",
        std::mem::size_of_val(&with_buffer())
    );
    println!(
        "buffer_dropped_before (1 KiB array dead before it):   {} B",
        std::mem::size_of_val(&buffer_dropped_before())
    );
    println!(
        "nested (awaits the two above in turn):                {} B",
        std::mem::size_of_val(&nested())
    );
}
