//! The `token_*` parameters every Vault auth method shares (Vault's `tokenutil`): what a
//! login's token gets, stored with the user or role and turned into a [`Login`].

use crate::cidr;
use coffer_sdk::logical::Login;
use coffer_sdk::Result;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Map, Value};
use std::time::Duration;

/// Token settings as stored with a user or role. Durations are whole seconds; zero means "the
/// mount's default" (Vault's meaning).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct TokenSettings {
    pub policies: Vec<String>,
    pub ttl_secs: u64,
    pub max_ttl_secs: u64,
    pub explicit_max_ttl_secs: u64,
    pub period_secs: u64,
    pub num_uses: i64,
    pub bound_cidrs: Vec<String>,
    pub no_default_policy: bool,
}

/// The token parameters of one write, each `None` when not supplied (an update keeps the
/// stored value). Built from the input structs declared with [`with_token_fields!`].
#[derive(Debug, Default)]
pub(crate) struct TokenFieldsInput {
    pub policies: Option<Vec<String>>,
    pub token_policies: Option<Vec<String>>,
    pub token_ttl: Option<Duration>,
    pub token_max_ttl: Option<Duration>,
    pub token_explicit_max_ttl: Option<Duration>,
    pub token_period: Option<Duration>,
    pub token_num_uses: Option<i64>,
    pub token_bound_cidrs: Option<Vec<String>>,
    pub token_no_default_policy: Option<bool>,
}

