//! Minimal SPL Token / Token-2022 account parsing (base layout, shared by both programs).

use solana_account::{AccountSharedData, ReadableAccount};
use solana_pubkey::Pubkey;

const TOKEN: Pubkey = Pubkey::from_str_const("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA");
const TOKEN_2022: Pubkey = Pubkey::from_str_const("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb");
const ACCOUNT_LEN: usize = 165;
const MINT_LEN: usize = 82;
/// Token-2022 writes an account-type byte after the base account when extensions follow.
const ACCOUNT_TYPE_ACCOUNT: u8 = 2;
const ACCOUNT_TYPE_MINT: u8 = 1;

fn is_token_program(owner: &Pubkey) -> bool {
    *owner == TOKEN || *owner == TOKEN_2022
}

/// `(mint, amount)` of an initialized token account.
pub fn parse_token_account(account: &AccountSharedData) -> Option<(Pubkey, u64)> {
    if !is_token_program(account.owner()) {
        return None;
    }
    let data = account.data();
    let valid_len = data.len() == ACCOUNT_LEN
        || (*account.owner() == TOKEN_2022
            && data.len() > ACCOUNT_LEN
            && data[ACCOUNT_LEN] == ACCOUNT_TYPE_ACCOUNT);
    // state byte at 108: 0 = uninitialized
    if !valid_len || data[108] == 0 {
        return None;
    }
    let mint = Pubkey::try_from(&data[0..32]).ok()?;
    let amount = u64::from_le_bytes(data[64..72].try_into().ok()?);
    Some((mint, amount))
}

/// Decimals of an initialized mint.
pub fn mint_decimals(account: &AccountSharedData) -> Option<u8> {
    if !is_token_program(account.owner()) {
        return None;
    }
    let data = account.data();
    let valid_len = data.len() == MINT_LEN
        || (*account.owner() == TOKEN_2022
            && data.len() > ACCOUNT_LEN
            && data[ACCOUNT_LEN] == ACCOUNT_TYPE_MINT);
    // is_initialized at 45
    if !valid_len || data[45] == 0 {
        return None;
    }
    Some(data[44])
}

fn coption_pubkey(bytes: &[u8]) -> Option<Pubkey> {
    match bytes.get(0..4)? {
        [1, 0, 0, 0] => Pubkey::try_from(bytes.get(4..36)?).ok(),
        _ => None,
    }
}

fn coption_u64(bytes: &[u8]) -> Option<u64> {
    match bytes.get(0..4)? {
        [1, 0, 0, 0] => Some(u64::from_le_bytes(bytes.get(4..12)?.try_into().ok()?)),
        _ => None,
    }
}

fn program_name(owner: &Pubkey) -> &'static str {
    if *owner == TOKEN_2022 {
        "spl-token-2022"
    } else {
        "spl-token"
    }
}

/// `jsonParsed` form of a token account or mint, as Agave's account decoder prints the base
/// fields (extensions are not decoded). `mint_decimals` resolves a token account's mint.
pub fn parse_json(
    account: &AccountSharedData,
    mint_decimals: impl Fn(&Pubkey) -> Option<u8>,
) -> Option<solana_account_decoder_client_types::ParsedAccount> {
    use serde_json::json;
    let data = account.data();
    let parsed = if let Some((mint, amount)) = parse_token_account(account) {
        let decimals = mint_decimals(&mint)?;
        let owner = Pubkey::try_from(&data[32..64]).ok()?;
        let mut info = json!({
            "isNative": coption_u64(&data[109..121]).is_some(),
            "mint": mint.to_string(),
            "owner": owner.to_string(),
            "state": if data[108] == 2 { "frozen" } else { "initialized" },
            "tokenAmount": crate::encode::token_amount(amount, decimals),
        });
        if let Some(delegate) = coption_pubkey(&data[72..108]) {
            let delegated = u64::from_le_bytes(data[121..129].try_into().ok()?);
            info["delegate"] = json!(delegate.to_string());
            info["delegatedAmount"] = json!(crate::encode::token_amount(delegated, decimals));
        }
        if let Some(close) = coption_pubkey(&data[129..165]) {
            info["closeAuthority"] = json!(close.to_string());
        }
        if let Some(reserve) = coption_u64(&data[109..121]) {
            info["rentExemptReserve"] = json!(crate::encode::token_amount(reserve, decimals));
        }
        json!({ "info": info, "type": "account" })
    } else if let Some(decimals) = mint_decimals_of(account) {
        let supply = u64::from_le_bytes(data[36..44].try_into().ok()?);
        json!({
            "info": {
                "decimals": decimals,
                "freezeAuthority": coption_pubkey(&data[46..82]).map(|k| k.to_string()),
                "isInitialized": true,
                "mintAuthority": coption_pubkey(&data[0..36]).map(|k| k.to_string()),
                "supply": supply.to_string(),
            },
            "type": "mint",
        })
    } else {
        return None;
    };
    Some(solana_account_decoder_client_types::ParsedAccount {
        program: program_name(account.owner()).to_string(),
        parsed,
        space: data.len() as u64,
    })
}

fn mint_decimals_of(account: &AccountSharedData) -> Option<u8> {
    mint_decimals(account)
}

/// Is `owner` one of the two token programs.
pub fn is_token_program_id(owner: &Pubkey) -> bool {
    is_token_program(owner)
}

/// Owner field of a token account.
pub fn token_account_owner(account: &AccountSharedData) -> Option<Pubkey> {
    parse_token_account(account)?;
    Pubkey::try_from(&account.data()[32..64]).ok()
}
