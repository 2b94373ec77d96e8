//! The case language: what a step may do and what it may expect, as types. Each action is a
//! variant with typed parameters (unknown keys refused), so a typo is a catalogue error when the
//! catalogue loads, never a finding against the target. The JSON Schema and the vocabulary
//! reference (`cases/VOCABULARY.md`) are generated from these types and their doc comments.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod checked;
mod types;
mod vocabulary;

pub use authmd_mock_idp::KeyAlg;
pub use checked::{Pointer, StatusSpec};
pub use types::{AidCheck, Count, CredentialType, Fault, Issuer, TokenSpec};
pub(crate) use vocabulary::one_line;
pub use vocabulary::{generated_files, step_schema, vocabulary_markdown};

/// One step of a case: an action, with an optional name, clock move and expectations.
#[derive(Clone, Debug, Deserialize, JsonSchema, Serialize)]
pub struct Step {
    /// Name other steps use in `{{name.path}}` references.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where the target's clock is moved from this step on: a declared TTL name (`"otp+5"`),
    /// seconds, or a reference to an instant the target returned (`"{{reg.claim_token_expires}}-30"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advance: Option<String>,
    /// What must hold afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
    /// Send the step's requests to this replica (an index into the target's
    /// `[replicas].origins`) instead of the base URL; the case needs `replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<usize>,
    /// The target may take a while for this step's expectation to hold: the step runs again
    /// until it holds or the bound the target declares for `settle` has passed. Only on `api`
    /// steps, which change nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle: Option<Settle>,
    /// Near-miss variants (see `nearmiss::VARIANTS`): the step runs once per variant, each
    /// `{{ref | near}}` in its parameters replaced by that variant of the value, and each run
    /// is judged by `expect` on its own (`<name>/<variant>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub near_miss: Vec<String>,
    /// What to do (`do = "…"`) and its parameters.
    #[serde(flatten)]
    pub action: Action,
}

/// What a settling step waits for, and so which declared bound applies.
#[derive(Clone, Copy, Debug, Deserialize, Eq, JsonSchema, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Settle {
    /// A revocation made through one replica reaching the others: up to the target's
    /// `[replicas].revocation_propagation_ms` (0, immediately, unless declared).
    Revocation,
}

impl Step {
    /// The roots of every `{{reference}}` in the step's parameters: `prm`, `meta` and `target`
    /// name discovered documents, anything else a step of the case.
    pub fn reference_roots(&self) -> std::collections::BTreeSet<String> {
        serde_json::to_value(&self.action)
            .map(|v| crate::template::reference_roots(&v))
            .unwrap_or_default()
    }
}

