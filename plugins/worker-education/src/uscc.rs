//! The unified social credit code (统一社会信用代码, GB 32100-2015): 18
//! characters from a 31-character alphabet (digits and capitals without I,
//! O, Z, S, V) — registration authority, organisation kind, a six-digit
//! administrative division code, a nine-character organisation code and a
//! check character. Pure functions; no host calls.

const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

fn value(c: u8) -> Option<u32> {
    ALPHABET.iter().position(|a| *a == c).map(|p| p as u32)
}

/// The check character for the first 17 characters, if they are all in the
/// alphabet.
pub fn check_character(first17: &str) -> Option<char> {
    if first17.len() != 17 {
        return None;
    }
    let mut sum = 0;
    for (c, w) in first17.bytes().zip(WEIGHTS) {
        sum += value(c)? * w;
    }
    let check = (31 - sum % 31) % 31;
    Some(ALPHABET[check as usize] as char)
}

/// The code, upper-cased, or why it is not a valid one.
pub fn validate(code: &str) -> Result<String, String> {
    let code = code.trim().to_ascii_uppercase();
    if code.len() != 18 || !code.is_ascii() {
        return Err("a unified social credit code has 18 characters".into());
    }
    if let Some(c) = code.bytes().find(|c| value(*c).is_none()) {
        return Err(format!(
            "{:?} is not allowed in a unified social credit code (digits and capitals other than I, O, Z, S, V)",
            c as char
        ));
    }
    if !code.as_bytes()[2..8].iter().all(u8::is_ascii_digit) {
        return Err("characters 3-8 are the administrative division code, six digits".into());
    }
    let expected = check_character(&code[..17]).ok_or("unreadable code")?;
    if code.as_bytes()[17] as char != expected {
        return Err(format!(
            "the check character is wrong (expected {expected} for these first 17 characters)"
        ));
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standards_example_and_real_ones_pass() {
        // The example of GB 32100-2015 and two published codes.
        for code in [
            "91350100M000100Y43",
            "911100007109288314",
            "91440300708461136T",
        ] {
            assert_eq!(validate(code), Ok(code.to_string()), "{code}");
        }
        assert_eq!(
            validate("91350100m000100y43"),
            Ok("91350100M000100Y43".into())
        );
    }

    #[test]
    fn a_wrong_check_character_or_alphabet_fails() {
        assert!(validate("91350100M000100Y44").is_err());
        assert!(validate("91350100M000100Y4").is_err());
        assert!(validate("91350100M000100I43").is_err());
        assert!(validate("9135A100M000100Y43").is_err());
    }
}
