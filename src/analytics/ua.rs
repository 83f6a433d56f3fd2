//! User-agent classification for click analytics: browser, operating system, device type and
//! whether the client is a bot, with the [woothee] parser (the Woothee project's shared
//! dataset), memoised per user-agent string so that the redirect path pays a cache lookup, not
//! a parse.

use std::sync::Arc;

use woothee::parser::Parser;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Device {
    Desktop,
    Mobile,
    Tablet,
    Bot,
    Other,
}

impl Device {
    pub fn as_str(self) -> &'static str {
        match self {
            Device::Desktop => "desktop",
            Device::Mobile => "mobile",
            Device::Tablet => "tablet",
            Device::Bot => "bot",
            Device::Other => "other",
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct UaClass {
    pub browser: Box<str>,
    pub os: Box<str>,
    pub device: Device,
    pub is_bot: bool,
    /// A fixed (unkeyed, the same on every instance) 64-bit hash of the user-agent string, so a
    /// visitor hash does not rehash the whole string per click.
    pub fingerprint: u64,
}

fn fingerprint(user_agent: &str) -> u64 {
    use std::hash::Hasher;
    let mut h = siphasher::sip::SipHasher13::new();
    h.write(user_agent.as_bytes());
    h.finish()
}

/// Longest user agent considered; longer ones are classified on this prefix (and memoised under
/// it), so a hostile header cannot make the memo hold huge keys.
const MAX_UA: usize = 512;

/// Automated clients woothee does not put in its crawler category: HTTP libraries and
/// command-line tools. Matched case-insensitively at the start of the user agent.
const CLIENT_PREFIXES: &[&str] = &[
    "curl/",
    "wget/",
    "python-requests/",
    "python-urllib/",
    "python-httpx/",
    "aiohttp/",
    "go-http-client/",
    "okhttp/",
    "java/",
    "apache-httpclient/",
    "libwww-perl/",
    "node-fetch/",
    "axios/",
    "undici",
    "httpie/",
    "postmanruntime/",
    "insomnia/",
    "reqwest/",
    "ruby",
    "php/",
    "guzzlehttp/",
    "dart:io",
    "wrk",
];

/// Tokens that mark a bot anywhere in the user agent (crawlers woothee's dataset misses).
const BOT_TOKENS: &[&str] = &[
    "bot",
    "crawler",
    "spider",
    "slurp",
    "headless",
    "lighthouse",
];

fn short_browser(name: &str) -> &str {
    match name {
        "UNKNOWN" | "" => "Other",
        "Internet Explorer" => "Internet Explorer",
        other => other,
    }
}

fn short_os(os: &str) -> &str {
    match os {
        "Mac OSX" | "Mac OS Classic" => "macOS",
        "iPhone" | "iPad" | "iPod" | "iOS" => "iOS",
        "Android" => "Android",
        "Linux" => "Linux",
        "ChromeOS" => "ChromeOS",
        o if o.starts_with("Windows") => "Windows",
        "UNKNOWN" | "" => "Other",
        other => other,
    }
}

/// Classifies one user agent.
pub fn classify(user_agent: &str) -> UaClass {
    UaClass {
        fingerprint: fingerprint(user_agent),
        ..classify_only(user_agent)
    }
}

fn classify_only(user_agent: &str) -> UaClass {
    let ua = user_agent.trim();
    let lower = ua.to_ascii_lowercase();
    if ua.is_empty() {
        return bot("Other", "Other");
    }
    let parsed = Parser::new().parse(ua);
    let (name, category, os) = parsed
        .as_ref()
        .map_or(("UNKNOWN", "UNKNOWN", "UNKNOWN"), |r| {
            (r.name, r.category, r.os)
        });
    if let Some(client) = CLIENT_PREFIXES.iter().find(|p| lower.starts_with(*p)) {
        // "curl/8.5.0" → "curl": the product token as the client wrote it.
        let product = ua[..client.len()].trim_end_matches('/');
        return bot(product, short_os(os));
    }
    if category == "crawler" || BOT_TOKENS.iter().any(|t| lower.contains(t)) {
        let browser = if name == "UNKNOWN" {
            ua.split(['/', ' ', ';']).next().unwrap_or("Other")
        } else {
            name
        };
        return bot(browser, short_os(os));
    }
    let device = match category {
        "pc" => Device::Desktop,
        "smartphone" | "mobilephone" => {
            let android_tablet = os == "Android" && !lower.contains("mobile");
            if os == "iPad" || lower.contains("ipad") || android_tablet {
                Device::Tablet
            } else {
                Device::Mobile
            }
        }
        _ => Device::Other,
    };
    UaClass {
        browser: short_browser(name).into(),
        os: short_os(os).into(),
        device,
        is_bot: false,
        fingerprint: 0,
    }
}

fn bot(browser: &str, os: &str) -> UaClass {
    UaClass {
        browser: browser.into(),
        os: os.into(),
        device: Device::Bot,
        is_bot: true,
        fingerprint: 0,
    }
}

/// Memoised classification, bounded.
pub struct UaCache {
    cache: quick_cache::sync::Cache<Box<[u8]>, Arc<UaClass>>,
    missing: Arc<UaClass>,
}

impl UaCache {
    pub fn new(capacity: usize) -> Self {
        UaCache {
            cache: quick_cache::sync::Cache::new(capacity.max(1)),
            missing: Arc::new(classify("")),
        }
    }

    /// The class of a `User-Agent` header value (None: no header).
    pub fn get(&self, user_agent: Option<&[u8]>) -> Arc<UaClass> {
        let Some(raw) = user_agent.filter(|u| !u.is_empty()) else {
            return self.missing.clone();
        };
        let key = &raw[..raw.len().min(MAX_UA)];
        if let Some(hit) = self.cache.get(key) {
            return hit;
        }
        let class = Arc::new(classify(&String::from_utf8_lossy(key)));
        self.cache.insert(key.into(), class.clone());
        class
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ua: &str, browser: &str, os: &str, device: Device) {
        let c = classify(ua);
        assert_eq!(
            (c.browser.as_ref(), c.os.as_ref(), c.device, c.is_bot),
            (browser, os, device, device == Device::Bot),
            "{ua}"
        );
    }

    #[test]
    fn real_user_agents_are_classified() {
        check(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
            "Chrome",
            "Windows",
            Device::Desktop,
        );
        check(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
            "Safari",
            "iOS",
            Device::Mobile,
        );
        check(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:120.0) Gecko/20100101 Firefox/120.0",
            "Firefox",
            "macOS",
            Device::Desktop,
        );
        check(
            "Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
            "Safari",
            "iOS",
            Device::Tablet,
        );
        check(
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
            "Chrome",
            "Android",
            Device::Mobile,
        );
        check(
            "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
            "Chrome",
            "Android",
            Device::Tablet,
        );
    }

    #[test]
    fn crawlers_clients_and_empty_agents_are_bots() {
        for ua in [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            "curl/8.5.0",
            "python-requests/2.31.0",
            "Go-http-client/1.1",
            "",
            "   ",
        ] {
            let c = classify(ua);
            assert!(c.is_bot, "{ua:?} → {c:?}");
            assert_eq!(c.device, Device::Bot);
        }
        assert_eq!(classify("curl/8.5.0").browser.as_ref(), "curl");
        assert_eq!(
            classify("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
                .browser
                .as_ref(),
            "Googlebot"
        );
    }

    #[test]
    fn the_memo_returns_the_same_class_and_survives_hostile_values() {
        let cache = UaCache::new(10);
        let a = cache.get(Some(b"curl/8.5.0"));
        assert!(Arc::ptr_eq(&a, &cache.get(Some(b"curl/8.5.0"))));
        assert!(cache.get(None).is_bot);
        let huge = vec![b'A'; 100_000];
        assert!(!cache.get(Some(&huge)).browser.is_empty());
        let _ = cache.get(Some(&[0xff, 0xfe, 0x00, b'/']));
    }
}
