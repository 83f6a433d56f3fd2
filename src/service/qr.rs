//! QR codes of short URLs (`GET /api/v1/links/{code}/qr`, see `crate::http::qr`), rendered by
//! the `qrcode` crate (PNG encoded with the `png` crate).
//!
//! Rendering is heavy (a 2048×2048 PNG takes tens of milliseconds of CPU), so it never runs on
//! the async worker threads that serve redirects: `--qr-concurrency` threads of their own render,
//! at the lowest normal scheduling priority (nice 19: a redirect worker that wakes up preempts
//! a render at once, so even on one core a render does not delay redirects by its time slices,
//! while renders still progress on a busy machine). A request waits up to [`QUEUE_WAIT`] for a free renderer, then gets 503; rendered
//! images are kept in a cache bounded in bytes, keyed by what the image depends on (short URL,
//! format, size).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use qrcode::{Color, EcLevel, QrCode};

/// Why no image came.
#[derive(Debug, thiserror::Error)]
pub enum QrError {
    /// Every renderer stayed busy: retry shortly.
    #[error("{0}")]
    Busy(&'static str),
    #[error("{0}")]
    Failed(String),
}

type Result<T, E = QrError> = std::result::Result<T, E>;
/// Modules of white border around the code, as the QR specification asks.
const QUIET_ZONE: u32 = 4;

/// How long a request waits for a free renderer before answering 503.
const QUEUE_WAIT: Duration = Duration::from_secs(5);
/// How long a request waits for its render once a renderer took it.
const RENDER_WAIT: Duration = Duration::from_secs(30);

/// Puts the calling thread at the lowest normal scheduling priority (nice 19). Failing to
/// (another platform, a sandbox) is logged, not fatal.
fn lowest_priority() {
    use thread_priority::unix::{
        NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
        thread_native_id,
    };
    if let Err(e) = set_thread_priority_and_policy(
        thread_native_id(),
        thread_priority::ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other),
    ) {
        tracing::warn!(error = ?e, "QR render thread keeps its normal priority");
    }
}
/// Bytes of rendered images kept (a 2048-pixel PNG is ~30–100 KB).
const CACHE_BYTES: u64 = 32 * 1024 * 1024;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Svg,
    Png,
}

#[derive(Clone)]
struct ByLength;

impl quick_cache::Weighter<(Box<str>, Format, u32), Bytes> for ByLength {
    fn weight(&self, key: &(Box<str>, Format, u32), image: &Bytes) -> u64 {
        (key.0.len() + image.len() + 64) as u64
    }
}

/// A render for one of the render threads.
type Job = Box<dyn FnOnce() + Send>;

/// Renders QR codes off the request threads, a bounded number at a time, with a cache.
pub struct QrRenderer {
    permits: Arc<tokio::sync::Semaphore>,
    /// To the render threads; at most one job per permit is ever queued.
    jobs: std::sync::mpsc::SyncSender<Job>,
    cache: quick_cache::sync::Cache<(Box<str>, Format, u32), Bytes, ByLength>,
}

