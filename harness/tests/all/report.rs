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

/// Stale data a crash exposes is named as such. From the reproducer's story: the power cut
/// (#4) comes before the flush's IO lands, so the reference's blocks 0-3 are still Unwritten
/// (zeros) while the implementation, which logged their conversion at submit, maps them Written
/// over physical blocks 0-3, which no write reached: stale byte 0xD0 for physical block 0.
#[test]
fn stale_bytes_after_a_crash_are_named() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/bugs/convert-at-submit.wbf");
    let out = Command::new(env!("CARGO_BIN_EXE_wbfuzz"))
        .args(["run", "--bug", "convert-at-submit"])
        .arg(&script)
        .output()
        .expect("run wbfuzz");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("first divergence after op #4 `crash`"),
        "{text}"
    );
    assert!(
        text.contains("reference 00 (zeros: no data), implementation d0 (stale disk bytes: no write reached this block)"),
        "{text}"
    );
    assert!(
        text.contains("no-stale-exposure: file 0 block 0 is written but physical block 0"),
        "{text}"
    );
}
