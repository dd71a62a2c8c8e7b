//! Shared test harness: anvil nodes on free loopback ports, deployed bridges, validators.

#![allow(clippy::unwrap_used, dead_code)]

pub mod solana;

use advancia_relayer::attestation::AttestationDir;
use advancia_relayer::contract::{AdvanciaBridge, TestToken};
use advancia_relayer::journal::JournalStore;
use advancia_relayer::keys::SigningKey;
use advancia_relayer::message::{self, Message};
use advancia_relayer::relayer::{Relayer, RelayerConfig};
use advancia_relayer::source::EvmSource;
use advancia_relayer::source::MessageSource;
use advancia_relayer::store::Store;
use advancia_relayer::validator::{Destination, EvmDestination, Validator};
use advancia_relayer::validator_http;
use std::time::Duration;

use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::providers::{DynProvider, Provider};

/// anvil's first dev account (funded with 10000 ETH): deployer and owner.
pub const OWNER_KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
/// anvil's second dev account: the user who dispatches.
pub const USER_KEY: &str = "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
/// anvil's third dev account: the relayer paying gas on the destination.
pub const RELAYER_KEY: &str = "5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";

pub fn key(hex: &str) -> SigningKey {
    SigningKey::from_hex(hex).unwrap()
}

/// Deterministic validator keys (keccak of a label), sorted by address for readability.
pub fn validator_keys(n: usize) -> Vec<SigningKey> {
    let mut keys: Vec<SigningKey> = (0..n)
        .map(|i| SigningKey::from_b256(&keccak256(format!("advancia-validator-{i}"))).unwrap())
        .collect();
    keys.sort_by_key(|k| k.address());
    keys
}

pub use advancia_test_support::anvil::Anvil;

pub type Bridge = AdvanciaBridge::AdvanciaBridgeInstance<DynProvider>;
pub type Token = TestToken::TestTokenInstance<DynProvider>;

pub async fn deploy_bridge(chain: &Anvil, validators: &[SigningKey], threshold: u64) -> Bridge {
    let owner = key(OWNER_KEY);
    let addrs: Vec<Address> = validators.iter().map(SigningKey::address).collect();
    AdvanciaBridge::deploy(
        chain.wallet_provider(&owner),
        owner.address(),
        addrs,
        U256::from(threshold),
    )
    .await
    .unwrap()
}

pub async fn deploy_token(chain: &Anvil, decimals: u8) -> Token {
    TestToken::deploy(
        chain.wallet_provider(&key(OWNER_KEY)),
        "Test USD".into(),
        "TUSD".into(),
        decimals,
    )
    .await
    .unwrap()
}

/// Sends a transaction built by `call` and asserts it succeeded; returns gas used.
pub async fn send<P, D>(call: alloy::contract::CallBuilder<P, D>) -> u64
where
    P: Provider,
    D: alloy::contract::CallDecoder,
{
    let receipt = call.send().await.unwrap().get_receipt().await.unwrap();
    assert!(receipt.status(), "transaction reverted");
    receipt.gas_used
}

/// Two chains with a bridge each (same validator set, threshold `m`), a native route both
/// ways 18 -> 18 decimals, a 6-decimal token on A routed to an 18-decimal token on B, and
/// liquidity on B.
pub struct TwoChains {
    pub a: Anvil,
    pub b: Anvil,
    pub bridge_a: Bridge,
    pub bridge_b: Bridge,
    pub token_a: Token,
    pub token_b: Token,
    pub validators: Vec<SigningKey>,
}

pub const LIQUIDITY_NATIVE: u128 = 100_000_000_000_000_000_000; // 100 ETH
pub const LIQUIDITY_TOKEN: u128 = 1_000_000_000_000_000_000_000_000; // 1M tokens at 18 decimals

impl TwoChains {
    pub async fn start(n: usize, m: u64) -> TwoChains {
        Self::start_with(n, m, &[]).await
    }