/// The harness action a step performs (`do = "…"`). Flows are code; a case only picks and
/// parameterises them. Strings may hold `{{references}}`, resolved when the step runs.
#[derive(Clone, Debug, Deserialize, JsonSchema, Serialize)]
#[serde(tag = "do", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Action {
    /// Any HTTP request. `url` is absolute or a path on the target.
    Http {
        /// Method; GET when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        method: Option<String>,
        /// Absolute URL, or a path on the target's base URL.
        url: String,
        /// Request headers.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
        /// A JSON body (sets `Content-Type: application/json` unless `headers` has one).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        json: Option<Value>,
        /// A raw body.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
        /// Sent as `Authorization: Bearer <credential>`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credential: Option<String>,
    },
    /// `ANON()`: anonymous registration.
    RegisterAnonymous {
        /// Replaces the whole JSON body (any JSON value, for malformed-request cases).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<Value>,
        /// `requested_credential_type`; `api_key` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credential: Option<CredentialType>,
    },
    /// `EMAILREG(email, credential)`: verified-email registration.
    RegisterEmail {
        /// The address; the case's fresh `{{identity.email}}` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        email: Option<String>,
        /// `requested_credential_type`; `access_token` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credential: Option<CredentialType>,
    },
    /// Mints a token without sending it (its `token`, `jti` and `claims` become step values).
    Mint {
        /// What to mint.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<TokenSpec>,
    },
    /// `IDREG(J(token), credential)`: ID-JAG registration with a minted token or a given `assertion`.
    RegisterIdJag {
        /// What to mint.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<TokenSpec>,
        /// Send this assertion instead of minting one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assertion: Option<String>,
        /// Members to set in the request body over the ones the action writes (any JSON
        /// values: an `assertion_type` or `requested_credential_type` a near-miss family varies).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        body_set: BTreeMap<String, Value>,
        /// `requested_credential_type`; `access_token` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credential: Option<CredentialType>,
    },
    /// `count` concurrent `IDREG` of one token (replay races).
    ParallelRegisterIdJag {
        /// What to mint.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<TokenSpec>,
        /// `requested_credential_type`; `access_token` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credential: Option<CredentialType>,
        /// How many requests; 10 when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<Count>,
        /// Send them round-robin to the target's `[replicas]`, each at its own origin.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        across_replicas: bool,
    },
    /// Calls the protected API: the oracle, or the probe of a scope.
    Api {
        /// `oracle` (default) or a scope named in the target's `[probes]`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint: Option<String>,
        /// The credential; none sends no `Authorization`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credential: Option<String>,
        /// The authorization scheme; `Bearer` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scheme: Option<String>,
        /// Put the credential in the `access_token` query parameter instead of a header.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        query_token: bool,
    },
    /// `POST CLAIM {claim_token, email}`.
    Claim {
        /// Any JSON value (malformed-request cases send other types).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        claim_token: Option<Value>,
        /// Any JSON value; the case's `{{identity.email}}` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        email: Option<Value>,
    },
    /// Waits for the next claim mail and extracts its link and `claim_attempt_token`.
    ReadMail {
        /// The recipient; the case's `{{identity.email}}` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        email: Option<String>,
        /// The registration the mail belongs to; the last one registered when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        registration_id: Option<String>,
    },
    /// `OTP(reg)`: reads the claim mail, opens its link, and POSTs the challenge as a person would.
    Otp {
        /// The recipient; the case's `{{identity.email}}` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        email: Option<String>,
        /// The registration the mail belongs to; the last one registered when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        registration_id: Option<String>,
    },
    /// Asserts that no new mail reaches `email` within `within_ms`.
    NoMail {
        /// The recipient; the case's `{{identity.email}}` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        email: Option<String>,
        /// How long to watch; 300 ms when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        within_ms: Option<u64>,
    },
    /// `GET` a claim link from an earlier mail step.
    OpenLink {
        /// The link.
        link: String,
    },
    /// SEC-08: GETs, without credentials, where an agent could read claim mail (an HTTP
    /// outbox on the target's origin, as the mail source reads it; the v0.1 sample's outbox
    /// path; the claim link without its token and its parent paths), and lists as `revealed`
    /// the URLs whose answer holds `secret`.
    ProbeExposure {
        /// The mailed value an agent must not be able to read (the `claim_attempt_token`).
        secret: String,
        /// The registration the mail is about; the last one registered when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        registration_id: Option<String>,
        /// The claim link from the mail.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        link: Option<String>,
    },
    /// `POST CHALLENGE {claim_attempt_token}`.
    Challenge {
        /// Any JSON value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempt_token: Option<Value>,
    },
    /// `POST COMPLETE {claim_token, otp}`.
    Complete {
        /// Any JSON value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        claim_token: Option<Value>,
        /// Any JSON value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        otp: Option<Value>,
    },
    /// Mints `L(token)` and POSTs it to the revocation URI.
    Revoke {
        /// What to mint (a logout token unless `kind` says otherwise).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<TokenSpec>,
        /// `application/logout+jwt` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content_type: Option<String>,
        /// Send this body instead of the token.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
    },
    /// Publishes a new IdP key and makes it the signer (the case runs alone and the IdP is
    /// restored afterwards).
    RotateKey {
        /// The new key's algorithm; ES256 when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        alg: Option<KeyAlg>,
    },
    /// Sets the IdP's JWKS fault mode.
    JwksFault {
        /// The fault.
        fault: Fault,
    },
    /// Sets the `Cache-Control: max-age` the IdP's JWKS is served with.
    JwksMaxAge {
        /// Seconds.
        seconds: u64,
    },
    /// `POST` to the profile's OAuth token endpoint, form-encoded (RFC 6749 §4.1.3): `grant_type`
    /// plus the given members (`assertion`, `claim_token`, `resource`, …).
    Token {
        /// The grant type; the RFC 7523 JWT-bearer grant when absent, and no `grant_type`
        /// member at all when empty.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grant_type: Option<String>,
        /// Further form members, by name.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        form: BTreeMap<String, String>,
        /// Send this content type instead of `application/x-www-form-urlencoded`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content_type: Option<String>,
    },
    /// `POST token=…` to the profile's agent-callable revocation endpoint (RFC 7009).
    RevokeToken {
        /// The token to revoke.
        token: String,
        /// `token_type_hint`; `access_token` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_type_hint: Option<String>,
    },
    /// The human's side of a v0.6 ceremony, by the target's `[session]` recipe: open the
    /// `verification_uri`, sign in as `email`, and type `user_code` on the confirm page. The
    /// step's answer is the confirm form's.
    ConfirmClaim {
        /// The `verification_uri` the agent surfaced.
        verification_uri: String,
        /// The code the agent surfaced.
        user_code: String,
        /// Who signs in; the case's `{{identity.email}}` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        email: Option<String>,
    },
    /// The human's side of a reversed ceremony (the production dialect), by the target's
    /// `[session]` recipe: open the `verification_uri`, sign in as `email`, confirm, and read
    /// the code the page reveals (the recipe's `reveal` pattern) into the step's `user_code`.
    /// With `confirm = false` the user only signs in and opens the link: a code shown then was
    /// shown before they confirmed. The step's answer is the last page's.
    RevealClaim {
        /// The `verification_uri` the agent surfaced.
        verification_uri: String,
        /// Who signs in; the case's `{{identity.email}}` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        email: Option<String>,
        /// Whether the user confirms (default true).
        #[serde(default = "yes", skip_serializing_if = "is_true")]
        confirm: bool,
    },
    /// Judges one AID rule at the run's domain (DNS lookups, the fallback document, or a fresh
    /// PKA challenge to the selected endpoint), with the answers as evidence.
    Aid {
        /// The rule.
        check: AidCheck,
    },
    /// Judges an earlier step's answer again, with this step's expectations and no new request:
    /// how one answer is checked against a second requirement of the case (a SHOULD header on
    /// a MUST answer), so each expectation belongs to one requirement.
    Check {
        /// The earlier step's `name`.
        of: String,
    },
    /// Repeats the action `of` `count` times, collecting `field` from each answer as `values`
    /// in round order. Rounds are independent: up to 8 run at once where `of` is one request
    /// and there is no `then`, or with `spread` (each round then sees the case's values as they
    /// were before the sample, and its own `{{identity.email}}`, so no round reads another's
    /// mail); one at a time otherwise.
    Sample {
        /// The action to repeat, as an inline table (`of = { do = "challenge", … }`).
        of: Box<Action>,
        /// How many times; 20 when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<Count>,
        /// JSON pointer into each answer; `/credential` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field: Option<String>,
        /// Each request from its own loopback source address (so a per-address rate limit,
        /// which is conforming, does not cut the sample short).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        spread: bool,
        /// Actions run after `of` in each round, each seeing the round's previous answer as
        /// `{{sample.…}}`; `field` is read from the last one (a value that takes several
        /// requests to obtain, such as a mailed claim link's token).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        then: Vec<Action>,
    },
}

