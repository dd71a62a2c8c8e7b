//! Conversions from runtime types to the JSON shapes of Solana's RPC (the real client types
//! from `solana-*-client-types`, so `RpcClient` and web3.js parse them as from a validator).

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use solana_account::{AccountSharedData, ReadableAccount};
use solana_account_decoder_client_types::token::UiTokenAmount;
use solana_account_decoder_client_types::{
    UiAccount, UiAccountData, UiAccountEncoding, UiDataSliceConfig,
};
use solana_message::VersionedMessage;
use solana_pubkey::Pubkey;
use solana_transaction::versioned::{TransactionVersion, VersionedTransaction};
use solana_transaction_status_client_types::option_serializer::OptionSerializer;
use solana_transaction_status_client_types::{
    EncodedTransaction, EncodedTransactionWithStatusMeta, ParsedAccount, ParsedAccountSource,
    TransactionBinaryEncoding, UiAddressTableLookup, UiCompiledInstruction, UiInnerInstructions,
    UiInstruction, UiMessage, UiParsedInstruction, UiParsedMessage, UiPartiallyDecodedInstruction,
    UiRawMessage, UiTransaction, UiTransactionEncoding, UiTransactionStatusMeta,
};

use crate::chain::TxRecord;
use crate::rpc::RpcError;

/// Agave refuses base58 for account data above this size.
const MAX_BASE58_BYTES: usize = 128;

/// Token amount as the RPC shows it: integer string plus the display forms.
pub fn token_amount(amount: u64, decimals: u8) -> UiTokenAmount {
    let ui_amount_string = real_number_string_trimmed(amount, decimals);
    UiTokenAmount {
        // Display-only float, part of the RPC shape; exact values are in `amount`.
        ui_amount: Some(amount as f64 / 10f64.powi(i32::from(decimals))),
        decimals,
        amount: amount.to_string(),
        ui_amount_string,
    }
}

fn real_number_string_trimmed(amount: u64, decimals: u8) -> String {
    let decimals = usize::from(decimals);
    if decimals == 0 {
        return amount.to_string();
    }
    let mut s = format!("{amount:0>width$}", width = decimals + 1);
    s.insert(s.len() - decimals, '.');
    let trimmed = s.trim_end_matches('0').trim_end_matches('.');
    trimmed.to_string()
}

pub fn encode_account(
    account: &AccountSharedData,
    encoding: UiAccountEncoding,
    slice: Option<UiDataSliceConfig>,
) -> Result<UiAccount, RpcError> {
    let full = account.data();
    let data = match slice {
        Some(UiDataSliceConfig { offset, length }) => {
            let start = offset.min(full.len());
            let end = offset.saturating_add(length).min(full.len());
            &full[start..end]
        }
        None => full,
    };
    let data = match encoding {
        UiAccountEncoding::Binary | UiAccountEncoding::Base58 => {
            if data.len() > MAX_BASE58_BYTES {
                return Err(RpcError::invalid_request(format!(
                    "Encoded binary (base 58) data should be less than {MAX_BASE58_BYTES} bytes, please use Base64 encoding."
                )));
            }
            let b58 = bs58::encode(data).into_string();
            if encoding == UiAccountEncoding::Binary {
                UiAccountData::LegacyBinary(b58)
            } else {
                UiAccountData::Binary(b58, UiAccountEncoding::Base58)
            }
        }
        // No program-specific parsers here: like a validator that cannot parse an account,
        // jsonParsed falls back to base64.
        UiAccountEncoding::Base64 | UiAccountEncoding::JsonParsed => {
            UiAccountData::Binary(BASE64_STANDARD.encode(data), UiAccountEncoding::Base64)
        }
        UiAccountEncoding::Base64Zstd => {
            let compressed = zstd::encode_all(data, 0)
                .map_err(|e| RpcError::internal(format!("zstd compression failed: {e}")))?;
            UiAccountData::Binary(
                BASE64_STANDARD.encode(compressed),
                UiAccountEncoding::Base64Zstd,
            )
        }
    };
    Ok(UiAccount {
        lamports: account.lamports(),
        data,
        owner: account.owner().to_string(),
        executable: account.executable(),
        rent_epoch: account.rent_epoch(),
        space: Some(full.len() as u64),
    })
}

pub fn encode_transaction(
    tx: &VersionedTransaction,
    encoding: UiTransactionEncoding,
) -> Result<EncodedTransaction, RpcError> {
    let bytes = || {
        bincode::serialize(tx)
            .map_err(|e| RpcError::internal(format!("transaction serialization: {e}")))
    };
    Ok(match encoding {
        UiTransactionEncoding::Binary => {
            EncodedTransaction::LegacyBinary(bs58::encode(bytes()?).into_string())
        }
        UiTransactionEncoding::Base58 => EncodedTransaction::Binary(
            bs58::encode(bytes()?).into_string(),
            TransactionBinaryEncoding::Base58,
        ),
        UiTransactionEncoding::Base64 => EncodedTransaction::Binary(
            BASE64_STANDARD.encode(bytes()?),
            TransactionBinaryEncoding::Base64,
        ),
        UiTransactionEncoding::Json => EncodedTransaction::Json(UiTransaction {
            signatures: tx.signatures.iter().map(ToString::to_string).collect(),
            message: raw_message(&tx.message),
        }),
        UiTransactionEncoding::JsonParsed => EncodedTransaction::Json(UiTransaction {
            signatures: tx.signatures.iter().map(ToString::to_string).collect(),
            message: parsed_message(&tx.message, None),
        }),
    })
}

