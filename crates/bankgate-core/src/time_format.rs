//! Timestamp formats that appear on the wire.

use crate::clock::Timestamp;

/// `LastRefresh` as the live service writes it today: UTC, no zone suffix, six fractional digits
/// (`2026-01-21T20:47:47.145999`).
pub fn flinks_datetime(at: Timestamp) -> String {
    at.to_datetime().format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_fraction_digits_and_no_zone() {
        // 2026-01-21T20:47:47.145999Z
        let at = Timestamp::from_micros(1_769_028_467_145_999);
        assert_eq!(flinks_datetime(at), "2026-01-21T20:47:47.145999");
        assert_eq!(
            flinks_datetime(Timestamp::from_micros(0)),
            "1970-01-01T00:00:00.000000"
        );
    }
}
