//! The one timestamp text format of the archive: UTC ISO-8601 with milliseconds and `Z`
//! (`2022-11-14T13:26:37.728Z`), as in Mia-Platform's file names and lines.

use chrono::{DateTime, SecondsFormat, Utc};

/// `0000-01-01T00:00:00.000Z`, the earliest time the four-digit-year text format can write.
pub const MIN_ISO_MS: i64 = -62_167_219_200_000;
/// `9999-12-31T23:59:59.999Z`, the latest time the four-digit-year text format can write.
pub const MAX_ISO_MS: i64 = 253_402_300_799_999;

/// Whether `epoch_ms` falls in years 0..=9999, the range the text format (and so any reader of
/// RFC 3339) can represent.
pub fn is_iso_representable(epoch_ms: i64) -> bool {
    (MIN_ISO_MS..=MAX_ISO_MS).contains(&epoch_ms)
}

/// Formats epoch milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
///
/// A Kafka timestamp can be any i64 (a producer sending microseconds as milliseconds lands in year
/// 55840), but every text this returns must parse back: values outside years 0..=9999 are clamped to
/// that range. Where the exact value matters (archive lines) it is written as a number instead.
pub fn format_iso_ms(epoch_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(epoch_ms.clamp(MIN_ISO_MS, MAX_ISO_MS))
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Appends `epoch_ms` as `YYYY-MM-DDTHH:MM:SS.mmmZ` without allocating: the storer formats one
/// timestamp per record. Years outside 0..=9999 are clamped, as by [`format_iso_ms`].
pub fn write_iso_ms(epoch_ms: i64, out: &mut Vec<u8>) {
    let days = epoch_ms.div_euclid(86_400_000);
    let ms_of_day = epoch_ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        out.extend_from_slice(format_iso_ms(epoch_ms).as_bytes());
        return;
    }
    let (hour, minute, second, milli) = (
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000,
    );
    let digits = |value: i64, width: usize, out: &mut Vec<u8>| {
        let mut buf = [b'0'; 4];
        let mut v = value;
        for slot in buf[..width].iter_mut().rev() {
            *slot = b'0' + (v % 10) as u8;
            v /= 10;
        }
        out.extend_from_slice(&buf[..width]);
    };
    // `YYYY-MM-DDTHH:MM:SS.mmmZ`: each field with the separator that follows it.
    for (value, width, separator) in [
        (year, 4, b'-'),
        (month, 2, b'-'),
        (day, 2, b'T'),
        (hour, 2, b':'),
        (minute, 2, b':'),
        (second, 2, b'.'),
        (milli, 3, b'Z'),
    ] {
        digits(value, width, out);
        out.push(separator);
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
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

    #[test]
    fn every_formatted_time_parses_back_and_out_of_range_ones_clamp() {
        // Year 55840: microseconds sent as milliseconds.
        for (ms, expected) in [
            (1_700_000_000_000_000, MAX_ISO_MS),
            (i64::MAX, MAX_ISO_MS),
            (i64::MIN, MIN_ISO_MS),
            (MIN_ISO_MS - 1, MIN_ISO_MS),
            (-1, -1),
        ] {
            let text = format_iso_ms(ms);
            assert_eq!(parse_iso_ms(&text), Some(expected), "{ms} -> {text}");
            let mut fast = Vec::new();
            write_iso_ms(ms, &mut fast);
            assert_eq!(String::from_utf8(fast).expect("ascii"), text);
        }
        assert!(is_iso_representable(0) && !is_iso_representable(MAX_ISO_MS + 1));
    }

    #[test]
    fn the_fast_formatter_agrees_with_chrono() {
        let samples = [
            0,
            1,
            -1,
            951_782_400_000,
            1_668_432_397_728,
            4_102_444_799_999,
            -62_135_596_800_000,
            253_402_300_799_999,
            -86_400_001,
        ];
        for ms in samples
            .into_iter()
            .chain((0..2000).map(|i| i * 987_654_321_017 - 900_000_000_000_000))
        {
            let mut out = Vec::new();
            write_iso_ms(ms, &mut out);
            assert_eq!(
                String::from_utf8(out).expect("ascii"),
                format_iso_ms(ms),
                "{ms}"
            );
        }
    }
}
