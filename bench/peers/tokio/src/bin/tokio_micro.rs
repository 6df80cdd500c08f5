//! tokio's side of the micro-suite (bench/compare), on the current-thread runtime:
//!   spawn_join         tokio::spawn an empty task and await its JoinHandle
//!   sleep_arm_cancel   create a Sleep, register it (poll once), drop it, with
//!                      1,000,000 other sleeps registered
//!   spawn_blocking     spawn_blocking(noop).await, one in flight: p50/p99
//! Each prints one JSON line {"name","ns_per_op"[,"p50_us","p99_us"]}. Times are
//! the median of five batches (Google Benchmark-like, without the dependency).
//! Every body runs inside a spawned task: block_on's own future is not a task, and
//! waking it goes through the driver's park, which would time the park, not spawn.
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Polls a Sleep once, which registers it with the timer, and completes.
/// (std::future::poll_fn needs Rust 1.64; Debian 12's rustc is 1.63.)
struct PollOnce<'a>(&'a mut Pin<Box<tokio::time::Sleep>>);

impl Future for PollOnce<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let _ = self.0.as_mut().poll(cx);
        Poll::Ready(())
    }
}

async fn poll_once(s: &mut Pin<Box<tokio::time::Sleep>>) {
    PollOnce(s).await
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let n: u64 = if quick { 200_000 } else { 1_000_000 };

    let batches: Vec<f64> = (0..5)
        .map(|_| {
            rt.block_on(rt.spawn(async move {
                let t0 = Instant::now();
                for _ in 0..n {
                    tokio::spawn(async {}).await.unwrap();
                }
                t0.elapsed().as_nanos() as f64 / n as f64
            }))
            .unwrap()
        })
        .collect();
    println!("{{\"name\":\"spawn_join\",\"ns_per_op\":{:.1}}}", median(batches));

    let live_n: u64 = 1_000_000;
    let ns = rt.block_on(rt.spawn(async move {
        let mut live = Vec::with_capacity(live_n as usize);
        for i in 0..live_n {
            let mut s = Box::pin(tokio::time::sleep(Duration::from_millis(
                1000 + (i * 2_654_435_761) % 3_600_000,
            )));
            poll_once(&mut s).await;
            live.push(s);
        }
        let mut out = Vec::new();
        for _ in 0..5 {
            let t0 = Instant::now();
            for i in 0..n {
                let mut s = Box::pin(tokio::time::sleep(Duration::from_millis(1 + i % 100_000)));
                poll_once(&mut s).await;
                drop(s);
            }
            out.push(t0.elapsed().as_nanos() as f64 / n as f64);
        }
        drop(live);
        out
    }))
    .unwrap();
    println!(
        "{{\"name\":\"sleep_arm_cancel_1M\",\"ns_per_op\":{:.1}}}",
        median(ns)
    );

    let m = if quick { 2_000 } else { 10_000 };
    let mut samples = rt.block_on(rt.spawn(async move {
        let mut v = Vec::with_capacity(m);
        for _ in 0..m {
            let t0 = Instant::now();
            tokio::task::spawn_blocking(|| ()).await.unwrap();
            v.push(t0.elapsed().as_nanos() as f64);
        }
        v
    }))
    .unwrap();
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    println!(
        "{{\"name\":\"spawn_blocking\",\"ns_per_op\":{:.1},\"p50_us\":{:.2},\"p99_us\":{:.2}}}",
        mean,
        samples[samples.len() / 2] / 1000.0,
        samples[samples.len() * 99 / 100] / 1000.0
    );
}
