//! User-agent classification for click analytics: browser, operating system, device type and
//! whether the client is a bot, with the [woothee] parser (the Woothee project's shared
//! dataset), memoised per user-agent string so that the redirect path pays a cache lookup, not
//! a parse.
//!
//! Every name this module produces comes from a fixed set (woothee's dataset, shortened, and
//! the tables below), never from the header itself: the stored dimensions keep a bounded number
//! of values per link and day, and a client inventing user agents must not be able to fill them
//! with names of its choosing.

use std::cell::RefCell;
use std::sync::Arc;

use woothee::parser::{Parser, WootheeResult};

use super::front::Front;

/// The kind of client a click came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Device {
    Desktop,
    /// Phones, smart and feature.
    Mobile,
    /// iPads and Android tablets.
    Tablet,
    /// Crawlers, link-preview fetchers, HTTP libraries, command-line clients, and requests
    /// without a user agent (browsers always send one).
    Bot,
    /// Consoles, TVs, and whatever woothee does not recognise.
    Other,
}

impl Device {
    /// The name used in stats and exports.
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

/// What analytics keep of a user agent.
#[derive(Debug, PartialEq, Eq)]
pub struct UaClass {
    /// Short browser (or bot, or client) name: "Chrome", "Safari", "Firefox", "Edge",
    /// "Googlebot", "curl", … "Other" when unknown.
    pub browser: Box<str>,
    /// Short operating-system name: "Windows", "macOS", "iOS", "Android", "Linux", … "Other"
    /// when unknown.
    pub os: Box<str>,
    pub device: Device,
    /// Whether the click is counted apart from human clicks (then `device` is [`Device::Bot`]).
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
/// it), so a hostile header cannot make the memo hold huge keys. Real user agents stay well
/// under it (a desktop Chrome's is about 110 bytes).
pub const MAX_UA: usize = 512;

/// Non-browser clients woothee does not recognise (it knows curl, Wget, Python-urllib, Java,
/// Perl, Ruby and PHP clients, as "HTTP Library"): HTTP libraries, command-line and load tools,
/// and link-preview fetchers whose user agent says neither "bot" nor "crawler". Each is
/// `(lowercase product token, name)`, matched at the start of the user agent, where such clients
/// put their product token and browsers put "Mozilla/".
const CLIENTS: &[(&str, &str)] = &[
    ("curl/", "curl"),
    ("wget/", "Wget"),
    ("python-requests/", "python-requests"),
    ("python-httpx/", "python-httpx"),
    ("python/", "Python"), // aiohttp: "Python/3.12 aiohttp/3.9.1"
    ("aiohttp/", "aiohttp"),
    ("go-http-client/", "Go-http-client"),
    ("okhttp/", "okhttp"),
    ("java/", "Java"),
    ("apache-httpclient/", "Apache-HttpClient"),
    ("libwww-perl/", "libwww-perl"),
    ("node-fetch", "node-fetch"),
    ("node", "node"), // Node's built-in fetch
    ("undici", "undici"),
    ("axios/", "axios"),
    ("got", "got"),
    ("httpie/", "HTTPie"),
    ("postmanruntime/", "PostmanRuntime"),
    ("guzzlehttp/", "GuzzleHttp"),
    ("dart/", "Dart"),
    ("http.rb/", "http.rb"),
    ("scrapy/", "Scrapy"),
    ("apachebench/", "ApacheBench"),
    ("k6/", "k6"),
    ("whatsapp/", "WhatsApp"),
    ("mastodon/", "Mastodon"),
];

/// Well-known bots, `(lowercase token, name)`, matched anywhere in the user agent: crawlers
/// woothee files under "misc crawler" (named here instead of "Other"), and automated browsers
/// it takes for the browser they drive (HeadlessChrome, Lighthouse).
const BOT_NAMES: &[(&str, &str)] = &[
    ("slackbot", "Slackbot"),
    ("discordbot", "Discordbot"),
    ("telegrambot", "TelegramBot"),
    ("linkedinbot", "LinkedInBot"),
    ("skypeuripreview", "SkypeUriPreview"),
    ("pinterestbot", "Pinterestbot"),
    ("redditbot", "redditbot"),
    ("applebot", "Applebot"),
    ("duckduckbot", "DuckDuckBot"),
    ("yandexbot", "YandexBot"),
    ("semrushbot", "SemrushBot"),
    ("mj12bot", "MJ12bot"),
    ("dotbot", "DotBot"),
    ("petalbot", "PetalBot"),
    ("bytespider", "Bytespider"),
    ("gptbot", "GPTBot"),
    ("oai-searchbot", "OAI-SearchBot"),
    ("chatgpt-user", "ChatGPT-User"),
    ("claudebot", "ClaudeBot"),
    ("perplexitybot", "PerplexityBot"),
    ("headlesschrome", "HeadlessChrome"),
    ("chrome-lighthouse", "Lighthouse"),
];

/// Whether `lower` starts with the client token `token` as a whole product name ("node" but
/// not "nodejs-app").
fn starts_with_client(lower: &str, token: &str) -> bool {
    lower.starts_with(token)
        && (token.ends_with('/')
            || matches!(lower.as_bytes().get(token.len()), None | Some(b'/' | b' ')))
}

/// Whether the user agent calls itself a bot, crawler or spider. This is woothee's own last
/// resort test (a word ending in one of them, followed by a separator), which it applies only
/// to user agents it could not otherwise place; applied to all, it also catches crawlers that
/// imitate a browser ("… Chrome/120 Safari/537.36 (compatible; SomeBot/1.0)"). "Cubot" is a
/// phone brand, not a bot.
fn says_bot(lower: &str) -> bool {
    ["bot", "crawler", "spider"].iter().any(|word| {
        lower.match_indices(word).any(|(at, _)| {
            let end = at + word.len();
            let separated = lower
                .as_bytes()
                .get(end)
                .is_none_or(|b| b"-_ ./;@()".contains(b));
            separated && !(*word == "bot" && lower[..at].ends_with("cu"))
        })
    })
}

/// Woothee's crawler names, shortened where its dataset adds a vendor prefix. None for its
/// catch-all "misc crawler".
fn crawler_name(name: &str) -> Option<&str> {
    match name {
        "misc crawler" | "UNKNOWN" | "" => None,
        "ahref AhrefsBot" => Some("AhrefsBot"),
        "SeoMoz rogerbot" => Some("rogerbot"),
        "facebook" => Some("Facebook"),
        "twitter" => Some("Twitter"),
        other => Some(other),
    }
}

/// Woothee's "HTTP Library" results say which library in the version field.
fn library_name(version: &str) -> &'static str {
    match version {
        "curl" => "curl",
        "wget" => "Wget",
        "python" => "Python",
        "perl" => "Perl",
        "ruby" => "Ruby",
        "php" => "PHP",
        "Java" => "Java",
        _ => "Other",
    }
}

fn short_browser(name: &str) -> &str {
    match name {
        "UNKNOWN" | "" => "Other",
        "SamsungBrowser" => "Samsung Internet",
        other => other,
    }
}

fn short_os(os: &str) -> &str {
    match os {
        "Mac OSX" | "Mac OS Classic" => "macOS",
        // woothee names Apple's mobile systems after the device; iPadOS counts as iOS.
        "iPhone" | "iPad" | "iPod" | "iOS" => "iOS",
        "Windows Phone OS" => "Windows Phone",
        o if o.starts_with("Windows") => "Windows",
        "UNKNOWN" | "" => "Other",
        other => other,
    }
}

/// The bot name of a user agent, or None when it is not a bot.
fn bot_name<'a>(lower: &str, parsed: &WootheeResult<'a>) -> Option<&'a str> {
    if let Some(&(_, name)) = CLIENTS.iter().find(|(t, _)| starts_with_client(lower, t)) {
        return Some(name);
    }
    let known = BOT_NAMES
        .iter()
        .find(|(t, _)| lower.contains(t))
        .map(|&(_, name)| name);
    if parsed.category == "crawler" {
        return Some(crawler_name(parsed.name).or(known).unwrap_or("Other"));
    }
    if parsed.name == "HTTP Library" {
        return Some(known.unwrap_or(library_name(parsed.version)));
    }
    known.or_else(|| says_bot(lower).then_some("Other"))
}

