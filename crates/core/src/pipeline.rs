//! The wire form of a pipeline (API, YAML workspace file, CLI) and its context-free validation.
//!
//! Checks that need the Customer Model or the live table (filter and mapping type checks, key column
//! constraints) happen in the layers that have them; this module checks only the shape.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::errors::FieldErrors;

/// The fixed schedule intervals of every pipeline, export or source, in seconds.
pub const INTERVALS: [(&str, u32); 11] = [
    ("5m", 300),
    ("15m", 900),
    ("30m", 1_800),
    ("1h", 3_600),
    ("2h", 7_200),
    ("3h", 10_800),
    ("6h", 21_600),
    ("8h", 28_800),
    ("12h", 43_200),
    ("24h", 86_400),
    ("1d", 86_400),
];

/// The short intervals only source pipelines may use, in seconds: a source polled every few seconds
/// is what keeps an `on_change` export seconds behind its source database. An export on such an
/// interval would rewrite its table that often whether or not profiles changed; `on_change` is the
/// export's way to follow changes quickly.
pub const SOURCE_INTERVALS: [(&str, u32); 6] = [
    ("5s", 5),
    ("10s", 10),
    ("15s", 15),
    ("30s", 30),
    ("1m", 60),
    ("2m", 120),
];

/// What a schedule belongs to: the intervals allowed differ ([`SOURCE_INTERVALS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduled {
    /// An export pipeline.
    Pipeline,
    /// A source pipeline.
    Source,
}

impl Scheduled {
    /// The fixed intervals allowed, shortest first.
    pub fn intervals(self) -> impl Iterator<Item = (&'static str, u32)> {
        let short: &'static [(&str, u32)] = match self {
            Scheduled::Pipeline => &[],
            Scheduled::Source => &SOURCE_INTERVALS,
        };
        short.iter().chain(INTERVALS.iter()).copied()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Transformation {
    /// Destination column → expression, in the order given.
    Mapping(indexmap_like::OrderedMap),
    Javascript(String),
    Python(String),
}

impl Transformation {
    pub fn kind(&self) -> &'static str {
        match self {
            Transformation::Mapping(_) => "mapping",
            Transformation::Javascript(_) => "javascript",
            Transformation::Python(_) => "python",
        }
    }
}

/// An ordered `column → expression` map that keeps the order the user wrote.
pub mod indexmap_like {
    use serde::de::{MapAccess, Visitor};
    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct OrderedMap(pub Vec<(String, String)>);

    impl OrderedMap {
        pub fn get(&self, key: &str) -> Option<&str> {
            self.0
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        }
        pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
            self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
        }
        pub fn len(&self) -> usize {
            self.0.len()
        }
        pub fn is_empty(&self) -> bool {
            self.0.is_empty()
        }
    }

    impl Serialize for OrderedMap {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut m = s.serialize_map(Some(self.0.len()))?;
            for (k, v) in &self.0 {
                m.serialize_entry(k, v)?;
            }
            m.end()
        }
    }

    impl<'de> Deserialize<'de> for OrderedMap {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = OrderedMap;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object of column name → expression text")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<OrderedMap, A::Error> {
                    let mut out: Vec<(String, String)> = Vec::new();
                    while let Some((k, v)) = a.next_entry::<String, String>()? {
                        if out.iter().any(|(x, _)| *x == k) {
                            return Err(serde::de::Error::custom(format!(
                                "column `{k}` is mapped twice"
                            )));
                        }
                        out.push((k, v));
                    }
                    Ok(OrderedMap(out))
                }
            }
            d.deserialize_map(V)
        }
    }
}

/// A pipeline's schedule: off (`null`), a fixed interval, a cron expression with a time zone, or
/// `"on_change"` — run when profiles change (export pipelines; see [`crate::on_change`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(from = "ScheduleWire", into = "ScheduleWire")]
pub enum Schedule {
    Interval(String),
    Cron { cron: String, timezone: String },
    OnChange,
}

