//! Duration flags (`--timeout-ms`, `--lease-ms`, ...): human units through humantime
//! (`500ms`, `5s`, `10m`, `1h 30m`, `7d`), or a bare number of milliseconds, as every such
//! flag took before and scripts still pass. The names keep `_ms`: the unit they are held in.

/// Parses a duration flag into milliseconds. A non-zero duration under a millisecond is
/// refused rather than rounded to 0, which many flags read as "none".
pub fn millis(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map_err(|_| format!("{text} milliseconds is more than this flag can hold; use a unit (e.g. 7d)"));
    }
    let shown: String = text.chars().take(64).collect();
    let duration = humantime::parse_duration(text)
        .map_err(|e| format!("{shown:?} is not a duration ({e}); use units such as 500ms, 5s, 10m, 1h, 7d"))?;
    let ms = u64::try_from(duration.as_millis()).map_err(|_| format!("{shown:?} is longer than any limit"))?;
    if ms == 0 && !duration.is_zero() {
        return Err(format!("{shown:?} is under a millisecond; the unit here is 1ms"));
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::millis;

    #[test]
    fn human_units_and_bare_milliseconds() {
        assert_eq!(millis("500ms"), Ok(500));
        assert_eq!(millis("5s"), Ok(5000));
        assert_eq!(millis("1h 30m"), Ok(5_400_000));
        assert_eq!(millis("7d"), Ok(604_800_000));
        assert_eq!(millis("0"), Ok(0));
        assert_eq!(millis("0s"), Ok(0));
        assert_eq!(millis("250"), Ok(250));
        assert_eq!(millis(&u64::MAX.to_string()), Ok(u64::MAX));
    }

    #[test]
    fn bad_durations_say_what_to_write() {
        for bad in ["", "5x", "-5s", "1.5.2s", "s"] {
            let error = millis(bad).unwrap_err();
            assert!(error.contains("500ms, 5s"), "{bad:?}: {error}");
        }
        assert!(
            millis("18446744073709551616")
                .unwrap_err()
                .contains("more than this flag")
        );
        assert!(millis("500us").unwrap_err().contains("under a millisecond"));
        let long = "9".repeat(10_000) + "x";
        let error = millis(&long).unwrap_err();
        assert!(
            !error.contains(&long[..100]),
            "the flag's text is cut in the message: {error}"
        );
    }
}
