//! Money in messages: integer minor units and an ISO 4217 code, formatted with the
//! currency's exponent — never through floats.

/// An amount in a currency's minor unit with its ISO 4217 code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    /// E.g. 1999 for 19.99 EUR.
    pub amount_minor: i64,
    /// E.g. "EUR".
    pub currency_code: String,
}

/// Digits after the decimal point in `currency_code` (ISO 4217): 0 for e.g. JPY and KRW, 3
/// for e.g. KWD and BHD, 2 for everything else.
pub fn minor_unit_digits(currency_code: &str) -> u32 {
    const ZERO: [&str; 17] = [
        "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
        "VUV", "XAF", "XOF", "XPF",
    ];
    const THREE: [&str; 7] = ["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
    let code = currency_code.trim().to_ascii_uppercase();
    if ZERO.contains(&code.as_str()) {
        0
    } else if THREE.contains(&code.as_str()) {
        3
    } else {
        2
    }
}

/// `amount_minor` as a decimal amount followed by the code, e.g. `19.99 EUR`, `1500 JPY`,
/// `-0.05 USD`. Integer arithmetic only.
pub fn format_money(amount_minor: i64, currency_code: &str) -> String {
    let digits = minor_unit_digits(currency_code);
    let sign = if amount_minor < 0 { "-" } else { "" };
    let abs = amount_minor.unsigned_abs();
    let number = if digits == 0 {
        abs.to_string()
    } else {
        let scale = 10u64.pow(digits);
        let width = usize::try_from(digits).unwrap_or(2);
        format!("{}.{:0width$}", abs / scale, abs % scale)
    };
    let code = currency_code.trim().to_ascii_uppercase();
    if code.is_empty() {
        format!("{sign}{number}")
    } else {
        format!("{sign}{number} {code}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_formatted_from_minor_units_with_the_currency_exponent() {
        let cases = [
            (1999, "EUR", "19.99 EUR"),
            (5, "usd", "0.05 USD"),
            (-5, "USD", "-0.05 USD"),
            (100, "EUR", "1.00 EUR"),
            (0, "EUR", "0.00 EUR"),
            (1500, "JPY", "1500 JPY"),
            (1234, "KWD", "1.234 KWD"),
            (7, "KWD", "0.007 KWD"),
            (1999, "", "19.99"),
            (i64::MAX, "EUR", "92233720368547758.07 EUR"),
            (i64::MIN, "EUR", "-92233720368547758.08 EUR"),
        ];
        for (amount, code, expected) in cases {
            assert_eq!(format_money(amount, code), expected, "{amount} {code}");
        }
    }
}
