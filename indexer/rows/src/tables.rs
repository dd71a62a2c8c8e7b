//! The indexer's event tables (schema `indexer`): name and table-specific columns with the
//! SQL type each text value is cast to. Every table also has [`KEY_COLUMNS`].

/// An event table: name and its table-specific columns with the SQL type each is cast to.
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    pub cols: &'static [(&'static str, &'static str)],
}

pub const PAYMENTS: usize = 0;
pub const REFUNDS: usize = 1;
pub const ESCROWS: usize = 2;
pub const FACILITIES: usize = 3;
pub const ATTESTATIONS: usize = 4;
pub const SETTLEMENTS: usize = 5;
pub const ADMIN: usize = 6;
pub const BRIDGE: usize = 7;

/// Every event table, indexed by the constants above (same order as `sink::EVENT_TABLES`).
pub const TABLES: [Table; 8] = [
    Table {
        name: "payments",
        cols: &[
            ("payment", "text"),
            ("payer", "text"),
            ("facility", "text"),
            ("invoice_id", "text"),
            ("reference", "text"),
            ("mint", "text"),
            ("amount", "numeric"),
            ("fee", "numeric"),
            ("paid_at", "bigint"),
        ],
    },
    Table {
        name: "refunds",
        cols: &[
            ("payment", "text"),
            ("facility", "text"),
            ("payer", "text"),
            ("mint", "text"),
            ("amount", "numeric"),
            ("refunded_total", "numeric"),
        ],
    },
    Table {
        name: "escrows",
        cols: &[
            ("kind", "text"),
            ("escrow", "text"),
            ("actor", "text"),
            ("payer", "text"),
            ("facility", "text"),
            ("arbiter", "text"),
            ("mint", "text"),
            ("amount", "numeric"),
            ("fee", "numeric"),
            ("released_total", "numeric"),
            ("expires_at", "bigint"),
        ],
    },
    Table {
        name: "facilities",
        cols: &[
            ("kind", "text"),
            ("facility", "text"),
            ("facility_id", "text"),
            ("authority", "text"),
            ("payout_wallet", "text"),
        ],
    },
    Table {
        name: "attestations",
        cols: &[
            ("kind", "text"),
            ("wallet", "text"),
            ("level", "smallint"),
            ("expires_at", "bigint"),
        ],
    },
    Table {
        name: "settlement_commitments",
        cols: &[
            ("batch_number", "numeric"),
            ("root", "text"),
            ("entry_count", "numeric"),
            ("totals", "jsonb"),
        ],
    },
    Table {
        name: "admin_events",
        cols: &[("kind", "text"), ("body", "jsonb")],
    },
    Table {
        name: "bridge_messages",
        cols: &[
            ("direction", "text"),
            ("message_id", "text"),
            ("origin_domain", "bigint"),
            ("sequence", "numeric"),
            ("sender", "text"),
            ("destination_domain", "bigint"),
            ("recipient", "text"),
            ("asset", "text"),
            ("amount", "numeric"),
        ],
    },
];

/// Columns every event table starts with.
pub const KEY_COLUMNS: &str =
    "chain, signature, ix_index, inner_index, slot, commitment, block_time";
