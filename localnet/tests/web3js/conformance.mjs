// Conformance run against advancia-localnet with the real @solana/web3.js.
// Usage: node conformance.mjs <rpc-url> <instruction-json>
// <instruction-json>: {"admin": [64 secret-key bytes], "programId": "...",
//   "keys": [{"pubkey": "...", "isSigner": bool, "isWritable": bool}], "data": "<base64>"}
// Prints one JSON line with what it observed; the Rust test asserts on it.
import {
  Connection, Keypair, LAMPORTS_PER_SOL, PublicKey, SystemProgram, Transaction,
  TransactionInstruction, sendAndConfirmTransaction,
} from '@solana/web3.js';

const [url, ixJson] = process.argv.slice(2);
const spec = JSON.parse(ixJson);
// 'confirmed' everywhere; the websocket endpoint is derived as port + 1, as for a validator.
const conn = new Connection(url, 'confirmed');

const version = await conn.getVersion();
const admin = Keypair.fromSecretKey(Uint8Array.from(spec.admin));

const airdrop = await conn.requestAirdrop(admin.publicKey, 2 * LAMPORTS_PER_SOL);
const latest = await conn.getLatestBlockhash();
// Blockhash strategy: web3.js waits on signatureSubscribe over the websocket.
const airdropResult = await conn.confirmTransaction({ signature: airdrop, ...latest }, 'confirmed');

const to = Keypair.generate().publicKey;
const transfer = new Transaction().add(
  SystemProgram.transfer({ fromPubkey: admin.publicKey, toPubkey: to, lamports: 1000000 }),
);
const transferSig = await sendAndConfirmTransaction(conn, transfer, [admin]);
const toBalance = await conn.getBalance(to);

const ix = new TransactionInstruction({
  programId: new PublicKey(spec.programId),
  keys: spec.keys.map((k) => ({ pubkey: new PublicKey(k.pubkey), isSigner: k.isSigner, isWritable: k.isWritable })),
  data: Buffer.from(spec.data, 'base64'),
});
const programSig = await sendAndConfirmTransaction(conn, new Transaction().add(ix), [admin]);
const fetched = await conn.getTransaction(programSig, { commitment: 'confirmed', maxSupportedTransactionVersion: 0 });
const parsed = await conn.getParsedTransaction(programSig, { commitment: 'confirmed', maxSupportedTransactionVersion: 0 });

// A failing send surfaces as SendTransactionError with the simulation logs.
let preflightLogs = null;
try {
  await sendAndConfirmTransaction(conn, new Transaction().add(ix), [admin]);
} catch (e) {
  preflightLogs = e.logs ?? (typeof e.getLogs === 'function' ? await e.getLogs(conn) : null);
}

console.log(JSON.stringify({
  solanaCore: version['solana-core'],
  airdropErr: airdropResult.value.err,
  transferSig,
  toBalance,
  programSig,
  programSlot: fetched.slot,
  logs: fetched.meta.logMessages,
  innerInstructionCount: fetched.meta.innerInstructions.reduce((n, i) => n + i.instructions.length, 0),
  parsedInnerProgramIds: parsed.meta.innerInstructions.flatMap((i) => i.instructions.map((x) => x.programId.toBase58())),
  preflightLogs,
}));
process.exit(0);
