//! ICAO 9303 machine-readable zone of passports (TD3: two lines of 44 characters) and its
//! check digits. Only what the local provider checks: structure, every check digit, the
//! names, the dates.

use time::{Date, Month};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MrzError {
    #[error("a TD3 machine-readable zone is two lines of 44 characters")]
    Shape,
    #[error("character `{0}` is not allowed in a machine-readable zone")]
    Character(char),
    #[error("not a passport (TD3 line 1 starts with `P`)")]
    NotPassport,
    #[error("check digit of the {0} does not match")]
    CheckDigit(&'static str),
    #[error("the {0} is not a valid date")]
    Date(&'static str),
}

/// The value of one MRZ character in the check-digit sum (`<` is 0, `A` is 10 … `Z` 35).
fn value(c: u8) -> Option<u32> {
    match c {
        b'0'..=b'9' => Some(u32::from(c - b'0')),
        b'A'..=b'Z' => Some(u32::from(c - b'A') + 10),
        b'<' => Some(0),
        _ => None,
    }
}

/// ICAO 9303 part 3 check digit: weights 7, 3, 1 repeating, sum modulo 10.
pub fn check_digit(field: &str) -> Result<u8, MrzError> {
    let mut sum = 0u32;
    for (i, b) in field.bytes().enumerate() {
        let v = value(b).ok_or(MrzError::Character(char::from(b)))?;
        sum += v * [7, 3, 1][i % 3];
    }
    // sum % 10 < 10, so the cast cannot truncate.
    Ok((sum % 10) as u8)
}

fn verify(field: &str, check: u8, what: &'static str) -> Result<(), MrzError> {
    // A `<` check digit stands for 0 (allowed for empty optional fields).
    let expected = if check == b'<' {
        0
    } else {
        value(check)
            .filter(|v| *v < 10)
            .ok_or(MrzError::CheckDigit(what))?
    };
    if u32::from(check_digit(field)?) == expected {
        Ok(())
    } else {
        Err(MrzError::CheckDigit(what))
    }
}

/// A parsed and check-digit-verified TD3 zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passport {
    pub issuing_state: String,
    pub surname: String,
    pub given_names: String,
    pub document_number: String,
    pub nationality: String,
    /// Raw `YYMMDD`; the century is resolved with [`Passport::birth_date`].
    pub birth_yymmdd: String,
    pub sex: char,
    pub expiry_yymmdd: String,
    pub personal_number: String,
}

fn yymmdd(s: &str, century: i32, what: &'static str) -> Result<Date, MrzError> {
    let n = |r: std::ops::Range<usize>| {
        s.get(r)
            .and_then(|d| d.parse::<u8>().ok())
            .ok_or(MrzError::Date(what))
    };
    let (yy, mm, dd) = (n(0..2)?, n(2..4)?, n(4..6)?);
    let month = Month::try_from(mm).map_err(|_| MrzError::Date(what))?;
    Date::from_calendar_date(century + i32::from(yy), month, dd).map_err(|_| MrzError::Date(what))
}

impl Passport {
    /// Birth date: the latest century that does not put it after `today`.
    pub fn birth_date(&self, today: Date) -> Result<Date, MrzError> {
        let this = (today.year() / 100) * 100;
        let d = yymmdd(&self.birth_yymmdd, this, "birth date")?;
        if d > today {
            yymmdd(&self.birth_yymmdd, this - 100, "birth date")
        } else {
            Ok(d)
        }
    }

    /// Expiry date: passports are valid for at most ten years, so the century that puts it
    /// within 50 years of `today` either way.
    pub fn expiry_date(&self, today: Date) -> Result<Date, MrzError> {
        let this = (today.year() / 100) * 100;
        let d = yymmdd(&self.expiry_yymmdd, this, "expiry date")?;
        if d.year() - today.year() > 50 {
            yymmdd(&self.expiry_yymmdd, this - 100, "expiry date")
        } else if today.year() - d.year() > 50 {
            yymmdd(&self.expiry_yymmdd, this + 100, "expiry date")
        } else {
            Ok(d)
        }
    }

    /// Given names then surname, as one string with single spaces.
    pub fn full_name(&self) -> String {
        format!("{} {}", self.given_names, self.surname)
            .trim()
            .to_owned()
    }
}

fn name_part(s: &str) -> String {
    s.split('<')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses a TD3 zone (lines separated by a newline; surrounding whitespace ignored) and
/// verifies the document number, birth date, expiry date, personal number and composite
/// check digits.
pub fn parse_td3(zone: &str) -> Result<Passport, MrzError> {
    let lines: Vec<&str> = zone
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let [l1, l2] = lines.as_slice() else {
        return Err(MrzError::Shape);
    };
    if l1.len() != 44 || l2.len() != 44 {
        return Err(MrzError::Shape);
    }
    for c in l1.chars().chain(l2.chars()) {
        if !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '<') {
            return Err(MrzError::Character(c));
        }
    }
    // ASCII only from here, so byte slicing is on character boundaries.
    if !l1.starts_with('P') {
        return Err(MrzError::NotPassport);
    }
    let b2 = l2.as_bytes();
    verify(&l2[0..9], b2[9], "document number")?;
    verify(&l2[13..19], b2[19], "birth date")?;
    verify(&l2[21..27], b2[27], "expiry date")?;
    verify(&l2[28..42], b2[42], "personal number")?;
    let composite = format!("{}{}{}", &l2[0..10], &l2[13..20], &l2[21..43]);
    verify(&composite, b2[43], "composite")?;

    let names = &l1[5..44];
    let (surname, given) = names.split_once("<<").unwrap_or((names, ""));
    Ok(Passport {
        issuing_state: l1[2..5].trim_end_matches('<').to_owned(),
        surname: name_part(surname),
        given_names: name_part(given),
        document_number: l2[0..9].trim_end_matches('<').to_owned(),
        nationality: l2[10..13].trim_end_matches('<').to_owned(),
        birth_yymmdd: l2[13..19].to_owned(),
        sex: char::from(b2[20]),
        expiry_yymmdd: l2[21..27].to_owned(),
        personal_number: l2[28..42].trim_end_matches('<').to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digits_of_icao_examples() {
        // ICAO 9303 part 3, section 4.9 worked example, and the specimen's fields.
        assert_eq!(check_digit("520727").unwrap(), 3);
        assert_eq!(check_digit("L898902C3").unwrap(), 6);
        assert_eq!(check_digit("740812").unwrap(), 2);
        assert_eq!(check_digit("120415").unwrap(), 9);
        assert_eq!(check_digit("ZE184226B<<<<<").unwrap(), 1);
        assert!(check_digit("ab").is_err());
    }
}
