//! What JSON bodies share beyond serde's defaults.

use serde::{Deserialize, Deserializer};

/// A JSON integer, also written with a zero fraction (`5.0`: the same number to JSON Schema,
/// and what some clients' serializers write).
pub fn whole_number<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<i64>, D::Error> {
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(i) = n.as_i64() {
        return Ok(Some(i));
    }
    match n.as_f64() {
        // Strictly inside: a literal just past either end rounds to the end itself as a float.
        Some(f) if f.fract() == 0.0 && f > i64::MIN as f64 && f < i64::MAX as f64 => {
            Ok(Some(f as i64))
        }
        _ => Err(serde::de::Error::custom(format!(
            "invalid number {n}, expected an integer"
        ))),
    }
}
