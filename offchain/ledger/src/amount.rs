//! The one amount grammar of every interface: decimal digits only — no sign, no spaces, no
//! exponent, no leading zeros — with at most the asset's decimals after a point. `" 5"`,
//! `"+5"`, `"05"`, `"5e3"` and `"1.5"` for a base-unit amount are all refused, never read as
//! something else.

/// Why an amount was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("`{0}` is not an amount (decimal digits only: no sign, spaces or leading zeros)")]
    Syntax(String),
    #[error("`{0}` has more than {1} decimal places")]
    TooPrecise(String, u8),
    #[error("`{0}` is too large")]
    TooLarge(String),
}

/// The grammar of a whole number of base units, as a regular expression (for OpenAPI
/// `pattern`s).
pub const UNITS_PATTERN: &str = "^(0|[1-9][0-9]*)$";

/// A short echo of refused input (it may be long).
fn shown(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// `text` in units of an asset with `decimals` places, as base units: `"1.5"` with 9
/// decimals is 1 500 000 000.
pub fn parse_decimal(text: &str, decimals: u8) -> Result<u128, AmountError> {
    let syntax = || AmountError::Syntax(shown(text));
    let (whole, fraction) = match text.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (text, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || (whole.len() > 1 && whole.starts_with('0')) {
        return Err(syntax());
    }
    let fraction = match fraction {
        None => "",
        Some(f) if digits(f) => f,
        Some(_) => return Err(syntax()),
    };
    if fraction.len() > usize::from(decimals) {
        return Err(AmountError::TooPrecise(shown(text), decimals));
    }
    let too_large = || AmountError::TooLarge(shown(text));
    let scale = 10u128
        .checked_pow(u32::from(decimals))
        .ok_or_else(too_large)?;
    let whole: u128 = whole.parse().map_err(|_| too_large())?;
    let mut frac: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| too_large())?
    };
    for _ in fraction.len()..usize::from(decimals) {
        frac = frac.checked_mul(10).ok_or_else(too_large)?;
    }
    whole
        .checked_mul(scale)
        .and_then(|w| w.checked_add(frac))
        .ok_or_else(too_large)
}

/// A whole number of base units.
pub fn parse_units(text: &str) -> Result<u128, AmountError> {
    parse_decimal(text, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_strict_grammar() {
        assert_eq!(parse_units("0"), Ok(0));
        assert_eq!(parse_units("5"), Ok(5));
        assert_eq!(
            parse_units("340282366920938463463374607431768211455"),
            Ok(u128::MAX)
        );
        for bad in [
            " 5", "5 ", "+5", "-5", "05", "5e3", "0x10", "", "5.", ".5", "1_000", "５", "5\0",
        ] {
            assert!(
                matches!(parse_units(bad), Err(AmountError::Syntax(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            parse_units("1.5"),
            Err(AmountError::TooPrecise(_, 0))
        ));
        assert!(matches!(
            parse_units("340282366920938463463374607431768211456"),
            Err(AmountError::TooLarge(_))
        ));
        assert_eq!(parse_decimal("1.5", 9), Ok(1_500_000_000));
        assert_eq!(parse_decimal("0.000000001", 9), Ok(1));
        assert!(matches!(
            parse_decimal("0.0000000001", 9),
            Err(AmountError::TooPrecise(_, 9))
        ));
        assert_eq!(parse_decimal("12", 2), Ok(1200));
    }

    #[test]
    fn refused_input_is_echoed_short() {
        let long = "9".repeat(500) + "x";
        let e = parse_units(&long).unwrap_err().to_string();
        assert!(e.len() < 120, "{e}");
    }
}
