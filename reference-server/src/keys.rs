//! The service's own keys, kept in the database so what they sign outlives a restart: the v0.6
//! assertion-signing key and the AID PKA key.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::{Value, json};

use crate::defect::{Defect, Defects};
use crate::error::ApiError;
use crate::secrets::secret;

/// The service's signing key: PKCS#8 in the database, so assertions outlive a restart.
pub struct ServiceKey {
    pair: EcdsaKeyPair,
    pkcs8: Vec<u8>,
    /// The key id published in the JWKS.
    pub kid: String,
}

impl ServiceKey {
    /// Loads the key from `conn`, or makes and stores one.
    pub(crate) fn load_or_create(conn: &crate::store::Connection) -> Result<Self, String> {
        let stored = crate::store::keys::service_key(conn)?;
        let (kid, pkcs8) = match stored {
            Some(found) => found,
            None => {
                let rng = aws_lc_rs::rand::SystemRandom::new();
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(|e| e.to_string())?;
                let kid = secret("svc-", 8);
                crate::store::keys::save_service_key(conn, &kid, doc.as_ref())?;
                (kid, doc.as_ref().to_vec())
            }
        };
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8).map_err(|e| e.to_string())?;
        Ok(Self { pair, pkcs8, kid })
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        let (x, y) = (&point[1..33], &point[33..65]);
        json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
        })
    }

    pub(crate) fn sign(&self, claims: &Value) -> Result<String, ApiError> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&self.pkcs8)).map_err(|e| ApiError::Internal(e.to_string()))
    }

    pub(crate) fn decoding_key(&self) -> Result<DecodingKey, ApiError> {
        let jwk = self.jwk();
        DecodingKey::from_ec_components(jwk["x"].as_str().unwrap_or_default(), jwk["y"].as_str().unwrap_or_default())
            .map_err(|e| ApiError::Internal(e.to_string()))
    }
}

/// The service's PKA key; its seed lives in the database so the published record stays true
/// across restarts.
pub struct AidKey {
    pub(crate) pair: Ed25519KeyPair,
    /// The first proof made, kept only for the `pka-replays` defect.
    first: std::sync::Mutex<Option<(String, String)>>,
}

impl AidKey {
    /// Loads the key from `conn`, or makes and stores one.
    pub(crate) fn load_or_create(conn: &crate::store::Connection) -> Result<Self, String> {
        let stored = crate::store::keys::aid_seed(conn)?;
        let seed = match stored {
            Some(s) => s,
            None => {
                let mut seed = [0u8; 32];
                aws_lc_rs::rand::fill(&mut seed).map_err(|_| "no randomness".to_string())?;
                crate::store::keys::save_aid_seed(conn, &seed)?;
                seed.to_vec()
            }
        };
        Ok(Self {
            pair: Ed25519KeyPair::from_seed_unchecked(&seed).map_err(|e| e.to_string())?,
            first: std::sync::Mutex::new(None),
        })
    }

    /// The raw 32 bytes of the public key.
    pub fn public(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    /// The public key as the record's `k` (the Ed25519 JWK `x`).
    pub fn x(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.pair.public_key().as_ref())
    }

    /// The proof `make` makes; under `pka-replays`, the first proof ever made, served again
    /// for every challenge.
    pub(crate) fn proof_or_replay(&self, defects: &Defects, make: impl FnOnce() -> (String, String)) -> (String, String) {
        if !defects.contains(Defect::PkaReplays) {
            return make();
        }
        match self.first.lock() {
            Ok(mut first) => first.get_or_insert_with(make).clone(),
            Err(_) => make(),
        }
    }

    /// The RFC 7638 thumbprint of the public JWK, the signature's `keyid`.
    pub fn keyid(&self) -> String {
        let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, self.x());
        URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref())
    }
}
