//! Who is calling. Authentication (local tokens, Zitadel) produces a `Principal`; the core
//! and the tools only ever see this type.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// Stable subject id (token `sub`, or the local user for stdio).
    pub sub: String,
    /// Display name.
    pub name: String,
    /// Roles/permissions granted to the principal.
    pub roles: Vec<String>,
    /// Organisation id (Zitadel: the user's resource owner, else the org of its roles); "" when unknown.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub org: String,
}

impl Principal {
    pub fn new(sub: impl Into<String>, name: impl Into<String>, roles: Vec<String>) -> Self {
        Self {
            sub: sub.into(),
            name: name.into(),
            roles,
            org: String::new(),
        }
    }

    pub fn with_org(mut self, org: impl Into<String>) -> Self {
        self.org = org.into();
        self
    }

    /// The caller of an unauthenticated loopback surface (until authentication lands).
    pub fn local(sub: &str) -> Self {
        Self::new(sub, sub, vec!["toolgate.caller".to_string()])
    }
}
