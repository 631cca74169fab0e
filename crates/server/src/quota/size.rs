//! Byte sizes in human units, for the quota flags and every message that names a size, via
//! the `bytesize` crate: `512MiB`, `2 GiB`, `1.5GiB`, `1048576` (bytes). `KiB`/`MiB`/`GiB`/
//! `TiB` are binary (1 KiB = 1024 B) and `KB`/`MB`/`GB` decimal, as the units say; sizes are
//! shown in binary units, as `du -h` and `free -h` show them.

use bytesize::ByteSize;

/// Parses a size. The error says what was wrong and gives examples.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let shown = raftsched_core::state::limits::shown(text);
    // bytesize takes a fraction and silently saturates at u64::MAX; a limit that large is a
    // typo, not a wish, so a figure past 16 EiB is refused rather than read as the max.
    match text.trim().parse::<ByteSize>() {
        Ok(size) if size.as_u64() < u64::MAX => Ok(size.as_u64()),
        Ok(_) => Err(format!(
            "{shown} is too large: sizes go below {}",
            format_bytes(u64::MAX)
        )),
        Err(why) => Err(format!(
            "{shown} is not a size ({why}): give a number with an optional unit, e.g. 512MiB, 2GiB or 1048576"
        )),
    }
}

/// `1.5 GiB`, `512 B`: binary units, one decimal above bytes.
pub fn format_bytes(bytes: u64) -> String {
    ByteSize::b(bytes).display().iec().to_string()
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
    fn sizes_parse_in_their_units() {
        for (text, bytes) in [
            ("0", 0),
            ("1", 1),
            ("1B", 1),
            ("1KiB", 1024),
            ("1kb", 1000),
            ("512MiB", 512 << 20),
            ("2 GiB", 2 << 30),
            ("1.5GiB", 3 << 29),
            ("2GB", 2_000_000_000),
            ("1TiB", 1 << 40),
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
            ("3 parsecs", "is not a size"),
            ("18446744073709551616", "is not a size"),
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
        assert_eq!(format_count(0), "0");
        assert_eq!(format_count(999), "999");
        assert_eq!(format_count(1_000_000), "1,000,000");
    }
}