    /// `b_args`: extra anvil arguments for chain B (e.g. a block time instead of automine).
    pub async fn start_with(n: usize, m: u64, b_args: &[&str]) -> TwoChains {
        let (a, b) = tokio::join!(Anvil::start(31337), Anvil::start_with(31338, b_args));
        let validators = validator_keys(n);
        let bridge_a = deploy_bridge(&a, &validators, m).await;
        let bridge_b = deploy_bridge(&b, &validators, m).await;
        let token_a = deploy_token(&a, 6).await;
        let token_b = deploy_token(&b, 18).await;
        let owner_a = AdvanciaBridge::new(*bridge_a.address(), a.wallet_provider(&key(OWNER_KEY)));
        send(owner_a.setRoute(Address::ZERO, b.domain(), B256::ZERO, 18, 18)).await;
        send(owner_a.setRoute(
            *token_a.address(),
            b.domain(),
            message::address_word(*token_b.address()),
            6,
            18,
        ))
        .await;
        // Liquidity on B: native coin and tokens the releases are paid from.
        let owner_b = AdvanciaBridge::new(*bridge_b.address(), b.wallet_provider(&key(OWNER_KEY)));
        send(
            owner_b
                .addLiquidity(Address::ZERO, U256::from(LIQUIDITY_NATIVE))
                .value(U256::from(LIQUIDITY_NATIVE)),
        )
        .await;
        let token_b_owner = TestToken::new(*token_b.address(), b.wallet_provider(&key(OWNER_KEY)));
        send(token_b_owner.mint(key(OWNER_KEY).address(), U256::from(LIQUIDITY_TOKEN))).await;
        send(token_b_owner.approve(*bridge_b.address(), U256::from(LIQUIDITY_TOKEN))).await;
        send(owner_b.addLiquidity(*token_b.address(), U256::from(LIQUIDITY_TOKEN))).await;
        // The user holds tokens on A and approved the bridge.
        let user = key(USER_KEY);
        let token_a_user = TestToken::new(*token_a.address(), a.wallet_provider(&user));
        send(token_a_user.mint(user.address(), U256::from(1_000_000_000_000u64))).await;
        send(token_a_user.approve(*bridge_a.address(), U256::MAX)).await;
        TwoChains {
            a,
            b,
            bridge_a,
            bridge_b,
            token_a,
            token_b,
            validators,
        }
    }

    /// The user's bridge handle on A.
    pub fn user_bridge_a(&self) -> Bridge {
        AdvanciaBridge::new(
            *self.bridge_a.address(),
            self.a.wallet_provider(&key(USER_KEY)),
        )
    }

    /// Dispatches native coin from A to `recipient` on B; returns the message.
    pub async fn dispatch_native(&self, recipient: Address, wei: u128) -> Message {
        let bridge = self.user_bridge_a();
        let call = bridge
            .dispatch(
                Address::ZERO,
                U256::from(wei),
                self.b.domain(),
                message::address_word(recipient),
            )
            .value(U256::from(wei));
        self.dispatched(call.send().await.unwrap().get_receipt().await.unwrap())
    }

    /// Dispatches `amount` (6 decimals) of token A to `recipient` on B.
    pub async fn dispatch_token(&self, recipient: Address, amount: u64) -> Message {
        let bridge = self.user_bridge_a();
        let call = bridge.dispatch(
            *self.token_a.address(),
            U256::from(amount),
            self.b.domain(),
            message::address_word(recipient),
        );
        self.dispatched(call.send().await.unwrap().get_receipt().await.unwrap())
    }

    fn dispatched(&self, receipt: alloy::rpc::types::TransactionReceipt) -> Message {
        assert!(receipt.status());
        let log = receipt
            .inner
            .logs()
            .iter()
            .find_map(|l| l.log_decode::<AdvanciaBridge::Dispatch>().ok())
            .unwrap();
        let e = log.inner.data;
        let m = Message {
            originDomain: e.originDomain,
            sequence: e.sequence,
            sender: e.sender,
            destinationDomain: e.destinationDomain,
            recipient: e.recipient,
            asset: e.asset,
            amount: e.amount,
        };
        assert_eq!(message::message_id(&m), e.id);
        m
    }

