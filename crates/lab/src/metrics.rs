//! Metrics recorded along a run: rows of named numbers, written as CSV. A column missing from a
//! row (e.g. validation loss between evaluations) is left empty.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One row: the step and its values by column name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub step: usize,
    pub values: BTreeMap<String, f64>,
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
}
