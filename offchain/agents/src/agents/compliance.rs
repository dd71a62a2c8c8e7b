//! Compliance: KYC document triage (file signatures, size, ICAO 9303 MRZ check digits),
//! sanctions-match explanation (Jaro-Winkler per token), payout address validation
//! (Solana base58, EVM EIP-55), certification expiry, customer risk tiering.

use std::sync::Arc;

use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use sha3::{Digest, Keccak256};

use super::{Agent, Pure, no_params, param_f64, param_u64, parse};
use crate::{AgentError, Output, Result};

pub fn agents() -> Vec<Arc<dyn Agent>> {
    vec![
        Arc::new(Pure {
            kind: "kyc_document_triage",
            description: "First look at an identity document upload: file type from magic bytes against the declared type, size limits, and the passport MRZ (ICAO 9303 TD3) check digits and expiry.",
            defaults: || json!({"min_bytes": 2048, "max_bytes": 10_485_760}),
            f: kyc_triage,
        }),
        Arc::new(Pure {
            kind: "sanctions_explain",
            description: "Explains a sanctions screening hit: Jaro-Winkler similarity per name token and overall, against one candidate or the best entry of a list.",
            defaults: || json!({"threshold": 0.9}),
            f: sanctions_explain,
        }),
        Arc::new(Pure {
            kind: "address_validation",
            description: "Validates payout addresses: Solana (base58, 32 bytes) and EVM (20 bytes hex with the EIP-55 checksum when mixed case).",
            defaults: no_params,
            f: address_validation,
        }),
        Arc::new(Pure {
            kind: "certification_expiry",
            description: "Classifies facility certifications as expired, critical, warning or ok by days left.",
            defaults: || json!({"warning_days": 60, "critical_days": 14}),
            f: certification_expiry,
        }),
        Arc::new(Pure {
            kind: "risk_tier",
            description: "Customer risk tier (low/medium/high) and whether enhanced due diligence is required, from KYC level, monthly volume, country risk, PEP and adverse media.",
            defaults: || json!({"high_volume": 50_000_000_000u64}),
            f: risk_tier,
        }),
    ]
}

// ---------- KYC documents ----------

#[derive(Deserialize)]
struct KycInput {
    #[serde(default)]
    document_base64: Option<String>,
    #[serde(default)]
    content_type: Option<String>,
    /// Machine-readable zone lines.
    #[serde(default)]
    mrz: Option<Vec<String>>,
    /// `YYYY-MM-DD`: documents expiring before it are flagged.
    #[serde(default)]
    today: Option<String>,
}

pub fn sniff(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(b"%PDF-") {
        "application/pdf"
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "image/jpeg"
    } else if bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        "image/png"
    } else if bytes.len() >= 12
        && &bytes[4..8] == b"ftyp"
        && matches!(&bytes[8..12], b"heic" | b"heix" | b"mif1")
    {
        "image/heic"
    } else {
        "unknown"
    }
}

/// ICAO 9303 check digit: weights 7, 3, 1; digits as is, A–Z as 10–35, `<` as 0.
pub fn mrz_check_digit(field: &str) -> Option<u32> {
    let mut sum = 0u32;
    for (i, c) in field.chars().enumerate() {
        let v = match c {
            '0'..='9' => c.to_digit(10)?,
            'A'..='Z' => u32::from(c) - u32::from('A') + 10,
            '<' => 0,
            _ => return None,
        };
        sum += v * [7, 3, 1][i % 3];
    }
    Some(sum % 10)
}

fn mrz_td3(lines: &[String], today: Option<&str>) -> Value {
    let [l1, l2] = lines else {
        return json!({"valid": false, "failures": ["TD3 passports have two lines"]});
    };
    if l1.len() != 44 || l2.len() != 44 || !l2.is_ascii() {
        return json!({"valid": false, "failures": ["TD3 lines are 44 characters"]});
    }
    let check = |field: &str, digit: &str| -> bool {
        match (mrz_check_digit(field), digit.chars().next()) {
            (Some(d), Some('<')) => d == 0,
            (Some(d), Some(c)) => c.to_digit(10) == Some(d),
            _ => false,
        }
    };
    let mut failures = Vec::new();
    for (name, field, digit) in [
        ("document_number", &l2[0..9], &l2[9..10]),
        ("birth_date", &l2[13..19], &l2[19..20]),
        ("expiry_date", &l2[21..27], &l2[27..28]),
        ("personal_number", &l2[28..42], &l2[42..43]),
    ] {
        if !check(field, digit) {
            failures.push(format!("{name} check digit"));
        }
    }
    let composite = format!("{}{}{}", &l2[0..10], &l2[13..20], &l2[21..43]);
    if !check(&composite, &l2[43..44]) {
        failures.push("composite check digit".into());
    }
    let expiry = &l2[21..27];
    let expired = today.and_then(|t| {
        let t = t.replace('-', "");
        (t.len() == 8).then(|| format!("20{expiry}") < t)
    });
    let names: Vec<&str> = l1.get(5..).unwrap_or("").split("<<").collect();
    json!({
        "valid": failures.is_empty(),
        "failures": failures,
        "document_number": l2[0..9].trim_end_matches('<'),
        "issuer": &l1[2..5],
        "nationality": &l2[10..13],
        "birth_date": &l2[13..19],
        "sex": &l2[20..21],
        "expiry_date": expiry,
        "expired": expired,
        "surname": names.first().map(|s| s.replace('<', " ").trim().to_owned()),
        "given_names": names.get(1).map(|s| s.replace('<', " ").trim().to_owned()),
    })
}

