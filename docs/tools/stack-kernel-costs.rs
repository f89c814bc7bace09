// stack-kernel-costs: a scratch benchmark of the kernel work behind a fresh
// or finished stack slot (docs/notes/cold-paths.md quotes it). Not part of
// the build. To run it: `cargo new --bin kc && cd kc && cargo add libc`,
// copy this file to src/main.rs, `cargo build --release`, then e.g.
//   ./target/release/kc guardonly 100000 64   # guard install, 64 ranges a call
//   ./target/release/kc fault 100000          # guard + first touch of the top page
//   ./target/release/kc pop 100000            # guard + MADV_POPULATE_WRITE (23) of the tops, batched
//   ./target/release/kc release 100000        # + MADV_DONTNEED of 32 empty deep ranges a call
//   ./target/release/kc scan 100000           # + one PAGEMAP_SCAN per 32 slots instead
//   ./target/release/kc mincore 100000        # + one mincore per 32 slots instead
//   ./target/release/kc contig                # faults on contiguous pages, touch vs populate
// Figures are thread CPU time per slot (CLOCK_THREAD_CPUTIME_ID), mean of 5
// rounds of 10^5 slots of 256 KiB in 64 MiB slabs, 4 KiB pages assumed.
// "inner timed part" is the step named by the mode alone.
fn cpu() -> f64 { let mut ts = libc::timespec{tv_sec:0,tv_nsec:0}; unsafe{libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID,&mut ts)}; ts.tv_sec as f64*1e9+ts.tv_nsec as f64 }
const PIDFD_SELF: i32 = -10000;
const GUARD: i32 = 102;
const POP_W: i32 = 23;
fn pm(ranges: &[(usize, usize)], advice: i32) -> isize {
    let iov: Vec<libc::iovec> = ranges.iter().map(|&(a, l)| libc::iovec { iov_base: a as *mut _, iov_len: l }).collect();
    unsafe { libc::syscall(libc::SYS_process_madvise, PIDFD_SELF, iov.as_ptr(), iov.len(), advice, 0) as isize }
}
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args[1].as_str();
    if mode == "contig" { contiguous(); return; }
    let n: usize = args[2].parse().unwrap();
    let batch: usize = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(64);
    let slot = 256 << 10;
    let page = 4096;
    let slab_slots = 256;
    let mut total = 0f64; let mut excl = 0f64;
    let reps = 5;
    for _ in 0..reps {
        let len = n * slot;
        let mut maps = vec![];
        let t = cpu();
        let mut done = 0;
        while done < n {
            let base = unsafe { libc::mmap(std::ptr::null_mut(), slab_slots * slot, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE, -1, 0) } as usize;
            unsafe { libc::madvise(base as *mut _, slab_slots * slot, libc::MADV_NOHUGEPAGE) };
            maps.push(base);
            let mut i = 0;
            while i < slab_slots && done < n {
                let end = (i + batch).min(slab_slots);
                let guards: Vec<(usize, usize)> = (i..end).map(|k| (base + k * slot, page)).collect();
                let tops: Vec<(usize, usize)> = (i..end).map(|k| (base + (k + 1) * slot - page, page)).collect();
                match mode {
                    "fault" => { assert!(pm(&guards, GUARD) > 0); for &(a, _) in &tops { unsafe { ((a + page - 64) as *mut u64).write_volatile(1) } } }
                    "pop" => { assert!(pm(&guards, GUARD) > 0); let r = pm(&tops, POP_W); assert!(r > 0, "{}", std::io::Error::last_os_error()); for &(a, _) in &tops { unsafe { ((a + page - 64) as *mut u64).write_volatile(1) } } }
                    "popfirst" => { let r = pm(&tops, POP_W); assert!(r > 0); assert!(pm(&guards, GUARD) > 0); for &(a, _) in &tops { unsafe { ((a + page - 64) as *mut u64).write_volatile(1) } } }
                    "noguard" => { for &(a, _) in &tops { unsafe { ((a + page - 64) as *mut u64).write_volatile(1) } } }
                    "guardpte" => { for &(a, _) in &tops { unsafe { ((a + page - 64) as *mut u64).write_volatile(1) } } let t2 = cpu(); assert!(pm(&guards, GUARD) > 0); excl += cpu() - t2; }
                    "release" => { assert!(pm(&guards, GUARD) > 0); for &(a, _) in &tops { unsafe { ((a + page - 64) as *mut u64).write_volatile(1) } }
                        let deep: Vec<(usize, usize)> = (i..end).map(|k| (base + k * slot + page, slot - 2 * page)).collect();
                        let t2 = cpu(); for c in deep.chunks(32) { assert!(pm(c, libc::MADV_DONTNEED) > 0); } excl += cpu() - t2; }
                    "releaseone" => { assert!(pm(&guards, GUARD) > 0); for &(a, _) in &tops { unsafe { ((a + page - 64) as *mut u64).write_volatile(1) } }
                        let deep: Vec<(usize, usize)> = (i..end).map(|k| (base + k * slot + page, slot - 2 * page)).collect();
                        let t2 = cpu(); for &(a,l) in &deep { assert!(unsafe{libc::madvise(a as *mut _, l, libc::MADV_DONTNEED)} == 0); } excl += cpu() - t2; }
                    "release1p" => { assert!(pm(&guards, GUARD) > 0); for &(a, _) in &tops { unsafe { ((a + page - 64) as *mut u64).write_volatile(1) } }
                        let deep: Vec<(usize, usize)> = (i..end).map(|k| (base + (k+1) * slot - 2*page, page)).collect();
                        let t2 = cpu(); for c in deep.chunks(32) { assert!(pm(c, libc::MADV_DONTNEED) > 0); } excl += cpu() - t2; }
                    "scan" | "mincore" => { assert!(pm(&guards, GUARD) > 0); for &(a, _) in &tops { unsafe { ((a + page - 64) as *mut u64).write_volatile(1) } }
                        if mode == "scan" && i + 8 < end { unsafe { ((base + (i+5) * slot + 7*page) as *mut u64).write_volatile(1) } }
                        let t2 = cpu();
                        for c in (i..end).collect::<Vec<_>>().chunks(32) {
                            let from = base + c[0] * slot + page; let to = base + (c[c.len()-1] + 1) * slot - page;
                            if mode == "scan" { let r = scan(from, to); std::hint::black_box(r); }
                            else { let mut v = vec![0u8; (to-from)/page]; assert_eq!(unsafe{libc::mincore(from as *mut _, to-from, v.as_mut_ptr())}, 0); std::hint::black_box(&v); }
                        }
                        excl += cpu() - t2; }
                    "guardonly" => { assert!(pm(&guards, GUARD) > 0); }
                    _ => panic!(),
                }
                done += end - i;
                i = end;
            }
        }
        let el = (cpu()-t) / n as f64;
        total += el;
        let _ = len;
        for m in maps { unsafe { libc::munmap(m as *mut _, slab_slots * slot) }; }
    }
    println!("{mode} batch {batch}: {:.0} ns/slot (inner timed part {:.0})", total / reps as f64, excl / (reps * n) as f64);
}
#[allow(dead_code)]
pub fn contiguous() {
    let n = 100_000usize; let page = 4096;
    for round in 0..4 {
        let base = unsafe { libc::mmap(std::ptr::null_mut(), n * page, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE, -1, 0) } as usize;
        unsafe { libc::madvise(base as *mut _, n * page, libc::MADV_NOHUGEPAGE) };
        let t = cpu();
        if round % 2 == 0 {
            for i in 0..n { unsafe { ((base + i * page) as *mut u64).write_volatile(1) } }
        } else {
            let r = unsafe { libc::madvise(base as *mut _, n * page, 23) }; assert_eq!(r, 0);
        }
        println!("contiguous {}: {:.0} ns/page", if round % 2 == 0 {"touch"} else {"populate"}, (cpu() - t) / n as f64);
        // same pages again after DONTNEED
        unsafe { libc::madvise(base as *mut _, n * page, libc::MADV_DONTNEED) };
        let t = cpu();
        for i in 0..n { unsafe { ((base + i * page) as *mut u64).write_volatile(1) } }
        println!("  refault after dontneed: {:.0} ns/page", (cpu() - t) / n as f64);
        unsafe { libc::munmap(base as *mut _, n * page) };
    }
}

