//! Metrics recorded along a run: rows of named numbers, written as CSV. A column missing from a
//! row (e.g. validation loss between evaluations) is left empty. [`EventLog`] mirrors them as a
//! TensorBoard event file (the format, and why a resumed run neither loses nor doubles a step:
//! [`crate::tensorboard`]).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::tensorboard::{Event, EventFile, EventKind, event_files, read_events_lossy};

/// One row: the step and its values by column name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub step: usize,
    /// A diverged run's NaN or infinite values are kept: JSON has no number for them, so they
    /// are written as the strings "NaN", "inf", "-inf" (and a `null` reads as NaN).
    #[serde(with = "non_finite_as_names")]
    pub values: BTreeMap<String, f64>,
}

/// Serde for a map of f64 that keeps NaN and ±∞ through JSON (checkpoint `state.json`).
mod non_finite_as_names {
    use std::collections::BTreeMap;

    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Value {
        Number(f64),
        Named(String),
        Null,
    }

    pub fn serialize<S: Serializer>(
        values: &BTreeMap<String, f64>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(values.iter().map(|(k, &v)| {
            let value = match v {
                v if v.is_finite() => Value::Number(v),
                v if v.is_nan() => Value::Named("NaN".into()),
                v if v > 0.0 => Value::Named("inf".into()),
                _ => Value::Named("-inf".into()),
            };
            (k, value)
        }))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
        BTreeMap::<String, Value>::deserialize(d)?
            .into_iter()
            .map(|(k, v)| {
                let x = match v {
                    Value::Number(x) => x,
                    Value::Null => f64::NAN,
                    Value::Named(name) => match name.as_str() {
                        "NaN" => f64::NAN,
                        "inf" => f64::INFINITY,
                        "-inf" => f64::NEG_INFINITY,
                        other => {
                            return Err(D::Error::custom(format!(
                                "`{k}`: not a number: {other:?}"
                            )));
                        }
                    },
                };
                Ok((k, x))
            })
            .collect()
    }
}

/// A table of rows, in the order recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub rows: Vec<Row>,
}

impl Metrics {
    /// Appends a row.
    pub fn push(&mut self, step: usize, values: impl IntoIterator<Item = (String, f64)>) {
        self.rows.push(Row { step, values: values.into_iter().collect() });
    }

    /// Every column name, sorted.
    pub fn columns(&self) -> Vec<String> {
        let mut cols: Vec<String> =
            self.rows.iter().flat_map(|r| r.values.keys().cloned()).collect();
        cols.sort();
        cols.dedup();
        cols
    }

    /// (step, value) of every row that has `column`.
    pub fn series(&self, column: &str) -> Vec<(f64, f64)> {
        self.rows.iter().filter_map(|r| r.values.get(column).map(|&v| (r.step as f64, v))).collect()
    }

    /// The last value of `column`.
    pub fn last(&self, column: &str) -> Option<f64> {
        self.rows.iter().rev().find_map(|r| r.values.get(column).copied())
    }

    /// CSV with a `step` column first; numbers in Rust's shortest round-trip form.
    pub fn to_csv(&self) -> String {
        let cols = self.columns();
        let mut out = String::from("step");
        for c in &cols {
            out.push(',');
            out.push_str(c);
        }
        out.push('\n');
        for row in &self.rows {
            out.push_str(&row.step.to_string());
            for c in &cols {
                out.push(',');
                if let Some(v) = row.values.get(c) {
                    out.push_str(&v.to_string());
                }
            }
            out.push('\n');
        }
        out
    }
}

/// A run's [`Metrics`] as the one TensorBoard event file of its directory: a row becomes an
/// event at the row's step whose scalars are the row's values by column name (as f32).
#[derive(Debug)]
pub struct EventLog {
    file: EventFile,
    /// Rows of the metrics already in the file.
    written: usize,
}

impl EventLog {
    /// Starts this process's event file in `dir` holding every row of `metrics` (on resume,
    /// the rows restored from the checkpoint; each keeps the wall time an earlier file of `dir`
    /// gave its step, else gets now), then removes the earlier event files, whose rows past
    /// the checkpoint the run recomputes.
    pub fn start(dir: &Path, metrics: &Metrics) -> Result<EventLog> {
        let earlier = event_files(dir)?;
        let mut wall_times = BTreeMap::new();
        if !metrics.rows.is_empty() {
            for path in &earlier {
                for event in read_events_lossy(path) {
                    if let EventKind::Scalars(_) = event.kind {
                        wall_times.insert(event.step, event.wall_time);
                    }
                }
            }
        }
        let now = crate::tensorboard::now();
        let events: Vec<Event> = metrics
            .rows
            .iter()
            .filter_map(|row| {
                let step = row.step as i64;
                to_event(row, wall_times.get(&step).copied().unwrap_or(now))
            })
            .collect();
        let file = EventFile::create(dir, &events)?;
        for path in earlier {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(crate::error::io_err(&path)(e));
                }
                _ => {}
            }
        }
        // a creation cut short by a crash leaves its hidden partial file: this run's lock
        // makes every other one stale
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with(".tb-") && name.ends_with(".partial") {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Ok(EventLog { file, written: metrics.rows.len() })
    }

    /// Appends the rows of `metrics` recorded since the last call, stamped now.
    pub fn sync(&mut self, metrics: &Metrics) -> Result<()> {
        let Some(new) = metrics.rows.get(self.written..).filter(|r| !r.is_empty()) else {
            return Ok(());
        };
        let now = crate::tensorboard::now();
        let events: Vec<Event> = new.iter().filter_map(|row| to_event(row, now)).collect();
        self.file.append(&events)?;
        self.written = metrics.rows.len();
        Ok(())
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

/// A row as an event, `None` when it has no value.
fn to_event(row: &Row, wall_time: f64) -> Option<Event> {
    (!row.values.is_empty()).then(|| Event {
        wall_time,
        step: row.step as i64,
        kind: EventKind::Scalars(row.values.iter().map(|(k, &v)| (k.clone(), v as f32)).collect()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_a_column_per_name_and_blanks_for_missing_values() {
        let mut m = Metrics::default();
        m.push(0, [("loss".to_string(), 2.5)]);
        m.push(10, [("loss".to_string(), 1.25), ("val_loss".to_string(), 1.5)]);
        assert_eq!(m.to_csv(), "step,loss,val_loss\n0,2.5,\n10,1.25,1.5\n");
        assert_eq!(m.series("val_loss"), vec![(10.0, 1.5)]);
        assert_eq!(m.last("loss"), Some(1.25));
    }

    #[test]
    fn a_diverged_runs_nan_and_infinities_survive_json() {
        let mut m = Metrics::default();
        m.push(3, [("a".to_string(), f64::NAN), ("b".to_string(), f64::INFINITY)]);
        m.push(4, [("a".to_string(), f64::NEG_INFINITY), ("b".to_string(), 0.1 + 0.2)]);
        let back: Metrics = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert!(back.rows[0].values["a"].is_nan());
        assert_eq!(back.rows[0].values["b"], f64::INFINITY);
        assert_eq!(back.rows[1].values["a"], f64::NEG_INFINITY);
        assert_eq!(back.rows[1].values["b"].to_bits(), (0.1f64 + 0.2).to_bits());
    }
}
