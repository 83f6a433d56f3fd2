//! What the client prints: tables for people (comfy-table), JSON for scripts, colour only on a
//! terminal and never with `NO_COLOR`, a bar chart of a series and a QR code drawn with
//! Unicode blocks.

use std::io::IsTerminal;

use comfy_table::{ContentArrangement, LineStyle, Table, TableStyle};
use serde::Serialize;

use super::client::{CliError, CliResult};
use crate::http::stats::{Entry, Stats};
use crate::http::views::{KeyView, LinkView};

/// Whether stdout gets colours: a terminal, and `NO_COLOR` unset or empty (no-color.org).
pub fn colour() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

/// `text` in an SGR colour (`"1"` bold, `"31"` red, `"32"` green, `"2"` dim) when colours are on.
pub fn paint(text: &str, sgr: &str) -> String {
    if colour() {
        format!("\x1b[{sgr}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// Writes `text` on stdout. A reader that went away (`snip link list | head`) ends the command
/// quietly rather than with a panic.
pub fn out(text: &str) -> CliResult<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => CliError::quiet(),
            _ => CliError::failed(format!("cannot write to stdout: {e}")),
        })
}

/// `text` and a line break on stdout.
pub fn line(text: &str) -> CliResult<()> {
    out(&format!("{text}\n"))
}

/// One JSON document on stdout.
pub fn json<T: Serialize>(value: &T) -> CliResult<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::failed(e.to_string()))?;
    line(&text)
}

/// One JSON object on one line.
pub fn json_line<T: Serialize>(value: &T) -> CliResult<()> {
    let text = serde_json::to_string(value).map_err(|e| CliError::failed(e.to_string()))?;
    line(&text)
}

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(TableStyle::new().header_separator(LineStyle::none().fill('─').junction(' ')))
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().copied());
    table
}

/// The state of a link in a word (coloured outside tables: their widths count bytes).
fn state(link: &LinkView, coloured: bool) -> String {
    let (word, sgr) = if link.takedown_reason.is_some() {
        ("taken down", "31")
    } else if link.disabled {
        ("disabled", "31")
    } else {
        ("active", "32")
    };
    if coloured {
        paint(word, sgr)
    } else {
        word.to_string()
    }
}

/// `s` cut to `max` characters with an ellipsis.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Links as a table: code, destination, title, tags, created, state.
pub fn links_table(links: &[LinkView]) -> String {
    let mut t = table(&["code", "url", "title", "tags", "created", "state"]);
    for l in links {
        t.add_row(vec![
            l.code.clone(),
            cut(&l.url, 60),
            cut(l.title.as_deref().unwrap_or(""), 30),
            l.tags.join(", "),
            l.created_at.clone(),
            state(l, false),
        ]);
    }
    format!("{t}\n")
}

/// One link, a field per line.
pub fn link_details(l: &LinkView) -> String {
    let none = || paint("none", "2");
    let rows = [
        ("short url", paint(&l.short_url, "1")),
        ("url", l.url.clone()),
        ("title", l.title.clone().unwrap_or_else(none)),
        (
            "tags",
            if l.tags.is_empty() {
                none()
            } else {
                l.tags.join(", ")
            },
        ),
        ("created", l.created_at.clone()),
        ("updated", l.updated_at.clone()),
        ("expires", l.expires_at.clone().unwrap_or_else(none)),
        (
            "max clicks",
            l.max_clicks.map_or_else(none, |m| m.to_string()),
        ),
        ("state", state(l, true)),
    ];
    let mut out = String::new();
    for (name, value) in rows {
        out.push_str(&format!("{name:>10}  {value}\n"));
    }
    if let Some(reason) = &l.takedown_reason {
        out.push_str(&format!("{:>10}  {reason}\n", "takedown"));
    }
    out
}

/// Keys as a table (never a secret).
pub fn keys_table(keys: &[KeyView]) -> String {
    let mut t = table(&["id", "name", "role", "created"]);
    for k in keys {
        t.add_row(vec![
            k.id.clone(),
            k.name.clone(),
            k.role.clone(),
            k.created_at.clone(),
        ]);
    }
    format!("{t}\n")
}

/// Rows of the bar chart at most (longer series are summed into this many rows).
const CHART_ROWS: usize = 48;
/// Width of the longest bar, in cells.
const BAR_WIDTH: usize = 40;

