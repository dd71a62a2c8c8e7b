//! The committed JSON schema matches the message types.

#[test]
fn committed_schema_is_up_to_date() {
    let dir = advancia_pay_cosmwasm::schema::dir();
    let files = advancia_pay_cosmwasm::schema::files().unwrap();
    assert!(
        files.len() >= 4,
        "combined file plus instantiate/execute/query"
    );
    for (name, json) in files {
        let committed = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        assert!(
            committed == json + "\n",
            "schema/{name} is stale: run `cargo run -p advancia-pay-cosmwasm --bin schema` and commit schema/"
        );
    }
}