    pub fn validators_for(
        &self,
        store: &Store,
        confirmations: u64,
    ) -> Vec<Validator<EvmSource, EvmDestination>> {
        self.validators
            .iter()
            .map(|k| {
                let source = EvmSource::new(
                    self.a.provider(),
                    *self.bridge_a.address(),
                    self.a.domain(),
                    confirmations,
                );
                let destination = EvmDestination {
                    domain: self.b.domain(),
                    bridge: *self.bridge_b.address(),
                    provider: self.b.provider(),
                };
                Validator::new(source, vec![destination], k.clone(), store.clone(), 0)
            })
            .collect()
    }

    /// Validators that share nothing (see [`OwnValidator`]), under `root`.
    pub async fn own_validators(
        &self,
        root: &std::path::Path,
        confirmations: u64,
    ) -> Vec<OwnValidator<EvmSource, EvmDestination>> {
        let mut out = Vec::new();
        for (i, k) in self.validators.iter().enumerate() {
            let source = EvmSource::new(
                self.a.provider(),
                *self.bridge_a.address(),
                self.a.domain(),
                confirmations,
            );
            let destination = EvmDestination {
                domain: self.b.domain(),
                bridge: *self.bridge_b.address(),
                provider: self.b.provider(),
            };
            out.push(OwnValidator::start(root, i, source, vec![destination], k.clone()).await);
        }
        out
    }

    pub async fn relayer(&self, store: &Store) -> Relayer {
        relayer_to(&self.b, *self.bridge_b.address(), store).await
    }

    /// Attestations of `m` on B by `signers` at `set_version`, in the given order.
    pub fn sign(&self, m: &Message, signers: &[&SigningKey], set_version: u64) -> Vec<Bytes> {
        let digest = message::message_digest(
            m,
            message::address_word(*self.bridge_b.address()),
            set_version,
        );
        signers
            .iter()
            .map(|k| Bytes::from(message::sign(k, digest).unwrap().to_vec()))
            .collect()
    }
}

/// A relayer delivering to `bridge` on `chain`, paying gas from anvil's third account.
pub async fn relayer_to(chain: &Anvil, bridge: Address, store: &Store) -> Relayer {
    let config = RelayerConfig {
        confirmations: 1,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
        poll: Duration::from_millis(0),
        batch: 500,
        share: None,
    };
    Relayer::connect(
        store.clone(),
        chain.provider(),
        bridge,
        key(RELAYER_KEY),
        config,
    )
    .await
    .unwrap()
}

pub async fn native_balance(chain: &Anvil, who: Address) -> U256 {
    chain.provider().get_balance(who).await.unwrap()
}

/// A validator that shares nothing: its own embedded store and publication directory under
/// `root/v{i}`, its attestations served over HTTP on a free loopback port (the announced
/// location, returned beside it) and stepped in the background every 50 ms.
pub struct OwnValidator<S: MessageSource + 'static, D: Destination + 'static> {
    pub validator: std::sync::Arc<Validator<S, D, JournalStore>>,
    pub location: String,
    pub dir: AttestationDir,
}

impl<S: MessageSource + 'static, D: Destination + 'static> OwnValidator<S, D> {
    pub async fn start(
        root: &std::path::Path,
        i: usize,
        source: S,
        destinations: Vec<D>,
        key: SigningKey,
    ) -> Self {
        let dir = AttestationDir::create(root.join(format!("v{i}/attestations"))).unwrap();
        let store = JournalStore::open(root.join(format!("v{i}/store"))).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let location = format!("http://{}", listener.local_addr().unwrap());
        let validator = std::sync::Arc::new(
            Validator::new(source, destinations, key, store, 0)
                .publishing_to(dir.clone(), &location)
                .unwrap(),
        );
        validator_http::serve(listener, validator.clone(), dir.clone()).unwrap();
        Self {
            validator,
            location,
            dir,
        }
    }

    /// The validator's `/metrics` text, fetched over HTTP like Prometheus would.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.location))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}
