//! Test runtime: solana-program-test's bank with the program loaded natively, or with
//! `ADVANCIA_PREFER_SBF=1` as its SBF build from `SBF_OUT_DIR` deployed through the
//! upgradeable loader with the admin as upgrade authority (as on a cluster); SPL Token /
//! Token-2022 as their real BPF builds.

use advancia_pay::client::{self, AdvanciaEvent, BridgeEvent};
use advancia_pay::state::NATIVE_SOL;
use advancia_pay::{InitializeConfigArgs, error::AdvanciaError};
use anchor_lang::prelude::*;
use anchor_lang::solana_program::entrypoint::ProgramResult;
use anchor_lang::solana_program::instruction::Instruction;
use anchor_lang::solana_program::system_instruction;
use anchor_spl::token_2022::spl_token_2022;
use solana_keypair::Keypair;
use solana_program_test::{BanksClientError, ProgramTest, ProgramTestContext, processor};
use solana_signer::Signer;
use solana_transaction::{InstructionError, Transaction, TransactionError};

pub const SOL: u64 = 1_000_000_000;
pub const FEE_BPS: u16 = 250;
pub const SOL_KYC_THRESHOLD: u64 = 5 * SOL;
pub const FACILITY_ID: [u8; 32] = *b"facility-0001-general-hospital--";
pub const TOKEN: Pubkey = anchor_spl::token::ID;
pub const TOKEN_2022: Pubkey = anchor_spl::token_2022::ID;
const COMPUTE_BUDGET: Pubkey = anchor_lang::pubkey!("ComputeBudget111111111111111111111111111111");

/// Anchor's `entry` ties the program id, the account slice and the data to one `'info`;
/// leaked copies (a few bytes per instruction, tests only) satisfy that for program-test's
/// builtin signature. The `AccountInfo`s share their `Rc`s, so writes reach the runtime.
fn entry_wrapper(program_id: &Pubkey, accounts: &[AccountInfo], data: &[u8]) -> ProgramResult {
    let program_id: &'static Pubkey = Box::leak(Box::new(*program_id));
    let accounts: &[AccountInfo] = Box::leak(accounts.to_vec().into_boxed_slice());
    let data: &'static [u8] = Box::leak(data.to_vec().into_boxed_slice());
    advancia_pay::entry(program_id, accounts, data)
}

/// Whether the program runs as its SBF build (`ADVANCIA_PREFER_SBF=1`, set by `cargo xtask
/// test` and `bench programs` after `cargo xtask sbf`) instead of natively.
pub fn sbf_mode() -> bool {
    std::env::var("ADVANCIA_PREFER_SBF").is_ok_and(|v| v == "1")
}

/// The upgradeable loader's two accounts for the SBF build in `SBF_OUT_DIR` (or
/// `BPF_OUT_DIR`), as a deployment by `upgrade_authority` leaves them: the program account
/// naming its ProgramData, and the ProgramData (slot, authority, ELF).
fn deploy_upgradeable(pt: &mut ProgramTest, upgrade_authority: &Pubkey) {
    use anchor_lang::solana_program::bpf_loader_upgradeable::{
        self as loader, get_program_data_address,
    };
    let dir = std::env::var("SBF_OUT_DIR")
        .or_else(|_| std::env::var("BPF_OUT_DIR"))
        .expect("ADVANCIA_PREFER_SBF=1 needs SBF_OUT_DIR (run `cargo xtask sbf`)");
    let path = std::path::Path::new(&dir).join("advancia_pay.so");
    let elf = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run `cargo xtask sbf`)", path.display()));
    let rent = anchor_lang::solana_program::rent::Rent::default();
    let program_data = get_program_data_address(&advancia_pay::ID);
    // bincode of UpgradeableLoaderState::Program { programdata_address }.
    let mut program = 2u32.to_le_bytes().to_vec();
    program.extend_from_slice(program_data.as_ref());
    // bincode of UpgradeableLoaderState::ProgramData { slot: 0, upgrade_authority_address: Some(..) }.
    let mut data = 3u32.to_le_bytes().to_vec();
    data.extend_from_slice(&0u64.to_le_bytes());
    data.push(1);
    data.extend_from_slice(upgrade_authority.as_ref());
    data.extend_from_slice(&elf);
    for (address, data, executable) in [
        (advancia_pay::ID, program, true),
        (program_data, data, false),
    ] {
        pt.add_account(
            address,
            solana_account::Account {
                lamports: rent.minimum_balance(data.len()),
                data,
                owner: loader::ID,
                executable,
                rent_epoch: u64::MAX,
            },
        );
    }
}

