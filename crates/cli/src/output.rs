//! What the client commands print, kept apart from the HTTP calls so that it can be tested as text:
//! aligned tables, pipeline names as a user types them, run progress and rates.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sluice_store::{thousands, Counts};

use crate::client::{CliError, ErrorKind};

/// Rows under a header, each column as wide as its widest cell, so that long names keep the columns
/// aligned. Widths count characters, not bytes (names are often accented).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            text.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// How long ago `at` was, in the largest whole unit: `just now`, `5 min ago`, `3 h ago`, `2 days ago`.
pub fn ago(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let s = (now - at).num_seconds();
    match s {
        ..=59 => "just now".into(),
        60..=3_599 => format!("{} min ago", s / 60),
        3_600..=86_399 => format!("{} h ago", s / 3_600),
        86_400..=172_799 => "1 day ago".into(),
        _ => format!("{} days ago", s / 86_400),
    }
}

/// The rows of `sluice pipelines list`: name, enabled, destination (by name), table, schedule, last run.
pub fn pipeline_rows(
    pipelines: &[Value],
    destinations: &[Value],
    now: DateTime<Utc>,
) -> Vec<Vec<String>> {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
    pipelines
        .iter()
        .map(|p| {
            let destination = destinations
                .iter()
                .find(|d| d["id"] == p["destination"])
                .map(|d| text(&d["name"]))
                .unwrap_or_else(|| text(&p["destination"]));
            let schedule = match &p["schedule"] {
                Value::Null => "off".to_string(),
                Value::String(s) => format!("every {s}"),
                other => {
                    let cron = other["cron"].as_str().unwrap_or("?");
                    match other["timezone"].as_str() {
                        Some(tz) if tz != "UTC" => format!("cron {cron} ({tz})"),
                        _ => format!("cron {cron}"),
                    }
                }
            };
            vec![
                text(&p["name"]),
                if p["enabled"].as_bool().unwrap_or(false) {
                    "yes".into()
                } else {
                    "no".into()
                },
                destination,
                text(&p["table"]),
                schedule,
                last_run(&p["last_run"], now),
            ]
        })
        .collect()
}

/// `succeeded 5 min ago: 9,520 in audience; 0 written`, or `-` for a pipeline that never ran.
fn last_run(run: &Value, now: DateTime<Utc>) -> String {
    let Some(status) = run["status"].as_str() else {
        return "-".into();
    };
    let when = ["finished_at", "started_at", "queued_at"]
        .iter()
        .find_map(|k| run[*k].as_str())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| format!(" {}", ago(t.with_timezone(&Utc), now)))
        .unwrap_or_default();
    match serde_json::from_value::<Counts>(run["counts"].clone()) {
        Ok(c) if status == "succeeded" || status == "failed" => {
            format!(
                "{status}{when}: {} {}, {} {}",
                thousands(c.in_audience()),
                Counts::IN_AUDIENCE,
                thousands(c.written()),
                Counts::WRITTEN
            )
        }
        _ => format!("{status}{when}"),
    }
}

/// A kind of named resource: as errors name it (`pipeline`, `pipelines`, the command listing them), and
/// where the API lists them (the route, and the field of its answer holding the list).
pub struct Kind {
    pub one: &'static str,
    pub many: &'static str,
    pub list: &'static str,
    pub route: &'static str,
    pub field: &'static str,
}

pub const PIPELINE: Kind = Kind {
    one: "pipeline",
    many: "pipelines",
    list: "sluice pipelines list",
    route: "/v1/pipelines",
    field: "pipelines",
};
pub const CONNECTION: Kind = Kind {
    one: "connection",
    many: "connections",
    list: "sluice connections list",
    route: "/v1/destinations",
    field: "destinations",
};
pub const TOKEN: Kind = Kind {
    one: "token",
    many: "tokens",
    list: "sluice tokens list",
    route: "/v1/tokens",
    field: "tokens",
};

