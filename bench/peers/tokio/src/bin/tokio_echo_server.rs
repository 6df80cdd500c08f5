//! tokio echo server, one task per connection: the tokio peer of samples/echo_server.
//!
//!   tokio_echo_server [--port PORT] [--threads N]
//!
//! --threads 1 (default) is the current-thread runtime, which is what the one-thread
//! rows of bench/compare measure; N > 1 is the multi-thread runtime with N workers.
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn echo(mut s: TcpStream) {
    let mut buf = vec![0u8; 16384];
    loop {
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if s.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn serve(port: u16) {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let listener = TcpListener::bind(addr).await.expect("bind");
    // The bound port, so that --port 0 (the kernel picks) can be used by scripts.
    let bound = listener.local_addr().expect("local_addr").port();
    println!("listening on 127.0.0.1 {}", bound);
    loop {
        if let Ok((s, _)) = listener.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(echo(s));
        }
    }
}

fn main() {
    let mut port = 7000u16;
    let mut threads = 1usize;
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        match (args[i].as_str(), args.get(i + 1)) {
            ("--port", Some(v)) => port = v.parse().expect("port"),
            ("--threads", Some(v)) => match v.parse::<usize>() {
                Ok(n) if (1..=64).contains(&n) => threads = n,
                _ => {
                    eprintln!("tokio_echo_server: --threads must be 1..64, got {:?}", v);
                    std::process::exit(2);
                }
            },
            _ => {
                eprintln!("usage: tokio_echo_server [--port PORT] [--threads N]");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .expect("runtime");
    rt.block_on(serve(port));
}
