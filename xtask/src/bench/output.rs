//! What `cargo xtask bench` and its sections write: the JSON documents under
//! `target/bench/` with when and where they were measured, and the figures' text in the
//! tables. Leaf helpers: nothing here knows a section.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::root;

/// What `target/bench/SECTION-latest.json` holds for a section run alone: when, where,
/// how long, then the section's own document.
#[derive(Serialize)]
struct SectionDoc<T> {
    date: u64,
    cores: usize,
    kernel: Option<String>,
    /// The 1-minute load average when the section started, before its own load.
    load_average: Option<f64>,
    seconds: f64,
    #[serde(flatten)]
    section: T,
}

/// Runs `section` (its build done), then prints it with `print` and writes it as
/// `target/bench/NAME-latest.json`.
pub(super) fn run_section<T: Serialize>(
    name: &str,
    section: impl FnOnce() -> Result<T>,
    print: impl FnOnce(&T),
) -> Result<T> {
    let load_average = load_average();
    let started = Instant::now();
    let section = section()?;
    print(&section);
    let doc = SectionDoc {
        date: unix_time(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        kernel: kernel_release(),
        load_average,
        seconds: started.elapsed().as_secs_f64(),
        section,
    };
    write_json(&doc, name)?;
    Ok(doc.section)
}

/// A figure with `digits` decimals, or `-` when it was not measured.
pub(super) fn number(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.digits$}"))
}

/// A share (0 to 1) as a whole percentage, or `-` when it was not measured.
pub(super) fn percent(share: Option<f64>) -> String {
    number(share.map(|s| s * 100.0), 0)
}

/// Writes `doc` as `target/bench/PREFIX-TIME.json` and `PREFIX`'s latest (`latest.json` for
/// the whole bench, `SECTION-latest.json`, e.g. `echo-latest.json`, for a section alone).
pub(super) fn write_json(doc: &impl Serialize, prefix: &str) -> Result<()> {
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let text = serde_json::to_string_pretty(doc).context("encode the bench document")?;
    let latest = match prefix {
        "bench" => "latest.json".to_string(),
        other => format!("{other}-latest.json"),
    };
    for name in [format!("{prefix}-{}.json", unix_time()), latest.clone()] {
        let path = dir.join(name);
        std::fs::write(&path, &text).with_context(|| format!("write {}", path.display()))?;
    }
    println!("wrote {}", dir.join(latest).display());
    Ok(())
}

pub(super) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

/// The 1-minute load average (`/proc/loadavg`).
pub(super) fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub(super) fn kernel_release() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_string())
}

pub(super) fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
