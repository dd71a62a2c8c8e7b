//! `cargo run -p advancia-substreams-codegen [-- --check]`: runs buffa's code generator on
//! `indexer/substreams/proto` and writes (or, with `--check`, compares) the generated Rust
//! under `indexer/substreams/src/pb`. The output is checked in so that building the module
//! (natively or for wasm32) needs no protoc; only changing the `.proto` does. `protoc` comes
//! from Debian (`apt-get install protobuf-compiler`), never a download.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

const PROTO: &str = "advancia/indexer/v1/rows.proto";

fn main() -> Result<()> {
    let check = std::env::args().any(|a| a == "--check");
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("codegen crate has a parent")?
        .to_path_buf();
    let proto_dir = crate_dir.join("proto");
    let pb_dir = crate_dir.join("src").join("pb");
    if std::process::Command::new(std::env::var("PROTOC").unwrap_or_else(|_| "protoc".into()))
        .arg("--version")
        .output()
        .is_err()
    {
        bail!("protoc not found: apt-get install protobuf-compiler (or set PROTOC)");
    }
    let out = std::env::temp_dir().join(format!("advancia-substreams-pb-{}", std::process::id()));
    std::fs::create_dir_all(&out)?;
    buffa_build::Config::new()
        .files(&[proto_dir.join(PROTO)])
        .includes(&[&proto_dir])
        .out_dir(&out)
        // Owned types only: the module builds its output; nothing decodes it lazily here.
        .generate_views(false)
        .compile()
        .map_err(|e| anyhow::anyhow!("buffa codegen: {e}"))?;
    let generated = files(&out)?;
    let result = if check {
        let current = files(&pb_dir).unwrap_or_default();
        let stale: Vec<_> = generated
            .iter()
            .filter(|(name, text)| {
                current.iter().find(|(n, _)| n == name).map(|c| &c.1) != Some(text)
            })
            .map(|(n, _)| n.display().to_string())
            .collect();
        if stale.is_empty() {
            println!("src/pb is up to date ({} files)", generated.len());
            Ok(())
        } else {
            Err(anyhow::anyhow!(
                "src/pb is stale ({}); run `cargo run -p advancia-substreams-codegen`",
                stale.join(", ")
            ))
        }
    } else {
        std::fs::create_dir_all(&pb_dir)?;
        for (name, text) in &generated {
            std::fs::write(pb_dir.join(name), text)?;
        }
        println!("wrote {} files to {}", generated.len(), pb_dir.display());
        Ok(())
    };
    std::fs::remove_dir_all(&out)?;
    result
}

/// The generated `.rs` files of `dir` (name, contents), sorted by name; our own `mod.rs`
/// (hand-written module tree) is not generated and not compared.
fn files(dir: &Path) -> Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().map(PathBuf::from) else {
            continue;
        };
        if path.extension().is_some_and(|e| e == "rs") && name != Path::new("mod.rs") {
            out.push((name, std::fs::read_to_string(&path)?));
        }
    }
    out.sort();
    Ok(out)
}
