//! The domain of bankgate: who the tenants are, which credentials they hold, how authorize tokens
//! live and die, what time it is, and the sandbox bank that stands in for real institutions.
//!
//! Nothing here speaks HTTP or SQL; the store and server crates build on these types.

pub mod clock;
pub mod credentials;
pub mod error;
pub mod forced;
pub mod ids;
pub mod model;
pub mod nightly;
pub mod sandbox;
pub mod time_format;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use credentials::{ApiKey, AuthorizeToken, ConnectSecret, Digest, SecretKey};
pub use error::{DomainError, Malformed, PathId, Refusal};
pub use ids::{CustomerId, InstanceName, LoginId, RequestId};