pub fn id32(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..s.len()].copy_from_slice(s.as_bytes());
    out
}

pub struct Env {
    pub ctx: ProgramTestContext,
    pub admin: Keypair,
    pub treasury: Keypair,
    pub settlement: Keypair,
    pub compliance: Keypair,
    pub facility_authority: Keypair,
    pub payout: Keypair,
    nonce: u32,
}

impl Env {
    /// Runtime with funded role keys; nothing initialized.
    pub async fn bare() -> Env {
        let admin = Keypair::new();
        let mut pt = ProgramTest::default();
        pt.prefer_bpf(sbf_mode());
        if sbf_mode() {
            deploy_upgradeable(&mut pt, &admin.pubkey());
        } else {
            pt.add_program("advancia_pay", advancia_pay::ID, processor!(entry_wrapper));
        }
        let ctx = pt.start_with_context().await;
        let mut env = Env {
            ctx,
            admin,
            treasury: Keypair::new(),
            settlement: Keypair::new(),
            compliance: Keypair::new(),
            facility_authority: Keypair::new(),
            payout: Keypair::new(),
            nonce: 0,
        };
        for key in [
            env.admin.pubkey(),
            env.treasury.pubkey(),
            env.settlement.pubkey(),
            env.compliance.pubkey(),
            env.facility_authority.pubkey(),
            env.payout.pubkey(),
        ] {
            env.fund(&key, 10 * SOL).await;
        }
        env
    }

    /// Config (2.5 % fee), SOL enabled with a 5 SOL KYC threshold, one active facility.
    pub async fn new() -> Env {
        let mut env = Env::bare().await;
        let admin = env.admin.pubkey();
        let ixs = [
            client::initialize_config(admin, env.init_args()),
            client::add_asset(admin, NATIVE_SOL, SOL_KYC_THRESHOLD),
            client::register_facility(
                admin,
                FACILITY_ID,
                env.facility_authority.pubkey(),
                env.payout.pubkey(),
            ),
        ];
        let admin_kp = env.admin.insecure_clone();
        env.send(&ixs, &[&admin_kp]).await.unwrap();
        env
    }

    pub fn init_args(&self) -> InitializeConfigArgs {
        InitializeConfigArgs {
            treasury: self.treasury.pubkey(),
            settlement_authority: self.settlement.pubkey(),
            compliance_authority: self.compliance.pubkey(),
            fee_bps: FEE_BPS,
        }
    }

    pub async fn fund(&mut self, to: &Pubkey, lamports: u64) {
        let ix = system_instruction::transfer(&self.ctx.payer.pubkey(), to, lamports);
        self.send(&[ix], &[]).await.unwrap();
    }

    /// A new wallet holding `lamports`.
    pub async fn wallet(&mut self, lamports: u64) -> Keypair {
        let kp = Keypair::new();
        self.fund(&kp.pubkey(), lamports).await;
        kp
    }

    pub async fn send(
        &mut self,
        ixs: &[Instruction],
        signers: &[&Keypair],
    ) -> std::result::Result<(), BanksClientError> {
        self.send_events(ixs, signers).await.map(|_| ())
    }

    /// Simulates (which records inner instructions), then processes the same transaction and
    /// returns the ledger events decoded from its `emit_cpi!` inner instructions.
    pub async fn send_events(
        &mut self,
        ixs: &[Instruction],
        signers: &[&Keypair],
    ) -> std::result::Result<Vec<AdvanciaEvent>, BanksClientError> {
        self.send_all_events(ixs, signers)
            .await
            .map(|(ledger, _)| ledger)
    }