/// Rounds of a `sample` in flight at once, where its rounds are independent: each sends one
/// request, or each comes from its own source address (`spread`).
pub const SAMPLE_BATCH: usize = 8;

impl Action {
    /// Whether the action is one request whose answer is all it reads (a registration, a
    /// challenge, a completion), so a sample of it can send its rounds at once.
    pub fn sends_one_request(&self) -> bool {
        matches!(
            self,
            Self::RegisterAnonymous { .. }
                | Self::RegisterEmail { .. }
                | Self::RegisterIdJag { .. }
                | Self::Complete { .. }
                | Self::Challenge { .. }
        )
    }

    /// Whether running the step again after a 429 is the same step: one request, which the
    /// 429 refused (samples and repeats handle a 429 themselves).
    pub fn retriable(&self) -> bool {
        self.sends_one_request() || matches!(self, Self::Http { .. })
    }

    /// The `do` name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Http { .. } => "http",
            Self::RegisterAnonymous { .. } => "register-anonymous",
            Self::RegisterEmail { .. } => "register-email",
            Self::Mint { .. } => "mint",
            Self::RegisterIdJag { .. } => "register-id-jag",
            Self::ParallelRegisterIdJag { .. } => "parallel-register-id-jag",
            Self::Api { .. } => "api",
            Self::Claim { .. } => "claim",
            Self::ReadMail { .. } => "read-mail",
            Self::Otp { .. } => "otp",
            Self::NoMail { .. } => "no-mail",
            Self::OpenLink { .. } => "open-link",
            Self::ProbeExposure { .. } => "probe-exposure",
            Self::Challenge { .. } => "challenge",
            Self::Complete { .. } => "complete",
            Self::Revoke { .. } => "revoke",
            Self::RotateKey { .. } => "rotate-key",
            Self::JwksFault { .. } => "jwks-fault",
            Self::JwksMaxAge { .. } => "jwks-max-age",
            Self::Token { .. } => "token",
            Self::ConfirmClaim { .. } => "confirm-claim",
            Self::RevealClaim { .. } => "reveal-claim",
            Self::RevokeToken { .. } => "revoke-token",
            Self::Sample { .. } => "sample",
            Self::Aid { .. } => "aid",
            Self::Check { .. } => "check",
        }
    }

    /// The parameters as written (without `do`), for `explain` and reports.
    pub fn params(&self) -> serde_json::Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(mut m)) => {
                m.shift_remove("do");
                m
            }
            _ => serde_json::Map::new(),
        }
    }
}

