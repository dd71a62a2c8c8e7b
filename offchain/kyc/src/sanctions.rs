//! Sanctions screening against a list in OFAC's SDN CSV format: `sdn.csv` (primary names,
//! remarks with `Digital Currency Address - XBT 1abc…;` entries), `alt.csv` (aliases) and
//! optionally `add.csv` (addresses; only the entity number is used to keep a row valid).
//! Names are compared after NFKD, stripping diacritics, transliteration to ASCII,
//! lower-casing and sorting tokens, with Jaro-Winkler; wallet addresses exactly.

use std::collections::HashMap;
use std::path::Path;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

#[derive(Debug, thiserror::Error)]
pub enum SanctionsError {
    #[error("cannot read sanctions list file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file} line {line}: {msg}")]
    Format {
        file: &'static str,
        line: usize,
        msg: String,
    },
}

/// OFAC's empty-field marker.
const NULL: &str = "-0-";

/// Splits RFC 4180 CSV text into records (quoted fields, doubled quotes, CRLF or LF).
pub fn parse_csv(text: &str, file: &'static str) -> Result<Vec<Vec<String>>, SanctionsError> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut in_quotes = false;
    let mut line = 1;
    let mut any = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => {
                in_quotes = true;
                any = true;
            }
            ',' => {
                record.push(std::mem::take(&mut field));
                any = true;
            }
            '\r' => {}
            '\n' => {
                if any || !field.is_empty() {
                    record.push(std::mem::take(&mut field));
                    records.push(std::mem::take(&mut record));
                }
                any = false;
                line += 1;
            }
            // The SDN files end with a SUB (0x1A) byte.
            '\u{1a}' => {}
            _ => {
                field.push(c);
                any = true;
            }
        }
    }
    if in_quotes {
        return Err(SanctionsError::Format {
            file,
            line,
            msg: "unterminated quoted field".into(),
        });
    }
    if any || !field.is_empty() {
        record.push(field);
        records.push(record);
    }
    Ok(records)
}

/// NFKD, diacritics stripped, transliterated to ASCII, lower case, punctuation as spaces,
/// tokens sorted (so "DOE, John" and "John Doe" normalize alike).
pub fn normalize_name(name: &str) -> String {
    let stripped: String = name.nfkd().filter(|c| !is_combining_mark(*c)).collect();
    let ascii = deunicode::deunicode(&stripped).to_lowercase();
    let cleaned: String = ascii
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { ' ' })
        .collect();
    let mut tokens: Vec<&str> = cleaned.split_whitespace().collect();
    tokens.sort_unstable();
    tokens.join(" ")
}

/// Similarity of two normalized names in [0, 1]: the better of Jaro-Winkler over the sorted
/// token strings and the symmetric mean of each token's best Jaro-Winkler partner (robust to
/// a missing middle name or a token that sorts elsewhere after transliteration).
pub fn name_similarity(a: &str, b: &str) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let whole = strsim::jaro_winkler(a, b);
    let ta: Vec<&str> = a.split(' ').collect();
    let tb: Vec<&str> = b.split(' ').collect();
    let best = |xs: &[&str], ys: &[&str]| {
        xs.iter()
            .map(|x| {
                ys.iter()
                    .map(|y| strsim::jaro_winkler(x, y))
                    .fold(0.0, f64::max)
            })
            .sum::<f64>()
            / xs.len() as f64
    };
    // The shorter side's coverage counts less than the longer side's, so a single common
    // surname does not match a whole name.
    let (short, long) = if ta.len() <= tb.len() {
        (&ta, &tb)
    } else {
        (&tb, &ta)
    };
    let tokens = 0.4 * best(short, long) + 0.6 * best(long, short);
    whole.max(tokens)
}

#[derive(Debug, Clone)]
struct Name {
    text: String,
    normalized: String,
    alias: bool,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub ent_num: i64,
    pub name: String,
    pub sdn_type: String,
    pub programs: String,
    names: Vec<Name>,
}

