//! `cargo run -p advancia-pay-cosmwasm --bin schema`: rewrites `schema/` from the message types.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = advancia_pay_cosmwasm::schema::dir();
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    for (name, json) in advancia_pay_cosmwasm::schema::files()? {
        let path = dir.join(&name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, json + "\n")?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
