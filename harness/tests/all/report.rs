//! What a divergence report shows a user, through the `wbfuzz` command.

use std::path::Path;
use std::process::Command;

/// A read that returns wrong bytes is shown as bytes: the first differing offset, what each
/// side read there and which op wrote it, and a hexdump diff (not two checksums). Expected
/// values from the reproducer's own story: journaled-data write #3 wrote one byte at 0x0, the
/// implementation lost it, so direct read #5 of the one-byte file reads zeros.
#[test]
fn a_read_divergence_shows_bytes_and_their_writers() {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/bugs/put-folio-after-unlock.wbf");
    let out = Command::new(env!("CARGO_BIN_EXE_wbfuzz"))
        .args(["run", "--bug", "put-folio-after-unlock"])
        .arg(&script)
        .output()
        .expect("run wbfuzz");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("first difference at 0x0: reference 82 (as written by op #3), implementation 00 (zeros: no data)"),
        "{text}"
    );
    assert!(text.contains("-00000000  82\n"), "{text}");
    assert!(text.contains("+00000000  00\n"), "{text}");
    assert!(!text.contains("outcome: reference data"), "{text}");
}
