//! `iocsink log summary` and `iocsink log tail`: reading the block log for people. Both
//! field-name styles are understood (DnsEvents names and ASIM names).

use std::collections::HashMap;
use std::io::{BufRead, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// The fields the tools show, whichever names the line uses.
struct Line {
    time: String,
    client: String,
    name: String,
    qtype: String,
    action: String,
    indicator: String,
    family: String,
    feed: String,
    via: String,
}

fn field(v: &Value, names: &[&str]) -> String {
    names
        .iter()
        .find_map(|n| match v.get(*n)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        })
        .unwrap_or_default()
}

fn read_line(text: &str) -> Option<Line> {
    let v: Value = serde_json::from_str(text).ok()?;
    let extra = v.get("AdditionalFields").cloned().unwrap_or(Value::Null);
    let either = |a: &[&str], b: &str| {
        let s = field(&v, a);
        if s.is_empty() { field(&extra, &[b]) } else { s }
    };
    Some(Line {
        time: field(&v, &["TimeGenerated"]),
        client: field(&v, &["ClientIP", "SrcIpAddr"]),
        name: field(&v, &["Name", "DnsQuery"]),
        qtype: field(&v, &["QueryType", "DnsQueryTypeName"]),
        action: either(&["Action"], "Action"),
        indicator: either(&["Indicator"], "Indicator"),
        family: field(&v, &["MalwareFamily", "ThreatName"]),
        feed: either(&["Feed"], "Feed"),
        via: either(&["Via"], "Via"),
    })
}

/// Top clients, indicators and families of the events in `path` newer than `since`.
pub fn summary(path: &Path, since: Option<Duration>) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let cutoff = since.map(|d| time::OffsetDateTime::now_utc() - d);
    let (mut total, mut bad) = (0usize, 0usize);
    let mut clients: HashMap<String, usize> = HashMap::new();
    let mut indicators: HashMap<String, usize> = HashMap::new();
    let mut families: HashMap<String, usize> = HashMap::new();
    let mut actions: HashMap<String, usize> = HashMap::new();
    for raw in std::io::BufReader::new(file).lines() {
        let raw = raw.map_err(|e| format!("{}: {e}", path.display()))?;
        let Some(line) = read_line(&raw) else {
            bad += 1;
            continue;
        };
        if let Some(cutoff) = cutoff {
            let t = time::OffsetDateTime::parse(
                &line.time,
                &time::format_description::well_known::Rfc3339,
            );
            if t.is_ok_and(|t| t < cutoff) {
                continue;
            }
        }
        total += 1;
        *clients.entry(line.client).or_default() += 1;
        *indicators.entry(line.indicator).or_default() += 1;
        *families
            .entry(if line.family.is_empty() {
                "(unknown)".into()
            } else {
                line.family
            })
            .or_default() += 1;
        *actions.entry(line.action).or_default() += 1;
    }
    let mut out = format!("{total} events in {}", path.display());
    if let Some(d) = since {
        out.push_str(&format!(" (last {})", humantime::format_duration(d)));
    }
    if bad > 0 {
        out.push_str(&format!("; {bad} lines not understood"));
    }
    out.push('\n');
    for (title, counts) in [
        ("Actions", &actions),
        ("Top clients", &clients),
        ("Top indicators", &indicators),
        ("Malware families", &families),
    ] {
        out.push_str(&format!("\n{title}:\n"));
        let mut rows: Vec<(&String, &usize)> = counts.iter().collect();
        rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (key, n) in rows.into_iter().take(10) {
            out.push_str(&format!("  {n:>8}  {key}\n"));
        }
    }
    Ok(out)
}

/// One event as a readable line.
fn readable(line: &Line) -> String {
    let time = line.time.get(..19).unwrap_or(&line.time).replace('T', " ");
    let mut out = format!(
        "{time}  {:<15} {} {} -> {} ({}",
        line.client, line.name, line.qtype, line.action, line.indicator
    );
    for extra in [&line.family, &line.feed] {
        if !extra.is_empty() {
            out.push_str(", ");
            out.push_str(extra);
        }
    }
    out.push(')');
    if !line.via.is_empty() {
        out.push_str(&format!(" via {}", line.via));
    }
    out
}

/// The last `n` events, readable; with `follow`, keeps printing new ones as they come.
pub fn tail(
    path: &Path,
    n: usize,
    follow: bool,
    out: &mut dyn std::io::Write,
) -> Result<(), String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let text = std::fs::read_to_string(path).map_err(err)?;
    let lines: Vec<&str> = text.lines().collect();
    for raw in &lines[lines.len().saturating_sub(n)..] {
        if let Some(line) = read_line(raw) {
            writeln!(out, "{}", readable(&line)).map_err(err)?;
        }
    }
    if !follow {
        return Ok(());
    }
    let mut file = std::fs::File::open(path).map_err(err)?;
    let mut at = text.len() as u64;
    let mut pending = String::new();
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let len = file.metadata().map_err(err)?.len();
        if len < at {
            // Rotated or truncated: start again from the top of the new file.
            file = std::fs::File::open(path).map_err(err)?;
            at = 0;
        }
        file.seek(SeekFrom::Start(at)).map_err(err)?;
        let mut reader = std::io::BufReader::new(&file);
        let mut chunk = String::new();
        while reader.read_line(&mut chunk).map_err(err)? > 0 {
            at += chunk.len() as u64;
            pending.push_str(&chunk);
            chunk.clear();
            if pending.ends_with('\n') {
                if let Some(line) = read_line(pending.trim_end()) {
                    writeln!(out, "{}", readable(&line)).map_err(err)?;
                }
                pending.clear();
            }
        }
        out.flush().map_err(err)?;
    }
}