/// The schedule's JSON form: `"on_change"` is a word like the intervals, so it is told apart from them
/// after parsing rather than by serde.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum ScheduleWire {
    Word(String),
    Cron {
        cron: String,
        #[serde(default = "utc")]
        timezone: String,
    },
}

/// The word that makes a pipeline follow profile changes.
pub const ON_CHANGE: &str = "on_change";

impl From<ScheduleWire> for Schedule {
    fn from(w: ScheduleWire) -> Self {
        match w {
            ScheduleWire::Word(s) if s == ON_CHANGE => Schedule::OnChange,
            ScheduleWire::Word(s) => Schedule::Interval(s),
            ScheduleWire::Cron { cron, timezone } => Schedule::Cron { cron, timezone },
        }
    }
}

impl From<Schedule> for ScheduleWire {
    fn from(s: Schedule) -> Self {
        match s {
            Schedule::Interval(s) => ScheduleWire::Word(s),
            Schedule::OnChange => ScheduleWire::Word(ON_CHANGE.into()),
            Schedule::Cron { cron, timezone } => ScheduleWire::Cron { cron, timezone },
        }
    }
}

fn utc() -> String {
    "UTC".into()
}

impl Schedule {
    /// Seconds of a fixed interval allowed for `owner`; `None` for cron, on_change and intervals not
    /// allowed.
    pub fn interval_seconds(&self, owner: Scheduled) -> Option<u32> {
        match self {
            Schedule::Interval(s) => owner.intervals().find(|(n, _)| n == s).map(|(_, m)| m),
            Schedule::Cron { .. } | Schedule::OnChange => None,
        }
    }

    /// Whether the pipeline runs when profiles change rather than at times.
    pub fn is_on_change(&self) -> bool {
        matches!(self, Schedule::OnChange)
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnLeave {
    #[default]
    Keep,
    Delete,
}

/// Everything a user sets on a pipeline (`POST /v1/pipelines`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    pub destination: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub filter: Option<Json>,
    pub table: String,
    pub key: String,
    pub transformation: Transformation,
    #[serde(default)]
    pub schedule: Option<Schedule>,
    #[serde(default)]
    pub on_leave: OnLeave,
    /// Where a JSON message is posted when a run fails, fails too many rows, or succeeds after failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_webhook: Option<String>,
    /// How long after the last reconcile a scheduled run is made a reconcile run (`1d`, `12h`, `1w`);
    /// `None`: scheduled runs never reconcile unless their checks ask for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcile_every: Option<String>,
}

/// Checks that `url` is an absolute `http` or `https` URL with a host, as webhooks need.
pub fn check_webhook_url(url: &str) -> Result<(), String> {
    let url = url.trim();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| {
            format!("`{url}` is not a webhook URL: it must start with https:// or http://")
        })?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains(char::is_whitespace) || rest.contains(char::is_whitespace) {
        return Err(format!("`{url}` is not a webhook URL: it names no host"));
    }
    Ok(())
}

fn yes() -> bool {
    true
}

impl PipelineSpec {
    /// Whether `other` writes the same rows to the same place: the same destination, table, key, filter,
    /// transformation and rule for leavers. Only name, description, `enabled`, schedule, reconcile interval
    /// and alerting may differ, none of which the live table has a say in.
    pub fn writes_like(&self, other: &PipelineSpec) -> bool {
        // Destructured without `..`: a field added later must be sorted into one group or the other.
        let PipelineSpec {
            destination,
            name: _,
            description: _,
            enabled: _,
            filter,
            table,
            key,
            transformation,
            schedule: _,
            on_leave,
            alert_webhook: _,
            reconcile_every: _,
        } = self;
        *destination == other.destination
            && *table == other.table
            && *key == other.key
            && *filter == other.filter
            && *transformation == other.transformation
            && *on_leave == other.on_leave
    }

