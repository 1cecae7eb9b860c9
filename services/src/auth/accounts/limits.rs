//! Rate limits of the auth routes (GCRA through `governor`): per client IP and per account,
//! for sign-up, sign-in, refresh and code checks, each operation counted apart.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::AccountError;

/// Keys a limiter tracks before it forgets those whose budget has refilled.
const RETAIN_ABOVE: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    SignUp,
    SignIn,
    Refresh,
    CodeCheck,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::SignUp => "signup",
            Operation::SignIn => "signin",
            Operation::Refresh => "refresh",
            Operation::CodeCheck => "code",
        }
    }
}

/// Requests allowed per minute (and as a burst); `None` turns limiting off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSettings {
    pub per_ip_per_minute: Option<NonZeroU32>,
    pub per_account_per_minute: Option<NonZeroU32>,
}

#[derive(Debug)]
pub struct RateLimits {
    per_ip: Option<DefaultKeyedRateLimiter<String>>,
    per_account: Option<DefaultKeyedRateLimiter<String>>,
}

fn check(
    limiter: &Option<DefaultKeyedRateLimiter<String>>,
    key: String,
) -> Result<(), AccountError> {
    let Some(limiter) = limiter else {
        return Ok(());
    };
    if limiter.len() > RETAIN_ABOVE {
        limiter.retain_recent();
    }
    limiter.check_key(&key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        AccountError::RateLimited {
            retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
        }
    })
}

impl RateLimits {
    pub fn new(settings: LimitSettings) -> Self {
        let limiter = |per_minute: Option<NonZeroU32>| {
            per_minute.map(|n| RateLimiter::keyed(Quota::per_minute(n).allow_burst(n)))
        };
        RateLimits {
            per_ip: limiter(settings.per_ip_per_minute),
            per_account: limiter(settings.per_account_per_minute),
        }
    }

    /// One request of `operation` from `ip` about `account` (an email or a session), or 429.
    pub fn check(
        &self,
        operation: Operation,
        ip: Option<IpAddr>,
        account: Option<&str>,
    ) -> Result<(), AccountError> {
        if let Some(ip) = ip {
            check(&self.per_ip, format!("{}/{ip}", operation.as_str()))?;
        }
        if let Some(account) = account {
            check(
                &self.per_account,
                format!("{}/{account}", operation.as_str()),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_operation_and_key_has_its_own_budget() {
        let limits = RateLimits::new(LimitSettings {
            per_ip_per_minute: NonZeroU32::new(3),
            per_account_per_minute: NonZeroU32::new(1),
        });
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        limits
            .check(Operation::SignIn, Some(ip), Some("a"))
            .unwrap();
        let error = limits
            .check(Operation::SignIn, Some(ip), Some("a"))
            .unwrap_err();
        assert!(
            matches!(error, AccountError::RateLimited { retry_after_secs } if retry_after_secs >= 1)
        );
        limits
            .check(Operation::SignIn, Some(ip), Some("b"))
            .unwrap();
        assert!(
            limits
                .check(Operation::SignIn, Some(ip), Some("c"))
                .is_err(),
            "per IP"
        );
        limits
            .check(Operation::Refresh, Some(ip), Some("a"))
            .unwrap();
        let off = RateLimits::new(LimitSettings {
            per_ip_per_minute: None,
            per_account_per_minute: None,
        });
        for _ in 0..100 {
            off.check(Operation::SignUp, Some(ip), Some("a")).unwrap();
        }
    }
}
