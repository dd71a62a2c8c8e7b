//! The committed JSON schema matches the message types, file for file.

use std::collections::BTreeSet;

#[test]
fn committed_schema_is_up_to_date() {
    let dir = advancia_pay_cosmwasm::schema::dir();
    let files = advancia_pay_cosmwasm::schema::files().unwrap();
    assert!(
        files.len() >= 4,
        "combined file plus instantiate/execute/query"
    );
    let fix = "run `cargo run -p advancia-pay-cosmwasm --bin schema` and commit schema/";
    for (name, json) in &files {
        let committed = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        assert!(
            committed == format!("{json}\n"),
            "schema/{name} is stale: {fix}"
        );
    }
    // No leftovers of messages or queries that no longer exist.
    let expected: BTreeSet<String> = files.into_iter().map(|(name, _)| name).collect();
    let mut on_disk = BTreeSet::new();
    for sub in ["", "raw/"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                on_disk.insert(format!("{sub}{}", entry.file_name().to_string_lossy()));
            }
        }
    }
    assert_eq!(
        on_disk, expected,
        "schema/ has other files than generated: {fix}"
    );
}
