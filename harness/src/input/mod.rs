//! Run inputs from outside: binary fuzz inputs ([`mod@decode`]) and `.wbf` scripts ([`script`]).
//!
//! Both produce a [`reference::Input`]. The binary form is what fuzzers mutate: every byte
//! string decodes to a valid, bounded input and the layout favours meaningful mutations. The
//! script form is the stable, human-readable one that regressions and bug reproducers are stored
//! in; `script::print` turns any input into a script that `script::parse` reads back unchanged.

pub mod decode;
pub mod script;

pub use decode::{decode, decode_any_threads, Mode};
pub use script::{parse, print, ScriptError, ScriptErrorKind};
