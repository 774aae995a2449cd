//! The issuer's signing keys (JWKS): which keys are usable and with which algorithm, and when the
//! set may be fetched again. Pure state; fetching is the verifier's job.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// An unknown `kid` triggers at most one fetch per this interval.
pub(super) const REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// A key set older than this is fetched again on next use (keys the issuer dropped stop
/// verifying); if that fails the old set keeps serving.
pub(super) const MAX_AGE: Duration = Duration::from_secs(3600);

/// The only algorithms accepted, each bound to the kind of key that carries it.
pub(super) const ACCEPTED: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

#[derive(Clone)]
pub(super) struct VerifyKey {
    pub alg: Algorithm,
    pub key: DecodingKey,
}

/// The algorithm a JWK may verify, decided from the key alone: RSA → RS256, EC P-256 → ES256,
/// OKP Ed25519 → EdDSA. A key whose `alg` names anything else, or whose `use` is not `sig`,
/// verifies nothing.
pub(super) fn algorithm_for(jwk: &Jwk) -> Option<Algorithm> {
    if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    let declared = jwk.common.key_algorithm;
    let (alg, expected) = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => (Algorithm::RS256, KeyAlgorithm::RS256),
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
            (Algorithm::ES256, KeyAlgorithm::ES256)
        }
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            (Algorithm::EdDSA, KeyAlgorithm::EdDSA)
        }
        _ => return None,
    };
    match declared {
        None => Some(alg),
        Some(d) if d == expected => Some(alg),
        Some(_) => None,
    }
}

/// Usable keys of a JWKS document by `kid`; keys without a `kid`, of other types or that fail
/// to parse are skipped (one odd key must not take the whole set down).
pub(super) fn parse_jwks(doc: &Value) -> Result<HashMap<String, VerifyKey>, String> {
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("the JWKS has no `keys` array")?;
    let mut out = HashMap::new();
    for raw in keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(raw.clone()) else {
            continue;
        };
        let kid = jwk.common.key_id.clone().filter(|k| !k.is_empty());
        let (Some(kid), Some(alg)) = (kid, algorithm_for(&jwk)) else {
            continue;
        };
        if let Ok(key) = DecodingKey::from_jwk(&jwk) {
            out.insert(kid, VerifyKey { alg, key });
        }
    }
    Ok(out)
}

/// Cached key set and its fetch history.
#[derive(Default)]
pub(super) struct KeyState {
    keys: HashMap<String, VerifyKey>,
    fetched_at: Option<Instant>,
    last_attempt: Option<Instant>,
    last_attempt_failed: bool,
}

/// What to do about a `kid`.
#[derive(Clone)]
pub(super) enum Lookup {
    Found(VerifyKey),
    /// Fetch the set first (unknown kid, or a stale set); `fallback` is the stale key if any.
    Fetch {
        fallback: Option<VerifyKey>,
    },
    /// Unknown kid and a fetch happened too recently; `failed` when that fetch failed.
    Unknown {
        failed: bool,
    },
}

impl KeyState {
    pub(super) fn lookup(&self, kid: &str, now: Instant) -> Lookup {
        let key = self.keys.get(kid).cloned();
        let fresh = self
            .fetched_at
            .is_some_and(|t| now.duration_since(t) < MAX_AGE);
        let may_fetch = self
            .last_attempt
            .is_none_or(|t| now.duration_since(t) >= REFETCH_INTERVAL);
        match key {
            Some(k) if fresh || !may_fetch => Lookup::Found(k),
            fallback @ Some(_) => Lookup::Fetch { fallback },
            None if may_fetch => Lookup::Fetch { fallback: None },
            None => Lookup::Unknown {
                failed: self.last_attempt_failed,
            },
        }
    }

    pub(super) fn fetched(&mut self, keys: HashMap<String, VerifyKey>, now: Instant) {
        self.keys = keys;
        self.fetched_at = Some(now);
        self.last_attempt = Some(now);
        self.last_attempt_failed = false;
    }

