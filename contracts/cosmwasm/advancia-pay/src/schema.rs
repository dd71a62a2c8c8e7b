//! The contract's JSON schema (cosmwasm-schema), written to `schema/` by the `schema` binary
//! and compared with the committed files by a test.

use std::path::{Path, PathBuf};

use cosmwasm_schema::generate_api;

use crate::msg::{ExecuteMsg, InstantiateMsg, QueryMsg};

/// `(relative path, JSON)` of every schema file: the combined API file plus one per message.
pub fn files() -> Result<Vec<(String, String)>, String> {
    let api = generate_api! {
        name: "advancia-pay-cosmwasm",
        instantiate: InstantiateMsg,
        execute: ExecuteMsg,
        query: QueryMsg,
    }
    .render();
    let mut files = vec![(
        "advancia-pay-cosmwasm.json".to_owned(),
        api.to_string().map_err(|e| e.to_string())?,
    )];
    for (name, json) in api.to_schema_files().map_err(|e| e.to_string())? {
        files.push((format!("raw/{name}"), json));
    }
    Ok(files)
}

pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schema")
}
