//! Man pages: what clap's definitions hold (NAME, SYNOPSIS, DESCRIPTION, OPTIONS,
//! SUBCOMMANDS, VERSION, by `clap_mangen`), and what a man page also needs but clap does not
//! hold ([`ManPage`]): sections such as SIGNALS, EXIT STATUS and ENVIRONMENT, EXAMPLES and
//! SEE ALSO.
//!
//! The examples are data ([`Example`]), written two ways: in `--help`
//! ([`examples_help`], for clap's `after_help`) and as the man page's EXAMPLES section, each
//! command on a line of its own that is never filled or broken (`.nf`), so that it can be
//! copied whole. clap_mangen would print `after_help` as a section named EXTRA, filled like
//! prose, which breaks a command line anywhere at 80 columns; a page written here has no
//! EXTRA.

use std::path::Path;

use anyhow::Context;
use roff::{bold, roman, Roff};

/// An example: a command line and what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Example {
    /// The command, as typed.
    pub command: &'static str,
    /// What it does, a phrase (`an ephemeral port, printed on the first line`).
    pub effect: &'static str,
}

/// A section of tagged paragraphs: SIGNALS (a signal, what it does), ENVIRONMENT (a
/// variable, what it means), EXIT STATUS (a status, when).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section {
    /// Its title, in capitals by convention (`EXIT STATUS`).
    pub title: &'static str,
    /// Each entry's term and its paragraph.
    pub entries: &'static [(&'static str, &'static str)],
}

/// What a man page says beyond the clap definitions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ManPage {
    /// Sections after OPTIONS (and SUBCOMMANDS), in this order.
    pub sections: &'static [Section],
    /// The EXAMPLES section, after them.
    pub examples: &'static [Example],
    /// SEE ALSO, the last section: pages as `name(section)`, e.g. `sd_notify(3)`.
    pub see_also: &'static [&'static str],
    /// The pages of subcommands, by the subcommand's name (`lookup` for
    /// `greet-client-lookup.1`); one not listed gets clap's sections only.
    pub subcommands: &'static [(&'static str, ManPage)],
}

/// The examples as `--help` shows them (clap's `after_help`): `Examples:`, then each command
/// on a line of its own and what it does below it, indented, wrapped before 80 columns,
/// so that clap never has to wrap it (it would break a command anywhere).
pub fn examples_help(examples: &[Example]) -> String {
    let mut text = String::from("Examples:");
    for example in examples {
        text.push_str("\n  ");
        text.push_str(example.command);
        for line in wrap(example.effect, HELP_WIDTH - EFFECT_INDENT.len()) {
            text.push('\n');
            text.push_str(EFFECT_INDENT);
            text.push_str(&line);
        }
    }
    text
}

/// Lines of help text stay under this width.
const HELP_WIDTH: usize = 79;
/// What an example's effect is indented by in `--help`.
const EFFECT_INDENT: &str = "      ";

/// `text`'s words in lines of at most `width` characters (a longer word on its own line).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Writes the man page of `cmd` and one per visible subcommand (`NAME-SUB.1`) in `dir`,
/// each with what `page` (and its `subcommands`) adds.
///
/// # Errors
///
/// A page that cannot be written, named.
pub fn write_pages(cmd: clap::Command, page: &ManPage, dir: &Path) -> anyhow::Result<()> {
    for (name, text) in man_pages(cmd, page).context("render the man pages")? {
        let file = dir.join(name);
        std::fs::write(&file, text).with_context(|| format!("write {}", file.display()))?;
    }
    Ok(())
}

/// The man pages of `cmd` and of each visible subcommand, each with what `page` (and its
/// `subcommands`) adds: file name (`greet-client-lookup.1`) and roff text, the
/// subcommands' first.
///
/// # Errors
///
/// clap_mangen's, which writes into memory and so does not fail in practice.
pub fn man_pages(cmd: clap::Command, page: &ManPage) -> std::io::Result<Vec<(String, String)>> {
    let mut cmd = cmd.disable_help_subcommand(true);
    // As clap_mangen does: sets each subcommand's display name (`greet-client-lookup`).
    cmd.build();
    let mut pages = Vec::new();
    render_tree(cmd, page, &mut pages)?;
    Ok(pages)
}