/// Expectations on a step's exchange and values. Every present field is checked; strings and
/// values may hold `{{references}}`.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The requirement of the case these expectations check (one of its `requirements`). A
    /// finding is judged at that requirement's level; a case whose requirements differ in
    /// level names one on every expectation, and a case with one requirement may leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirement: Option<String>,
    /// Status: a number, `"2xx"`/`"4xx"`, or a list of those.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusSpec>,
    /// Status that must not occur.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_not: Option<StatusSpec>,
    /// Acceptable `error` codes (synonyms per catalogue §B.6): one, or a list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    /// JSON pointer → expected value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub json: BTreeMap<Pointer, Value>,
    /// JSON pointer → value it must differ from.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub json_not: BTreeMap<Pointer, Value>,
    /// JSON pointer → the values it may equal (a list, or a reference to one): where the texts
    /// allow more than one spelling.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub one_of: BTreeMap<Pointer, Value>,
    /// JSON pointers that must be present (and not null).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub present: Vec<Pointer>,
    /// JSON pointers that must be absent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub absent: Vec<Pointer>,
    /// JSON pointer → array the value (an array) must be a subset of.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subset: BTreeMap<Pointer, Value>,
    /// Pointer → the same members in any order (arrays, or space-delimited strings such as an
    /// OAuth `scope`): what the catalogue means by "the same scopes".
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub same_set: BTreeMap<Pointer, Value>,
    /// JSON pointer → values the array there must contain (in any order, among others).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub contains: BTreeMap<Pointer, Value>,
    /// JSON pointers holding ISO-8601 instants that must be in the future (on the target's clock).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub future: Vec<Pointer>,
    /// JSON pointers holding absolute http(s) URLs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub absolute_url: Vec<Pointer>,
    /// An earlier step whose answer this one must match in status and top-level member names
    /// (REG-EMAIL-08: no difference between known and unknown addresses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_shape_as: Option<String>,
    /// URLs on the mock IdP the target must have fetched by the end of this step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub idp_fetched: Vec<String>,
    /// Every URL in the JSON body is https, or plain http to a loopback host (DISC-21).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secure_urls: bool,
    /// Header → substring it must contain (case-insensitive).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub header: BTreeMap<String, String>,
    /// Headers that must be absent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub header_absent: Vec<String>,
    /// The `WWW-Authenticate` challenge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<ChallengeExpect>,
    /// Strings that must not appear in the response body (secrets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub body_excludes: Vec<String>,
    /// For `parallel-register-id-jag`: status class or code → exact count.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<String, u32>,
    /// For `sample`: every value distinct.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unique: bool,
    /// For `sample`: minimum apparent entropy of each value, in bits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_entropy_bits: Option<u32>,
    /// For `sample`: every value matches this regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<String>,
    /// JWKS fetches the target made during this step, at least.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_fetches_min: Option<usize>,
    /// JWKS fetches the target made during this step, at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_fetches_max: Option<usize>,
}

