//! Text from the network made safe to print on a terminal. Message bodies,
//! subjects and presence notes come from other people: printed raw, an
//! escape sequence in them could clear the screen, retitle the window,
//! rewrite earlier lines or hide text (bidi overrides). The CLI's human
//! output passes every line through [`printable`], and every single-line
//! field (a name, a presence note, a subject) through [`printable_line`]
//! first, so such a field cannot fake further rows either; `--json` needs
//! nothing, as JSON escapes control characters itself.

use std::borrow::Cow;
use std::fmt::Write;

/// `s` with every control character but newline and tab written as a
/// visible escape (`\u{1b}` for ESC): C0 and C1 controls, DEL, and the
/// invisible format characters that reorder or hide text (bidi embeddings,
/// overrides and isolates, zero-width marks). Borrowed when there is none.
pub fn printable(s: &str) -> Cow<'_, str> {
    escape(s, is_unsafe)
}

/// Like [`printable`], for a field shown within one row: newline and tab
/// are escaped too (`\u{a}`, `\u{9}`), so a buddy's name or note cannot
/// start what looks like another row or push columns about.
pub fn printable_line(s: &str) -> Cow<'_, str> {
    escape(s, |c| c == '\n' || c == '\t' || is_unsafe(c))
}

/// `s` with every character `bad` picks written as `\u{hex}`.
fn escape(s: &str, bad: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(&bad) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if bad(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Whether `c` must not reach a terminal as it is.
fn is_unsafe(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c,
            '\u{061c}' // Arabic letter mark, a bidi control
            | '\u{200b}'..='\u{200f}' // zero-width space/joiners, LRM, RLM
            | '\u{2028}'..='\u{202e}' // line/paragraph separators, bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
            | '\u{2066}'..='\u{2069}' // bidi isolates
            | '\u{feff}' // zero-width no-break space
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_made_visible() {
        assert_eq!(printable("\x1b[2Jgone"), "\\u{1b}[2Jgone");
        assert_eq!(
            printable("\x1b]0;title\x07"),
            "\\u{1b}]0;title\\u{7}",
            "OSC with BEL"
        );
        assert_eq!(printable("over\rwrite"), "over\\u{d}write");
        assert_eq!(printable("del\x7f"), "del\\u{7f}");
        assert_eq!(printable("c1\u{9b}2J"), "c1\\u{9b}2J", "8-bit CSI");
        assert_eq!(printable("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(printable("a\u{2066}b\u{2069}"), "a\\u{2066}b\\u{2069}");
        assert_eq!(printable("nul\0"), "nul\\u{0}");
        assert_eq!(printable("a\u{61c}b"), "a\\u{61c}b", "Arabic letter mark");
        for out in ["\x1b[2J", "\u{9b}", "\u{202e}", "\u{61c}", "\r"].map(printable) {
            assert!(!out.chars().any(is_unsafe), "{out:?}");
        }
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        for s in ["hello", "two\nlines", "tab\there", "Grüße, 你好 👋", ""] {
            assert!(matches!(printable(s), Cow::Borrowed(b) if b == s), "{s:?}");
        }
    }

    #[test]
    fn a_single_line_field_cannot_fake_rows() {
        let note = "lunch\nmallory   online  \"hi\"\tx";
        let shown = printable_line(note);
        assert_eq!(shown, "lunch\\u{a}mallory   online  \"hi\"\\u{9}x");
        assert!(!shown.contains(['\n', '\t']));
        // Everything printable escapes, this escapes too.
        assert_eq!(printable_line("\x1b[2J\u{61c}"), "\\u{1b}[2J\\u{61c}");
        // Through printable afterwards (as the CLI does), it stays so.
        assert_eq!(printable(&printable_line(note)), shown);
        for s in ["alice", "Grüße 你好", ""] {
            assert!(
                matches!(printable_line(s), Cow::Borrowed(b) if b == s),
                "{s:?}"
            );
        }
    }
}
