//! Text that came from workloads (names, identities, rejection reasons) is untrusted: printed
//! as is, an ESC sequence could recolour or rewrite the terminal, a CR overwrite the line, and a
//! bidi override make one identity read as another. [`escape`] shows such characters as escapes.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with control characters, invisible format characters and bidi controls written as
/// `\n`, `\r`, `\t`, `\x1b` or `\u{202e}`; a backslash becomes `\\` so that an escape in the
/// output always means an escaped character.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c == '\\' || unprintable(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unprintable(c) && c.is_ascii() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if unprintable(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Serialized JSON with the characters [`escape`] would escape written as JSON `\uXXXX` escapes.
/// serde_json already escapes C0 controls; DEL, C1 controls and the Unicode format characters it
/// leaves as they are. Outside strings JSON text is plain ASCII, so replacing them is safe, and
/// all of them are in the Basic Multilingual Plane (one `\uXXXX` each).
pub fn escape_json(json: &str) -> Cow<'_, str> {
    if !json.chars().any(unprintable) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if unprintable(c) {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Characters a terminal does not show as themselves.
fn unprintable(c: char) -> bool {
    c.is_control() // C0, DEL, C1 (0x9b is CSI on some terminals)
        || matches!(c,
            '\u{061c}'                 // Arabic letter mark
            | '\u{200b}'..='\u{200f}'  // zero-width space, joiners, LRM, RLM
            | '\u{2028}' | '\u{2029}'  // line and paragraph separators
            | '\u{202a}'..='\u{202e}'  // bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}'  // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}'  // bidi isolates
            | '\u{feff}'               // zero-width no-break space (BOM)
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_controls_and_bidi_overrides_are_shown_escaped() {
        let cases = [
            ("bookstore-v1", "bookstore-v1"),
            ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
            ("ok\rforged", "ok\\rforged"),
            ("two\nlines\ttab", "two\\nlines\\ttab"),
            ("evil\u{202e}gnp.exe", "evil\\u{202e}gnp.exe"),
            ("\u{2066}\u{2069}\u{200f}", "\\u{2066}\\u{2069}\\u{200f}"),
            ("csi\u{9b}31m", "csi\\u{9b}31m"),
            ("del\u{7f}", "del\\x7f"),
            ("back\\x1b", "back\\\\x1b"),
            ("naïve ünïcode 書店", "naïve ünïcode 書店"),
        ];
        for (input, shown) in cases {
            assert_eq!(escape(input), shown, "{input:?}");
        }
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn json_keeps_its_meaning_with_format_characters_escaped() {
        let value = serde_json::json!({"workload": "a\u{202e}b\u{9b}c\x1bd書"});
        let text = value.to_string();
        let escaped = escape_json(&text);
        assert!(!escaped.chars().any(unprintable), "{escaped}");
        assert!(escaped.contains("\\u202e"), "{escaped}");
        let back: serde_json::Value = serde_json::from_str(&escaped).unwrap();
        assert_eq!(back, value);
    }
}