fn raw_message(message: &VersionedMessage) -> UiMessage {
    UiMessage::Raw(UiRawMessage {
        header: *message.header(),
        account_keys: message
            .static_account_keys()
            .iter()
            .map(ToString::to_string)
            .collect(),
        recent_blockhash: message.recent_blockhash().to_string(),
        instructions: message
            .instructions()
            .iter()
            .map(|ix| UiCompiledInstruction::from(ix, None))
            .collect(),
        address_table_lookups: match message {
            VersionedMessage::Legacy(_) => None,
            VersionedMessage::V0(m) => Some(
                m.address_table_lookups
                    .iter()
                    .map(UiAddressTableLookup::from)
                    .collect(),
            ),
        },
    })
}

/// jsonParsed without program-specific parsers: every instruction is "partially decoded"
/// (program id and accounts resolved, data base58), which web3.js' parsed types allow.
fn parsed_message(
    message: &VersionedMessage,
    loaded: Option<&solana_message::v0::LoadedAddresses>,
) -> UiMessage {
    let static_keys = message.static_account_keys();
    let mut keys: Vec<(Pubkey, bool, bool, ParsedAccountSource)> = static_keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            (
                *k,
                message.is_maybe_writable(i, None),
                message.is_signer(i),
                ParsedAccountSource::Transaction,
            )
        })
        .collect();
    if let Some(loaded) = loaded {
        keys.extend(
            loaded
                .writable
                .iter()
                .map(|k| (*k, true, false, ParsedAccountSource::LookupTable)),
        );
        keys.extend(
            loaded
                .readonly
                .iter()
                .map(|k| (*k, false, false, ParsedAccountSource::LookupTable)),
        );
    }
    let all: Vec<Pubkey> = keys.iter().map(|k| k.0).collect();
    UiMessage::Parsed(UiParsedMessage {
        account_keys: keys
            .iter()
            .map(|(k, writable, signer, source)| ParsedAccount {
                pubkey: k.to_string(),
                writable: *writable,
                signer: *signer,
                source: Some(source.clone()),
            })
            .collect(),
        recent_blockhash: message.recent_blockhash().to_string(),
        instructions: message
            .instructions()
            .iter()
            .map(|ix| partially_decoded(&all, ix, None))
            .collect(),
        address_table_lookups: match message {
            VersionedMessage::Legacy(_) => None,
            VersionedMessage::V0(m) => Some(
                m.address_table_lookups
                    .iter()
                    .map(UiAddressTableLookup::from)
                    .collect(),
            ),
        },
    })
}

fn partially_decoded(
    keys: &[Pubkey],
    ix: &solana_message::compiled_instruction::CompiledInstruction,
    stack_height: Option<u32>,
) -> UiInstruction {
    let key = |i: u8| {
        keys.get(usize::from(i))
            .map(ToString::to_string)
            .unwrap_or_default()
    };
    UiInstruction::Parsed(UiParsedInstruction::PartiallyDecoded(
        UiPartiallyDecodedInstruction {
            program_id: key(ix.program_id_index),
            accounts: ix.accounts.iter().map(|a| key(*a)).collect(),
            data: bs58::encode(&ix.data).into_string(),
            stack_height,
        },
    ))
}

/// Agave's check: v0 transactions need `maxSupportedTransactionVersion: 0`.
pub fn check_version(
    tx: &VersionedTransaction,
    max_supported: Option<u8>,
) -> Result<Option<TransactionVersion>, RpcError> {
    match (tx.version(), max_supported) {
        (TransactionVersion::Legacy(_), None) => Ok(None),
        (v @ TransactionVersion::Legacy(_), Some(_)) => Ok(Some(v)),
        (TransactionVersion::Number(n), Some(max)) if n <= max => {
            Ok(Some(TransactionVersion::Number(n)))
        }
        (TransactionVersion::Number(n), _) => Err(RpcError::unsupported_version(n)),
    }
}

pub fn encode_with_meta(
    record: &TxRecord,
    encoding: UiTransactionEncoding,
    max_supported: Option<u8>,
) -> Result<EncodedTransactionWithStatusMeta, RpcError> {
    let version = check_version(&record.transaction, max_supported)?;
    let mut meta = UiTransactionStatusMeta::from(record.meta.clone());
    let transaction = if encoding == UiTransactionEncoding::JsonParsed {
        let keys: Vec<Pubkey> = record
            .transaction
            .message
            .static_account_keys()
            .iter()
            .chain(&record.meta.loaded_addresses.writable)
            .chain(&record.meta.loaded_addresses.readonly)
            .copied()
            .collect();
        if let Some(inner) = &record.meta.inner_instructions {
            meta.inner_instructions = OptionSerializer::Some(
                inner
                    .iter()
                    .map(|ixs| UiInnerInstructions {
                        index: ixs.index,
                        instructions: ixs
                            .instructions
                            .iter()
                            .map(|ix| partially_decoded(&keys, &ix.instruction, ix.stack_height))
                            .collect(),
                    })
                    .collect(),
            );
        }
        // Parsed responses list loaded addresses inside accountKeys instead.
        meta.loaded_addresses = OptionSerializer::Skip;
        EncodedTransaction::Json(UiTransaction {
            signatures: record
                .transaction
                .signatures
                .iter()
                .map(ToString::to_string)
                .collect(),
            message: parsed_message(
                &record.transaction.message,
                Some(&record.meta.loaded_addresses),
            ),
        })
    } else {
        encode_transaction(&record.transaction, encoding)?
    };
    Ok(EncodedTransactionWithStatusMeta {
        transaction,
        meta: Some(meta),
        version,
    })
}
