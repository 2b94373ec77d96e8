//! The wire error vocabulary of auth.md v0.1 (catalogue §B) and its one mapping to HTTP.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Every error the service puts on the wire. Variant names are the §B codes.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum ApiError {
    /// Malformed body, unknown `type`, missing members, bad `typ`.
    InvalidRequest(String),
    /// Signature, key or algorithm failure; JWKS unavailable.
    InvalidSignature(String),
    /// A `jti` already used.
    ReplayDetected,
    /// `aud` is not this service.
    InvalidAudience,
    /// The ID-JAG's `exp` passed.
    Expired,
    /// `iss` is not on the trust list.
    InvalidIssuer,
    /// `client_id` does not resolve to a known provider identity.
    InvalidClientId,
    /// Neither `email_verified` nor `phone_number_verified` is `true`.
    MissingVerifiedEmail,
    /// The provider's authentication context (`amr`) is below the trust entry's policy (RFC 9470).
    InsufficientUserAuthentication,
    /// The requested credential type is not offered for this method.
    UnsupportedCredentialType,
    /// Anonymous registration is off.
    AnonymousNotEnabled,
    /// Verified-email registration is off.
    VerifiedEmailNotEnabled,
    /// `service_auth` registration is off (v0.6).
    ServiceAuthNotEnabled,
    /// A `login_hint` that is no recognizable identifier (v0.6).
    InvalidLoginHint,
    /// ID-JAG registration is off (the catalogue has no code; `issuer_not_enabled` fits best).
    IssuerNotEnabled,
    /// Over a rate limit; the value is the `Retry-After` in seconds.
    RateLimited(u64),
    /// Unknown `claim_token`.
    InvalidClaimToken,
    /// `/claim` on a claimed or email-verification registration.
    ClaimedOrInFlight,
    /// Registration or attempt window expired.
    ClaimExpired,
    /// Unknown or superseded `claim_attempt_token`.
    ClaimSuperseded,
    /// Challenge after the registration was claimed.
    ClaimCompleted,
    /// Wrong OTP.
    OtpInvalid,
    /// OTP past its lifetime.
    OtpExpired,
    /// `/complete` before any OTP was minted.
    OtpNotGenerated,
    /// `/complete` on a claimed registration.
    PreviouslyClaimed,
    /// Protected API: missing, unknown, expired or revoked credential. `presented` says whether
    /// a token came with the request (then the challenge carries `error="invalid_token"`).
    Unauthorized {
        /// A token was presented.
        presented: bool,
    },
    /// Protected API: the credential lacks this scope.
    InsufficientScope(&'static str),
    /// The production dialect's `/complete` before the user confirmed on the page.
    ClaimNotConfirmed,
    /// The production dialect's `/complete` with a code that is not the revealed one.
    InvalidUserCode,
    /// The production dialect's `/complete` after the attempt's code window closed.
    UserCodeExpired,
    /// A refresh token that is unknown, spent or expired (the production dialect).
    InvalidRefreshToken,
    /// The JWKS could not be fetched and the `map-jwks-failure-to-5xx` defect is on.
    BadGateway,
    /// Something broke inside; details are logged, never sent.
    Internal(String),
}

