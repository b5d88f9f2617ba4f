//! HS256 access tokens: one algorithm allowed, issuer, audience and expiry checked.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Issuer written into and required of every access token.
pub const ISSUER: &str = "skypanel";
/// Audience written into and required of every access token.
pub const AUDIENCE: &str = "skypanel-api";

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

/// Keys and rules for access tokens.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl JwtKeys {
    pub fn new(secret: &str, ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            ttl,
        }
    }

    /// Lifetime of the tokens this issues, in seconds.
    pub fn ttl_seconds(&self) -> i64 {
        self.ttl.as_secs() as i64
    }

    /// Issues an access token for `user_id`.
    pub fn issue(&self, user_id: i64) -> Result<String, jsonwebtoken::errors::Error> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id.to_string(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now,
            exp: now + self.ttl_seconds(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    /// The user id of a valid token; `None` for anything else.
    pub fn verify(&self, token: &str) -> Option<i64> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        data.claims.sub.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn keys() -> JwtKeys {
        JwtKeys::new(
            "0123456789abcdef0123456789abcdef",
            Duration::from_secs(3600),
        )
    }

    fn forge(header: &str, claims: serde_json::Value, secret: &[u8]) -> String {
        let head = URL_SAFE_NO_PAD.encode(header);
        let body = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing = format!("{head}.{body}");
        let sig = jsonwebtoken::crypto::sign(
            signing.as_bytes(),
            &EncodingKey::from_secret(secret),
            Algorithm::HS256,
        )
        .unwrap();
        format!("{signing}.{sig}")
    }

    fn claims(iss: &str, aud: &str, exp_offset: i64) -> serde_json::Value {
        let now = chrono::Utc::now().timestamp();
        serde_json::json!({"sub": "7", "iss": iss, "aud": aud, "iat": now, "exp": now + exp_offset})
    }

    #[test]
    fn round_trip() {
        let keys = keys();
        let token = keys.issue(42).unwrap();
        assert_eq!(keys.verify(&token), Some(42));
    }

    #[test]
    fn refuses_forgeries() {
        let keys = keys();
        let secret = b"0123456789abcdef0123456789abcdef";
        let good = forge(
            r#"{"alg":"HS256","typ":"JWT"}"#,
            claims(ISSUER, AUDIENCE, 60),
            secret,
        );
        assert_eq!(keys.verify(&good), Some(7));
        let other_key = forge(
            r#"{"alg":"HS256","typ":"JWT"}"#,
            claims(ISSUER, AUDIENCE, 60),
            b"another-key-another-key-another!!",
        );
        assert_eq!(keys.verify(&other_key), None);
        let expired = forge(
            r#"{"alg":"HS256","typ":"JWT"}"#,
            claims(ISSUER, AUDIENCE, -120),
            secret,
        );
        assert_eq!(keys.verify(&expired), None);
        let wrong_aud = forge(
            r#"{"alg":"HS256","typ":"JWT"}"#,
            claims(ISSUER, "other", 60),
            secret,
        );
        assert_eq!(keys.verify(&wrong_aud), None);
        let wrong_iss = forge(
            r#"{"alg":"HS256","typ":"JWT"}"#,
            claims("evil", AUDIENCE, 60),
            secret,
        );
        assert_eq!(keys.verify(&wrong_iss), None);
        let head = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(claims(ISSUER, AUDIENCE, 60).to_string());
        assert_eq!(keys.verify(&format!("{head}.{body}.")), None);
        let hs512 = {
            let head = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS512","typ":"JWT"}"#);
            let signing = format!("{head}.{body}");
            let sig = jsonwebtoken::crypto::sign(
                signing.as_bytes(),
                &EncodingKey::from_secret(secret),
                Algorithm::HS512,
            )
            .unwrap();
            format!("{signing}.{sig}")
        };
        assert_eq!(keys.verify(&hs512), None);
        let mut edited = good.clone();
        let tampered_body = URL_SAFE_NO_PAD.encode(
            claims(ISSUER, AUDIENCE, 60)
                .to_string()
                .replace("\"7\"", "\"1\""),
        );
        let parts: Vec<&str> = good.split('.').collect();
        edited = edited.replace(parts[1], &tampered_body);
        assert_eq!(keys.verify(&edited), None);
    }
}
