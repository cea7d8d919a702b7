//! Digest authentication for 401 and 407 challenges. Placeholder interface
//! until the digest implementation lands: every challenge is refused.

/// A trunk's username and password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("digest authentication is not available")]
pub struct DigestError;

impl Challenge {
    pub fn parse(_value: &str) -> Result<Challenge, DigestError> {
        Err(DigestError)
    }

    pub fn answer(
        &self,
        _credentials: &Credentials,
        _method: &str,
        _uri: &str,
        _cnonce: &str,
        _nonce_count: u32,
    ) -> Result<String, DigestError> {
        Err(DigestError)
    }
}
