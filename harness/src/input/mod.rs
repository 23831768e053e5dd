//! Run inputs from outside: binary fuzz inputs ([`mod@decode`]) and `.wbf` scripts ([`script`]),
//! and which of the two a file is ([`sniff`]).
//!
//! Both produce a [`reference::Input`]. The binary form is what fuzzers mutate: every byte
//! string decodes to a valid, bounded input and the layout favours meaningful mutations. The
//! script form is the stable, human-readable one that regressions and bug reproducers are stored
//! in; `script::print` turns any input into a script that `script::parse` reads back unchanged.
//!
//! A file's form is decided by its content, never by its name, with a strict rule so that neither
//! form is taken for the other (see [`sniff`]): a script is UTF-8 text whose first line that is
//! not blank or a comment starts with a script keyword. Text that is not a script (a typo in the
//! first keyword, a stray invisible character) is refused rather than decoded as random bytes:
//! fuzz inputs are essentially never text, and a forced form (`--binary`, `--script`) settles the
//! rare case that is.

pub mod decode;
pub mod script;

pub use decode::{decode, decode_any_threads, Mode};
pub use script::{parse, print, ScriptError, ScriptErrorKind};

use std::fmt;

/// What a file's content says it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sniffed {
    /// UTF-8 text (a leading byte-order mark allowed) whose first significant line starts with a
    /// script keyword: parse it as a script.
    Script,
    /// Not a script: decode it as a binary fuzz input; why it is not text.
    Binary(NotText),
    /// Text that is not a script: neither form can be assumed.
    Text(TextNotScript),
}

/// What makes a text file not a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TextNotScript {
    /// The first significant line starts with a word that is not a script keyword.
    Word {
        /// Its 1-based line number.
        line: usize,
        /// The word.
        word: String,
    },
    /// Only comments (and blank lines).
    OnlyComments,
}

impl fmt::Display for TextNotScript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TextNotScript::Word { line, word } => write!(
                f,
                "line {line}: `{}` is not a script keyword",
                script::escaped(word)
            ),
            TextNotScript::OnlyComments => write!(f, "nothing but comments"),
        }
    }
}

/// Why a file is not taken for text (and so is decoded as a binary input).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotText {
    /// No bytes at all.
    Empty,
    /// Not valid UTF-8: the first bad byte's offset.
    NotUtf8 {
        /// Byte offset of the first byte that is not UTF-8.
        offset: usize,
    },
    /// UTF-8 with a control character no text file has (anything below 0x20 but tab, line feed
    /// and carriage return, or DEL).
    Control {
        /// Byte offset of the character.
        offset: usize,
        /// The character.
        byte: u8,
    },
    /// UTF-8 without any line break: one short line of printable bytes (a fuzz input can be that;
    /// a script never is unless its first word is a keyword).
    OneLine,
    /// Only blank lines.
    Blank,
}

impl fmt::Display for NotText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotText::Empty => write!(f, "empty"),
            NotText::NotUtf8 { offset } => write!(f, "not UTF-8 at byte {offset}"),
            NotText::Control { offset, byte } => {
                write!(f, "control byte {byte:#04x} at byte {offset}")
            }
            NotText::OneLine => write!(f, "one line without a script keyword"),
            NotText::Blank => write!(f, "only blank lines"),
        }
    }
}

/// Decides by content whether `bytes` are a script, a binary input, or text that is neither.
///
/// The rule, in order: the bytes (after a leading BOM) must be valid UTF-8, else binary. The
/// first line that is not blank once its `#` comment is cut must start with a script keyword
/// ([`script::is_keyword`]) followed by whitespace, a comment or the line's end: then it is a
/// script (whatever else it holds; the parser reports any later mistake with its line). Otherwise
/// UTF-8 with a control character (other than tab, CR, LF), without any line break, or with only
/// blank lines is binary; what is left (a wrong first word, only comments) is text that is not a
/// script.
///
/// Random bytes are a script only if they happen to be entirely valid UTF-8 and spell a keyword
/// and a separator at a line start: fuzz targets never parse scripts, so no fuzzer steers towards
/// that. The checked-in fuzz corpora all sniff as binary (`harness/tests/cli.rs` checks it).
pub fn sniff(bytes: &[u8]) -> Sniffed {
    if bytes.is_empty() {
        return Sniffed::Binary(NotText::Empty);
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            return Sniffed::Binary(NotText::NotUtf8 {
                offset: e.valid_up_to(),
            })
        }
    };
    let text = text.strip_prefix(script::BOM).unwrap_or(text);
    let first = script::lines(text).enumerate().find_map(|(i, line)| {
        let content = line.split('#').next().unwrap_or("");
        content.split_whitespace().next().map(|word| (i + 1, word))
    });
    if let Some((_, word)) = first {
        if script::is_keyword(word) {
            return Sniffed::Script;
        }
    }
    let start = bytes.len() - text.len();
    if let Some((i, b)) = text
        .bytes()
        .enumerate()
        .find(|&(_, b)| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) || b == 0x7f)
    {
        return Sniffed::Binary(NotText::Control {
            offset: start + i,
            byte: b,
        });
    }
    if !text.contains(['\n', '\r']) {
        return Sniffed::Binary(NotText::OneLine);
    }
    match first {
        Some((line, word)) => Sniffed::Text(TextNotScript::Word {
            line,
            word: word.to_string(),
        }),
        None if text.contains('#') => Sniffed::Text(TextNotScript::OnlyComments),
        None => Sniffed::Binary(NotText::Blank),
    }
}