impl ApiError {
    /// The wire code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidSignature(_) => "invalid_signature",
            Self::ReplayDetected => "replay_detected",
            Self::InvalidAudience => "invalid_audience",
            Self::Expired => "expired",
            Self::InvalidIssuer => "invalid_issuer",
            Self::InvalidClientId => "invalid_client_id",
            Self::MissingVerifiedEmail => "missing_verified_email",
            Self::InsufficientUserAuthentication => "insufficient_user_authentication",
            Self::UnsupportedCredentialType => "unsupported_credential_type",
            Self::AnonymousNotEnabled => "anonymous_not_enabled",
            Self::ServiceAuthNotEnabled => "service_auth_not_enabled",
            Self::InvalidLoginHint => "invalid_login_hint",
            Self::VerifiedEmailNotEnabled => "verified_email_not_enabled",
            Self::IssuerNotEnabled => "issuer_not_enabled",
            Self::RateLimited(_) => "rate_limited",
            Self::InvalidClaimToken => "invalid_claim_token",
            Self::ClaimedOrInFlight => "claimed_or_in_flight",
            Self::ClaimExpired => "claim_expired",
            Self::ClaimSuperseded => "claim_superseded",
            Self::ClaimCompleted => "claim_completed",
            Self::OtpInvalid => "otp_invalid",
            Self::OtpExpired => "otp_expired",
            Self::OtpNotGenerated => "otp_not_generated",
            Self::PreviouslyClaimed => "previously_claimed",
            Self::Unauthorized { .. } => "unauthorized",
            Self::InsufficientScope(_) => "insufficient_scope",
            Self::ClaimNotConfirmed => "claim_not_confirmed",
            Self::InvalidUserCode => "invalid_user_code",
            Self::UserCodeExpired => "user_code_expired",
            Self::InvalidRefreshToken => "invalid_refresh_token",
            Self::BadGateway => "jwks_unavailable",
            Self::Internal(_) => "internal_error",
        }
    }

    /// The wire code in the configured synonym set (catalogue §B.6).
    pub fn code_in(&self, names: crate::config::ErrorNames) -> &'static str {
        match (names, self) {
            (crate::config::ErrorNames::AuthMd, Self::InvalidAudience) => "audience_mismatch",
            (crate::config::ErrorNames::AuthMd, Self::Expired) => "credential_expired",
            (crate::config::ErrorNames::AuthMd, Self::InvalidIssuer) => "issuer_not_enabled",
            (crate::config::ErrorNames::Production, Self::AnonymousNotEnabled) => "anonymous_registration_disabled",
            (crate::config::ErrorNames::Production, Self::ServiceAuthNotEnabled) => "service_auth_registration_disabled",
            (crate::config::ErrorNames::Production, Self::RateLimited(_)) => "rate_limit_exceeded",
            (crate::config::ErrorNames::Production, Self::ClaimedOrInFlight | Self::ClaimCompleted | Self::PreviouslyClaimed) => {
                "already_claimed"
            }
            _ => self.code(),
        }
    }

    /// The HTTP status (catalogue §B; 400 where the documents are silent, C-05).
    pub fn status(&self) -> StatusCode {
        match self {
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::InvalidClaimToken | Self::OtpInvalid | Self::InvalidUserCode | Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::AnonymousNotEnabled
            | Self::VerifiedEmailNotEnabled
            | Self::ServiceAuthNotEnabled
            | Self::IssuerNotEnabled
            | Self::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Self::ClaimedOrInFlight | Self::ClaimCompleted | Self::PreviouslyClaimed | Self::ClaimNotConfirmed => StatusCode::CONFLICT,
            Self::ClaimExpired | Self::ClaimSuperseded | Self::OtpExpired | Self::UserCodeExpired => StatusCode::GONE,
            Self::BadGateway => StatusCode::BAD_GATEWAY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn message(&self) -> String {
        match self {
            Self::InvalidRequest(m) | Self::InvalidSignature(m) => m.clone(),
            Self::ReplayDetected => "this jti was seen before".into(),
            Self::InvalidAudience => "aud does not name this service".into(),
            Self::Expired => "the assertion has expired".into(),
            Self::InvalidIssuer => "the issuer is not on the trust list".into(),
            Self::InvalidClientId => "client_id does not resolve to a known provider identity".into(),
            Self::MissingVerifiedEmail => "the assertion carries no verified email or phone number".into(),
            Self::InsufficientUserAuthentication => "the user's authentication does not meet this provider's policy".into(),
            Self::UnsupportedCredentialType => "that credential type is not offered for this registration type".into(),
            Self::AnonymousNotEnabled => "anonymous registration is not enabled".into(),
            Self::VerifiedEmailNotEnabled => "verified-email registration is not enabled".into(),
            Self::ServiceAuthNotEnabled => "service_auth registration is not enabled".into(),
            Self::InvalidLoginHint => "login_hint is not an email address".into(),
            Self::IssuerNotEnabled => "identity-assertion registration is not enabled".into(),
            Self::RateLimited(_) => "too many requests; retry later".into(),
            Self::InvalidClaimToken => "the claim token is invalid".into(),
            Self::ClaimedOrInFlight => "this registration is already claimed or needs no explicit claim".into(),
            Self::ClaimExpired => "the registration or claim window has expired".into(),
            Self::ClaimSuperseded => "the claim attempt token is invalid or has been superseded".into(),
            Self::ClaimCompleted => "this registration has already been claimed".into(),
            Self::OtpInvalid => "the OTP does not match the claim attempt".into(),
            Self::OtpExpired => "the OTP has expired".into(),
            Self::OtpNotGenerated => "no OTP has been generated for this claim; open the email link first".into(),
            Self::PreviouslyClaimed => "this registration has already been claimed".into(),
            Self::Unauthorized { .. } => "missing, invalid, expired or revoked credential".into(),
            Self::InsufficientScope(s) => format!("this operation needs the `{s}` scope"),
            Self::ClaimNotConfirmed => "the user has not confirmed on the claim page yet; wait and retry".into(),
            Self::InvalidUserCode => "that is not the code the claim page revealed".into(),
            Self::UserCodeExpired => "the code's window closed; start a fresh attempt".into(),
            Self::InvalidRefreshToken => "the refresh token is unknown, expired or already used".into(),
            Self::BadGateway => "the issuer's JWKS could not be fetched".into(),
            Self::Internal(_) => "an unexpected error occurred".into(),
        }
    }
}

/// A response for `error` with the `WWW-Authenticate` challenge where one is owed.
/// `resource_metadata` is the PRM URL; `challenge` is false only under the `omit-challenge` defect.
pub fn respond(
    error: &ApiError,
    names: crate::config::ErrorNames,
    resource_metadata: &str,
    challenge: bool,
    invalid_token_param: bool,
) -> Response {
    if let ApiError::Internal(detail) = error {
        tracing::error!(%detail, "internal error");
    }
    // The production dialect's bodies are OAuth-shaped (`error_description`) and carry the
    // `retry_after` the text tells agents to honour.
    let body = match (names, error) {
        (crate::config::ErrorNames::Production, ApiError::RateLimited(after)) => {
            json!({ "error": error.code_in(names), "error_description": error.message(), "retry_after": after })
        }
        (crate::config::ErrorNames::Production, _) => json!({ "error": error.code_in(names), "error_description": error.message() }),
        _ => json!({ "error": error.code_in(names), "message": error.message() }),
    };
    let mut response = (error.status(), Json(body)).into_response();
    let headers = response.headers_mut();
    // DISC-04: every 401 carries a challenge (RFC 9110 §15.5.2), not only the API's.
    let value = match error {
        ApiError::Unauthorized { presented: true } if invalid_token_param => {
            Some(format!(r#"Bearer error="invalid_token", resource_metadata="{resource_metadata}""#))
        }
        ApiError::InsufficientScope(scope) => Some(format!(
            r#"Bearer error="insufficient_scope", scope="{scope}", resource_metadata="{resource_metadata}""#
        )),
        _ if error.status() == StatusCode::UNAUTHORIZED => Some(format!(r#"Bearer resource_metadata="{resource_metadata}""#)),
        _ => None,
    };
    if let Some(value) = value.filter(|_| challenge)
        && let Ok(value) = HeaderValue::from_str(&value)
    {
        headers.insert(header::WWW_AUTHENTICATE, value);
    }
    if let ApiError::RateLimited(after) = error {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(*after));
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
