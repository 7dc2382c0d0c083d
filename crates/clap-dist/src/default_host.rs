//! The tutorial's default host, this machine's name (`socket.gethostname()`), meets the
//! machine: a container or a fresh VM often lists no address for its own name in
//! /etc/hosts, and the resolver's error (`host "vm": [Errno -2] Name or service not
//! known`) then names a host the user never typed. Both binaries say where it came from and
//! what to give instead, in the same words.

/// `error` (a failure to resolve the host) explained when `host_given` is false: no
/// `--host` was given, so the name was this machine's, the default; `instead` is what to
/// use, as a phrase (`--host 127.0.0.1 (this machine only)`). A host the user gave is
/// reported as it is: the hint would send them looking for a flag they already used.
///
/// ```
/// let failed = || anyhow::anyhow!("host \"vm\": [Errno -2] Name or service not known");
/// let explained = clap_dist::explain_default_host(failed(), false, "--host 127.0.0.1");
/// assert_eq!(
///     format!("{explained:#}"),
///     "no --host given, and this machine's name (the default, as the tutorial's \
///      gethostname()) does not resolve; use --host 127.0.0.1: \
///      host \"vm\": [Errno -2] Name or service not known"
/// );
/// let given = clap_dist::explain_default_host(failed(), true, "--host 127.0.0.1");
/// assert_eq!(format!("{given:#}"), "host \"vm\": [Errno -2] Name or service not known");
/// ```
pub fn explain_default_host(
    error: anyhow::Error,
    host_given: bool,
    instead: &str,
) -> anyhow::Error {
    if host_given {
        return error;
    }
    error.context(format!(
        "no --host given, and this machine's name (the default, as the tutorial's \
         gethostname()) does not resolve; use {instead}"
    ))
}