fn kyc_triage(p: &Value, input: &Value) -> Result<Output> {
    let i: KycInput = parse(input)?;
    let mut reject = Vec::new();
    let mut review = Vec::new();
    let mut doc = Value::Null;
    if let Some(b64) = &i.document_base64 {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| AgentError::invalid(format!("document_base64: {e}")))?;
        let kind = sniff(&bytes);
        let (min, max) = (
            param_u64(p, "min_bytes", 2048),
            param_u64(p, "max_bytes", 10_485_760),
        );
        let size = bytes.len() as u64;
        if kind == "unknown" {
            reject.push("not a PDF, JPEG, PNG or HEIC file".to_owned());
        }
        if size < min {
            reject.push(format!(
                "{size} bytes is too small to be a legible scan (minimum {min})"
            ));
        }
        if size > max {
            reject.push(format!("{size} bytes exceeds the {max}-byte limit"));
        }
        let declared_ok = i.content_type.as_deref().is_none_or(|c| c == kind);
        if !declared_ok {
            review.push(format!(
                "declared {} but the content is {kind}",
                i.content_type.as_deref().unwrap_or("")
            ));
        }
        doc = json!({"detected_type": kind, "bytes": size, "declared_type_matches": declared_ok});
    }
    let mut mrz = Value::Null;
    if let Some(lines) = &i.mrz {
        mrz = mrz_td3(lines, i.today.as_deref());
        if mrz["valid"] != true {
            reject.push("MRZ check digits do not verify".into());
        }
        if mrz["expired"] == true {
            review.push("document is expired".into());
        }
    }
    if i.document_base64.is_none() && i.mrz.is_none() {
        return Err(AgentError::invalid("give `document_base64` and/or `mrz`"));
    }
    let decision = if !reject.is_empty() {
        "reject"
    } else if !review.is_empty() {
        "manual_review"
    } else {
        "accept"
    };
    Ok(Output::new(json!({
        "decision": decision, "reject_reasons": reject, "review_reasons": review,
        "document": doc, "mrz": mrz,
    }))
    .score(match decision {
        "reject" => 1.0,
        "manual_review" => 0.5,
        _ => 0.0,
    })
    .pass(decision == "accept"))
}

// ---------- sanctions ----------

pub fn jaro(a: &[char], b: &[char]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let window = (a.len().max(b.len()) / 2).saturating_sub(1);
    let (mut am, mut bm) = (vec![false; a.len()], vec![false; b.len()]);
    let mut m = 0usize;
    for (i, ca) in a.iter().enumerate() {
        let lo = i.saturating_sub(window);
        let hi = (i + window + 1).min(b.len());
        for j in lo..hi {
            if !bm[j] && *ca == b[j] {
                am[i] = true;
                bm[j] = true;
                m += 1;
                break;
            }
        }
    }
    if m == 0 {
        return 0.0;
    }
    let (mut t, mut k) = (0usize, 0usize);
    for (i, ca) in a.iter().enumerate() {
        if am[i] {
            while !bm[k] {
                k += 1;
            }
            if *ca != b[k] {
                t += 1;
            }
            k += 1;
        }
    }
    let m = m as f64;
    (m / a.len() as f64 + m / b.len() as f64 + (m - t as f64 / 2.0) / m) / 3.0
}

/// Jaro-Winkler with the standard prefix scale 0.1 over at most 4 characters.
pub fn jaro_winkler(a: &str, b: &str) -> f64 {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let j = jaro(&a, &b);
    let l = a.iter().zip(&b).take(4).take_while(|(x, y)| x == y).count();
    j + l as f64 * 0.1 * (1.0 - j)
}

fn tokens(name: &str) -> Vec<String> {
    const HONORIFICS: &[&str] = &["mr", "mrs", "ms", "dr", "sir", "prof"];
    name.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty() && !HONORIFICS.contains(t))
        .map(str::to_owned)
        .collect()
}