    /// [`Env::send_events`] for the bridge's events.
    pub async fn send_bridge_events(
        &mut self,
        ixs: &[Instruction],
        signers: &[&Keypair],
    ) -> std::result::Result<Vec<BridgeEvent>, BanksClientError> {
        self.send_all_events(ixs, signers)
            .await
            .map(|(_, bridge)| bridge)
    }

    async fn send_all_events(
        &mut self,
        ixs: &[Instruction],
        signers: &[&Keypair],
    ) -> std::result::Result<(Vec<AdvanciaEvent>, Vec<BridgeEvent>), BanksClientError> {
        // A distinct compute-unit limit makes every transaction unique, so a repeated attempt
        // is executed (and fails for its real reason) instead of being deduplicated.
        self.nonce += 1;
        let mut data = vec![2u8];
        data.extend_from_slice(&(1_400_000 - self.nonce).to_le_bytes());
        let mut all = vec![Instruction {
            program_id: COMPUTE_BUDGET,
            accounts: vec![],
            data,
        }];
        all.extend_from_slice(ixs);
        let mut keys: Vec<&Keypair> = vec![&self.ctx.payer];
        keys.extend_from_slice(signers);
        let blockhash = self.ctx.banks_client.get_latest_blockhash().await?;
        let tx = Transaction::new_signed_with_payer(
            &all,
            Some(&self.ctx.payer.pubkey()),
            &keys[..],
            blockhash,
        );
        let sim = self
            .ctx
            .banks_client
            .simulate_transaction(tx.clone())
            .await?;
        let mut events = Vec::new();
        let mut bridge_events = Vec::new();
        let inner = sim
            .simulation_details
            .and_then(|d| d.inner_instructions)
            .unwrap_or_default();
        for set in inner {
            for inner_ix in set {
                let ci = inner_ix.instruction;
                let program_id = tx.message.account_keys[usize::from(ci.program_id_index)];
                if let Some(event) = client::decode_event(&program_id, &ci.data).unwrap() {
                    events.push(event);
                }
                if let Some(event) = client::decode_bridge_event(&program_id, &ci.data).unwrap() {
                    bridge_events.push(event);
                }
            }
        }
        self.ctx.banks_client.process_transaction(tx).await?;
        Ok((events, bridge_events))
    }

    /// Compute units of a transaction holding exactly `ixs` (nothing added, so the figure is
    /// theirs alone), from the runtime's simulation; then processes it so later steps see its
    /// state. Panics with the failure if the transaction does not succeed.
    pub async fn measure(&mut self, ixs: &[Instruction], signers: &[&Keypair]) -> u64 {
        self.measure_own(ixs, signers).await.0
    }

    /// [`Env::measure`] and the units of that total spent in other programs the transaction's
    /// instructions invoke (SPL Token, …), from the runtime's `consumed` log lines; the
    /// program's own work is the difference (its `emit_cpi!` self-invocations count as its
    /// own). Builtins (the system program) log no figure, so their few units count as own.
    pub async fn measure_own(&mut self, ixs: &[Instruction], signers: &[&Keypair]) -> (u64, u64) {
        let mut keys: Vec<&Keypair> = vec![&self.ctx.payer];
        keys.extend_from_slice(signers);
        let blockhash = self.ctx.banks_client.get_latest_blockhash().await.unwrap();
        let tx = Transaction::new_signed_with_payer(
            ixs,
            Some(&self.ctx.payer.pubkey()),
            &keys[..],
            blockhash,
        );
        let sim = self
            .ctx
            .banks_client
            .simulate_transaction(tx.clone())
            .await
            .unwrap();
        if let Some(Err(e)) = sim.result {
            panic!("measured transaction failed: {e:?}");
        }
        let details = sim.simulation_details.expect("simulation details");
        self.ctx.banks_client.process_transaction(tx).await.unwrap();
        (details.units_consumed, units_in_callees(&details.logs))
    }