    /// A failed fetch counts against the interval only once a set is in hand: until then
    /// every request needs keys, and the breaker is what spares the issuer.
    pub(super) fn fetch_failed(&mut self, now: Instant) {
        if self.fetched_at.is_some() {
            self.last_attempt = Some(now);
        }
        self.last_attempt_failed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";

    fn rsa(kid: &str, alg: Option<&str>, use_: Option<&str>) -> Value {
        let mut k = json!({"kty": "RSA", "kid": kid, "n": N, "e": "AQAB"});
        if let Some(a) = alg {
            k["alg"] = json!(a);
        }
        if let Some(u) = use_ {
            k["use"] = json!(u);
        }
        k
    }

    #[test]
    fn algorithm_comes_from_the_key_and_only_asymmetric_ones_are_usable() {
        let keys = parse_jwks(&json!({"keys": [
            rsa("plain", None, None),
            rsa("rs256", Some("RS256"), Some("sig")),
            rsa("ps256", Some("PS256"), None),
            rsa("enc", None, Some("enc")),
            rsa("", None, None),
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "EC", "kid": "p256", "crv": "P-256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA"},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519",
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "AKP", "kid": "mldsa", "alg": "ML-DSA-44", "pub": "AA"},
            {"kty": "RSA"}
        ]}))
        .expect("parses");
        let mut kids: Vec<_> = keys.iter().map(|(k, v)| (k.as_str(), v.alg)).collect();
        kids.sort_by_key(|(k, _)| *k);
        assert_eq!(
            kids,
            vec![
                ("ed", Algorithm::EdDSA),
                ("p256", Algorithm::ES256),
                ("plain", Algorithm::RS256),
                ("rs256", Algorithm::RS256),
            ]
        );
        assert!(parse_jwks(&json!({"nope": []})).is_err());
    }

    fn key() -> VerifyKey {
        VerifyKey {
            alg: Algorithm::RS256,
            key: DecodingKey::from_rsa_components(N, "AQAB").expect("key"),
        }
    }

    fn set(kid: &str) -> HashMap<String, VerifyKey> {
        HashMap::from([(kid.to_string(), key())])
    }

    #[test]
    fn unknown_kid_refetches_at_most_once_per_interval() {
        let t0 = Instant::now();
        let mut s = KeyState::default();
        assert!(matches!(
            s.lookup("a", t0),
            Lookup::Fetch { fallback: None }
        ));
        s.fetched(set("a"), t0);
        assert!(matches!(s.lookup("a", t0), Lookup::Found(_)));
        assert!(matches!(
            s.lookup("b", t0 + Duration::from_secs(29)),
            Lookup::Unknown { failed: false }
        ));
        assert!(matches!(
            s.lookup("b", t0 + REFETCH_INTERVAL),
            Lookup::Fetch { fallback: None }
        ));
        s.fetched(set("b"), t0 + REFETCH_INTERVAL);
        assert!(
            matches!(s.lookup("a", t0 + REFETCH_INTERVAL), Lookup::Unknown { .. }),
            "keys the issuer dropped stop verifying"
        );
    }

    #[test]
    fn failures_before_the_first_set_do_not_block_the_next_try() {
        let t0 = Instant::now();
        let mut s = KeyState::default();
        s.fetch_failed(t0);
        assert!(matches!(s.lookup("a", t0), Lookup::Fetch { .. }));
        s.fetched(set("a"), t0);
        s.fetch_failed(t0 + REFETCH_INTERVAL);
        assert!(matches!(
            s.lookup("x", t0 + REFETCH_INTERVAL),
            Lookup::Unknown { failed: true }
        ));
    }

    #[test]
    fn a_stale_set_is_refreshed_but_keeps_serving_if_that_fails() {
        let t0 = Instant::now();
        let mut s = KeyState::default();
        s.fetched(set("a"), t0);
        let later = t0 + MAX_AGE;
        assert!(matches!(
            s.lookup("a", later),
            Lookup::Fetch { fallback: Some(_) }
        ));
        s.fetch_failed(later);
        assert!(
            matches!(s.lookup("a", later), Lookup::Found(_)),
            "within the interval after a failed refresh the stale key serves"
        );
    }
}