/// Declare a typed input struct that carries the shared `token_*` fields next to its own, so
/// the derived schema (and the unknown-field warning) knows all of them.
macro_rules! with_token_fields {
    (
        $(#[$attr:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$fattr:meta])* $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$attr])*
        $vis struct $name {
            $( $(#[$fattr])* $field: $ty, )*
            /// Deprecated alias of `token_policies`.
            #[serde(default, deserialize_with = "crate::token::opt_string_list")]
            policies: Option<Vec<String>>,
            /// Policies for tokens issued by this login.
            #[serde(default, deserialize_with = "crate::token::opt_string_list")]
            token_policies: Option<Vec<String>>,
            /// Initial TTL of issued tokens.
            #[serde(default, deserialize_with = "coffer_sdk::framework::de::opt_duration")]
            token_ttl: Option<std::time::Duration>,
            /// Maximum lifetime of issued tokens, renewals included.
            #[serde(default, deserialize_with = "coffer_sdk::framework::de::opt_duration")]
            token_max_ttl: Option<std::time::Duration>,
            /// Hard cap on the lifetime of issued tokens.
            #[serde(default, deserialize_with = "coffer_sdk::framework::de::opt_duration")]
            token_explicit_max_ttl: Option<std::time::Duration>,
            /// Make issued tokens periodic with this period.
            #[serde(default, deserialize_with = "coffer_sdk::framework::de::opt_duration")]
            token_period: Option<std::time::Duration>,
            /// How many requests an issued token may make (0 = unlimited).
            #[serde(default, deserialize_with = "coffer_sdk::framework::de::opt_i64")]
            token_num_uses: Option<i64>,
            /// CIDR blocks issued tokens may be used from.
            #[serde(default, deserialize_with = "crate::token::opt_string_list")]
            token_bound_cidrs: Option<Vec<String>>,
            /// Do not attach the `default` policy to issued tokens.
            #[serde(default, deserialize_with = "coffer_sdk::framework::de::opt_bool")]
            token_no_default_policy: Option<bool>,
        }

        impl $name {
            /// The shared token parameters of this write.
            fn token_fields(&mut self) -> crate::token::TokenFieldsInput {
                crate::token::TokenFieldsInput {
                    policies: self.policies.take(),
                    token_policies: self.token_policies.take(),
                    token_ttl: self.token_ttl,
                    token_max_ttl: self.token_max_ttl,
                    token_explicit_max_ttl: self.token_explicit_max_ttl,
                    token_period: self.token_period,
                    token_num_uses: self.token_num_uses,
                    token_bound_cidrs: self.token_bound_cidrs.take(),
                    token_no_default_policy: self.token_no_default_policy,
                }
            }
        }
    };
}
pub(crate) use with_token_fields;

/// `Option<Vec<String>>` from `["a","b"]` or `"a,b"`; `None` only when the field is absent,
/// so an explicit empty list clears the stored value.
pub(crate) fn opt_string_list<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<String>>, D::Error> {
    coffer_sdk::framework::de::string_list(d).map(Some)
}

/// Vault's policy-name normalisation: trimmed, lower-cased, de-duplicated, sorted, no empties.
pub(crate) fn normalise_policies(raw: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = raw
        .into_iter()
        .map(|p| p.trim().to_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

impl TokenFieldsInput {
    /// Apply the supplied fields to `settings`, validating before anything changes.
    /// `token_policies` wins over its deprecated alias `policies` when both are given.
    pub(crate) fn apply(self, settings: &mut TokenSettings) -> Result<()> {
        let bound_cidrs = match &self.token_bound_cidrs {
            Some(list) => Some(cidr::parse_list("token_bound_cidrs", list)?),
            None => None,
        };
        if let Some(n) = self.token_num_uses {
            if n < 0 {
                return Err(coffer_sdk::Error::bad("token_num_uses cannot be negative"));
            }
        }
        if let Some(policies) = self.token_policies.or(self.policies) {
            settings.policies = normalise_policies(policies);
        }
        let secs = |d: Duration| d.as_secs();
        if let Some(d) = self.token_ttl {
            settings.ttl_secs = secs(d);
        }
        if let Some(d) = self.token_max_ttl {
            settings.max_ttl_secs = secs(d);
        }
        if let Some(d) = self.token_explicit_max_ttl {
            settings.explicit_max_ttl_secs = secs(d);
        }
        if let Some(d) = self.token_period {
            settings.period_secs = secs(d);
        }
        if let Some(n) = self.token_num_uses {
            settings.num_uses = n;
        }
        if let Some(list) = bound_cidrs {
            settings.bound_cidrs = list;
        }
        if let Some(b) = self.token_no_default_policy {
            settings.no_default_policy = b;
        }
        if settings.max_ttl_secs > 0 && settings.ttl_secs > settings.max_ttl_secs {
            return Err(coffer_sdk::Error::bad(
                "\"token_ttl\" cannot be greater than \"token_max_ttl\"",
            ));
        }
        Ok(())
    }
}

impl TokenSettings {
    /// The fields Vault returns when reading a user or role.
    pub(crate) fn read_fields(&self, out: &mut Map<String, Value>) {
        let fields = json!({
            "token_policies": self.policies,
            "policies": self.policies,
            "token_ttl": self.ttl_secs,
            "token_max_ttl": self.max_ttl_secs,
            "token_explicit_max_ttl": self.explicit_max_ttl_secs,
            "token_period": self.period_secs,
            "token_num_uses": self.num_uses,
            "token_bound_cidrs": self.bound_cidrs,
            "token_no_default_policy": self.no_default_policy,
            "token_type": "default",
        });
        if let Value::Object(map) = fields {
            out.extend(map);
        }
    }

    /// A login granting these settings; the caller fills in identity and metadata.
    pub(crate) fn login(&self) -> Login {
        Login {
            policies: self.policies.clone(),
            no_default_policy: self.no_default_policy,
            ttl: Duration::from_secs(self.ttl_secs),
            max_ttl: Duration::from_secs(self.max_ttl_secs),
            explicit_max_ttl: Duration::from_secs(self.explicit_max_ttl_secs),
            period: Duration::from_secs(self.period_secs),
            num_uses: self.num_uses,
            renewable: true,
            bound_cidrs: self.bound_cidrs.clone(),
            ..Login::default()
        }
    }
}

/// A string field Vault reads as `TypeString`: a number is taken as its decimal text. Used for
/// secret inputs (passwords, secret IDs), so that a wrong type is refused without the submitted
/// value appearing in the error.
pub(crate) fn opt_secret_string<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(serde::de::Error::custom("expected a string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_are_normalised_like_vault() {
        assert_eq!(
            normalise_policies(vec![" Dev".into(), "ops".into(), "dev".into(), "".into()]),
            vec!["dev", "ops"]
        );
    }

    #[test]
    fn token_policies_win_over_the_deprecated_alias() {
        let mut settings = TokenSettings::default();
        TokenFieldsInput {
            policies: Some(vec!["old".into()]),
            token_policies: Some(vec!["new".into()]),
            ..TokenFieldsInput::default()
        }
        .apply(&mut settings)
        .unwrap();
        assert_eq!(settings.policies, vec!["new"]);
    }

    #[test]
    fn ttl_above_max_ttl_is_refused_and_nothing_changes_on_bad_cidrs() {
        let mut settings = TokenSettings::default();
        let err = TokenFieldsInput {
            token_ttl: Some(Duration::from_secs(7200)),
            token_max_ttl: Some(Duration::from_secs(3600)),
            ..TokenFieldsInput::default()
        }
        .apply(&mut settings)
        .unwrap_err();
        assert_eq!(err.status(), 400);

        let mut settings = TokenSettings::default();
        let err = TokenFieldsInput {
            token_policies: Some(vec!["p".into()]),
            token_bound_cidrs: Some(vec!["nope".into()]),
            ..TokenFieldsInput::default()
        }
        .apply(&mut settings)
        .unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(settings.policies.is_empty());
    }
}
