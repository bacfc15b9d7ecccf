//! JSON Web Tokens signed with HS256 (RFC 7519), as an alternative to API
//! keys: `Authorization: Bearer HEADER.PAYLOAD.SIGNATURE`.
//!
//! Only `alg: "HS256"` is accepted: `none` and every other algorithm are
//! refused before the signature is looked at, so a token cannot choose how
//! it is checked (algorithm confusion). The signature is compared in
//! constant time; then `exp` (required), `nbf`, `iss` and `aud` are
//! checked, with a leeway for clock skew, and the role is read from a
//! claim (`role` by default: `viewer`, `operator` or `admin`).

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::auth::Role;

/// How tokens are checked.
#[derive(Clone)]
pub struct JwtSettings {
    /// The shared HS256 secret (at least 32 bytes).
    pub secret: Vec<u8>,
    /// Required `iss`, if any.
    pub issuer: Option<String>,
    /// Required `aud` (the claim, a string or a list, must contain it).
    pub audience: Option<String>,
    /// The claim holding the role.
    pub role_claim: String,
    /// Tolerated clock skew for `exp` and `nbf`, in seconds.
    pub leeway_secs: i64,
}

impl std::fmt::Debug for JwtSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSettings")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("role_claim", &self.role_claim)
            .finish_non_exhaustive()
    }
}

/// Who a valid token speaks for.
#[derive(Clone, Debug, PartialEq)]
pub struct Claims {
    /// `sub`, or `jwt` without one: the name in logs.
    pub subject: String,
    /// The role claimed.
    pub role: Role,
}

/// Whether `token` looks like a JWT (three dot-separated parts) rather
/// than an API key.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && token.len() > 20
}

fn decode_part(part: &str, what: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| format!("the token's {what} is not base64url"))
}

fn json_part(part: &str, what: &str) -> Result<Value, String> {
    serde_json::from_slice(&decode_part(part, what)?)
        .map_err(|_| format!("the token's {what} is not JSON"))
}

impl JwtSettings {
    /// Verifies `token` at `now` (seconds since the epoch).
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, String> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("a JWT has three parts".into());
        };
        let header = json_part(h, "header")?;
        match header["alg"].as_str() {
            Some("HS256") => {}
            Some(other) => return Err(format!("algorithm `{other}` is not accepted (HS256 only)")),
            None => return Err("the token names no algorithm".into()),
        }
        let signature = decode_part(sig, "signature")?;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).map_err(|_| "bad secret".to_string())?;
        mac.update(h.as_bytes());
        mac.update(b".");
        mac.update(p.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| "the token's signature is wrong".to_string())?;
        let claims = json_part(p, "payload")?;
        let exp = claims["exp"]
            .as_i64()
            .ok_or_else(|| "the token has no `exp`".to_string())?;
        if now > exp.saturating_add(self.leeway_secs) {
            return Err("the token has expired".into());
        }
        if let Some(nbf) = claims.get("nbf") {
            let nbf = nbf
                .as_i64()
                .ok_or_else(|| "`nbf` is not a number".to_string())?;
            if now < nbf.saturating_sub(self.leeway_secs) {
                return Err("the token is not valid yet (`nbf`)".into());
            }
        }
        if let Some(iss) = &self.issuer {
            if claims["iss"].as_str() != Some(iss) {
                return Err("the token's issuer (`iss`) is not accepted".into());
            }
        }
        if let Some(aud) = &self.audience {
            let ok = match &claims["aud"] {
                Value::String(a) => a == aud,
                Value::Array(list) => list.iter().any(|a| a.as_str() == Some(aud)),
                _ => false,
            };
            if !ok {
                return Err("the token is not meant for this server (`aud`)".into());
            }
        }
        let role = match claims[&self.role_claim].as_str() {
            Some("viewer") => Role::Viewer,
            Some("operator") => Role::Operator,
            Some("admin") => Role::Admin,
            _ => {
                return Err(format!(
                    "the token's `{}` claim is not viewer, operator or admin",
                    self.role_claim
                ))
            }
        };
        let subject = claims["sub"].as_str().unwrap_or("jwt").to_string();
        Ok(Claims { subject, role })
    }
}

/// Signs `claims` with HS256 (for tests and tools).
pub fn sign(secret: &[u8], header: &Value, claims: &Value) -> String {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let signing_input = format!("{}.{}", b64(header), b64(claims));
    let sig = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(signing_input.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    };
    format!(
        "{signing_input}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn settings() -> JwtSettings {
        JwtSettings {
            secret: SECRET.to_vec(),
            issuer: Some("https://id.example".into()),
            audience: Some("eddy".into()),
            role_claim: "role".into(),
            leeway_secs: 30,
        }
    }

    fn token(claims: Value) -> String {
        sign(SECRET, &json!({"alg": "HS256", "typ": "JWT"}), &claims)
    }

    fn good() -> Value {
        json!({"sub": "ann", "iss": "https://id.example", "aud": ["x", "eddy"], "exp": 2_000, "nbf": 1_000, "role": "operator"})
    }

    #[test]
    fn a_valid_token_gives_its_subject_and_role() {
        assert_eq!(
            settings().verify(&token(good()), 1_500),
            Ok(Claims {
                subject: "ann".into(),
                role: Role::Operator
            })
        );
        // Within the leeway on either side.
        assert!(settings().verify(&token(good()), 2_029).is_ok());
        assert!(settings().verify(&token(good()), 971).is_ok());
    }

    #[test]
    fn every_broken_claim_and_algorithm_trick_is_refused() {
        let s = settings();
        let with = |k: &str, v: Value| {
            let mut c = good();
            c[k] = v;
            token(c)
        };
        let refused = |t: &str, why: &str| {
            let e = s.verify(t, 1_500).unwrap_err();
            assert!(e.contains(why), "{e} (wanted {why})");
        };
        refused(&with("exp", json!(1_400)), "expired");
        refused(&with("nbf", json!(1_600)), "not valid yet");
        refused(&with("iss", json!("https://evil.example")), "issuer");
        refused(&with("aud", json!("other")), "not meant for this server");
        refused(&with("role", json!("root")), "`role` claim");
        let mut no_exp = good();
        no_exp.as_object_mut().unwrap().remove("exp");
        refused(&token(no_exp), "no `exp`");
        // alg none, unsigned.
        let none = sign(b"", &json!({"alg": "none"}), &good());
        let unsigned = format!("{}.", none.rsplit_once('.').unwrap().0);
        refused(&unsigned, "`none` is not accepted");
        // Another algorithm named, even with an HS256 signature.
        refused(
            &sign(SECRET, &json!({"alg": "RS256"}), &good()),
            "`RS256` is not accepted",
        );
        // The wrong secret, or a payload changed after signing.
        refused(
            &sign(
                b"another secret of 32 bytes......",
                &json!({"alg": "HS256"}),
                &good(),
            ),
            "signature",
        );
        let t = token(good());
        let (h, rest) = t.split_once('.').unwrap();
        let sig = rest.split_once('.').unwrap().1;
        let mut forged = good();
        forged["role"] = json!("admin");
        let forged_payload =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged.to_string());
        refused(&format!("{h}.{forged_payload}.{sig}"), "signature");
        refused("a.b", "three parts");
        refused("!!.??.**", "not base64url");
    }
}