#[repr(C)] struct PmScanArg { size: u64, flags: u64, start: u64, end: u64, walk_end: u64, vec: u64, vec_len: u64, max_pages: u64, category_inverted: u64, category_mask: u64, category_anyof_mask: u64, return_mask: u64 }
#[repr(C)] #[derive(Clone, Copy, Default, Debug)] struct PageRegion { start: u64, end: u64, categories: u64 }
static mut FD: i32 = -1;
fn scan(from: usize, to: usize) -> usize {
    unsafe { if FD < 0 { FD = libc::open(c"/proc/self/pagemap".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC); assert!(FD >= 0); } }
    let mut vec = [PageRegion::default(); 128];
    let mut arg = PmScanArg { size: 96, flags: 0, start: from as u64, end: to as u64, walk_end: 0, vec: vec.as_mut_ptr() as u64, vec_len: 128, max_pages: 0, category_inverted: 0, category_mask: 0, category_anyof_mask: (1<<3)|(1<<4), return_mask: (1<<3)|(1<<4) };
    let r = unsafe { libc::ioctl(FD, 0xC0606610u64 as _, &mut arg) };
    assert!(r >= 0, "{}", std::io::Error::last_os_error());
    static mut PRINTED: bool = false;
    unsafe { if !PRINTED { PRINTED = true; eprintln!("scan {} regions, walk_end ok {} first {:?} {:?}", r, arg.walk_end == to as u64, vec[0], &vec[1..4]); } }
    r as usize
}
