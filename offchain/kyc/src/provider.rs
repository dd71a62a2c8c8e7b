//! Identity verification providers. [`LocalProvider`] performs the checks that need no
//! third party: documents present, birth date plausible, minimum age, document not
//! expired, and for passports the MRZ (every ICAO 9303 check digit) agreeing with the
//! submitted number, birth date and name. A remote provider (document liveness, database
//! checks) implements the same trait.

use time::Date;

use crate::documents::BoxFuture;
use crate::model::{Check, IdDocumentType};
use crate::mrz;
use crate::sanctions::{name_similarity, normalize_name};

/// What a provider gets (the service has already checked that the documents belong to
/// the user and exist in the store).
pub struct ProviderInput<'a> {
    pub full_name: &'a str,
    pub birth_date: Date,
    pub document_type: IdDocumentType,
    pub document_number: &'a str,
    pub document_expiry: Option<Date>,
    pub mrz: Option<&'a str>,
    /// Kinds of the attached documents (`passport`, `selfie`, …).
    pub document_kinds: Vec<String>,
    pub today: Date,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderOutcome {
    pub checks: Vec<Check>,
    /// The document's expiry as the provider established it (MRZ for passports).
    pub document_expiry: Option<Date>,
    /// Level the evidence supports (2 for a passport with a verified MRZ, else 1).
    pub suggested_level: u8,
}

impl ProviderOutcome {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// The failed checks, for the rejection reason.
    pub fn failures(&self) -> String {
        self.checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{}: {}", c.check, c.detail))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

pub trait VerificationProvider: Send + Sync {
    fn name(&self) -> &'static str;
    fn verify<'a>(&'a self, input: &'a ProviderInput<'a>) -> BoxFuture<'a, ProviderOutcome>;
}

/// Checks done locally; the default provider.
#[derive(Debug, Clone)]
pub struct LocalProvider {
    pub min_age_years: u8,
    /// Minimum name similarity between the MRZ and the submitted name.
    pub name_threshold: f64,
}

impl Default for LocalProvider {
    fn default() -> Self {
        Self {
            min_age_years: 18,
            name_threshold: 0.9,
        }
    }
}

fn check(name: &str, passed: bool, detail: impl Into<String>) -> Check {
    Check {
        check: name.to_owned(),
        passed,
        detail: detail.into(),
    }
}

/// Whole years between `birth` and `today`.
pub fn age_on(birth: Date, today: Date) -> i32 {
    let mut age = today.year() - birth.year();
    if (today.month() as u8, today.day()) < (birth.month() as u8, birth.day()) {
        age -= 1;
    }
    age
}

impl LocalProvider {
    pub fn run(&self, input: &ProviderInput<'_>) -> ProviderOutcome {
        let mut checks = Vec::new();
        let mut expiry = input.document_expiry;
        let mut level = 1;

        let id_kind = input.document_type.as_str();
        checks.push(check(
            "documents",
            input.document_kinds.iter().any(|k| k == id_kind),
            format!(
                "{} document(s) attached; an uploaded `{id_kind}` is required",
                input.document_kinds.len()
            ),
        ));

        let age = age_on(input.birth_date, input.today);
        checks.push(check(
            "birth_date",
            input.birth_date <= input.today && age <= 130,
            "birth date is in the past and plausible",
        ));
        checks.push(check(
            "age",
            age >= i32::from(self.min_age_years),
            format!("at least {} years old", self.min_age_years),
        ));

        if input.document_type == IdDocumentType::Passport {
            match input.mrz.map(mrz::parse_td3) {
                None => checks.push(check("mrz", false, "passports need their MRZ lines")),
                Some(Err(e)) => checks.push(check("mrz", false, e.to_string())),
                Some(Ok(p)) => {
                    checks.push(check("mrz", true, "TD3 structure and check digits valid"));
                    let number = input.document_number.trim().to_ascii_uppercase();
                    checks.push(check(
                        "mrz_document_number",
                        p.document_number == number,
                        "MRZ document number equals the submitted one",
                    ));
                    let same_birth = p.birth_date(input.today).ok() == Some(input.birth_date);
                    checks.push(check(
                        "mrz_birth_date",
                        same_birth,
                        "MRZ birth date equals the submitted one",
                    ));
                    let score = name_similarity(
                        &normalize_name(&p.full_name()),
                        &normalize_name(input.full_name),
                    );
                    checks.push(check(
                        "mrz_name",
                        score >= self.name_threshold,
                        format!("MRZ name similarity {score:.2}"),
                    ));
                    match p.expiry_date(input.today) {
                        Ok(d) => {
                            if input.document_expiry.is_some_and(|e| e != d) {
                                checks.push(check(
                                    "mrz_expiry",
                                    false,
                                    "MRZ expiry differs from the submitted one",
                                ));
                            }
                            expiry = Some(d);
                        }
                        Err(e) => checks.push(check("mrz_expiry", false, e.to_string())),
                    }
                    level = 2;
                }
            }
        }
        match expiry {
            Some(d) => checks.push(check(
                "document_expiry",
                d > input.today,
                "document is not expired",
            )),
            None => checks.push(check(
                "document_expiry",
                false,
                "the document's expiry date is required",
            )),
        }
        ProviderOutcome {
            checks,
            document_expiry: expiry,
            suggested_level: level,
        }
    }
}

impl VerificationProvider for LocalProvider {
    fn name(&self) -> &'static str {
        "local"
    }

    fn verify<'a>(&'a self, input: &'a ProviderInput<'a>) -> BoxFuture<'a, ProviderOutcome> {
        Box::pin(async move { self.run(input) })
    }
}
