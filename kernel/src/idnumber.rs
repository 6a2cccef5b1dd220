//! Chinese resident ID numbers (GB 11643-1999) and mobile phone numbers:
//! parsing, checksum, derived birth date and sex, and masking.
//!
//! **Invariant:** the `Display` and `Debug` of every type here show only the
//! masked form; the plain value is reachable only through `expose()`.

use chrono::NaiveDate;
use std::fmt;

/// Sex as encoded in the ID number's sequence digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    /// Odd sequence digit.
    Male,
    /// Even sequence digit.
    Female,
}

impl Sex {
    /// The stored and JSON form.
    pub fn as_str(self) -> &'static str {
        match self {
            Sex::Male => "male",
            Sex::Female => "female",
        }
    }

    /// Parse the stored form.
    pub fn parse(s: &str) -> Option<Sex> {
        match s {
            "male" | "M" | "m" | "男" => Some(Sex::Male),
            "female" | "F" | "f" | "女" => Some(Sex::Female),
            _ => None,
        }
    }
}

/// A validated 18-character resident ID number.
#[derive(Clone, PartialEq, Eq)]
pub struct ResidentId {
    value: String,
    birth: NaiveDate,
    sex: Sex,
}

/// Why an ID number was refused. Messages never echo the number unmasked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must be 18 characters: 17 digits and a final digit or X")]
    Format,
    #[error("contains an impossible birth date")]
    BirthDate,
    #[error("{0} fails the GB 11643 check digit")]
    Checksum(String),
}

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];

/// The check character for the first 17 digits (ISO 7064 MOD 11-2).
pub fn check_char(first17: &str) -> char {
    let sum: u32 = first17
        .bytes()
        .zip(WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    CHECK[(sum % 11) as usize]
}

/// Mask an ID-like string: first 4 and last 4 kept, the rest starred.
pub fn mask_id(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let mut out: String = chars[..4].iter().collect();
    out.push_str(&"*".repeat(chars.len() - 8));
    out.extend(&chars[chars.len() - 4..]);
    out
}

impl ResidentId {
    /// Parse and validate; a lower-case `x` is accepted and normalised.
    pub fn parse(input: &str) -> Result<ResidentId, IdError> {
        let value = input.trim().to_ascii_uppercase();
        let bytes = value.as_bytes();
        if bytes.len() != 18
            || !bytes[..17].iter().all(u8::is_ascii_digit)
            || !(bytes[17].is_ascii_digit() || bytes[17] == b'X')
        {
            return Err(IdError::Format);
        }
        let birth =
            NaiveDate::parse_from_str(&value[6..14], "%Y%m%d").map_err(|_| IdError::BirthDate)?;
        if birth.year_ce().1 < 1900 || birth > chrono::Utc::now().date_naive() {
            return Err(IdError::BirthDate);
        }
        if check_char(&value[..17]) != bytes[17] as char {
            return Err(IdError::Checksum(mask_id(&value)));
        }
        let sex = if (bytes[16] - b'0') % 2 == 1 {
            Sex::Male
        } else {
            Sex::Female
        };
        Ok(ResidentId { value, birth, sex })
    }

    /// Birth date encoded in the number.
    pub fn birth_date(&self) -> NaiveDate {
        self.birth
    }

    /// Sex encoded in the number.
    pub fn sex(&self) -> Sex {
        self.sex
    }

    /// The masked form, e.g. `3506**********123X`.
    pub fn masked(&self) -> String {
        mask_id(&self.value)
    }

    /// The plain number, for encryption and keyed hashing only.
    pub fn expose(&self) -> &str {
        &self.value
    }
}

use chrono::Datelike;

impl fmt::Debug for ResidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResidentId({})", self.masked())
    }
}

impl fmt::Display for ResidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// A validated mainland mobile number (11 digits starting with 1[3-9]).
#[derive(Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    /// Parse, accepting an optional `+86`/`86` prefix, spaces and dashes.
    pub fn parse(input: &str) -> Result<Phone, &'static str> {
        let digits: String = input.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        let digits = digits
            .strip_prefix("+86")
            .or_else(|| digits.strip_prefix("0086"))
            .unwrap_or(&digits)
            .to_string();
        let b = digits.as_bytes();
        if b.len() == 11
            && b.iter().all(u8::is_ascii_digit)
            && b[0] == b'1'
            && (b'3'..=b'9').contains(&b[1])
        {
            Ok(Phone(digits))
        } else {
            Err("must be an 11-digit mainland mobile number starting with 13-19")
        }
    }

    /// Masked form, e.g. `138****5678`.
    pub fn masked(&self) -> String {
        format!("{}****{}", &self.0[..3], &self.0[7..])
    }

    /// The plain number, for encryption only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", self.masked())
    }
}

/// Build a valid synthetic ID number (demo data, tests, benchmarks).
pub fn synthesize(region: u32, birth: NaiveDate, seq: u32, sex: Sex) -> String {
    let mut seq = seq % 1000;
    let want_odd = sex == Sex::Male;
    if (seq % 2 == 1) != want_odd {
        seq = (seq + 1) % 1000;
    }
    let first17 = format!(
        "{:06}{}{:03}",
        region % 1_000_000,
        birth.format("%Y%m%d"),
        seq
    );
    let c = check_char(&first17);
    format!("{first17}{c}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_a_valid_number_and_derives_fields() {
        // The example from the GB 11643 standard.
        let id = ResidentId::parse("11010519491231002x").unwrap();
        assert_eq!(id.expose(), "11010519491231002X");
        assert_eq!(
            id.birth_date(),
            NaiveDate::from_ymd_opt(1949, 12, 31).unwrap()
        );
        assert_eq!(id.sex(), Sex::Female);
        assert_eq!(id.masked(), "1101**********002X");
        assert_eq!(format!("{id:?}"), "ResidentId(1101**********002X)");
    }

    #[test]
    fn refuses_bad_numbers_without_echoing_them() {
        assert_eq!(ResidentId::parse("123"), Err(IdError::Format));
        assert_eq!(
            ResidentId::parse("110105194913310021"),
            Err(IdError::BirthDate)
        );
        let err = ResidentId::parse("110105194912310021").unwrap_err();
        assert_eq!(
            err.to_string(),
            "1101**********0021 fails the GB 11643 check digit"
        );
    }

    #[test]
    fn synthesized_numbers_validate() {
        for seq in 0..50 {
            let birth = NaiveDate::from_ymd_opt(1950 + seq as i32, 3, 1 + seq % 28).unwrap();
            let sex = if seq % 2 == 0 { Sex::Male } else { Sex::Female };
            let s = synthesize(350602, birth, seq * 7, sex);
            let id = ResidentId::parse(&s).unwrap();
            assert_eq!(id.sex(), sex);
            assert_eq!(id.birth_date(), birth);
        }
    }

    #[test]
    fn phones() {
        let p = Phone::parse("+86 138-1234-5678").unwrap();
        assert_eq!(p.expose(), "13812345678");
        assert_eq!(p.masked(), "138****5678");
        assert!(Phone::parse("12812345678").is_err());
        assert!(Phone::parse("1381234567").is_err());
    }
}