/// The resource a user means by `query`: its id or its exact name; else its name in any case when only
/// one has it. Otherwise a not-found error names the closest names, or an invalid-input one the
/// candidates of an ambiguity.
pub fn find_named<'a>(list: &'a [Value], query: &str, kind: &Kind) -> Result<&'a Value, CliError> {
    let name = |p: &'a Value| p["name"].as_str().unwrap_or_default();
    let exact: Vec<&Value> = list
        .iter()
        .filter(|p| p["id"] == query || name(p) == query)
        .collect();
    let folded: Vec<&Value> = list
        .iter()
        .filter(|p| name(p).to_lowercase() == query.to_lowercase())
        .collect();
    let candidates = if exact.is_empty() { folded } else { exact };
    let Kind {
        one,
        many,
        list: cmd,
        ..
    } = kind;
    match candidates.as_slice() {
        [one] => Ok(one),
        [] => {
            let close = closest(list.iter().map(name), query);
            Err(CliError::new(
                ErrorKind::NotFound,
                if close.is_empty() {
                    format!("no {one} has the id or name `{query}` (`{cmd}` shows them)")
                } else {
                    format!(
                        "no {one} has the id or name `{query}`; did you mean {}?",
                        quoted(&close, "or")
                    )
                },
            ))
        }
        several => Err(CliError::invalid(format!(
            "{} {many} are named `{query}`: use the id of one ({})",
            several.len(),
            several
                .iter()
                .map(|p| format!("`{}` is {}", name(p), p["id"].as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Up to three names near `query`: by edit distance (ignoring case) within a third of its length, or
/// holding it, nearest first.
fn closest<'a>(names: impl Iterator<Item = &'a str>, query: &str) -> Vec<String> {
    let q = query.to_lowercase();
    let limit = (q.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, &str)> = names
        .filter_map(|n| {
            let l = n.to_lowercase();
            let d = edit_distance(&l, &q);
            if d <= limit {
                Some((d, n))
            } else if q.chars().count() >= 3 && l.contains(&q) {
                Some((limit + 1, n))
            } else {
                None
            }
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(3).map(|(_, n)| n.into()).collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn quoted(names: &[String], last: &str) -> String {
    let q: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match q.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., tail] => format!("{} {last} {tail}", init.join(", ")),
    }
}

/// `n` per second over `secs`, rounded to what a reader can use (`2,400 profiles/s`, `16 profiles/s`);
/// nothing when there is nothing to measure: no profile, or a run too short to time.
pub fn rate(n: u64, secs: f64) -> Option<String> {
    if n == 0 || secs < 0.5 {
        return None;
    }
    let per_sec = n as f64 / secs;
    // Two significant figures above 100: the last digits are noise between two runs.
    let rounded = if per_sec >= 100.0 {
        let scale = 10f64.powi(per_sec.log10().floor() as i32 - 1);
        (per_sec / scale).round() * scale
    } else {
        per_sec.round()
    };
    Some(format!("{} profiles/s", thousands(rounded as u64)))
}

/// The line a followed run shows while it goes: no bar until the run knows how many profiles it has,
/// and none for a run that has none (a full bar over `0/0` read as work done).
pub fn progress_line(processed: u64, total: Option<u64>, secs: f64) -> String {
    let mut line = match total {
        Some(t) if t > 0 => {
            let done = processed.min(t);
            let filled = (done * 30 / t) as usize;
            format!(
                "[{}{}] {}/{} profiles",
                "=".repeat(filled),
                " ".repeat(30 - filled),
                thousands(done),
                thousands(t)
            )
        }
        Some(_) => "nothing to read: no profile changed since the last run".into(),
        None if processed > 0 => format!("{} profiles", thousands(processed)),
        None => "starting".into(),
    };
    if let Some(r) = rate(processed, secs) {
        line.push_str(&format!(" ({r})"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn pipeline_list_columns_stay_aligned_and_say_yes_or_no() {
        let now = at("2026-12-06T10:00:00Z");
        let pipelines = [
            json!({"id": "pl_1", "name": "Demo customers", "enabled": true, "destination": "dst_1",
                   "table": "customers", "schedule": "15m",
                   "last_run": {"status": "succeeded", "finished_at": "2026-12-06T09:55:00Z",
                                "counts": {"read": 0, "filtered_out": 480, "transform_failed": 0,
                                           "inserted": 0, "updated": 0, "unchanged": 9520,
                                           "deleted": 0, "failed": 0}}}),
            json!({"id": "pl_2", "name": "Clients très fidèles (Europe, étendu)", "enabled": false,
                   "destination": "dst_2", "table": "crm.vip", "schedule": {"cron": "0 6 * * 1", "timezone": "Europe/Kyiv"},
                   "last_run": null}),
        ];
        let destinations = [
            json!({"id": "dst_1", "name": "Local SQLite (demo)"}),
            json!({"id": "dst_2", "name": "Warehouse"}),
        ];
        let rows = pipeline_rows(&pipelines, &destinations, now);
        assert_eq!(
            rows[0],
            [
                "Demo customers",
                "yes",
                "Local SQLite (demo)",
                "customers",
                "every 15m",
                "succeeded 5 min ago: 9,520 in audience, 0 written"
            ]
        );
        assert_eq!(rows[1][1], "no");
        assert_eq!(rows[1][4], "cron 0 6 * * 1 (Europe/Kyiv)");
        assert_eq!(rows[1][5], "-");
        let text = table(
            &[
                "NAME",
                "ENABLED",
                "DESTINATION",
                "TABLE",
                "SCHEDULE",
                "LAST RUN",
            ],
            &rows,
        );
        let lines: Vec<&str> = text.lines().collect();
        // Every column starts at the same character in every line.
        for word in ["ENABLED", "DESTINATION", "TABLE", "SCHEDULE", "LAST RUN"] {
            let col = lines[0].find(word).unwrap();
            let col = lines[0][..col].chars().count();
            for l in &lines[1..] {
                let before: String = l.chars().take(col).collect();
                assert!(
                    before.ends_with("  "),
                    "`{word}` is not aligned in:\n{text}"
                );
                assert_ne!(l.chars().nth(col), Some(' '), "{text}");
            }
        }
        assert!(!text.contains("true") && !text.contains("false"), "{text}");
    }

    fn find_pipeline<'a>(list: &'a [Value], query: &str) -> Result<&'a Value, CliError> {
        find_named(list, query, &PIPELINE)
    }

    #[test]
    fn names_match_in_any_case_when_unambiguous_and_unknown_ones_get_suggestions() {
        let list = [
            json!({"id": "pl_a", "name": "Demo customers"}),
            json!({"id": "pl_b", "name": "VIP"}),
            json!({"id": "pl_c", "name": "vip"}),
            json!({"id": "pl_d", "name": "Newsletter"}),
        ];
        assert_eq!(
            find_pipeline(&list, "demo CUSTOMERS").unwrap()["id"],
            "pl_a"
        );
        assert_eq!(find_pipeline(&list, "pl_d").unwrap()["id"], "pl_d");
        // An exact name wins over names that differ only in case.
        assert_eq!(find_pipeline(&list, "vip").unwrap()["id"], "pl_c");
        let e = find_pipeline(&list, "Vip").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid);
        let e = e.message;
        assert!(
            e.contains("2 pipelines") && e.contains("pl_b") && e.contains("pl_c"),
            "{e}"
        );
        let e = find_pipeline(&list, "demo customer").unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound);
        let e = e.message;
        assert!(e.ends_with("did you mean `Demo customers`?"), "{e}");
        let e = find_pipeline(&list, "news").unwrap_err().message;
        assert!(e.contains("`Newsletter`"), "{e}");
        let e = find_pipeline(&list, "zzzzzzzz").unwrap_err().message;
        assert!(e.contains("sluice pipelines list"), "{e}");
    }

    #[test]
    fn a_run_with_nothing_to_do_shows_no_bar_and_no_rate() {
        let line = progress_line(0, Some(0), 0.4);
        assert!(!line.contains("0/0") && !line.contains('['), "{line}");
        assert!(!line.contains("/s"), "{line}");
        assert_eq!(progress_line(0, None, 0.1), "starting");
        let line = progress_line(500, Some(1_000), 2.0);
        assert!(
            line.starts_with("[===============               ] 500/1,000 profiles"),
            "{line}"
        );
        assert!(line.ends_with("(250 profiles/s)"), "{line}");
    }

    #[test]
    fn rates_are_round_and_only_when_meaningful() {
        assert_eq!(rate(0, 3.0), None);
        assert_eq!(rate(8, 0.1), None);
        assert_eq!(rate(95, 6.0).unwrap(), "16 profiles/s");
        assert_eq!(rate(10_000, 4.13).unwrap(), "2,400 profiles/s");
        assert_eq!(rate(1_000_000, 6.12).unwrap(), "160,000 profiles/s");
    }

    #[test]
    fn ago_says_the_largest_unit() {
        let now = at("2026-12-06T10:00:00Z");
        assert_eq!(ago(at("2026-12-06T09:59:30Z"), now), "just now");
        assert_eq!(ago(at("2026-12-06T07:59:00Z"), now), "2 h ago");
        assert_eq!(ago(at("2026-12-04T10:00:00Z"), now), "2 days ago");
    }
}
