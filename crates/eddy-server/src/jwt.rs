//! JSON Web Tokens (RFC 7519) signed with HS256 (a shared secret) or RS256
//! (an RSA key pair: the server holds only the public key), as an
//! alternative to API keys: `Authorization: Bearer HEADER.PAYLOAD.SIGNATURE`.
//!
//! The configured key fixes the one algorithm accepted: `alg` must name
//! it, and `none` and every other algorithm are refused before the
//! signature is looked at, so a token cannot choose how it is checked
//! (algorithm confusion: an RS256 public key is never used as an HMAC
//! secret). An HMAC is compared in constant time; then `exp` (required),
//! `nbf`, `iss` and `aud` are checked, with a leeway for clock skew, the
//! role is read from a claim (`role` by default: `viewer`, `operator` or
//! `admin`) and the channels from `channels` when present.

use base64::Engine;
use hmac::{Hmac, Mac};
use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKey, Public};
use serde_json::Value;
use sha2::Sha256;

use crate::auth::Role;

/// What tokens are checked with; it fixes the one algorithm accepted.
#[derive(Clone)]
pub enum JwtKey {
    /// HS256 with a shared secret (at least 32 bytes).
    Hs256(Vec<u8>),
    /// RS256 with an RSA public key (at least 2048 bits).
    Rs256(PKey<Public>),
}

impl JwtKey {
    /// An RS256 key from a PEM public key (`-----BEGIN PUBLIC KEY-----`),
    /// or why it is not one.
    pub fn rs256_from_pem(pem: &[u8]) -> Result<JwtKey, String> {
        let key =
            PKey::public_key_from_pem(pem).map_err(|e| format!("not a PEM public key: {e}"))?;
        if key.id() != Id::RSA {
            return Err("not an RSA key (RS256 needs one)".into());
        }
        if key.bits() < 2048 {
            return Err(format!(
                "an RSA key of {} bits is too weak (at least 2048)",
                key.bits()
            ));
        }
        Ok(JwtKey::Rs256(key))
    }

    /// The algorithm tokens must name.
    fn algorithm(&self) -> &'static str {
        match self {
            JwtKey::Hs256(_) => "HS256",
            JwtKey::Rs256(_) => "RS256",
        }
    }

    /// Whether `signature` signs `input`.
    fn verifies(&self, input: &[u8], signature: &[u8]) -> bool {
        match self {
            JwtKey::Hs256(secret) => Hmac::<Sha256>::new_from_slice(secret).is_ok_and(|mut mac| {
                mac.update(input);
                mac.verify_slice(signature).is_ok()
            }),
            JwtKey::Rs256(key) => openssl::sign::Verifier::new(MessageDigest::sha256(), key)
                .and_then(|mut v| {
                    v.update(input)?;
                    v.verify(signature)
                })
                .unwrap_or(false),
        }
    }
}

/// How tokens are checked.
#[derive(Clone)]
pub struct JwtSettings {
    /// The secret or public key, which fixes the algorithm.
    pub key: JwtKey,
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
            .field("algorithm", &self.key.algorithm())
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
    /// The live-feed channels it may subscribe to (`channels` claim:
    /// patterns as for API keys); `None`: every channel.
    pub channels: Option<Vec<String>>,
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
        let wanted = self.key.algorithm();
        match header["alg"].as_str() {
            Some(alg) if alg == wanted => {}
            Some(other) => {
                return Err(format!(
                    "algorithm `{other}` is not accepted ({wanted} only)"
                ))
            }
            None => return Err("the token names no algorithm".into()),
        }
        let signature = decode_part(sig, "signature")?;
        let input = &token[..h.len() + 1 + p.len()];
        if !self.key.verifies(input.as_bytes(), &signature) {
            return Err("the token's signature is wrong".into());
        }
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
        let channels = match claims.get("channels") {
            None => None,
            Some(Value::Array(list)) => Some(
                list.iter()
                    .map(|c| c.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or("the token's `channels` claim is not a list of text")?,
            ),
            Some(_) => return Err("the token's `channels` claim is not a list".into()),
        };
        let subject = claims["sub"].as_str().unwrap_or("jwt").to_string();
        Ok(Claims {
            subject,
            role,
            channels,
        })
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
            key: JwtKey::Hs256(SECRET.to_vec()),
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
                role: Role::Operator,
                channels: None,
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

    /// RS256 with the issuer's key pair: a token it signed passes (with its
    /// channels); one signed with another RSA key, one naming HS256 (the
    /// public key used as an HMAC secret: the classic confusion), and
    /// keys that are not RSA or too short are refused.
    #[test]
    fn rs256_checks_with_the_public_key_only() {
        use openssl::rsa::Rsa;
        use openssl::sign::Signer;
        let pair = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let public = pair.public_key_to_pem().unwrap();
        let s = JwtSettings {
            key: JwtKey::rs256_from_pem(&public).unwrap(),
            ..settings()
        };
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let rs256 = |key: &PKey<openssl::pkey::Private>, claims: &Value| {
            let input = format!(
                "{}.{}",
                b64(json!({"alg": "RS256", "typ": "JWT"}).to_string().as_bytes()),
                b64(claims.to_string().as_bytes())
            );
            let mut signer = Signer::new(MessageDigest::sha256(), key).unwrap();
            signer.update(input.as_bytes()).unwrap();
            format!("{input}.{}", b64(&signer.sign_to_vec().unwrap()))
        };
        let mut claims = good();
        claims["channels"] = json!(["metrics", "node:kpis*"]);
        let ok = s.verify(&rs256(&pair, &claims), 1_500).unwrap();
        assert_eq!(ok.role, Role::Operator);
        assert_eq!(
            ok.channels,
            Some(vec!["metrics".to_string(), "node:kpis*".to_string()])
        );
        let other = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let e = s.verify(&rs256(&other, &good()), 1_500).unwrap_err();
        assert!(e.contains("signature"), "{e}");
        let confused = sign(&public, &json!({"alg": "HS256"}), &good());
        let e = s.verify(&confused, 1_500).unwrap_err();
        assert!(e.contains("`HS256` is not accepted (RS256 only)"), "{e}");
        let short = PKey::from_rsa(Rsa::generate(1024).unwrap()).unwrap();
        let e = JwtKey::rs256_from_pem(&short.public_key_to_pem().unwrap())
            .err()
            .unwrap();
        assert!(e.contains("too weak"), "{e}");
        let ec = openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap();
        let ec = PKey::from_ec_key(ec).unwrap().public_key_to_pem().unwrap();
        let e = JwtKey::rs256_from_pem(&ec).err().unwrap();
        assert!(e.contains("not an RSA key"), "{e}");
    }
}