fn render_tree(
    cmd: clap::Command,
    page: &ManPage,
    pages: &mut Vec<(String, String)>,
) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let sub_page = page
            .subcommands
            .iter()
            .find(|(name, _)| *name == sub.get_name())
            .map(|(_, page)| *page)
            .unwrap_or_default();
        render_tree(sub.clone(), &sub_page, pages)?;
    }
    let name = clap_mangen::Man::new(cmd.clone()).get_filename();
    pages.push((name, render(cmd, page)?));
    Ok(())
}

/// The man page of `cmd` (built: see [`man_pages`]) in roff: clap_mangen's sections
/// without EXTRA, `page`'s sections and EXAMPLES before VERSION, SEE ALSO at the end.
///
/// # Errors
///
/// clap_mangen's, which writes into memory and so does not fail in practice.
fn render(cmd: clap::Command, page: &ManPage) -> std::io::Result<String> {
    let cmd = cmd.after_help(None::<&str>).after_long_help(None::<&str>);
    let mut generated = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut generated)?;
    let generated = String::from_utf8_lossy(&generated).into_owned();
    // Both renderings open with the same preamble (it defines the apostrophe, `\*(Aq`,
    // that keeps `'` an ASCII quote in a copied command); it is needed once.
    let preamble = &generated[..generated.find(".TH").unwrap_or(0)];
    let body = |roff: &Roff| roff.render().trim_start_matches(preamble).to_string();
    let (before, after) = generated
        .find("\n.SH VERSION\n")
        .map_or((generated.as_str(), ""), |at| generated.split_at(at + 1));
    let mut page_text = String::with_capacity(generated.len() * 2);
    // No hyphenation: a flag or a variable broken at the margin (`--mes-` `sage-file`)
    // reads as another word, and is copied wrong. Left-adjusted: justification spreads
    // the spaces of a quoted value (`[(2, 1, 6, '', ...)]`) as if they were part of it.
    match before.find("\n.SH ") {
        Some(first_section) => {
            page_text.push_str(&before[..=first_section]);
            page_text.push_str(".nh\n.ad l\n");
            page_text.push_str(&before[first_section + 1..]);
        }
        None => page_text.push_str(before),
    }
    page_text.push_str(&body(&sections(page)));
    page_text.push_str(after);
    if !page.see_also.is_empty() {
        page_text.push_str(&body(&see_also(page.see_also)));
    }
    Ok(page_text)
}

/// `page`'s tagged sections, then its EXAMPLES.
fn sections(page: &ManPage) -> Roff {
    let mut roff = Roff::new();
    for section in page.sections {
        roff.control("SH", [section.title]);
        for (term, text) in section.entries {
            roff.control("TP", [])
                .text([bold(*term)])
                .text([roman(*text)]);
        }
    }
    if !page.examples.is_empty() {
        roff.control("SH", ["EXAMPLES"]);
    }
    for example in page.examples {
        // No-fill: the command is one output line whatever the page's width.
        roff.control("PP", [])
            .control("RS", ["4"])
            .control("nf", [])
            .text([bold(example.command)])
            .control("fi", [])
            .control("RS", ["4"])
            .text([roman(example.effect)])
            .control("RE", [])
            .control("RE", []);
    }
    roff
}

