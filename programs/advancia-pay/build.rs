// Solana's SBF target is `target_os = "solana"`; Anchor's macros and our client gate on it.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(target_os, values(\"solana\"))");
}
