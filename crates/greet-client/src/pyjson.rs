//! JSON text as Python's `json.dumps(doc)` writes it, from `serde` values: `", "` between
//! items, `": "` after keys, and every character outside printable ASCII escaped
//! (`ensure_ascii`), so that `lookup --json` prints, byte for byte, what the same document
//! printed by Python would be. serde_json does the escaping; this only chooses the layout.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::Formatter;

/// `value` as one line of JSON in Python's default layout, newline included.
pub fn to_line<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    value.serialize(&mut serializer)?;
    out.push(b'\n');
    // ensure_ascii: the output is ASCII, so always UTF-8.
    String::from_utf8(out).map_err(|e| serde_json::Error::io(io::Error::other(e)))
}

/// serde_json's compact layout with Python's separators and `ensure_ascii`.
struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        item_separator(writer, first)
    }

    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        item_separator(writer, first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    /// serde_json has escaped quotes, backslashes and control characters already (as Python
    /// does: `\n`, `\t`... and `\u00XX`); what is left outside `' '..='~'` is escaped here as
    /// `\uXXXX`, with a surrogate pair above U+FFFF, as Python's `ensure_ascii` does.
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if (' '..='~').contains(&c) {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[start..i])?;
            for unit in c.encode_utf16(&mut [0u16; 2]) {
                write!(writer, "\\u{unit:04x}")?;
            }
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// Python's item separator, `", "`, before every item of an array or object but the first.
fn item_separator<W: ?Sized + Write>(writer: &mut W, first: bool) -> io::Result<()> {
    if first {
        Ok(())
    } else {
        writer.write_all(b", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Doc<'a> {
        name: &'a str,
        list: Vec<(u16, Option<i32>)>,
        empty: Vec<u8>,
    }

    #[test]
    fn layout_and_escapes_as_python_json_dumps() {
        let name = "a\"b\\c\n\t\u{1}\u{7f}~ é€😀";
        let doc = Doc {
            name,
            list: vec![(1, None), (2, Some(-8))],
            empty: vec![],
        };
        // The oracle: python3 on this machine, as in the end-to-end tests.
        let script = "import json, sys; print(json.dumps({'name': sys.argv[1], \
                      'list': [[1, None], [2, -8]], 'empty': []}))";
        let python = std::process::Command::new("python3")
            .args(["-c", script, name])
            .output()
            .expect("python3 must be installed: it is the test oracle");
        assert!(python.status.success(), "python3 failed");
        let expected = String::from_utf8(python.stdout).expect("ASCII");
        assert!(
            expected.contains(r"\u007f~ \u00e9\u20ac\ud83d\ude00"),
            "{expected}"
        );
        assert_eq!(to_line(&doc).expect("serialises"), expected);
    }
}
