//! tokio's side of eddy's cross-loop benchmarks (bench/micro/loop_group_bench.cpp):
//!   cross_spawn_mt       on a 2-worker multi-thread runtime, from inside a task:
//!                        tokio::spawn(async {}).await; p50/p99 per round trip
//!   cross_spawn_handle   two current-thread runtimes, each on its own thread (a
//!                        loop per core, as eddy's loop_group): from a task on A,
//!                        b_handle.spawn(async {}).await; p50/p99
//!   channel_cross        tokio::sync::mpsc::channel(1024): one sender task on runtime
//!                        A, the receiver on runtime B; messages per second
//! Each prints one JSON line {"name", "p50_us", "p99_us"} or {"name", "msgs_per_s"},
//! the median of five batches.
use std::time::Instant;

fn percentile(v: &mut Vec<f64>, q: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * q) as usize]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn report_latency(name: &str, mut ns: Vec<f64>) {
    let p50 = percentile(&mut ns, 0.5) / 1000.0;
    let p99 = percentile(&mut ns, 0.99) / 1000.0;
    println!("{{\"name\":\"{}\",\"p50_us\":{:.3},\"p99_us\":{:.3}}}", name, p50, p99);
}

/// A current-thread runtime running on its own thread until `stop` is sent.
fn runtime_thread() -> (tokio::runtime::Handle, tokio::sync::oneshot::Sender<()>, std::thread::JoinHandle<()>) {
    let (htx, hrx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let t = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        htx.send(rt.handle().clone()).unwrap();
        rt.block_on(async move {
            let _ = stop_rx.await;
        });
    });
    (hrx.recv().unwrap(), stop_tx, t)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n: usize = if quick { 20_000 } else { 200_000 };

    // 1. multi-thread runtime spawn round trip.
    {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let ns = rt.block_on(async move {
            tokio::spawn(async move {
                let mut ns = Vec::with_capacity(n);
                for _ in 0..n {
                    let t0 = Instant::now();
                    tokio::spawn(async {}).await.unwrap();
                    ns.push(t0.elapsed().as_nanos() as f64);
                }
                ns
            })
            .await
            .unwrap()
        });
        report_latency("cross_spawn_mt", ns);
    }

    // 2. and 3.: two current-thread runtimes on two threads.
    let (a, a_stop, a_thread) = runtime_thread();
    let (b, b_stop, b_thread) = runtime_thread();
    {
        let bh = b.clone();
        let ns = futures_block(&a, async move {
            let mut ns = Vec::with_capacity(n);
            for _ in 0..n {
                let t0 = Instant::now();
                bh.spawn(async {}).await.unwrap();
                ns.push(t0.elapsed().as_nanos() as f64);
            }
            ns
        });
        report_latency("cross_spawn_handle", ns);
    }
    {
        let msgs: u64 = if quick { 200_000 } else { 2_000_000 };
        let mut rates = Vec::new();
        for _ in 0..5 {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(1024);
            let recv = b.spawn(async move {
                let mut sum = 0u64;
                while let Some(v) = rx.recv().await {
                    sum = sum.wrapping_add(v);
                }
                sum
            });
            let t0 = Instant::now();
            let send = a.spawn(async move {
                for i in 0..msgs {
                    tx.send(i).await.unwrap();
                }
            });
            futures_block(&a, async move {
                send.await.unwrap();
                let _ = recv.await.unwrap();
            });
            rates.push(msgs as f64 / t0.elapsed().as_secs_f64());
        }
        println!("{{\"name\":\"channel_cross\",\"msgs_per_s\":{:.0}}}", median(rates));
    }
    let _ = a_stop.send(());
    let _ = b_stop.send(());
    a_thread.join().unwrap();
    b_thread.join().unwrap();
}

/// Runs `f` as a task on the runtime behind `h` and waits for it from this thread.
fn futures_block<F>(h: &tokio::runtime::Handle, f: F) -> F::Output
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    h.spawn(async move {
        let out = f.await;
        let _ = tx.send(out);
    });
    rx.recv().unwrap()
}
