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
