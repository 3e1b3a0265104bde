//! Times on the command line: RFC 3339 (`2026-03-01T12:00:00Z`), a date (`2026-03-01`, midnight UTC)
//! or epoch milliseconds.

use bss_format::time::parse_iso_ms;

/// Parses a command-line time into epoch milliseconds.
pub fn parse_time(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| format!("{text:?} is too large"));
    }
    parse_iso_ms(text)
        .or_else(|| parse_iso_ms(&format!("{text}T00:00:00Z")))
        .ok_or_else(|| {
            format!(
                "{text:?} is not a time: use RFC 3339 (2026-03-01T12:00:00Z), a date (2026-03-01) or epoch milliseconds"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn accepts_rfc3339_dates_and_epoch_millis() {
        assert_eq!(parse_time("1700000000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("1970-01-02"), Ok(86_400_000));
        assert_eq!(parse_time("1970-01-01T00:00:01.5+00:00"), Ok(1500));
        assert!(parse_time("yesterday")
            .expect_err("an error")
            .contains("yesterday"));
    }
}
