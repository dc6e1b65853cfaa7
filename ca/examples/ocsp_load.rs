//! A small load generator for OCSP (`scripts/bench`) and RFC 3161 (`scripts/bench-tsa`):
//! POSTs fixed-size DER requests read from a file over `connections` HTTP/1.1 connections
//! for `seconds`, reusing a connection when the server keeps it open and reconnecting when
//! it closes it (the `openssl ocsp` responder answers HTTP/1.0 and closes). Counts only
//! successful OCSP responses, or granted timestamp responses with `tsa`.
//!
//! `ocsp_load <addr:port> <path> <requests file> <request size> <connections> <seconds> [tsa]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Counters {
    ok: AtomicU64,
    failed: AtomicU64,
    stop: AtomicBool,
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (addr, path, file, size, connections, seconds, tsa) = match args.as_slice() {
        [_, addr, path, file, size, connections, seconds] => (addr, path, file, size, connections, seconds, false),
        [_, addr, path, file, size, connections, seconds, kind] if kind == "tsa" => (addr, path, file, size, connections, seconds, true),
        _ => {
            eprintln!("usage: ocsp_load <addr:port> <path> <requests file> <request size> <connections> <seconds> [tsa]");
            std::process::exit(2);
        }
    };
    let content_type = if tsa { "application/timestamp-query" } else { "application/ocsp-request" };
    let data = Arc::new(std::fs::read(file).expect("requests"));
    let size: usize = size.parse().expect("size");
    let connections: usize = connections.parse().expect("connections");
    let seconds: u64 = seconds.parse().expect("seconds");
    let counters = Arc::new(Counters { ok: AtomicU64::new(0), failed: AtomicU64::new(0), stop: AtomicBool::new(false) });
    let count = data.len() / size;
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (data, counters, addr, path) = (data.clone(), counters.clone(), addr.clone(), path.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = c * 997 % count;
            let mut stream: Option<TcpStream> = None;
            let mut buf = vec![0u8; 16 * 1024];
            while !counters.stop.load(Ordering::Relaxed) {
                if stream.is_none() {
                    match TcpStream::connect(&addr).await {
                        Ok(s) => {
                            s.set_nodelay(true).ok();
                            stream = Some(s);
                        }
                        Err(_) => {
                            counters.failed.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    }
                }
                let s = stream.as_mut().expect("connected");
                let body = &data[i * size..(i + 1) * size];
                i = (i + 1) % count;
                let mut request =
                    format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {size}\r\n\r\n").into_bytes();
                request.extend_from_slice(body);
                match exchange(s, &request, &mut buf, tsa).await {
                    Some((ok, keep_alive)) => {
                        if ok {
                            counters.ok.fetch_add(1, Ordering::Relaxed);
                        } else {
                            counters.failed.fetch_add(1, Ordering::Relaxed);
                        }
                        if !keep_alive {
                            stream = None;
                        }
                    }
                    None => {
                        counters.failed.fetch_add(1, Ordering::Relaxed);
                        stream = None;
                    }
                }
            }
        }));
    }
    // Warm up for a second, then measure.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (ok0, failed0) = (counters.ok.load(Ordering::Relaxed), counters.failed.load(Ordering::Relaxed));
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let (ok, failed) = (counters.ok.load(Ordering::Relaxed) - ok0, counters.failed.load(Ordering::Relaxed) - failed0);
    counters.stop.store(true, Ordering::Relaxed);
    println!("{:.0} {ok} {failed}", ok as f64 / elapsed);
    // Let each connection finish its exchange so no server is left reading half a request.
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        for t in tasks {
            let _ = t.await;
        }
    })
    .await;
    std::process::exit(0);
}

/// Sends one request and reads one response: (a successful OCSP response or a granted
/// timestamp?, keep-alive?).
async fn exchange(s: &mut TcpStream, request: &[u8], buf: &mut [u8], tsa: bool) -> Option<(bool, bool)> {
    s.write_all(request).await.ok()?;
    let mut filled = 0;
    let header_end = loop {
        let n = s.read(&mut buf[filled..]).await.ok()?;
        if n == 0 {
            return None;
        }
        filled += n;
        if let Some(p) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        if filled == buf.len() {
            return None;
        }
    };
    let head = std::str::from_utf8(&buf[..header_end]).ok()?.to_ascii_lowercase();
    let length: usize = head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok())?;
    let keep_alive = head.starts_with("http/1.1") && !head.contains("connection: close");
    while filled < header_end + length {
        let n = s.read(&mut buf[filled..]).await.ok()?;
        if n == 0 {
            return None;
        }
        filled += n;
    }
    let body = &buf[header_end..header_end + length];
    let ok = head.starts_with("http/1.1 200") || head.starts_with("http/1.0 200");
    let successful = if tsa {
        // TimeStampResp ::= SEQUENCE { status SEQUENCE { status INTEGER granted(0) }, token }
        body.len() > 100 && body[0] == 0x30 && body.windows(5).take(8).any(|w| w == [0x30, 0x03, 0x02, 0x01, 0x00])
    } else {
        // OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED successful(0), … }
        body.len() > 8 && body[0] == 0x30 && body.windows(3).take(6).any(|w| w == [0x0a, 0x01, 0x00])
    };
    Some((ok && successful, keep_alive))
}