fn explain(name: &str, candidate: &str) -> (f64, Value) {
    let (q, c) = (tokens(name), tokens(candidate));
    let best = |from: &[String], to: &[String]| -> Vec<(String, String, f64)> {
        from.iter()
            .map(|t| {
                to.iter()
                    .map(|u| (t.clone(), u.clone(), jaro_winkler(t, u)))
                    .max_by(|x, y| x.2.total_cmp(&y.2))
                    .unwrap_or((t.clone(), String::new(), 0.0))
            })
            .collect()
    };
    let forward = best(&q, &c);
    let backward = best(&c, &q);
    // Length-weighted in both directions, so a missing or extra token costs.
    let avg = |v: &[(String, String, f64)]| {
        let w: f64 = v.iter().map(|x| x.0.len() as f64).sum();
        if w == 0.0 {
            0.0
        } else {
            v.iter().map(|x| x.0.len() as f64 * x.2).sum::<f64>() / w
        }
    };
    let token_score = (avg(&forward) + avg(&backward)) / 2.0;
    let (mut qs, mut cs) = (q.clone(), c.clone());
    qs.sort();
    cs.sort();
    let sorted = jaro_winkler(&qs.join(" "), &cs.join(" "));
    let score = token_score.max(sorted);
    let pairs: Vec<Value> = forward
        .iter()
        .map(|(t, u, s)| json!({"token": t, "best_match": u, "similarity": s,
            "note": if *s == 1.0 { "identical" } else if *s >= 0.9 { "spelling variant" } else if *s >= 0.8 { "similar" } else { "different" }}))
        .collect();
    let unmatched: Vec<&String> = backward
        .iter()
        .filter(|x| x.2 < 0.8)
        .map(|x| &x.0)
        .collect();
    (
        score,
        json!({"candidate": candidate, "score": score, "token_score": token_score,
               "sorted_tokens_score": sorted, "tokens": pairs, "candidate_tokens_unmatched": unmatched}),
    )
}

#[derive(Deserialize)]
struct SanctionsInput {
    name: Option<String>,
    #[serde(default)]
    candidate: Option<String>,
    #[serde(default)]
    watchlist: Vec<String>,
}

fn sanctions_explain(p: &Value, input: &Value) -> Result<Output> {
    let i: SanctionsInput = parse(input)?;
    let threshold = param_f64(p, "threshold", 0.9);
    let Some(name) = i.name.filter(|n| !tokens(n).is_empty()) else {
        // Nothing to screen (e.g. a payment review without a counterparty name).
        return Ok(Output::new(json!({"screened": false}))
            .score(0.0)
            .pass(true));
    };
    let mut list = i.watchlist;
    list.extend(i.candidate);
    if list.is_empty() {
        return Err(AgentError::invalid("give `candidate` or `watchlist`"));
    }
    let mut results: Vec<(f64, Value)> = list.iter().map(|c| explain(&name, c)).collect();
    results.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (best, detail) = results.swap_remove(0);
    let hit = best >= threshold;
    Ok(Output::new(json!({
        "screened": true, "potential_match": hit, "threshold": threshold,
        "best": detail,
        "explanation": if hit {
            format!("`{name}` resembles `{}` (similarity {best:.3} ≥ {threshold}): confirm with date of birth and nationality", detail["candidate"].as_str().unwrap_or(""))
        } else {
            format!("closest entry `{}` scores {best:.3}, below {threshold}", detail["candidate"].as_str().unwrap_or(""))
        },
    }))
    .score(best)
    .pass(!hit))
}

// ---------- addresses ----------

#[derive(Deserialize)]
struct Addr {
    chain: String,
    address: String,
}

#[derive(Deserialize)]
struct AddrInput {
    addresses: Vec<Addr>,
}

