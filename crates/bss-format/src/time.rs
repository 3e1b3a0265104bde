//! The one timestamp text format of the archive: UTC ISO-8601 with milliseconds and `Z`
//! (`2022-11-14T13:26:37.728Z`), as in Mia-Platform's file names and lines.

use chrono::{DateTime, SecondsFormat, Utc};

/// Formats epoch milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
///
/// Out-of-range values (beyond year 262143) are clamped to the epoch rather than failing: a Kafka
/// timestamp can be any i64, and a name must always be produced.
pub fn format_iso_ms(epoch_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(epoch_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses an RFC 3339 / ISO-8601 date-time with an offset into epoch milliseconds.
pub fn parse_iso_ms(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_milliseconds_in_utc() {
        let ms = 1_668_432_397_728;
        assert_eq!(format_iso_ms(ms), "2022-11-14T13:26:37.728Z");
        assert_eq!(parse_iso_ms("2022-11-14T13:26:37.728Z"), Some(ms));
        assert_eq!(parse_iso_ms("2022-11-14T14:26:37.728+01:00"), Some(ms));
        assert_eq!(format_iso_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(parse_iso_ms("yesterday"), None);
    }
}
