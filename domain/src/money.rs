//! Money: exact decimals (never floats), parsed from and written as decimal strings.

use std::str::FromStr;

use bigdecimal::BigDecimal;

use crate::Invalid;

/// Every amount accepted anywhere (a credit, a price, a rate) is below this;
/// the narrowest column (an hourly rate, NUMERIC(10,4)) holds up to 999999.9999.
pub const MAX_AMOUNT: i64 = 1_000_000;

/// Which amounts a field accepts.
#[derive(Debug, Clone, Copy)]
pub struct AmountRule {
    /// Most digits after the decimal point.
    pub max_scale: i64,
    /// Whether zero is allowed (prices may be free; credits may not).
    pub allow_zero: bool,
}

/// Whole cents, strictly positive: wallet credits.
pub const CREDIT: AmountRule = AmountRule {
    max_scale: 2,
    allow_zero: false,
};
/// Whole cents, zero or more: monthly prices.
pub const PRICE: AmountRule = AmountRule {
    max_scale: 2,
    allow_zero: true,
};
/// Up to four decimals, zero or more: hourly rates.
pub const RATE: AmountRule = AmountRule {
    max_scale: 4,
    allow_zero: true,
};

/// Parses a decimal string such as `"10.50"` under `rule`.
pub fn parse_amount(field: &str, text: &str, rule: AmountRule) -> Result<BigDecimal, Invalid> {
    let text = text.trim();
    let well_formed = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
        && text.bytes().filter(|&b| b == b'.').count() <= 1;
    let value = well_formed
        .then(|| BigDecimal::from_str(text).ok())
        .flatten()
        .ok_or_else(|| {
            Invalid::new(
                field,
                format!("\"{text}\" is not a decimal amount such as \"10.50\""),
            )
        })?;
    if value < 0 || (!rule.allow_zero && value == 0) {
        let what = if rule.allow_zero {
            "zero or more"
        } else {
            "more than zero"
        };
        return Err(Invalid::new(field, format!("the amount must be {what}")));
    }
    if value.normalized().fractional_digit_count() > rule.max_scale {
        return Err(Invalid::new(
            field,
            format!("the amount has at most {} decimal places", rule.max_scale),
        ));
    }
    if value >= MAX_AMOUNT {
        return Err(Invalid::new(
            field,
            format!("the amount is less than {MAX_AMOUNT}"),
        ));
    }
    Ok(value)
}

/// Writes an amount with exactly `scale` decimals (`10.5` with scale 2 → `"10.50"`).
pub fn format_amount(value: &BigDecimal, scale: i64) -> String {
    let scale = scale.max(0);
    let rounded = value.with_scale_round(scale, bigdecimal::RoundingMode::HalfEven);
    let (digits, exponent) = rounded.as_bigint_and_exponent();
    debug_assert_eq!(exponent, scale);
    let negative = digits.sign() == bigdecimal::num_bigint::Sign::Minus;
    let mut text = digits.magnitude().to_string();
    let width = usize::try_from(scale).unwrap_or(0) + 1;
    if text.len() < width {
        text.insert_str(0, &"0".repeat(width - text.len()));
    }
    if scale > 0 {
        text.insert(text.len() - width + 1, '.');
    }
    if negative {
        text.insert(0, '-');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credits() {
        assert_eq!(
            parse_amount("amount", "10.50", CREDIT).unwrap(),
            BigDecimal::from_str("10.5").unwrap()
        );
        assert_eq!(
            parse_amount("amount", "7", CREDIT).unwrap(),
            BigDecimal::from(7)
        );
        for bad in [
            "0", "0.00", "-1", "1.001", "abc", "", "1e3", "1.2.3", "1000000", " ",
        ] {
            let err = parse_amount("amount", bad, CREDIT).unwrap_err();
            assert_eq!(err.field.as_deref(), Some("amount"), "{bad}");
        }
    }

    #[test]
    fn prices_and_rates() {
        assert!(parse_amount("monthly_price", "0", PRICE).is_ok());
        assert!(parse_amount("hourly_rate", "0.0137", RATE).is_ok());
        assert!(parse_amount("hourly_rate", "0.01375", RATE).is_err());
        assert!(parse_amount("hourly_rate", "999999.9999", RATE).is_ok());
        assert!(parse_amount("hourly_rate", "1000000", RATE).is_err());
    }

    #[test]
    fn formatting() {
        assert_eq!(
            format_amount(&BigDecimal::from_str("10.5").unwrap(), 2),
            "10.50"
        );
        assert_eq!(format_amount(&BigDecimal::from(0), 4), "0.0000");
        assert_eq!(
            format_amount(&BigDecimal::from_str("-3.125").unwrap(), 2),
            "-3.12"
        );
    }
}