impl QrRenderer {
    /// Starts `concurrency` render threads (they end when the renderer is dropped).
    pub fn new(concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(concurrency);
        let queue = Arc::new(parking_lot::Mutex::new(queue));
        for i in 0..concurrency {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("snip-qr-{i}"))
                .spawn(move || {
                    lowest_priority();
                    loop {
                        // One thread waits on the queue at a time; the others on the lock.
                        let job = queue.lock().recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a QR render thread");
            }
        }
        QrRenderer {
            permits: Arc::new(tokio::sync::Semaphore::new(concurrency)),
            jobs,
            cache: quick_cache::sync::Cache::with_weighter(1024, CACHE_BYTES, ByLength),
        }
    }

    pub async fn render(&self, url: String, format: Format, size: u32) -> Result<Bytes> {
        let key = (url.into_boxed_str(), format, size);
        if let Some(image) = self.cache.get(&key) {
            return Ok(image);
        }
        let permit = tokio::time::timeout(QUEUE_WAIT, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| QrError::Busy("every QR renderer stayed busy for 5 s"))?
            .map_err(|_| QrError::Failed("the QR renderer is closed".into()))?;
        let url = key.0.clone();
        let (done, image) = tokio::sync::oneshot::channel();
        self.jobs
            .try_send(Box::new(move || {
                let _permit = permit;
                let in_flight = metrics::gauge!("snip_qr_renders_in_flight");
                in_flight.increment(1);
                let image = render(&url, format, size);
                in_flight.decrement(1);
                let _ = done.send(image);
            }))
            .map_err(|_| QrError::Busy("every QR renderer stayed busy for 5 s"))?;
        // Bounded too: a renderer that cannot run (starved by redirects at the lowest priority,
        // or never started) must not hold the request forever.
        let image = tokio::time::timeout(RENDER_WAIT, image)
            .await
            .map_err(|_| QrError::Busy("the QR renderer did not finish within 30 s"))?
            .map_err(|_| QrError::Failed("the QR renderer stopped".into()))??;
        metrics::counter!("snip_qr_renders_total").increment(1);
        self.cache.insert(key, image.clone());
        Ok(image)
    }
}

/// The image itself (runs on a blocking thread).
fn render(url: &str, format: Format, size: u32) -> Result<Bytes> {
    let qr = QrCode::with_error_correction_level(url, EcLevel::M)
        .map_err(|e| QrError::Failed(format!("QR encoding failed: {e}")))?;
    Ok(match format {
        Format::Png => png(&qr, size)?.into(),
        Format::Svg => {
            // One unit per module in the viewBox, displayed at exactly size × size.
            let svg = qr
                .render::<qrcode::render::svg::Color<'_>>()
                .module_dimensions(1, 1)
                .quiet_zone(true)
                .build();
            let total = qr.width() + 2 * QUIET_ZONE as usize;
            svg.replacen(
                &format!(r#"width="{total}" height="{total}""#),
                &format!(r#"width="{size}" height="{size}""#),
                1,
            )
            .into()
        }
    })
}

/// A `size`×`size` grayscale PNG: whole-pixel modules, centred, with at least the quiet zone
/// around them (sampled down when `size` is smaller than one pixel per module).
fn png(code: &QrCode, size: u32) -> Result<Vec<u8>> {
    let modules = code.width() as u32;
    let total = modules + 2 * QUIET_ZONE;
    let colors = code.to_colors();
    let dark = |mx: u32, my: u32| {
        (QUIET_ZONE..QUIET_ZONE + modules).contains(&mx)
            && (QUIET_ZONE..QUIET_ZONE + modules).contains(&my)
            && colors[((my - QUIET_ZONE) * modules + (mx - QUIET_ZONE)) as usize] == Color::Dark
    };
    let scale = size / total;
    let offset = if scale >= 1 {
        (size - scale * total) / 2
    } else {
        0
    };
    let side = size;
    let mut pixels = vec![255u8; (side * side) as usize];
    for y in 0..side {
        for x in 0..side {
            let (mx, my) = if scale >= 1 {
                if x < offset
                    || y < offset
                    || x >= offset + scale * total
                    || y >= offset + scale * total
                {
                    continue;
                }
                ((x - offset) / scale, (y - offset) / scale)
            } else {
                (x * total / side, y * total / side)
            };
            if dark(mx, my) {
                pixels[(y * side + x) as usize] = 0;
            }
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder
        .write_header()
        .map_err(|e| QrError::Failed(e.to_string()))?;
    writer
        .write_image_data(&pixels)
        .map_err(|e| QrError::Failed(e.to_string()))?;
    writer
        .finish()
        .map_err(|e| QrError::Failed(e.to_string()))?;
    Ok(out)
}
