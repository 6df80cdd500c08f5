//! tokio::fs's side of bench/fs/compare_fs.py: N tasks on a current-thread runtime,
//! each reading with its own tokio::fs::File (seek, then read_exact: tokio::fs has no
//! positioned read; each call is one trip to tokio's blocking pool), the same options
//! and one-line JSON result as bench/fs/fs_read_ref.
//!
//!   tokio_fs_read --file F --inflight N --seconds S --pattern random|seq
use std::io::SeekFrom;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

fn cpu_seconds() -> f64 {
    let mut ru: libc_rusage = unsafe { std::mem::zeroed() };
    unsafe { getrusage(0, &mut ru) };
    (ru.utime_s + ru.stime_s) as f64 + (ru.utime_us + ru.stime_us) as f64 / 1e6
}

#[repr(C)]
struct libc_rusage {
    utime_s: i64,
    utime_us: i64,
    stime_s: i64,
    stime_us: i64,
    rest: [i64; 14],
}
extern "C" {
    fn getrusage(who: i32, usage: *mut libc_rusage) -> i32;
}

struct Offsets {
    blocks: u64,
    block: u64,
    seq: bool,
    next_block: u64,
    x: u64,
}

impl Offsets {
    fn next(&mut self) -> u64 {
        if !self.seq {
            // xorshift64*: any uniform-enough generator will do
            self.x ^= self.x >> 12;
            self.x ^= self.x << 25;
            self.x ^= self.x >> 27;
            return (self.x.wrapping_mul(0x2545F4914F6CDD1D) % self.blocks) * self.block;
        }
        let b = self.next_block;
        self.next_block = (self.next_block + 1) % self.blocks;
        b * self.block
    }
}

fn main() {
    let mut file = String::new();
    let mut inflight = 16u64;
    let mut seconds = 2.0f64;
    let mut pattern = "random".to_string();
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i + 1 < args.len() {
        match args[i].as_str() {
            "--file" => file = args[i + 1].clone(),
            "--inflight" => inflight = args[i + 1].parse().expect("--inflight"),
            "--seconds" => seconds = args[i + 1].parse().expect("--seconds"),
            "--pattern" => pattern = args[i + 1].clone(),
            "--engine" => {}
            o => panic!("unknown option {}", o),
        }
        i += 2;
    }
    let block: u64 = if pattern == "seq" { 256 * 1024 } else { 4096 };
    let size = std::fs::metadata(&file).expect("stat").len();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    rt.block_on(async {
        let mut hs = Vec::new();
        for id in 0..inflight {
            let (file, stop, total) = (file.clone(), stop.clone(), total.clone());
            let blocks = size / block;
            let mut off = Offsets { blocks, block, seq: pattern == "seq",
                                    next_block: blocks * id / inflight, x: id * 7919 + 1 };
            hs.push(tokio::spawn(async move {
                let mut f = tokio::fs::File::open(&file).await.expect("open");
                let mut buf = vec![0u8; block as usize];
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    f.seek(SeekFrom::Start(off.next())).await.expect("seek");
                    f.read_exact(&mut buf).await.expect("read");
                    n += 1;
                }
                total.fetch_add(n, Ordering::Relaxed);
            }));
        }
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        for h in hs {
            h.await.unwrap();
        }
    });
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let reads = total.load(Ordering::Relaxed);
    let rps = reads as f64 / secs;
    println!("{{\"engine\":\"tokio\",\"pattern\":\"{}\",\"inflight\":{},\"reads_per_s\":{:.0},\"mib_per_s\":{:.1},\"cpu_us_per_read\":{:.3},\"timer_late_p50_us\":-1,\"timer_late_max_us\":-1}}",
             pattern, inflight, rps, rps * block as f64 / 1048576.0,
             if reads > 0 { cpu * 1e6 / reads as f64 } else { 0.0 });
}
