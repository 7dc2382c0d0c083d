//! The figures `cargo xtask test` holds netcore to: [`BASELINE`], written by
//! `cargo xtask bench ir --record`, and the comparison with a new measurement.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::Workload;

/// The baseline file, relative to the workspace root.
pub(crate) const BASELINE: &str = "bench/ir-baseline.json";

/// How far a figure may grow over the recorded one before the gate fails, and shrink
/// below it before the gate suggests recording again.
const TOLERANCE: f64 = 0.10;

/// The file: netcore's echo example's figures, one per workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Baseline {
    /// How the file was written, for whoever opens it.
    pub(crate) recorded_by: String,
    /// When (seconds since the Unix epoch).
    pub(crate) date: u64,
    pub(crate) figures: Vec<Figure>,
}

impl Baseline {
    /// The figure recorded for `workload`.
    pub(crate) fn figure(&self, workload: Workload) -> Option<&Figure> {
        self.figures.iter().find(|f| f.workload == workload)
    }
}

/// netcore's figures under one workload.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct Figure {
    pub(crate) workload: Workload,
    pub(crate) instructions_per_request: f64,
    /// Recorded for the reader; the gate holds instructions only.
    pub(crate) syscalls_per_request: f64,
}

/// A new figure against the recorded one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within the tolerance either way.
    Held,
    /// Grew by more than the tolerance: the gate fails.
    Grew,
    /// Dropped by more than the tolerance: re-record, so that the gate holds the gain.
    Dropped,
}

/// `measured` instructions per request against `recorded`.
pub(crate) fn verdict(recorded: f64, measured: f64) -> Verdict {
    if measured > recorded * (1.0 + TOLERANCE) {
        Verdict::Grew
    } else if measured < recorded * (1.0 - TOLERANCE) {
        Verdict::Dropped
    } else {
        Verdict::Held
    }
}

/// Reads the baseline at `path`.
pub(crate) fn read(path: &Path) -> Result<Baseline> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))
}

/// Writes `figures` as the baseline at `path`.
pub(crate) fn write(path: &Path, figures: Vec<Figure>) -> Result<()> {
    let baseline = Baseline {
        recorded_by: "cargo xtask bench ir --record".to_string(),
        date: super::super::unix_time(),
        figures,
    };
    let mut text = serde_json::to_string_pretty(&baseline).context("encode the baseline")?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{verdict, Baseline, Figure, Verdict};
    use crate::bench::ir::Workload;

    #[test]
    fn more_than_ten_percent_up_fails_and_down_asks_for_a_new_record() {
        assert_eq!(verdict(1000.0, 1000.0), Verdict::Held);
        assert_eq!(verdict(1000.0, 1099.0), Verdict::Held);
        assert_eq!(verdict(1000.0, 1101.0), Verdict::Grew);
        assert_eq!(verdict(1000.0, 901.0), Verdict::Held);
        assert_eq!(verdict(1000.0, 899.0), Verdict::Dropped);
    }

    #[test]
    fn the_file_in_the_repository_has_a_figure_for_every_gated_workload() {
        let path = crate::root().join(super::BASELINE);
        let baseline = super::read(&path).expect("bench/ir-baseline.json parses");
        for workload in Workload::ECHO {
            let figure = baseline.figure(workload).expect("a figure per workload");
            assert!(figure.instructions_per_request > 0.0, "{figure:?}");
        }
    }

    #[test]
    fn a_written_baseline_reads_back() {
        let baseline = Baseline {
            recorded_by: "cargo xtask bench ir --record".into(),
            date: 1_796_299_865,
            figures: vec![Figure {
                workload: Workload::Pipelined,
                instructions_per_request: 88.0,
                syscalls_per_request: 0.1875,
            }],
        };
        let text = serde_json::to_string(&baseline).expect("encodes");
        assert!(text.contains(r#""workload":"pipelined""#), "{text}");
        let back: Baseline = serde_json::from_str(&text).expect("decodes");
        assert_eq!(back, baseline);
    }
}
