"""Independent computation of the ADR 0012 bridge test vectors (message id, EIP-712 digest,
validator signatures) with eth-abi / eth-account / pycryptodome, not with our Rust code.

    python3 -m venv /tmp/ethvec && /tmp/ethvec/bin/pip install eth-account eth-abi pycryptodome
    /tmp/ethvec/bin/python programs/advancia-pay/tests/vectors/bridge_vector.py

Prints JSON; the values are copied into docs/decisions/0012-bridge.md and
programs/advancia-pay/tests/program/bridge.rs (which recomputes them with the program code).
"""

import json

from Crypto.Hash import keccak
from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_typed_data

# Base58 decoding of the program id, without a base58 dependency.
ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58decode(s: str) -> bytes:
    n = 0
    for ch in s:
        n = n * 58 + ALPHABET.index(ch)
    return n.to_bytes(32, "big")


def k256(data: bytes) -> bytes:
    return keccak.new(digest_bits=256, data=data).digest()


def word_address(address: str) -> bytes:
    return bytes(12) + bytes.fromhex(address[2:])


KEYS = [bytes([i]) * 32 for i in (1, 2, 3)]
PROGRAM_ID = "FKE26Z8kY9E3bPUoDyV3wGWz7cNxtGFU3Zk3HgxaeC88"

VECTORS = {
    # EVM (anvil) -> Solana localnet: destination = the Anchor program.
    "evm_to_solana": dict(
        origin=31337,
        sequence=7,
        sender=word_address("0x70997970C51812dc3A010C7d01b50e0d17dc79C8"),
        destination=1399811149,
        recipient=bytes([0x11]) * 32,
        asset=bytes([0x22]) * 32,
        amount=1_500_000,
        salt=b58decode(PROGRAM_ID),
        set_version=1,
    ),
    # Solana -> EVM: destination = a bridge contract at anvil's first deployment address.
    "solana_to_evm": dict(
        origin=1399811149,
        sequence=0,
        sender=bytes([0x33]) * 32,
        destination=31337,
        recipient=word_address("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"),
        asset=word_address("0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"),
        amount=1_500_000 * 10**12,
        salt=word_address("0x5FbDB2315678afecb367f032d93F642f64180aa3"),
        set_version=1,
    ),
}

out = {
    "validators": [
        {"private_key": "0x" + k.hex(), "address": Account.from_key(k).address} for k in KEYS
    ]
}
for name, v in VECTORS.items():
    encoded = encode(
        ["uint32", "uint64", "bytes32", "uint32", "bytes32", "bytes32", "uint256"],
        [v["origin"], v["sequence"], v["sender"], v["destination"], v["recipient"], v["asset"],
         v["amount"]],
    )
    message_id = k256(encoded)
    typed = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "salt", "type": "bytes32"},
            ],
            "Attestation": [
                {"name": "messageId", "type": "bytes32"},
                {"name": "setVersion", "type": "uint64"},
            ],
        },
        "primaryType": "Attestation",
        "domain": {
            "name": "AdvanciaBridge",
            "version": "1",
            "chainId": v["destination"],
            "salt": v["salt"],
        },
        "message": {"messageId": message_id, "setVersion": v["set_version"]},
    }
    signable = encode_typed_data(full_message=typed)
    domain_separator = signable.header[0:32] if len(signable.header) == 32 else signable.header
    signatures = [Account.sign_message(signable, k) for k in KEYS]
    out[name] = {
        "message": {
            "originDomain": v["origin"],
            "sequence": v["sequence"],
            "sender": "0x" + v["sender"].hex(),
            "destinationDomain": v["destination"],
            "recipient": "0x" + v["recipient"].hex(),
            "asset": "0x" + v["asset"].hex(),
            "amount": str(v["amount"]),
        },
        "salt": "0x" + v["salt"].hex(),
        "setVersion": v["set_version"],
        "id": "0x" + message_id.hex(),
        "domainSeparator": "0x" + bytes(domain_separator).hex(),
        "digest": "0x" + bytes(signatures[0].message_hash).hex(),
        "signatures": {
            Account.from_key(k).address: "0x" + bytes(s.signature).hex()
            for k, s in zip(KEYS, signatures)
        },
    }
print(json.dumps(out, indent=2))