/// `SEE ALSO`: each page's name in bold, its section in roman, separated by commas.
fn see_also(pages: &[&str]) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["SEE ALSO"]);
    let mut line = Vec::new();
    for (i, page) in pages.iter().enumerate() {
        let (name, section) = page.split_at(page.find('(').unwrap_or(page.len()));
        line.push(bold(name));
        let comma = if i + 1 < pages.len() { "," } else { "" };
        line.push(roman(format!("{section}{comma} ")));
    }
    roff.text(line);
    roff
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLES: &[Example] = &[
        Example {
            command: "tool --host '' --a-very-long-flag-name-that-fills-the-line --port 0 --more",
            effect: "every address, with a long enough command that filling would break it \
                     somewhere past the eightieth column of a terminal",
        },
        Example {
            command: ".hidden -x",
            effect: "a command that starts with a period",
        },
    ];

    const PAGE: ManPage = ManPage {
        sections: &[
            Section {
                title: "SIGNALS",
                entries: &[("SIGTERM", "Stop.")],
            },
            Section {
                title: "EXIT STATUS",
                entries: &[("0", "Done."), ("2", "A bad argument.")],
            },
        ],
        examples: EXAMPLES,
        see_also: &["other(1)", "sd_notify(3)"],
        subcommands: &[],
    };

    fn tool() -> clap::Command {
        clap::Command::new("tool")
            .version("1.0")
            .arg(clap::Arg::new("port").long("port"))
            .after_help(examples_help(EXAMPLES))
    }

    #[test]
    fn the_page_has_its_sections_in_order_and_no_extra() {
        let mut cmd = tool();
        cmd.build();
        let page = render(cmd, &PAGE).unwrap();
        let at = |heading: &str| {
            page.find(&format!("\n.SH {heading}\n"))
                .unwrap_or_else(|| panic!("no {heading}: {page}"))
        };
        let order = [
            "NAME",
            "OPTIONS",
            "SIGNALS",
            "\"EXIT STATUS\"",
            "EXAMPLES",
            "VERSION",
            "\"SEE ALSO\"",
        ]
        .map(at);
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}\n{page}");
        assert!(!page.contains(".SH EXTRA"), "{page}");
        assert_eq!(page.matches(".ds Aq").count(), 2, "one preamble: {page}");
        assert!(page.contains("\n.nh\n.ad l\n.SH NAME\n"), "{page}");
        assert!(page.contains("\n.TP\n\\fBSIGTERM\\fR\nStop.\n"), "{page}");
        assert!(
            page.ends_with("\\fBother\\fR(1), \\fBsd_notify\\fR(3) \n"),
            "{page}"
        );
    }

    #[test]
    fn each_example_command_is_one_unfilled_line() {
        let mut cmd = tool();
        cmd.build();
        let page = render(cmd, &PAGE).unwrap();
        let lines: Vec<&str> = page.lines().collect();
        for (command, escaped) in [
            (
                EXAMPLES[0].command,
                "\\fBtool \\-\\-host \\*(Aq\\*(Aq \\-\\-a\\-very\\-long\\-flag\\-name\\-that\\-fills\\-the\\-line \\-\\-port 0 \\-\\-more\\fR",
            ),
            // Not a control line: it starts with the font escape.
            (EXAMPLES[1].command, "\\fB.hidden \\-x\\fR"),
        ] {
            let at = lines
                .iter()
                .position(|l| *l == escaped)
                .unwrap_or_else(|| panic!("{command:?} is not one line: {page}"));
            assert_eq!(lines[at - 1], ".nf", "{command:?} is filled");
            assert_eq!(lines[at + 1], ".fi", "{command:?}");
        }
    }

    #[test]
    fn help_shows_each_command_whole_and_wraps_only_the_effect() {
        let help = examples_help(EXAMPLES);
        let lines: Vec<&str> = help.lines().collect();
        assert_eq!(lines[0], "Examples:");
        assert_eq!(lines[1], format!("  {}", EXAMPLES[0].command));
        assert!(lines[2].starts_with("      every address"), "{help}");
        assert!(lines.len() > 5, "the long effect is wrapped: {help}");
        for line in &lines[2..] {
            assert!(
                line.len() <= HELP_WIDTH || EXAMPLES.iter().any(|e| line.trim() == e.command),
                "{line:?} is too wide"
            );
        }
        let mut cmd = tool();
        let rendered = cmd.render_long_help().to_string();
        assert!(rendered.contains(&help), "{rendered}");
    }

    #[test]
    fn subcommand_pages_get_their_own_additions() {
        const SUB: ManPage = ManPage {
            sections: &[],
            examples: &[Example {
                command: "tool sub --x",
                effect: "a sub example",
            }],
            see_also: &["tool(1)"],
            subcommands: &[],
        };
        const ROOT: ManPage = ManPage {
            sections: &[],
            examples: &[],
            see_also: &["tool-sub(1)"],
            subcommands: &[("sub", SUB)],
        };
        let cmd = tool().subcommand(
            clap::Command::new("sub")
                .arg(clap::Arg::new("x").long("x"))
                .after_help("Examples: old style"),
        );
        let pages = man_pages(cmd, &ROOT).unwrap();
        let names: Vec<&str> = pages.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["tool-sub.1", "tool.1"]);
        let (sub, root) = (&pages[0].1, &pages[1].1);
        assert!(sub.contains("\n.SH EXAMPLES\n"), "{sub}");
        assert!(sub.contains("\\fBtool sub \\-\\-x\\fR"), "{sub}");
        assert!(!sub.contains("old style"), "{sub}");
        assert!(root.contains("\\fBtool\\-sub\\fR(1)"), "{root}");
        assert!(!root.contains(".SH EXAMPLES"), "{root}");
    }
}