/// Classifies one user agent. Empty (or "-") is a bot: every browser sends a user agent.
pub fn classify(user_agent: &str) -> UaClass {
    UaClass {
        fingerprint: fingerprint(user_agent),
        ..classify_only(user_agent)
    }
}

fn classify_only(user_agent: &str) -> UaClass {
    let ua = user_agent.trim();
    if ua.is_empty() || ua == "-" {
        return bot("Other", "Other");
    }
    let lower = ua.to_ascii_lowercase();
    // Unrecognised: all fields empty, which the names below treat as woothee's "UNKNOWN".
    let parsed = Parser::new().parse(ua).unwrap_or_default();
    let os = short_os(parsed.os);
    if let Some(name) = bot_name(&lower, &parsed) {
        return bot(name, os);
    }
    let device = match parsed.category {
        "pc" => Device::Desktop,
        "smartphone" | "mobilephone" => {
            // Android tablets are the Android devices that do not say "Mobile" (Chrome puts it
            // before "Safari/", Firefox in the platform: "(Android 14; Mobile; rv:…)").
            let android_tablet = parsed.os == "Android" && !lower.contains("mobile");
            if parsed.os == "iPad" || lower.contains("ipad") || android_tablet {
                Device::Tablet
            } else {
                Device::Mobile
            }
        }
        _ => Device::Other,
    };
    UaClass {
        browser: short_browser(parsed.name).into(),
        os: os.into(),
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

/// Memoised classification, bounded: a redirect pays a hash of the header and a lookup; only
/// user agents not seen recently are parsed. Real traffic has few distinct user agents, so a
/// cache of some thousands answers nearly all clicks, and its eviction keeps a flood of
/// one-off values from displacing them.
pub struct UaCache {
    cache: quick_cache::sync::Cache<Box<[u8]>, Arc<UaClass>>,
    missing: Arc<UaClass>,
}

impl UaCache {
    /// A memo of at most `capacity` user agents (each key at most [`MAX_UA`] bytes).
    pub fn new(capacity: usize) -> Self {
        UaCache {
            cache: quick_cache::sync::Cache::new(capacity.max(1)),
            missing: Arc::new(classify("")),
        }
    }

    /// The class of a `User-Agent` header value (None: no header). Values are bytes because
    /// headers need not be UTF-8: invalid sequences are replaced, and values longer than
    /// [`MAX_UA`] are classified (and memoised) on their first [`MAX_UA`] bytes. Two threads
    /// missing on the same value at once may each parse it; both results are equal.
    pub fn get(&self, user_agent: Option<&[u8]>) -> Arc<UaClass> {
        let Some(raw) = user_agent.filter(|u| !u.is_empty()) else {
            return self.missing.clone();
        };
        let key = &raw[..raw.len().min(MAX_UA)];
        if let Some(hit) = UA_FRONT.with_borrow(|f| f.get(key)) {
            return hit;
        }
        self.get_behind_front(key)
    }

    /// [`UaCache::get`] of a value this thread's front does not hold (out of line, so that the
    /// common case's code stays small: the redirect's code competes for the instruction cache).
    #[cold]
    #[inline(never)]
    fn get_behind_front(&self, key: &[u8]) -> Arc<UaClass> {
        let class = match self.cache.get(key) {
            Some(hit) => hit,
            None => {
                let class = Arc::new(classify(&String::from_utf8_lossy(key)));
                self.cache.insert(key.into(), class.clone());
                class
            }
        };
        UA_FRONT.with_borrow_mut(|f| f.put(key, class.clone()));
        class
    }
}

thread_local! {
    /// This thread's front of the memo (classification is a pure function of the bytes, so
    /// every `UaCache` may share it).
    static UA_FRONT: RefCell<Front<Arc<UaClass>>> = const { RefCell::new(Front::new()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
    const GOOGLEBOT: &str =
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

    fn class(ua: &str) -> (String, String, Device, bool) {
        let c = classify(ua);
        (c.browser.into(), c.os.into(), c.device, c.is_bot)
    }

    fn check(ua: &str, browser: &str, os: &str, device: Device, is_bot: bool) {
        assert_eq!(
            class(ua),
            (browser.to_string(), os.to_string(), device, is_bot),
            "{ua:?}"
        );
    }

    /// What woothee itself says, the input of the normalisation above (a woothee upgrade that
    /// changes it shows here first).
    #[test]
    fn woothee_raw_output() {
        fn raw(ua: &str) -> Option<(&str, &str, &str, String)> {
            Parser::new()
                .parse(ua)
                .map(|r| (r.name, r.category, r.os, r.version.to_string()))
        }
        let r = |name, category, os, version: &str| Some((name, category, os, version.into()));
        assert_eq!(
            raw(CHROME_WINDOWS),
            r("Chrome", "pc", "Windows 10", "120.0.0.0")
        );
        assert_eq!(
            raw(GOOGLEBOT),
            r("Googlebot", "crawler", "UNKNOWN", "UNKNOWN")
        );
        assert_eq!(
            raw("curl/8.5.0"),
            r("HTTP Library", "misc", "UNKNOWN", "curl")
        );
        assert_eq!(raw("python-requests/2.31.0"), None);
    }

    #[test]
    fn browsers_are_classified() {
        use Device::*;
        check(CHROME_WINDOWS, "Chrome", "Windows", Desktop, false);
        check(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
            "Safari",
            "iOS",
            Mobile,
            false,
        );
        check(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:120.0) Gecko/20100101 Firefox/120.0",
            "Firefox",
            "macOS",
            Desktop,
            false,
        );
        check(
            "Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
            "Safari",
            "iOS",
            Tablet,
            false,
        );
        check(
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
            "Chrome",
            "Android",
            Mobile,
            false,
        );
        check(
            "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
            "Chrome",
            "Android",
            Tablet,
            false,
        );
        check(
            "Mozilla/5.0 (Android 14; Tablet; rv:121.0) Gecko/121.0 Firefox/121.0",
            "Firefox",
            "Android",
            Tablet,
            false,
        );
        check(
            "Mozilla/5.0 (Android 14; Mobile; rv:121.0) Gecko/121.0 Firefox/121.0",
            "Firefox",
            "Android",
            Mobile,
            false,
        );
        check(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
            "Edge",
            "Windows",
            Desktop,
            false,
        );
        check(
            "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
            "Firefox",
            "Linux",
            Desktop,
            false,
        );
        check(
            "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
            "Internet Explorer",
            "Windows",
            Desktop,
            false,
        );
        // "Cubot" is a phone maker, not a bot.
        check(
            "Mozilla/5.0 (Linux; Android 10; CUBOT X19) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
            "Chrome",
            "Android",
            Mobile,
            false,
        );
        check("Mozilla/5.0", "Other", "Other", Other, false);
    }

    #[test]
    fn crawlers_clients_and_empty_agents_are_bots() {
        use Device::Bot;
        check(GOOGLEBOT, "Googlebot", "Other", Bot, true);
        check(
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            "bingbot",
            "Other",
            Bot,
            true,
        );
        check("curl/8.5.0", "curl", "Other", Bot, true);
        check(
            "python-requests/2.31.0",
            "python-requests",
            "Other",
            Bot,
            true,
        );
        check("Go-http-client/1.1", "Go-http-client", "Other", Bot, true);
        check("okhttp/4.12.0", "okhttp", "Other", Bot, true);
        check("Wget/1.21.4", "Wget", "Other", Bot, true);
        check("node", "node", "Other", Bot, true);
        check(
            "WordPress/6.4.2; https://example.com",
            "PHP",
            "Other",
            Bot,
            true,
        );
        check("", "Other", "Other", Bot, true);
        check("   ", "Other", "Other", Bot, true);
        check("-", "Other", "Other", Bot, true);
        // Link-preview fetchers, which a shortener sees for every shared link.
        check(
            "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
            "Slackbot",
            "Other",
            Bot,
            true,
        );
        check("WhatsApp/2.23.20.0 A", "WhatsApp", "Other", Bot, true);
        check(
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            "Facebook",
            "Other",
            Bot,
            true,
        );
        check(
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
            "HeadlessChrome",
            "Linux",
            Bot,
            true,
        );
        // A crawler posing as a browser; its made-up name is not kept.
        check(
            &format!("{CHROME_WINDOWS} (compatible; Zqx7Bot/1.0)"),
            "Other",
            "Windows",
            Bot,
            true,
        );
    }

    #[test]
    fn the_memo_returns_the_same_class() {
        let cache = UaCache::new(10);
        let a = cache.get(Some(CHROME_WINDOWS.as_bytes()));
        assert!(Arc::ptr_eq(&a, &cache.get(Some(CHROME_WINDOWS.as_bytes()))));
        assert_eq!(*a, classify(CHROME_WINDOWS));
        assert!(Arc::ptr_eq(&cache.get(None), &cache.get(Some(b""))));
        assert!(cache.get(None).is_bot);
    }

    #[test]
    fn long_and_invalid_values_are_capped_and_replaced() {
        let cache = UaCache::new(10);
        // Classified on the first MAX_UA bytes, so whatever follows shares the entry.
        let mut long = CHROME_WINDOWS.as_bytes().to_vec();
        long.resize(MAX_UA, b' ');
        let a = cache.get(Some(&[&long[..], b"tail one"].concat()));
        let b = cache.get(Some(&[&long[..], &[b'x'; 100_000][..]].concat()));
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*a.browser, "Chrome");
        // A multi-byte character cut by the cap, and bytes that are not UTF-8.
        let mut cut = vec![b'a'; MAX_UA - 1];
        cut.extend("é".as_bytes());
        assert!(!cache.get(Some(&cut)).browser.is_empty());
        assert_eq!(
            &*cache.get(Some(&[0xff, 0xfe, 0x00, b'/'])).browser,
            "Other"
        );
        assert_eq!(&*cache.get(Some(b"\xc3\x28\xa0")).os, "Other");
    }
}