    /// Shape checks that need no other knowledge; each error names its field.
    pub fn check_shape(&self) -> FieldErrors {
        let mut e = FieldErrors::new();
        if self.name.trim().is_empty() {
            e.add("name", "the pipeline needs a name");
        } else if self.name.chars().count() > 200 {
            e.add("name", "the name is longer than 200 characters");
        }
        if self.destination.trim().is_empty() {
            e.add("destination", "choose a destination");
        }
        if self.table.trim().is_empty() {
            e.add("table", "enter the name of an existing table");
        }
        if self.key.trim().is_empty() {
            e.add("key", "choose the column that identifies a profile's row");
        }
        match &self.transformation {
            Transformation::Mapping(m) if m.is_empty() => {
                e.add("transformation.mapping", "map at least the key column")
            }
            Transformation::Javascript(s) | Transformation::Python(s) if s.trim().is_empty() => e
                .add(
                    format!("transformation.{}", self.transformation.kind()),
                    "the script is empty",
                ),
            _ => {}
        }
        if let Some(schedule) = &self.schedule {
            if let Err((field, message)) = schedule.compile() {
                e.add(field, message);
            }
        }
        if let Some(url) = &self.alert_webhook {
            if let Err(message) = check_webhook_url(url) {
                e.add("alert_webhook", message);
            }
        }
        if let Some(every) = &self.reconcile_every {
            if let Err(message) = crate::schedule::parse_every(every) {
                e.add("reconcile_every", message);
            }
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_api_example() {
        let spec: PipelineSpec = serde_json::from_value(json!({
            "destination": "d1", "name": "Subscribed customers", "description": "…", "enabled": true,
            "filter": {"logical": "and", "conditions": []},
            "table": "customers", "key": "customer_id",
            "transformation": {"mapping": {"customer_id": "_id", "email": "lower(email)"}},
            "schedule": "15m", "on_leave": "keep"
        }))
        .unwrap();
        assert!(spec.check_shape().is_empty());
        let Transformation::Mapping(m) = &spec.transformation else {
            panic!()
        };
        assert_eq!(m.0[0].0, "customer_id");
        let cron: Schedule =
            serde_json::from_value(json!({"cron": "0 3 * * *", "timezone": "Europe/Rome"}))
                .unwrap();
        assert!(cron.interval_seconds(Scheduled::Source).is_none());
        let on: Schedule = serde_json::from_value(json!("on_change")).unwrap();
        assert_eq!(on, Schedule::OnChange);
        assert!(on.is_on_change() && on.compile().is_ok());
        assert_eq!(serde_json::to_value(&on).unwrap(), json!("on_change"));
        assert_eq!(
            serde_json::to_value(&cron).unwrap(),
            json!({"cron": "0 3 * * *", "timezone": "Europe/Rome"})
        );
        let iv: Schedule = serde_json::from_value(json!("15m")).unwrap();
        assert_eq!(iv, Schedule::Interval("15m".into()));
        assert_eq!(serde_json::to_value(&iv).unwrap(), json!("15m"));
    }

    #[test]
    fn shape_errors_name_fields() {
        let spec: PipelineSpec = serde_json::from_value(json!({
            "destination": "", "name": " ", "table": "", "key": "",
            "transformation": {"mapping": {}}, "schedule": "7m", "alert_webhook": "ftp://x",
            "reconcile_every": "soon"
        }))
        .unwrap();
        let e = spec.check_shape();
        for f in [
            "name",
            "destination",
            "table",
            "key",
            "transformation.mapping",
            "schedule",
            "alert_webhook",
            "reconcile_every",
        ] {
            assert!(e.get(f).is_some(), "{f}: {e}");
        }
        assert!(serde_json::from_value::<PipelineSpec>(
            json!({"destination": "d", "name": "n", "table": "t",
            "key": "k", "transformation": {"mapping": {}}, "bogus": 1})
        )
        .is_err());
    }
}
