//! The module's wasm (built by `cargo xtask substreams` / `cargo xtask test`), run through
//! the Substreams host ABI on node's WebAssembly (`tests/run_wasm.mjs`), emits byte for byte
//! the protobuf the native build emits for the recorded blocks, and reports a malformed
//! block through the runtime's panic import.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

use buffa::Message as _;

const WASM_ENV: &str = "ADVANCIA_SUBSTREAMS_WASM";

fn wasm_path() -> PathBuf {
    if let Some(p) = std::env::var_os(WASM_ENV) {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("wasm32-unknown-unknown/release-wasm/advancia_substreams.wasm")
}

#[test]
fn wasm_build_emits_what_the_native_build_emits() {
    let wasm = wasm_path();
    assert!(
        wasm.exists(),
        "no module wasm at {}: run `cargo xtask substreams` first (or set {WASM_ENV})",
        wasm.display()
    );
    let raw: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/blocks.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let dir = std::env::temp_dir().join(format!("advancia-substreams-wasm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut expected = Vec::new();
    for (i, b) in raw.as_array().unwrap().iter().enumerate() {
        let block = advancia_substreams::rpc_block::block_from_rpc_json(
            b["slot"].as_u64().unwrap(),
            &b["block"],
        )
        .unwrap();
        std::fs::write(dir.join(format!("block-{i:03}.pb")), block.encode_to_vec()).unwrap();
        let rows = advancia_substreams::map_events(block).unwrap();
        assert!(!rows.rows.is_empty());
        expected.push(rows.encode_to_vec());
    }
    // Not a block: the handler's decode fails and the module panics through the host.
    std::fs::write(dir.join("block-999.pb"), [0xff, 0xff, 0xff]).unwrap();

    let out = Command::new("node")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/run_wasm.mjs"))
        .arg(&wasm)
        .arg(&dir)
        .output()
        .expect("node (installed by cargo xtask test)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for (i, want) in expected.iter().enumerate() {
        let got = std::fs::read(dir.join(format!("out-{i:03}.pb")))
            .unwrap_or_else(|e| panic!("block {i}: no output ({e})"));
        assert_eq!(&got, want, "block {i}");
    }
    let panic = std::fs::read_to_string(dir.join("panic-999.txt")).unwrap();
    assert!(panic.contains("Unable to decode"), "{panic}");
    std::fs::remove_dir_all(&dir).unwrap();
}