/// A digital currency address listed in an entry's remarks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ListedAddress {
    pub ent_num: i64,
    pub listed_name: String,
    /// OFAC's currency code (`XBT`, `ETH`, `SOL`, `USDT`, …).
    pub currency: String,
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NameMatch {
    pub ent_num: i64,
    pub listed_name: String,
    /// The primary name or alias that scored best.
    pub matched_name: String,
    pub alias: bool,
    pub sdn_type: String,
    pub programs: String,
    /// Similarity in [0, 1], rounded to three decimals.
    pub score: f64,
}

/// A loaded list; cheap to share behind an `Arc`.
#[derive(Clone, Default)]
pub struct SanctionsList {
    entries: Vec<Entry>,
    addresses: HashMap<String, Vec<ListedAddress>>,
}

impl std::fmt::Debug for SanctionsList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SanctionsList")
            .field("entries", &self.entries.len())
            .field("addresses", &self.address_count())
            .finish()
    }
}

fn field(rec: &[String], i: usize) -> Option<&str> {
    rec.get(i)
        .map(|s| s.trim())
        .filter(|s| !s.is_empty() && *s != NULL)
}

/// `Digital Currency Address - XBT 1abc…;` entries of an SDN remark.
fn currency_addresses(remarks: &str) -> Vec<(String, String)> {
    const MARK: &str = "Digital Currency Address - ";
    let mut out = Vec::new();
    let mut rest = remarks;
    while let Some(i) = rest.find(MARK) {
        rest = &rest[i + MARK.len()..];
        let end = rest.find(';').unwrap_or(rest.len());
        let item = rest[..end].trim().trim_end_matches('.');
        let mut parts = item.split_whitespace();
        if let (Some(cur), Some(addr)) = (parts.next(), parts.next()) {
            out.push((cur.to_owned(), addr.to_owned()));
        }
        rest = &rest[end..];
    }
    out
}

/// Lookup key of an address: EVM hex is case-insensitive, base58 and bech32 are not
/// altered (bech32 is lower-case by definition).
fn address_key(address: &str) -> String {
    let a = address.trim();
    if a.len() == 42 && (a.starts_with("0x") || a.starts_with("0X")) {
        a.to_ascii_lowercase()
    } else {
        a.to_owned()
    }
}

