//! Instructions for the transactions wallets sign: payment or escrow open (with the Solana
//! Pay reference key), refunds, escrow release and refund. Token accounts are the associated
//! ones; missing recipient accounts are created (idempotently, paid by the signer).

use advancia_chains::{ASSOCIATED_TOKEN_PROGRAM, SolanaChain, associated_token_address};
use advancia_pay::client::{self as pay, EscrowParams, PayParams, TokenAccounts};
use anchor_lang::prelude::Pubkey;
use anchor_lang::solana_program::instruction::{AccountMeta, Instruction};

use crate::PaymentError;

const SYSTEM_PROGRAM: Pubkey = Pubkey::from_str_const("11111111111111111111111111111111");

/// Associated token program `CreateIdempotent`: succeeds if the account already exists.
pub fn create_ata_idempotent(
    funder: &Pubkey,
    wallet: &Pubkey,
    mint: &Pubkey,
    token_program: &Pubkey,
) -> Instruction {
    Instruction {
        program_id: ASSOCIATED_TOKEN_PROGRAM,
        accounts: vec![
            AccountMeta::new(*funder, true),
            AccountMeta::new(associated_token_address(wallet, mint, token_program), false),
            AccountMeta::new_readonly(*wallet, false),
            AccountMeta::new_readonly(*mint, false),
            AccountMeta::new_readonly(SYSTEM_PROGRAM, false),
            AccountMeta::new_readonly(*token_program, false),
        ],
        data: vec![1],
    }
}

/// Token accounts for moving `mint` from `from` to a facility's payout wallet and the
/// treasury, creating the recipients' accounts when they do not exist yet.
pub async fn token_accounts(
    chain: &SolanaChain,
    signer: &Pubkey,
    from: &Pubkey,
    payout_wallet: &Pubkey,
    treasury: &Pubkey,
    mint: &Pubkey,
) -> Result<(TokenAccounts, Vec<Instruction>), PaymentError> {
    let (token_program, _) = chain.mint(mint).await?;
    let source = associated_token_address(from, mint, &token_program);
    let mut setup = Vec::new();
    for owner in [payout_wallet, treasury] {
        let ata = associated_token_address(owner, mint, &token_program);
        if chain.raw_account(&ata).await?.is_none() {
            setup.push(create_ata_idempotent(signer, owner, mint, &token_program));
        }
    }
    Ok((
        TokenAccounts {
            mint: *mint,
            token_program,
            source,
            payout: associated_token_address(payout_wallet, mint, &token_program),
            treasury: associated_token_address(treasury, mint, &token_program),
        },
        setup,
    ))
}

/// Appends the Solana Pay reference as a read-only key (instructions ignore extra accounts),
/// for instructions that do not take it as a named account.
pub fn with_reference(mut ix: Instruction, reference: Pubkey) -> Instruction {
    ix.accounts
        .push(AccountMeta::new_readonly(reference, false));
    ix
}

pub struct PayInputs {
    pub params: PayParams,
    pub mint: Pubkey,
    pub payout_wallet: Pubkey,
    pub treasury: Pubkey,
}

pub async fn pay(chain: &SolanaChain, p: &PayInputs) -> Result<Vec<Instruction>, PaymentError> {
    if p.mint == advancia_pay::state::NATIVE_SOL {
        return Ok(vec![pay::pay_sol(&p.params, p.payout_wallet, p.treasury)]);
    }
    let (accounts, mut ixs) = token_accounts(
        chain,
        &p.params.payer,
        &p.params.payer,
        &p.payout_wallet,
        &p.treasury,
        &p.mint,
    )
    .await?;
    ixs.push(pay::pay_token(&p.params, &accounts));
    Ok(ixs)
}

pub async fn open_escrow(
    chain: &SolanaChain,
    params: &EscrowParams,
    mint: &Pubkey,
    reference: Pubkey,
) -> Result<Vec<Instruction>, PaymentError> {
    let ix = if *mint == advancia_pay::state::NATIVE_SOL {
        pay::open_escrow_sol(params)
    } else {
        let (token_program, _) = chain.mint(mint).await?;
        let source = associated_token_address(&params.payer, mint, &token_program);
        pay::open_escrow_token(params, *mint, token_program, source)
    };
    Ok(vec![with_reference(ix, reference)])
}
