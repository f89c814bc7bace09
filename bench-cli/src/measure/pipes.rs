//! The OS-thread baseline for switching: two threads ping-pong one byte over
//! two pipes, as `perf bench sched pipe -T` does.
//!
//! Each one-way hand-off is a `write` that wakes the other thread, which was
//! asleep in `read`: two system calls and a trip through the kernel
//! scheduler. That is what a green-thread switch saves.
//!
//! Two rows, because the answer depends on where the threads run:
//!
//! * **same CPU**: both threads pinned to one CPU (`sched_setaffinity`), so
//!   every hand-off is a real context switch on that CPU;
//! * **across CPUs**: one thread per CPU. No context switch is needed, but
//!   every wake-up is an inter-processor interrupt, and the cache line
//!   holding the pipe bounces between cores. Skipped on a one-CPU machine.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Instant;

/// CPUs this process may run on, in order.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; all-zero is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: we pass the size of the set we own; pid 0 means this thread.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let max = 8 * std::mem::size_of_val(&set);
    Ok((0..max)
        // SAFETY: every index is below the set's capacity in bits.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// Pin the calling thread to one CPU.
fn pin(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; all-zero is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` comes from `allowed_cpus`, so it is below the capacity.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: we pass the size of the set we own; pid 0 means this thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A pipe as (read end, write end).
fn pipe() -> io::Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array we pass.
    // O_CLOEXEC: child processes started later must not inherit them.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are fresh and owned by nobody else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((File::from(r), File::from(w)))
}

/// ns per one-way hand-off over `n` hand-offs, thread A on `cpus.0` and
/// thread B on `cpus.1`.
pub fn pingpong(n: u64, cpus: (usize, usize)) -> Result<f64, String> {
    let rounds = (n / 2).max(1);
    let (mut a_to_b_r, mut a_to_b_w) = pipe().map_err(|e| format!("pipe: {e}"))?;
    let (mut b_to_a_r, mut b_to_a_w) = pipe().map_err(|e| format!("pipe: {e}"))?;
    let result = std::thread::scope(|s| {
        let echo = s.spawn(move || -> io::Result<()> {
            pin(cpus.1)?;
            let mut byte = [0u8; 1];
            for _ in 0..rounds {
                a_to_b_r.read_exact(&mut byte)?;
                b_to_a_w.write_all(&byte)?;
            }
            Ok(())
        });
        let timed = s.spawn(move || -> io::Result<f64> {
            pin(cpus.0)?;
            let mut byte = [7u8; 1];
            let t0 = Instant::now();
            for _ in 0..rounds {
                a_to_b_w.write_all(&byte)?;
                b_to_a_r.read_exact(&mut byte)?;
            }
            Ok(t0.elapsed().as_nanos() as f64 / (2 * rounds) as f64)
        });
        let ns = timed.join();
        let echoed = echo.join();
        match (ns, echoed) {
            (Ok(Ok(ns)), Ok(Ok(()))) => Ok(ns),
            (Ok(Err(e)), _) | (_, Ok(Err(e))) => Err(format!("pipe ping-pong: {e}")),
            _ => Err("pipe ping-pong thread panicked".to_string()),
        }
    });
    result
}
