//! Reading what the counting tools write: callgrind's output file and `strace -c`'s summary
//! table, and the difference of two runs per request.

use std::collections::BTreeMap;

/// The user-space instructions (`Ir`) of a callgrind output file: the column of its
/// `summary:` line (or `totals:`, which some versions write instead) that its `events:`
/// line names `Ir` (callgrind counts other events too when asked).
pub(crate) fn callgrind_instructions(text: &str) -> Option<u64> {
    let column = text
        .lines()
        .find_map(|l| l.strip_prefix("events:"))?
        .split_whitespace()
        .position(|event| event == "Ir")?;
    let totals = text
        .lines()
        .find_map(|l| l.strip_prefix("summary:"))
        .or_else(|| text.lines().find_map(|l| l.strip_prefix("totals:")))?;
    totals.split_whitespace().nth(column)?.parse().ok()
}

/// `strace -c`'s table: calls per system call, and their total.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StraceSummary {
    pub(crate) calls: BTreeMap<String, u64>,
    pub(crate) total: u64,
}

/// Reads the table `strace -c` writes at the end (to `-o FILE` or stderr):
///
/// ```text
/// % time     seconds  usecs/call     calls    errors syscall
/// ------ ----------- ----------- --------- --------- ----------------
///  60.00    0.000300           3       100        50 recvfrom
/// ...
/// 100.00    0.000500           2       250        51 total
/// ```
///
/// The `errors` column is blank for a call that never failed, so `calls` is the fourth
/// column and the name the last. `None` without a `total` row, or when a row's calls do
/// not add up to it.
pub(crate) fn strace_summary(text: &str) -> Option<StraceSummary> {
    let mut summary = StraceSummary::default();
    let mut total = None;
    for line in text.lines() {
        let columns: Vec<&str> = line.split_whitespace().collect();
        let (Some(name), Some(Ok(calls))) =
            (columns.last(), columns.get(3).map(|c| c.parse::<u64>()))
        else {
            continue;
        };
        // Rows start with the share of time, a decimal number; the header and rules do not.
        if columns.len() < 5 || columns[0].parse::<f64>().is_err() {
            continue;
        }
        if *name == "total" {
            total = Some(calls);
        } else {
            *summary.calls.entry((*name).to_string()).or_default() += calls;
        }
    }
    summary.total = total?;
    (summary.calls.values().sum::<u64>() == summary.total).then_some(summary)
}

/// What `large` counted beyond `small`, per request of the `extra` requests `large` served
/// beyond it: start-up and shutdown, the same in both runs, cancel out.
pub(crate) fn per_request(small: u64, large: u64, extra: u64) -> Option<f64> {
    (extra > 0 && large >= small).then(|| (large - small) as f64 / extra as f64)
}

/// [`per_request`] for every system call of two strace summaries, leaving out those whose
/// count did not change.
pub(crate) fn calls_per_request(
    small: &StraceSummary,
    large: &StraceSummary,
    extra: u64,
) -> BTreeMap<String, f64> {
    large
        .calls
        .iter()
        .filter_map(|(name, &calls)| {
            let before = small.calls.get(name).copied().unwrap_or(0);
            let each = per_request(before, calls, extra)?;
            (each > 0.0).then(|| (name.clone(), each))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{callgrind_instructions, calls_per_request, per_request, strace_summary};

    // Real output of `cargo xtask bench ir` for netcore's echo example, one request at a
    // time: `strace -c -f` after 2,000 and after 12,000 requests, and the head and tail of
    // callgrind's file after 12,000 (the 14,000 lines of costs between them cut out).
    const STRACE_2000: &str = include_str!("testdata/strace-netcore-echo-2000.txt");
    const STRACE_12000: &str = include_str!("testdata/strace-netcore-echo-12000.txt");
    const CALLGRIND_12000: &str = include_str!("testdata/callgrind-netcore-echo-12000.txt");

    #[test]
    fn callgrind_instructions_come_from_the_summary_line() {
        assert_eq!(callgrind_instructions(CALLGRIND_12000), Some(15_970_668));
    }

    #[test]
    fn callgrind_instructions_are_the_ir_column_among_other_events() {
        // Written with --collect-systime=yes: Ir is one of three columns.
        let text = "positions: line\nevents: sysCount Ir sysTime\nsummary: 10258 3020715 266\n";
        assert_eq!(callgrind_instructions(text), Some(3_020_715));
        // No summary line: the totals line at the end.
        assert_eq!(
            callgrind_instructions("events: Ir\nfn=(1) main\n3 14\ntotals: 17\n"),
            Some(17)
        );
    }

    #[test]
    fn callgrind_without_totals_or_ir_is_none() {
        assert_eq!(callgrind_instructions("events: Ir\nfn=(1) main\n"), None);
        assert_eq!(callgrind_instructions("events: Dr\nsummary: 12\n"), None);
        assert_eq!(callgrind_instructions("summary: 12\n"), None);
    }

    #[test]
    fn strace_summary_reads_every_row_and_the_total() {
        let summary = strace_summary(STRACE_12000).expect("a strace -c table");
        assert_eq!(summary.total, 36_211);
        assert_eq!(summary.calls["sendto"], 12_000);
        assert_eq!(summary.calls["epoll_wait"], 12_010);
        // A row with errors: calls is still the fourth column.
        assert_eq!(summary.calls["openat"], 53);
        assert_eq!(summary.calls["accept4"], 20);
        assert_eq!(summary.calls.len(), 38);
    }

    #[test]
    fn strace_output_without_a_table_is_none() {
        assert_eq!(strace_summary("strace: Process 42 detached\n"), None);
        // Rows that do not add up to the total: a table cut short.
        let cut: String = STRACE_2000
            .lines()
            .filter(|l| !l.ends_with(" sendto"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(strace_summary(&cut), None);
    }

    #[test]
    fn the_difference_of_two_runs_is_the_cost_per_request() {
        let small = strace_summary(STRACE_2000).expect("a strace -c table");
        let large = strace_summary(STRACE_12000).expect("a strace -c table");
        assert_eq!(per_request(small.total, large.total, 10_000), Some(3.0));
        let calls = calls_per_request(&small, &large, 10_000);
        // Start-up (mmap, openat, accept4...) cancels out; what is left is the request.
        let names: Vec<&str> = calls.keys().map(String::as_str).collect();
        assert_eq!(names, ["epoll_wait", "recvfrom", "sendto"]);
        assert!(calls.values().all(|&n| n == 1.0), "{calls:?}");
    }

    #[test]
    fn a_larger_run_that_counted_less_has_no_figure() {
        assert_eq!(
            per_request(3_020_715, 15_970_668, 10_000),
            Some(1_294.995_3)
        );
        assert_eq!(per_request(20, 10, 10_000), None);
        assert_eq!(per_request(10, 20, 0), None);
    }
}
