//! Durations named on the command line (`--timeout 10s`, `--idle-timeout 500ms`), as users
//! write them (humantime: `10s`, `1m 30s`), for the flags where zero has no sense.

use std::time::Duration;

/// Parses a duration that must be more than zero: a timeout of 0 would give up before
/// anything can happen, and a zero bound would close every connection as it opens, so
/// both binaries refuse it as a bad argument (status 2) rather than obey it, as they refuse
/// `--max-connections 0`. For clap's `value_parser`.
///
/// ```
/// use std::time::Duration;
///
/// assert_eq!(clap_dist::positive_duration("1m 30s"), Ok(Duration::from_secs(90)));
/// assert!(clap_dist::positive_duration("0s").unwrap_err().contains("more than 0"));
/// assert!(clap_dist::positive_duration("soon").is_err());
/// ```
///
/// # Errors
///
/// What is wrong with `text`: not a duration (humantime's reason), or zero.
pub fn positive_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => Err("must be more than 0".to_string()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}
