//! Byte sizes in human units, for the quota flags and every message that names a size.
//!
//! Parsed: a whole number with an optional unit, `B`, `KiB`/`K`/`KB`, `MiB`/`M`/`MB`,
//! `GiB`/`G`/`GB`, `TiB`/`T`/`TB` (case-insensitive, optional space). Every unit is binary
//! (1 K = 1024 B): what `ls -lh` and `du -h` show, and what a mark next to `free -h` means;
//! taking `GB` as 10^9 would be 7% off at 1 GiB, a surprise in a limit. Shown: binary units
//! with one decimal.

/// The units accepted, by their factor.
const UNITS: [(&[&str], u64); 5] = [
    (&["", "b"], 1),
    (&["k", "kb", "kib"], 1 << 10),
    (&["m", "mb", "mib"], 1 << 20),
    (&["g", "gb", "gib"], 1 << 30),
    (&["t", "tb", "tib"], 1 << 40),
];

/// Parses `512MiB`, `2 GiB`, `1048576`. The error says what was wrong and gives examples.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits_end = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    let unit = unit.trim().to_ascii_lowercase();
    let shown = raftsched_core::state::limits::shown(text);
    if number.is_empty() {
        return Err(format!(
            "{shown} is not a size: give a whole number with an optional unit, e.g. 512MiB, 2GiB or 1048576"
        ));
    }
    let Some(&(_, factor)) = UNITS.iter().find(|(names, _)| names.contains(&unit.as_str())) else {
        return Err(format!("{shown}: unknown unit {unit:?}; use B, KiB, MiB, GiB or TiB"));
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| format!("{shown} is too large: sizes go up to {}", format_bytes(u64::MAX)))
}

/// `1.5 GiB`, `512 B`: binary units, one decimal above bytes.
pub fn format_bytes(bytes: u64) -> String {
    const SHOWN: [(&str, u64); 4] = [("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    match SHOWN.iter().find(|(_, factor)| bytes >= *factor) {
        Some((unit, factor)) => format!("{:.1} {unit}", bytes as f64 / *factor as f64),
        None => format!("{bytes} B"),
    }
}

/// `1,000,000`: counts in messages, grouped so a cap is read at a glance.
pub fn format_count(count: u64) -> String {
    let digits = count.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_units() {
        for (text, bytes) in [
            ("0", 0),
            ("1", 1),
            ("1B", 1),
            ("1K", 1024),
            ("1kb", 1024),
            ("512MiB", 512 << 20),
            ("2 GiB", 2 << 30),
            ("2gb", 2 << 30),
            ("1TiB", 1 << 40),
            ("18446744073709551615", u64::MAX),
        ] {
            assert_eq!(parse_bytes(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn bad_sizes_say_why() {
        for (text, expected) in [
            ("", "is not a size"),
            ("GiB", "is not a size"),
            ("-1", "is not a size"),
            ("1.5GiB", "unknown unit"),
            ("3 parsecs", "unknown unit"),
            ("18446744073709551616", "too large"),
            ("16777216TiB", "too large"),
        ] {
            let error = parse_bytes(text).expect_err(text);
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn sizes_and_counts_are_shown_for_people() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(1023), "1023 B");
        assert_eq!(format_bytes(1024), "1.0 KiB");
        assert_eq!(format_bytes(3 << 29), "1.5 GiB");
        assert_eq!(format_bytes(u64::MAX), "16777216.0 TiB");
        assert_eq!(format_count(0), "0");
        assert_eq!(format_count(999), "999");
        assert_eq!(format_count(1_000_000), "1,000,000");
    }
}