impl SanctionsList {
    /// Parses the three files' contents (`alt` and `add` may be absent).
    pub fn parse(sdn: &str, alt: Option<&str>, add: Option<&str>) -> Result<Self, SanctionsError> {
        let mut entries = Vec::new();
        let mut index = HashMap::new();
        let mut addresses: HashMap<String, Vec<ListedAddress>> = HashMap::new();
        for (n, rec) in parse_csv(sdn, "sdn.csv")?.into_iter().enumerate() {
            let bad = |msg: &str| SanctionsError::Format {
                file: "sdn.csv",
                line: n + 1,
                msg: msg.to_owned(),
            };
            let ent_num: i64 = field(&rec, 0)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad("entity number is not a number"))?;
            let name = field(&rec, 1)
                .ok_or_else(|| bad("missing name"))?
                .to_owned();
            let sdn_type = field(&rec, 2).unwrap_or("entity").to_owned();
            let programs = field(&rec, 3).unwrap_or("").to_owned();
            if let Some(remarks) = field(&rec, 11) {
                for (currency, address) in currency_addresses(remarks) {
                    addresses
                        .entry(address_key(&address))
                        .or_default()
                        .push(ListedAddress {
                            ent_num,
                            listed_name: name.clone(),
                            currency,
                            address,
                        });
                }
            }
            index.insert(ent_num, entries.len());
            entries.push(Entry {
                ent_num,
                names: vec![Name {
                    normalized: normalize_name(&name),
                    text: name.clone(),
                    alias: false,
                }],
                name,
                sdn_type,
                programs,
            });
        }
        if let Some(alt) = alt {
            for (n, rec) in parse_csv(alt, "alt.csv")?.into_iter().enumerate() {
                let bad = |msg: &str| SanctionsError::Format {
                    file: "alt.csv",
                    line: n + 1,
                    msg: msg.to_owned(),
                };
                let ent_num: i64 = field(&rec, 0)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| bad("entity number is not a number"))?;
                let alias = field(&rec, 3).ok_or_else(|| bad("missing alias name"))?;
                let Some(&i) = index.get(&ent_num) else {
                    return Err(bad("alias of an entity that is not in sdn.csv"));
                };
                entries[i].names.push(Name {
                    text: alias.to_owned(),
                    normalized: normalize_name(alias),
                    alias: true,
                });
            }
        }
        if let Some(add) = add {
            for (n, rec) in parse_csv(add, "add.csv")?.into_iter().enumerate() {
                let known = field(&rec, 0)
                    .and_then(|s| s.parse::<i64>().ok())
                    .is_some_and(|e| index.contains_key(&e));
                if !known {
                    return Err(SanctionsError::Format {
                        file: "add.csv",
                        line: n + 1,
                        msg: "address of an entity that is not in sdn.csv".into(),
                    });
                }
            }
        }
        Ok(SanctionsList { entries, addresses })
    }

    /// Loads `sdn.csv`, and `alt.csv` / `add.csv` when present, from `dir`.
    pub fn load_dir(dir: &Path) -> Result<Self, SanctionsError> {
        let read = |name: &str, required: bool| -> Result<Option<String>, SanctionsError> {
            let path = dir.join(name);
            match std::fs::read(&path) {
                // OFAC serves these as Latin-1 historically; decode lossily rather than fail.
                Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
                Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(SanctionsError::Io {
                    path: path.display().to_string(),
                    source,
                }),
            }
        };
        let sdn = read("sdn.csv", true)?.unwrap_or_default();
        let alt = read("alt.csv", false)?;
        let add = read("add.csv", false)?;
        Self::parse(&sdn, alt.as_deref(), add.as_deref())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn address_count(&self) -> usize {
        self.addresses.values().map(Vec::len).sum()
    }

    /// Entries whose primary name or an alias scores at least `threshold` against `name`,
    /// best first (one match per entry, with the name that scored best).
    pub fn screen_name(&self, name: &str, threshold: f64) -> Vec<NameMatch> {
        let query = normalize_name(name);
        let mut out: Vec<NameMatch> = self
            .entries
            .iter()
            .filter_map(|e| {
                let (best, score) = e
                    .names
                    .iter()
                    .map(|n| (n, name_similarity(&query, &n.normalized)))
                    .max_by(|a, b| a.1.total_cmp(&b.1))?;
                (score >= threshold).then(|| NameMatch {
                    ent_num: e.ent_num,
                    listed_name: e.name.clone(),
                    matched_name: best.text.clone(),
                    alias: best.alias,
                    sdn_type: e.sdn_type.clone(),
                    programs: e.programs.clone(),
                    score: (score * 1000.0).round() / 1000.0,
                })
            })
            .collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score));
        out
    }

    /// Listed entries holding exactly this address.
    pub fn screen_address(&self, address: &str) -> Vec<ListedAddress> {
        self.addresses
            .get(&address_key(address))
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_nulls() {
        let r = parse_csv("1,\"A, \"\"B\"\"\",-0- \r\n2,x,y\n", "t").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0][1], "A, \"B\"");
        assert_eq!(field(&r[0], 2), None);
    }

    #[test]
    fn normalizes_scripts_and_order() {
        assert_eq!(normalize_name("MÜLLER, José"), "jose muller");
        assert_eq!(normalize_name("Иван Петров"), "ivan petrov");
    }

    #[test]
    fn remarks_addresses() {
        let a = currency_addresses(
            "DOB 1970; Digital Currency Address - XBT 1Abc; Digital Currency Address - ETH 0xAB.",
        );
        assert_eq!(
            a,
            vec![("XBT".into(), "1Abc".into()), ("ETH".into(), "0xAB".into())]
        );
    }
}
