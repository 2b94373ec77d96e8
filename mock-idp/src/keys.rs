//! Signing keys of the mock IdP: generation, JWKs, and an optional key directory.

use std::fmt;
use std::path::Path;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::IdpError;

/// The signature algorithms the mock IdP can sign with.
#[derive(Clone, Copy, Debug, Default, Deserialize, schemars::JsonSchema, Eq, PartialEq, Serialize)]
pub enum KeyAlg {
    /// ECDSA P-256 with SHA-256, the default of auth.md providers.
    #[default]
    #[serde(rename = "ES256")]
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 and a 2048-bit key.
    #[serde(rename = "RS256")]
    Rs256,
    /// Ed25519.
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl KeyAlg {
    /// The JOSE `alg` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
            Self::EdDsa => "EdDSA",
        }
    }

    /// Parses a JOSE `alg` value.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "ES256" => Some(Self::Es256),
            "RS256" => Some(Self::Rs256),
            "EdDSA" => Some(Self::EdDsa),
            _ => None,
        }
    }

    pub(crate) fn jwt_alg(self) -> Algorithm {
        match self {
            Self::Es256 => Algorithm::ES256,
            Self::Rs256 => Algorithm::RS256,
            Self::EdDsa => Algorithm::EdDSA,
        }
    }

    fn rcgen_alg(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            Self::Es256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Self::Rs256 => &rcgen::PKCS_RSA_SHA256,
            Self::EdDsa => &rcgen::PKCS_ED25519,
        }
    }
}

/// One signing key: private half for minting, public JWK for the JWKS.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    alg: KeyAlg,
    encoding: EncodingKey,
    public_pem: String,
    private_pem: String,
    public_jwk: Value,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("private_pem", &"<redacted>")
            .finish()
    }
}

#[derive(Deserialize, Serialize)]
struct StoredKey {
    kid: String,
    alg: KeyAlg,
    private_pem: String,
}

impl SigningKey {
    /// Generates a fresh key pair with the given key id.
    pub fn generate(alg: KeyAlg, kid: impl Into<String>) -> Result<Self, IdpError> {
        let pair = rcgen::KeyPair::generate_for(alg.rcgen_alg())
            .map_err(|e| IdpError::Key(format!("failed to generate a {} key: {e}", alg.as_str())))?;
        Self::from_pair(alg, kid.into(), &pair)
    }

    fn from_pem(alg: KeyAlg, kid: String, private_pem: &str) -> Result<Self, IdpError> {
        let pair = rcgen::KeyPair::from_pem_and_sign_algo(private_pem, alg.rcgen_alg())
            .map_err(|e| IdpError::Key(format!("failed to read key `{kid}`: {e}")))?;
        Self::from_pair(alg, kid, &pair)
    }

    fn from_pair(alg: KeyAlg, kid: String, pair: &rcgen::KeyPair) -> Result<Self, IdpError> {
        let private_pem = pair.serialize_pem();
        let public_pem = pair.public_key_pem();
        let key_err = |e: jsonwebtoken::errors::Error| IdpError::Key(format!("failed to load key `{kid}`: {e}"));
        let (encoding, decoding) = match alg {
            KeyAlg::Es256 => (
                EncodingKey::from_ec_pem(private_pem.as_bytes()).map_err(key_err)?,
                DecodingKey::from_ec_pem(public_pem.as_bytes()).map_err(key_err)?,
            ),
            KeyAlg::Rs256 => (
                EncodingKey::from_rsa_pem(private_pem.as_bytes()).map_err(key_err)?,
                DecodingKey::from_rsa_pem(public_pem.as_bytes()).map_err(key_err)?,
            ),
            KeyAlg::EdDsa => (
                EncodingKey::from_ed_pem(private_pem.as_bytes()).map_err(key_err)?,
                DecodingKey::from_ed_pem(public_pem.as_bytes()).map_err(key_err)?,
            ),
        };
        // Built from the public half: jsonwebtoken only reads PKCS#8 v1 Ed25519 private keys
        // when building a JWK, and rcgen writes v2.
        let jwk = Jwk::from_decoding_key(&decoding, Some(alg.jwt_alg())).map_err(key_err)?;
        let mut public_jwk = serde_json::to_value(&jwk).map_err(|e| IdpError::Key(e.to_string()))?;
        if let Some(obj) = public_jwk.as_object_mut() {
            obj.insert("kid".into(), Value::String(kid.clone()));
            obj.insert("alg".into(), Value::String(alg.as_str().into()));
            obj.insert("use".into(), Value::String("sig".into()));
            obj.retain(|_, v| !v.is_null());
        }
        Ok(Self {
            kid,
            alg,
            encoding,
            public_pem,
            private_pem,
            public_jwk,
        })
    }

    /// The key id published in the JWKS and put in token headers.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm this key signs with.
    pub fn alg(&self) -> KeyAlg {
        self.alg
    }

    /// The public key as a JWK with `kid`, `alg` and `use`.
    pub fn public_jwk(&self) -> &Value {
        &self.public_jwk
    }

    /// The public key in SPKI PEM form (used as the HMAC secret of the algorithm-confusion token).
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    /// Signs `message` (the JWS signing input) and returns the base64url signature.
    pub fn sign(&self, message: &[u8]) -> Result<String, IdpError> {
        jsonwebtoken::crypto::sign(message, &self.encoding, self.alg.jwt_alg())
            .map_err(|e| IdpError::Key(format!("failed to sign with `{}`: {e}", self.kid)))
    }

    /// Reads every `*.json` key file of a key directory.
    pub fn load_dir(dir: &Path) -> Result<Vec<Self>, IdpError> {
        let unreadable = |e: std::io::Error| IdpError::KeyDir {
            path: dir.display().to_string(),
            reason: e.to_string(),
        };
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(unreadable)?
            .collect::<Result<_, _>>()
            .map_err(unreadable)?;
        entries.sort_by_key(|e| e.file_name());
        let mut keys = Vec::new();
        for entry in entries {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|e| IdpError::KeyDir {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            let stored: StoredKey = serde_json::from_str(&text).map_err(|e| IdpError::KeyDir {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            keys.push(Self::from_pem(stored.alg, stored.kid, &stored.private_pem)?);
        }
        Ok(keys)
    }

    /// Writes this key into a key directory as `<kid>.json` (mode 0600 where supported).
    pub fn save(&self, dir: &Path) -> Result<(), IdpError> {
        let path = dir.join(format!("{}.json", self.kid));
        let stored = StoredKey {
            kid: self.kid.clone(),
            alg: self.alg,
            private_pem: self.private_pem.clone(),
        };
        let text = serde_json::to_string_pretty(&stored).map_err(|e| IdpError::Key(e.to_string()))?;
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&path, text))
            .map_err(|e| IdpError::KeyDir {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        }
        Ok(())
    }

    /// Removes this key's file from a key directory, if present.
    pub fn forget(&self, dir: &Path) {
        let _ = std::fs::remove_file(dir.join(format!("{}.json", self.kid)));
    }
}
