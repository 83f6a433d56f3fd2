//! What recording a click costs when every core records clicks of the same link at once (a
//! viral link): THREADS threads each record CLICKS clicks into one `ClickBuffer` (the
//! redirect path's call, with the flusher's take every few milliseconds beside them), then
//! the wall time and the process's CPU time per click are printed, for one hot link and for
//! clicks spread over 10,000 links. Compare two builds (a change and the code it replaces) in
//! the same session; the bare numbers depend on the machine.
//!
//! Usage: `cargo run --release --example clicks [THREADS] [CLICKS]` (defaults: the machine's
//! cores, 2,000,000 per thread).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use snip::analytics::ua::UaCache;
use snip::clicks::{ClickBuffer, Visit};

/// CPU time (user + system) of this process so far, from the kernel's process clock.
fn cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn run(threads: usize, clicks: u64, links: i64) -> (Duration, Duration) {
    let cache = Arc::new(UaCache::new(100));
    let buffer = Arc::new(ClickBuffer::default());
    let stop = Arc::new(AtomicBool::new(false));
    let flusher = {
        let (buffer, stop) = (buffer.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let taken = buffer.take(None);
                buffer.journalled(taken.journalled());
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let (wall, cpu) = (Instant::now(), cpu_time());
    let recorders: Vec<_> = (0..threads)
        .map(|t| {
            let (buffer, cache) = (buffer.clone(), cache.clone());
            std::thread::spawn(move || {
                let agents: [&[u8]; 4] = [
                    b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
                    b"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
                    b"Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
                    b"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
                ];
                let uas: Vec<_> = agents.iter().map(|a| cache.get(Some(a))).collect();
                let host: Arc<str> = "news.example.com".into();
                for n in 0..clicks {
                    let referrer = (n % 3 == 0).then_some(&host);
                    let link = (n as i64 * 7919 + t as i64) % links;
                    let visit = Visit {
                        ua: &uas[n as usize % uas.len()],
                        referrer,
                        country: None,
                        visitor: Some(n ^ (t as u64) << 40),
                    };
                    buffer.record(link, 1_800_000_000 + (n / 100_000) as i64, &visit);
                }
            })
        })
        .collect();
    for r in recorders {
        r.join().unwrap();
    }
    let (wall, cpu) = (wall.elapsed(), cpu_time() - cpu);
    stop.store(true, Ordering::Relaxed);
    flusher.join().unwrap();
    let rest = buffer.take(None);
    buffer.journalled(rest.journalled());
    assert_eq!(buffer.pending(), 0, "every click journalled");
    (wall, cpu)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let threads = args
        .first()
        .map(|a| a.parse().expect("THREADS"))
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let clicks: u64 = args
        .get(1)
        .map_or(2_000_000, |a| a.parse().expect("CLICKS"));
    for (name, links) in [("one hot link", 1), ("10,000 links", 10_000)] {
        let (wall, cpu) = run(threads, clicks, links);
        let total = (threads as u64 * clicks) as f64;
        println!(
            "{name}: {threads} threads x {clicks} clicks: {:.0} ns wall, {:.0} ns CPU per click",
            wall.as_nanos() as f64 / total * threads as f64,
            cpu.as_nanos() as f64 / total
        );
    }
}
