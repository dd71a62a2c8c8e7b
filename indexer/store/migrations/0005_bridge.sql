-- Bridge messages seen on any chain: `dispatched` where a message leaves (EVM `Dispatch`,
-- Solana `BridgeDispatched`), `processed` where it is delivered. One message id pairs the
-- two sides (docs/decisions/0012-bridge.md). Ids, addresses and assets are 0x-hex words;
-- amounts are uint256, so numeric(78,0).
CREATE TABLE bridge_messages (
    chain text NOT NULL, signature text NOT NULL, ix_index integer NOT NULL, inner_index integer NOT NULL,
    slot bigint NOT NULL, commitment text NOT NULL, block_time bigint,
    direction text NOT NULL CHECK (direction IN ('dispatched', 'processed')),
    message_id text NOT NULL,
    origin_domain bigint NOT NULL,
    sequence numeric(20,0) NOT NULL,
    sender text,
    destination_domain bigint,
    recipient text NOT NULL,
    asset text NOT NULL,
    amount numeric(78,0) NOT NULL,
    seq bigint NOT NULL DEFAULT nextval('indexer.event_seq'),
    PRIMARY KEY (chain, signature, ix_index, inner_index),
    FOREIGN KEY (chain, signature) REFERENCES transactions ON DELETE CASCADE
);
CREATE INDEX bridge_messages_id ON bridge_messages (message_id, direction);
CREATE INDEX bridge_messages_seq ON bridge_messages (seq);

-- Hashes of the EVM blocks the indexer wrote rows from (and of its cursor block) while they
-- are not final yet: a different hash at the same height later means a reorg, and the rows
-- from that height on are undone. Deleted once the block is final.
CREATE TABLE evm_blocks (
    chain text NOT NULL,
    number bigint NOT NULL,
    hash text NOT NULL,
    PRIMARY KEY (chain, number)
);