    pub async fn lamports(&mut self, key: &Pubkey) -> u64 {
        self.ctx.banks_client.get_balance(*key).await.unwrap()
    }

    pub async fn exists(&mut self, key: &Pubkey) -> bool {
        self.ctx
            .banks_client
            .get_account(*key)
            .await
            .unwrap()
            .is_some()
    }

    pub async fn account<T: AccountDeserialize>(&mut self, key: &Pubkey) -> T {
        let acc = self
            .ctx
            .banks_client
            .get_account(*key)
            .await
            .unwrap()
            .expect("account exists");
        client::decode_account(&acc.data).unwrap()
    }

    pub async fn now(&mut self) -> i64 {
        self.ctx
            .banks_client
            .get_sysvar::<Clock>()
            .await
            .unwrap()
            .unix_timestamp
    }

    /// Moves the bank clock forward by `secs`.
    pub async fn warp(&mut self, secs: i64) {
        let mut clock = self.ctx.banks_client.get_sysvar::<Clock>().await.unwrap();
        clock.unix_timestamp += secs;
        self.ctx.set_sysvar(&clock);
    }

    pub async fn create_mint(&mut self, token_program: Pubkey, decimals: u8) -> Pubkey {
        let mint = Keypair::new();
        let payer = self.ctx.payer.pubkey();
        let rent = self
            .ctx
            .banks_client
            .get_rent()
            .await
            .unwrap()
            .minimum_balance(82);
        let ixs = [
            system_instruction::create_account(&payer, &mint.pubkey(), rent, 82, &token_program),
            spl_token_2022::instruction::initialize_mint2(
                &token_program,
                &mint.pubkey(),
                &payer,
                None,
                decimals,
            )
            .unwrap(),
        ];
        self.send(&ixs, &[&mint]).await.unwrap();
        mint.pubkey()
    }

    pub async fn token_account(
        &mut self,
        token_program: Pubkey,
        mint: &Pubkey,
        owner: &Pubkey,
    ) -> Pubkey {
        let account = Keypair::new();
        let payer = self.ctx.payer.pubkey();
        let rent = self
            .ctx
            .banks_client
            .get_rent()
            .await
            .unwrap()
            .minimum_balance(165);
        let ixs = [
            system_instruction::create_account(
                &payer,
                &account.pubkey(),
                rent,
                165,
                &token_program,
            ),
            spl_token_2022::instruction::initialize_account3(
                &token_program,
                &account.pubkey(),
                mint,
                owner,
            )
            .unwrap(),
        ];
        self.send(&ixs, &[&account]).await.unwrap();
        account.pubkey()
    }

    pub async fn mint_to(
        &mut self,
        token_program: Pubkey,
        mint: &Pubkey,
        to: &Pubkey,
        amount: u64,
    ) {
        let payer = self.ctx.payer.pubkey();
        let ix =
            spl_token_2022::instruction::mint_to(&token_program, mint, to, &payer, &[], amount)
                .unwrap();
        self.send(&[ix], &[]).await.unwrap();
    }

    pub async fn token_balance(&mut self, account: &Pubkey) -> u64 {
        let acc = self
            .ctx
            .banks_client
            .get_account(*account)
            .await
            .unwrap()
            .expect("token account");
        // SPL token account layout: mint (32), owner (32), amount (u64 LE).
        u64::from_le_bytes(acc.data[64..72].try_into().unwrap())
    }
}

