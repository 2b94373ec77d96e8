//! Deliberate bugs that prove each conformance case can fail.
//!
//! Each variant breaks one requirement and is checked where the behaviour lives, never in a
//! central switch. Ids are the kebab-case variant names; variants are alphabetical.

use std::fmt;
use std::str::FromStr;

macro_rules! defects {
    ($($(#[doc = $doc:literal])* $variant:ident = $id:literal,)*) => {
        /// One deliberate bug of the reference server.
        #[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
        pub enum Defect {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Defect {
            /// Every defect, in id order.
            pub const ALL: &'static [Defect] = &[$(Defect::$variant,)*];

            /// The kebab-case id used on the command line and in case files.
            pub fn id(self) -> &'static str {
                match self {
                    $(Defect::$variant => $id,)*
                }
            }

            /// The one-line description, starting with the requirement it breaks.
            pub fn describe(self) -> &'static str {
                match self {
                    $(Defect::$variant => concat!($($doc),*).trim_ascii(),)*
                }
            }
        }
    };
}

defects! {
    /// IDJAG-07: accepts `alg: none` tokens without a signature.
    AcceptAlgNone = "accept-alg-none",
    /// REG-EMAIL-03: accepts a verified_email assertion that is not an address.
    AcceptAnyEmail = "accept-any-email",
    /// API-05: accepts a credential under any authorization scheme, `Basic` included.
    AcceptAnyScheme = "accept-any-scheme",
    /// IDJAG-19: accepts an `aud` array with members besides the expected audience.
    AcceptAudienceArrayWithExtras = "accept-audience-array-with-extras",
    /// API-03, CRED-04: keeps honouring access tokens after `credential_expires`.
    AcceptExpiredAccessToken = "accept-expired-access-token",
    /// IDJAG-20: accepts ID-JAGs whose `exp` is in the past.
    AcceptExpiredIdJag = "accept-expired-id-jag",
    /// REVOKE-13: accepts logout tokens whose `exp` is in the past.
    AcceptExpiredLogout = "accept-expired-logout",
    /// REVOKE-15: accepts logout tokens sent as a BCL form POST or with another content type.
    AcceptFormLogout = "accept-form-logout",
    /// IDJAG-23: accepts an `iat` far in the future.
    AcceptFutureIat = "accept-future-iat",
    /// REVOKE-14: accepts a logout token without `iat`.
    AcceptLogoutWithoutIat = "accept-logout-without-iat",
    /// REVOKE-14: accepts logout tokens with an `iat` far in the future.
    AcceptFutureLogoutIat = "accept-future-logout-iat",
    /// IDJAG-26: accepts an `nbf` in the future.
    AcceptFutureNbf = "accept-future-nbf",
    /// IDJAG-08: verifies `HS256` tokens with the issuer's public key (PEM) as the HMAC secret.
    AcceptHs256PublicKey = "accept-hs256-public-key",
    /// REVOKE-09: accepts logout tokens that carry a `nonce`.
    AcceptLogoutWithNonce = "accept-logout-with-nonce",
    /// REVOKE-08: accepts logout tokens without the revocation event.
    AcceptLogoutWithoutEvents = "accept-logout-without-events",
    /// REVOKE-12: accepts logout tokens without `jti`.
    AcceptLogoutWithoutJti = "accept-logout-without-jti",
    /// REVOKE-10: accepts logout tokens without `sub`.
    AcceptLogoutWithoutSub = "accept-logout-without-sub",
    /// IDJAG-35: accepts ID-JAGs without `client_id`.
    AcceptMissingClientId = "accept-missing-client-id",
    /// IDJAG-22: accepts ID-JAGs without `exp`.
    AcceptMissingExp = "accept-missing-exp",
    /// IDJAG-25: accepts ID-JAGs without `iat`.
    AcceptMissingIat = "accept-missing-iat",
    /// IDJAG-27: accepts ID-JAGs without `jti`.
    AcceptMissingJti = "accept-missing-jti",
    /// IDJAG-31: accepts ID-JAGs without `sub`.
    AcceptMissingSub = "accept-missing-sub",
    /// REG-GEN-04: parses registration bodies whatever their content type.
    AcceptNonJsonContentType = "accept-non-json-content-type",
    /// API-07: accepts a bearer token in the `access_token` query parameter.
    AcceptQueryToken = "accept-query-token",
    /// IDJAG-34: treats the string `"true"` as a verified email.
    AcceptStringEmailVerified = "accept-string-email-verified",
    /// IDJAG-36: accepts any `client_id`, resolvable or not.
    AcceptUnknownClientId = "accept-unknown-client-id",
    /// IDJAG-05: verifies a token whose `kid` is unknown with the issuer's first key.
    AcceptUnknownKid = "accept-unknown-kid",
    /// REVOKE-07: accepts logout tokens addressed to another audience.
    AcceptWrongLogoutAudience = "accept-wrong-logout-audience",
    /// DISC-15: lists `refresh_token` among the identity credential types.
    AdvertiseRefreshTokenType = "advertise-refresh-token-type",
    /// IDJAG-09: verifies with the key's own algorithm and ignores a header `alg` that disagrees.
    AlgFromKey = "alg-from-key",
    /// REG-ANON-07: registers anonymous agents although anonymous registration is not offered.
    AnonymousWhenDisabled = "anonymous-when-disabled",
    /// IDJAG-18: accepts only the PRM resource as `aud`, whatever reading it is configured to follow.
    AudienceResourceOnly = "audience-resource-only",
    /// SEC-02: claim attempt tokens (the mailed link's) carry 48 random bits instead of 192.
    WeakAttemptToken = "weak-attempt-token",
    /// CLAIM-19: compares only as many characters as the OTP has, so `1234567` passes for
    /// `123456`.
    OtpPrefixCompare = "otp-prefix-compare",
    /// API-02: percent-decodes the bearer credential before looking it up, so `%73k_…` is
    /// taken for `sk_…`.
    PercentDecodedCredentials = "percent-decoded-credentials",
    /// CLAIM-07, CLAIM-23, V6-CLAIM-06: trims white space around `claim_token` before looking
    /// it up.
    TrimmedClaimToken = "trimmed-claim-token",
    /// DISC-14, V6-DISC-03: `agent_auth.skill` and the revocation endpoint are relative paths.
    RelativeMetadataUris = "relative-metadata-uris",
    /// MATCH-07: a completed claim creates a new user even when a verified account owns the
    /// claim email, instead of linking the registration to it.
    ClaimCreatesNewUser = "claim-creates-new-user",
    /// IDJAG-28: the replay cache forgets an issuer's `jti`s whenever its JWKS is fetched
    /// again (a cache keyed to the key set), so a token replayed after a rotation passes.
    ReplayCacheClearedOnRefetch = "replay-cache-cleared-on-refetch",
    /// IDJAG-12: compares `typ` by substring, so `xoauth-id-jag+jwt` and the like pass.
    TypSubstringMatch = "typ-substring-match",
    /// IDJAG-16: normalises `aud` before comparing it (case, surrounding space, a trailing
    /// slash, percent-encoding), where RFC 7519 §2 compares strings exactly.
    NormalisingAudience = "normalising-audience",
    /// IDJAG-15, REVOKE-05, V6-IDJAG-06, V6-SET-02: looks the `iss` up on the trust list
    /// [`close_enough`], so a case flip, a trailing slash or a stray space finds the issuer.
    NormalisingIssuer = "normalising-issuer",
    /// CRED-06: credentials issued for an ID-JAG carry 48 random bits instead of 192.
    WeakIdJagCredential = "weak-id-jag-credential",
    /// SEC-02: email-verification claim tokens carry 48 random bits instead of 192.
    WeakEmailClaimToken = "weak-email-claim-token",
    /// V6-REG-07: registration ids are numbered in order (`reg_000000000042`).
    V06SequentialRegistrationId = "v06-sequential-registration-id",
    /// IDJAG-01: compares `nbf` with now minus the skew allowance, so a token valid since
    /// half a minute ago is refused.
    NbfSkewInverted = "nbf-skew-inverted",
    /// REVOKE-01: compares a logout token's `exp` with now plus the skew allowance, so a token
    /// that expires in half a minute is refused.
    LogoutExpSkewInverted = "logout-exp-skew-inverted",
    /// SEC-08: every claim mail is also served at `/mail/<registration_id>.html` to anyone
    /// (the v0.1 sample's outbox, without credentials).
    PublicMailOutbox = "public-mail-outbox",
    /// DISC-08: the PRM names the origin as `resource`, though the challenge's
    /// `resource_metadata` is the PRM URL of `<origin>/api`.
    PrmResourceIsOrigin = "prm-resource-is-origin",
    /// IDJAG-36: matches `client_id` against the pinned list [`close_enough`], and folds a
    /// URL-form one to lower case before resolving it.
    NormalisingClientId = "normalising-client-id",
    /// IDJAG-40: takes any `assertion_type` [`close_enough`] to a supported one for it.
    LenientAssertionType = "lenient-assertion-type",
    /// REG-GEN-02, V6-REG-04: dispatches on a `type` [`close_enough`] to a known one.
    LenientRegistrationType = "lenient-registration-type",
    /// REG-ANON-05, REG-EMAIL-05, IDJAG-38: takes a `requested_credential_type`
    /// [`close_enough`] to a supported one for it.
    LenientCredentialType = "lenient-credential-type",
    /// CLAIM-13: trims and percent-decodes `claim_attempt_token` before looking it up (the token
    /// came in a URL, after all).
    LenientAttemptToken = "lenient-attempt-token",
    /// MATCH-02: links by verified email byte for byte, so `A@Example.com` is not
    /// `a@example.com`.
    CaseSensitiveEmailMatch = "case-sensitive-email-match",
    /// REVOKE-08: takes any `events` member [`close_enough`] to the revocation event's URI.
    LenientEventUri = "lenient-event-uri",
    /// V6-CLAIM-08: takes a re-initiating email that starts with the registration's own
    /// (`alice@example.comx`) for it.
    V06ServiceAuthEmailPrefix = "v06-service-auth-email-prefix",
    /// V6-TOKEN-07: takes any `grant_type` [`close_enough`] to a supported one for it.
    V06LenientGrantType = "v06-lenient-grant-type",
    /// V6-TOKEN-12: takes any `resource` that starts with the API's own for it.
    V06ResourcePrefixMatch = "v06-resource-prefix-match",
    /// V6-CLAIM-10: the confirm page compares the first six digits of what was typed, so
    /// `x123456` and `1234567` pass for `123456`.
    V06LenientUserCode = "v06-lenient-user-code",
    /// IDJAG-18, V6-IDJAG-08: accepts only the authorization server's issuer as `aud`, never
    /// the PRM `resource` (C-01 and C-V6-01 reading B only).
    AudienceAsIssuerOnly = "audience-as-issuer-only",
    /// REG-ANON-11: creates a user for an anonymous registration at once, before any claim.
    BindAnonymousToUser = "bind-anonymous-to-user",
    /// IDJAG-46: records the `jti` of a token rejected for missing verified email.
    BurnJtiOfRejectedTokens = "burn-jti-of-rejected-tokens",
    /// API-06: matches the `Bearer` scheme name case-sensitively.
    CaseSensitiveScheme = "case-sensitive-scheme",
    /// REG-EMAIL-07: lets `/claim` start a second ceremony for an email-verification registration.
    ClaimEmailRegistrations = "claim-email-registrations",
    /// CLAIM-24: completes a claim whose attempt has no OTP minted yet, whatever code is sent.
    CompleteWithoutOtp = "complete-without-otp",
    /// REG-GEN-03: answers malformed JSON with 500.
    CrashOnMalformedJson = "crash-on-malformed-json",
    /// IDJAG-39: answers an assertion that is not a compact JWS with JSON segments with a 500.
    CrashOnMalformedToken = "crash-on-malformed-token",
    /// IDJAG-10: answers an ID-JAG without `kid` with a 500.
    CrashOnMissingKid = "crash-on-missing-kid",
    /// REG-ANON-06: defaults a missing `requested_credential_type` to `api_key`.
    DefaultCredentialType = "default-credential-type",
    /// REG-EMAIL-08: tells a verified-email registration whether the address already has an account.
    DiscloseExistingAccount = "disclose-existing-account",
    /// EXP-03: says an email-verification claim lives for the registration TTL while the emailed link dies with its attempt.
    EmailClaimWindowOverstated = "email-claim-window-overstated",
    /// EXP-02: expires anonymous registrations at their TTL even after they were claimed.
    ExpireClaimedRegistrations = "expire-claimed-registrations",
    /// CLAIM-28: echoes the OTP in agent-facing claim responses.
    ExposeOtpInClaimResponse = "expose-otp-in-claim-response",
    /// IDJAG-04: fetches the verification key from the token's `jku` header (RFC 8725 §3.10).
    FollowJku = "follow-jku",
    /// CLAIM-08, CLAIM-21: does not check whether a registration was already claimed.
    ForgetClaimedStatus = "forget-claimed-status",
    /// REG-ANON-10: gives unclaimed anonymous keys the post-claim scopes.
    FullScopesBeforeClaim = "full-scopes-before-claim",
    /// IDJAG-45: accepts ID-JAGs whose amr falls short of the trust entry's required_amr.
    IgnoreAmrPolicy = "ignore-amr-policy",
    /// IDJAG-12: ignores a `crit` header naming an unknown extension (RFC 7515 §4.1.11).
    IgnoreCrit = "ignore-crit",
    /// REVOKE-02: answers logout tokens with 200 but revokes nothing.
    IgnoreLogoutTokens = "ignore-logout-tokens",
    /// CLAIM-20: completes claims with an OTP past its lifetime.
    IgnoreOtpExpiry = "ignore-otp-expiry",
    /// REG-EMAIL-01: issues a credential at verified-email registration, before the claim.
    IssueCredentialBeforeEmailClaim = "issue-credential-before-email-claim",
    /// CLAIM-17: keeps the pre-claim scopes on an anonymous key after the claim.
    KeepPreClaimScopes = "keep-pre-claim-scopes",
    /// CLAIM-12: keeps the previous OTP valid when a new one is minted.
    KeepPreviousOtp = "keep-previous-otp",
    /// IDJAG-44: caches every JWKS for the floor, whatever its `Cache-Control` says.
    IgnoreJwksCacheControl = "ignore-jwks-cache-control",
    /// IDJAG-32: a phone number counts as verified whether or not `phone_number_verified` is.
    PhonePresenceCountsAsVerified = "phone-presence-counts-as-verified",
    /// IDJAG-30: the replay cache forgets a `jti` at `exp`, though the token is accepted up to
    /// `exp` plus the clock skew.
    ReplayWindowWithoutSkew = "replay-window-without-skew",
    /// V6-TOKEN-05: token-endpoint answers lack `Cache-Control: no-store` (v0.6).
    V06TokenCacheable = "v06-token-cacheable",
    /// V6-DISC-03: the AS metadata omits `token_endpoint` (v0.6).
    V06OmitTokenEndpoint = "v06-omit-token-endpoint",
    /// V6-REG-02: anonymous registration returns no `identity_assertion` (v0.6).
    V06RegistrationWithoutAssertion = "v06-registration-without-assertion",
    /// V6-TOKEN-07: an unknown `grant_type` is `invalid_request`, not `unsupported_grant_type` (v0.6).
    V06UnsupportedGrantAsInvalidRequest = "v06-unsupported-grant-as-invalid-request",
    /// V6-TOKEN-04: the token endpoint mints for any well-formed JWT, signed or not (v0.6).
    V06AcceptAnyAssertion = "v06-accept-any-assertion",
    /// V6-REVOKE-01: RFC 7009 revocation answers 200 and revokes nothing (v0.6).
    V06RevokeIgnored = "v06-revoke-ignored",
    /// V6-REVOKE-02: revoking an unknown token is 400 instead of 200 (v0.6).
    V06RevokeUnknown400 = "v06-revoke-unknown-400",
    /// V6-REG-04: an unknown registration `type` is handled as anonymous (v0.6).
    V06UnknownTypeAsAnonymous = "v06-unknown-type-as-anonymous",
    /// V6-TOKEN-02: an identity assertion mints one access token only (v0.6).
    V06SingleUseAssertion = "v06-single-use-assertion",
    /// V6-TOKEN-08: the token endpoint reads any content type as a form (v0.6).
    V06TokenIgnoresContentType = "v06-token-ignores-content-type",
    /// V6-API-03: access tokens of an unclaimed anonymous registration carry the post-claim scopes (v0.6).
    V06FullScopesBeforeClaim = "v06-full-scopes-before-claim",
    /// V6-TOKEN-09: polling faster than `interval` is never answered `slow_down` (v0.6).
    V06NoSlowDown = "v06-no-slow-down",
    /// V6-CLAIM-03: any signed-in account completes the ceremony, not only the one named (v0.6).
    V06AnyAccountCompletes = "v06-any-account-completes",
    /// V6-TOKEN-11: completing an anonymous claim leaves the pre-claim access tokens working (v0.6).
    V06KeepPreClaimTokens = "v06-keep-pre-claim-tokens",
    /// V6-TOKEN-11: the pre-claim identity assertion still mints after the claim (v0.6).
    V06V1AssertionAfterClaim = "v06-v1-assertion-after-claim",
    /// V6-CLAIM-02: the `user_code` has four digits, not six (v0.6).
    V06ShortUserCode = "v06-short-user-code",
    /// V6-SA-02: any `login_hint` is accepted, email or not (v0.6).
    V06AnyLoginHint = "v06-any-login-hint",
    /// V6-IDJAG-02: an ID-JAG without `auth_time` is accepted (v0.6).
    V06AuthTimeOptional = "v06-auth-time-optional",
    /// V6-IDJAG-03: `auth_time` is never checked for age (v0.6).
    V06IgnoreAuthTimeAge = "v06-ignore-auth-time-age",
    /// V6-IDJAG-04: an ID-JAG matching an existing account by email is linked without the user (v0.6).
    V06SilentLink = "v06-silent-link",
    /// V6-SET-05: a revocation SET is answered 202 and changes nothing (v0.6).
    V06SetIgnored = "v06-set-ignored",
    /// V6-SET-06: the teardown leaves the registration's claim token working (v0.6).
    V06TeardownKeepsClaim = "v06-teardown-keeps-claim",
    /// V6-SET-03: a SET naming an unknown event besides the revocation one is refused (v0.6).
    V06RefuseUnknownEvents = "v06-refuse-unknown-events",
    /// V6-DISC-07: the metadata still lists the removed `verified_email` assertion type (v0.6).
    V06AdvertiseVerifiedEmail = "v06-advertise-verified-email",
    /// V6-REVOKE-04: RFC 7009 revocation without `token` answers 200 (v0.6).
    V06RevokeWithoutToken200 = "v06-revoke-without-token-200",
    /// V6-CLAIM-06: an unknown claim token is `invalid_request`, not `invalid_claim_token` (v0.6).
    V06UnknownClaimTokenInvalidRequest = "v06-unknown-claim-token-invalid-request",
    /// V6-CLAIM-04: a ceremony past its `user_code` window is never answered `expired_token` (v0.6).
    V06AttemptNeverExpires = "v06-attempt-never-expires",
    /// V6-CLAIM-05: the claim endpoint starts ceremonies on an expired registration (v0.6).
    V06RegistrationNeverExpires = "v06-registration-never-expires",
    /// V6-SA-04: the removed `verified_email` assertion type is still taken, as service_auth (v0.6).
    V06AcceptVerifiedEmail = "v06-accept-verified-email",
    /// V6-REG-05: anonymous registration works although the service turned it off (v0.6).
    V06AnonymousDespiteOff = "v06-anonymous-despite-off",
    /// V6-TOKEN-12: the token endpoint mints for any `resource`, not only this API's (v0.6).
    V06IgnoreResource = "v06-ignore-resource",
    /// V6-CLAIM-08: re-initiating a `service_auth` claim with another email starts a ceremony
    /// for that address, rebinding the registration (v0.6).
    V06RebindServiceAuthEmail = "v06-rebind-service-auth-email",
    /// V6-CLAIM-01: a claim attempt states `expires_at`/`expires_in` of the full attempt TTL
    /// but expires at half of it (v0.6).
    V06AttemptWindowOverstated = "v06-attempt-window-overstated",
    /// V6-CLAIM-09: claim attempt tokens carry 48 random bits instead of 192 (v0.6).
    V06WeakAttemptToken = "v06-weak-attempt-token",
    /// V6-ERR-01: a token request without `grant_type` is taken as the JWT-bearer grant (v0.6).
    V06MissingGrantTypeDefaults = "v06-missing-grant-type-defaults",
    /// V7-CLAIM-02: a claim body without `type` is taken as the `login_hint` shape (v0.7).
    V07UntypedClaimAccepted = "v07-untyped-claim-accepted",
    /// V7-CLAIM-06: an ID-JAG claims any unclaimed registration, not only an anonymous one (v0.7).
    V07IdJagClaimsAnyRegistration = "v07-id-jag-claims-any-registration",
    /// V7-CLAIM-07: an ID-JAG without a fresh `auth_time` claims a registration (v0.7).
    V07ClaimSkipsAuthTime = "v07-claim-skips-auth-time",
    /// V7-CLAIM-08: the same ID-JAG claims a second registration (no replay check, v0.7).
    V07ClaimSkipsReplay = "v07-claim-skips-replay",
    /// V7-CLAIM-05: an ID-JAG whose email is another account's claims without the user (v0.7).
    V07ClaimSilentLink = "v07-claim-silent-link",
    /// V7-CLAIM-09: a claim via ID-JAG leaves the pre-claim access tokens working (v0.7).
    V07ClaimKeepsPreClaimTokens = "v07-claim-keeps-pre-claim-tokens",
    /// V7-CLAIM-10: a claim via ID-JAG records no `(iss, sub)` delegation (v0.7).
    V07ClaimNoDelegation = "v07-claim-no-delegation",
    /// V7-CLAIM-04: the assertion a claim via ID-JAG answers with is a pre-claim one (v0.7).
    V07ClaimPreClaimAssertion = "v07-claim-pre-claim-assertion",
    /// V6-TOKEN-14: token-endpoint answers carry a `refresh_token` (v0.6 has none).
    V06TokenRefreshToken = "v06-token-refresh-token",
    /// V7P-REG-01, V7P-IDJAG-01: registrations answer v0.6's flat members, not the nested envelope.
    V07pFlatEnvelope = "v07p-flat-envelope",
    /// V7P-REG-03: the registration's claim attempt carries the `user_code` (production dialect).
    V07pAttemptRevealsCode = "v07p-attempt-reveals-code",
    /// V7P-REG-04: anonymous and ID-JAG registrations are answered with a refresh token.
    V07pRefreshWithoutClaim = "v07p-refresh-without-claim",
    /// V7P-CLAIM-03: the claim page shows the code when opened, before the user confirms.
    V07pRevealBeforeConfirm = "v07p-reveal-before-confirm",
    /// V7P-CLAIM-04: the claim page reveals the code to any signed-in account.
    V07pRevealToAnyAccount = "v07p-reveal-to-any-account",
    /// V7P-CLAIM-05: `/complete` before the user confirmed answers `invalid_user_code`.
    V07pUnconfirmedAsWrongCode = "v07p-unconfirmed-as-wrong-code",
    /// V7P-CLAIM-06: `/complete` takes any code once the user confirmed.
    V07pAnyCodeCompletes = "v07p-any-code-completes",
    /// V7P-CLAIM-07: `/complete` answers again for a claimed registration.
    V07pCompleteTwice = "v07p-complete-twice",
    /// V7P-CLAIM-08: the revealed code works after its attempt's window closed.
    V07pCodeNeverExpires = "v07p-code-never-expires",
    /// V7P-CLAIM-09: wrong codes are never counted, so guessing is unbounded.
    V07pUnboundedGuessing = "v07p-unbounded-guessing",
    /// V7P-CLAIM-02: the completed claim carries no refresh token.
    V07pCompleteWithoutRefreshToken = "v07p-complete-without-refresh-token",
    /// V7P-REF-02: a refresh answers the same refresh token instead of a new one.
    V07pRefreshNotRotated = "v07p-refresh-not-rotated",
    /// V7P-REF-03: a spent refresh token refreshes again.
    V07pRefreshReusable = "v07p-refresh-reusable",
    /// V7P-REF-05: the reuse of a spent refresh token leaves its rotated successor working.
    V07pReuseKeepsFamily = "v07p-reuse-keeps-family",
    /// V7P-REF-04: a refresh token works after its `expires_at`.
    V07pRefreshNeverExpires = "v07p-refresh-never-expires",
    /// V7P-REF-06: an unknown refresh token answers `invalid_request`, not `invalid_refresh_token`.
    V07pUnknownRefreshTokenInvalidRequest = "v07p-unknown-refresh-token-invalid-request",
    /// V7P-TOKEN-01: the token endpoint still takes v0.6's claim grant.
    V07pClaimGrantAccepted = "v07p-claim-grant-accepted",
    /// CLAIM-13: a challenge after the claim answers 410 `claim_expired`, neither reading of C-17.
    ClaimedAttemptReportedExpired = "claimed-attempt-reported-expired",
    /// AID-REC-01, AID-REC-03: the published endpoint is plain http.
    AidHttpEndpoint = "aid-http-endpoint",
    /// AID-REC-02: the service publishes two valid AID records at one name.
    AidTwoRecords = "aid-two-records",
    /// AID-REC-04: the record's `k` is a 33-byte EC point, not an Ed25519 key.
    AidKeyNotEd25519 = "aid-key-not-ed25519",
    /// AID-DNS-01: the record sits at the parent's `_agent` name only.
    AidParentOnly = "aid-parent-only",
    /// AID-DNS-02: the record's TTL is 5 s, below the recommended 300–900 s.
    AidShortTtl = "aid-short-ttl",
    /// AID-WK-01: `/.well-known/agent` names another endpoint than the DNS record.
    AidWellKnownMismatch = "aid-well-known-mismatch",
    /// AID-HAND-01: the record's endpoint answers 200 without a challenge (`/healthz`).
    AidEndpointNoChallenge = "aid-endpoint-no-challenge",
    /// IDJAG-29 across replicas: each instance keeps its own `jti` replay cache, so one ID-JAG
    /// succeeds once per replica.
    ReplayCachePerInstance = "replay-cache-per-instance",
    /// RATE-01 across replicas: each instance counts in its own memory even where the counters
    /// are shared, so a burst spread over the replicas meets no limit.
    RateBucketsPerInstance = "rate-buckets-per-instance",
    /// API-04 and CLAIM-17 across replicas: each instance trusts a credential it accepted, with
    /// its scopes, for two seconds, missing a revocation or a claim made through another replica.
    CredentialCachePerInstance = "credential-cache-per-instance",
    /// CLAIM-25 across replicas: each instance counts wrong OTPs in its own memory, so guesses
    /// spread over the replicas are bounded per replica, not in all.
    AttemptCounterPerInstance = "attempt-counter-per-instance",
    /// AID-REC-01: the record carries `desc` beside its alias `s`.
    AidKeyAndAlias = "aid-key-and-alias",
    /// AID-REC-06: the aid2 record carries `i=g1`, which makes it invalid.
    Aid2WithKid = "aid2-with-kid",
    /// AID-REC-07: the record's `p` is `OPENAPI`, not the registry's case-sensitive `openapi`.
    AidProtoUppercase = "aid-proto-uppercase",
    /// AID-REC-08: the record's `e` is a date (`2027-01-01`), not an ISO 8601 UTC timestamp.
    AidDepNotTimestamp = "aid-dep-not-timestamp",
    /// AID-PKA-08: the endpoint signs a domain binding for any `AID-Domain`, served or not.
    PkaBindsAnyDomain = "pka-binds-any-domain",
    /// AID-PKA-09: the aid1 handshake is answered with the resource's signed 401, not 200.
    Aid1Handshake401 = "aid1-handshake-401",
    /// AID-PKA-01: the endpoint ignores the proof request (no signature).
    PkaUnsigned = "pka-unsigned",
    /// AID-PKA-02: the signature covers only `@method` and `@target-uri`.
    PkaFewerComponents = "pka-fewer-components",
    /// AID-PKA-03: the proof's validity window lies an hour in the past.
    PkaStale = "pka-stale",
    /// AID-PKA-04: `keyid` is a name of the server's, not the key's RFC 7638 thumbprint.
    PkaKeyidNotThumbprint = "pka-keyid-not-thumbprint",
    /// AID-PKA-05: the proof is signed with a key the record does not publish.
    PkaWrongKey = "pka-wrong-key",
    /// AID-PKA-06: the proof carries a nonce of the server's own, not the client's challenge.
    PkaIgnoresNonce = "pka-ignores-nonce",
    /// AID-PKA-06: the first proof made is served again for every later challenge.
    PkaReplays = "pka-replays",
    /// AID-PKA-07: the signed response may be cached (no `Cache-Control: no-store`).
    PkaCacheable = "pka-cacheable",
    /// API-01: the `api.read` probe answers 200 to a request without any credential.
    OpenReadProbe = "open-read-probe",
    /// API-03: an access token issued when a verified-email claim completes never expires.
    ClaimAccessTokenNeverExpires = "claim-access-token-never-expires",
    /// CLAIM-13: a claim attempt's token still mints codes after the attempt's window closed.
    IgnoreAttemptWindow = "ignore-attempt-window",
    /// CLAIM-29: the claim page answers 200 with an empty body and no HTML.
    BlankClaimPage = "blank-claim-page",
    /// REVOKE-11: the `jti` of a logout token without `exp` is remembered only for the clock
    /// skew, so the same token revokes again a minute later.
    ForgetExplessLogoutJti = "forget-expless-logout-jti",
    /// IDJAG-37: a client metadata document is cached forever, so a withdrawn client keeps
    /// registering after the document's `Cache-Control` lifetime.
    CacheClientMetadataForever = "cache-client-metadata-forever",
    /// CLAIM-05: keeps OTPs of superseded claim attempts valid.
    KeepSupersededOtps = "keep-superseded-otps",
    /// CLAIM-05: the OTP of a superseded attempt keeps working until the new attempt mints its
    /// own (the bug an independent server had: only a new mint replaced the code).
    SupersededOtpUntilRemint = "superseded-otp-until-remint",
    /// MATCH-03: links accounts on an email that is not asserted as verified.
    LinkUnverifiedEmail = "link-unverified-email",
    /// IDJAG-42: answers 502 when the issuer's JWKS cannot be fetched.
    MapJwksFailureTo5xx = "map-jwks-failure-to-5xx",
    /// CLAIM-03: the plain GET of the claim link mints (and so rotates) the OTP.
    MintOtpOnView = "mint-otp-on-view",
    /// CLAIM-10: answers a claim without `claim_token` with 401 `invalid_claim_token` instead of 400 `invalid_request`.
    MissingClaimTokenUnauthorized = "missing-claim-token-unauthorized",
    /// EXP-01: never expires unclaimed anonymous registrations.
    NeverExpireAnonymous = "never-expire-anonymous",
    /// CLAIM-06: a repeated claim with the same email starts a new attempt and mails again.
    NewAttemptOnRepeatClaim = "new-attempt-on-repeat-claim",
    /// MATCH-01: creates a new user for every ID-JAG instead of matching `(iss, sub)`.
    NewUserPerAssertion = "new-user-per-assertion",
    /// IDJAG-21, IDJAG-24: allows no clock skew on `exp` and `iat`.
    NoClockSkew = "no-clock-skew",
    /// IDJAG-44: fetches the issuer's JWKS for every token.
    NoJwksCache = "no-jwks-cache",
    /// CLAIM-25: no bound on wrong OTP attempts.
    NoOtpAttemptLimit = "no-otp-attempt-limit",
    /// RATE-01: no rate limiting.
    NoRateLimit = "no-rate-limit",
    /// REVOKE-21: omits `Cache-Control: no-store` on revocation answers.
    NoRevokeCacheControl = "no-revoke-cache-control",
    /// DISC-11: omits `bearer_methods_supported` from the PRM.
    OmitBearerMethods = "omit-bearer-methods",
    /// REG-GEN-07: omits `Cache-Control: no-store` on responses carrying secrets.
    OmitCacheControl = "omit-cache-control",
    /// DISC-01, DISC-04: omits the `WWW-Authenticate` challenge on 401.
    OmitChallenge = "omit-challenge",
    /// DISC-16: omits `events_supported` although a revocation URI is advertised.
    OmitEventsSupported = "omit-events-supported",
    /// DISC-03: omits `error="invalid_token"` when a presented token is refused.
    OmitInvalidTokenError = "omit-invalid-token-error",
    /// DISC-20: omits `issuer` from the AS metadata.
    OmitIssuer = "omit-issuer",
    /// CLAIM-26: accepts an OTP minted for another registration.
    OtpNotBoundToRegistration = "otp-not-bound-to-registration",
    /// DISC-21: advertises its resource documentation at a plain-http, non-loopback URL.
    PlainHttpResourceDocumentation = "plain-http-resource-documentation",
    /// DISC-08: serves the PRM only at the host root, not at its `resource` path.
    PrmOnlyAtRoot = "prm-only-at-root",
    /// REVOKE-19: refuses new ID-JAGs for a subject whose credentials a logout token revoked.
    RefuseRevokedSubject = "refuse-revoked-subject",
    /// CLAIM-04: reports the registration id as `claim_attempt_id`.
    RegistrationIdAsAttemptId = "registration-id-as-attempt-id",
    /// CRED-09: gives every ID-JAG registration a new `registration_id`, even for the same (iss, sub, aud).
    RegistrationIdPerAssertion = "registration-id-per-assertion",
    /// IDJAG-33: refuses ID-JAGs whose only verified contact is a phone number.
    RejectPhoneOnly = "reject-phone-only",
    /// REG-GEN-06: refuses registration bodies with unknown members.
    RejectUnknownMembers = "reject-unknown-members",
    /// DISC-19: returns a relative `claim_url`.
    RelativeClaimUrl = "relative-claim-url",
    /// CRED-02: includes a `refresh_token` in ID-JAG registration responses.
    ReturnRefreshToken = "return-refresh-token",
    /// REVOKE-18: revokes only credentials whose ID-JAG `aud` was a plain string.
    RevokeOnlyStringAudience = "revoke-only-string-audience",
    /// REVOKE-22: a logout token revokes every credential of the matched user, anonymous and verified-email ones included.
    RevokeWholeUser = "revoke-whole-user",
    /// CLAIM-17: rotates the anonymous API key at claim instead of upgrading it in place.
    RotateKeyOnClaim = "rotate-key-on-claim",
    /// REG-EMAIL-02, CLAIM-02: sends no claim email.
    SendNoClaimEmail = "send-no-claim-email",
    /// REVOKE-20: keeps logout-token and ID-JAG `jti`s in one replay namespace.
    SharedJtiNamespace = "shared-jti-namespace",
    /// CLAIM-14: mints five-digit OTPs.
    ShortOtp = "short-otp",
    /// IDJAG-16: does not check `aud`.
    SkipAudienceCheck = "skip-audience-check",
    /// IDJAG-37: never fetches a URL-form client_id's metadata document, so a foreign jwks_uri goes unnoticed.
    SkipCimdResolution = "skip-cimd-resolution",
    /// MATCH-02: never links a new subject to an existing account by verified email.
    SkipEmailLinking = "skip-email-linking",
    /// IDJAG-06: never refetches the JWKS on an unknown `kid`.
    SkipKidRefetch = "skip-kid-refetch",
    /// REVOKE-11: accepts a replayed logout token.
    SkipLogoutReplayCheck = "skip-logout-replay-check",
    /// IDJAG-28, IDJAG-30: accepts a replayed `jti`.
    SkipReplayCheck = "skip-replay-check",
    /// IDJAG-03, IDJAG-04: does not check signatures.
    SkipSignatureCheck = "skip-signature-check",
    /// IDJAG-11, IDJAG-12, IDJAG-41: does not check the `typ` header.
    SkipTypCheck = "skip-typ-check",
    /// IDJAG-32: accepts ID-JAGs with neither a verified email nor phone.
    SkipVerifiedEmailCheck = "skip-verified-email-check",
    /// IDJAG-13: compares `typ` byte for byte, refusing valid media-type spellings.
    StrictTypComparison = "strict-typ-comparison",
    /// REG-GEN-02: registers an unknown `type` as anonymous.
    TreatUnknownTypeAsAnonymous = "treat-unknown-type-as-anonymous",
    /// CLAIM-31, CLAIM-19: trims whitespace from the OTP before comparing.
    TrimOtp = "trim-otp",
    /// IDJAG-14: accepts issuers that are not on the trust list.
    TrustUnknownIssuers = "trust-unknown-issuers",
    /// IDJAG-14, REVOKE-05: trusts any issuer and verifies with the JWKS at its own
    /// well-known path (so a live, untrusted IdP's tokens verify).
    TrustAnyIssuerJwks = "trust-any-issuer-jwks",
    /// IDJAG-04: on a kid miss, looks the kid up in every trusted issuer's keys (so a key of
    /// issuer A verifies a token claiming issuer B).
    KidLookupAcrossIssuers = "kid-lookup-across-issuers",
    /// MATCH-01: matches users by `sub` alone (the same `sub` at two issuers is one user).
    MatchBySubAlone = "match-by-sub-alone",
    /// REVOKE-03: a logout token revokes by `sub` and `aud` alone, whatever issuer sent it.
    RevokeBySubAlone = "revoke-by-sub-alone",
    /// IDJAG-40: answers an unknown `assertion_type` with `unsupported_credential_type`.
    UnknownAssertionTypeUnsupportedCredential = "unknown-assertion-type-unsupported-credential",
    /// REG-EMAIL-04: registers verified_email agents although verified_email is not offered.
    VerifiedEmailWhenDisabled = "verified-email-when-disabled",
    /// REG-ANON-08: mints claim tokens with 48 bits of entropy.
    WeakClaimToken = "weak-claim-token",
    /// CRED-10, REG-ANON-01: spells `registration_type` with underscores.
    WrongRegistrationType = "wrong-registration-type",
    /// REG-ANON-05, IDJAG-38: answers an unsupported credential type with `invalid_request`.
    WrongUnsupportedCredentialCode = "wrong-unsupported-credential-code",
}

pub use crate::defect_set::Defects;

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// An id that names no defect.
#[derive(Debug, thiserror::Error)]
#[error("unknown defect `{0}` (see --list-defects)")]
pub struct UnknownDefect(pub String);

impl FromStr for Defect {
    type Err = UnknownDefect;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|d| d.id() == s)
            .ok_or_else(|| UnknownDefect(s.to_string()))
    }
}

pub use crate::lenient::{close_enough, taken_for, trimmed_and_decoded};
