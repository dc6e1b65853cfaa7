//! What citizens prove who they are with.

mod password;
mod totp;

pub use password::{Password, PasswordHasher};
pub use totp::{TotpSecret, base32};