/// Units that invocations at depth 2 of programs other than this one report as consumed.
fn units_in_callees(logs: &[String]) -> u64 {
    let mut stack: Vec<String> = Vec::new();
    let mut units = 0;
    for line in logs {
        let Some(rest) = line.strip_prefix("Program ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (Some(id), Some(what)) = (words.next(), words.next()) else {
            continue;
        };
        match what {
            "invoke" => stack.push(id.to_owned()),
            "success" | "failed:" => {
                stack.pop();
            }
            "consumed" if stack.len() == 2 && id != advancia_pay::ID.to_string() => {
                units += words
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
            _ => {}
        }
    }
    units
}

/// The custom error code a failed transaction ended with.
pub fn code_of(err: BanksClientError) -> u32 {
    match err.unwrap() {
        TransactionError::InstructionError(_, InstructionError::Custom(code)) => code,
        other => panic!("expected a custom program error, got {other:?}"),
    }
}

pub fn assert_program_err<T: std::fmt::Debug>(
    res: std::result::Result<T, BanksClientError>,
    expected: AdvanciaError,
) {
    let err = res.expect_err("transaction should fail");
    assert_eq!(code_of(err), u32::from(expected), "expected {expected:?}");
}

pub fn assert_anchor_err<T: std::fmt::Debug>(
    res: std::result::Result<T, BanksClientError>,
    expected: anchor_lang::error::ErrorCode,
) {
    let err = res.expect_err("transaction should fail");
    assert_eq!(code_of(err), expected as u32, "expected {expected:?}");
}

/// A mint enabled as an asset plus token accounts for every party; the payer holds 1,000,000.
pub struct TokenSetup {
    pub program: Pubkey,
    pub mint: Pubkey,
    pub payer_token: Pubkey,
    pub payout_token: Pubkey,
    pub treasury_token: Pubkey,
    pub authority_token: Pubkey,
}

pub const TOKEN_DECIMALS: u8 = 6;
pub const TOKEN_KYC_THRESHOLD: u64 = 500_000;

impl TokenSetup {
    pub async fn new(env: &mut Env, program: Pubkey, payer: &Pubkey) -> TokenSetup {
        let mint = env.create_mint(program, TOKEN_DECIMALS).await;
        let admin = env.admin.insecure_clone();
        env.send(
            &[client::add_asset(admin.pubkey(), mint, TOKEN_KYC_THRESHOLD)],
            &[&admin],
        )
        .await
        .unwrap();
        let payer_token = env.token_account(program, &mint, payer).await;
        let payout = env.payout.pubkey();
        let payout_token = env.token_account(program, &mint, &payout).await;
        let treasury = env.treasury.pubkey();
        let treasury_token = env.token_account(program, &mint, &treasury).await;
        let authority = env.facility_authority.pubkey();
        let authority_token = env.token_account(program, &mint, &authority).await;
        env.mint_to(program, &mint, &payer_token, 1_000_000).await;
        env.mint_to(program, &mint, &authority_token, 1_000_000)
            .await;
        TokenSetup {
            program,
            mint,
            payer_token,
            payout_token,
            treasury_token,
            authority_token,
        }
    }

    pub fn accounts(&self) -> client::TokenAccounts {
        client::TokenAccounts {
            mint: self.mint,
            token_program: self.program,
            source: self.payer_token,
            payout: self.payout_token,
            treasury: self.treasury_token,
        }
    }
}

pub fn pay_params(payer: &Pubkey, invoice: &str, amount: u64) -> client::PayParams {
    client::PayParams {
        payer: *payer,
        facility_id: FACILITY_ID,
        invoice_id: id32(invoice),
        amount,
        reference: Pubkey::new_unique(),
        with_kyc: false,
    }
}

pub fn fee(amount: u64) -> u64 {
    amount * u64::from(FEE_BPS) / 10_000
}

impl Env {
    /// Writes a KYC attestation for `wallet` valid for `secs` from now.
    pub async fn attest(&mut self, wallet: &Pubkey, secs: i64) {
        let now = self.now().await;
        let compliance = self.compliance.insecure_clone();
        self.send(
            &[client::write_attestation(
                compliance.pubkey(),
                *wallet,
                1,
                now + secs,
            )],
            &[&compliance],
        )
        .await
        .unwrap();
    }
}

/// An `init` of an account that already exists failed with the program's named error
/// (`init_if_needed` + the `created_now` constraint), and nothing was overwritten.
pub fn assert_already_exists<T: std::fmt::Debug>(res: std::result::Result<T, BanksClientError>) {
    assert_program_err(res, AdvanciaError::AlreadyInitialized);
}
