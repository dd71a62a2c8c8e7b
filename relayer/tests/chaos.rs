//! Crash tests for every bridge node, on the real binaries: 200 messages from an EVM chain
//! (anvil) to the Solana program (local node), 3 validators (2 needed), each with its own
//! embedded store and HTTP location, and the Solana relayer with its own database.
//!
//! While they work, validator 0 and the relayer are each SIGKILLed at random moments at
//! least 15 times and restarted, and validator 1's RPC endpoint goes down for 30 s. Then:
//! every message is delivered exactly once (each recipient holds exactly its amount, and the
//! program's processed-message PDA exists), and no validator ever published two different
//! messages for one (origin, sequence).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use advancia_localnet::{Localnet, LocalnetConfig};
use advancia_pay::client as pay;
use advancia_relayer::MIGRATIONS;
use advancia_relayer::attestation::AttestationDir;
use advancia_relayer::contract::AdvanciaBridge;
use advancia_relayer::keys::SigningKey;
use advancia_test_support::TestDb;
use alloy::primitives::{Address, B256, U256};
use anchor_lang::prelude::Pubkey;
use common::solana::{SOL, SOLANA_DOMAIN, configure_bridge, funded, send_sol};
use common::{Anvil, OWNER_KEY, USER_KEY, deploy_bridge, key, send, validator_keys};
use solana_commitment_config::CommitmentConfig;
use solana_rpc_client::nonblocking::rpc_client::RpcClient;
use solana_signer::Signer;

const BIN: &str = env!("CARGO_BIN_EXE_advancia-relayer");
const MESSAGES: usize = 200;
const KILLS: usize = 15;

/// xorshift64*: reproducible "random" moments from a printed seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A TCP proxy in front of an RPC endpoint that can be taken down (its port refuses
/// connections, open ones are cut) and brought back on the same port.
struct SwitchableProxy {
    port: u16,
    up: Arc<AtomicBool>,
}

impl SwitchableProxy {
    fn start(upstream: SocketAddr) -> Self {
        let port = free_port();
        let up = Arc::new(AtomicBool::new(true));
        let flag = up.clone();
        tokio::spawn(async move {
            loop {
                if !flag.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                let Ok(listener) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let mut conns = tokio::task::JoinSet::new();
                while flag.load(Ordering::SeqCst) {
                    let accepted =
                        tokio::time::timeout(Duration::from_millis(20), listener.accept()).await;
                    let Ok(Ok((mut inbound, _))) = accepted else {
                        continue;
                    };
                    conns.spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                }
                // Down: stop listening and cut every open connection.
                drop(listener);
                conns.abort_all();
            }
        });
        Self { port, up }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }
}

struct ValidatorProcess {
    args: Vec<String>,
    key_hex: String,
    child: Option<Child>,
    dir: std::path::PathBuf,
    location: String,
}

impl ValidatorProcess {
    fn spawn(&mut self) {
        let child = Command::new(BIN)
            .args(&self.args)
            .env_remove("DATABASE_URL")
            .env("ADVANCIA_VALIDATOR_KEY", &self.key_hex)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap(); // SIGKILL
            c.wait().unwrap();
        }
    }
}