/// The EIP-55 mixed-case form of a 40-hex-digit address (without `0x`).
pub fn eip55(hex_lower: &str) -> String {
    let hash = Keccak256::digest(hex_lower.as_bytes());
    hex_lower
        .chars()
        .enumerate()
        .map(|(i, c)| {
            let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
            if c.is_ascii_alphabetic() && nibble >= 8 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

fn check_address(a: &Addr) -> Value {
    match a.chain.as_str() {
        // Longer than 44 characters is never 32 bytes (and base58 decoding is quadratic).
        "solana" if a.address.len() > 44 => {
            json!({"valid": false, "reason": "longer than 44 characters, so not 32 bytes"})
        }
        "solana" => match bs58::decode(&a.address).into_vec() {
            Ok(b) if b.len() == 32 => json!({"valid": true, "normalized": a.address}),
            Ok(b) => {
                json!({"valid": false, "reason": format!("decodes to {} bytes, not 32", b.len())})
            }
            Err(e) => json!({"valid": false, "reason": format!("not base58: {e}")}),
        },
        "ethereum" | "evm" | "polygon" | "base" | "arbitrum" => {
            let Some(h) = a.address.strip_prefix("0x") else {
                return json!({"valid": false, "reason": "missing 0x prefix"});
            };
            if h.len() != 40 || !h.chars().all(|c| c.is_ascii_hexdigit()) {
                return json!({"valid": false, "reason": "not 40 hex digits"});
            }
            let lower = h.to_ascii_lowercase();
            let sum = eip55(&lower);
            let mixed = h != lower && h != h.to_ascii_uppercase();
            if mixed && h != sum {
                json!({"valid": false, "reason": "EIP-55 checksum mismatch (typo?)", "expected": format!("0x{sum}")})
            } else {
                json!({"valid": true, "normalized": format!("0x{sum}"), "checksummed": mixed})
            }
        }
        other => json!({"valid": false, "reason": format!("unsupported chain `{other}`")}),
    }
}

fn address_validation(_: &Value, input: &Value) -> Result<Output> {
    let i: AddrInput = parse(input)?;
    let results: Vec<Value> = i
        .addresses
        .iter()
        .map(|a| {
            let mut r = check_address(a);
            r["address"] = json!(a.address);
            r["chain"] = json!(a.chain);
            r
        })
        .collect();
    let ok = results.iter().all(|r| r["valid"] == true);
    Ok(Output::new(json!({"results": results, "all_valid": ok})).pass(ok))
}

// ---------- certifications ----------

#[derive(Deserialize)]
struct Cert {
    id: String,
    #[serde(default)]
    name: String,
    expires_on: String,
}

#[derive(Deserialize)]
struct CertInput {
    today: String,
    certifications: Vec<Cert>,
}

fn date(s: &str) -> Result<time::Date> {
    time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|e| AgentError::invalid(format!("date `{s}`: {e}")))
}

fn certification_expiry(p: &Value, input: &Value) -> Result<Output> {
    let i: CertInput = parse(input)?;
    let today = date(&i.today)?;
    let warn = i64::try_from(param_u64(p, "warning_days", 60)).unwrap_or(60);
    let crit = i64::try_from(param_u64(p, "critical_days", 14)).unwrap_or(14);
    let mut out = Vec::new();
    for c in &i.certifications {
        let left = (date(&c.expires_on)? - today).whole_days();
        let status = match left {
            l if l < 0 => "expired",
            l if l <= crit => "critical",
            l if l <= warn => "warning",
            _ => "ok",
        };
        out.push(json!({"id": c.id, "name": c.name, "days_left": left, "status": status}));
    }
    out.sort_by_key(|c| c["days_left"].as_i64());
    let expired = out.iter().filter(|c| c["status"] == "expired").count();
    Ok(Output::new(json!({"certifications": out, "expired": expired})).pass(expired == 0))
}

// ---------- risk tier ----------

#[derive(Deserialize)]
struct TierInput {
    kyc_level: u8,
    monthly_volume: u64,
    #[serde(default)]
    country_risk: Option<String>,
    #[serde(default)]
    pep: bool,
    #[serde(default)]
    adverse_media: bool,
}

fn risk_tier(p: &Value, input: &Value) -> Result<Output> {
    let i: TierInput = parse(input)?;
    let high_volume = param_u64(p, "high_volume", 50_000_000_000);
    let mut points = 0u32;
    let mut factors = Vec::new();
    let mut add = |n: u32, why: &str| {
        points += n;
        factors.push(json!({"points": n, "factor": why}));
    };
    match i.kyc_level {
        0 => add(3, "no KYC"),
        1 => add(1, "basic KYC only"),
        _ => {}
    }
    if i.monthly_volume >= high_volume {
        add(2, "high monthly volume");
    } else if i.monthly_volume >= high_volume / 10 {
        add(1, "elevated monthly volume");
    }
    match i.country_risk.as_deref() {
        Some("high") => add(3, "high-risk jurisdiction"),
        Some("medium") => add(1, "medium-risk jurisdiction"),
        _ => {}
    }
    if i.pep {
        add(3, "politically exposed person");
    }
    if i.adverse_media {
        add(2, "adverse media");
    }
    let tier = match points {
        p if p >= 5 => "high",
        p if p >= 2 => "medium",
        _ => "low",
    };
    let edd = tier == "high" || i.pep;
    Ok(Output::new(
        json!({"tier": tier, "points": points, "factors": factors, "enhanced_due_diligence": edd}),
    )
    .score(f64::from(points) / 10.0)
    .pass(tier != "high"))
}
