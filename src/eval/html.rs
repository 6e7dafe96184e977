//! `lalo eval`'s HTML report: one self-contained page (inline SVG, no scripts, nothing fetched)
//! with execution accuracy per database and per category, seen against held-out databases,
//! the latency histogram, the decline rates, and every question with its SQL or its error.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::report::{Report, Scored};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Horizontal bars, one per (label, correct, total), as an SVG of fixed width.
fn bars(title: &str, rows: &[(String, usize, usize, &str)]) -> String {
    let (w, row_h, label_w) = (640.0, 22.0, 190.0);
    let h = 30.0 + row_h * rows.len() as f64;
    let mut svg = format!("<h3>{}</h3><svg width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{}\">", esc(title), esc(title));
    for (i, (label, c, t, color)) in rows.iter().enumerate() {
        let y = 10.0 + row_h * i as f64;
        let share = if *t == 0 { 0.0 } else { *c as f64 / *t as f64 };
        let bar = (w - label_w - 90.0) * share;
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{:.0}\" font-size=\"12\">{}</text><rect x=\"{label_w}\" y=\"{y:.0}\" width=\"{bar:.1}\" height=\"{:.0}\" fill=\"{color}\"/>\
             <text x=\"{:.0}\" y=\"{:.0}\" font-size=\"12\">{c}/{t} = {:.1}%</text>",
            y + 14.0,
            esc(label),
            row_h - 6.0,
            label_w + bar + 6.0,
            y + 14.0,
            100.0 * share
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A histogram of pipeline latency (ms) in ten buckets up to the 99th percentile.
fn histogram(values: &[f64]) -> String {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return String::new();
    }
    v.sort_by(f64::total_cmp);
    let top = v[((v.len() as f64 * 0.99) as usize).min(v.len() - 1)].max(1.0);
    let mut counts = [0usize; 10];
    for x in &v {
        counts[((x / top * 10.0) as usize).min(9)] += 1;
    }
    let max = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let (w, h) = (640.0, 180.0);
    let mut svg = format!("<h3>Pipeline latency (question to governed plan)</h3><svg width=\"{w}\" height=\"{}\" role=\"img\" aria-label=\"latency histogram\">", h + 30.0);
    for (i, c) in counts.iter().enumerate() {
        let bh = h * *c as f64 / max;
        let x = i as f64 * w / 10.0;
        let _ = write!(
            svg,
            "<rect x=\"{:.0}\" y=\"{:.0}\" width=\"{:.0}\" height=\"{bh:.1}\" fill=\"#4a7bd0\"/><text x=\"{:.0}\" y=\"{:.0}\" font-size=\"11\">{c}</text>\
             <text x=\"{x:.0}\" y=\"{:.0}\" font-size=\"10\">{:.0}ms</text>",
            x + 2.0,
            h - bh,
            w / 10.0 - 4.0,
            x + 4.0,
            (h - bh - 3.0).max(10.0),
            h + 14.0,
            top * i as f64 / 10.0
        );
    }
    svg.push_str("</svg>");
    svg
}

fn tally(scored: &[&Scored], key: impl Fn(&Scored) -> String) -> BTreeMap<String, (usize, usize)> {
    let mut m: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for s in scored.iter().filter(|s| s.answerable) {
        let e = m.entry(key(s)).or_default();
        e.0 += s.correct as usize;
        e.1 += 1;
    }
    m
}

/// The whole page.
pub fn render(report: &Report, drafter: &str) -> String {
    let all: Vec<&Scored> = report.scored.iter().collect();
    let held = |s: &Scored| report.holdout.contains(&s.db);
    let mut page = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>lalo eval</title><style>body{font-family:sans-serif;max-width:980px;margin:2em auto}\
         table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top}.ok{color:#176f2c}.no{color:#a02020}\
         code{font-size:11px;white-space:pre-wrap}</style></head><body>",
    );
    let answerable = all.iter().filter(|s| s.answerable).count();
    let correct = all.iter().filter(|s| s.answerable && s.correct).count();
    let _ = write!(
        page,
        "<h1>lalo eval</h1><p>Drafter <b>{}</b>: execution accuracy <b>{correct}/{answerable} = {:.1}%</b>; unanswerable questions declined {:.1}%.</p>",
        esc(drafter),
        100.0 * report.accuracy(),
        100.0 * report.decline_rate()
    );
    if !report.holdout.is_empty() {
        let mut rows = vec![];
        for (label, h, color) in [("seen", false, "#4a7bd0"), ("held-out", true, "#d08a4a")] {
            let part: Vec<&Scored> = all.iter().copied().filter(|s| held(s) == h).collect();
            let c = part.iter().filter(|s| s.answerable && s.correct).count();
            let t = part.iter().filter(|s| s.answerable).count();
            rows.push((format!("{label} databases"), c, t, color));
            let d = part.iter().filter(|s| !s.answerable && s.declined).count();
            let u = part.iter().filter(|s| !s.answerable).count();
            rows.push((format!("{label}: unanswerable declined"), d, u, "#999"));
        }
        let title = if report.restyled { "Seen and held-out databases (held-out asked as renamed copies)" } else { "Seen and held-out databases" };
        page.push_str(&bars(title, &rows));
    }
    let per_db: Vec<(String, usize, usize, &str)> = tally(&all, |s| s.db.clone())
        .into_iter()
        .map(|(db, (c, t))| {
            let h = report.holdout.contains(&db);
            (if h { format!("{db} (held out)") } else { db }, c, t, if h { "#d08a4a" } else { "#4a7bd0" })
        })
        .collect();
    page.push_str(&bars("Execution accuracy per database", &per_db));
    let per_cat: Vec<(String, usize, usize, &str)> = tally(&all, |s| s.category.clone()).into_iter().map(|(k, (c, t))| (k, c, t, "#4a7bd0")).collect();
    page.push_str(&bars("Execution accuracy per category", &per_cat));
    let declines: Vec<(String, usize, usize, &str)> = {
        let mut m: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for s in all.iter().filter(|s| !s.answerable) {
            let e = m.entry(s.db.clone()).or_default();
            e.0 += s.declined as usize;
            e.1 += 1;
        }
        m.into_iter().map(|(k, (c, t))| (k, c, t, "#999")).collect()
    };
    if !declines.is_empty() {
        page.push_str(&bars("Unanswerable questions declined per database", &declines));
    }
    page.push_str(&histogram(&all.iter().map(|s| s.pipeline_ms).collect::<Vec<_>>()));
    page.push_str("<h3>Questions</h3><table><tr><th>db</th><th>category</th><th>question</th><th>result</th><th>SQL or error</th></tr>");
    for s in &all {
        let (class, result) = match (s.answerable, s.correct, s.declined) {
            (true, true, _) => ("ok", "correct"),
            (false, _, true) => ("ok", "declined"),
            (true, false, true) => ("no", "declined"),
            _ => ("no", "wrong"),
        };
        let detail = s.sql.clone().or_else(|| s.error.clone()).unwrap_or_default();
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{result}</td><td><code>{}</code></td></tr>",
            esc(&s.db),
            esc(&s.category),
            esc(&s.question),
            esc(&detail)
        );
    }
    page.push_str("</table></body></html>\n");
    page
}