/// Expectations on a `WWW-Authenticate: Bearer` challenge.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeExpect {
    /// `resource_metadata` must be an absolute URL.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resource_metadata: bool,
    /// `error` parameter: a value, or `"absent"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

#[cfg(test)]
mod tests {
    use super::*;
    use authmd_mock_idp::JwksFault;

    fn step(text: &str) -> Result<Step, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_typo_in_a_step_parameter_is_a_load_error() {
        let error = step("do = \"register-id-jag\"\ntokn = {}\n").expect_err("unknown key");
        assert!(error.contains("tokn") && error.contains("token"), "{error}");
        let error = step("do = \"jwks-fault\"\nfault = \"server-eror\"\n").expect_err("bad fault");
        assert!(error.contains("server-error"), "{error}");
        assert!(step("do = \"rotate-key\"\nalg = \"ES265\"\n").is_err());
        assert!(step("do = \"register-anonymous\"\ncredential = \"api-key\"\n").is_err());
        assert!(step("do = \"sample\"\nof = { do = \"challenge\" }\ncount = \"12\"\n").is_err());
        assert!(step("do = \"sample\"\nof = { do = \"challenge\" }\nspread = \"yes\"\n").is_err());
        assert!(step("do = \"register-id-jag\"\ntoken = { sett = {} }\n").is_err());
        assert!(step("do = \"teleport\"\n").is_err());
        assert!(step("do = \"api\"\nexpect = { stauts = 200 }\n").is_err());
    }

    #[test]
    fn well_typed_steps_load() {
        let s = step("name = \"r\"\ndo = \"sample\"\nof = { do = \"challenge\", attempt_token = \"{{otp.attempt_token}}\" }\ncount = \"{{target.rate_burst}}\"\nexpect = { unique = true }\n")
            .expect("sample");
        assert!(matches!(
            s.action,
            Action::Sample {
                count: Some(Count::Reference(_)),
                ..
            }
        ));
        let s = step("do = \"jwks-fault\"\nfault = \"slow:250\"\n").expect("fault");
        assert!(matches!(
            s.action,
            Action::JwksFault {
                fault: Fault(JwksFault::Slow(250))
            }
        ));
        let s =
            step("do = \"register-id-jag\"\ntoken = { by = \"second\", set = { aud = \"x\" }, tamper = \"alg-none\" }\n").expect("token");
        assert_eq!(s.action.name(), "register-id-jag");
        assert_eq!(s.action.params()["token"]["by"], "second");
    }

    #[test]
    fn the_vocabulary_names_every_action() {
        let text = vocabulary_markdown();
        for name in ["http", "register-id-jag", "sample", "jwks-max-age", "no-mail"] {
            assert!(text.contains(&format!("### `{name}`")), "{name} missing");
        }
        assert!(text.contains("| `same_set` |"), "expectations missing");
    }
}