fn validator_key_hex(i: usize) -> String {
    alloy::hex::encode(alloy::primitives::keccak256(format!(
        "advancia-validator-{i}"
    )))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validators_and_the_solana_relayer_killed_at_random_deliver_each_message_once() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("chaos seed {seed}");
    let mut rng = Rng(seed);

    // Solana (destination): the program's bridge, 3 validators, 2 needed, SOL liquidity.
    let node = Localnet::start(LocalnetConfig::for_tests()).await.unwrap();
    let client = Arc::new(RpcClient::new_with_commitment(
        node.rpc_url(),
        CommitmentConfig::confirmed(),
    ));
    let keys = validator_keys(3);
    let admin = configure_bridge(&client, &keys, 2).await;
    send_sol(
        &client,
        &admin,
        &[solana_system_interface::instruction::transfer(
            &admin.pubkey(),
            &pay::bridge_sol_vault_pda(),
            5 * SOL,
        )],
    )
    .await;
    let payer = funded(&client, 10 * SOL).await;
    let tmp = tempfile::tempdir().unwrap();
    let keypair_path = tmp.path().join("relayer-payer.json");
    std::fs::write(
        &keypair_path,
        serde_json::to_string(&payer.to_bytes().to_vec()).unwrap(),
    )
    .unwrap();

    // EVM (origin): ETH routed to SOL.
    let evm = Anvil::start(31337).await;
    let bridge = deploy_bridge(&evm, &keys, 2).await;
    let owner = AdvanciaBridge::new(*bridge.address(), evm.wallet_provider(&key(OWNER_KEY)));
    send(owner.setRoute(Address::ZERO, SOLANA_DOMAIN, B256::ZERO, 18, 9)).await;
    let user = AdvanciaBridge::new(*bridge.address(), evm.wallet_provider(&key(USER_KEY)));
    let recipients: Vec<Pubkey> = (0..MESSAGES).map(|_| Pubkey::new_unique()).collect();
    // Message i pays 1_000_000 + i lamports (1e9 wei each).
    let lamports = |i: usize| 1_000_000 + i as u64;

    // Validator 1 reaches the origin through a proxy that goes down for 30 s.
    let anvil_addr: SocketAddr = evm.url.trim_start_matches("http://").parse().unwrap();
    let proxy = SwitchableProxy::start(anvil_addr);
    let destination = format!("{SOLANA_DOMAIN}=solana:{}", node.rpc_url());
    let mut validators: Vec<ValidatorProcess> = (0..3)
        .map(|i| {
            let port = free_port();
            let dir = tmp.path().join(format!("v{i}/attestations"));
            let rpc = if i == 1 { proxy.url() } else { evm.url.clone() };
            let location = format!("http://127.0.0.1:{port}");
            let args = [
                "validator",
                "--rpc",
                &rpc,
                "--bridge",
                &bridge.address().to_string(),
                "--confirmations",
                "1",
                "--destination",
                &destination,
                "--store",
                &format!(
                    "file://{}",
                    tmp.path().join(format!("v{i}/store")).display()
                ),
                "--attestations-dir",
                &dir.display().to_string(),
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--poll-ms",
                "100",
            ]
            .map(str::to_owned)
            .to_vec();
            ValidatorProcess {
                args,
                key_hex: validator_key_hex(i),
                child: None,
                dir,
                location,
            }
        })
        .collect();
    // validator_keys sorts by address; the process keys must be the same set.
    let mut spawned: Vec<Address> = (0..3)
        .map(|i| {
            SigningKey::from_hex(&validator_key_hex(i))
                .unwrap()
                .address()
        })
        .collect();
    spawned.sort();
    assert_eq!(
        spawned,
        keys.iter().map(SigningKey::address).collect::<Vec<_>>()
    );
    for v in &mut validators {
        v.spawn();
    }

    let db = TestDb::new(&[&MIGRATIONS]).await;
    let mut relayer_args: Vec<String> = [
        "solana-relayer",
        "--rpc",
        &node.rpc_url(),
        "--domain",
        &SOLANA_DOMAIN.to_string(),
        "--keypair",
        &keypair_path.display().to_string(),
        "--poll-ms",
        "50",
    ]
    .map(str::to_owned)
    .to_vec();
    for v in &validators {
        relayer_args.push("--validator-location".into());
        relayer_args.push(v.location.clone());
    }
    let spawn_relayer = || {
        Command::new(BIN)
            .args(&relayer_args)
            .env("DATABASE_URL", &db.url)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap()
    };
    let mut relayer = spawn_relayer();

    // Dispatch in the background while the nodes are being killed.
    let dispatcher = {
        let user = user.clone();
        let recipients = recipients.clone();
        let evm_provider = evm.provider();
        tokio::spawn(async move {
            for (i, r) in recipients.iter().enumerate() {
                let wei = U256::from(lamports(i)) * U256::from(1_000_000_000u64);
                send(
                    user.dispatch(Address::ZERO, wei, SOLANA_DOMAIN, B256::from(r.to_bytes()))
                        .value(wei),
                )
                .await;
                if i % 20 == 19 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            // One more block so the last dispatch has its confirmation.
            let _: serde_json::Value =
                alloy::providers::Provider::raw_request(&evm_provider, "evm_mine".into(), ())
                    .await
                    .unwrap();
        })
    };

    let delivered = async || -> usize {
        let mut n = 0;
        for (i, r) in recipients.iter().enumerate() {
            if client.get_balance(r).await.unwrap() == lamports(i) {
                n += 1;
            }
        }
        n
    };

    let started = Instant::now();
    let (mut validator_kills, mut relayer_kills) = (0, 0);
    let mut rpc_outage: Option<Instant> = None;
    let mut rpc_outage_done = false;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        assert!(Instant::now() < deadline, "not all delivered in time");
        tokio::time::sleep(Duration::from_millis(rng.between(150, 700))).await;
        if validator_kills < KILLS || relayer_kills < KILLS {
            if rng.next().is_multiple_of(2) && validator_kills < KILLS {
                validators[0].kill();
                validator_kills += 1;
                validators[0].spawn();
            } else if relayer_kills < KILLS {
                relayer.kill().unwrap(); // SIGKILL
                relayer.wait().unwrap();
                relayer_kills += 1;
                relayer = spawn_relayer();
            }
        }
        // Validator 1's RPC goes down for 30 s, a few seconds in.
        if !rpc_outage_done && rpc_outage.is_none() && started.elapsed() > Duration::from_secs(3) {
            proxy.set_up(false);
            rpc_outage = Some(Instant::now());
        }
        if let Some(at) = rpc_outage
            && at.elapsed() >= Duration::from_secs(30)
        {
            proxy.set_up(true);
            rpc_outage = None;
            rpc_outage_done = true;
        }
        if dispatcher.is_finished()
            && validator_kills >= KILLS
            && relayer_kills >= KILLS
            && rpc_outage_done
            && delivered().await == MESSAGES
        {
            break;
        }
    }
    println!(
        "all {MESSAGES} delivered in {:.1}s with {validator_kills} validator and {relayer_kills} relayer SIGKILLs and a 30 s RPC outage",
        started.elapsed().as_secs_f64()
    );
    // A little longer: nothing is delivered a second time.
    tokio::time::sleep(Duration::from_secs(2)).await;
    relayer.kill().unwrap();
    relayer.wait().unwrap();
    for v in &mut validators {
        v.kill();
    }

    // Exactly once: each recipient holds exactly its amount and each message's
    // processed-message PDA exists.
    for (i, r) in recipients.iter().enumerate() {
        assert_eq!(
            client.get_balance(r).await.unwrap(),
            lamports(i),
            "recipient {i}"
        );
    }
    let dispatches = bridge
        .Dispatch_filter()
        .from_block(0)
        .query()
        .await
        .unwrap();
    assert_eq!(dispatches.len(), MESSAGES);
    for (e, _) in &dispatches {
        let pda = pay::bridge_message_pda(&e.id.0);
        assert!(
            client.get_account(&pda).await.is_ok(),
            "no PDA for {}",
            e.id
        );
    }

    // No validator published two messages for one sequence; every validator that was up
    // long enough published each message (at most once per set version).
    for (i, v) in validators.iter().enumerate() {
        let dir = AttestationDir::create(&v.dir).unwrap();
        let latest = dir.latest().unwrap().unwrap_or(0);
        let mut by_sequence: HashMap<(u32, u64), B256> = HashMap::new();
        for n in 1..=latest {
            let a = dir.attestation(n).unwrap().unwrap();
            if let Some(prev) =
                by_sequence.insert((a.message.origin_domain, a.message.sequence), a.id)
            {
                assert_eq!(
                    prev, a.id,
                    "validator {i} signed two messages for one sequence"
                );
            }
        }
        println!("validator {i}: {latest} attestations published");
    }
}