/// A bar per bucket (or per group of buckets), with eighth blocks.
pub fn bar_chart(points: &[(String, u64)]) -> String {
    if points.is_empty() {
        return String::new();
    }
    let group = points.len().div_ceil(CHART_ROWS);
    let rows: Vec<(String, u64)> = points
        .chunks(group)
        .map(|c| (c[0].0.clone(), c.iter().map(|p| p.1).sum()))
        .collect();
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
    let label_width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (label, n) in rows {
        let eighths = (n as u128 * (BAR_WIDTH as u128 * 8) / max as u128) as usize;
        let mut bar = "█".repeat(eighths / 8);
        if !eighths.is_multiple_of(8) {
            bar.push(['▏', '▎', '▍', '▌', '▋', '▊', '▉'][eighths % 8 - 1]);
        }
        if n > 0 && bar.is_empty() {
            bar.push('▏');
        }
        out.push_str(&format!(
            "{label:<label_width$}  {} {n}\n",
            paint(&format!("{bar:<BAR_WIDTH$}"), "36")
        ));
    }
    out
}

fn top_table(title: &str, entries: &[Entry]) -> String {
    let mut t = table(&[title, "clicks"]);
    for e in entries.iter().take(10) {
        t.add_row(vec![cut(&e.key, 60), e.clicks.to_string()]);
    }
    t.to_string()
}

/// A link's statistics: totals, the chart of its series, and the top tables.
pub fn stats(s: &Stats) -> String {
    let mut out = format!(
        "{}  {} clicks ({} human, {} bots), ~{} unique visitors",
        paint(&s.code, "1"),
        s.total_clicks,
        s.human_clicks,
        s.bot_clicks,
        s.unique_visitors
    );
    if s.imported_clicks > 0 {
        out.push_str(&format!(", {} imported", s.imported_clicks));
    }
    out.push_str(&format!(
        "\n{} to {} by {}, counted up to {}\n\n",
        s.from, s.to, s.interval, s.as_of
    ));
    let label = |t: &str| match s.interval.as_str() {
        "day" => t.get(..10).unwrap_or(t).to_string(),
        _ => t.get(..16).unwrap_or(t).replace('T', " "),
    };
    let points: Vec<(String, u64)> = s.series.iter().map(|p| (label(&p.t), p.clicks)).collect();
    out.push_str(&bar_chart(&points));
    for (title, entries) in [
        ("referrer", &s.referrers),
        ("country", &s.countries),
        ("browser", &s.browsers),
    ] {
        if !entries.is_empty() {
            out.push('\n');
            out.push_str(&top_table(title, entries));
            out.push('\n');
        }
    }
    out
}

/// The QR code of `text` in Unicode half blocks (two modules per character cell), dark on a
/// light background with its quiet zone, so phones read it from the terminal.
pub fn qr_blocks(text: &str) -> CliResult<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| CliError::failed(format!("cannot draw a QR code of {text}: {e}")))?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build()
        + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_bucket() {
        let chart = bar_chart(&[("a".into(), 10), ("b".into(), 5), ("c".into(), 0)]);
        let lines: Vec<&str> = chart.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].matches('█').count(), BAR_WIDTH);
        assert_eq!(lines[1].matches('█').count(), BAR_WIDTH / 2);
        assert_eq!(lines[2].matches('█').count(), 0);
        assert!(lines[0].ends_with(" 10") && lines[2].ends_with(" 0"));
    }

    #[test]
    fn long_series_are_summed_into_at_most_48_rows() {
        let points: Vec<(String, u64)> = (0..720).map(|i| (format!("h{i}"), 1)).collect();
        let chart = bar_chart(&points);
        assert_eq!(chart.lines().count(), 48);
        assert!(chart.lines().all(|l| l.ends_with(" 15")));
    }

    #[test]
    fn a_qr_code_is_drawn_with_half_blocks() {
        let drawn = qr_blocks("https://sn.ip/abc").unwrap();
        assert!(drawn.contains('▀') || drawn.contains('▄'));
        let widths: Vec<usize> = drawn.lines().map(|l| l.chars().count()).collect();
        assert!(
            widths.windows(2).all(|w| w[0] == w[1]),
            "a square: {widths:?}"
        );
    }
}
