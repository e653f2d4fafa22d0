//! The Flinks endpoints bankgate serves: one declaration gives each its name, path and
//! credential header. Its handler's `#[utoipa::path]` takes the path from here, and the router
//! registers the handler with the methods that attribute documents (see `api::routes`).

/// Declares the endpoints; `Endpoint::ALL` and every lookup follow from this one list.
macro_rules! endpoints {
    ($($variant:ident { path: $path:literal, credential: $credential:ident $(,)? },)+) => {
        /// Which endpoint answers: decides the FlinksCode and Message of the credential
        /// refusals, and the hints that say how an endpoint is called.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Endpoint {
            $($variant,)+
        }

        impl Endpoint {
            /// Every endpoint, in declaration order.
            pub const ALL: &'static [Endpoint] = &[$(Self::$variant,)+];

            /// The name in the path (`/v3/{customerId}/BankingServices/{name}`).
            pub const fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => stringify!($variant),)+
                }
            }

            /// The documented path template.
            pub const fn path(self) -> &'static str {
                match self {
                    $(Self::$variant => $path,)+
                }
            }

            /// The kind of credential this endpoint reads.
            pub const fn credential(self) -> Credential {
                match self {
                    $(Self::$variant => Credential::$credential,)+
                }
            }
        }
    };
}

endpoints! {
    GenerateAuthorizeToken {
        path: "/v3/{customerId}/BankingServices/GenerateAuthorizeToken",
        credential: SecretKey,
    },
    Authorize {
        path: "/v3/{customerId}/BankingServices/Authorize",
        credential: AuthorizeToken,
    },
    AuthorizeAsync {
        path: "/v3/{customerId}/BankingServices/AuthorizeAsync",
        credential: AuthorizeToken,
    },
    DeleteCard {
        path: "/v3/{customerId}/BankingServices/DeleteCard/{loginId}",
        credential: ApiKey,
    },
    GetAccountsSummary {
        path: "/v3/{customerId}/BankingServices/GetAccountsSummary",
        credential: ApiKey,
    },
    GetAccountsSummaryAsync {
        path: "/v3/{customerId}/BankingServices/GetAccountsSummaryAsync/{requestId}",
        credential: ApiKey,
    },
    GetAccountsDetail {
        path: "/v3/{customerId}/BankingServices/GetAccountsDetail",
        credential: ApiKey,
    },
    GetAccountsDetailAsync {
        path: "/v3/{customerId}/BankingServices/GetAccountsDetailAsync/{requestId}",
        credential: ApiKey,
    },
    GetStatements {
        path: "/v3/{customerId}/BankingServices/GetStatements",
        credential: ApiKey,
    },
    GetStatementsAsync {
        path: "/v3/{customerId}/BankingServices/GetStatementsAsync/{requestId}",
        credential: ApiKey,
    },
    SetScheduledRefresh {
        path: "/v3/{customerId}/BankingServices/SetScheduledRefresh",
        credential: ApiKey,
    },
    GetNightlyRefreshStatus {
        path: "/v3/{customerId}/BankingServices/GetNightlyRefreshStatus",
        credential: ApiKey,
    },
    GetMFAQuestions {
        path: "/v3/{customerId}/BankingServices/GetMFAQuestions/{loginId}",
        credential: ApiKey,
    },
    AnswerMFAQuestions {
        path: "/v3/{customerId}/BankingServices/AnswerMFAQuestions",
        credential: ApiKey,
    },
}

/// What an endpoint authenticates with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// The customer's secret key, in `flinks-auth-key`.
    SecretKey,
    /// A single-use authorize token, in `flinks-auth-key`.
    AuthorizeToken,
    /// The customer's x-api-key, in `x-api-key`.
    ApiKey,
}

impl Credential {
    /// The header the credential travels in.
    pub const fn header(self) -> &'static str {
        match self {
            Self::SecretKey | Self::AuthorizeToken => "flinks-auth-key",
            Self::ApiKey => "x-api-key",
        }
    }

    /// How hints name it.
    pub const fn described(self) -> &'static str {
        match self {
            Self::SecretKey => "the secret key",
            Self::AuthorizeToken => "an authorize token",
            Self::ApiKey => "the x-api-key",
        }
    }
}

impl Endpoint {
    /// The header this endpoint reads its credential from.
    pub const fn credential_header(self) -> &'static str {
        self.credential().header()
    }

    /// The endpoint a name designates, ignoring case (clients vary it).
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|endpoint| endpoint.name().eq_ignore_ascii_case(name))
    }

    /// The endpoint a path names (`/v3/{id}/BankingServices/{name}/…`, `BankingServices` in
    /// any case), with how many segments follow the name.
    pub fn of_path(path: &str) -> Option<(Self, usize)> {
        let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        if segments.len() >= 4
            && segments[0] == "v3"
            && segments[2].eq_ignore_ascii_case("BankingServices")
        {
            Self::named(segments[3]).map(|endpoint| (endpoint, segments.len() - 4))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_endpoint() {
        for endpoint in Endpoint::ALL {
            assert_eq!(
                Endpoint::of_path(endpoint.path()).map(|(e, _)| e),
                Some(*endpoint),
                "{}",
                endpoint.path()
            );
        }
        assert_eq!(
            Endpoint::of_path("/v3/x/bankingservices/authorize").map(|(e, _)| e),
            Some(Endpoint::Authorize)
        );
        assert_eq!(Endpoint::of_path("/v3/x/BankingServices/Nope"), None);
    }
}
